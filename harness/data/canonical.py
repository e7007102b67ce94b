"""Mapping any source layout into the canonical 73-point layout (models.layout.CANONICAL; paper
section 4.2 "Keypoint Processing", appendix B figure 6): the helpers every reader uses.

Points a source lacks or failed to detect have mask False and value 0; the two derived hand points
(palm centre, fingertip centroid) are computed here from the 21 hand joints and are present only
when all of their inputs are. Also the sentence tables and split folders several readers share.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.data.record import SPLITS, Corpus, DataError, ReadOptions, SignSequence
from models.layout import CANONICAL, FINGERTIP_CENTROID_FROM, PALM_CENTRE_FROM

V = CANONICAL.num_points  # 73
BODY = CANONICAL.parts["body"]
FACE = CANONICAL.parts["face"]
HANDS = {"left": CANONICAL.parts["left_hand"], "right": CANONICAL.parts["right_hand"]}


def complete_splits(corpus: Corpus) -> Corpus:
    """All three SPLITS as keys; an unknown split name is an error."""
    unknown = set(corpus) - set(SPLITS)
    if unknown:
        raise DataError(f"corpus has unknown split(s) {sorted(unknown)}; expected {list(SPLITS)}")
    return {split: list(corpus.get(split, [])) for split in SPLITS}


# ----------------------------------------------------------------------------------------------
# Canonical assembly
# ----------------------------------------------------------------------------------------------


def empty_frames(num_frames: int, num_coords: int) -> tuple[np.ndarray, np.ndarray]:
    """All-absent canonical arrays: keypoints (T, V, C) float32 zeros, mask (T, V) False."""
    return (
        np.zeros((num_frames, V, num_coords), np.float32),  # (T, V, C)
        np.zeros((num_frames, V), bool),  # (T, V)
    )


def put_points(
    keypoints: np.ndarray, mask: np.ndarray, dst: list[int] | tuple[int, ...],
    values: np.ndarray, present: np.ndarray,
) -> None:
    """Write source points into canonical slots dst: values (T, n, C), present (T, n)."""
    dst = list(dst)
    keypoints[:, dst] = np.where(present[..., None], values, 0.0)
    mask[:, dst] = present


def put_hand(
    keypoints: np.ndarray, mask: np.ndarray, side: str, joints: np.ndarray, present: np.ndarray
) -> None:
    """Write a 21-joint hand (OpenPose/MediaPipe order) and its two derived points.

    joints (T, 21, C), present (T, 21). side is "left" or "right" (the signer's own).
    """
    part = HANDS[side]
    put_points(keypoints, mask, part[:21], joints, present)
    for slot, sources in ((part[21], PALM_CENTRE_FROM), (part[22], FINGERTIP_CENTROID_FROM)):
        src = list(sources)
        ok = present[:, src].all(axis=1)  # (T,) a derived point needs every input
        centre = joints[:, src].mean(axis=1)  # (T, C)
        keypoints[:, slot] = np.where(ok[:, None], centre, 0.0)
        mask[:, slot] = ok


# No image (pixels) or body (metres, shoulder lengths) coordinate comes near this: a larger value is
# a corrupt file or an overflow, not a position (float32 itself ends at 3.4e38).
MAX_COORD = 1e6


def detected(values: np.ndarray, confidence: np.ndarray | None, min_confidence: float) -> np.ndarray:
    """Presence of source points by the extractors' own "not detected" conventions.

    values (..., C), confidence (...) or None -> (...) bool. A point is missing when any coordinate
    is NaN (pose-format's MediaPipe hands), when all its coordinates are exactly 0 (OpenPose's
    undetected points), when its confidence is 0, or below min_confidence.
    """
    present = ~np.isnan(values).any(-1) & (values != 0).any(-1)
    if confidence is not None:
        conf = np.nan_to_num(np.asarray(confidence, np.float64), nan=0.0)
        present &= (conf > 0) & (conf >= min_confidence)
    return present


def check_magnitude(values: np.ndarray, present: np.ndarray, where: str, frame_axis: int = 0) -> None:
    """DataError naming the first frame whose present point is infinite or beyond +-MAX_COORD
    (an overflow of float32, or a corrupt value). values (..., C), present (...)."""
    with np.errstate(invalid="ignore"):
        bad = present[..., None] & ~(np.abs(values) <= MAX_COORD)
    if bad.any():
        at = np.argwhere(bad)[0]
        value = float(values[tuple(at)])
        raise DataError(f"{where}, frame {int(at[frame_axis])}: coordinate {value:g} overflows float32 or is absurdly "
                        f"large; expected |value| <= {MAX_COORD:g}")


def finite_or_error(values: np.ndarray, where: str, frame_axis: int = 0) -> None:
    """DataError naming the first frame with a NaN or infinite value."""
    bad = ~np.isfinite(values)
    if bad.any():
        frame = int(np.argwhere(bad)[0][frame_axis])
        raise DataError(f"{where}, frame {frame}: NaN or infinite coordinate; expected finite numbers")


def make_sequence(
    name: str, keypoints: np.ndarray, mask: np.ndarray, text: str, **kwargs
) -> SignSequence:
    """A SignSequence with dtypes fixed and masked values zeroed (never read as positions)."""
    keypoints = np.where(mask[..., None], keypoints, 0.0).astype(np.float32)
    return SignSequence(name=name, keypoints=keypoints, mask=mask.astype(bool), text=text, **kwargs)


# ----------------------------------------------------------------------------------------------
# Sentence tables and split folders
# ----------------------------------------------------------------------------------------------


def read_sentence_table(path: Path) -> dict[str, tuple[str, dict]]:
    """A How2Sign-style sentence table: tab separated, a header with SENTENCE_NAME and SENTENCE
    (more columns allowed). Returns name -> (sentence, other columns)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the sentence table ({err})") from None
    if not lines:
        raise DataError(f"{path}, line 1: empty file; expected a header with SENTENCE_NAME and SENTENCE")
    # Tab separated without quoting: How2Sign's sentences contain quote characters.
    header = [h.strip() for h in lines[0].split("\t")]
    for col in ("SENTENCE_NAME", "SENTENCE"):
        if col not in header:
            raise DataError(
                f"{path}, line 1: no {col} column in the tab-separated header {header}; "
                "expected SENTENCE_NAME and SENTENCE"
            )
    i_name, i_text = header.index("SENTENCE_NAME"), header.index("SENTENCE")
    table: dict[str, tuple[str, dict]] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(header):
            raise DataError(
                f"{path}, line {lineno}: {len(cells)} tab-separated cells; expected {len(header)} as in the header"
            )
        name = cells[i_name].strip()
        if name in table:
            raise DataError(f"{path}, line {lineno}: duplicate SENTENCE_NAME {name!r}")
        extra = {h: c for h, c in zip(header, cells) if h not in ("SENTENCE_NAME", "SENTENCE")}
        table[name] = (cells[i_text].strip(), extra)
    return table


def find_sentence_table(directory: Path, required: bool) -> Path | None:
    """The one .tsv/.csv file directly in directory (How2Sign's .csv files are tab separated)."""
    tables = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in (".tsv", ".csv"))
    if len(tables) > 1:
        raise DataError(f"{directory}: several sentence tables {[p.name for p in tables]}; expected one .tsv/.csv")
    if not tables:
        if required:
            raise DataError(
                f"{directory}: no sentence table; expected one .tsv/.csv with SENTENCE_NAME and SENTENCE columns"
            )
        return None
    return tables[0]


def label_sequences(
    directory: Path, table_path: Path | None, table: dict[str, tuple[str, dict]] | None, names: list[str],
    what: str, options: ReadOptions, problems: list[str],
) -> dict[str, str | None]:
    """name -> sentence for the keypoint files/folders `names` of one folder; None marks a sequence
    without one (kept only with options.unlabelled, for pretraining). A missing table, a table that
    matches none of the names, or a name without a row is an error by default: a translation
    corpus whose sentences silently went empty trains on nothing. Table rows without keypoints are
    only reported (the sequence does not exist; nothing is mislabelled)."""
    hint = "or set data.unlabelled: true to keep them unlabelled for pretraining only"
    if table is None:
        if not options.unlabelled:
            raise DataError(f"{directory}: no sentence table for {len(names)} {what}(s); expected one .tsv/.csv with "
                            f"SENTENCE_NAME and SENTENCE columns beside them, {hint}")
        if names:
            problems.append(f"{directory}: no sentence table, {len(names)} {what}(s) kept unlabelled for pretraining only")
        return {n: None for n in names}
    unmatched = [n for n in names if n not in table]
    if unmatched and not options.unlabelled:
        if len(unmatched) == len(names):
            raise DataError(f"{table_path}: none of its {len(table)} SENTENCE_NAME values matches the {len(names)} "
                            f"{what}(s) (first {what}: {unmatched[0]!r}); expected SENTENCE_NAME = the {what} name, {hint}")
        raise DataError(f"{table_path}: no row for {len(unmatched)} of {len(names)} {what}(s) (first: {unmatched[0]!r}); "
                        f"expected a SENTENCE_NAME row for each, {hint}")
    if unmatched:
        problems.append(f"{table_path}: no row for {len(unmatched)} {what}(s), kept unlabelled for pretraining only "
                        f"(first: {unmatched[0]})")
    rows_only = [n for n in table if n not in set(names)]
    if rows_only:
        problems.append(f"{table_path}: {len(rows_only)} sentence(s) without a {what}, skipped (first: {rows_only[0]})")
    return {n: table[n][0] if n in table else None for n in names}


def split_dirs(directory: Path) -> dict[str, Path] | None:
    """Split subfolders train/dev/test (val counts as dev), or None when there are none."""
    found: dict[str, Path] = {}
    for sub in ("train", "dev", "val", "test"):
        path = directory / sub
        if path.is_dir():
            split = "dev" if sub == "val" else sub
            if split in found:
                raise DataError(f"{directory}: both dev/ and val/ exist; expected one of them")
            found[split] = path
    return found or None
