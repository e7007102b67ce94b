"""Figure 5 (paper section 5): the zero-shot t-SNE of z for the unseen corpus's 10 most frequent
glosses, drawn by every trial whatever its tasks, through the pipeline on a tiny pretraining: the
PNG, one point per drawn clip (at most POINTS_PER_GLOSS of each gloss), seeded, cached."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
from PIL import Image

from harness.cache import StageCache
from harness.config import apply_overrides
from harness.data.synth.isolated import clip_counts, unseen_inventory
from harness.figures import tsne_2d
from harness.loop import local_runtime
from harness.pipeline import figure_files, run_trial
from harness.stages import run_order, stage_keys
from harness.stages.figure5 import POINTS_PER_GLOSS, most_frequent

TASKS = ()  # no task at all: the figure is the pretraining's, not recognition's


def test_most_frequent_breaks_ties_by_name():
    assert most_frequent(["B", "A", "C", "C", "B", "D"], 3) == ["B", "C", "A"]


def test_tsne_is_seeded():
    z = np.random.default_rng(0).normal(size=(30, 8))
    assert np.array_equal(tsne_2d(z, 0), tsne_2d(z, 0))
    assert tsne_2d(z, 0).shape == (30, 2)


def test_every_trial_draws_figure5():
    for tasks in (("sign2text",), ("text2sign",), ("recognition",), ()):
        assert {"isolated", "figure5"} <= set(run_order(tasks))


def test_figure5_png_has_a_point_per_drawn_clip_of_the_ten_most_frequent_glosses(tiny_cfg, tmp_path):
    cfg = tiny_cfg
    cache = StageCache(tmp_path / "cache")
    result, _ = run_trial(cfg, TASKS, cache, local_runtime(lambda s: None))
    assert result.stages["figure5"] == "computed" and not result.tasks
    r = cfg.recognition
    counts = clip_counts(r.seed, r.glosses, r.train_per_gloss, r.dev_per_gloss, r.test_per_gloss)
    names = [s.gloss for s in unseen_inventory(r.seed, r.glosses)]
    total = Counter({g: sum(counts[split][i] for split in counts) for i, g in enumerate(names)})
    top = most_frequent(list(total.elements()))
    assert len(top) == 10 and r.glosses > 10

    png, = figure_files(cfg, TASKS, cache)
    assert png.name == "tsne.png" and Image.open(png).size[0] > 300
    points = json.loads((png.parent / "points.json").read_text())
    drawn = {g: min(total[g], POINTS_PER_GLOSS) for g in top}
    assert max(total.values()) > POINTS_PER_GLOSS  # the cap is exercised at this size
    assert Counter(p["gloss"] for p in points) == drawn and len(points) == sum(drawn.values())

    # Seeded: the figure computed again from the same pretraining has the same points.
    shutil.rmtree(png.parent)
    again, _ = run_trial(cfg, TASKS, cache, local_runtime(lambda s: None))
    assert again.stages["figure5"] == "computed" and again.stages["pretrain"] == "cached"
    assert json.loads((png.parent / "points.json").read_text()) == points
    assert stage_keys(cfg, TASKS)["figure5"] == png.parent.name
    # And a rerun costs nothing: the entry is loaded.
    third, _ = run_trial(cfg, TASKS, cache, local_runtime(lambda s: None))
    assert third.stages["figure5"] == "cached" and figure_files(cfg, TASKS, cache) == [png]
