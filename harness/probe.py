"""Measures of a representation itself (paper section 5): top-k recognition accuracy (table 3's
Top-1/5/10) and a k-nearest-neighbour probe (beyond the paper: how well z alone tells glosses apart,
with nothing trained on top).

Pure numpy; rows are items, columns classes (logits) or feature dimensions (embeddings).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """{"top1": ..., "top5": ..., "top10": ...} in percent: the share of rows whose label is among
    the k highest logits. Ties are broken towards the lower class id (a stable sort), so the result
    is exact; k above the number of classes counts every row as a hit."""
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"need logits (B, K) and labels (B,), got {logits.shape} and {labels.shape}")
    if not len(labels):
        raise ValueError("topk_accuracy needs at least one row")
    # Rank of each row's label: how many classes beat it (higher logit, or equal and a lower id).
    own = logits[np.arange(len(labels)), labels][:, None]  # (B, 1)
    ids = np.arange(logits.shape[1])[None, :]
    rank = ((logits > own) | ((logits == own) & (ids < labels[:, None]))).sum(axis=1)  # (B,)
    return {f"top{k}": float(100.0 * (rank < k).mean()) for k in ks}


def knn_predict(train: np.ndarray, train_labels: np.ndarray, query: np.ndarray, k: int = 1) -> np.ndarray:
    """The label each query row gets from its k nearest training rows by cosine similarity:
    the majority label, ties broken by the summed similarity, then by the nearest neighbour."""
    train, query = np.asarray(train, dtype=np.float64), np.asarray(query, dtype=np.float64)
    train_labels = np.asarray(train_labels)
    if train.ndim != 2 or query.ndim != 2 or train.shape[1] != query.shape[1] or len(train_labels) != len(train):
        raise ValueError(f"need train (N, D), train_labels (N,), query (M, D); got {train.shape}, "
                         f"{train_labels.shape}, {query.shape}")
    if not 1 <= k <= len(train):
        raise ValueError(f"k must be in [1, {len(train)}], got {k}")

    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    sim = unit(query) @ unit(train).T  # (M, N)
    nearest = np.argsort(-sim, axis=1, kind="stable")[:, :k]  # (M, k), nearest first
    out = []
    for row, idx in zip(sim, nearest):
        votes: dict = {}
        for rank, j in enumerate(idx):
            n, s, first = votes.get(train_labels[j], (0, 0.0, rank))
            votes[train_labels[j]] = (n + 1, s + row[j], first)
        out.append(max(votes, key=lambda lab: (votes[lab][0], votes[lab][1], -votes[lab][2])))
    return np.asarray(out)


def knn_accuracy(train: np.ndarray, train_labels: np.ndarray, query: np.ndarray, query_labels: np.ndarray,
                 k: int = 1) -> float:
    """Percent of query rows whose k-NN label (knn_predict) is their own."""
    pred = knn_predict(train, train_labels, query, k)
    return float(100.0 * (pred == np.asarray(query_labels)).mean())


def paired_bootstrap_accuracy(correct_baseline: np.ndarray, correct_system: np.ndarray, n_samples: int = 1000,
                              seed: int = 12345) -> float:
    """p-value of the accuracy difference of two systems on the same items (bool vectors, one entry
    per item), by paired bootstrap as sacrebleu's for BLEU (harness.metrics.paired_bootstrap_bleu4):
    p = (#{|resampled diff - mean resampled diff| > |observed diff|} + 1) / (n_samples + 1); a zero
    observed difference is no evidence: 1.0."""
    a, b = np.asarray(correct_baseline, dtype=np.float64), np.asarray(correct_system, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"need two equal, non-empty vectors of per-item correctness, got {a.shape} and {b.shape}")
    observed = b.mean() - a.mean()
    if observed == 0:
        return 1.0
    idx = np.random.default_rng(seed).integers(0, len(a), (n_samples, len(a)))  # (S, n) resampled items
    diffs = b[idx].mean(axis=1) - a[idx].mean(axis=1)  # (S,)
    return float(((np.abs(diffs - diffs.mean()) > abs(observed)).sum() + 1) / (n_samples + 1))
