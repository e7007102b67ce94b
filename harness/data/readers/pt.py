"""Progressive Transformers PHOENIX14T skeletons (Saunders et al. 2020) -> canonical layout
(paper section 4.2 "Keypoint Processing"), in the text format the Progressive Transformers repository
(BenSaunders27/ProgressiveTransformersSLP) publishes them in.

A directory holds parallel files per split, one line per sequence:
  <split>.skels  all frames on one line: per frame 150 values (50 joints x (x, y, z)) + a counter t/T
  <split>.text   the spoken-language sentence
  <split>.gloss  the gloss sequence (optional; an empty line means no gloss)
  <split>.files  the sequence name (optional; default "<split>/<line>")

Joint mapping: PT 0..7 are exactly our body 0..7 (nose, neck, right shoulder/elbow/wrist, left
shoulder/elbow/wrist); PT 8..28 is the left hand and 29..49 the right hand, both in OpenPose hand
order; there is no face, so the 19 face points are masked. All 50 joints are present in every
frame (the publisher's 3D lifting has no missing joints; the neck is the origin, a real 0), so the
only "not detected" is a NaN, which masks that joint in that frame. An infinite or absurd value
(beyond canonical.MAX_COORD: 1e39 parses as a number but overflows float32) is an error naming
the line and frame, as is a counter column that is not t/T: a line that lost (or gained) one value
can still hold a whole number of frames, and then every later frame is shifted by one value,
which the counter, the 151st value of each frame, shows.

Axes: the published x axis is mirrored with respect to image coordinates (the signer's right
shoulder has positive x). We negate x on reading (and again on writing) so every source shares the
image convention: x to the image right, y down. Values stay in the publisher's units (divided by 3);
preprocessing rescales to shoulder lengths anyway.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.data.canonical import BODY, HANDS, MAX_COORD, empty_frames, make_sequence, put_hand, put_points
from harness.data.record import SPLITS, Corpus, DataError, SignSequence

PT_JOINTS = 50
PT_FRAME = PT_JOINTS * 3 + 1  # 150 coordinates + the counter value
PT_LEFT_HAND = tuple(range(8, 29))
PT_RIGHT_HAND = tuple(range(29, 50))
_MIRROR = np.array([-1.0, 1.0, 1.0], np.float32)  # negate x: PT -> image convention and back


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line, it does not start a new one
    return lines


def parse_skels_line(line: str, path: Path, lineno: int) -> np.ndarray:
    """One .skels line -> (T, 50, 3) float32 in the file's own axes (x not yet un-mirrored)."""
    tokens = line.split()
    if not tokens:
        raise DataError(f"{path}, line {lineno}: empty sequence; expected frames of {PT_FRAME} values")
    if len(tokens) % PT_FRAME:
        raise DataError(
            f"{path}, line {lineno}: {len(tokens)} values is not a multiple of {PT_FRAME} "
            f"(50 joints x 3 + 1 counter per frame)"
        )
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        for i, tok in enumerate(tokens):
            try:
                float(tok)
            except ValueError:
                raise DataError(
                    f"{path}, line {lineno}, frame {i // PT_FRAME}: non-numeric value {tok[:20]!r}; expected a number"
                ) from None
        raise  # unreachable: numpy and float() agree on what is a number
    frames = values.reshape(-1, PT_FRAME)  # (T, 151)
    with np.errstate(invalid="ignore"):
        bad = np.abs(frames) > MAX_COORD  # NaN is a missing joint, not an error
    if bad.any():
        frame, col = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{path}, line {lineno}, frame {frame}: value {frames[frame, col]:g} overflows float32 or is "
                        f"absurdly large; expected |value| <= {MAX_COORD:g}")
    check_counter(frames[:, -1], path, lineno)
    return frames[:, : PT_JOINTS * 3].reshape(-1, PT_JOINTS, 3).astype(np.float32)  # (T, 50, 3)


COUNTER_TOLERANCE = 1e-3  # the publisher rounds t/T to 4 decimals (error <= 5e-5 on the real files)


def check_counter(counter: np.ndarray, path: Path, lineno: int) -> None:
    """The counter column must be t/T (the publisher's) or (t + 1)/T; a shifted line is refused."""
    T = len(counter)
    t = np.arange(T)
    for expected in (t / T, (t + 1) / T):
        if (np.abs(counter - expected) <= COUNTER_TOLERANCE).all():
            return
    expected = t / T
    with np.errstate(invalid="ignore"):
        frame = int(np.flatnonzero(~(np.abs(counter - expected) <= COUNTER_TOLERANCE))[0])
    raise DataError(
        f"{path}, line {lineno}, frame {frame}: counter value {counter[frame]:.6g}; expected {frame}/{T} = "
        f"{expected[frame]:.4f} (value {PT_JOINTS * 3 + 1} of the frame): a value was lost or added before it")


def pt_to_canonical(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 50, 3) PT joints (file axes) -> canonical keypoints (T, 73, 3) and mask (T, 73)."""
    joints = joints * _MIRROR  # (T, 50, 3) image axes
    T = joints.shape[0]
    keypoints, mask = empty_frames(T, 3)
    present = ~np.isnan(joints).any(-1)  # (T, 50)
    joints = np.where(present[..., None], joints, 0.0)
    put_points(keypoints, mask, BODY, joints[:, :8], present[:, :8])
    put_hand(keypoints, mask, "left", joints[:, list(PT_LEFT_HAND)], present[:, list(PT_LEFT_HAND)])
    put_hand(keypoints, mask, "right", joints[:, list(PT_RIGHT_HAND)], present[:, list(PT_RIGHT_HAND)])
    return keypoints, mask


def read_pt_split(directory: Path, split: str) -> list[SignSequence]:
    skels_path = directory / f"{split}.skels"
    skels = _lines(skels_path)
    columns: dict[str, list[str] | None] = {}
    for ext, required in (("text", True), ("gloss", False), ("files", False)):
        path = directory / f"{split}.{ext}"
        if not path.exists():
            if required:
                raise DataError(f"{path}: missing; expected one sentence per line beside {skels_path.name}")
            columns[ext] = None
            continue
        lines = _lines(path)
        if len(lines) != len(skels):
            raise DataError(
                f"{path}: {len(lines)} lines but {skels_path.name} has {len(skels)}; "
                "expected one line per sequence in each file"
            )
        columns[ext] = lines
    sequences = []
    for i, line in enumerate(skels):
        keypoints, mask = pt_to_canonical(parse_skels_line(line, skels_path, i + 1))
        gloss = columns["gloss"][i].strip() if columns["gloss"] is not None else ""
        name = columns["files"][i].strip() if columns["files"] is not None else f"{split}/{i + 1}"
        sequences.append(
            make_sequence(
                name, keypoints, mask, columns["text"][i].strip(), gloss=gloss or None,
                meta={"source": "pt", "file": str(skels_path), "line": i + 1, "fps": 25.0, "z_units": "xy"},
            )
        )
    return sequences


def read_pt(directory: Path, problems: list[str] | None = None) -> Corpus:
    """Read every <split>.skels in directory (train, dev, test; a missing split is empty)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory; expected a folder with <split>.skels/.text files")
    present = [s for s in SPLITS if (directory / f"{s}.skels").exists()]
    if not present:
        raise DataError(f"{directory}: no train.skels, dev.skels or test.skels; expected the PT text format")
    return {split: read_pt_split(directory, split) if split in present else [] for split in SPLITS}


def _format_frames(seq: SignSequence) -> str:
    keypoints = seq.keypoints
    if keypoints.shape[-1] == 2:  # a 2D source: PT lines are 3D, write z = 0
        keypoints = np.concatenate([keypoints, np.zeros_like(keypoints[..., :1])], axis=-1)
    values = np.where(seq.mask[..., None], keypoints, 0.0).astype(np.float32)  # (T, 73, 3)
    T = values.shape[0]
    joints = np.concatenate(
        [values[:, list(BODY)], values[:, list(HANDS["left"][:21])], values[:, list(HANDS["right"][:21])]],
        axis=1,
    ) * _MIRROR  # (T, 50, 3) back to the file's axes
    counter = (np.arange(T, dtype=np.float32) / T)[:, None]  # (T, 1) t/T as the publisher wrote it
    rows = np.concatenate([joints.reshape(T, -1), counter], axis=1)  # (T, 151)
    # 9 significant digits round-trip float32 exactly.
    return " ".join(format(float(v), ".9g") for v in rows.ravel())


def write_pt(corpus: Corpus, directory: Path) -> None:
    """Write <split>.skels/.text/.gloss/.files for each non-empty split.

    Lossy by the format's nature: face points and the derived hand points are not written, and
    masked points are written as 0 (the format has no mask). Round trip is exact for sequences
    that came from PT (all body and hand joints present).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for split, sequences in corpus.items():
        if not sequences:
            continue
        for seq in sequences:
            for what, value in (("text", seq.text), ("gloss", seq.gloss or ""), ("name", seq.name)):
                if "\n" in value or "\r" in value:
                    raise DataError(f"sequence {seq.name!r}: {what} contains a line break; the PT format is one line each")
        (directory / f"{split}.skels").write_text("".join(_format_frames(s) + "\n" for s in sequences))
        (directory / f"{split}.text").write_text("".join(s.text + "\n" for s in sequences), encoding="utf-8")
        (directory / f"{split}.gloss").write_text("".join((s.gloss or "") + "\n" for s in sequences), encoding="utf-8")
        (directory / f"{split}.files").write_text("".join(s.name + "\n" for s in sequences), encoding="utf-8")
