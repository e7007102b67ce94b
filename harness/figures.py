"""Figures of the ablation tables (paper section 6, figure 3: a metric over a variant's x) and of
the representations (section 5, figure 5: a t-SNE of z for the most frequent unseen glosses).

Figure + Agg canvas, not pyplot: no global figure state, safe from threads and without a display.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.io import atomic_write
from harness.report import _LABELS, ALL_METRICS, POSE_METRICS, _missing


def plot_curve(
    rows: Sequence[Mapping[str, Any]],
    x_of_variant: Mapping[str, float],
    metric: str = "bleu4",
    task: str = "sign2text",
    path: str | os.PathLike | None = None,
    title: str = "",
    x_label: str = "stride",
) -> Path:
    """A PNG of metric (mean, error bar = std over seeds) against x_of_variant[variant].

    Figure 3 of the paper: BLEU-4 of sign-to-text over strides 1..15. Rows of other tasks or of
    variants without an x are ignored. Written atomically; returns the path.
    """
    if path is None:
        raise ValueError("plot_curve needs a path for the PNG")
    if metric not in ALL_METRICS:
        raise ValueError(f"metric must be one of {ALL_METRICS}, got {metric!r}")
    points = sorted(
        (float(x_of_variant[r["variant"]]), float(r[metric]), float(r.get(f"{metric}_std") or 0.0))
        for r in rows
        if r["task"] == task and r["variant"] in x_of_variant and not _missing(r.get(metric))
    )
    if not points:
        raise ValueError(f"no {task} row has both an x value and {metric}; nothing to plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xs, ys, errs = (list(v) for v in zip(*points))
    fig = Figure(figsize=(5.0, 3.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, linewidth=1.5)
    best = int(np.argmin(ys) if metric in POSE_METRICS else np.argmax(ys))
    ax.scatter([xs[best]], [ys[best]], s=80, facecolors="none", edgecolors="red", zorder=3,
               label=f"best: {x_label} {xs[best]:g}")
    ax.set_xlabel(x_label)
    ax.set_ylabel(_LABELS[metric])
    if all(float(x).is_integer() for x in xs):
        ax.set_xticks(xs)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title)
    return _write_png(fig, path)


def _write_png(fig, path: str | os.PathLike) -> Path:
    """The laid-out figure as a PNG at path, written atomically (readers never see half a file)."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    out = Path(path)
    atomic_write(out, buf.getvalue())
    return out


def tsne_2d(z: np.ndarray, seed: int) -> np.ndarray:
    """(M, D) -> (M, 2) by t-SNE (van der Maaten and Hinton; figure 5), exact gradients and PCA
    initialisation with `seed`, so the same z gives the same plot."""
    from sklearn.manifold import TSNE
    perplexity = float(min(30.0, max(2.0, (len(z) - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", method="exact", random_state=seed
                ).fit_transform(np.asarray(z, dtype=np.float64))


def plot_tsne(xy: np.ndarray, labels: Sequence[str], path: str | os.PathLike, title: str = "") -> Path:
    """A PNG of 2-D points coloured by label, one legend entry per label (figure 5). Atomic; returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    names = sorted(set(labels))
    for i, name in enumerate(names):
        pts = np.asarray([p for p, lab in zip(xy, labels) if lab == name])
        ax.scatter(pts[:, 0], pts[:, 1], s=18, color=f"C{i % 10}", label=name)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    return _write_png(fig, path)
