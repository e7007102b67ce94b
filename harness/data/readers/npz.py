"""Our NumPy archive of a Corpus in the canonical layout (paper section 3.1: X in R^{T x V x C}).

Schema (format "uniglor-npz/1"; all arrays load with allow_pickle=False):
  format        () str     "uniglor-npz/1"
  layout        () str     models.layout.CANONICAL.name ("uniglor73")
  keypoints_<i> (T, 73, C) float32, C = 2 or 3, i = 0 .. n-1; values where the mask is False are 0
  mask_<i>      (T, 73)    bool, True = present
  splits        (n,) str   "train" | "dev" | "test"
  names         (n,) str
  texts         (n,) str
  glosses       (n,) str   "" when has_gloss is False
  has_gloss     (n,) bool
  signers       (n,) str   "" when has_signer is False
  has_signer    (n,) bool
  boundaries_<i> (N, 2) int64   only for sequences that have gloss boundaries (synthetic corpus)
  metas         (n,) str   JSON object per sequence (SignSequence.meta)
Sequences keep their order within each split.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from harness.data.record import SPLITS, Corpus, DataError, SignSequence
from models.layout import CANONICAL

FORMAT = "uniglor-npz/1"


def _json_default(value):
    # SignSequence.meta may carry numpy scalars/arrays from a reader or the synthetic generator.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"meta value of type {type(value).__name__} is not JSON serializable")


def corpus_arrays(corpus: Corpus) -> dict[str, np.ndarray]:
    """The schema's arrays for a corpus (splits in SPLITS order)."""
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT), "layout": np.array(CANONICAL.name),
    }
    rows = [(split, seq) for split in SPLITS for seq in corpus.get(split, [])]
    unknown = set(corpus) - set(SPLITS)
    if unknown:
        raise DataError(f"corpus has unknown split(s) {sorted(unknown)}; expected {list(SPLITS)}")
    for i, (_, seq) in enumerate(rows):
        kp, mask = np.asarray(seq.keypoints), np.asarray(seq.mask)
        if kp.ndim != 3 or kp.shape[1] != CANONICAL.num_points or kp.shape[2] not in (2, 3) or mask.shape != kp.shape[:2]:
            raise DataError(
                f"sequence {seq.name!r}: keypoints {kp.shape} / mask {mask.shape}; expected (T, 73, 2|3) and (T, 73)"
            )
        arrays[f"keypoints_{i}"] = np.where(mask[..., None], kp, 0.0).astype(np.float32)
        arrays[f"mask_{i}"] = mask.astype(bool)
        if seq.boundaries is not None:
            arrays[f"boundaries_{i}"] = np.asarray(seq.boundaries, np.int64).reshape(-1, 2)
    arrays["splits"] = np.array([s for s, _ in rows], dtype=str)
    arrays["names"] = np.array([q.name for _, q in rows], dtype=str)
    arrays["texts"] = np.array([q.text for _, q in rows], dtype=str)
    arrays["glosses"] = np.array([q.gloss or "" for _, q in rows], dtype=str)
    arrays["has_gloss"] = np.array([q.gloss is not None for _, q in rows], dtype=bool)
    arrays["signers"] = np.array([q.signer or "" for _, q in rows], dtype=str)
    arrays["has_signer"] = np.array([q.signer is not None for _, q in rows], dtype=bool)
    arrays["metas"] = np.array([json.dumps(q.meta, default=_json_default, sort_keys=True) for _, q in rows], dtype=str)
    return arrays


def write_npz(corpus: Corpus, path: Path, compress: bool = True) -> None:
    """Write the corpus to path atomically (a temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = corpus_arrays(corpus)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:  # a file object: numpy would append ".npz" to a name
            (np.savez_compressed if compress else np.savez)(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _get(archive, key: str, path: Path) -> np.ndarray:
    if key not in archive.files:
        raise DataError(f"{path}: key {key!r} missing; expected the {FORMAT} schema (harness/data/readers/npz.py)")
    try:  # entries are read (and checked) only here: a truncated or altered one fails now
        return archive[key]
    except ValueError as err:  # an object array (would need pickle) or a bad .npy header
        raise DataError(f"{path}: key {key!r} is not a plain array ({err}); expected the {FORMAT} schema") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise DataError(f"{path}: key {key!r} cannot be read ({err or type(err).__name__}); the archive is "
                        f"truncated or damaged") from None


def read_npz(path: Path) -> Corpus:
    """Read and validate an archive written by write_npz."""
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: not a readable .npz archive ({err or type(err).__name__})") from None
    with archive:
        fmt = str(_get(archive, "format", path))
        if fmt != FORMAT:
            raise DataError(f"{path}: key 'format' is {fmt!r}; expected {FORMAT!r}")
        layout = str(_get(archive, "layout", path))
        if layout != CANONICAL.name:
            raise DataError(f"{path}: key 'layout' is {layout!r}; expected {CANONICAL.name!r}")
        columns = {k: _get(archive, k, path) for k in
                   ("splits", "names", "texts", "glosses", "has_gloss", "signers", "has_signer", "metas")}
        n = len(columns["splits"])
        for key, col in columns.items():
            if col.shape != (n,):
                raise DataError(f"{path}: key {key!r} has shape {col.shape}; expected ({n},) like 'splits'")
        corpus: Corpus = {split: [] for split in SPLITS}
        for i in range(n):
            split = str(columns["splits"][i])
            if split not in corpus:
                raise DataError(f"{path}: key 'splits'[{i}] is {split!r}; expected one of {list(SPLITS)}")
            kp = _get(archive, f"keypoints_{i}", path)
            mask = _get(archive, f"mask_{i}", path)
            if kp.ndim != 3 or kp.shape[1] != CANONICAL.num_points or kp.shape[2] not in (2, 3):
                raise DataError(f"{path}: key 'keypoints_{i}' has shape {kp.shape}; expected (T, 73, 2|3)")
            if kp.dtype.kind not in "fiu":
                raise DataError(f"{path}: key 'keypoints_{i}' is {kp.dtype}; expected float32 or float64 numbers")
            if mask.dtype != bool or mask.shape != kp.shape[:2]:
                raise DataError(f"{path}: key 'mask_{i}' is {mask.dtype} {mask.shape}; expected bool {kp.shape[:2]}")
            if kp.shape[0] == 0:
                raise DataError(f"{path}: key 'keypoints_{i}' has 0 frames; expected at least one")
            bad = ~np.isfinite(kp) & mask[..., None]
            if bad.any():
                raise DataError(f"{path}: key 'keypoints_{i}', frame {int(np.argwhere(bad)[0][0])}: NaN or infinite present value")
            boundaries = None
            if f"boundaries_{i}" in archive.files:
                boundaries = [(int(a), int(b)) for a, b in archive[f"boundaries_{i}"]]
            try:
                meta = json.loads(str(columns["metas"][i]))
            except json.JSONDecodeError:
                raise DataError(f"{path}: key 'metas'[{i}] is not JSON; expected a JSON object") from None
            corpus[split].append(SignSequence(
                name=str(columns["names"][i]),
                keypoints=np.where(mask[..., None], kp, 0.0).astype(np.float32),
                mask=mask,
                text=str(columns["texts"][i]),
                gloss=str(columns["glosses"][i]) if columns["has_gloss"][i] else None,
                signer=str(columns["signers"][i]) if columns["has_signer"][i] else None,
                boundaries=boundaries,
                meta=meta,
            ))
    return corpus
