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
from test_multinode import TINY, driver_env

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


# The whole path, a study run from another folder with all four relative, is one of the three
# studies of tests/test_soak.py (an end-to-end run of its own would cost a minute of the suite).
