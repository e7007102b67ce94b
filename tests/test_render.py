"""harness.render: the generated-vs-ground-truth skeleton GIF (paper figure 5)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from harness.render import render_skeleton_gif
from models.layout import CANONICAL


def _walk(frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(1, CANONICAL.num_points, 2))  # (1, V, 2)
    drift = np.linspace(0.0, 1.0, frames)[:, None, None]  # (T, 1, 1)
    return (base + drift).astype(np.float32)  # (T, V, 2)


def test_gif_has_one_frame_per_step_of_the_longer_sequence(tmp_path):
    generated = _walk(9, 0)
    ground_truth = _walk(5, 1)
    mask = np.ones((5, CANONICAL.num_points), dtype=bool)
    mask[:, 8:27] = False  # a source without a face
    mask[2, 30] = False
    out = render_skeleton_gif(generated, ground_truth, mask, CANONICAL.edges, tmp_path / "a" / "s.gif",
                              fps=10, title="test")
    assert out == tmp_path / "a" / "s.gif"
    with Image.open(out) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == 9  # max(T, T2): the shorter sequence holds its last frame
        assert gif.info["duration"] == 100  # 1000 / fps
        assert gif.size[0] > gif.size[1]  # two panels side by side
    assert [p.name for p in out.parent.iterdir()] == ["s.gif"]  # no temp file left


def test_long_sequences_are_subsampled_to_60_frames_at_the_real_speed(tmp_path):
    generated = _walk(120, 2)
    out = render_skeleton_gif(generated, generated[:30], None, CANONICAL.edges, tmp_path / "l.gif", fps=12)
    with Image.open(out) as gif:
        assert gif.n_frames == 60
        assert gif.info["duration"] == 170  # 1000 / 12 * 120 / 60 = 166.7 ms, in GIF centiseconds


def test_shape_mismatches_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="V = 73 points but ground_truth has 50"):
        render_skeleton_gif(_walk(3, 0), np.zeros((3, 50, 2)), None, [], tmp_path / "x.gif")
    with pytest.raises(ValueError, match="mask_gt must have shape"):
        render_skeleton_gif(_walk(3, 0), _walk(3, 1), np.ones((2, 73), bool), CANONICAL.edges, tmp_path / "x.gif")
    with pytest.raises(ValueError, match="edges must index points"):
        render_skeleton_gif(_walk(3, 0), _walk(3, 1), None, [(0, 73)], tmp_path / "x.gif")
