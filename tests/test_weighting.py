"""models/weighting.py: eq. 1 on a hand-built 8-point, 3-frame, 1-coordinate sequence.

Layout: body 0-1, face 2-3, left hand 4-5 (wrist 4), right hand 6-7 (wrist 6). Population
variances over frames (divide by n):
  body  p0 = [0, 0, 0] -> 0;  p1 = [0, 1, 2] -> 2/3;                     sigma_b  = 1/3
  face  p2 = [1, 1, 1], p3 = [3, 5, 1]; centroid [2, 3, 1]
        -> p2' = [-1, -2, 0], p3' = [1, 2, 0], each 2/3;                 sigma_nf = 2/3
  hands p5 - p4 = [0, 1, 0] -> 2/9; p7 - p6 = [1, -1, 1] -> 8/9 (wrists excluded); sigma_rh = 5/9
  S = 14/9; w^b = 1 - 2 (1/3) / S = 4/7, w^nf = 5/14, w^rh = 3/7
  usable (body = 1): face (5/14) / (4/7) = 5/8, hands (3/7) / (4/7) = 3/4.
"""

import math

import numpy as np
import pytest
import torch

from harness.config import apply_overrides, load_profile
from models.layout import CANONICAL
from models.weighting import (
    PAPER_FPW,
    apw_weights,
    dataset_part_variances,
    eq1_raw_weights,
    fpw_part_weights,
    fpw_weights,
    group_weights,
    loss_weights,
    part_variances,
    point_variances,
    summarize,
    usable_weights,
)

PARTS = {"body": (0, 1), "face": (2, 3), "left_hand": (4, 5), "right_hand": (6, 7)}
LW, RW = 4, 6


def sequence(body_p1=(0.0, 1.0, 2.0)) -> tuple[torch.Tensor, torch.Tensor]:
    cols = [
        (0.0, 0.0, 0.0), body_p1,
        (1.0, 1.0, 1.0), (3.0, 5.0, 1.0),
        (10.0, 11.0, 12.0), (10.0, 12.0, 12.0),
        (0.0, 0.0, 0.0), (1.0, -1.0, 1.0),
    ]
    x = torch.tensor(cols).T.reshape(1, 3, 8, 1)  # (B, T, V, C)
    return x, torch.ones(1, 3, 8, dtype=torch.bool)


def test_point_and_part_variances_exact():
    x, m = sequence()
    var, contributes = point_variances(x, m, PARTS, LW, RW)
    expected = torch.tensor([[0.0, 2 / 3, 2 / 3, 2 / 3, 0.0, 2 / 9, 0.0, 8 / 9]])
    assert torch.allclose(var, expected, atol=1e-6)
    assert contributes.tolist() == [[True, True, True, True, False, True, False, True]]  # wrists excluded
    sigma, count = part_variances(x, m, PARTS, LW, RW)
    assert torch.allclose(sigma, torch.tensor([[1 / 3, 2 / 3, 5 / 9]]), atol=1e-6)
    assert count.tolist() == [[2.0, 2.0, 2.0]]


def test_eq1_raw_and_usable_exact():
    x, m = sequence()
    sigma, count = part_variances(x, m, PARTS, LW, RW)
    raw = eq1_raw_weights(sigma, count > 0)
    assert torch.allclose(raw, torch.tensor([[4 / 7, 5 / 14, 3 / 7]]), atol=1e-6)
    w = apw_weights(x, m, PARTS, LW, RW)
    assert w.shape == (1, 8)
    assert torch.allclose(w, torch.tensor([[1.0, 1.0, 5 / 8, 5 / 8, 3 / 4, 3 / 4, 3 / 4, 3 / 4]]), atol=1e-6)


def test_dominant_body_gives_negative_raw_weight_and_the_floor_applies():
    # body p1 = [0, 2, 4]: sigma_b = 4/3, S = 23/9, w^b = -1/23, w^nf = 5/23, w^rh = 6/23.
    x, m = sequence(body_p1=(0.0, 2.0, 4.0))
    sigma, count = part_variances(x, m, PARTS, LW, RW)
    raw = eq1_raw_weights(sigma, count > 0)
    assert torch.allclose(raw, torch.tensor([[-1 / 23, 5 / 23, 6 / 23]]), atol=1e-6)
    usable = usable_weights(sigma, count > 0, floor=0.05)  # body clamps to 0.05, then body = 1
    assert torch.allclose(usable, torch.tensor([[1.0, 100 / 23, 120 / 23]]), atol=1e-5)


def test_masked_points_are_left_out():
    x, m = sequence(body_p1=(0.0, 99.0, 4.0))
    m[0, 1, 1] = False  # body p1 absent at frame 1: variance of [0, 4] = 4, the 99 is never read
    m[0, 0, 3] = False  # face p3 absent at frame 0: the centroid there is p2 alone
    x[0, 0, 3] = float("nan")  # and an absent value is never read either
    m[0, 2, 6] = False  # right wrist absent at frame 2: p7 counts at frames 0, 1 only
    var, contributes = point_variances(x, m, PARTS, LW, RW)
    # face frame 0: p2' = 0; frames 1, 2: p2' = -2, 0 -> [0, -2, 0] var 8/9; p3' over frames 1, 2 = [2, 0] var 1
    # p7 - p6 over frames 0, 1 = [1, -1] -> 1
    assert torch.allclose(var[0, [1, 2, 3, 7]], torch.tensor([4.0, 8 / 9, 1.0, 1.0]), atol=1e-6)
    assert contributes[0].tolist() == [True, True, True, True, False, True, False, True]
    m[0, :2, 5] = False  # left p5 present in one frame only: it no longer contributes
    _, contributes = point_variances(x, m, PARTS, LW, RW)
    assert not contributes[0, 5]


def test_absent_face_drops_out_and_weights_fall_back_to_uniform():
    x, m = sequence()
    m[:, :, 2:4] = False  # no face, as in the PHOENIX14T skeletons
    sigma, count = part_variances(x, m, PARTS, LW, RW)
    assert count[0].tolist() == [2.0, 0.0, 2.0]
    raw = eq1_raw_weights(sigma, count > 0)
    # Eq. 1 with two groups: S = 1/3 + 5/9 = 8/9, w^b = 1 - (2/3)/(8/9) = 1/4, w^rh = 0 identically.
    assert torch.allclose(raw, torch.tensor([[0.25, 0.0, 0.0]]), atol=1e-6)
    w = apw_weights(x, m, PARTS, LW, RW)
    assert torch.equal(w, torch.tensor([[1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]]))


def test_static_segment_does_not_divide_by_zero():
    x = torch.zeros(2, 4, 8, 1)
    w = apw_weights(x, torch.ones(2, 4, 8, dtype=torch.bool), PARTS, LW, RW)
    assert torch.equal(w, torch.ones(2, 8))


def test_batch_is_per_sample():
    a, m = sequence()
    b, _ = sequence(body_p1=(0.0, 2.0, 4.0))
    w = apw_weights(torch.cat([a, b]), torch.cat([m, m]), PARTS, LW, RW)
    assert torch.allclose(w[0], apw_weights(a, m, PARTS, LW, RW)[0])
    assert torch.allclose(w[1, 2], torch.tensor(100 / 23), atol=1e-5)


def test_fpw_from_variances_reproduces_the_paper_numbers():
    # Variances in the ratio 1.35 : 1.18 : 1.17 give the paper's FPW (body 1.0, face 1.17, hands 1.18).
    w = fpw_part_weights({"body": 1.35, "face": 1.18, "hands": 1.17})
    assert w == pytest.approx(PAPER_FPW, abs=1e-9)
    assert fpw_part_weights({"body": 1.0, "face": None, "hands": 2.0}) == {"body": 1.0, "face": 0.0, "hands": 1.0}
    assert fpw_part_weights({"body": 1.0, "face": math.nan, "hands": 2.0})["face"] == 0.0
    with pytest.raises(ValueError, match="unknown groups"):
        fpw_part_weights({"body": 1.0, "arms": 1.0})


def test_fpw_from_samples_pools_over_the_data_set():
    x, m = sequence()
    w = fpw_part_weights([(x, m)], PARTS, LW, RW)
    assert w == pytest.approx({"body": 1.0, "face": 5 / 8, "hands": 3 / 4}, abs=1e-6)
    # A second sample without a face and with a body p1 = [0, 2, 4] (variance 8/3): face comes from
    # the first sample only, body pools 4 point variances: (0 + 2/3 + 0 + 8/3) / 4 = 5/6.
    y, my = sequence(body_p1=(0.0, 2.0, 4.0))
    my[:, :, 2:4] = False
    v = dataset_part_variances([(x[0].numpy(), m[0].numpy()), (y, my)], PARTS, LW, RW)  # unbatched numpy works too
    assert v == pytest.approx({"body": 5 / 6, "face": 2 / 3, "hands": 5 / 9}, abs=1e-6)


def test_fpw_weights_and_dispatch_on_the_canonical_layout():
    w = fpw_weights(PAPER_FPW, CANONICAL.parts, 73)
    expected = torch.tensor([1.0] * 8 + [1.17] * 19 + [1.18] * 46)
    assert torch.allclose(w, expected)
    with pytest.raises(ValueError, match="lacks"):
        fpw_weights({"body": 1.0, "face": 1.0}, CANONICAL.parts, 73)
    seg, mask = torch.randn(2, 5, 73, 2), torch.ones(2, 5, 73, dtype=torch.bool)
    assert torch.equal(loss_weights("none", seg, mask), torch.ones(2, 73))
    assert torch.allclose(loss_weights("fpw", seg, mask, fixed=w), w.expand(2, 73))
    apw = loss_weights("apw", seg, mask, CANONICAL.parts, CANONICAL.left_wrist, CANONICAL.right_wrist)
    assert apw.shape == (2, 73) and bool((apw[:, 0] == 1.0).all()) and bool((apw > 0).all())
    with pytest.raises(ValueError, match="unknown weighting"):
        loss_weights("adaptive", seg, mask)


def test_unknown_part_names_are_rejected():
    with pytest.raises(ValueError, match="unknown parts"):
        apw_weights(torch.zeros(1, 3, 2, 1), torch.ones(1, 3, 2, dtype=torch.bool), {"torso": (0, 1)}, 0, 1)
    assert np.isfinite(apw_weights(*sequence(), PARTS, LW, RW).numpy()).all()


def test_pretrain_stage_anchors_each_hand_on_its_own_wrist():
    """The pretrain stage's call of eq. 1 on the canonical layout: each hand rigid on its OWN wrist
    (wrist-relative variance 0) while the two wrists move differently. Then sigma_rh = 0, so
    w^nf = sigma_rh / S = 0 is floored, and the face weight is floor / w^b with
    w^b = (sigma_nf - sigma_b) / (sigma_b + sigma_nf). Anchoring a hand on the other wrist gives
    the hands a large variance and a different face weight."""
    from harness.stages.pretrain import loss_weights as stage_weights
    from models.weighting import DEFAULT_FLOOR

    g = torch.Generator().manual_seed(0)
    t, parts = 15, CANONICAL.parts
    x = torch.zeros(1, t, CANONICAL.num_points, 2)
    x[0, :, list(parts["body"])] = 0.1 * torch.randn(t, len(parts["body"]), 2, generator=g)
    x[0, :, CANONICAL.right_wrist] += torch.linspace(0, 1, t).unsqueeze(-1)  # the wrists part ways
    x[0, :, CANONICAL.left_wrist] -= torch.linspace(0, 1, t).unsqueeze(-1)
    x[0, :, list(parts["face"])] = torch.randn(t, len(parts["face"]), 2, generator=g)
    for hand, wrist in (("left_hand", CANONICAL.left_wrist), ("right_hand", CANONICAL.right_wrist)):
        idx = list(parts[hand])
        x[0, :, idx] = x[0, :, wrist : wrist + 1] + torch.randn(1, len(idx), 2, generator=g)  # rigid
        x[0, :, idx[0]] = x[0, :, wrist]  # the hand's own wrist point
    mask = torch.ones(1, t, CANONICAL.num_points, dtype=torch.bool)
    var, _ = part_variances(x, mask, parts, CANONICAL.left_wrist, CANONICAL.right_wrist)
    s_b, s_nf, s_rh = (float(v) for v in var[0])
    assert s_rh == pytest.approx(0.0, abs=1e-10) and s_nf > s_b > 0
    cfg = load_profile("default")
    assert cfg.pretrain.weighting == "apw" and cfg.pretrain.weight_floor == DEFAULT_FLOOR
    w = stage_weights(cfg, x, mask, None).points[0]
    w_b = (s_nf - s_b) / (s_b + s_nf)
    assert float(w[parts["face"][0]]) == pytest.approx(DEFAULT_FLOOR / w_b, rel=1e-4)
    assert float(w[parts["left_hand"][0]]) == pytest.approx((s_nf / (s_b + s_nf)) / w_b, rel=1e-4)
    assert float(w[parts["body"][0]]) == 1.0
    # The floor and the normalisation are the config's (pretrain.weight_floor, pretrain.weight_norm).
    floor = stage_weights(apply_overrides(cfg, {"pretrain.weight_floor": 0.1}), x, mask, None).points[0]
    assert float(floor[parts["face"][0]]) == pytest.approx(0.1 / w_b, rel=1e-4)
    raw = stage_weights(apply_overrides(cfg, {"pretrain.weight_norm": "none"}), x, mask, None).points[0]
    assert float(raw[parts["body"][0]]) == pytest.approx(w_b, rel=1e-4)
    assert float(raw[parts["face"][0]]) == pytest.approx(DEFAULT_FLOOR, rel=1e-4)


def test_the_normalisations_of_eq1():
    # b : nf : rh = 1 : 2 : 3, S = 6: raw w^b = (2 + 3 - 1) / 6, w^nf = 3 / 6, w^rh = 2 / 6.
    var, present = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([True, True, True])
    raw = torch.tensor([4 / 6, 3 / 6, 2 / 6])
    assert torch.allclose(usable_weights(var, present, 0.05, "none"), raw)
    assert torch.allclose(usable_weights(var, present, 0.05, "body"), raw / raw[0])
    assert torch.allclose(usable_weights(var, present, 0.05, "mean"), raw / raw.mean())
    assert float(usable_weights(var, present, 0.05, "mean").mean()) == pytest.approx(1.0)
    # The floor applies before normalising: w^b = (2 + 3 - 10) / 15 < 0 -> 0.2, w^nf = 3 / 15, w^rh = 2 / 15.
    dominant = torch.tensor([10.0, 2.0, 3.0])
    assert torch.allclose(usable_weights(dominant, present, 0.2, "none"), torch.tensor([0.2, 0.2, 0.2]))
    assert torch.allclose(usable_weights(dominant, present, 0.1, "mean"),
                          torch.tensor([0.1, 0.2, 2 / 15]) / torch.tensor([0.1, 0.2, 2 / 15]).mean())
    # Degenerate (no face): uniform, whatever the normalisation.
    assert usable_weights(var, torch.tensor([True, False, True]), 0.05, "mean").tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="normalise"):
        usable_weights(var, present, 0.05, "max")


def test_summaries_name_the_body_only_where_it_does_not_weigh_one():
    seg, mask = torch.randn(4, 15, CANONICAL.num_points, 2), torch.ones(4, 15, CANONICAL.num_points, dtype=torch.bool)
    args = (seg, mask, CANONICAL.parts, CANONICAL.left_wrist, CANONICAL.right_wrist)
    assert "body_q50" not in summarize([group_weights("apw", *args)])
    stats = summarize([group_weights("apw", *args, normalise="mean")])
    assert "body_q50" in stats and stats["body_mean"] != 1.0


def test_group_weights_and_their_summary():
    from models.weighting import group_weights, summarize

    x, mask = sequence()
    apw = group_weights("apw", x, mask, PARTS, LW, RW)
    assert torch.allclose(apw.groups, torch.tensor([[1.0, 5 / 8, 3 / 4]]))  # the module doc's example
    assert torch.equal(apw.points, apw_weights(x, mask, PARTS, LW, RW))
    assert not bool(apw.floored.any()) and not bool(apw.degenerate.any())
    dominant, _ = sequence(body_p1=(0.0, 10.0, 20.0))  # w^b < 0: floored
    floored = group_weights("apw", dominant, mask, PARTS, LW, RW)
    assert bool(floored.floored[0, 0]) and float(floored.groups[0, 0]) == 1.0
    static = group_weights("apw", torch.zeros(1, 3, 8, 1), mask, PARTS, LW, RW)  # eq. 1 divides by 0
    assert bool(static.degenerate[0]) and torch.equal(static.groups, torch.ones(1, 3))
    fpw = group_weights("fpw", x, mask, PARTS, LW, RW, {"body": 1.0, "face": 1.17, "hands": 1.18})
    assert torch.allclose(fpw.points, fpw_weights(PAPER_FPW, PARTS, 8).expand(1, 8))
    stats = summarize([apw, floored, static])
    assert stats["floored"] == pytest.approx(1 / 3) and stats["degenerate"] == pytest.approx(1 / 3)
    assert stats["face_mean"] == pytest.approx(float((apw.groups[0, 1] + floored.groups[0, 1] + 1.0) / 3))
    assert group_weights("none", x, mask, PARTS, LW, RW).points.tolist() == [[1.0] * 8]
    with pytest.raises(ValueError, match="unknown weighting"):
        group_weights("adaptive", x, mask, PARTS, LW, RW)


def test_the_pretrain_stage_takes_fpw_weights_from_the_config():
    """pretrain.fpw_weights: eq. 1 on the segments' pooled variances, the paper's, or given numbers;
    a group the data lacks weighs 0 in every case (what the logged weights then say)."""
    from harness.stages.pretrain import fpw_part_weights as stage_fpw
    from harness.stages.pretrain import loss_weights as stage_weights
    g = torch.Generator().manual_seed(1)
    segs = torch.randn(6, 15, CANONICAL.num_points, 2, generator=g)
    masks = torch.ones(6, 15, CANONICAL.num_points, dtype=torch.bool)
    cfg = apply_overrides(load_profile("default"), {"pretrain.weighting": "fpw"})
    assert cfg.pretrain.fpw_weights == "dataset"
    assert stage_fpw(cfg, segs, masks) == fpw_part_weights([(segs, masks)], CANONICAL.parts, CANONICAL.left_wrist,
                                                           CANONICAL.right_wrist)
    paper = apply_overrides(cfg, {"pretrain.fpw_weights": "paper"})
    assert stage_fpw(paper, segs, masks) == PAPER_FPW
    given = apply_overrides(cfg, {"pretrain.fpw_weights": [2, 0.5, 3]})
    assert stage_fpw(given, segs, masks) == {"body": 2.0, "face": 0.5, "hands": 3.0}
    no_face = masks.clone()
    no_face[:, :, list(CANONICAL.parts["face"])] = False
    assert stage_fpw(paper, segs, no_face) == {"body": 1.0, "face": 0.0, "hands": 1.18}
    # What the batches are weighted with, and so what summarize logs, is that dict.
    w = stage_weights(given, segs, masks, stage_fpw(given, segs, masks))
    assert w.groups[0].tolist() == [2.0, 0.5, 3.0]
    stats = summarize([w])
    assert (stats["body_q50"], stats["face_q50"], stats["hands_q50"]) == (2.0, 0.5, 3.0)
