"""How much each body part moves, as eq. 1 of the paper (section 3.3) sees it: the per-group
variances (body, face normalised by its centroid, hands relative to their wrists) pooled over
windows of the pretraining length, for any source. scripts/corpus_stats.py prints them for the
synthetic corpus next to each real sample in ../shared/data, and tests/test_synth.py checks that the
synthetic corpus's ratios fall inside the real samples' range: the APW ablation tests a weighting
whose inputs are these variances, so a corpus that moves unlike real signers would test another
question.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.config import ExperimentConfig
from harness.data.datasets import sliding_windows
from harness.datasource import load_raw, timeline_options
from harness.data.prepare import prepare_splits
from harness.data.record import Corpus
from models import weighting
from models.layout import CANONICAL

# The real samples of ../shared/data (SOURCES.md), as source specs relative to that folder.
REAL_SAMPLES = {
    "OpenPose (pose-format sample)": "pose:{root}/pose/openpose.pose",
    "MediaPipe Holistic (pose-format sample)": "pose:{root}/pose/mediapipe.pose",
    "PHOENIX14T skeletons (PT sample)": "pt:{root}/phoenix14t-pt-sample",
}


@dataclass(frozen=True)
class PartMotion:
    """Eq. 1's group variances of one corpus (shoulder units squared; None: the group is absent)."""

    name: str
    sequences: int
    windows: int
    body: float
    face: float | None
    hands: float | None

    @property
    def body_to_hands(self) -> float | None:
        return self.body / self.hands if self.hands else None

    @property
    def face_to_body(self) -> float | None:
        return self.face / self.body if self.face is not None and self.body else None


def part_motion(name: str, corpus: Corpus, window: int) -> PartMotion:
    """The group variances of a preprocessed corpus's sequences (every split), over its
    non-overlapping `window`-frame windows (sequences shorter than one window are left out)."""
    samples, sequences = [], 0
    for seq in (s for split in corpus.values() for s in split):
        if seq.num_frames < window:
            continue
        x, m = sliding_windows(seq.keypoints, seq.mask, window, window)  # (N, w, V, C), (N, w, V)
        samples.append((torch.tensor(x, dtype=torch.float32), torch.tensor(m)))
        sequences += 1
    if not samples:
        raise ValueError(f"{name}: no sequence of at least {window} frames")
    v = weighting.dataset_part_variances(samples, CANONICAL.parts, CANONICAL.left_wrist, CANONICAL.right_wrist)
    return PartMotion(name, sequences, sum(len(x) for x, _ in samples), v["body"], v["face"], v["hands"])


def preprocessed(raw: Corpus, cfg: ExperimentConfig) -> Corpus:
    """Appendix B.1 on every split of raw as a trial would, without requiring all three splits
    (a real sample is one file)."""
    corpus, _ = prepare_splits(raw, noise_threshold=cfg.data.noise_threshold, min_frames=1,
                               timeline=timeline_options(cfg))
    return corpus


def source_motion(name: str, spec: str, cfg: ExperimentConfig) -> PartMotion:
    """part_motion of a source read and preprocessed as a trial would (appendix B.1), its files
    unlabelled (a sample need not have a sentence table nor all three splits)."""
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, unlabelled=True, source=spec))
    return part_motion(name, preprocessed(load_raw(spec, cfg), cfg), cfg.pretrain.window)


def real_motions(root: Path, cfg: ExperimentConfig) -> list[PartMotion]:
    """source_motion of every real sample under `root` (../shared/data) that is there."""
    out = []
    for name, spec in REAL_SAMPLES.items():
        spec = spec.format(root=root)
        if Path(spec.split(":", 1)[1]).exists():
            out.append(source_motion(name, spec, cfg))
    return out


def ratio_range(motions: list[PartMotion]) -> dict[str, tuple[float, float]]:
    """{ratio: (min, max)} over the corpora where the ratio is defined."""
    out = {}
    for ratio in ("body_to_hands", "face_to_body"):
        values = [getattr(m, ratio) for m in motions if getattr(m, ratio) is not None]
        if values:
            out[ratio] = (min(values), max(values))
    return out
