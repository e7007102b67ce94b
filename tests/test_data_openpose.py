"""How2Sign-style OpenPose JSON reader, on tiny generated fixtures (no data shipped)."""

import json
from pathlib import Path

import numpy as np
import pytest

from harness.data.readers.openpose import read_openpose
from harness.data.record import DataError, ReadOptions
from harness.data.sources import load_source, parse_source
from models.layout import CANONICAL, DLIB_FACE

FACE = CANONICAL.parts["face"]
LEFT = CANONICAL.parts["left_hand"]
RIGHT = CANONICAL.parts["right_hand"]


def _person(t: int, conf: float = 0.9) -> dict:
    """Point k of each list at (base + k + t, base + 2k), confidence conf (0 for body point 3)."""
    def triplets(n: int, base: float, zero: tuple[int, ...] = ()) -> list[float]:
        out = []
        for k in range(n):
            out += [base + k + t, base + 2 * k, 0.0 if k in zero else conf]
        return out

    return {
        "pose_keypoints_2d": triplets(25, 0, zero=(3,)),
        "face_keypoints_2d": triplets(70, 100),
        "hand_left_keypoints_2d": triplets(21, 200, zero=(20,)),
        "hand_right_keypoints_2d": triplets(21, 300),
    }


def make_how2sign(root: Path, sentences: dict[str, list[dict | None]], table_name="how2sign_realigned_train.csv",
                  extra_rows: tuple[str, ...] = (), nest: str = "openpose_output/json") -> Path:
    """Write sentence folders of per-frame OpenPose JSON (None = no person) and a How2Sign-like table."""
    for name, frames in sentences.items():
        folder = root / nest / name
        folder.mkdir(parents=True)
        for t, person in enumerate(frames):
            doc = {"version": 1.3, "people": [] if person is None else [person]}
            (folder / f"{name}_{t:012d}_keypoints.json").write_text(json.dumps(doc))
    header = "VIDEO_ID\tVIDEO_NAME\tSENTENCE_ID\tSENTENCE_NAME\tSTART_REALIGNED\tEND_REALIGNED\tSENTENCE"
    rows = [f"vid\tvid-1\t{name}_id\t{name}\t0.0\t1.0\tSentence \"{name}\" here." for name in sentences]
    (root / table_name).write_text("\n".join([header, *rows, *extra_rows]) + "\n")
    return root


def test_openpose_mapping_exact(tmp_path):
    root = make_how2sign(tmp_path / "h2s", {"s1": [_person(0), None, _person(2)]})
    corpus = read_openpose(root)
    assert [len(corpus[s]) for s in ("train", "dev", "test")] == [1, 0, 0]
    seq = corpus["train"][0]
    assert seq.name == "s1" and seq.text == 'Sentence "s1" here.' and seq.gloss is None
    assert seq.keypoints.shape == (3, 73, 2)
    np.testing.assert_array_equal(seq.keypoints[2, 2], [2 + 2, 4])  # BODY_25 2 = right shoulder, t = 2
    assert not seq.mask[:, 3].any() and (seq.keypoints[:, 3] == 0).all()  # confidence 0 -> masked zero
    j = FACE[0]  # right_brow_outer = dlib 17
    np.testing.assert_array_equal(seq.keypoints[0, j], [100 + DLIB_FACE[0], 100 + 2 * DLIB_FACE[0]])
    np.testing.assert_array_equal(seq.keypoints[0, RIGHT[5]], [305, 310])
    # left pinky tip (20) missing: the fingertip centroid is absent, the palm centre present
    assert not seq.mask[0, LEFT[20]] and not seq.mask[0, LEFT[22]] and seq.mask[0, LEFT[21]]
    palm = np.mean([200 + k for k in (0, 1, 5, 9, 13, 17)])
    np.testing.assert_allclose(seq.keypoints[0, LEFT[21]], [palm, 200 + 2 * (palm - 200)])
    # frame 1 has no person: every point masked
    assert not seq.mask[1].any() and (seq.keypoints[1] == 0).all()
    # body 3, left pinky tip, fingertip centroid; and the nose at (0, 0) in frame 0: OpenPose's "not detected"
    assert seq.mask[0].sum() == 73 - 1 - 2 - 1 and not seq.mask[0, 0] and seq.mask[2, 0]


def test_openpose_split_folders_and_problems(tmp_path):
    root = tmp_path / "h2s"
    make_how2sign(root / "train", {"a": [_person(0)] * 2, "b": [_person(1)]}, extra_rows=("v\tv\tx\tghost\t0\t1\tno keypoints",))
    make_how2sign(root / "val", {"c": [_person(0)]}, table_name="how2sign_realigned_val.csv", nest="")
    (root / "train" / "openpose_output" / "json" / "orphan").mkdir()
    (root / "train" / "openpose_output" / "json" / "orphan" / "f_0.json").write_text('{"people": []}')
    with pytest.raises(DataError, match=r"how2sign_realigned_train\.csv: no row for 1 of 3 keypoint folder\(s\) \(first: 'orphan'\)"):
        load_source(parse_source(f"openpose:{root}"))
    problems: list[str] = []
    corpus = load_source(parse_source(f"openpose:{root}"), problems=problems, options=ReadOptions(unlabelled=True))
    assert [q.name for q in corpus["train"]] == ["a", "b", "orphan"]  # table order, then the unlabelled
    assert corpus["train"][2].meta["unlabelled"] and corpus["train"][2].text == ""
    assert [q.name for q in corpus["dev"]] == ["c"] and corpus["test"] == []
    assert any("1 sentence(s) without a keypoint folder" in p and "ghost" in p for p in problems)
    assert any("no row for 1 keypoint folder(s), kept unlabelled" in p and "orphan" in p for p in problems)


def test_openpose_frames_in_numeric_order(tmp_path):
    root = make_how2sign(tmp_path / "h2s", {"s": [_person(t) for t in range(3)]})
    folder = root / "openpose_output" / "json" / "s"
    for t in range(3):  # rename to unpadded numbers: 0, 1, 2 -> f_2, f_10, f_100 keep order by number
        (folder / f"s_{t:012d}_keypoints.json").rename(folder / f"f_{[2, 10, 100][t]}.json")
    seq = read_openpose(root)["train"][0]
    # the numbers are places in time: frames 2, 10, 100 are 99 frames from the first, 96 of them missing
    assert seq.num_frames == 99 and seq.meta["missing_frames"] == [t for t in range(99) if t not in (0, 8, 98)]
    np.testing.assert_array_equal(seq.keypoints[[0, 8, 98], 1, 0], [1, 2, 3])  # the neck: x = 1 + t


def test_openpose_bad_inputs_name_the_file(tmp_path):
    root = make_how2sign(tmp_path / "a", {"s": [_person(0)]})
    frame = next((root / "openpose_output" / "json" / "s").iterdir())
    person = _person(0)
    person["hand_left_keypoints_2d"] = person["hand_left_keypoints_2d"][:-3]
    frame.write_text(json.dumps({"people": [person]}))
    with pytest.raises(DataError, match=rf"{frame.name}: people\[0\]\.hand_left_keypoints_2d has 60 values; expected 63"):
        read_openpose(root)
    frame.write_text("{not json")
    with pytest.raises(DataError, match=rf"{frame.name}: not a readable OpenPose JSON"):
        read_openpose(root)
    person = _person(0)
    person["pose_keypoints_2d"][4] = "x"
    frame.write_text(json.dumps({"people": [person]}))
    with pytest.raises(DataError, match=rf"{frame.name}: people\[0\]\.pose_keypoints_2d has a non-numeric"):
        read_openpose(root)


def test_openpose_table_errors_name_file_and_line(tmp_path):
    root = make_how2sign(tmp_path / "a", {"s": [_person(0)]}, extra_rows=("only\ttwo",))
    with pytest.raises(DataError, match=r"how2sign_realigned_train\.csv, line 3: 2 tab-separated cells; expected 7"):
        read_openpose(root)
    (root / "how2sign_realigned_train.csv").write_text("NAME,SENTENCE\ns,hi\n")
    with pytest.raises(DataError, match=r"how2sign_realigned_train\.csv, line 1: no SENTENCE_NAME column"):
        read_openpose(root)
    (root / "how2sign_realigned_train.csv").unlink()
    with pytest.raises(DataError, match="no sentence table"):
        read_openpose(root)
