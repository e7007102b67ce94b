"""harness.metrics: exact values on hand-built inputs (arithmetic in the comments)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.metrics import bleu, dtw_mje, mpjpe, paired_bootstrap_bleu4, rouge_l, sentence_bleu4, text_metrics

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- BLEU


def test_bleu_two_sentences_exact():
    hyps = ["the cat sat on mat", "a dog runs"]
    refs = ["the cat sat on the mat", "a dog runs fast"]
    # Sentence 1 (hyp 5 tokens, ref 6):
    #   1-grams the cat sat on mat: 5/5 match; 2-grams the-cat cat-sat sat-on on-mat: 3/4
    #   (on-mat is not in the ref); 3-grams the-cat-sat cat-sat-on sat-on-mat: 2/3;
    #   4-grams the-cat-sat-on cat-sat-on-mat: 1/2.
    # Sentence 2 (hyp 3, ref 4): 1-grams 3/3, 2-grams 2/2, 3-grams 1/1, 4-grams 0/0.
    # Corpus: p1 = 8/8, p2 = 5/6, p3 = 3/4, p4 = 1/2; c = 8, r = 10, BP = exp(1 - 10/8).
    bp = math.exp(1 - 10 / 8)
    got = bleu(hyps, refs)
    assert got["bleu1"] == pytest.approx(100 * bp * 1.0, rel=1e-9)
    assert got["bleu2"] == pytest.approx(100 * bp * (1.0 * 5 / 6) ** (1 / 2), rel=1e-9)
    assert got["bleu3"] == pytest.approx(100 * bp * (1.0 * 5 / 6 * 3 / 4) ** (1 / 3), rel=1e-9)
    assert got["bleu4"] == pytest.approx(100 * bp * (1.0 * 5 / 6 * 3 / 4 * 1 / 2) ** (1 / 4), rel=1e-9)


def test_sentence_bleu4_is_per_sentence_with_exp_smoothing():
    # "a b c d" vs "a b x c d": p1 = 4/4, p2 = 2/3, p3 = 0/2 and p4 = 0/1 smoothed ('exp': the k-th
    # order without a match counts 1 / 2^k of its n-grams): 1/(2*2), 1/(4*1); BP = exp(1 - 5/4).
    # The second pair is the same sentence once normalized (case, spaces); the third shares nothing.
    got = sentence_bleu4(["A b  c d", "The Cat", "x y"], ["a b x c d", "the cat", "a b"])
    assert got[0] == pytest.approx(100 * math.exp(1 - 5 / 4) * (1 * 2 / 3 * 1 / 4 * 1 / 4) ** (1 / 4), rel=1e-9)
    assert got[1] == pytest.approx(100.0) and got[2] == 0.0
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        sentence_bleu4(["a", "b"], ["a"])


def test_bleu_no_matching_trigrams_is_unsmoothed_zero():
    # hyp "a b c d" vs ref "a b x c d": p1 = 4/4, p2 = 2/3 (a-b, c-d), p3 = 0/2, p4 = 0/1.
    # c = 4, r = 5, BP = exp(1 - 5/4). No smoothing: BLEU-3 = BLEU-4 = 0 exactly
    # (sacrebleu's default 'exp' smoothing would make them > 0).
    bp = math.exp(1 - 5 / 4)
    got = bleu(["a b c d"], ["a b x c d"])
    assert got["bleu1"] == pytest.approx(100 * bp, rel=1e-9)
    assert got["bleu2"] == pytest.approx(100 * bp * math.sqrt(2 / 3), rel=1e-9)
    assert got["bleu3"] == 0.0
    assert got["bleu4"] == 0.0


def test_empty_hypothesis_counts_as_empty_translation():
    # Sentence 1 is empty (0 tokens, ref 2). Sentence 2 "the cat" = ref: p1 = 2/2, p2 = 1/1,
    # no 3-grams at all -> BLEU-3 = BLEU-4 = 0. c = 2, r = 4, BP = exp(1 - 4/2) = 1/e.
    # ROUGE-L: sentence 1 scores 0, sentence 2 scores 1 -> mean 0.5 -> 50.
    got = text_metrics(["", "the cat"], ["a b", "the cat"])
    assert got["bleu1"] == pytest.approx(100 / math.e, rel=1e-9)
    assert got["bleu2"] == pytest.approx(100 / math.e, rel=1e-9)
    assert got["bleu3"] == 0.0 and got["bleu4"] == 0.0
    assert got["rouge"] == pytest.approx(50.0)
    assert set(got) == {"bleu1", "bleu2", "bleu3", "bleu4", "rouge"}


def test_all_empty_hypotheses_score_zero():
    got = text_metrics(["", ""], ["a b", "c"])
    assert got == {"bleu1": 0.0, "bleu2": 0.0, "bleu3": 0.0, "bleu4": 0.0, "rouge": 0.0}


def test_lowercased_and_whitespace_normalized():
    got = text_metrics(["Der  Hund\tBELLT"], ["der hund bellt"])
    assert got["bleu1"] == pytest.approx(100.0) and got["rouge"] == pytest.approx(100.0)


def test_count_mismatch_names_both_counts():
    with pytest.raises(ValueError, match=r"2 hypotheses but 3 references"):
        text_metrics(["a", "b"], ["a", "b", "c"])


# ----------------------------------------------------------------------------- ROUGE-L


def test_rouge_l_beta_1_2_exact():
    # Pair 1: hyp "the cat was found under the bed" (7), ref "the cat was under the bed" (6).
    #   LCS = 6, P = 6/7, R = 1. F = 2.44 * P * R / (R + 1.44 P) = (14.64/7) / (15.64/7) = 14.64/15.64.
    # Pair 2: hyp "a b c d" (4), ref "a c e" (3). LCS = 2 (a c), P = 1/2, R = 2/3.
    #   F = 2.44 * (1/3) / (2/3 + 0.72) = (2.44/3) / (4.16/3) = 2.44/4.16.
    #   (beta matters: beta = 1 would give F1 = 2PR/(P+R) = 4/7 = 0.5714 instead of 0.5865.)
    f1 = 14.64 / 15.64
    f2 = 2.44 / 4.16
    got = rouge_l(["the cat was found under the bed", "a b c d"], ["the cat was under the bed", "a c e"])
    assert got == pytest.approx(100 * (f1 + f2) / 2, rel=1e-12)


def test_umlauts_are_kept():
    assert rouge_l(["grüße"], ["grusse"]) == 0.0
    assert rouge_l(["grüße"], ["grüße"]) == pytest.approx(100.0)
    assert bleu(["grüße"], ["grusse"])["bleu1"] == 0.0
    assert bleu(["grüße dich"], ["grüße dich"])["bleu2"] == pytest.approx(100.0)
    # Lowercasing keeps the umlaut: "Grüße" matches "grüße".
    assert rouge_l(["Grüße"], ["grüße"]) == pytest.approx(100.0)


# ----------------------------------------------------------------------------- MPJPE / DTW-MJE


def _line(xs):
    """A one-point sequence moving along x: (T, 1, 2)."""
    return np.array([[[x, 0.0]] for x in xs])


def test_mpjpe_constant_offset_and_mask():
    gt = np.zeros((2, 2, 2))
    pred = gt + np.array([3.0, 4.0])  # every point off by a 3-4-5 triangle
    assert mpjpe(pred, gt) == pytest.approx(5.0)
    pred[:, 1] += 100.0  # a huge error at point 1 ...
    mask = np.array([[True, False], [True, False]])  # ... where gt has no point
    assert mpjpe(pred, gt, mask=mask) == pytest.approx(5.0)
    pred_mask = np.array([[True, True], [False, True]])  # only (0, 0) present in both
    assert mpjpe(pred, gt, mask=mask, pred_mask=pred_mask) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="no point"):
        mpjpe(pred, gt, mask=np.zeros((2, 2), bool))


def test_mpjpe_compares_first_min_frames():
    # gt has 3 frames, pred 2: frames 0-1 compared, errors 1 and 2 -> 1.5; gt frame 2 ignored.
    assert mpjpe(_line([1, 3]), _line([0, 1, 50])) == pytest.approx(1.5)


def test_time_shifted_copy_dtw_zero_mpjpe_positive():
    gt = _line([0, 0, 1, 2, 3])
    pred = _line([0, 1, 2, 3, 3])  # the same motion one frame earlier
    # Frame-wise errors 0, 1, 1, 1, 0 -> MPJPE = 3/5.
    assert mpjpe(pred, gt) == pytest.approx(0.6)
    assert dtw_mje(pred, gt) == pytest.approx(0.0)


def test_dtw_mje_normalized_by_path_length():
    # pred one frame at 0, gt frames at 1 and 3: the only path is (0,0), (0,1), cost 1 + 3,
    # 2 steps -> 2.0.
    assert dtw_mje(_line([0]), _line([1, 3])) == pytest.approx(2.0)
    # Equal sequences offset by 1 everywhere: diagonal path, 3 steps of cost 1 -> 1.0.
    assert dtw_mje(_line([0, 10, 20]), _line([1, 11, 21])) == pytest.approx(1.0)


def test_dtw_mje_uses_only_points_present_in_both():
    gt = np.zeros((2, 2, 2))
    pred = np.zeros((2, 2, 2))
    pred[:, 1, 0] = 7.0  # point 1 is wrong by 7 ...
    mask = np.array([[True, False], [True, False]])  # ... but absent from gt
    assert dtw_mje(pred, gt) == pytest.approx(3.5)  # mean over 2 points: (0 + 7) / 2
    assert dtw_mje(pred, gt, mask=mask) == pytest.approx(0.0)


# ----------------------------------------------------------------------------- significance


REFS = [f"sentence number {i} is here" for i in range(20)]


def test_paired_bootstrap_clear_difference_is_significant():
    good = list(REFS)
    bad = [f"nothing alike {i}" for i in range(20)]
    p = paired_bootstrap_bleu4(bad, good, REFS, n_samples=200, seed=7)
    # Every resample favours `good`; p = (0 + 1) / (200 + 1).
    assert 0.0 < p <= 1.0
    assert p == pytest.approx(1 / 201)


def test_paired_bootstrap_identical_systems_large_p():
    hyps = [f"sentence {i} is there" for i in range(20)]
    assert paired_bootstrap_bleu4(hyps, list(hyps), REFS, n_samples=200) == 1.0


def test_paired_bootstrap_is_deterministic_and_in_range():
    a = [f"sentence number {i} was here" for i in range(20)]
    b = [f"sentence {i} is here" if i % 2 else f"number {i} is here" for i in range(20)]
    p1 = paired_bootstrap_bleu4(a, b, REFS, n_samples=200, seed=3)
    p2 = paired_bootstrap_bleu4(a, b, REFS, n_samples=200, seed=3)
    assert p1 == p2 and 0.0 < p1 <= 1.0


# ----------------------------------------------------------------------------- CLI


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "harness.metrics", *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_cli_json(tmp_path):
    hyp = tmp_path / "hyp.txt"
    ref = tmp_path / "ref.txt"
    hyp.write_text("\nthe cat\n", encoding="utf-8")  # first line empty: an empty translation
    ref.write_text("a b\nthe cat\n", encoding="utf-8")
    out = _cli("--hyp", str(hyp), "--ref", str(ref), "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert set(got) == {"bleu1", "bleu2", "bleu3", "bleu4", "rouge"}
    assert got["bleu1"] == pytest.approx(100 / math.e)  # same corpus as the empty-hypothesis test
    assert got["rouge"] == pytest.approx(50.0)
    plain = _cli("--hyp", str(hyp), "--ref", str(ref))
    assert plain.returncode == 0 and "BLEU-4" in plain.stdout and "ROUGE-L" in plain.stdout


def test_cli_line_count_mismatch_and_missing_file(tmp_path):
    hyp = tmp_path / "hyp.txt"
    ref = tmp_path / "ref.txt"
    hyp.write_text("a\nb\n", encoding="utf-8")
    ref.write_text("a\nb\nc\n", encoding="utf-8")
    out = _cli("--hyp", str(hyp), "--ref", str(ref))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert str(hyp) in lines[0] and str(ref) in lines[0] and " 2 " in lines[0] and " 3" in lines[0]
    missing = _cli("--hyp", str(tmp_path / "nope.txt"), "--ref", str(ref))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [missing.stderr.strip()]
    assert "nope.txt" in missing.stderr and "Traceback" not in missing.stderr


def test_bootstrap_zero_difference_is_not_significant():
    # Different outputs, but neither has a matching 4-gram: both BLEU-4 are 0, so every resampled
    # difference is 0 too; that is no evidence of a difference (p = 1, not 1 / (n + 1)).
    from harness.metrics import paired_bootstrap_bleu4
    refs = ["a b c d e", "c d e f g", "e f g h i"]
    assert paired_bootstrap_bleu4(["a b", "c d", "e f"], ["b a", "x y", "e"], refs, n_samples=200) == 1.0
