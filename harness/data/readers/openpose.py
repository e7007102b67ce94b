"""How2Sign-style OpenPose JSON folders -> canonical layout (paper section 4.2, appendix A/B.1:
How2Sign keypoints are OpenPose BODY_25 + 70 face + 2 x 21 hand points, x/y/confidence).

Layout of a source directory:
  DIR/<SENTENCE_NAME>/*.json        one OpenPose JSON per frame (frames ordered by the number in the
                                    file name, e.g. ..._000000000012_keypoints.json); the sentence
                                    folders may sit at any depth below DIR (How2Sign nests them in
                                    openpose_output/json/)
  DIR/<table>.tsv or .csv           tab-separated sentence table with SENTENCE_NAME and SENTENCE
                                    columns (How2Sign's .csv files are tab separated, with more columns)
Splits: if DIR has train/, dev/ (or val/) and test/ subfolders, each is read as above with its own
table; otherwise all of DIR is "train".

Per frame, people[0] is the signer (How2Sign has one person in view). A frame with no person has
every point masked. A point with confidence 0 or at (0, 0) (OpenPose's "not detected"), with a NaN,
or with a confidence below ReadOptions.min_confidence is masked with value 0; an infinite or absurd
value (beyond canonical.MAX_COORD, e.g. 1e39 that float32 cannot hold) is an error naming the file.

Time as recorded: a frame's place is the last number in its file name (How2Sign's
..._000000000012_keypoints.json), counted from the folder's first frame, so frames deleted from a
folder stay missing frames (all points masked) at their place: 17 files numbered 7 to 130 are 124
frames with 107 missing ones, listed in meta["missing_frames"] (what data.gaps then does with them
is harness/data/timeline.py's). OpenPose JSON records no frame rate: meta["fps"] is the sentence
table's FPS column when it has one, else None (taken as data.fps, no resampling).
Face points map through models.layout.DLIB_FACE; hand points keep OpenPose order; body 0..7 of
BODY_25 is our body. C = 2 (pixels). Sentences of the table with no keypoint folder are skipped and
reported; a keypoint folder with no table row is an error unless ReadOptions.unlabelled keeps it
for pretraining only (canonical.label_sequences).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from harness.data.canonical import (
    BODY, FACE, MAX_COORD, detected, empty_frames, find_sentence_table, label_sequences, make_sequence, put_hand,
    put_points, read_sentence_table, split_dirs,
)
from harness.data.record import MIN_CONFIDENCE, SPLITS, Corpus, DataError, ReadOptions, SignSequence
from models.layout import DLIB_FACE

_KEYS = {  # JSON key -> number of points (x, y, c triplets)
    "pose_keypoints_2d": 25,
    "face_keypoints_2d": 70,
    "hand_left_keypoints_2d": 21,
    "hand_right_keypoints_2d": 21,
}


def _frame_order(path: Path) -> tuple:
    # Natural sort: frame numbers compare as numbers even when not zero-padded.
    return tuple(int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", path.name))


def _frame_number(path: Path) -> int | None:
    numbers = re.findall(r"\d+", path.stem)
    return int(numbers[-1]) if numbers else None


def _read_points(person: dict, key: str, path: Path, min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) values and (n,) presence for one keypoint list; absent/empty list = all masked."""
    n = _KEYS[key]
    raw = person.get(key)
    if raw is None or len(raw) == 0:  # OpenPose writes [] when that detector was off
        return np.zeros((n, 2), np.float32), np.zeros(n, bool)
    if not isinstance(raw, list) or len(raw) != 3 * n:
        got = len(raw) if isinstance(raw, list) else type(raw).__name__
        raise DataError(f"{path}: people[0].{key} has {got} values; expected {3 * n} (x, y, confidence for {n} points)")
    try:
        values = np.asarray(raw, dtype=np.float64).reshape(n, 3)
    except (TypeError, ValueError):
        raise DataError(f"{path}: people[0].{key} has a non-numeric value; expected numbers") from None
    present = detected(values[:, :2], values[:, 2], min_confidence)  # (n,) NaN, (0, 0), confidence 0 are missing
    with np.errstate(invalid="ignore"):
        huge = present & ~(np.abs(values[:, :2]) <= MAX_COORD).all(-1)
    if huge.any():
        i = int(np.flatnonzero(huge)[0])
        raise DataError(f"{path}: people[0].{key} point {i} has coordinate {values[i, :2].tolist()} that overflows "
                        f"float32 or is absurdly large; expected |value| <= {MAX_COORD:g}")
    return np.where(present[:, None], values[:, :2], 0.0).astype(np.float32), present


def read_frame(path: Path, min_confidence: float = MIN_CONFIDENCE) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """One OpenPose JSON -> key -> (values, present); None when no person was detected."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: not a readable OpenPose JSON file ({err})") from None
    except RecursionError:  # arrays nested thousands deep: no OpenPose file is
        raise DataError(f"{path}: not an OpenPose JSON file (nested too deeply)") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("people"), list):
        raise DataError(f"{path}: no 'people' list; expected OpenPose JSON output")
    if not doc["people"]:
        return None
    person = doc["people"][0]
    if not isinstance(person, dict):
        raise DataError(f"{path}: people[0] is not an object; expected OpenPose JSON output")
    if not any(k in person for k in _KEYS):
        raise DataError(f"{path}: people[0] has none of {list(_KEYS)}; expected OpenPose (BODY_25) keypoints")
    return {key: _read_points(person, key, path, min_confidence) for key in _KEYS}


def _timeline(frames: list[Path]) -> list[int]:
    """Each file's place in time: its frame number minus the first one (0, 1, ... without numbers)."""
    numbers = [_frame_number(p) for p in frames]
    if any(n is None for n in numbers):
        return list(range(len(frames)))
    seen: dict[int, Path] = {}
    for n, p in zip(numbers, frames):
        if n in seen:
            raise DataError(f"{p}: frame number {n} again (first: {seen[n].name}); expected one file per frame")
        seen[n] = p
    first = min(numbers)
    return [n - first for n in numbers]


def read_sentence_folder(folder: Path, name: str, text: str, meta: dict,
                         options: ReadOptions = ReadOptions()) -> SignSequence:
    frames = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".json"), key=_frame_order)
    if not frames:
        raise DataError(f"{folder}: no .json frames; expected one OpenPose JSON per frame")
    places = _timeline(frames)
    T = max(places) + 1
    keypoints, mask = empty_frames(T, 2)
    parts = {key: (np.zeros((T, n, 2), np.float32), np.zeros((T, n), bool)) for key, n in _KEYS.items()}
    for t, path in zip(places, frames):
        frame = read_frame(path, options.min_confidence)
        if frame is None:
            continue  # no person: the frame stays all masked
        for key, (values, present) in frame.items():
            parts[key][0][t], parts[key][1][t] = values, present
    body_v, body_p = parts["pose_keypoints_2d"]
    put_points(keypoints, mask, BODY, body_v[:, :8], body_p[:, :8])
    face_v, face_p = parts["face_keypoints_2d"]
    put_points(keypoints, mask, FACE, face_v[:, list(DLIB_FACE)], face_p[:, list(DLIB_FACE)])
    put_hand(keypoints, mask, "left", *parts["hand_left_keypoints_2d"])
    put_hand(keypoints, mask, "right", *parts["hand_right_keypoints_2d"])
    missing = sorted(set(range(T)) - set(places))
    fps = None
    for col in ("FPS", "fps"):
        if meta.get(col, "").strip():
            try:
                fps = float(meta[col])
            except ValueError:
                raise DataError(f"{folder}: {col} {meta[col]!r} in the sentence table; expected a number") from None
            if not 0 < fps <= 1000:
                raise DataError(f"{folder}: {col} {meta[col]!r} in the sentence table; "
                                "expected frames per second in (0, 1000]")
    return make_sequence(
        name, keypoints, mask, text,
        meta={"source": "openpose", "folder": str(folder), **meta, "fps": fps,
              "missing_frames": missing},
    )


def _sentence_folders(directory: Path) -> dict[str, Path]:
    """Folder name -> folder, for every folder below directory that holds .json frames."""
    found: dict[str, Path] = {}
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        if any(f.lower().endswith(".json") for f in files):
            folder = Path(root)
            if folder.name in found:
                raise DataError(f"{folder}: a second folder named {folder.name!r} (first: {found[folder.name]}); expected unique sentence names")
            found[folder.name] = folder
    return found


def read_openpose_split(directory: Path, problems: list[str], options: ReadOptions = ReadOptions()) -> list[SignSequence]:
    table_path = find_sentence_table(directory, required=not options.unlabelled) if options.sentences else None
    table = read_sentence_table(table_path) if table_path else None
    folders = _sentence_folders(directory)
    texts = label_sequences(directory, table_path, table, sorted(folders), "keypoint folder", options, problems)
    names = [n for n in table if n in folders] if table else []
    names += sorted(n for n in folders if texts[n] is None)
    sequences = []
    for name in names:
        extra = table[name][1] if table and name in table else {}
        seq = read_sentence_folder(folders[name], name, texts[name] or "", extra, options)
        if texts[name] is None:
            seq.meta["unlabelled"] = True
        sequences.append(seq)
    return sequences


def read_openpose(directory: Path, problems: list[str] | None = None, options: ReadOptions = ReadOptions()) -> Corpus:
    """Read a How2Sign-style directory (see the module docstring) into a Corpus."""
    directory = Path(directory)
    problems = problems if problems is not None else []
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory; expected sentence folders of OpenPose JSON and a sentence table")
    splits = split_dirs(directory)
    if splits is None:
        return {"train": read_openpose_split(directory, problems, options), "dev": [], "test": []}
    return {split: read_openpose_split(splits[split], problems, options) if split in splits else []
            for split in SPLITS}
