"""Evaluation metrics of the paper's tables (section 4.1 "Dataset and Evaluation Metrics", tables 1-5).

SLT (and SLP back-translation) is scored the way the sign-language translation field scores
PHOENIX14T (neccam/slt, Progressive Transformers), so our numbers are comparable in convention:

- BLEU-1..4: corpus BLEU from sacrebleu, *cumulative* BLEU-n (uniform weights 1/n over the orders
  1..n), no smoothing (an order with no match makes that BLEU-n exactly 0), no tokenization
  beyond whitespace (tokenize='none'). Both sides are lowercased and whitespace-normalized here
  (DESIGN: "on the whitespace-tokenized, lowercased text"); already-lowercased corpora such as
  PHOENIX14T are unaffected. Scale 0-100.
- ROUGE-L: per-sentence LCS F-measure with beta = 1.2, F = (1 + b^2) R P / (R + b^2 P), averaged
  over sentences, times 100, on the same lowercased whitespace tokens. Tokens are compared as
  whole unicode strings, so "grüße" matches only "grüße" (ASCII-only tokenizers would mangle
  umlauts). An empty hypothesis (or reference) scores 0 for its sentence.

SLP is scored on keypoints in normalized units (shoulder length 1, paper B.1):

- MPJPE: mean Euclidean joint error over frames and points present in both sequences. When the
  two sequences differ in length, the first min(T_pred, T_gt) frames are compared (the length
  error itself is not penalized by MPJPE; DTW-MJE sees the whole sequences).
- DTW-MJE: dynamic time warping of the two whole sequences with frame cost = mean Euclidean
  distance over the points present in both frames; the accumulated cost of the optimal path is
  divided by the number of path steps (a mean joint error per aligned frame pair).

Significance (DESIGN "paired bootstrap p-value"): sacrebleu's paired bootstrap resampling test
(Koehn 2004, as in Moses' bootstrap-hypothesis-difference-significance.pl) on BLEU-4.

CLI:  python -m harness.metrics --hyp HYP.txt --ref REF.txt [--json]
(one sentence per line; an empty line is an empty translation).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence

import numpy as np
from sacrebleu import sentence_bleu
from sacrebleu.metrics import BLEU
from sacrebleu.significance import PairedTest

ROUGE_BETA = 1.2
MAX_BLEU_ORDER = 4


# ----------------------------------------------------------------------------- text metrics


def _normalize(text: str) -> str:
    """Lowercase and collapse whitespace: the one text normalization every text metric shares."""
    return " ".join(text.lower().split())


def _check_pair(hyps: Sequence[str], refs: Sequence[str]) -> tuple[list[str], list[str]]:
    if len(hyps) != len(refs):
        raise ValueError(f"got {len(hyps)} hypotheses but {len(refs)} references; they must pair up")
    if len(hyps) == 0:
        raise ValueError("got 0 hypotheses and 0 references; a metric needs at least one sentence")
    return [_normalize(h) for h in hyps], [_normalize(r) for r in refs]


def _bleu_metric(order: int) -> BLEU:
    # smooth_method='none': the field reports unsmoothed corpus BLEU (sacrebleu's default is 'exp',
    # which would give BLEU-4 > 0 on a corpus without a single 4-gram match).
    # tokenize='none' + our _normalize: whitespace tokens only, as on PHOENIX14T.
    return BLEU(
        lowercase=False,  # already lowercased by _normalize
        tokenize="none",
        smooth_method="none",
        max_ngram_order=order,
        effective_order=False,
        force=True,
    )


def bleu(hyps: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU-1..4 (cumulative, unsmoothed, 0-100) of hyps against one reference each."""
    hyps_n, refs_n = _check_pair(hyps, refs)
    return {
        f"bleu{n}": float(_bleu_metric(n).corpus_score(hyps_n, [refs_n]).score)
        for n in range(1, MAX_BLEU_ORDER + 1)
    }


def sentence_bleu4(hyps: Sequence[str], refs: Sequence[str]) -> list[float]:
    """Each hypothesis' BLEU-4 (0-100) against its reference, to read samples side by side:
    sacrebleu's sentence_bleu, on corpus BLEU's tokens, with its exp smoothing (unsmoothed, a
    sentence without a 4-gram match scores 0 however close it is). Not a table metric."""
    hyps_n, refs_n = _check_pair(hyps, refs)
    return [float(sentence_bleu(h, [r], tokenize="none").score) for h, r in zip(hyps_n, refs_n)]


def _lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists (O(|a| |b|) DP, one row)."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for tok_a in a:
        cur = [0] * (len(b) + 1)
        for j, tok_b in enumerate(b, start=1):
            cur[j] = prev[j - 1] + 1 if tok_a == tok_b else max(prev[j], cur[j - 1])
        prev = cur
    return prev[-1]


def _rouge_l_sentence(hyp: list[str], ref: list[str], beta: float = ROUGE_BETA) -> float:
    """LCS F-measure of one sentence pair in [0, 1]; beta > 1 weights recall over precision."""
    lcs = _lcs_length(hyp, ref)
    if lcs == 0:  # also covers an empty hypothesis or reference
        return 0.0
    precision = lcs / len(hyp)
    recall = lcs / len(ref)
    return (1 + beta**2) * precision * recall / (recall + beta**2 * precision)


def rouge_l(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Sentence-averaged ROUGE-L F (beta = 1.2), times 100."""
    hyps_n, refs_n = _check_pair(hyps, refs)
    total = sum(_rouge_l_sentence(h.split(), r.split()) for h, r in zip(hyps_n, refs_n))
    return 100.0 * total / len(hyps_n)


def text_metrics(hyps: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    """BLEU-1..4 and ROUGE-L: {"bleu1", "bleu2", "bleu3", "bleu4", "rouge"}, all 0-100."""
    scores = bleu(hyps, refs)
    scores["rouge"] = rouge_l(hyps, refs)
    return scores


@contextlib.contextmanager
def _sacrebleu_seed(seed: int) -> Iterator[None]:
    # sacrebleu's PairedTest takes its seed only from the SACREBLEU_SEED environment variable;
    # set it for the duration of the test and restore it. (Process-global, so not thread-safe;
    # Ray runs trials in separate processes.)
    old = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SACREBLEU_SEED", None)
        else:
            os.environ["SACREBLEU_SEED"] = old


def _sentence_bleu_stats(metric: BLEU, hyps: list[str], refs: list[str]) -> list[tuple]:
    out = []
    for h, r in zip(hyps, refs):
        # corpus_score of a one-sentence corpus: the same sufficient statistics as
        # sentence_score, without its per-call advice to enable effective_order.
        s = metric.corpus_score([h], [[r]])
        out.append((s.sys_len, s.ref_len, tuple(s.counts), tuple(s.totals)))
    return out


def paired_bootstrap_bleu4(
    hyps_baseline: Sequence[str],
    hyps_system: Sequence[str],
    refs: Sequence[str],
    n_samples: int = 1000,
    seed: int = 12345,
) -> float:
    """p-value of the BLEU-4 difference between two systems on the same references.

    sacrebleu's paired bootstrap resampling (test_type='bs'): both systems are scored on the same
    n_samples resampled corpora; p = (#{resampled |diff| - mean |diff| > observed |diff|} + 1) /
    (n_samples + 1), so p is in (0, 1]. Small p: the difference is unlikely to be chance.

    One degenerate case is handled here: when the two systems' corpus BLEU-4 are equal (identical
    outputs, or both 0 because neither has a matching 4-gram), the observed difference is 0 and,
    when every resampled difference is 0 too, sacrebleu's strict '>' would report
    p = 1 / (n_samples + 1) ("significant"); a zero difference is no evidence, so we return 1.0.
    """
    if len(hyps_baseline) != len(hyps_system) or len(hyps_baseline) != len(refs):
        raise ValueError(
            f"got {len(hyps_baseline)} baseline hypotheses, {len(hyps_system)} system hypotheses "
            f"and {len(refs)} references; they must pair up"
        )
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if seed < 1:
        # sacrebleu treats a seed of 0 as "no seed" (it tests `if self._seed`), which would make
        # the p-value irreproducible.
        raise ValueError(f"seed must be >= 1 (sacrebleu treats 0 as unseeded), got {seed}")
    base_n, refs_n = _check_pair(hyps_baseline, refs)
    sys_n = [_normalize(h) for h in hyps_system]

    metric = _bleu_metric(MAX_BLEU_ORDER)
    if (_sentence_bleu_stats(metric, base_n, refs_n) == _sentence_bleu_stats(metric, sys_n, refs_n)
            or metric.corpus_score(base_n, [refs_n]).score == metric.corpus_score(sys_n, [refs_n]).score):
        return 1.0
    with _sacrebleu_seed(seed):
        test = PairedTest(
            named_systems=[("baseline", base_n), ("system", sys_n)],
            metrics={"BLEU": _bleu_metric(MAX_BLEU_ORDER)},
            references=[refs_n],
            test_type="bs",
            n_samples=n_samples,
        )
        _, scores = test()
    # scores["BLEU"] = [baseline Result, system Result]; the system's carries the p-value.
    return float(scores["BLEU"][1].p_value)


# ----------------------------------------------------------------------------- keypoint metrics


def _as_points(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 3:
        raise ValueError(f"{name} must have shape (T, V, C), got {arr.shape}")
    return arr


def _as_mask(mask, frames: int, points: int, name: str) -> np.ndarray:
    if mask is None:
        return np.ones((frames, points), dtype=bool)
    m = np.asarray(mask, dtype=bool)
    if m.shape != (frames, points):
        raise ValueError(f"{name} must have shape (T, V) = ({frames}, {points}), got {m.shape}")
    return m


def _check_points(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.shape[1:] != gt.shape[1:]:
        raise ValueError(f"pred has (V, C) = {pred.shape[1:]} but gt has {gt.shape[1:]}")
    if pred.shape[0] == 0 or gt.shape[0] == 0:
        raise ValueError(f"pred has {pred.shape[0]} frames and gt {gt.shape[0]}; both need >= 1")


def mpjpe(pred, gt, mask=None, pred_mask=None) -> float:
    """Mean per-joint position error over frames and points present in both sequences.

    pred: (T1, V, C), gt: (T2, V, C) in normalized units (numpy arrays or CPU tensors).
    mask: (T2, V) bool, True where the ground-truth point is present (default: all).
    pred_mask: (T1, V) bool, True where the predicted point is present (default: all; generated
      keypoints are always present).
    Only the first min(T1, T2) frames are compared. Raises ValueError when no point is present
    in both.
    """
    pred_a, gt_a = _as_points(pred, "pred"), _as_points(gt, "gt")
    _check_points(pred_a, gt_a)
    gt_m = _as_mask(mask, gt_a.shape[0], gt_a.shape[1], "mask")
    pred_m = _as_mask(pred_mask, pred_a.shape[0], pred_a.shape[1], "pred_mask")
    t = min(pred_a.shape[0], gt_a.shape[0])
    both = gt_m[:t] & pred_m[:t]  # (T, V)
    if not both.any():
        raise ValueError("no point is present in both pred and gt; MPJPE is undefined")
    err = np.linalg.norm(pred_a[:t] - gt_a[:t], axis=-1)  # (T, V)
    return float(err[both].mean())


def _frame_cost_matrix(
    pred: np.ndarray, gt: np.ndarray, pred_m: np.ndarray, gt_m: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """cost[i, j] = mean distance over points present in pred frame i and gt frame j.

    Returns (cost (T1, T2), defined (T1, T2) bool: the pair shares at least one present point).
    """
    t1, t2 = pred.shape[0], gt.shape[0]
    total = np.empty((t1, t2))
    count = np.empty((t1, t2), dtype=np.int64)
    # Rows in chunks: the full (T1, T2, V, C) difference of two 300-frame, 73-point sequences
    # would be ~160 MB; chunks keep it near 8 MB.
    rows = max(1, 1_000_000 // max(1, t2 * pred.shape[1] * pred.shape[2]))
    for a in range(0, t1, rows):
        b = min(t1, a + rows)
        dist = np.linalg.norm(pred[a:b, None] - gt[None, :], axis=-1)  # (rows, T2, V)
        both = pred_m[a:b, None, :] & gt_m[None, :, :]  # (rows, T2, V)
        count[a:b] = both.sum(-1)
        total[a:b] = np.where(both, dist, 0.0).sum(-1)
    defined = count > 0  # (T1, T2)
    cost = np.where(defined, total / np.maximum(count, 1), 0.0)  # (T1, T2)
    return cost, defined


def _dtw_path(cost: np.ndarray) -> list[tuple[int, int]]:
    """Optimal monotone warping path through cost (T1, T2) with steps (1,1), (1,0), (0,1).

    The accumulated matrix is filled one anti-diagonal at a time (each diagonal only depends on
    the two before it), so the inner work is vectorized. Ties prefer the diagonal step, then the
    step in pred, so the path (and the path-length normalization) is deterministic.
    """
    t1, t2 = cost.shape
    acc = np.full((t1 + 1, t2 + 1), np.inf)
    acc[0, 0] = 0.0
    for d in range(2, t1 + t2 + 1):  # d = i + j in 1-based accumulated coordinates
        i = np.arange(max(1, d - t2), min(t1, d - 1) + 1)
        j = d - i
        best = np.minimum(np.minimum(acc[i - 1, j - 1], acc[i - 1, j]), acc[i, j - 1])
        acc[i, j] = cost[i - 1, j - 1] + best
    path = [(t1 - 1, t2 - 1)]
    i, j = t1, t2
    while (i, j) != (1, 1):
        steps = ((i - 1, j - 1), (i - 1, j), (i, j - 1))
        i, j = min(steps, key=lambda s: acc[s])  # min keeps the first of equal values
        path.append((i - 1, j - 1))
    path.reverse()
    return path


def dtw_mje(pred, gt, mask=None, pred_mask=None) -> float:
    """Mean joint error after dynamic time warping of the two whole sequences.

    pred: (T1, V, C), gt: (T2, V, C); mask (T2, V) and pred_mask (T1, V) as in mpjpe.
    Frame cost: mean Euclidean distance over the points present in both frames. The optimal
    path's accumulated cost is divided by the number of path steps whose frames share a present
    point (pairs sharing none cost 0 and are not counted: there is nothing to compare).

    Not dtaidistance: its dtw_ndim uses the (squared) Euclidean distance between whole
    flattened frames and has no per-point mask, which is a different cost than the mean joint
    distance over present points; the DP below is the textbook one.
    """
    pred_a, gt_a = _as_points(pred, "pred"), _as_points(gt, "gt")
    _check_points(pred_a, gt_a)
    gt_m = _as_mask(mask, gt_a.shape[0], gt_a.shape[1], "mask")
    pred_m = _as_mask(pred_mask, pred_a.shape[0], pred_a.shape[1], "pred_mask")
    cost, defined = _frame_cost_matrix(pred_a, gt_a, pred_m, gt_m)
    if not defined.any():
        raise ValueError("no point is present in both pred and gt; DTW-MJE is undefined")
    path = _dtw_path(cost)
    rows, cols = np.array(path).T
    counted = defined[rows, cols]
    if not counted.any():
        raise ValueError("the DTW path pairs no frames sharing a present point; DTW-MJE is undefined")
    return float(cost[rows, cols].sum() / counted.sum())


# ----------------------------------------------------------------------------- CLI


class _CliError(Exception):
    pass


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except OSError as e:
        raise _CliError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise _CliError(f"{path}: byte {e.start} is not valid UTF-8") from None
    if text == "":
        return []
    # Split on "\n" only (str.splitlines would also split on unicode separators inside a
    # sentence); a final newline ends the last line rather than starting an empty one.
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.metrics",
        description="BLEU-1..4 (cumulative, unsmoothed, lowercased whitespace tokens) and "
        "ROUGE-L (beta 1.2, sentence-averaged) of a hypothesis file against a reference file, "
        "one sentence per line.",
    )
    parser.add_argument("--hyp", required=True, help="hypotheses, one per line (UTF-8)")
    parser.add_argument("--ref", required=True, help="references, one per line (UTF-8)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        hyps = _read_lines(args.hyp)
        refs = _read_lines(args.ref)
        if len(hyps) != len(refs):
            raise _CliError(
                f"{args.hyp} has {len(hyps)} lines but {args.ref} has {len(refs)}; they must pair up"
            )
        if not hyps:
            raise _CliError(f"{args.hyp} and {args.ref} are empty; nothing to score")
    except _CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    scores = text_metrics(hyps, refs)
    if args.json:
        print(json.dumps(scores))
    else:
        for n in range(1, MAX_BLEU_ORDER + 1):
            print(f"BLEU-{n}   {scores[f'bleu{n}']:6.2f}")
        print(f"ROUGE-L  {scores['rouge']:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
