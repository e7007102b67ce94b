"""Preprocessing a whole corpus (harness.data.prepare: report, skips) and the
`python -m harness.inspect_data` CLI that prints it."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.cli import run_cli
from harness.data.prepare import prepare_splits, preprocess_corpus
from harness.data.readers.npz import write_npz
from harness.data.record import DataError, SignSequence
from harness.data.sources import load_source, parse_source
from harness.inspect_data import main
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


def _load(spec: str):
    return load_source(parse_source(spec))


def test_prepare_report_and_skips(npz_source):
    corpus, report = prepare_splits(_load(npz_source), noise_threshold=1.0, min_frames=3)
    train = report["train"]
    assert report["problems"] == []
    assert [s.name for s in corpus["train"]] == ["a"]
    assert train["sequences_raw"] == 3 and train["sequences"] == 1
    assert train["frames_raw"] == [6, 2, 5] and train["frames"] == [5, 2, 0]
    assert train["dropped_frames"] == 1 and train["dropped_noisy_frames"] == 1
    assert train["skipped_short"] == 1 and train["skipped_unnormalizable"] == 1
    assert any("noshoulder: no frame has both shoulders" in p for p in train["problems"])
    assert train["parts_present"]["face"] == {"frames": 0.0, "points": 0.0}
    assert train["parts_present"]["body"]["frames"] == 1.0
    assert train["range"] == [[-0.5, 0.5], [0.0, 0.0]]  # (x - 11) / 2 for x in [10, 12]; the spike was dropped
    assert report["dev"]["frames"] == [4] and report["test"]["sequences"] == 0
    seq = corpus["train"][0]
    np.testing.assert_allclose(seq.keypoints[0, CANONICAL.right_shoulder], [-0.5, 0])
    assert seq.meta["preprocess"]["scale"] == 2.0


def test_preprocess_corpus_needs_every_split(npz_source, tmp_path):
    with pytest.raises(DataError, match=r"the test split has no usable sequences .*python -m harness\.inspect_data SOURCE"):
        preprocess_corpus(_load(npz_source), 1.0)
    full = {"train": [_seq("a", 6, spike=3), _seq("b", 3)], "dev": [_seq("d", 4)], "test": [_seq("t", 2)]}
    corpus, report = preprocess_corpus(full, 1.0)
    same, same_report = prepare_splits(full, noise_threshold=1.0, min_frames=1)
    assert report == same_report and report["train"]["dropped_noisy_frames"] == 1
    assert [[s.name for s in corpus[k]] for k in corpus] == [["a", "b"], ["d"], ["t"]]
    np.testing.assert_array_equal(corpus["train"][0].keypoints, same["train"][0].keypoints)


def test_inspect_everything_skipped_is_an_error(npz_source, capsys):
    assert run_cli(main, [npz_source, "--min-frames", "100"]) == 2
    assert "all 4 sequences were skipped" in capsys.readouterr().err


def test_inspect_text_and_json(npz_source, capsys):
    assert main([npz_source, "--min-frames", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"source: {npz_source}\nnoise threshold: 0.75 shoulder lengths, min frames: 3\n")
    assert "[train] sequences: 1 kept of 3" in out
    assert "dropped frames: 1 (noisy 1, empty 0)" in out
    assert "skipped: 1 short, 1 without shoulders" in out
    assert "[test] sequences: 0 kept of 0" in out  # an empty split is reported, not an error
    assert main([npz_source, "--json", "--noise-threshold", "100"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["source"] == npz_source and doc["params"] == {
        "noise_threshold": 100.0, "min_frames": 1, "fps": 25.0, "gaps": "mask", "max_gap": 5, "dims": "source",
        "min_confidence": 0.1, "unlabelled": False}
    assert doc["splits"]["train"]["sequences"] == 2  # min_frames 1: only "noshoulder" is skipped
    assert doc["splits"]["train"]["frames_raw"] == [6, 2, 5] and doc["splits"]["train"]["frames"] == [6, 2, 0]


def test_inspect_synth_sources(capsys):
    assert main(["synth:debug", "--json"]) == 0
    debug = json.loads(capsys.readouterr().out)["splits"]
    assert [debug[s]["sequences_raw"] for s in ("train", "dev", "test")] == [32, 8, 8]
    assert main(["synth@3", "--json"]) == 0  # the default profile's settings, another seed
    other = json.loads(capsys.readouterr().out)["splits"]
    assert [other[s]["sequences_raw"] for s in ("train", "dev", "test")] == [300, 50, 50]


@pytest.mark.parametrize("spec, message", [
    ("csv:foo", "source 'csv:foo': unknown kind"),
    ("synth:nosuch", "unknown profile 'nosuch'"),
    ("synth@-1", "source 'synth@-1': expected synth@SEED with a non-negative integer seed"),
])
def test_inspect_error_is_one_line_exit_2(capsys, spec, message):
    assert run_cli(main, [spec]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_inspect_command_error_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness.inspect_data", f"pt:{tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr and "no train.skels" in proc.stderr


@pytest.mark.skipif(not PT_SAMPLE.exists(), reason="shared PHOENIX14T sample absent")
def test_inspect_real_pt_sample(capsys):
    assert main([f"pt:{PT_SAMPLE}", "--json"]) == 0
    splits = json.loads(capsys.readouterr().out)["splits"]
    assert splits["train"]["frames_raw"] == [86, 126, 168, 185, 71]
    assert splits["dev"]["frames_raw"] == [42, 111, 148, 142, 93]
    assert splits["test"]["frames_raw"] == [181, 150, 198, 130, 111]
    assert all(s["dropped_frames"] == 0 for s in splits.values())  # real signing is below the threshold
    assert splits["train"]["parts_present"]["face"]["frames"] == 0.0
    assert splits["train"]["coords"] == [3]
