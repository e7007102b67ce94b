"""Hostile inputs: nothing a user supplies is unpickled or evaluated.

Two kinds of check:
- static: every call in harness/, models/ and scripts/ that reads a file is one of the safe forms
  (torch.load(..., weights_only=True), yaml.safe_load, np.load(..., allow_pickle=False)); no
  pickle.load(s), yaml.load/unsafe_load/full_load, eval or exec anywhere;
- behavioural: a checkpoint whose pickle would run code, given to the loader the harness uses for
  cache entries and Train checkpoints, is refused and the code does not run.
"""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("harness", "models", "scripts") for p in (ROOT / folder).rglob("*.py"))


def _calls(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = (f"{func.value.id}.{func.attr}" if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                    else f"?.{func.attr}" if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else "")
            yield name, node


def _keyword(node: ast.Call, name: str):
    for kw in node.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


def test_the_source_tree_is_found():
    assert len(SOURCES) > 30 and ROOT / "harness" / "cache.py" in SOURCES


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_read_is_a_safe_form(path):
    unsafe = []
    for name, node in _calls(path):
        where = f"{path.relative_to(ROOT)}:{node.lineno}"
        if name == "torch.load" and _keyword(node, "weights_only") is not True:
            unsafe.append(f"{where}: torch.load without weights_only=True")
        elif name in ("np.load", "numpy.load") and _keyword(node, "allow_pickle") is not False:
            unsafe.append(f"{where}: np.load without allow_pickle=False")
        elif name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.unsafe_load_all"):
            unsafe.append(f"{where}: {name} (use yaml.safe_load)")
        elif name in ("pickle.load", "pickle.loads", "cloudpickle.load", "cloudpickle.loads", "dill.load"):
            unsafe.append(f"{where}: {name}")
        elif name in ("eval", "exec"):
            unsafe.append(f"{where}: {name}()")
    assert not unsafe, "\n".join(unsafe)


class _RunsCode:
    """Unpickling this calls os.system: what a booby-trapped checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    from harness.io import load_torch
    from harness.tune.worker import read_checkpoint
    marker = tmp_path / "pwned"
    trap = tmp_path / "model.pt"
    import torch
    torch.save({"model": _RunsCode(marker)}, trap)
    # Plain pickle would run it (the trap is real) ...
    with open(trap, "rb") as f:
        assert f.read(2) == b"PK"  # torch's zip format: the pickle is inside
    payload = pickle.dumps(_RunsCode(tmp_path / "plain"))
    pickle.loads(payload)
    assert (tmp_path / "plain").exists()
    # ... the harness's loaders do not.
    with pytest.raises(pickle.UnpicklingError):
        load_torch(trap)
    assert not marker.exists()
    folder = tmp_path / "ckpt"
    folder.mkdir()
    trap.rename(folder / "state.pt")
    said: list[str] = []
    assert read_checkpoint(folder, said.append) is None
    assert not marker.exists() and said and "not loading it" in said[-1]
