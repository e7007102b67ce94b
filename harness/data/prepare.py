"""The `prepare` stage (DESIGN.md pipeline; paper appendix B.1): read a source, preprocess every
sequence, skip (and count) what cannot be used, report, and cache the result on disk.

prepare_corpus(spec, noise_threshold=..., min_frames=..., cache_dir=...) -> PreparedCorpus.

Skips are never silent: a sequence with fewer than min_frames frames after noisy-frame removal
is skipped and counted (skipped_short), as is one that cannot be normalized because no frame shows
both shoulders (skipped_unnormalizable, with its error in the split's problems).

Cache: cache_dir/prepared-<key>.npz (readers_npz schema) + .json (report), written atomically
(temporary file + rename; the .json is written last and marks the entry complete). The key is
`PreparedCorpus.fingerprint`, a SHA-256 over: the source fingerprint (resolved file paths, sizes
and mtimes; for synth, the generator parameters of the profile), the preprocessing arguments and
the source text of the data-layer modules (so a change in a reader or in preprocessing is a new
key). Downstream stages use the fingerprint as their input key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.data.preprocess import preprocess_sequence
from harness.data.readers_npz import read_npz, write_npz
from harness.data.record import SPLITS, Corpus, DataError, SignSequence
from harness.data.sources import load_source, parse_source, source_files, synth_params
from models.layout import CANONICAL

PREPARE_VERSION = 1  # bump when the cache schema changes
_MAX_LISTED_SKIPS = 20  # names of skipped sequences listed per split (the counts are exact)
_CODE_FILES = (  # the modules whose behaviour shapes a prepared corpus
    "sources.py", "readers_pt.py", "readers_openpose.py", "readers_pose.py", "readers_npz.py",
    "preprocess.py", "prepare.py", "synth.py", "record.py",
)


@dataclass
class PreparedCorpus:
    """A preprocessed corpus with its report.

    report: split -> per-split report (see split_report); problems: reader problems that belong to
    no single split; fingerprint: content key of (source, preprocessing args, data-layer code).
    """

    source: str
    corpus: Corpus
    report: dict[str, dict]
    fingerprint: str
    params: dict
    problems: list[str] = field(default_factory=list)
    from_cache: bool = False

    def to_json(self) -> dict:
        return {"source": self.source, "fingerprint": self.fingerprint, "params": self.params,
                "problems": self.problems, "splits": self.report}


def _code_hash() -> str:
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in _CODE_FILES + ("../../models/layout.py",):
        path = here / name
        if path.exists():
            h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def source_fingerprint(spec: str) -> dict:
    """What identifies a source's content without reading it."""
    kind, arg = parse_source(spec)
    if kind == "synth":
        return {"kind": kind, "params": synth_params(arg)}
    files = source_files(spec)
    return {
        "kind": kind,
        "root": str(Path(arg).expanduser().resolve()),
        "files": [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files],
    }


def fingerprint(spec: str, *, noise_threshold: float, min_frames: int) -> str:
    key = {
        "version": PREPARE_VERSION,
        "code": _code_hash(),
        "source": source_fingerprint(spec),
        "noise_threshold": float(noise_threshold),
        "min_frames": int(min_frames),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _ranges(sequences: list[SignSequence]) -> list[list[float]] | None:
    """[min, max] per coordinate over present points, or None when nothing is present."""
    lo, hi = None, None
    for seq in sequences:
        if not seq.mask.any():
            continue
        present = seq.keypoints[seq.mask]  # (P, C)
        a, b = present.min(axis=0), present.max(axis=0)
        lo = a if lo is None else np.minimum(lo, a)
        hi = b if hi is None else np.maximum(hi, b)
    return None if lo is None else [[round(float(x), 4), round(float(y), 4)] for x, y in zip(lo, hi)]


def _parts_present(sequences: list[SignSequence]) -> dict[str, dict[str, float]]:
    """Per part: share of frames where the part has any present point, and share of its points present."""
    frames = sum(s.num_frames for s in sequences)
    out = {}
    for part, idx in CANONICAL.parts.items():
        idx = list(idx)
        any_frames = sum(int(s.mask[:, idx].any(axis=1).sum()) for s in sequences)
        points = sum(int(s.mask[:, idx].sum()) for s in sequences)
        out[part] = {
            "frames": round(any_frames / frames, 4) if frames else 0.0,
            "points": round(points / (frames * len(idx)), 4) if frames else 0.0,
        }
    return out


def prepare_split(
    sequences: list[SignSequence], *, noise_threshold: float, min_frames: int
) -> tuple[list[SignSequence], dict]:
    """Preprocess one split; returns (kept sequences, split report)."""
    kept: list[SignSequence] = []
    frames_raw, frames, skipped, problems = [], [], [], []
    dropped = dropped_empty = short = unnormalizable = 0
    for seq in sequences:
        frames_raw.append(seq.num_frames)
        try:
            new, n_dropped = preprocess_sequence(seq, noise_threshold=noise_threshold)
        except DataError as err:
            unnormalizable += 1
            frames.append(0)
            problems.append(str(err))
            skipped.append({"name": seq.name, "reason": "no frame with both shoulders"})
            continue
        frames.append(new.num_frames)
        dropped += n_dropped
        dropped_empty += new.meta["preprocess"]["dropped_empty"]
        if new.num_frames < min_frames:
            short += 1
            skipped.append({"name": seq.name, "reason": f"{new.num_frames} frames < min_frames {min_frames}"})
            continue
        kept.append(new)
    if short:
        problems.append(f"{short} sequence(s) shorter than min_frames={min_frames} after preprocessing, skipped")
    coords = sorted({int(s.keypoints.shape[-1]) for s in sequences})
    report = {
        "sequences_raw": len(sequences),
        "sequences": len(kept),
        "frames_raw": frames_raw,
        "frames": frames,
        "dropped_frames": dropped,
        "dropped_empty_frames": dropped_empty,
        "dropped_noisy_frames": dropped - dropped_empty,
        "skipped_short": short,
        "skipped_unnormalizable": unnormalizable,
        "skipped": skipped[:_MAX_LISTED_SKIPS],
        "coords": coords,
        "parts_present": _parts_present(sequences),
        "range_raw": _ranges(sequences),
        "range": _ranges(kept),
        "problems": problems,
    }
    return kept, report


def harmonize_coords(corpus: Corpus, problems: list[str]) -> Corpus:
    """One C for the whole corpus: when 2D and 3D sequences mix (e.g. OpenPose and MediaPipe .pose
    files in one folder), z is dropped from the 3D ones, since models need one input width."""
    coords = {int(s.keypoints.shape[-1]) for seqs in corpus.values() for s in seqs}
    if len(coords) <= 1:
        return corpus
    n3 = sum(s.keypoints.shape[-1] == 3 for seqs in corpus.values() for s in seqs)
    problems.append(f"2D and 3D sequences mixed: z dropped from {n3} 3D sequence(s) so that C = 2 throughout")
    return {
        split: [dataclasses.replace(s, keypoints=np.ascontiguousarray(s.keypoints[..., :2])) for s in seqs]
        for split, seqs in corpus.items()
    }


def _cache_paths(cache_dir: Path, key: str) -> tuple[Path, Path]:
    stem = f"prepared-{key[:24]}"
    return cache_dir / f"{stem}.npz", cache_dir / f"{stem}.json"


def _write_json_atomic(path: Path, doc: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_cached(spec: str, key: str, cache_dir: Path) -> PreparedCorpus | None:
    npz_path, json_path = _cache_paths(cache_dir, key)
    if not (npz_path.exists() and json_path.exists()):
        return None
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
        if doc.get("fingerprint") != key:
            return None
        corpus = read_npz(npz_path)
    except (OSError, ValueError):  # a damaged entry (DataError is a ValueError): recompute it
        return None
    return PreparedCorpus(source=spec, corpus=corpus, report=doc["splits"], fingerprint=key,
                          params=doc["params"], problems=doc["problems"], from_cache=True)


def prepare_corpus(
    spec: str, *, noise_threshold: float, min_frames: int, cache_dir: Path | None
) -> PreparedCorpus:
    """Read, preprocess and report a source (see the module docstring); cached when cache_dir is set."""
    if min_frames < 1:
        raise DataError(f"min_frames is {min_frames}; expected at least 1")
    if not noise_threshold > 0:
        raise DataError(f"noise_threshold is {noise_threshold}; expected a positive number of shoulder lengths")
    key = fingerprint(spec, noise_threshold=noise_threshold, min_frames=min_frames)
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        cached = _load_cached(spec, key, cache_dir)
        if cached is not None:
            return cached
    problems: list[str] = []
    raw = harmonize_coords(load_source(spec, problems), problems)
    corpus: Corpus = {}
    report: dict[str, dict] = {}
    for split in SPLITS:
        corpus[split], report[split] = prepare_split(
            raw.get(split, []), noise_threshold=noise_threshold, min_frames=min_frames
        )
    total_raw = sum(r["sequences_raw"] for r in report.values())
    if total_raw and not any(corpus.values()):
        raise DataError(
            f"source {spec!r}: all {total_raw} sequences were skipped ("
            + ", ".join(f"{s}: {r['skipped_short']} short, {r['skipped_unnormalizable']} without shoulders"
                        for s, r in report.items())
            + f"); expected at least one with both shoulders and >= {min_frames} frames"
        )
    params = {"noise_threshold": float(noise_threshold), "min_frames": int(min_frames)}
    prepared = PreparedCorpus(source=spec, corpus=corpus, report=report, fingerprint=key,
                              params=params, problems=problems)
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        npz_path, json_path = _cache_paths(cache_dir, key)
        write_npz(corpus, npz_path, compress=False)  # uncompressed: loading speed over disk space
        _write_json_atomic(json_path, prepared.to_json())
    return prepared
