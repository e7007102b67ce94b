"""harness.side_by_side and figure 4's strips: the word marking of translations.md (tables 6, 8),
the same sentences for every row, and the PNG's size and blocks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from harness import side_by_side
from harness.figures import CELL, LABEL_WIDTH, STRIP_GAP, TITLE_HEIGHT, StripRow, plot_skeleton_strips, strip_size
from harness.render import GENERATED_RGB, GROUND_TRUTH_RGB
from harness.results import (PoseSample, SplitResult, TaskResult, TrialResult, read_pose_samples, sample_indices,
                             write_pose_samples)
from models.layout import CANONICAL


def test_correct_words_are_bleu1s_clipped_matches():
    # "the" twice in the hypothesis, once in the reference: only the first is correct; case is ignored.
    assert side_by_side.mark_words("The sun the moon", "the sun is out") == ("**The** **sun** the moon", 2, 4)
    assert side_by_side.mark_words("rain rain rain", "rain and rain") == ("**rain** **rain** rain", 2, 3)
    assert side_by_side.mark_words("", "am montag") == ("", 0, 0)
    # Markdown in a word stays literal text (a table cell's pipe, emphasis marks).
    assert side_by_side.mark_words("a|b *x* c_d", "c_d a|b") == ("**a\\|b** \\*x\\* **c\\_d**", 2, 3)


def test_the_same_evenly_spaced_sentences_for_any_row():
    assert sample_indices(8) == [0, 1, 3, 5, 7]
    assert sample_indices(50) == [0, 12, 24, 36, 49]
    assert sample_indices(3) == [0, 1, 2]
    assert sample_indices(10, 1) == [0]


def _result(hyps: list[str], refs: list[str]) -> TrialResult:
    split = SplitResult({"bleu4": 0.0}, hyps, refs)
    return TrialResult(tasks={"sign2text": TaskResult(split, split)}, pretrain_metrics={}, stages={},
                       stage_seconds={}, seconds=0.0)


def test_translations_markdown_exactly():
    refs = ["am montag regen", "am dienstag sonne"]
    rows = [side_by_side.Row("ours", "ours-seed0", _result(["am montag schnee", "sonne am dienstag"], refs)),
            side_by_side.Row("base", "base-seed0", _result(["", "regen"], refs)),
            side_by_side.Row("lost", "lost-seed0", None),
            # A production baseline's finished trial: no sign-to-text, so no row in that section.
            side_by_side.Row("pt", "pt-seed0", _result(["x", "y"], refs), tasks=("text2sign",))]
    md = side_by_side.translations_markdown("main", ["sign2text"], rows, 0, "synth", "debug", synthetic=True)
    assert "| pt |" not in md
    rows = rows[:3]
    md = side_by_side.translations_markdown("main", ["sign2text"], rows, 0, "synth", "debug", synthetic=True)
    assert md.startswith("# main: translations side by side (tables 6 and 8 of the paper)\n\n"
                         "**Synthetic corpus: these sentences and translations come from the harness's generated "
                         "corpus, not PHOENIX14T or How2Sign.**\n\n"
                         "Corpus: synth. Profile: debug. Seed 0 of every row (trials ours-seed0, base-seed0, "
                         "lost-seed0). Test sentences 1, 2 of 2: evenly spaced over the test split, the same for "
                         "every row.\n")
    assert "the clipped 1-gram matches BLEU-1 counts" in md and "skeletons.png" not in md
    assert md.endswith("## Sign-to-text (SLT): each row's translation of the test keypoints\n\n"
                       "### Test sentence 1 of 2\n\n"
                       "| Row | Translation | Correct words |\n"
                       "|---|---|---:|\n"
                       "| reference | am montag regen | |\n"
                       "| ours | **am** **montag** schnee | 2 of 3 |\n"
                       "| base | (empty) | 0 of 0 |\n"
                       "| lost | (trial lost-seed0 did not finish) | |\n\n"
                       "### Test sentence 2 of 2\n\n"
                       "| Row | Translation | Correct words |\n"
                       "|---|---|---:|\n"
                       "| reference | am dienstag sonne | |\n"
                       "| ours | **sonne** **am** **dienstag** | 3 of 3 |\n"
                       "| base | regen | 0 of 1 |\n"
                       "| lost | (trial lost-seed0 did not finish) | |\n")
    real = side_by_side.translations_markdown("main", ["sign2text"], rows[:1], 0, "pt:/data", "paper", synthetic=False)
    assert "Synthetic" not in real


def _walk(frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(1, CANONICAL.num_points, 2))  # (1, V, 2)
    return (base + np.linspace(0.0, 0.5, frames)[:, None, None]).astype(np.float32)  # (T, V, 2)


def _has(image: np.ndarray, rgb: tuple[int, int, int]) -> bool:
    return bool((image == np.asarray(rgb, dtype=np.uint8)).all(-1).any())


def test_strip_has_one_block_per_sentence_ground_truth_above_each_row(tmp_path):
    truth = StripRow("ground truth", _walk(20, 0), np.ones((20, CANONICAL.num_points), bool))
    blocks = [("sentence a", truth, [StripRow("ours", _walk(13, 1)), StripRow("base", None)]),
              ("sentence b", truth, [StripRow("ours", _walk(30, 2)), StripRow("base", _walk(5, 3))])]
    out = plot_skeleton_strips(blocks, CANONICAL.edges, tmp_path / "s.png", frames=6)
    assert strip_size([3, 3], 6) == (LABEL_WIDTH + 6 * (CELL + STRIP_GAP) + STRIP_GAP,
                                     2 * (TITLE_HEIGHT + 3 * (CELL + STRIP_GAP)) + STRIP_GAP)
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size == strip_size([3, 3], 6)
        pixels = np.asarray(png.convert("RGB"))  # (H, W, 3)
    # Each row's band: the ground truth green, an output blue, a row without output neither.
    for block in range(2):
        top = STRIP_GAP + block * (TITLE_HEIGHT + 3 * (CELL + STRIP_GAP)) + TITLE_HEIGHT
        bands = [pixels[top + r * (CELL + STRIP_GAP):top + r * (CELL + STRIP_GAP) + CELL, LABEL_WIDTH:]
                 for r in range(3)]
        assert _has(bands[0], GROUND_TRUTH_RGB) and not _has(bands[0], GENERATED_RGB)
        assert _has(bands[1], GENERATED_RGB) and not _has(bands[1], GROUND_TRUTH_RGB)
        assert _has(bands[2], GENERATED_RGB) == (block == 1)
        # Six frames drawn in each drawn row: every frame's square has the row's colour.
        for r, rgb in ((0, GROUND_TRUTH_RGB), (1, GENERATED_RGB)):
            for j in range(6):
                left = j * (CELL + STRIP_GAP)
                assert _has(bands[r][:, left:left + CELL], rgb), (block, r, j)
    with pytest.raises(ValueError, match="ours: 50 points, the ground truth has 73"):
        plot_skeleton_strips([("s", truth, [StripRow("ours", np.zeros((3, 50, 2)))])], CANONICAL.edges,
                             tmp_path / "x.png")


def test_pose_samples_round_trip_and_a_damaged_file_reads_as_none(tmp_path):
    samples = [PoseSample(i, f"satz {i}", _walk(4 + i, i), _walk(6, 9), np.ones((6, CANONICAL.num_points), bool))
               for i in (0, 3)]
    write_pose_samples(samples, tmp_path / "t" / "pose_samples.npz")
    back = read_pose_samples(tmp_path / "t" / "pose_samples.npz")
    assert [(s.index, s.text, s.generated.shape) for s in back] == [(0, "satz 0", (4, 73, 2)), (3, "satz 3", (7, 73, 2))]
    assert np.array_equal(back[1].generated, samples[1].generated) and back[0].mask.dtype == bool
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    assert read_pose_samples(tmp_path / "bad.npz") is None and read_pose_samples(tmp_path / "none.npz") is None
    whole = (tmp_path / "t" / "pose_samples.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(whole[:len(whole) // 2])  # a truncated copy
    assert read_pose_samples(tmp_path / "cut.npz") is None


def test_write_draws_the_strip_from_the_rows_samples(tmp_path):
    refs = [f"satz {i}" for i in range(8)]
    split = SplitResult({"bleu4": 0.0}, refs, refs)
    result = TrialResult(tasks={"text2sign": TaskResult(split, split)}, pretrain_metrics={}, stages={},
                         stage_seconds={}, seconds=0.0)
    mask = np.ones((6, CANONICAL.num_points), bool)
    samples = [PoseSample(i, refs[i], _walk(5, i), _walk(6, 9), mask) for i in sample_indices(8)]
    rows = [side_by_side.Row("ours", "ours-seed0", result, samples),
            side_by_side.Row("base", "base-seed0", result, samples[:2])]  # its other sentences are missing
    files = side_by_side.write("main", ("text2sign",), rows, 0, tmp_path, "synth", "debug")
    assert files == [tmp_path / "translations.md", tmp_path / "skeletons.png"]
    with Image.open(tmp_path / "skeletons.png") as png:
        assert png.size == strip_size([3] * 5)  # five sentences: ground truth, ours, base
    md = (tmp_path / "translations.md").read_text()
    assert "## Text-to-sign (SLP): the judge's back-translation" in md and "skeletons.png" in md
    assert side_by_side.write("rec", ("recognition",), rows, 0, tmp_path / "r", "synth", "debug") == []
