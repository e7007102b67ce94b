"""The prepare stage (report, skips, on-disk cache) and the `python -m harness.data inspect` CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import harness.data.prepare as prepare_mod
from harness.data.inspect_cli import main
from harness.data.prepare import prepare_corpus
from harness.data.readers_npz import write_npz
from harness.data.record import DataError, SignSequence
from models.layout import CANONICAL

ROOT = Path(__file__).resolve().parents[1]
PT_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "phoenix14t-pt-sample"


def _seq(name: str, T: int, shoulders: bool = True, spike: int | None = None) -> SignSequence:
    kp = np.zeros((T, 73, 2), np.float32)
    kp[:, :, 0] = np.arange(73) / 73.0 + 10.0
    kp[:, :, 1] = 5.0
    kp[:, CANONICAL.right_shoulder] = [10, 5]
    kp[:, CANONICAL.left_shoulder] = [12, 5]  # shoulder length 2, centre (11, 5)
    mask = np.ones((T, 73), bool)
    mask[:, list(CANONICAL.parts["face"])] = False
    if not shoulders:
        mask[:, CANONICAL.left_shoulder] = False
    if spike is not None:
        kp[spike] += 20.0
    return SignSequence(name=name, keypoints=np.where(mask[..., None], kp, 0), mask=mask, text=f"t {name}")


@pytest.fixture
def npz_source(tmp_path) -> str:
    corpus = {
        "train": [_seq("a", 6, spike=3), _seq("short", 2), _seq("noshoulder", 5, shoulders=False)],
        "dev": [_seq("d", 4)],
        "test": [],
    }
    write_npz(corpus, tmp_path / "c.npz")
    return f"npz:{tmp_path / 'c.npz'}"


def test_prepare_report_and_skips(npz_source):
    prepared = prepare_corpus(npz_source, noise_threshold=1.0, min_frames=3, cache_dir=None)
    train = prepared.report["train"]
    assert [s.name for s in prepared.corpus["train"]] == ["a"]
    assert train["sequences_raw"] == 3 and train["sequences"] == 1
    assert train["frames_raw"] == [6, 2, 5] and train["frames"] == [5, 2, 0]
    assert train["dropped_frames"] == 1 and train["dropped_noisy_frames"] == 1
    assert train["skipped_short"] == 1 and train["skipped_unnormalizable"] == 1
    assert any("noshoulder: no frame has both shoulders" in p for p in train["problems"])
    assert train["parts_present"]["face"] == {"frames": 0.0, "points": 0.0}
    assert train["parts_present"]["body"]["frames"] == 1.0
    assert train["range"] == [[-0.5, 0.5], [0.0, 0.0]]  # (x - 11) / 2 for x in [10, 12]; the spike was dropped
    assert prepared.report["dev"]["frames"] == [4] and prepared.report["test"]["sequences"] == 0
    seq = prepared.corpus["train"][0]
    np.testing.assert_allclose(seq.keypoints[0, CANONICAL.right_shoulder], [-0.5, 0])


def test_prepare_everything_skipped_is_an_error(npz_source):
    with pytest.raises(DataError, match="all 4 sequences were skipped"):
        prepare_corpus(npz_source, noise_threshold=1.0, min_frames=100, cache_dir=None)


def test_prepare_cache_hits_and_misses(npz_source, tmp_path, monkeypatch):
    calls = []
    real = prepare_mod.load_source

    def counting(spec, problems=None):
        calls.append(spec)
        return real(spec, problems)

    monkeypatch.setattr(prepare_mod, "load_source", counting)
    cache = tmp_path / "cache"
    first = prepare_corpus(npz_source, noise_threshold=1.0, min_frames=3, cache_dir=cache)
    second = prepare_corpus(npz_source, noise_threshold=1.0, min_frames=3, cache_dir=cache)
    assert len(calls) == 1 and not first.from_cache and second.from_cache
    assert second.fingerprint == first.fingerprint and len(first.fingerprint) == 64
    assert second.report == json.loads(json.dumps(first.report))
    np.testing.assert_array_equal(second.corpus["train"][0].keypoints, first.corpus["train"][0].keypoints)
    assert second.corpus["train"][0].meta["preprocess"]["scale"] == 2.0
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".npz"]  # no temporary files left
    # other preprocessing arguments: another key
    third = prepare_corpus(npz_source, noise_threshold=2.0, min_frames=3, cache_dir=cache)
    assert len(calls) == 2 and third.fingerprint != first.fingerprint
    # the source file changes (mtime): another key
    path = Path(npz_source.split(":", 1)[1])
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    fourth = prepare_corpus(npz_source, noise_threshold=1.0, min_frames=3, cache_dir=cache)
    assert len(calls) == 3 and fourth.fingerprint != first.fingerprint


def test_damaged_cache_entry_is_recomputed(npz_source, tmp_path):
    cache = tmp_path / "cache"
    first = prepare_corpus(npz_source, noise_threshold=1.0, min_frames=3, cache_dir=cache)
    next(cache.glob("*.npz")).write_bytes(b"broken")
    again = prepare_corpus(npz_source, noise_threshold=1.0, min_frames=3, cache_dir=cache)
    assert not again.from_cache and again.fingerprint == first.fingerprint


def test_inspect_text_and_json(npz_source, capsys):
    assert main(["inspect", npz_source, "--min-frames", "3"]) == 0
    out = capsys.readouterr().out
    assert "[train] sequences: 1 kept of 3" in out
    assert "dropped frames: 1 (noisy 1, empty 0)" in out
    assert "skipped: 1 short, 1 without shoulders" in out
    assert main(["inspect", npz_source, "--json", "--noise-threshold", "100"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["source"] == npz_source and doc["params"]["noise_threshold"] == 100.0
    assert doc["splits"]["train"]["sequences"] == 2  # min_frames 1: only "noshoulder" is skipped
    assert doc["splits"]["train"]["frames_raw"] == [6, 2, 5] and doc["splits"]["train"]["frames"] == [6, 2, 0]


def test_inspect_error_is_one_line_exit_2(capsys, tmp_path):
    assert main(["inspect", "csv:foo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: source 'csv:foo': unknown kind") and err.count("\n") == 1
    proc = subprocess.run([sys.executable, "-m", "harness.data", "inspect", f"pt:{tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr and "no train.skels" in proc.stderr


@pytest.mark.skipif(not PT_SAMPLE.exists(), reason="shared PHOENIX14T sample absent")
def test_inspect_real_pt_sample(capsys):
    assert main(["inspect", f"pt:{PT_SAMPLE}", "--json"]) == 0
    splits = json.loads(capsys.readouterr().out)["splits"]
    assert splits["train"]["frames_raw"] == [86, 126, 168, 185, 71]
    assert splits["dev"]["frames_raw"] == [42, 111, 148, 142, 93]
    assert splits["test"]["frames_raw"] == [181, 150, 198, 130, 111]
    assert all(s["dropped_frames"] == 0 for s in splits.values())  # real signing is below the threshold
    assert splits["train"]["parts_present"]["face"]["frames"] == 0.0
    assert splits["train"]["coords"] == [3]
