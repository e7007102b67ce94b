"""Figure 5 (paper section 5): the gloss-level representations of unseen signs, zero-shot.

Every trial draws it for its pretraining: z of the isolated corpus's 10 most frequent glosses
(all splits: nothing is trained on them; frozen encoder, averaged per clip), at most
POINTS_PER_GLOSS clips of each (the first in split order, train first), mapped to 2-D by a seeded
t-SNE and drawn one colour per gloss. Stored as `tsne.png` and `points.json` (one
point per clip: gloss, x, y) in the stage's cache entry; the trial logs the PNG to MLflow.

Cheap, since every trial pays for it: the encoder is most of its time, so a clip's windows do
not overlap (stride = window, text-to-sign's segments; also keeps the figure the pretraining's
alone, drawn once by a stride ablation) and few clips per gloss are drawn, which also keeps the
exact t-SNE (quadratic in the points) short; a few points per gloss show whether glosses cluster.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from harness.config import ExperimentConfig
from harness.data.record import SPLITS, Corpus, SignSequence
from harness.encode import encode_clips
from harness.stages.base import Stage, StageContext

TOP_GLOSSES = 10  # "Ten of the most frequent glosses were selected"
TSNE_SEED = 0
POINTS_PER_GLOSS = 6
PNG = "tsne.png"


def most_frequent(labels: list[str], n: int = TOP_GLOSSES) -> list[str]:
    """The n most frequent labels, ties broken by name (so the choice is deterministic)."""
    counts = Counter(labels)
    return sorted(counts, key=lambda g: (-counts[g], g))[:n]


def chosen_clips(corpus: Corpus, per_gloss: int = POINTS_PER_GLOSS) -> list[SignSequence]:
    """The clips figure 5 draws: of each of the most frequent glosses, its first `per_gloss` clips
    (train, dev, test order)."""
    clips = [s for split in SPLITS for s in corpus[split]]
    top = set(most_frequent([s.text for s in clips]))
    taken: Counter = Counter()
    chosen = []
    for s in clips:
        if s.text in top and taken[s.text] < per_gloss:
            taken[s.text] += 1
            chosen.append(s)
    return chosen


def run(ctx: StageContext) -> dict:
    from harness.figures import tsne_2d
    chosen = chosen_clips(ctx.inputs["isolated"])
    w = ctx.cfg.pretrain.window
    z = encode_clips(ctx.inputs["pretrain"].model, chosen, w, w, ctx.runtime.device)
    pooled = torch.stack([zi.mean(dim=0) for zi in z]).numpy()  # (M, D): one point per clip
    xy = tsne_2d(pooled, TSNE_SEED)  # (M, 2)
    labels = [s.text for s in chosen]
    # The PNG is drawn by _save, into the cache entry; what is handed on is the entry as loaded.
    return {"points": [{"gloss": g, "x": float(x), "y": float(y)} for g, (x, y) in zip(labels, xy)],
            "labels": labels, "xy": np.asarray(xy)}


def _save(out: dict, folder: Path) -> None:
    from harness.figures import plot_tsne
    plot_tsne(out["xy"], out["labels"], folder / PNG,
              f"z of {len(out['xy'])} unseen clips, {len(set(out['labels']))} most frequent glosses (zero-shot t-SNE)")
    (folder / "points.json").write_text(json.dumps(out["points"]))


def _load(folder: Path) -> dict:
    points = json.loads((folder / "points.json").read_text())
    return {"points": points, "png": str(folder / PNG)}


def settings(cfg: ExperimentConfig) -> dict:
    return {"top": TOP_GLOSSES, "tsne_seed": TSNE_SEED, "per_gloss": POINTS_PER_GLOSS}


FIGURE5 = Stage(name="figure5", needs=("isolated", "pretrain"), settings=settings, run=run, save=_save, load=_load,
                reload=True, version=2)  # 2: POINTS_PER_GLOSS clips of each gloss, stride = window
