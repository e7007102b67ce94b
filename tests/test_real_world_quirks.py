"""Real keypoint data as it comes (harness/data/readers, harness/data/timeline.py, harness/file_hashes.py):
each quirk of real extractor output is built here with the real writers (pose-format for `.pose`,
JSON for OpenPose, the PT text format), then read through the same code a trial uses, and checked
in what the prepared sequence holds and what `inspect` prints."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pose_format")
from pose_format import Pose  # noqa: E402
from pose_format.numpy import NumPyPoseBody  # noqa: E402
from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions  # noqa: E402

from harness.cli import run_cli  # noqa: E402
from hostile_cases import pose_v0_0_bytes  # noqa: E402
from harness.config import load_profile  # noqa: E402
from harness.data.record import DataError, ReadOptions  # noqa: E402
from harness.data.readers.pose import read_pose_file  # noqa: E402
from harness.data.readers.pt import read_pt  # noqa: E402
from harness.data.sources import load_source, parse_source  # noqa: E402
from harness.data.prepare import prepare_splits  # noqa: E402
from harness.datasource import load_raw, source_identity, timeline_options  # noqa: E402
from harness.inspect_data import main  # noqa: E402
from models.layout import CANONICAL  # noqa: E402

LEFT, RIGHT = list(CANONICAL.parts["left_hand"]), list(CANONICAL.parts["right_hand"])
MP_BODY = ["NOSE", "LEFT_SHOULDER", "RIGHT_SHOULDER", "LEFT_ELBOW", "RIGHT_ELBOW", "LEFT_WRIST", "RIGHT_WRIST"]
MP_HAND = ["WRIST"] + [f"{f}_{j}" for f, js in (("THUMB", ("CMC", "MCP", "IP", "TIP")),
                                               ("INDEX_FINGER", ("MCP", "PIP", "DIP", "TIP")),
                                               ("MIDDLE_FINGER", ("MCP", "PIP", "DIP", "TIP")),
                                               ("RING_FINGER", ("MCP", "PIP", "DIP", "TIP")),
                                               ("PINKY", ("MCP", "PIP", "DIP", "TIP"))) for j in js]
N_MP = len(MP_BODY) + 2 * 21


def mediapipe_values(T: int, fps_motion: float = 25.0, z: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(T, N, 3) pixel coordinates of a MediaPipe-like signer (shoulders 200 px apart, hands
    moving slowly), z in MediaPipe's relative depth (a few units), and confidence 1."""
    t = np.arange(T)[:, None] / fps_motion  # seconds
    body = np.array([[500, 300], [600, 400], [400, 400], [650, 550], [350, 550], [620, 650], [380, 650]], float)
    hand = np.stack([np.arange(21) * 3.0, np.arange(21) * 2.0], -1)
    vals = np.zeros((T, N_MP, 3))
    vals[:, :7, :2] = body
    vals[:, 7:28, :2] = hand + [620, 650]
    vals[:, 28:, :2] = hand + [380, 650]
    vals[:, 7:, 0] += 40 * np.sin(2 * np.pi * 0.5 * t)  # hands move (0.5 Hz): frame rate is visible in them
    vals[..., 2] = 624 + np.linspace(-1, 1, N_MP)  # MediaPipe's z as pose-format stores it: ~3 units wide
    if not z:
        vals = vals[..., :2]
    return vals, np.ones((T, N_MP))


def write_mediapipe(path: Path, values: np.ndarray, conf: np.ndarray, fps: float = 25.0) -> Path:
    C = values.shape[-1]
    fmt = "XYZC" if C == 3 else "XYC"
    comps = [("POSE_LANDMARKS", MP_BODY), ("LEFT_HAND_LANDMARKS", MP_HAND), ("RIGHT_HAND_LANDMARKS", MP_HAND)]
    header = PoseHeader(0.1, PoseHeaderDimensions(1000, 1000, 640 if C == 3 else 0),
                        [PoseHeaderComponent(n, pts, [], [], fmt) for n, pts in comps])
    body = NumPyPoseBody(fps=fps, data=values[:, None].astype(np.float32), confidence=conf[:, None].astype(np.float32))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        Pose(header, body).write(f)
    return path


def table(folder: Path, names: list[str]) -> None:
    (folder / "sentences.tsv").write_text("SENTENCE_NAME\tSENTENCE\n" + "".join(f"{n}\tsentence {n}\n" for n in names))


def cfg(**data):
    return load_profile("default", {f"data.{k}": v for k, v in data.items()})


def prepare_corpus(spec: str, c) -> tuple[dict, dict]:
    """What the prepare stage computes (and inspect reports), without its rule that every split
    keeps a sequence: these sources have a train split only."""
    return prepare_splits(load_raw(spec, c), noise_threshold=c.data.noise_threshold, min_frames=1,
                          timeline=timeline_options(c))


def inspect_json(capsys, argv: list[str]) -> dict:
    assert run_cli(main, argv + ["--json"]) == 0
    out = capsys.readouterr().out

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")
    return json.loads(out, parse_constant=refuse)  # strict: NaN / Infinity / -Infinity are refused


def one_line_error(capsys, argv: list[str]) -> str:
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err.strip()


# ----------------------------------------------------------------------------- missing is missing


def test_nan_hands_are_masked_where_undetected_and_the_folder_loads(tmp_path, capsys):
    # pose-format writes MediaPipe's undetected hands as NaN with confidence 1
    values, conf = mediapipe_values(40)
    values[10:30, 7:28] = np.nan  # left hand lost for 20 frames
    values[:, 28:] = np.nan  # right hand never detected
    write_mediapipe(tmp_path / "nan_hands.pose", values, conf)
    write_mediapipe(tmp_path / "clean.pose", *mediapipe_values(40))
    table(tmp_path, ["nan_hands", "clean"])
    corpus, _ = prepare_corpus(f"pose:{tmp_path}", cfg())
    seq = next(s for s in corpus["train"] if s.name == "nan_hands")
    assert seq.num_frames == 40  # nothing dropped, nothing an error
    assert not seq.mask[10:30][:, LEFT].any() and seq.mask[:10][:, LEFT].all() and seq.mask[30:][:, LEFT].all()
    assert not seq.mask[:, RIGHT].any() and (seq.keypoints[:, RIGHT] == 0).all()  # masked, never read as 0
    assert np.isfinite(seq.keypoints).all()
    doc = inspect_json(capsys, [f"pose:{tmp_path}"])
    parts = doc["splits"]["train"]["parts_present"]
    assert parts["left_hand"]["frames"] == pytest.approx((20 + 40) / 80)  # 20 of 40 + 40 of 40 frames
    assert parts["right_hand"]["frames"] == pytest.approx(40 / 80) and parts["body"]["frames"] == 1.0


def test_zero_confidence_all_zero_and_low_confidence_points(tmp_path):
    values, conf = mediapipe_values(6)
    conf[:, 7] = 0.0  # left wrist: confidence 0
    values[:, 8] = 0.0  # left THUMB_CMC: all-zero point with confidence 1
    conf[:, 9] = 0.001  # left THUMB_MCP: visibility 0.001
    path = write_mediapipe(tmp_path / "a.pose", values, conf)
    seq = read_pose_file(path, options=ReadOptions(min_confidence=0.0))
    assert not seq.mask[:, LEFT[0]].any() and not seq.mask[:, LEFT[1]].any()
    assert seq.mask[:, LEFT[2]].all()  # data.min_confidence 0 keeps every detection
    strict = read_pose_file(path, options=ReadOptions(min_confidence=0.1))
    assert not strict.mask[:, LEFT[2]].any() and strict.mask[:, LEFT[3]].all()


def test_the_default_min_confidence_drops_near_zero_detections(tmp_path, capsys):
    # What real extractors write below a detection: OpenPose's near-0 hand scores, MediaPipe's visibility 0.001
    values, conf = mediapipe_values(10)
    conf[:, 7:28] = 0.001  # the left hand (wrist included) at visibility 0.001 in every frame
    conf[:5, 28:49] = 0.05  # the right hand at 0.05 in the first 5 frames ...
    conf[5:, 28:49] = 0.15  # ... and 0.15 in the others
    write_mediapipe(tmp_path / "low.pose", values, conf)
    table(tmp_path, ["low"])
    assert cfg().data.min_confidence == 0.1 and ReadOptions().min_confidence == 0.1  # one default
    seq = load_raw(f"pose:{tmp_path}", cfg())["train"][0]
    assert not seq.mask[:, LEFT].any()
    assert not seq.mask[:5, RIGHT].any() and seq.mask[5:, RIGHT].all()
    assert seq.mask[:, CANONICAL.left_shoulder].all() and seq.mask[:, CANONICAL.right_shoulder].all()
    assert read_pose_file(tmp_path / "low.pose").mask.tolist() == seq.mask.tolist()  # the reader alone: the same
    parts = inspect_json(capsys, [f"pose:{tmp_path}"])["splits"]["train"]["parts_present"]
    assert parts["left_hand"]["frames"] == 0.0 and parts["right_hand"]["frames"] == 0.5
    everything = inspect_json(capsys, [f"pose:{tmp_path}", "--set", "data.min_confidence=0"])
    assert everything["splits"]["train"]["parts_present"]["left_hand"]["frames"] == 1.0


def test_sequence_without_usable_shoulders_is_skipped_by_name(tmp_path, capsys):
    values, conf = mediapipe_values(8)
    values[:, 1] = np.nan  # left shoulder never detected
    write_mediapipe(tmp_path / "noshoulder.pose", values, conf)
    write_mediapipe(tmp_path / "ok.pose", *mediapipe_values(8))
    table(tmp_path, ["noshoulder", "ok"])
    assert run_cli(main, [f"pose:{tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "skipped: 0 short, 1 without shoulders" in out
    assert "    skipped noshoulder: no usable shoulders: no frame with both shoulders present" in out
    assert "noshoulder: no frame has both shoulders" in out  # the problem line names it too


# ----------------------------------------------------------------------------- time as recorded


def _op_person(t: int) -> dict:
    def trip(n, base):
        return [v for k in range(n) for v in (base + k + t, base + 2 * k + 1, 0.9)]
    body = trip(25, 0)
    body[2 * 3:2 * 3 + 3] = [400.0 + t, 400.0, 0.9]  # right shoulder
    body[5 * 3:5 * 3 + 3] = [600.0 + t, 400.0, 0.9]  # left shoulder
    return {"pose_keypoints_2d": body, "face_keypoints_2d": trip(70, 100),
            "hand_left_keypoints_2d": trip(21, 200), "hand_right_keypoints_2d": trip(21, 300)}


def openpose_folder(root: Path, numbers: list[int], person=_op_person, fps: str | None = None) -> Path:
    folder = root / "s1"
    folder.mkdir(parents=True)
    for n in numbers:
        doc = {"version": 1.3, "people": [person(n)]}
        (folder / f"s1_{n:012d}_keypoints.json").write_text(json.dumps(doc))
    extra = ("\tFPS", f"\t{fps}") if fps else ("", "")
    (root / "table.tsv").write_text(f"SENTENCE_NAME\tSENTENCE{extra[0]}\ns1\tone sentence{extra[1]}\n")
    return root


def test_openpose_gaps_keep_their_place_in_time(tmp_path, capsys):
    # 17 files numbered 7 to 130 (frames deleted from the folder): 124 frames, 107 of them missing
    numbers = [7, 8, 9, 10, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 130]
    root = openpose_folder(tmp_path / "op", numbers)
    corpus, _ = prepare_corpus(f"openpose:{root}", cfg())
    seq = corpus["train"][0]
    assert seq.num_frames == 124
    recorded = [n - 7 for n in numbers]
    assert seq.mask[recorded].any(axis=1).all()
    assert not seq.mask[[t for t in range(124) if t not in recorded]].any()  # masked in place, not dropped
    assert seq.meta["missing_frames"] == [6] + list(range(17, 123))
    doc = inspect_json(capsys, [f"openpose:{root}"])
    gaps = doc["splits"]["train"]["gaps"]
    assert gaps["missing_frames"] == 107 and gaps["sequences"] == 1
    assert gaps["per_sequence"][0]["runs"] == [[6, 1], [17, 106]]
    assert doc["splits"]["train"]["frames"] == [124] and doc["splits"]["train"]["dropped_frames"] == 0
    assert run_cli(main, [f"openpose:{root}"]) == 0
    text = capsys.readouterr().out
    assert "gaps: 107 missing frames in 1 sequence(s) (0 interpolated)" in text
    assert "s1: 107 missing, 0 filled (start+length: 6+1, 17+106)" in text
    assert "fps recorded: - (1 not recorded, taken as 25); dims as read: C = 2" in text


def test_gaps_interpolate_up_to_max_gap(tmp_path):
    numbers = [0, 1, 2, 4, 5, 6, 20, 21]  # a 1-frame gap (3) and a 13-frame gap (7..19)
    root = openpose_folder(tmp_path / "op", numbers)
    corpus, _ = prepare_corpus(f"openpose:{root}", cfg(gaps="interpolate", max_gap=5))
    seq = corpus["train"][0]
    assert seq.num_frames == 22 and seq.meta["missing_frames"] == list(range(7, 20))  # the long gap stays
    assert seq.mask[3].any() and not seq.mask[7:20].any()
    # frame 3 is halfway between 2 and 4 (after the same normalization)
    np.testing.assert_allclose(seq.keypoints[3][seq.mask[3]], ((seq.keypoints[2] + seq.keypoints[4]) / 2)[seq.mask[3]],
                               atol=1e-6)


def test_a_30_fps_pose_file_is_resampled_to_25(tmp_path, capsys):
    values, conf = mediapipe_values(60, fps_motion=30.0)  # 2 s at 30 fps
    write_mediapipe(tmp_path / "fast.pose", values, conf, fps=30.0)
    table(tmp_path, ["fast"])
    corpus, report = prepare_corpus(f"pose:{tmp_path}", cfg())
    seq = corpus["train"][0]
    assert seq.num_frames == 50 and seq.meta["fps"] == 25.0 and seq.meta["fps_source"] == 30.0  # still 2 s
    # new frame k is at k / 25 s: the hand's x is the recording's at that time (its motion is linear
    # between frames only approximately, so compare with the sine at 25 fps within a pixel's share)
    same = cfg(fps=30.0)
    orig = prepare_corpus(f"pose:{tmp_path}", same)[0]["train"][0]
    assert orig.num_frames == 60
    scale = seq.meta["preprocess"]["scale"]
    t = np.arange(50) / 25.0
    expected = (40 * np.sin(2 * np.pi * 0.5 * t) + 620 - 500) / scale  # left wrist x minus the centre
    np.testing.assert_allclose(seq.keypoints[:, LEFT[0], 0], expected, atol=0.01)
    doc = inspect_json(capsys, [f"pose:{tmp_path}"])
    assert doc["splits"]["train"]["fps_recorded"] == [30.0] and doc["params"]["fps"] == 25.0
    assert any("recorded at 30 fps resampled to 25 fps" in n for n in doc["notes"])
    assert report["notes"] == doc["notes"]


# ----------------------------------------------------------------------------- coordinates


def test_mediapipe_z_is_dropped_by_default_and_refused_as_3d(tmp_path, capsys):
    write_mediapipe(tmp_path / "mp.pose", *mediapipe_values(5))
    table(tmp_path, ["mp"])
    assert read_pose_file(tmp_path / "mp.pose").keypoints.shape[-1] == 3  # the reader keeps what the file has
    corpus, report = prepare_corpus(f"pose:{tmp_path}", cfg())
    assert corpus["train"][0].keypoints.shape == (5, 73, 2)
    assert any("z dropped from 1 sequence(s): mediapipe z is not in x/y's units" in n for n in report["notes"])
    err = one_line_error(capsys, [f"pose:{tmp_path}", "--set", "data.dims=3"])
    assert "mp.pose: data.dims is 3 but its z is mediapipe's relative depth" in err


def test_pt_z_is_kept_and_data_dims_2_drops_it(tmp_path):
    from harness.data.readers.pt import write_pt
    from harness.data.record import SignSequence
    kp = np.random.default_rng(0).normal(size=(4, 73, 3)).astype(np.float32)
    mask = np.ones((4, 73), bool)
    mask[:, list(CANONICAL.parts["face"])] = False
    seqs = [SignSequence(f"s{i}", np.where(mask[..., None], kp, 0), mask, f"text {i}") for i in range(2)]
    write_pt({"train": seqs, "dev": seqs[:1], "test": seqs[:1]}, tmp_path)
    assert prepare_corpus(f"pt:{tmp_path}", cfg())[0]["train"][0].keypoints.shape[-1] == 3
    assert prepare_corpus(f"pt:{tmp_path}", cfg(dims=2))[0]["train"][0].keypoints.shape[-1] == 2


def _seqs(n: int, C: int, face: bool, T: int = 20) -> list:
    from harness.data.record import SignSequence
    kp = np.random.default_rng(C).normal(size=(T, 73, C)).astype(np.float32)
    mask = np.ones((T, 73), bool)
    if not face:
        mask[:, list(CANONICAL.parts["face"])] = False
    return [SignSequence(f"s{i}", np.where(mask[..., None], kp, 0), mask, f"text {i}", meta={"fps": 25.0})
            for i in range(n)]


def test_mixing_a_3d_corpus_without_face_and_a_2d_one_with_face():
    from harness.datasource import mixing
    pt_like = {"train": _seqs(2, 3, face=False), "dev": _seqs(1, 3, face=False), "test": _seqs(1, 3, face=False)}
    op_like = {"train": _seqs(3, 2, face=True), "dev": [], "test": []}
    parts = ("body", "face", "left_hand", "right_hand")
    m = mixing(pt_like, op_like, "pt:A", "openpose:B", parts)
    assert (m.coords, m.drop_main_z, m.drop_extra_z) == (2, True, False)
    assert m.notes[0].startswith("z dropped from pt:A (3D) to match openpose:B's 2D, in every stage of this trial")
    assert "face masked in openpose:B because pt:A never shows it" in m.notes[1]
    main, extra = m.main(pt_like), m.extra(op_like)
    assert {s.keypoints.shape for split in main.values() for s in split} == {(20, 73, 2)}
    assert len(extra) == 3 and all(s.keypoints.shape == (20, 73, 2) for s in extra)
    assert not any(s.mask[:, list(CANONICAL.parts["face"])].any() for s in extra)
    assert all(s.mask[:, list(CANONICAL.parts["left_hand"])].all() for s in extra)  # the rest is kept
    # the other way round: the extra corpus loses z, the main one keeps everything
    back = mixing(op_like, pt_like, "openpose:B", "pt:A", parts)
    assert (back.drop_main_z, back.drop_extra_z) == (False, True) and back.main(op_like) is op_like
    assert back.notes == ("z dropped from pt:A (3D) to match openpose:B's 2D",
                          "layout: both read into the canonical 73-point layout; face absent from pt:A "
                          "(masked there, never zero-filled)")
    same = mixing(op_like, op_like, "openpose:B", "openpose:C", parts)
    assert same.notes[0] == "both 2D (x, y), nothing dropped" and "the same parts shown" in same.notes[1]
    with pytest.raises(DataError, match="pretrain.extra_source openpose:C: no train sequences"):
        mixing(op_like, {"train": [], "dev": op_like["train"], "test": []}, "openpose:B", "openpose:C", parts)


def test_a_trial_mixes_its_extra_source_for_every_stage(tmp_path):
    from types import SimpleNamespace

    from harness.stages.prepare import _ready
    from harness.stages.pretrain import training_sequences
    c = load_profile("debug", {"pretrain.extra_source": "openpose:B"})
    main = {"train": _seqs(2, 3, face=False, T=40), "dev": _seqs(1, 3, face=False, T=40),
            "test": _seqs(1, 3, face=False, T=40)}
    said: list[str] = []
    ctx = SimpleNamespace(cfg=c, prepare_source=lambda spec: {"train": _seqs(3, 2, face=True, T=40), "dev": [],
                                                               "test": []},
                          runtime=SimpleNamespace(say=said.append))
    prepared = _ready(ctx, main)
    assert prepared.num_coords == 2  # one model reads both: the main corpus's z is dropped for every stage
    assert {s.keypoints.shape[-1] for split in (prepared.corpus, prepared.full) for seqs in split.values()
            for s in seqs} == {2}
    assert prepared.mixing.drop_main_z and len(prepared.extra) == 3
    seqs = training_sequences(SimpleNamespace(cfg=c, inputs={"prepare": prepared}))
    assert len(seqs) == 5 and {s.keypoints.shape[-1] for s in seqs} == {2}
    assert not any(s.mask[:, list(CANONICAL.parts["face"])].any() for s in seqs)
    assert said and "z dropped from synth (3D) to match openpose:B's 2D" in said[0]


def test_inspect_says_how_an_extra_source_is_mixed(tmp_path, capsys):
    from harness.data.readers.pt import write_pt
    seqs = _seqs(2, 3, face=False, T=30)
    write_pt({"train": seqs, "dev": seqs[:1], "test": seqs[:1]}, tmp_path / "pt")
    write_mediapipe(tmp_path / "mp" / "a.pose", *mediapipe_values(30, z=False), fps=30.0)
    table(tmp_path / "mp", ["a"])
    argv = [f"pt:{tmp_path / 'pt'}", "--set", f"pretrain.extra_source=pose:{tmp_path / 'mp'}"]
    doc = inspect_json(capsys, argv)
    x = doc["extra_source"]
    assert x["source"] == f"pose:{tmp_path / 'mp'}" and x["sequences"] == 1 and x["coords"] == [2]
    assert x["fps"] == "recorded at 30 fps, 1 of 1 sequence(s) resampled to data.fps 25"
    assert x["mixing"][0].startswith(f"z dropped from pt:{tmp_path / 'pt'} (3D) to match pose:{tmp_path / 'mp'}'s 2D")
    assert "face absent from pose:" not in x["mixing"][1] and x["parts_present"]["face"]["frames"] == 0.0
    assert run_cli(main, argv) == 0
    text = capsys.readouterr().out
    assert f"[pretrain.extra_source pose:{tmp_path / 'mp'}] train sequences: 1 kept of 1 (pretraining only)" in text
    assert f"  mixing: z dropped from pt:{tmp_path / 'pt'} (3D)" in text
    assert "  mixing: layout: both read into the canonical 73-point layout" in text


# ----------------------------------------------------------------------------- broken files


def test_truncated_pose_file_is_refused(tmp_path, capsys):
    path = write_mediapipe(tmp_path / "cut.pose", *mediapipe_values(40))
    table(tmp_path, ["cut"])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.pose: truncated \.pose file: the header promises 40 frames"):
        read_pose_file(path)
    err = one_line_error(capsys, [f"pose:{path}"])
    assert "cut.pose: truncated .pose file" in err


def write_pose_v0_0(path: Path, values: np.ndarray, conf: np.ndarray, fps: int = 24) -> Path:
    comps = [("POSE_LANDMARKS", MP_BODY), ("LEFT_HAND_LANDMARKS", MP_HAND), ("RIGHT_HAND_LANDMARKS", MP_HAND)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pose_v0_0_bytes(comps, values, conf, fps))
    return path


def test_truncated_version_0_0_pose_file_is_refused(tmp_path, capsys):
    values, conf = mediapipe_values(40, z=False)
    path = write_pose_v0_0(tmp_path / "old.pose", values, conf)
    table(tmp_path, ["old"])
    whole = read_pose_file(path)
    assert whole.num_frames == 40 and whole.meta["fps"] == 24.0  # pose-format reads the whole file
    np.testing.assert_allclose(whole.keypoints[:, CANONICAL.left_shoulder], values[:, 1], atol=1e-4)
    frame = 2 + 2 + N_MP * 3 * 4  # people count, person id, (x, y, c) per point
    body_start = len(path.read_bytes()) - 40 * frame
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    t = (len(data) // 2 - body_start) // frame  # the frame the cut falls in
    with pytest.raises(DataError, match=rf"old\.pose: truncated \.pose file \(version 0\.0\): the header promises 40 "
                                        rf"frames but the {len(data) // 2} bytes end inside frame {t} "):
        read_pose_file(path)
    path.write_bytes(data[: body_start + 3 * frame])  # cut at a frame boundary: still 37 frames short
    err = one_line_error(capsys, [f"pose:{tmp_path}"])
    assert f"old.pose: truncated .pose file (version 0.0): the header promises 40 frames" in err
    assert "end inside frame 3 " in err


def test_overflowing_values_name_the_users_file(tmp_path, capsys):
    values, conf = mediapipe_values(3)
    values[1, 8, 0] = np.inf  # what a float32 file holds for 1e39
    path = write_mediapipe(tmp_path / "inf.pose", values, conf)
    with pytest.raises(DataError, match=r"inf\.pose, frame 1: coordinate inf overflows float32 or is absurdly large"):
        read_pose_file(path)
    values[1, 8, 0] = 3e30  # finite float32, but no image is that wide
    write_mediapipe(path, values, conf)
    with pytest.raises(DataError, match=r"inf\.pose, frame 1: coordinate 3e\+30 overflows"):
        read_pose_file(path)

    def huge(t):
        p = _op_person(t)
        if t == 1:
            p["hand_left_keypoints_2d"][0] = 1e39
        return p
    root = openpose_folder(tmp_path / "op", [0, 1, 2], person=huge)
    err = one_line_error(capsys, [f"openpose:{root}"])
    assert "s1_000000000001_keypoints.json: people[0].hand_left_keypoints_2d point 0 has coordinate [1e+39" in err


def test_skels_line_with_a_lost_value_is_refused_by_its_counter(tmp_path, capsys):
    frames = []
    for t in range(3):
        frames += [float(j + t + 1) for j in range(150)] + [t / 3]
    shifted = frames[:10] + frames[11:] + [0.0]  # one value lost in frame 0, padding at the end: still 3 frames
    for name, line in (("train", frames), ("dev", frames), ("test", shifted)):
        (tmp_path / f"{name}.skels").write_text(" ".join(f"{v:.4f}" for v in line) + "\n")
        (tmp_path / f"{name}.text").write_text("a sentence .\n")
    with pytest.raises(DataError, match=r"test\.skels, line 1, frame 0: counter value 2; expected 0/3 = 0\.0000"):
        read_pt(tmp_path)
    err = one_line_error(capsys, [f"pt:{tmp_path}"])
    assert "test.skels, line 1, frame 0: counter value" in err and "a value was lost or added before it" in err


def test_nan_in_skels_is_a_missing_joint(tmp_path):
    line = []
    for t in range(2):
        line += [float(j + 1) for j in range(150)] + [t / 2]
    line[3 * 20] = float("nan")  # frame 0, joint 20 (a left-hand joint) x
    (tmp_path / "train.skels").write_text(" ".join(str(v) for v in line) + "\n")
    (tmp_path / "train.text").write_text("a .\n")
    seq = read_pt(tmp_path)["train"][0]
    assert not seq.mask[0, LEFT[12]] and seq.mask[1, LEFT[12]] and seq.mask[0, LEFT[11]]
    assert np.isfinite(seq.keypoints).all()


def test_sentence_tables_missing_wrong_or_not_matching(tmp_path, capsys):
    write_mediapipe(tmp_path / "a.pose", *mediapipe_values(4))
    write_mediapipe(tmp_path / "b.pose", *mediapipe_values(4))
    err = one_line_error(capsys, [f"pose:{tmp_path}"])
    assert "no sentence table for 2 .pose file(s)" in err and "data.unlabelled: true" in err
    (tmp_path / "t.tsv").write_text("SENTENCE_NAME\tSENTENCE\nx\tnone of them\n")
    err = one_line_error(capsys, [f"pose:{tmp_path}"])
    assert "t.tsv: none of its 1 SENTENCE_NAME values matches the 2 .pose file(s)" in err
    (tmp_path / "t.tsv").write_text("SENTENCE_NAME\tSENTENCE\na\tthe a sentence\n")
    err = one_line_error(capsys, [f"pose:{tmp_path}"])
    assert "t.tsv: no row for 1 of 2 .pose file(s) (first: 'b')" in err
    doc = inspect_json(capsys, [f"pose:{tmp_path}", "--set", "data.unlabelled=true"])
    assert doc["splits"]["train"]["unlabelled"] == 1 and doc["splits"]["train"]["sequences"] == 2
    (tmp_path / "t.tsv").write_text("SENTENCE_NAME\nb\n")
    err = one_line_error(capsys, [f"pose:{tmp_path}"])
    assert "t.tsv, line 1: no SENTENCE column" in err


# ----------------------------------------------------------------------------- the data cache


def test_a_corrected_file_with_the_same_size_and_mtime_changes_the_key(tmp_path, monkeypatch):
    import harness.file_hashes as fh
    monkeypatch.setenv("UNIGLOR_HASH_CACHE", str(tmp_path / "hashes.json"))
    monkeypatch.setattr(fh, "_MEMO", {})
    calls = []
    real = fh.sha256_file
    monkeypatch.setattr(fh, "sha256_file", lambda p: calls.append(p) or real(p))
    path = write_mediapipe(tmp_path / "data" / "a.pose", *mediapipe_values(4))
    table(path.parent, ["a"])
    spec, c = f"pose:{path.parent}", cfg()
    first = source_identity(spec, c)
    assert len(calls) == 2  # the .pose file and the table
    assert source_identity(spec, c) == first and len(calls) == 2  # unchanged: no re-hashing
    monkeypatch.setattr(fh, "_MEMO", {})  # a new process: the store on disk answers
    assert source_identity(spec, c) == first and len(calls) == 2
    # the corrected file copied into place as `cp -p` would: same path, same size, old mtime
    st = path.stat()
    values, conf = mediapipe_values(4)
    values[2, 9, 0] += 1.0
    write_mediapipe(path, values, conf)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    second = source_identity(spec, c)
    assert second != first and len(calls) == 3  # only the changed file was hashed again
    assert dict(second["files"])[str(path.resolve())] == real(path)


def test_unlabelled_sequences_reach_pretraining_only(tmp_path):
    from types import SimpleNamespace

    from harness.data.record import SignSequence
    from harness.stages.prepare import _ready
    c = load_profile("debug")

    def seq(name, unlabelled=False):
        s = SignSequence(name, np.ones((40, 73, 2), np.float32), np.ones((40, 73), bool), "" if unlabelled else "a b")
        if unlabelled:
            s.meta["unlabelled"] = True
        return s
    corpus = {"train": [seq("l1"), seq("u1", True)], "dev": [seq("l2")], "test": [seq("l3")]}
    prepared = _ready(SimpleNamespace(cfg=c), corpus)
    assert [s.name for s in prepared.corpus["train"]] == ["l1"] and [s.name for s in prepared.full["train"]] == ["l1"]
    assert [s.name for s in prepared.unlabelled] == ["u1"]
    from harness.stages.pretrain import training_sequences
    seqs = training_sequences(SimpleNamespace(cfg=c, inputs={"prepare": prepared}))
    assert [s.name for s in seqs] == ["l1", "u1"]  # pretraining sees both
    with pytest.raises(DataError, match="the dev split has no sequence with a sentence"):
        _ready(SimpleNamespace(cfg=c), {**corpus, "dev": [seq("u2", True)]})


def test_points_far_outside_the_image_are_flagged(tmp_path, capsys):
    values, conf = mediapipe_values(5)
    values[2, 30, 0] = 1500.0  # 50% right of a 1000-pixel-wide image
    values[3, 31, 1] = 1050.0  # 5% below: within the margin
    write_mediapipe(tmp_path / "far.pose", values, conf)
    table(tmp_path, ["far"])
    assert read_pose_file(tmp_path / "far.pose").meta["outside_frame"] == 1
    assert run_cli(main, [f"pose:{tmp_path}"]) == 0
    assert "outside the image by more than 10%: 1 present point(s) in 1 sequence(s)" in capsys.readouterr().out


SHARED_POSE = Path(__file__).resolve().parents[2] / "shared" / "data" / "pose"


@pytest.mark.skipif(not (SHARED_POSE / "mediapipe.pose").is_file(), reason="real .pose samples not present")
def test_real_version_0_1_pose_cut_at_half_or_at_a_frame_boundary(tmp_path):
    # pose-format 0.1 derives the frame count from the bytes left, so it would read a cut file as
    # fewer frames; the header's count (170 here) is what the file promised.
    data = (SHARED_POSE / "mediapipe.pose").read_bytes()
    frame = 178 * 4 * 4  # 178 points x (x, y, z, confidence) x float32
    for cut in (len(data) // 2, len(data) - 85 * frame):
        (tmp_path / "cut.pose").write_bytes(data[:cut])
        with pytest.raises(DataError, match=r"cut\.pose: truncated \.pose file: the header promises 170 frames"):
            read_pose_file(tmp_path / "cut.pose")
    (tmp_path / "whole.pose").write_bytes(data)
    assert read_pose_file(tmp_path / "whole.pose").num_frames == 170


def test_openpose_rate_from_the_tables_fps_column(tmp_path):
    root = openpose_folder(tmp_path / "op", list(range(30)), fps="30")
    seq = prepare_corpus(f"openpose:{root}", cfg())[0]["train"][0]
    assert seq.meta["fps_source"] == 30.0 and seq.num_frames == 25


def test_data_file_hashes_are_remembered_beside_the_stage_cache_and_nowhere_else(tmp_path, monkeypatch):
    import harness.file_hashes as fh
    from harness.cache import StageCache
    monkeypatch.delenv("UNIGLOR_HASH_CACHE", raising=False)
    monkeypatch.setattr(fh, "_MEMO", {})
    monkeypatch.setattr(fh, "_STORE", [])
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    data = tmp_path / "a.bin"
    data.write_bytes(b"keypoints")
    fh.file_hashes([data])  # no stage cache opened (e.g. inspect): this process only
    assert not (tmp_path / "home").exists()
    StageCache(tmp_path / "results" / "cache")
    fh.file_hashes([tmp_path / "b.bin"]) if (tmp_path / "b.bin").write_bytes(b"more") else None
    store = json.loads((tmp_path / "results" / "cache" / "file-hashes.json").read_text())
    assert list(store) == [str((tmp_path / "b.bin").resolve())]
    assert not (tmp_path / "home").exists()
