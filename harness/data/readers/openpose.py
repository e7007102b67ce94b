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
every point masked. A point with confidence 0 (OpenPose's "not detected") is masked with value 0.
Face points map through models.layout.DLIB_FACE; hand points keep OpenPose order; body 0..7 of
BODY_25 is our body. C = 2 (pixels). Sentences of the table with no keypoint folder, and folders with
no table row, are skipped and reported as problems (How2Sign has a few of each).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from harness.data.canonical import (
    BODY, FACE, empty_frames, find_sentence_table, make_sequence, put_hand, put_points,
    read_sentence_table, split_dirs,
)
from harness.data.record import SPLITS, Corpus, DataError, SignSequence
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


def _read_points(person: dict, key: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
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
    if not np.isfinite(values).all():
        raise DataError(f"{path}: people[0].{key} has a NaN or infinite value; expected finite numbers")
    return values[:, :2].astype(np.float32), values[:, 2] > 0


def read_frame(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
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
    return {key: _read_points(person, key, path) for key in _KEYS}


def read_sentence_folder(folder: Path, name: str, text: str, meta: dict) -> SignSequence:
    frames = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".json"), key=_frame_order)
    if not frames:
        raise DataError(f"{folder}: no .json frames; expected one OpenPose JSON per frame")
    T = len(frames)
    keypoints, mask = empty_frames(T, 2)
    parts = {key: (np.zeros((T, n, 2), np.float32), np.zeros((T, n), bool)) for key, n in _KEYS.items()}
    for t, path in enumerate(frames):
        frame = read_frame(path)
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
    return make_sequence(
        name, keypoints, mask, text, meta={"source": "openpose", "folder": str(folder), **meta}
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


def read_openpose_split(directory: Path, problems: list[str]) -> list[SignSequence]:
    table_path = find_sentence_table(directory, required=True)
    table = read_sentence_table(table_path)
    folders = _sentence_folders(directory)
    missing = [name for name in table if name not in folders]
    if missing:
        problems.append(
            f"{table_path}: {len(missing)} sentence(s) without a keypoint folder, skipped (first: {missing[0]})"
        )
    orphans = sorted(set(folders) - set(table))
    if orphans:
        problems.append(
            f"{directory}: {len(orphans)} keypoint folder(s) without a row in {table_path.name}, skipped (first: {orphans[0]})"
        )
    return [
        read_sentence_folder(folders[name], name, text, extra)
        for name, (text, extra) in table.items()
        if name in folders
    ]


def read_openpose(directory: Path, problems: list[str] | None = None) -> Corpus:
    """Read a How2Sign-style directory (see the module docstring) into a Corpus."""
    directory = Path(directory)
    problems = problems if problems is not None else []
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory; expected sentence folders of OpenPose JSON and a sentence table")
    splits = split_dirs(directory)
    if splits is None:
        return {"train": read_openpose_split(directory, problems), "dev": [], "test": []}
    return {split: read_openpose_split(splits[split], problems) if split in splits else [] for split in SPLITS}
