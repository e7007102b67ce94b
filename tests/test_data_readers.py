"""Source specs, the Progressive Transformers reader/writer and the .npz archive."""

from pathlib import Path

import numpy as np
import pytest

from harness.data.readers.npz import read_npz, write_npz
from harness.data.readers.pt import read_pt, write_pt
from harness.data.record import DataError, SignSequence
from harness.data.sources import Source, load_source, parse_source, source_files
from harness.data.synth import generate_corpus
from models.layout import CANONICAL

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PT_SAMPLE = SHARED / "phoenix14t-pt-sample"
FACE = list(CANONICAL.parts["face"])
LEFT = CANONICAL.parts["left_hand"]
RIGHT = CANONICAL.parts["right_hand"]


# ---------------------------------------------------------------------------------------------- specs

def test_parse_source_kinds():
    assert parse_source("synth") == Source("synth")
    assert parse_source(" synth@1000 ") == Source("synth", seed=1000)
    assert parse_source("synth:debug") == Source("synth", profile="debug")
    assert parse_source("pt:/data/p14t") == Source("pt", path=Path("/data/p14t"))
    assert parse_source("openpose:dir") == Source("openpose", path=Path("dir"))
    assert parse_source("pose:a/b.pose") == Source("pose", path=Path("a/b.pose"))
    assert parse_source("npz:c.npz") == Source("npz", path=Path("c.npz"))
    assert parse_source("pt:~/x").path == Path.home() / "x"
    assert parse_source(" synth@1000 ").spec == "synth@1000"  # for messages


def test_unknown_kind_lists_valid_kinds():
    with pytest.raises(DataError, match=r"unknown kind 'csv'.*synth.*pt:DIR.*openpose:DIR.*pose:FILE_OR_DIR.*npz:FILE"):
        parse_source("csv:x")


@pytest.mark.parametrize("spec, message", [
    ("synth@", r"source 'synth@': expected synth@SEED with a non-negative integer seed"),
    ("synth@x", r"source 'synth@x': expected synth@SEED"),
    ("synth@-3", r"source 'synth@-3': expected synth@SEED"),
    ("synth:", r"source 'synth:': synth:PROFILE needs a profile name"),
    ("synth@3:debug", r"source 'synth@3:debug': expected synth, synth@SEED or synth:PROFILE"),
    ("synth:debug@3", r"source 'synth:debug@3': expected synth, synth@SEED or synth:PROFILE"),
])
def test_malformed_synth_specs_name_the_spec(spec, message):
    with pytest.raises(DataError, match=message):
        parse_source(spec)


def test_path_kind_needs_a_path_and_an_existing_one(tmp_path):
    with pytest.raises(DataError, match="pt needs a path"):
        parse_source("pt:")
    with pytest.raises(DataError, match="does not exist"):
        load_source(parse_source(f"pt:{tmp_path / 'nope'}"))
    with pytest.raises(DataError, match="does not exist"):
        source_files(parse_source(f"npz:{tmp_path / 'nope.npz'}"))


def test_synth_source_takes_the_parameters_the_caller_resolved():
    params = dict(seed=0, glosses=8, signers=2, train=3, dev=1, test=1, min_signs=2, max_signs=3, fps=25,
                  noisy_frame_rate=0.01, missing_point_rate=0.01, jitter=0.01)
    corpus = load_source(parse_source("synth"), params)
    assert [len(corpus[s]) for s in ("train", "dev", "test")] == [3, 1, 1]
    seq = corpus["train"][0]
    assert seq.keypoints.shape[1:2] == (73,) and seq.mask.shape == seq.keypoints.shape[:2]
    np.testing.assert_array_equal(seq.keypoints, generate_corpus(**params)["train"][0].keypoints)
    with pytest.raises(ValueError, match="needs synth_params"):
        load_source(parse_source("synth:debug"))
    with pytest.raises(ValueError, match="only for synth sources"):
        load_source(parse_source("npz:c.npz"), params)
    with pytest.raises(ValueError, match="has no files"):
        source_files(parse_source("synth@1"))


# ---------------------------------------------------------------------------------------------- PT

def _pt_frame(t: int) -> list[float]:
    """50 joints with x = j + t, y = 2j, z = -j (file axes), then the counter."""
    values = []
    for j in range(50):
        values += [j + t, 2 * j, -j]
    return values + [t / 2]


def _write_pt_dir(root: Path, skels_lines: list[str], n_text: int | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    n = len(skels_lines)
    (root / "train.skels").write_text("".join(line + "\n" for line in skels_lines))
    (root / "train.text").write_text("".join(f"satz {i} .\n" for i in range(n if n_text is None else n_text)))
    (root / "train.gloss").write_text("".join(f"GLOSS{i}\n" for i in range(n)))
    (root / "train.files").write_text("".join(f"train/seq{i}\n" for i in range(n)))
    return root


def test_pt_mapping_exact(tmp_path):
    line = " ".join(str(v) for v in _pt_frame(0) + _pt_frame(1))
    corpus = read_pt(_write_pt_dir(tmp_path / "pt", [line]))
    assert [len(corpus[s]) for s in ("train", "dev", "test")] == [1, 0, 0]
    seq = corpus["train"][0]
    assert (seq.name, seq.text, seq.gloss) == ("train/seq0", "satz 0 .", "GLOSS0")
    assert seq.keypoints.shape == (2, 73, 3) and seq.keypoints.dtype == np.float32
    # body: PT 0..7 in order, x negated into image axes
    np.testing.assert_array_equal(seq.keypoints[1, 2], [-(2 + 1), 4, -2])  # right shoulder, frame 1
    np.testing.assert_array_equal(seq.keypoints[0, 7], [-7, 14, -7])  # left wrist
    # hands: PT 8 is the left hand's wrist, PT 29 the right hand's
    np.testing.assert_array_equal(seq.keypoints[0, LEFT[0]], [-8, 16, -8])
    np.testing.assert_array_equal(seq.keypoints[0, RIGHT[20]], [-49, 98, -49])
    # derived: palm centre = mean of PT 8 + (0, 1, 5, 9, 13, 17); fingertips = PT 8 + (4, 8, 12, 16, 20)
    palm_j = np.mean([8 + k for k in (0, 1, 5, 9, 13, 17)])
    tips_j = np.mean([29 + k for k in (4, 8, 12, 16, 20)])
    np.testing.assert_allclose(seq.keypoints[0, LEFT[21]], [-palm_j, 2 * palm_j, -palm_j], rtol=1e-6)
    np.testing.assert_allclose(seq.keypoints[0, RIGHT[22]], [-tips_j, 2 * tips_j, -tips_j], rtol=1e-6)
    # no face in PT: masked and zero, everything else present
    assert not seq.mask[:, FACE].any() and (seq.keypoints[:, FACE] == 0).all()
    assert seq.mask.sum() == 2 * (73 - 19)


@pytest.mark.parametrize(
    "line, message",
    [
        ("1 2 3", r"train\.skels, line 2: 3 values is not a multiple of 151"),
        ("", r"train\.skels, line 2: empty sequence"),
        (" ".join(["0.5"] * 151 + ["abc"] + ["0"] * 150), r"train\.skels, line 2, frame 1: non-numeric value 'abc'"),
        # NaN is a missing joint (tests/test_real_world_quirks.py); infinite and absurd values are errors
        (" ".join(["0.5"] * 150 + ["0"] + ["0.5"] * 150 + ["0.5"] + ["1e39"] + ["0"] * 149 + ["0.6667"]),
         r"train\.skels, line 2, frame 2: value 1e\+39 overflows float32"),
        (" ".join(["inf"] + ["0"] * 150), r"train\.skels, line 2, frame 0: value inf overflows float32"),
    ],
)
def test_pt_bad_lines_name_file_line_and_frame(tmp_path, line, message):
    good = " ".join(str(v) for v in _pt_frame(0))
    root = _write_pt_dir(tmp_path / "pt", [good, line])
    with pytest.raises(DataError, match=message):
        read_pt(root)


def test_pt_line_counts_must_agree(tmp_path):
    good = " ".join(str(v) for v in _pt_frame(0))
    root = _write_pt_dir(tmp_path / "pt", [good, good], n_text=3)
    with pytest.raises(DataError, match=r"train\.text: 3 lines but train\.skels has 2"):
        read_pt(root)
    root = _write_pt_dir(tmp_path / "pt2", [good, good])
    (root / "train.files").write_text("a\n")
    with pytest.raises(DataError, match=r"train\.files: 1 lines but train\.skels has 2"):
        read_pt(root)


def test_pt_dir_without_skels(tmp_path):
    with pytest.raises(DataError, match="no train.skels"):
        read_pt(tmp_path)


def test_write_pt_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    line = " ".join(f"{v:.5f}" for t in range(3) for v in list(rng.normal(size=150)) + [t / 3])
    corpus = read_pt(_write_pt_dir(tmp_path / "a", [line, line]))
    corpus["test"] = [corpus["train"][1]]
    write_pt(corpus, tmp_path / "b")
    back = read_pt(tmp_path / "b")
    assert [len(back[s]) for s in ("train", "dev", "test")] == [2, 0, 1]
    for a, b in zip(corpus["train"] + corpus["test"], back["train"] + back["test"]):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        np.testing.assert_array_equal(a.mask, b.mask)
        assert (a.name, a.text, a.gloss) == (b.name, b.text, b.gloss)
    counters = (tmp_path / "b" / "train.skels").read_text().split("\n")[0].split()[150::151]
    assert [float(c) for c in counters] == pytest.approx([0, 1 / 3, 2 / 3])


@pytest.mark.skipif(not PT_SAMPLE.exists(), reason="shared PHOENIX14T sample absent")
def test_pt_real_sample_frame_counts():
    corpus = load_source(parse_source(f"pt:{PT_SAMPLE}"))
    counts = {s: [q.num_frames for q in corpus[s]] for s in ("train", "dev", "test")}
    assert counts == {
        "train": [86, 126, 168, 185, 71],
        "dev": [42, 111, 148, 142, 93],
        "test": [181, 150, 198, 130, 111],
    }
    seq = corpus["train"][0]
    assert seq.name == "train/11August_2010_Wednesday_tagesschau-1"
    assert seq.gloss.startswith("JETZT WETTER") and seq.text.endswith(" .")
    # after un-mirroring, the signer's right shoulder is on the image left of the left shoulder
    assert (seq.keypoints[:, CANONICAL.right_shoulder, 0] < seq.keypoints[:, CANONICAL.left_shoulder, 0]).all()
    assert not seq.mask[:, FACE].any() and seq.mask[:, list(LEFT) + list(RIGHT)].all()


# ---------------------------------------------------------------------------------------------- npz

def _seq(name: str, T: int, C: int, seed: int, **kw) -> SignSequence:
    rng = np.random.default_rng(seed)
    mask = rng.random((T, 73)) > 0.2
    kp = np.where(mask[..., None], rng.normal(size=(T, 73, C)), 0).astype(np.float32)
    return SignSequence(name=name, keypoints=kp, mask=mask, text=f"text {name}", **kw)


def test_npz_round_trip(tmp_path):
    corpus = {
        "train": [_seq("a", 5, 2, 0, gloss="A B", signer="s1", boundaries=[(0, 2), (2, 5)], meta={"k": np.int64(3)}),
                  _seq("b", 3, 2, 1)],
        "dev": [],
        "test": [_seq("c", 4, 2, 2, gloss="")],
    }
    write_npz(corpus, tmp_path / "c.npz")
    back = load_source(parse_source(f"npz:{tmp_path / 'c.npz'}"))
    assert [len(back[s]) for s in ("train", "dev", "test")] == [2, 0, 1]
    for a, b in zip(corpus["train"] + corpus["test"], back["train"] + back["test"]):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        np.testing.assert_array_equal(a.mask, b.mask)
        assert (a.name, a.text, a.gloss, a.signer, a.boundaries) == (b.name, b.text, b.gloss, b.signer, b.boundaries)
    assert back["train"][0].meta == {"k": 3}
    assert back["test"][0].gloss == "" and back["train"][1].gloss is None


def test_npz_errors_name_file_and_key(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, format=np.array("other"))
    with pytest.raises(DataError, match=r"bad\.npz: key 'format' is 'other'"):
        read_npz(path)
    corpus = {"train": [_seq("a", 2, 2, 0)]}
    write_npz(corpus, path)
    arrays = dict(np.load(path))
    arrays["mask_0"] = arrays["mask_0"].astype(np.float32)
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=r"bad\.npz: key 'mask_0' is float32"):
        read_npz(path)
    del arrays["keypoints_0"]
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=r"bad\.npz: key 'keypoints_0' missing"):
        read_npz(path)
    (tmp_path / "junk.npz").write_text("no zip")
    with pytest.raises(DataError, match=r"junk\.npz: not a readable"):
        read_npz(tmp_path / "junk.npz")
