"""Keypoint sources: the `KIND:ARG` spec strings and the helpers every reader uses to map a
source layout into the canonical 73-point layout (paper section 4.2 "Keypoint Processing",
appendix B figure 6; layout choice documented in models/layout.py).

Spec strings (the `data.source` config value and the CLI's SOURCE):

    synth              the synthetic corpus of the "default" profile
    synth:PROFILE      the synthetic corpus of profile PROFILE (cfg.data.synth of that profile)
    pt:DIR             Progressive Transformers PHOENIX14T skeletons (<split>.skels/.text/.gloss/.files)
    openpose:DIR       How2Sign-style OpenPose JSON: one folder of per-frame JSON per sentence + a TSV
    pose:FILE_OR_DIR   pose-format `.pose` files (OpenPose 137 or MediaPipe Holistic layouts)
    npz:FILE           our NumPy archive (schema in harness/data/readers_npz.py)

Every reader returns a Corpus with all three SPLITS as keys (possibly empty lists). Points a source
lacks or failed to detect have mask False and value 0; the two derived hand points (palm centre,
fingertip centroid) are computed here from the 21 hand joints and are present only when all of
their inputs are.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from harness.data.record import SPLITS, Corpus, DataError, SignSequence
from models.layout import CANONICAL, FINGERTIP_CENTROID_FROM, PALM_CENTRE_FROM

KINDS = ("synth", "pt", "openpose", "pose", "npz")
V = CANONICAL.num_points  # 73
BODY = CANONICAL.parts["body"]
FACE = CANONICAL.parts["face"]
HANDS = {"left": CANONICAL.parts["left_hand"], "right": CANONICAL.parts["right_hand"]}


# ----------------------------------------------------------------------------------------------
# Spec strings
# ----------------------------------------------------------------------------------------------


def parse_source(spec: str) -> tuple[str, str]:
    """Split a source spec into (kind, arg). `synth` alone means `synth:default`."""
    spec = spec.strip()
    kind, sep, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise DataError(
            f"source {spec!r}: unknown kind {kind!r}; expected one of "
            "synth, synth:PROFILE, pt:DIR, openpose:DIR, pose:FILE_OR_DIR, npz:FILE"
        )
    arg = arg.strip()
    if kind == "synth":
        return kind, arg or "default"
    if not arg:
        raise DataError(f"source {spec!r}: {kind} needs a path, e.g. {kind}:/path/to/data")
    return kind, arg


def synth_params(profile: str) -> dict:
    """The generate_corpus(**kwargs) arguments of a profile's cfg.data.synth."""
    from harness.config import load_profile  # lazy: config is another module's concern

    try:
        cfg = load_profile(profile)
    except DataError:
        raise
    except ValueError as err:  # the config's own errors (unknown profile, bad YAML) are ValueErrors
        raise DataError(f"source synth:{profile}: {err}") from None
    return dataclasses.asdict(cfg.data.synth)


def load_source(spec: str, problems: list[str] | None = None) -> Corpus:
    """Read a source spec into a Corpus (split -> sequences) in the canonical layout.

    problems: when given, readers append one line per non-fatal problem (a sentence without
    keypoints, an unreadable optional column, ...). Malformed data raises DataError.
    """
    kind, arg = parse_source(spec)
    problems = problems if problems is not None else []
    if kind == "synth":
        from harness.data.synth import generate_corpus

        corpus = generate_corpus(**synth_params(arg))
        return complete_splits(corpus)
    path = Path(arg).expanduser()
    if not path.exists():
        raise DataError(f"{path}: does not exist (source {spec!r})")
    if kind == "pt":
        from harness.data.readers_pt import read_pt

        return read_pt(path, problems)
    if kind == "openpose":
        from harness.data.readers_openpose import read_openpose

        return read_openpose(path, problems)
    if kind == "pose":
        from harness.data.readers_pose import read_pose

        return read_pose(path, problems)
    from harness.data.readers_npz import read_npz

    return read_npz(path)


def source_files(spec: str) -> list[Path]:
    """The files a file-based source reads (for cache fingerprints); [] for synth."""
    kind, arg = parse_source(spec)
    if kind == "synth":
        return []
    path = Path(arg).expanduser()
    if path.is_file():
        # a single .pose file takes its text from a sentence table beside it
        tables = [p for p in path.parent.iterdir() if p.is_file() and p.suffix.lower() in (".tsv", ".csv")]
        return [path] + sorted(tables) if kind == "pose" else [path]
    if not path.exists():
        raise DataError(f"{path}: does not exist (source {spec!r})")
    return sorted(p for p in path.rglob("*") if p.is_file())


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
