"""The hostile-input suite: every case of tests/hostile_cases.py (command-line flags, `--set`
values, ablation and search files, data files of each reader) exits 2 with exactly one line on
stderr that names the file, key or value and what is expected, and no traceback. The cases run
the CLIs' `main` in this process and stop before Ray, so the table takes seconds.
docs/bad_inputs.md is generated from the same table (scripts/bad_inputs_doc.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hostile_cases import cases, run_case

ROOT = Path(__file__).resolve().parents[1]
CASES = cases()


def test_the_suite_has_at_least_100_cases_across_every_kind_of_input():
    assert len(CASES) >= 100 and len({c.id for c in CASES}) == len(CASES)
    assert {c.group for c in CASES} >= {"Command line", "--set KEY=VALUE", "Ablation files", "Search files",
                                        "Data files"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line(case, tmp_path):
    code, out, err = run_case(case, tmp_path / "W")
    assert "Traceback" not in err, err
    assert code == 2, f"exit {code}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}"
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), err
    assert lines[0].startswith("error: ") and case.expect in lines[0], lines[0]


def test_docs_bad_inputs_md_is_generated_from_the_cases(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import bad_inputs_doc
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert (ROOT / "docs" / "bad_inputs.md").read_text() == bad_inputs_doc.render(tmp_path), \
        "docs/bad_inputs.md is stale: run `python scripts/bad_inputs_doc.py`"
