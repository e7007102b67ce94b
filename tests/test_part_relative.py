"""SignMAE's part-relative terms (models/signmae.py): hands from their wrists and the face from its
centroid, in the encoder's input and as variance-normalized loss terms; weight 0 is eq. 2 exactly."""

from __future__ import annotations

import pytest
import torch

from harness.builders import build_signmae
from harness.config import apply_overrides
from models.graph import adjacency_subsets
from models.signmae import RELATIVE_INPUT_SCALE, SignMAE

# 6 points: 0 body, 1-3 a "hand" anchored at its wrist 1, 4-5 a "face" anchored at its centroid.
GROUPS = [((1, 2, 3), 1), ((4, 5), -1)]
A = adjacency_subsets(6, [(0, 1), (1, 2), (2, 3), (0, 4), (4, 5)], 0)
SMALL = dict(dim=16, depth=1, heads=2, decoder_depth=1, extractor_channels=4, extractor_blocks=1, dropout=0.0)


def model(weight: float, groups=GROUPS) -> SignMAE:
    torch.manual_seed(0)
    return SignMAE(6, 2, 3, A, relative_groups=groups, relative_weight=weight, **SMALL)


def test_relative_coordinates_and_where_they_are_defined():
    x = torch.arange(36, dtype=torch.float32).view(1, 3, 6, 2)  # (B, w, V, C)
    present = torch.ones(1, 3, 6, dtype=torch.bool)
    present[0, 1, 1] = False  # the wrist is missing in frame 1: that frame's hand is undefined
    present[0, 2, 5] = False  # a face point is missing in frame 2: the centroid is the other one's
    rel, ok = model(1.0).relative(x, present)
    assert torch.equal(rel[0, 0, 2], x[0, 0, 2] - x[0, 0, 1]) and torch.equal(rel[0, 0, 1], torch.zeros(2))
    assert not ok[0, 1, 1:4].any() and (rel[0, 1, 1:4] == 0).all() and ok[0, 0, 1:4].all()
    assert torch.equal(rel[0, 0, 4], x[0, 0, 4] - x[0, 0, 4:6].mean(0))
    assert torch.equal(rel[0, 2, 4], torch.zeros(2)) and not ok[0, 2, 5]  # its own centroid
    assert not ok[:, :, 0].any() and (rel[:, :, 0] == 0).all()  # the body is in no group


def test_weight_zero_is_eq2_exactly():
    x, m = torch.randn(4, 3, 6, 2), torch.rand(4, 3, 6) > 0.2
    plain, off = model(0.0, groups=()), model(0.0)
    assert off.extractor.in_channels == 2 and model(1.0).extractor.in_channels == 2 * 2
    pred = torch.randn(4, 3, 6, 2)
    w = torch.rand(6)
    assert off.forward_loss(x, pred, m, w).item() == plain.forward_loss(x, pred, m, w).item()


def test_the_terms_are_fractions_of_variance_so_scale_free_and_zero_when_exact():
    torch.manual_seed(1)
    x, m, pred, w = torch.randn(4, 3, 6, 2), torch.ones(4, 3, 6, dtype=torch.bool), torch.randn(4, 3, 6, 2), torch.rand(6)
    mae = model(1.0)
    loss = mae.forward_loss(x, pred, m, w).item()
    assert mae.forward_loss(3 * x, 3 * pred, m, w).item() == pytest.approx(loss, rel=1e-5)
    assert mae.forward_loss(x, x, m, w).item() == 0.0
    # predicting each point's mean over the batch leaves all the variance: 1 (eq. 2) + 1 x weight
    mean = x.mean((0, 1), keepdim=True).expand_as(x)
    assert mae.forward_loss(x, mean, m, torch.ones(6)).item() == pytest.approx(2.0, rel=1e-5)

    def face_term(x, pred):  # the face's relative term: the loss with weight 2 minus with weight 1
        face = [((4, 5), -1)]
        return model(2.0, face).forward_loss(x, pred, m, w) - model(1.0, face).forward_loss(x, pred, m, w)
    # a face that moves 100 times less than the rest counts as much as before
    small = torch.tensor([1.0, 1, 1, 1, 0.01, 0.01]).view(1, 1, 6, 1)
    assert face_term(x * small, pred * small).item() == pytest.approx(face_term(x, pred).item(), rel=1e-4)


def test_an_absent_group_adds_nothing_and_no_nan():
    x, pred = torch.randn(2, 3, 6, 2), torch.randn(2, 3, 6, 2)
    m = torch.ones(2, 3, 6, dtype=torch.bool)
    m[:, :, 1:] = False  # body only, as pretrain.parts: [body] gives it
    mae = model(1.0)
    loss = mae.forward_loss(x, pred, m, torch.ones(6))
    assert torch.isfinite(loss)
    pred.requires_grad_(True)
    out = mae(x, m, torch.ones(6)).loss
    out.backward()
    assert torch.isfinite(out) and all(torch.isfinite(p.grad).all() for p in mae.parameters() if p.grad is not None)


def test_the_encoder_sees_a_handshape_that_leaves_the_wrist_where_it_is():
    mae = model(1.0).eval()
    x, m = torch.randn(1, 3, 6, 2), torch.ones(1, 3, 6, dtype=torch.bool)
    moved = x.clone()
    moved[:, :, 2:4] += 0.01  # fingers move a little relative to the wrist
    seen = torch.cat([moved, RELATIVE_INPUT_SCALE * mae.relative(moved, m)[0]], -1)
    assert (seen[..., 2:] - torch.cat([x, RELATIVE_INPUT_SCALE * mae.relative(x, m)[0]], -1)[..., 2:]).abs().max() \
        == pytest.approx(RELATIVE_INPUT_SCALE * 0.01, rel=1e-4)
    assert not torch.equal(mae.encode(moved, m), mae.encode(x, m))


def test_the_builder_uses_the_layouts_hands_and_face(tiny_cfg):
    on = build_signmae(tiny_cfg, 2)
    assert on.relative_weight == tiny_cfg.pretrain.part_relative == 1.0
    assert [anchor for _, anchor in on.relative_groups][2] == -1 and len(on.relative_groups) == 3
    off = build_signmae(apply_overrides(tiny_cfg, {"pretrain.part_relative": 0}), 2)
    assert off.relative_weight == 0.0 and off.extractor.in_channels == 2
