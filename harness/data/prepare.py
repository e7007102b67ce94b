"""Preprocessing a whole corpus (paper appendix B.1) and reporting what it did: the work of the
harness's prepare stage and of `python -m harness.inspect_data`, which use this same code.

prepare_split preprocesses one split and reports it; prepare_splits does every split after
harmonize_coords; preprocess_corpus is what the prepare stage trains on: prepare_splits, and every
split must keep at least one sequence.

Skips are never silent: a sequence with fewer than min_frames frames after noisy-frame removal
is skipped and counted (skipped_short), as is one that cannot be normalized because no frame shows
both shoulders (skipped_unnormalizable, with its error in the split's problems). Nothing is cached
here: the harness's stage cache is the only cache.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from harness.data.preprocess import preprocess_sequence
from harness.data.record import SPLITS, Corpus, DataError, SignSequence
from harness.data.timeline import _runs, conform_corpus
from models.layout import CANONICAL

_MAX_LISTED_SKIPS = 20  # names of skipped sequences listed per split (the counts are exact)


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


def _timing(sequences: list[SignSequence]) -> dict:
    """Recorded frame rates and the gaps of a split (before preprocessing)."""
    rates = sorted({float(r) for s in sequences if (r := s.meta.get("fps_source", s.meta.get("fps"))) is not None})
    gapped = [s for s in sequences if s.meta.get("missing_frames") or s.meta.get("filled_frames")]
    return {
        "fps_recorded": rates,
        "fps_not_recorded": sum(s.meta.get("fps") is None for s in sequences),
        "frames_recorded": [int(s.meta.get("frames_recorded", s.num_frames)) for s in sequences],
        "gaps": {
            "sequences": len(gapped),
            "missing_frames": sum(len(s.meta.get("missing_frames") or []) for s in sequences),
            "filled_frames": sum(int(s.meta.get("filled_frames", 0)) for s in sequences),
            "per_sequence": [{"name": s.name, "missing_frames": len(s.meta.get("missing_frames") or []),
                              "filled_frames": int(s.meta.get("filled_frames", 0)),
                              "runs": [list(r) for r in _runs(list(s.meta.get("missing_frames") or []))][:10]}
                             for s in gapped[:_MAX_LISTED_SKIPS]],
        },
        "unlabelled": sum(bool(s.meta.get("unlabelled")) for s in sequences),
        "outside_frame": {"points": sum(int(s.meta.get("outside_frame", 0)) for s in sequences),
                          "sequences": sum(int(s.meta.get("outside_frame", 0)) > 0 for s in sequences)},
    }


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
            skipped.append({"name": seq.name, "reason": "no usable shoulders: no frame with both shoulders present"})
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
        **_timing(sequences),
        "parts_present": _parts_present(sequences),
        "range_raw": _ranges(sequences),
        "range": _ranges(kept),
        "problems": problems,
    }
    return kept, report


def drop_z(corpus: Corpus) -> Corpus:
    """The corpus with x, y only (sequences that have no z are kept as they are)."""
    return {split: [s if s.keypoints.shape[-1] == 2 else
                    dataclasses.replace(s, keypoints=np.ascontiguousarray(s.keypoints[..., :2])) for s in seqs]
            for split, seqs in corpus.items()}


def harmonize_coords(corpus: Corpus, problems: list[str]) -> Corpus:
    """One C for the whole corpus: when 2D and 3D sequences mix (e.g. OpenPose and MediaPipe .pose
    files in one folder), z is dropped from the 3D ones, since models need one input width."""
    coords = {int(s.keypoints.shape[-1]) for seqs in corpus.values() for s in seqs}
    if len(coords) <= 1:
        return corpus
    n3 = sum(s.keypoints.shape[-1] == 3 for seqs in corpus.values() for s in seqs)
    problems.append(f"2D and 3D sequences mixed: z dropped from {n3} 3D sequence(s) so that C = 2 throughout")
    return drop_z(corpus)


def prepare_splits(raw: Corpus, *, noise_threshold: float, min_frames: int, timeline: dict | None = None
                   ) -> tuple[Corpus, dict]:
    """Appendix B.1 on every split of raw, after harmonize_coords: (kept corpus, report), where the
    report maps "problems" to the corpus-wide problems, "notes" to what was changed on the way
    (resampling, dropped z) and each split to its split report.

    timeline: keyword arguments of harness.data.timeline.conform_corpus (fps, gaps, max_gap, dims),
    applied first; None leaves the sequences as read."""
    problems: list[str] = []
    notes: list[str] = []
    if timeline is not None:
        raw = conform_corpus(raw, notes=notes, **timeline)
    raw = harmonize_coords(raw, problems)
    out: Corpus = {}
    report: dict = {"problems": problems, "notes": notes, "fps": timeline["fps"] if timeline else None}
    for split, seqs in raw.items():
        out[split], report[split] = prepare_split(seqs, noise_threshold=noise_threshold, min_frames=min_frames)
    return out, report


def preprocess_corpus(raw: Corpus, noise_threshold: float, timeline: dict | None = None) -> tuple[Corpus, dict]:
    """Appendix B.1 per split; sequences that cannot be normalized are skipped and counted. Every
    split must keep a sequence: training needs all three."""
    out, report = prepare_splits(raw, noise_threshold=noise_threshold, min_frames=1, timeline=timeline)
    for split in SPLITS:
        if not out.get(split):
            raise DataError(f"the {split} split has no usable sequences after preprocessing "
                            f"(run `python -m harness.inspect_data SOURCE` to see why)")
    return out, report
