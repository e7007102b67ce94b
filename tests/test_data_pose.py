"""pose-format `.pose` reader and writer: real samples, name-based mapping, round trip."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pose_format")
from pose_format import Pose  # noqa: E402
from pose_format.numpy import NumPyPoseBody  # noqa: E402
from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions  # noqa: E402

from harness.data.readers.pose import read_pose, read_pose_file, write_pose  # noqa: E402
from harness.data.record import DataError, ReadOptions, SignSequence  # noqa: E402
from harness.data.sources import load_source, parse_source  # noqa: E402
from models.layout import CANONICAL, MEDIAPIPE_FACE  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "pose"
PARTS = {k: list(v) for k, v in CANONICAL.parts.items()}
MP_HAND = ["WRIST", "THUMB_CMC", "THUMB_MCP", "THUMB_IP", "THUMB_TIP", "INDEX_FINGER_MCP", "INDEX_FINGER_PIP",
           "INDEX_FINGER_DIP", "INDEX_FINGER_TIP", "MIDDLE_FINGER_MCP", "MIDDLE_FINGER_PIP", "MIDDLE_FINGER_DIP",
           "MIDDLE_FINGER_TIP", "RING_FINGER_MCP", "RING_FINGER_PIP", "RING_FINGER_DIP", "RING_FINGER_TIP",
           "PINKY_MCP", "PINKY_PIP", "PINKY_DIP", "PINKY_TIP"]


def _write(path: Path, components: list[tuple[str, list[str]]], values: np.ndarray, conf: np.ndarray) -> Path:
    """A .pose file with the given components; values (T, N, C), conf (T, N) for one person."""
    C = values.shape[-1]
    fmt = "XYZC" if C == 3 else "XYC"
    header = PoseHeader(0.1, PoseHeaderDimensions(100, 100, 0),
                        [PoseHeaderComponent(n, pts, [], [], fmt) for n, pts in components])
    body = NumPyPoseBody(fps=25, data=values[:, None].astype(np.float32), confidence=conf[:, None].astype(np.float32))
    with open(path, "wb") as f:
        Pose(header, body).write(f)
    return path


def test_mediapipe_maps_by_name_not_position(tmp_path):
    # Points listed in a shuffled order: value of a point = its position in the file, so the
    # canonical slot must hold the position of the right NAME.
    body = ["RIGHT_HIP", "LEFT_WRIST", "RIGHT_SHOULDER", "LEFT_SHOULDER", "RIGHT_ELBOW", "LEFT_ELBOW", "RIGHT_WRIST"]
    face = [str(i) for i in reversed(MEDIAPIPE_FACE)] + ["1"]
    hand = list(reversed(MP_HAND))
    comps = [("POSE_LANDMARKS", body), ("FACE_LANDMARKS", face), ("RIGHT_HAND_LANDMARKS", hand)]
    N = len(body) + len(face) + len(hand)
    values = np.stack([np.arange(N), np.arange(N) * 10, np.zeros(N)], -1)[None].repeat(2, 0).astype(np.float32)
    conf = np.ones((2, N))
    conf[1, 3] = 0  # LEFT_SHOULDER undetected in frame 1
    seq = read_pose_file(_write(tmp_path / "mp.pose", comps, values, conf))
    kp, mask = seq.keypoints, seq.mask
    assert kp.shape == (2, 73, 3)
    assert kp[0, CANONICAL.right_shoulder, 0] == 2 and kp[0, CANONICAL.left_shoulder, 0] == 3
    assert kp[0, 7, 0] == 1  # left wrist
    np.testing.assert_array_equal(kp[0, 1], (kp[0, 2] + kp[0, 5]) / 2)  # neck = mid-shoulder
    assert mask[0, 1] and not mask[1, 1] and not mask[1, CANONICAL.left_shoulder]
    assert not mask[:, 0].any()  # no NOSE landmark in this file
    assert kp[0, PARTS["face"][0], 0] == len(body) + 18  # MEDIAPIPE_FACE[0] is listed last of the 19
    assert kp[0, PARTS["right_hand"][0], 0] == len(body) + len(face) + 20  # WRIST listed last
    assert not mask[:, PARTS["left_hand"]].any()
    assert mask[:, PARTS["right_hand"]].all()


def test_openpose_pose_layout_names(tmp_path):
    body = ["Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip"]
    face = [f"F_{i}" for i in range(70)]
    hand = ["BASE", "T_STT", "T_BCMC", "T_MCP", "T_IP", "I_CMC", "I_MCP", "I_PIP", "I_DIP", "M_CMC", "M_MCP",
            "M_PIP", "M_DIP", "R_CMC", "R_MCP", "R_PIP", "R_DIP", "P_CMC", "P_MCP", "P_PIP", "P_DIP"]
    comps = [("hand_left_keypoints_2d", hand), ("pose_keypoints_2d", body), ("face_keypoints_2d", face)]
    N = 21 + 9 + 70
    # value = position + 1: (0, 0) is OpenPose's "not detected", so no real point sits there
    values = np.stack([np.arange(N), np.arange(N)], -1)[None].astype(np.float32) + 1  # (1, N, 2)
    conf = np.ones((1, N))
    seq = read_pose_file(_write(tmp_path / "op.pose", comps, values, conf))
    assert seq.keypoints.shape == (1, 73, 2)
    np.testing.assert_array_equal(seq.keypoints[0, :8, 0], np.arange(8) + 22)
    assert seq.keypoints[0, PARTS["face"][-1], 0] == 21 + 9 + 8 + 1  # chin = dlib 8
    assert seq.keypoints[0, PARTS["left_hand"][4], 0] == 5
    np.testing.assert_allclose(seq.keypoints[0, PARTS["left_hand"][22], 0], np.mean([4, 8, 12, 16, 20]) + 1)
    assert seq.mask[0, : 8 + 19 + 23].all() and not seq.mask[0, PARTS["right_hand"]].any()


def test_write_pose_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    for C in (2, 3):
        mask = rng.random((6, 73)) > 0.3
        kp = np.where(mask[..., None], rng.normal(size=(6, 73, C)), 0).astype(np.float32)
        seq = SignSequence(name="x", keypoints=kp, mask=mask, text="")
        write_pose(seq, tmp_path / f"x{C}.pose")
        back = read_pose_file(tmp_path / f"x{C}.pose")
        np.testing.assert_array_equal(back.keypoints, kp)
        np.testing.assert_array_equal(back.mask, mask)


def test_pose_dir_with_table_and_splits(tmp_path):
    seq = SignSequence(name="x", keypoints=np.ones((2, 73, 2), np.float32), mask=np.ones((2, 73), bool), text="")
    for split, names in (("train", ["a", "b"]), ("test", ["c"])):
        for n in names:
            write_pose(seq, tmp_path / split / f"{n}.pose")
    (tmp_path / "train" / "sentences.tsv").write_text("SENTENCE_NAME\tSENTENCE\na\tthe a sentence\n")
    (tmp_path / "test" / "sentences.tsv").write_text("SENTENCE_NAME\tSENTENCE\nc\tthe c sentence\n")
    with pytest.raises(DataError, match=r"sentences\.tsv: no row for 1 of 2 \.pose file\(s\) \(first: 'b'\)"):
        load_source(parse_source(f"pose:{tmp_path}"))
    problems: list[str] = []
    corpus = load_source(parse_source(f"pose:{tmp_path}"), problems=problems, options=ReadOptions(unlabelled=True))
    assert [(q.name, q.text) for q in corpus["train"]] == [("a", "the a sentence"), ("b", "")]
    assert [q.meta.get("unlabelled", False) for q in corpus["train"]] == [False, True]
    assert [q.name for q in corpus["test"]] == ["c"] and corpus["dev"] == []
    assert any("no row for 1 .pose file(s), kept unlabelled for pretraining only" in p for p in problems)


def test_bad_pose_files(tmp_path):
    (tmp_path / "junk.pose").write_bytes(b"\x00\x01garbage")
    with pytest.raises(DataError, match=r"junk\.pose: not a readable \.pose file"):
        read_pose_file(tmp_path / "junk.pose")
    _write(tmp_path / "odd.pose", [("SOMETHING", ["A", "B"])], np.zeros((1, 2, 2)), np.ones((1, 2)))
    with pytest.raises(DataError, match=r"odd\.pose: no known component among \['SOMETHING'\]"):
        read_pose_file(tmp_path / "odd.pose")
    with pytest.raises(DataError, match="no .pose files"):
        read_pose(_empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d


@pytest.mark.skipif(not SHARED.exists(), reason="shared .pose samples absent")
@pytest.mark.parametrize("name, frames, C", [("openpose", 93, 2), ("mediapipe", 170, 3)])
def test_real_pose_samples(name, frames, C):
    seq = read_pose_file(SHARED / f"{name}.pose")
    assert seq.keypoints.shape == (frames, 73, C) and seq.mask.shape == (frames, 73)
    assert seq.mask[:, PARTS["face"]].all()  # both samples have the full face in every frame
    hands = PARTS["left_hand"] + PARTS["right_hand"]
    assert seq.mask[:, hands].any()
    assert (seq.keypoints[~seq.mask] == 0).all()
    assert seq.mask[:, [CANONICAL.left_shoulder, CANONICAL.right_shoulder]].any()
    # the signer faces the camera: their right shoulder is on the image left
    both = seq.mask[:, CANONICAL.left_shoulder] & seq.mask[:, CANONICAL.right_shoulder]
    assert (seq.keypoints[both, CANONICAL.right_shoulder, 0] < seq.keypoints[both, CANONICAL.left_shoulder, 0]).all()


@pytest.mark.skipif(not SHARED.exists(), reason="shared .pose samples absent")
def test_real_pose_dir_source():
    with pytest.raises(DataError, match="no sentence table for 2 .pose file"):
        load_source(parse_source(f"pose:{SHARED}"))
    corpus = load_source(parse_source(f"pose:{SHARED}"), options=ReadOptions(unlabelled=True))
    assert sorted(q.name for q in corpus["train"]) == ["mediapipe", "openpose"]
    assert all(q.text == "" for q in corpus["train"])
