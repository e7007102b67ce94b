"""Animated skeletons for text-to-sign results (paper section 4.4, figure 5: generated vs ground truth).

One GIF, two panels side by side: the generated keypoints and the ground truth, in the canonical
layout's skeleton (models.layout.CANONICAL.edges). Coordinates are drawn as in image space (y axis
pointing down), both panels on the same scale so size and position errors show. The shorter
sequence holds its last frame. Kept cheap for a study's artifacts: a small figure and at most
max_frames frames (evenly subsampled, with the frame duration stretched so playback keeps the real
speed). matplotlib's Agg canvas draws each frame, Pillow writes the GIF.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

MAX_FRAMES = 60


def _check(name: str, x: np.ndarray) -> None:
    if x.ndim != 3 or x.shape[0] < 1 or x.shape[2] < 2:
        raise ValueError(f"{name} must have shape (T, V, C) with T >= 1 and C >= 2, got {x.shape}")


def render_skeleton_gif(
    generated,
    ground_truth,
    mask_gt,
    edges: Sequence[tuple[int, int]],
    path: str | os.PathLike,
    fps: int = 12,
    title: str = "",
    max_frames: int = MAX_FRAMES,
) -> Path:
    """Write an animated GIF of generated (T, V, C) next to ground_truth (T2, V, C).

    mask_gt: (T2, V) bool, True where the ground-truth point is present (None: all present);
    absent points and non-finite generated values are not drawn. Only x, y (the first two
    coordinates) are drawn. Written atomically; returns the path.
    """
    gen = np.asarray(generated, dtype=np.float64)  # (T, V, C)
    gt = np.asarray(ground_truth, dtype=np.float64)  # (T2, V, C)
    _check("generated", gen)
    _check("ground_truth", gt)
    if gen.shape[1] != gt.shape[1]:
        raise ValueError(f"generated has V = {gen.shape[1]} points but ground_truth has {gt.shape[1]}")
    num_points = gt.shape[1]
    gt_mask = np.ones(gt.shape[:2], dtype=bool) if mask_gt is None else np.asarray(mask_gt, dtype=bool)
    if gt_mask.shape != gt.shape[:2]:
        raise ValueError(f"mask_gt must have shape (T2, V) = {gt.shape[:2]}, got {gt_mask.shape}")
    edge_arr = np.asarray(edges, dtype=np.int64).reshape(-1, 2)  # (E, 2)
    if edge_arr.size and (edge_arr.min() < 0 or edge_arr.max() >= num_points):
        raise ValueError(f"edges must index points 0..{num_points - 1}, got {edge_arr.min()}..{edge_arr.max()}")
    if fps < 1 or max_frames < 1:
        raise ValueError(f"fps and max_frames must be >= 1, got {fps} and {max_frames}")

    gen_xy, gt_xy = gen[..., :2], gt[..., :2]  # (T, V, 2), (T2, V, 2)
    gen_mask = np.isfinite(gen_xy).all(-1)  # (T, V)
    gt_mask = gt_mask & np.isfinite(gt_xy).all(-1)  # (T2, V)

    total = max(gen.shape[0], gt.shape[0])
    frames = np.unique(np.linspace(0, total - 1, min(total, max_frames)).round().astype(int))
    # GIF stores frame delays in centiseconds: round to 10 ms here rather than let Pillow truncate.
    duration_ms = max(20, 10 * int(round(100.0 / fps * total / len(frames))))

    # One scale for both panels, from every drawn point, with a margin.
    drawn = np.concatenate([gen_xy[gen_mask], gt_xy[gt_mask]])  # (P, 2)
    if drawn.size:
        lo, hi = drawn.min(0), drawn.max(0)
    else:
        lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    pad = 0.05 * float(max(hi - lo)) + 1e-3
    lo, hi = lo - pad, hi + pad

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from PIL import Image

    fig = Figure(figsize=(5.0, 3.0), dpi=80)  # 400 x 240 pixels
    canvas = FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.86 if title else 0.92, wspace=0.05)
    if title:
        fig.suptitle(title, fontsize=9)
    panels = []
    for i, (label, color) in enumerate((("generated", "tab:blue"), ("ground truth", "tab:green"))):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(hi[1], lo[1])  # y grows downwards, as in image coordinates
        ax.set_aspect("equal", adjustable="box")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(label, fontsize=8)
        lines = LineCollection([], colors=color, linewidths=1.0)
        ax.add_collection(lines)
        dots = ax.scatter([], [], s=3, c=color)
        counter = ax.text(0.02, 0.02, "", transform=ax.transAxes, fontsize=7)
        panels.append((lines, dots, counter))

    def pose(xy: np.ndarray, mask: np.ndarray, t: int) -> tuple[list, np.ndarray]:
        t = min(t, xy.shape[0] - 1)  # the shorter sequence holds its last frame
        present = mask[t]  # (V,)
        keep = present[edge_arr[:, 0]] & present[edge_arr[:, 1]]  # (E,)
        segments = xy[t][edge_arr[keep]]  # (E', 2, 2)
        return list(segments), xy[t][present]

    images = []
    for t in frames:
        for (lines, dots, counter), xy, mask in zip(panels, (gen_xy, gt_xy), (gen_mask, gt_mask)):
            segments, points = pose(xy, mask, int(t))
            lines.set_segments(segments)
            dots.set_offsets(points if len(points) else np.empty((0, 2)))
            counter.set_text(f"{min(int(t), xy.shape[0] - 1) + 1}/{xy.shape[0]}")
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba())  # (H, W, 4) uint8
        images.append(Image.fromarray(rgba[..., :3].copy()))

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".gif", dir=out.parent)
    os.close(fd)
    try:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=duration_ms, loop=0, optimize=False)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return out
