"""pose-format `.pose` files -> canonical layout (paper section 4.2 "Keypoint Processing").

Read with the pose-format package. Points are mapped by component and point NAMES from the file's
header, never by position, so reduced files (e.g. MediaPipe with 128 of the 468 face points) work:

- OpenPose 137 (components pose_keypoints_2d, face_keypoints_2d, hand_left_keypoints_2d,
  hand_right_keypoints_2d; any case, _2d/_3d suffix optional): body by the BODY_25 names Nose,
  Neck, RShoulder, ...; face points by the dlib number at the end of their names (FB_0 ... FP_69)
  through models.layout.DLIB_FACE; hands by the names BASE, T_STT, ... (OpenPose order).
- MediaPipe Holistic (POSE_LANDMARKS, FACE_LANDMARKS, LEFT_HAND_LANDMARKS, RIGHT_HAND_LANDMARKS):
  body from NOSE, LEFT/RIGHT_SHOULDER/ELBOW/WRIST; the neck is not a MediaPipe landmark, so it is
  derived as the mid-shoulder, present when both shoulders are. Face by mesh index (the point
  names are the indices) through models.layout.MEDIAPIPE_FACE. Hands by WRIST, THUMB_CMC, ...
- Our own layout (component UNIGLOR73 with CANONICAL's point names), which write_pose writes.

A canonical point whose name the file lacks is masked (e.g. the reduced MediaPipe body has no NOSE).
Only the first person is used. C is the file's number of spatial dimensions (2 or 3); the
confidence dimension is dropped and, with pose-format's mask, gives the presence mask. Missing is
missing: a point is absent (masked, never an error) when pose-format masks it, when a coordinate is
NaN (how pose-format writes MediaPipe's undetected hands, with confidence 1), when its confidence is
0 or below ReadOptions.min_confidence, or (outside our own layout, where (0, 0) can be a real
origin) when all its coordinates are 0. An infinite or absurd value (beyond MAX_COORD) is an
error naming the file and frame. meta["z_units"] says whether a z is in x/y's units ("xy": our
own layout, OpenPose 3D) or MediaPipe's relative depth ("mediapipe": not in x/y's units, so the
harness drops it unless told otherwise, harness/data/timeline.py conform_dims).

The header promises a number of frames; a file with fewer bytes than those frames need is
truncated and refused, naming the frame counts (versions 0.1 and 0.2: pose-format would silently
read the frames the bytes hold) or the frame the bytes end in (version 0.0, whose frames each
say how many people they hold).

A FILE_OR_DIR source: one file is the "train" split; a directory of .pose files is "train", unless it
has train/dev(val)/test subfolders. Texts come from an optional sentence table (.tsv/.csv with
SENTENCE_NAME and SENTENCE, tab separated) beside the files, matched by file stem. A file without a
sentence (no table, or no row for it) is an error unless ReadOptions.unlabelled keeps it, with
empty text and meta["unlabelled"], for pretraining only.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np

from harness.data.canonical import (
    BODY, FACE, V, check_magnitude, detected, empty_frames, find_sentence_table, label_sequences,
    make_sequence, put_hand, put_points, read_sentence_table, split_dirs,
)
from harness.data.record import SPLITS, Corpus, DataError, ReadOptions, SignSequence
from models.layout import BODY_NAMES, CANONICAL, DLIB_FACE, MEDIAPIPE_FACE

OWN_COMPONENT = "UNIGLOR73"

_OPENPOSE_HAND = (
    "BASE", "T_STT", "T_BCMC", "T_MCP", "T_IP", "I_CMC", "I_MCP", "I_PIP", "I_DIP",
    "M_CMC", "M_MCP", "M_PIP", "M_DIP", "R_CMC", "R_MCP", "R_PIP", "R_DIP",
    "P_CMC", "P_MCP", "P_PIP", "P_DIP",
)
_MEDIAPIPE_HAND = ("WRIST",) + tuple(
    f"{finger}_{joint}"
    for finger, joints in (
        ("THUMB", ("CMC", "MCP", "IP", "TIP")),
        ("INDEX_FINGER", ("MCP", "PIP", "DIP", "TIP")),
        ("MIDDLE_FINGER", ("MCP", "PIP", "DIP", "TIP")),
        ("RING_FINGER", ("MCP", "PIP", "DIP", "TIP")),
        ("PINKY", ("MCP", "PIP", "DIP", "TIP")),
    )
    for joint in joints
)
_OPENPOSE_BODY = ("Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist")
_MEDIAPIPE_BODY = ("NOSE", None, "RIGHT_SHOULDER", "RIGHT_ELBOW", "RIGHT_WRIST",
                   "LEFT_SHOULDER", "LEFT_ELBOW", "LEFT_WRIST")  # None: the neck is derived

# Normalized component name -> (role, source point names in our order; for faces the source indices)
_COMPONENTS = {
    "POSE_KEYPOINTS": ("body", _OPENPOSE_BODY),
    "FACE_KEYPOINTS": ("face", DLIB_FACE),
    "HAND_LEFT_KEYPOINTS": ("left", _OPENPOSE_HAND),
    "HAND_RIGHT_KEYPOINTS": ("right", _OPENPOSE_HAND),
    "POSE_LANDMARKS": ("body", _MEDIAPIPE_BODY),
    "FACE_LANDMARKS": ("face", MEDIAPIPE_FACE),
    "LEFT_HAND_LANDMARKS": ("left", _MEDIAPIPE_HAND),
    "RIGHT_HAND_LANDMARKS": ("right", _MEDIAPIPE_HAND),
}
assert len(_MEDIAPIPE_HAND) == 21 and len(BODY_NAMES) == len(_OPENPOSE_BODY)


def _normalize_component(name: str) -> str:
    return re.sub(r"_[23]D$", "", name.strip().upper())


def _face_number(point: str) -> int | None:
    # OpenPose face points are "FB_0" ... "FP_69", MediaPipe's are "0" ... "467": the number is the index.
    match = re.search(r"(\d+)$", point)
    return int(match.group(1)) if match else None


_MEDIAPIPE = {"POSE_LANDMARKS", "FACE_LANDMARKS", "LEFT_HAND_LANDMARKS", "RIGHT_HAND_LANDMARKS"}


def check_complete(buffer: bytes, path: Path) -> None:
    """DataError when the body holds fewer bytes than the frames its header promises."""
    from pose_format.pose_header import PoseHeader
    from pose_format.utils.reader import BufferReader

    try:
        reader = BufferReader(buffer)
        header = PoseHeader.read(reader)
    except Exception:  # a corrupt header: Pose.read reports it, with pose-format's reason
        return
    version = round(float(header.version), 3)
    offset = reader.read_offset
    if version == 0.0:
        _check_complete_v0_0(buffer, offset, header, path)
        return
    if version not in (0.1, 0.2):  # an unknown version: Pose.read names it
        return
    head = struct.Struct("<HHH" if version == 0.1 else "<fIH")
    if len(buffer) < offset + head.size:
        raise DataError(f"{path}: truncated .pose file: {len(buffer)} bytes end inside the body header; "
                        f"expected at least {offset + head.size}")
    _, frames, people = head.unpack_from(buffer, offset)
    points = sum(len(c.points) for c in header.components)
    frame_bytes = people * points * (header.num_dims() + 1) * 4
    have = len(buffer) - offset - head.size
    if frame_bytes == 0:
        return
    held = have / frame_bytes
    # Version 0.1 stores the count as 16 bits, so longer files wrap around: compare modulo 2^16.
    promised_ok = (held == frames) if version == 0.2 else (held.is_integer() and int(held) % 65536 == frames)
    if not promised_ok:
        raise DataError(f"{path}: truncated .pose file: the header promises {frames} frames ({frames * frame_bytes} "
                        f"bytes) but {have} bytes follow the header ({held:.2f} frames); expected the whole file")


def _check_complete_v0_0(buffer: bytes, offset: int, header, path: Path) -> None:
    """Version 0.0 (pose-format's oldest, e.g. its OpenPose test file) stores each frame as its
    number of people, then per person an id and every component's points with all of the
    component's format values (x, y[, z], confidence) as float32: walk the frames the header
    promises and name the one the bytes end in."""
    head = struct.Struct("<HH")  # fps, frames
    if len(buffer) < offset + head.size:
        raise DataError(f"{path}: truncated .pose file (version 0.0): {len(buffer)} bytes end inside the body "
                        f"header; expected at least {offset + head.size}")
    _, frames = head.unpack_from(buffer, offset)
    person_bytes = 2 + 4 * sum(len(c.points) * len(c.format) for c in header.components)  # id + floats
    at = offset + head.size
    for t in range(frames):
        if at + 2 > len(buffer):
            people = None
        else:
            (people,) = struct.unpack_from("<H", buffer, at)
        if people is None or at + 2 + people * person_bytes > len(buffer):
            raise DataError(f"{path}: truncated .pose file (version 0.0): the header promises {frames} frames but the "
                            f"{len(buffer)} bytes end inside frame {t} (which starts at byte {at}); expected the whole file")
        at += 2 + people * person_bytes


FRAME_MARGIN = 0.1  # share of the image's width/height a point may lie outside it before it is flagged


def _outside_frame(keypoints: np.ndarray, mask: np.ndarray, header) -> int:
    """Present points further outside the image (header width x height) than FRAME_MARGIN of its
    size: kept (a detector extrapolating a hand just out of view is common) but counted, for
    `inspect`. 0 when the header has no image size (our own layout writes 1 x 1)."""
    w, h = float(header.dimensions.width), float(header.dimensions.height)
    if w <= 1 or h <= 1:
        return 0
    x, y = keypoints[..., 0], keypoints[..., 1]  # (T, V)
    out = (x < -FRAME_MARGIN * w) | (x > (1 + FRAME_MARGIN) * w) | (y < -FRAME_MARGIN * h) | (y > (1 + FRAME_MARGIN) * h)
    return int((out & mask).sum())


def pose_to_sequence(pose, path: Path, name: str, text: str, options: ReadOptions = ReadOptions()) -> SignSequence:
    """A pose_format.Pose (NumPyPoseBody) -> SignSequence in the canonical layout (first person)."""
    header, body = pose.header, pose.body
    data = body.data  # (T, P, N, C) masked
    T, P, N, C = data.shape
    if C not in (2, 3):
        raise DataError(f"{path}: {C} spatial dimensions; expected 2 (x, y) or 3 (x, y, z)")
    keypoints, mask = empty_frames(T, C)
    if P == 0:  # nobody in any frame
        return make_sequence(name, keypoints, mask, text, meta={"source": "pose", "file": str(path), "fps": float(body.fps)})
    values = np.asarray(np.ma.getdata(data)[:, 0], np.float32)  # (T, N, C)
    confidence = np.asarray(body.confidence)[:, 0]  # (T, N)
    base = ~np.ma.getmaskarray(data)[:, 0].any(-1) & detected(np.where(np.isnan(values), np.nan, 1.0), confidence,
                                                              options.min_confidence)  # (T, N)
    check_magnitude(values, base, f"{path}")
    nonzero = (values != 0).any(-1)  # (T, N) OpenPose and MediaPipe write undetected points as 0
    values = np.where(base[..., None], values, 0.0).astype(np.float32)

    offsets, used = {}, []
    start = 0
    for comp in header.components:
        offsets[comp.name] = (start, comp)
        start += len(comp.points)
    if start != N:
        raise DataError(f"{path}: header lists {start} points but the body has {N}; expected them equal")

    present = base.copy()
    for comp_name, (start, comp) in offsets.items():
        if comp_name != OWN_COMPONENT:
            present[:, start:start + len(comp.points)] &= nonzero[:, start:start + len(comp.points)]
    for comp_name, (start, comp) in offsets.items():
        index = {p: start + i for i, p in enumerate(comp.points)}
        if comp_name == OWN_COMPONENT:
            missing = [n for n in CANONICAL.names if n not in index]
            if missing:
                raise DataError(f"{path}: component {OWN_COMPONENT} lacks point {missing[0]!r}; expected all 73 canonical names")
            src = [index[n] for n in CANONICAL.names]
            put_points(keypoints, mask, range(V), values[:, src], present[:, src])
            used.append(comp_name)
            continue
        role = _COMPONENTS.get(_normalize_component(comp_name))
        if role is None:
            continue  # e.g. POSE_WORLD_LANDMARKS: not part of our layout
        kind, names = role
        used.append(comp_name)
        if kind == "face":
            by_number = {_face_number(p): start + i for i, p in enumerate(comp.points)}
            dst = [FACE[j] for j, k in enumerate(names) if k in by_number]
            src = [by_number[k] for k in names if k in by_number]
            put_points(keypoints, mask, dst, values[:, src], present[:, src])
        elif kind == "body":
            dst = [BODY[j] for j, n in enumerate(names) if n is not None and n in index]
            src = [index[n] for n in names if n is not None and n in index]
            put_points(keypoints, mask, dst, values[:, src], present[:, src])
            if names[1] is None:  # MediaPipe: neck = mid-shoulder
                rsh, lsh = CANONICAL.right_shoulder, CANONICAL.left_shoulder
                both = mask[:, rsh] & mask[:, lsh]
                keypoints[:, BODY[1]] = np.where(both[:, None], (keypoints[:, rsh] + keypoints[:, lsh]) / 2, 0.0)
                mask[:, BODY[1]] = both
        else:
            joints = np.zeros((T, 21, C), np.float32)
            ok = np.zeros((T, 21), bool)
            for j, n in enumerate(names):
                if n in index:
                    joints[:, j], ok[:, j] = values[:, index[n]], present[:, index[n]]
            put_hand(keypoints, mask, kind, joints, ok)
    if not used:
        raise DataError(
            f"{path}: no known component among {[c.name for c in header.components]}; expected OpenPose "
            f"(pose_keypoints_2d, ...), MediaPipe Holistic (POSE_LANDMARKS, ...) or {OWN_COMPONENT}"
        )
    outside = _outside_frame(keypoints, mask, header)
    z_units = None
    if C == 3:
        z_units = "mediapipe" if any(_normalize_component(c) in _MEDIAPIPE for c in used) else "xy"
    return make_sequence(
        name, keypoints, mask, text,
        meta={"source": "pose", "file": str(path), "fps": float(body.fps), "components": used, "z_units": z_units,
              "outside_frame": outside},
    )


def read_pose_file(path: Path, name: str | None = None, text: str = "",
                   options: ReadOptions = ReadOptions()) -> SignSequence:
    from pose_format import Pose  # lazy: only this source needs the package

    path = Path(path)
    try:
        buffer = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    check_complete(buffer, path)
    try:
        pose = Pose.read(buffer)
    except Exception as err:  # pose-format raises assorted errors on a corrupt buffer
        raise DataError(f"{path}: not a readable .pose file ({type(err).__name__}: {err})") from None
    return pose_to_sequence(pose, path, name or path.stem, text, options)


def _read_pose_files(directory: Path, files: list[Path], options: ReadOptions, problems: list[str]) -> list[SignSequence]:
    # The files first: a broken file is the more basic problem than a missing or partial table.
    sequences = [read_pose_file(p, p.stem, "", options) for p in files]
    table_path = find_sentence_table(directory, required=False) if options.sentences else None
    table = read_sentence_table(table_path) if table_path else None
    texts = label_sequences(directory, table_path, table, [p.stem for p in files], ".pose file", options, problems)
    for p, seq in zip(files, sequences):
        seq.text = texts[p.stem] or ""
        if texts[p.stem] is None:
            seq.meta["unlabelled"] = True
    return sequences


def read_pose(path: Path, problems: list[str] | None = None, options: ReadOptions = ReadOptions()) -> Corpus:
    """A .pose file or a directory of them (see the module docstring) -> Corpus."""
    path = Path(path)
    problems = problems if problems is not None else []
    if path.is_file():
        return {"train": _read_pose_files(path.parent, [path], options, problems), "dev": [], "test": []}

    if not path.is_dir():  # /dev/null, a socket, a missing path
        raise DataError(f"{path}: {'does not exist' if not path.exists() else 'not a file or folder'}; "
                        f"expected a .pose file or a folder of them")

    def folder(directory: Path) -> list[SignSequence]:
        files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix == ".pose")
        return _read_pose_files(directory, files, options, problems) if files else []

    splits = split_dirs(path)
    if splits is None:
        corpus = {"train": folder(path), "dev": [], "test": []}
    else:
        corpus = {s: folder(splits[s]) if s in splits else [] for s in SPLITS}
    if not any(corpus.values()):
        raise DataError(f"{path}: no .pose files; expected *.pose files or train/dev/test subfolders of them")
    return corpus


def write_pose(sequence: SignSequence, path: Path, fps: float | None = None) -> None:
    """Write one sequence as a .pose file with one component, UNIGLOR73 (CANONICAL's point names
    and edges), which read_pose reads back exactly. Confidence is the mask (1 present, 0 absent)."""
    from pose_format import Pose
    from pose_format.numpy import NumPyPoseBody
    from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions

    C = sequence.keypoints.shape[-1]
    fps = float(fps if fps is not None else sequence.meta.get("fps", 25.0))
    component = PoseHeaderComponent(
        name=OWN_COMPONENT,
        points=list(CANONICAL.names),
        limbs=[(int(a), int(b)) for a, b in CANONICAL.edges],
        colors=[(255, 255, 255)] * len(CANONICAL.edges),
        point_format="XYZC" if C == 3 else "XYC",
    )
    header = PoseHeader(version=0.1, dimensions=PoseHeaderDimensions(width=1, height=1, depth=1 if C == 3 else 0),
                        components=[component])
    mask = sequence.mask.astype(bool)
    data = np.where(mask[..., None], sequence.keypoints, 0.0).astype(np.float32)[:, None]  # (T, 1, V, C)
    confidence = mask.astype(np.float32)[:, None]  # (T, 1, V)
    body = NumPyPoseBody(fps=fps, data=np.ma.masked_array(data, mask=np.repeat(~mask[:, None, :, None], C, -1)),
                         confidence=confidence)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        Pose(header, body).write(f)
