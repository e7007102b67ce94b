"""Figures of the ablation tables (paper section 6, figure 3: a metric over a variant's x), of the
representations (section 5, figure 5: a t-SNE of z for the most frequent unseen glosses) and of
production side by side (section 7, figure 4: uniformly sampled frames, ground truth above each
row's output).

Figure + Agg canvas, not pyplot: no global figure state, safe from threads and without a display.
Figure 4's skeletons are drawn with Pillow by `harness.render`'s drawing, as the GIFs are.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
    """A matplotlib figure (laid out first) or a Pillow image as a PNG at path, written atomically
    (readers never see half a file)."""
    buf = io.BytesIO()
    if hasattr(fig, "savefig"):
        fig.tight_layout()
        fig.savefig(buf, format="png")
    else:
        fig.save(buf, format="PNG")
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


STRIP_FRAMES = 8  # frames per row of figure 4's strips
CELL = 128  # pixels of one frame's square: the hands' shapes still show
STRIP_GAP = 4
LABEL_WIDTH = 112  # the row labels' column
TITLE_HEIGHT = 18  # a block's sentence


@dataclass(frozen=True)
class StripRow:
    """One row of a block of figure 4: a label and its keypoints (None: the row has no output)."""

    label: str
    keypoints: np.ndarray | None  # (T, V, C)
    mask: np.ndarray | None = None  # (T, V) bool, True where a point is present (None: every finite point)


def strip_size(rows_per_block: Sequence[int], frames: int = STRIP_FRAMES) -> tuple[int, int]:
    """(width, height) in pixels of the strips of blocks with these row counts (ground truth included)."""
    return (LABEL_WIDTH + frames * (CELL + STRIP_GAP) + STRIP_GAP,
            sum(TITLE_HEIGHT + n * (CELL + STRIP_GAP) for n in rows_per_block) + STRIP_GAP)


def plot_skeleton_strips(blocks: Sequence[tuple[str, StripRow, Sequence[StripRow]]],
                         edges: Sequence[tuple[int, int]], path: str | os.PathLike,
                         frames: int = STRIP_FRAMES) -> Path:
    """A PNG of figure 4: per block (sentence, ground truth, outputs) the sentence, then the ground
    truth's row (green) above each output's row (blue), each `frames` frames sampled uniformly over
    that row's own sequence. One scale per block, from the ground truth's points, so an output's
    size and position errors show; what falls outside a frame's square is cut off. Atomic; returns
    the path."""
    from PIL import Image, ImageDraw

    from harness.render import GENERATED_RGB, GROUND_TRUTH_RGB, check_edges, draw_skeleton, extent, to_pixels
    if not blocks:
        raise ValueError("plot_skeleton_strips needs at least one block")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    num_points = np.asarray(blocks[0][1].keypoints).shape[1]
    edge_arr = check_edges(edges, num_points)  # (E, 2)
    width, height = strip_size([1 + len(outputs) for _, _, outputs in blocks], frames)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    grey, top = (110, 110, 110), STRIP_GAP
    for title, truth, outputs in blocks:
        gt_xy, gt_present = _points(truth)
        lo, hi = extent(gt_xy[gt_present])
        # The block's scale, centred in each square: the data's aspect ratio is kept.
        w, h = CELL * (hi - lo) / float(max(hi - lo))
        draw.text((STRIP_GAP, top + 3), title[:(width - 2 * STRIP_GAP) // 6], fill="black")
        top += TITLE_HEIGHT
        for row, color in [(truth, GROUND_TRUTH_RGB)] + [(r, GENERATED_RGB) for r in outputs]:
            draw.text((STRIP_GAP, top + CELL // 2 - 12), row.label[:LABEL_WIDTH // 6 - 1], fill="black")
            if row.keypoints is None:
                draw.text((LABEL_WIDTH, top + CELL // 2 - 6), "(no output)", fill=grey)
            else:
                xy, present = _points(row)
                if xy.shape[1] != num_points:
                    raise ValueError(f"{row.label}: {xy.shape[1]} points, the ground truth has {num_points}")
                draw.text((STRIP_GAP, top + CELL // 2 + 2), f"{len(xy)} frames", fill=grey)  # length errors show
                for j, t in enumerate(np.linspace(0, len(xy) - 1, frames).round().astype(int)):
                    cell = Image.new("RGB", (CELL, CELL), (248, 248, 248))
                    cell_draw = ImageDraw.Draw(cell)
                    px = to_pixels(xy[t], lo, hi, (CELL - w) / 2, (CELL - h) / 2, w, h)  # (V, 2)
                    draw_skeleton(cell_draw, px, present[t], edge_arr, color)
                    cell_draw.text((2, 1), str(int(t) + 1), fill=grey)  # the frame's number, from 1
                    image.paste(cell, (LABEL_WIDTH + j * (CELL + STRIP_GAP), top))
            top += CELL + STRIP_GAP
    return _write_png(image, path)


def _points(row: StripRow) -> tuple[np.ndarray, np.ndarray]:
    """A row's x-y coordinates (T, V, 2) and which are drawn (T, V): present and finite."""
    xy = np.asarray(row.keypoints, dtype=np.float64)[..., :2]  # (T, V, 2)
    if xy.ndim != 3 or len(xy) < 1:
        raise ValueError(f"{row.label}: keypoints must have shape (T, V, C) with T >= 1, got {xy.shape}")
    present = np.isfinite(xy).all(-1)  # (T, V)
    if row.mask is not None:
        present &= np.asarray(row.mask, dtype=bool)
    return xy, present
