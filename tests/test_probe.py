"""harness.probe: table 3's top-k accuracy and the k-NN probe, on hand-made inputs with exact answers."""

from __future__ import annotations

import numpy as np
import pytest

from harness.probe import knn_accuracy, knn_predict, topk_accuracy


def test_topk_on_a_hand_made_logit_matrix():
    logits = np.array([
        [9.0, 1.0, 2.0, 3.0],  # label 0: rank 0
        [1.0, 2.0, 3.0, 4.0],  # label 1: beaten by 3 and 2 -> rank 2
        [5.0, 5.0, 5.0, 0.0],  # label 2: tied with 0 and 1, both lower ids -> rank 2
        [0.0, 1.0, 2.0, 3.0],  # label 0: last -> rank 3
        [4.0, 3.0, 2.0, 1.0],  # label 1: rank 1
    ])
    labels = np.array([0, 1, 2, 0, 1])
    acc = topk_accuracy(logits, labels, ks=(1, 2, 3, 4, 10))
    assert acc == {"top1": 20.0, "top2": 40.0, "top3": 80.0, "top4": 100.0, "top10": 100.0}


def test_topk_default_ks_and_bad_shapes():
    logits = np.eye(12)[[3, 4, 5, 6]]
    # row 3 (argmax 6), label 9: beaten by 6 and tied with the 8 lower ids 0..8 but 6 -> rank 9;
    # row 2 (argmax 5), label 11: beaten by 5, tied with 10 lower ids -> rank 11.
    assert topk_accuracy(logits, np.array([3, 4, 11, 9])) == {"top1": 50.0, "top5": 50.0, "top10": 75.0}
    with pytest.raises(ValueError, match="need logits"):
        topk_accuracy(np.zeros((3, 4)), np.zeros(2, int))
    with pytest.raises(ValueError, match="at least one row"):
        topk_accuracy(np.zeros((0, 4)), np.zeros(0, int))


def test_knn_on_a_hand_made_embedding_with_known_neighbours():
    # Train points on the unit circle at 0, 10, 90, 100, 180 degrees; cosine similarity is the angle's cosine.
    deg = np.radians([0, 10, 90, 100, 180])
    train = np.stack([np.cos(deg), np.sin(deg)], 1) * np.array([[1], [3], [2], [0.5], [1]])  # norms do not matter
    labels = np.array(["a", "a", "b", "b", "c"])
    qdeg = np.radians([4, 94, 170, 40, 130])
    query = np.stack([np.cos(qdeg), np.sin(qdeg)], 1)
    # 1-NN: 4 -> 0 (a), 94 -> 90 (b), 170 -> 180 (c), 40 -> 10 (a), 130 -> 100 (b)
    assert knn_predict(train, labels, query, k=1).tolist() == ["a", "b", "c", "a", "b"]
    # 3-NN at 170: 180 (c), 100 (b), 90 (b) -> b by majority; at 40: 10, 0 (a), 90 (b) -> a; at 130: 100, 90, 180 -> b
    assert knn_predict(train, labels, query, k=3).tolist() == ["a", "b", "b", "a", "b"]
    assert knn_accuracy(train, labels, query, np.array(["a", "b", "b", "b", "b"]), k=1) == 60.0


def test_knn_ties_go_to_the_larger_summed_similarity():
    train = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6], [0.6, 0.8]])
    labels = np.array([0, 1, 1, 0])
    # 2-NN of (1, 0.1): [1, 0] (label 0, sim .995) and [0.8, 0.6] (label 1, sim .85): one vote each, 0 wins on similarity.
    assert knn_predict(train, labels, np.array([[1.0, 0.1]]), k=2).tolist() == [0]
    with pytest.raises(ValueError, match="k must be"):
        knn_predict(train, labels, np.array([[1.0, 0.1]]), k=5)


def test_probe_metrics_overall_and_per_minimal_pair_channel():
    from harness.stages.probe import probe_metrics
    # Train: A and B differ only along x ("hand"), A and C only along y ("face"), far from D.
    train = np.array([[1.0, 0.0, 1.0], [1.2, 0.0, 1.0], [-1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, -1.0]])
    labels = np.array(["A", "A", "B", "C", "D"])
    query = np.array([[1.0, 0.1, 1.0],   # A: nearest A
                      [-1.0, 0.2, 1.0],  # B: nearest B
                      [0.9, 0.0, 1.0],   # C, but nearest A: the face pair fails on it
                      [0.0, 0.0, -1.0],  # D
                      [0.0, 0.0, 1.0]])  # E: not in train, left out of knn_acc
    qlabels = np.array(["A", "B", "C", "D", "E"])
    pairs = {"hand": [("A", "B")], "face": [("A", "C")], "hand+face": [("B", "E")]}
    m = probe_metrics(train, labels, query, qlabels, pairs)
    assert m["probe/knn_acc"] == 75.0  # A, B, D right; C wrong
    assert m["probe/pair_hand"] == 100.0 and m["probe/pair_hand_n"] == 2.0  # queries A, B among {A, B}
    assert m["probe/pair_face"] == 50.0 and m["probe/pair_face_n"] == 2.0  # queries A, C among {A, C}
    assert "probe/pair_both" not in m  # E has no train clip: the pair cannot be told apart
    assert set(probe_metrics(train, labels, query, qlabels, None)) == {"probe/knn_acc"}


def test_gloss_clips_cut_at_the_kept_boundaries():
    from harness.data.record import SignSequence
    from harness.stages.probe import gloss_clips
    kp = np.arange(10, dtype=np.float32)[:, None, None] * np.ones((10, 73, 2), np.float32)
    seq = SignSequence("s", kp, np.ones((10, 73), bool), "text", gloss="A B C", boundaries=[(1, 4), (5, 5), (6, 9)])
    clips = gloss_clips([seq, SignSequence("real", kp, np.ones((10, 73), bool), "no boundaries")])
    assert [c.text for c in clips] == ["A", "C"]  # B lost every frame to preprocessing
    assert clips[0].keypoints[:, 0, 0].tolist() == [1, 2, 3] and clips[1].num_frames == 3
