"""Paths resolved once, on the driver, before Ray starts: `--results`, `--dataset` (and every data
source spec of the config), `--tracking-uri` and `--storage` given relative to the working folder
mean the same files inside a trial, which Ray runs in a folder of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import absolute_uri
from harness.datasource import absolute_sources, absolute_spec
from test_multinode import TINY, driver_env, runs_of

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("uri, flag, expected", [
    ("sqlite:///db/runs.db", "--tracking-uri", "sqlite:///{cwd}/db/runs.db"),
    ("sqlite:////abs/runs.db", "--tracking-uri", "sqlite:////abs/runs.db"),
    ("sqlite:///:memory:", "--tracking-uri", "sqlite:///:memory:"),
    ("file:mlruns", "--tracking-uri", "file://{cwd}/mlruns"),
    ("mlruns", "--tracking-uri", "{cwd}/mlruns"),
    ("http://127.0.0.1:5000", "--tracking-uri", "http://127.0.0.1:5000"),
    ("postgresql://user@db/mlflow", "--tracking-uri", "postgresql://user@db/mlflow"),
    ("store/x", "--storage", "file://{cwd}/store/x"),
    ("file:store", "--storage", "file://{cwd}/store"),
    ("file:///abs/store", "--storage", "file:///abs/store"),
    ("s3://bucket/prefix?endpoint_override=127.0.0.1:9000", "--storage",
     "s3://bucket/prefix?endpoint_override=127.0.0.1:9000"),
    (None, "--storage", None),
])
def test_local_paths_in_uris_are_made_absolute_and_others_are_kept(uri, flag, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_uri(uri, flag) == (expected.format(cwd=tmp_path) if expected else None)


def test_file_sources_are_made_absolute_and_synthetic_ones_kept(tiny_cfg, tmp_path, monkeypatch):
    from harness.config import apply_overrides
    monkeypatch.chdir(tmp_path)
    assert absolute_spec("pt:data/p14t") == f"pt:{tmp_path}/data/p14t"
    assert absolute_spec("npz:/a/../b.npz") == "npz:/b.npz"
    assert [absolute_spec(s) for s in ("synth", "synth@7", "synth:debug", "")] == ["synth", "synth@7", "synth:debug", ""]
    cfg = absolute_sources(apply_overrides(tiny_cfg, {"data.source": "npz:c.npz", "pretrain.extra_source": "pose:p"}))
    assert (cfg.data.source, cfg.pretrain.extra_source) == (f"npz:{tmp_path}/c.npz", f"pose:{tmp_path}/p")


def test_a_missing_relative_extra_source_is_one_line_naming_its_absolute_path(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "harness" / "run_ablation.py"), "stride", "--profile", "debug",
                          "--only", "s7", "--results", "res", "--set", "pretrain.extra_source=npz:gone.npz", *TINY],
                         cwd=tmp_path, env=driver_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr == f"error: {tmp_path}/gone.npz: does not exist (source 'npz:{tmp_path}/gone.npz')\n"


@pytest.mark.slow
def test_relative_paths_given_from_another_folder_reach_the_trial_resolved(tmp_path):
    from harness.config import load_profile
    from harness.data.readers.npz import write_npz
    from harness.datasource import load_raw
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    cfg = load_profile("debug", {"data.synth.train": 24, "data.synth.dev": 8, "data.synth.test": 8})  # TINY's sizes
    write_npz(load_raw("synth", cfg), work / "data" / "corpus.npz")
    out = subprocess.run([sys.executable, str(ROOT / "harness" / "run_ablation.py"), "stride", "--profile", "debug",
                          "--only", "s7", "--results", "res", "--dataset", "npz:data/corpus.npz",
                          "--tracking-uri", "sqlite:///db/runs.db", "--storage", "store", *TINY],
                         cwd=work, env=driver_env(), capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    # The trial read the data file and logged to the store both named relative to `work`.
    parents, children = runs_of(f"sqlite:///{work / 'db' / 'runs.db'}", "stride")
    assert [p.info.status for p in parents] == ["FINISHED"]
    assert [(c.info.status, c.data.params["data.source"]) for c in children] == [
        ("FINISHED", f"npz:{work / 'data' / 'corpus.npz'}")]
    assert (work / "res" / "stride" / "trials" / "s7-seed0.json").is_file()
    assert (work / "store" / "stride" / "trials" / "s7-seed0.json").is_file()  # --storage store, mirrored
    assert (work / "store" / "ray").is_dir()  # Ray's run storage too
    # No stray database where Ray ran the trial (its folder is under the run storage, here).
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("runs.db")) == [Path("work/db/runs.db")]
