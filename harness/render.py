"""Skeletons of text-to-sign results (paper section 7, figure 4: generated vs ground truth).

One GIF, two panels side by side: the generated keypoints and the ground truth, in the canonical
layout's skeleton (models.layout.CANONICAL.edges). Coordinates are drawn as in image space (y axis
pointing down), both panels on the same scale so size and position errors show. The shorter
sequence holds its last frame. Kept cheap for a study's artifacts: a small figure and at most
max_frames frames (evenly subsampled, with the frame duration stretched so playback keeps the real
speed). Pillow draws and writes the frames. `extent`, `to_pixels` and `draw_skeleton` are the
drawing both this GIF and figure 4's strips of still frames (`harness.figures`) use.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

MAX_FRAMES = 60
PANEL = 320  # pixels along a panel's longer side: large enough to tell handshapes apart
GAP = 8
# One colour per kind of skeleton, in the GIF and the strips alike (matplotlib's C0 and C2).
GENERATED_RGB = (31, 119, 180)
GROUND_TRUTH_RGB = (44, 160, 44)


def _check(name: str, x: np.ndarray) -> None:
    if x.ndim != 3 or x.shape[0] < 1 or x.shape[2] < 2:
        raise ValueError(f"{name} must have shape (T, V, C) with T >= 1 and C >= 2, got {x.shape}")


def check_edges(edges: Sequence[tuple[int, int]], num_points: int) -> np.ndarray:
    """The edges as an (E, 2) array of point indices, each in 0..num_points - 1 (ValueError otherwise)."""
    edge_arr = np.asarray(edges, dtype=np.int64).reshape(-1, 2)  # (E, 2)
    if edge_arr.size and (edge_arr.min() < 0 or edge_arr.max() >= num_points):
        raise ValueError(f"edges must index points 0..{num_points - 1}, got {edge_arr.min()}..{edge_arr.max()}")
    return edge_arr


def extent(*drawn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (lo, hi) x-y corners of every point in `drawn` (each (P, 2)), with a 5% margin: one scale
    for every panel that shows the same sentence, so size and position errors show."""
    points = np.concatenate([np.asarray(d, dtype=np.float64).reshape(-1, 2) for d in drawn])  # (P, 2)
    if points.size:
        lo, hi = points.min(0), points.max(0)
    else:
        lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    pad = 0.05 * float(max(hi - lo)) + 1e-3
    return lo - pad, hi + pad


def to_pixels(xy: np.ndarray, lo: np.ndarray, hi: np.ndarray, left: float, top: float, width: float,
              height: float) -> np.ndarray:
    """(..., 2) coordinates in [lo, hi] onto the box (left, top, width, height); y grows downwards."""
    return np.stack([left + (xy[..., 0] - lo[0]) / (hi[0] - lo[0]) * width,
                     top + (xy[..., 1] - lo[1]) / (hi[1] - lo[1]) * height], -1)


def draw_skeleton(draw, px: np.ndarray, present: np.ndarray, edges: np.ndarray, fill) -> None:
    """One frame: the edges between present points, then the points. px (V, 2) pixels, present (V,)."""
    for a, b in edges[present[edges[:, 0]] & present[edges[:, 1]]]:
        draw.line([tuple(px[a]), tuple(px[b])], fill=fill, width=2)
    for x, y in px[present]:
        draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=fill)


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
    edge_arr = check_edges(edges, num_points)  # (E, 2)
    if fps < 1 or max_frames < 1:
        raise ValueError(f"fps and max_frames must be >= 1, got {fps} and {max_frames}")

    gen_xy, gt_xy = gen[..., :2], gt[..., :2]  # (T, V, 2), (T2, V, 2)
    gen_mask = np.isfinite(gen_xy).all(-1)  # (T, V)
    gt_mask = gt_mask & np.isfinite(gt_xy).all(-1)  # (T2, V)

    total = max(gen.shape[0], gt.shape[0])
    frames = np.unique(np.linspace(0, total - 1, min(total, max_frames)).round().astype(int))
    # GIF stores frame delays in centiseconds: round to 10 ms here rather than let Pillow truncate.
    duration_ms = max(20, 10 * int(round(100.0 / fps * total / len(frames))))

    lo, hi = extent(gen_xy[gen_mask], gt_xy[gt_mask])  # one scale for both panels

    from PIL import Image, ImageDraw

    # Pillow draws the frames directly: matplotlib's canvas took ~0.1 s a frame, seconds per trial.
    width = int(PANEL * (hi[0] - lo[0]) / max(hi - lo))  # each panel keeps the data's aspect ratio
    height = int(PANEL * (hi[1] - lo[1]) / max(hi - lo))
    top = 18 if title else 4

    # Palette images (white, black, blue, green): a GIF of RGB frames would be quantized frame by frame.
    white, black, blue, green = 0, 1, 2, 3
    palette = [255, 255, 255, 0, 0, 0, *GENERATED_RGB, *GROUND_TRUTH_RGB]
    panels = [("generated", blue, gen_xy, gen_mask, GAP), ("ground truth", green, gt_xy, gt_mask, 2 * GAP + width)]
    images = []
    for t in frames:
        image = Image.new("P", (3 * GAP + 2 * width, top + 14 + height + GAP), white)
        image.putpalette(palette)
        draw = ImageDraw.Draw(image)
        if title:
            draw.text((GAP, 3), title, fill=black)
        for label, color, xy, mask, left in panels:
            k = min(int(t), xy.shape[0] - 1)  # the shorter sequence holds its last frame
            present = mask[k]  # (V,)
            px = to_pixels(xy[k], lo, hi, left, top + 14, width, height)  # (V, 2)
            draw.text((left, top), f"{label}  {k + 1}/{xy.shape[0]}", fill=black)
            draw_skeleton(draw, px, present, edge_arr, color)
        images.append(image)

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
