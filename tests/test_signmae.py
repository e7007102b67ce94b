"""models/signmae.py and models/extractor.py: masking, shapes, variants, exact loss, and a learning test."""

import math
import time

import pytest
import torch

from models.extractor import SpatioTemporalExtractor
from models.graph import adjacency_subsets, layout_adjacency
from models.layout import CANONICAL
from models.outputs import ModelOutput
from models.signmae import SignMAE, mean_pose, num_masked
from models.transformer import sinusoidal_table

A73 = layout_adjacency(CANONICAL)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models on a shared 2-core machine: more threads only contend (10-100x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

SMALL = dict(dim=32, depth=1, heads=4, decoder_depth=1, extractor_channels=8, extractor_blocks=1, dropout=0.0)


def chain_model(**kw) -> SignMAE:
    """5 points in a chain rooted at 1, 2 coordinates, window 15: fast enough for unit tests."""
    adjacency = adjacency_subsets(5, [(0, 1), (2, 1), (3, 2), (4, 3)], root=1)
    return SignMAE(5, 2, 15, adjacency, **{**SMALL, **kw})


def batch(b=3, t=15, v=5, c=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, v, c, generator=g), torch.ones(b, t, v, dtype=torch.bool)


ONES = torch.ones(5)  # the W of eq. 2 without pose weighting, for chain_model's 5 points


def test_num_masked_rounds_half_up():
    assert num_masked(15, 0.25) == 4  # 3.75
    assert num_masked(10, 0.25) == 3  # 2.5 -> 3, not Python's round-half-even 2
    assert num_masked(15, 0.0) == 0
    assert num_masked(16, 0.75) == 12


def test_random_masking_count_and_polarity():
    model = chain_model()
    ids_keep, mask = model.random_masking(6, torch.device("cpu"), torch.Generator().manual_seed(1))
    assert mask.shape == (6, 15) and ids_keep.shape == (6, 11)
    assert mask.sum(1).tolist() == [4.0] * 6  # 1 is remove: exactly 4 of 15 per sample
    assert bool((mask.gather(1, ids_keep) == 0).all())  # 0 is keep: every kept index is 0
    assert len({tuple(r) for r in mask.tolist()}) > 1  # per-sample shuffles differ


@pytest.mark.parametrize("train", [False, True])
def test_masked_frames_are_not_seen_by_the_encoder(train):
    model = chain_model().train(train)
    x, m = batch()
    z, mask = model.forward_encoder(x, m, torch.Generator().manual_seed(3))
    t_masked = int(mask[0].nonzero()[0])
    t_kept = int((mask[0] == 0).nonzero()[0])
    y = x.clone()
    y[0, t_masked] += 5.0
    z2, mask2 = model.forward_encoder(y, m, torch.Generator().manual_seed(3))
    assert torch.equal(mask, mask2) and torch.equal(z, z2)
    y = x.clone()
    y[0, t_kept] += 5.0
    z3, _ = model.forward_encoder(y, m, torch.Generator().manual_seed(3))
    assert not torch.allclose(z[0], z3[0])


def test_without_input_blanking_the_temporal_convs_leak_masked_frames():
    model = chain_model(mask_input=False).eval()
    x, m = batch()
    z, mask = model.forward_encoder(x, m, torch.Generator().manual_seed(3))
    y = x.clone()
    y[0, int(mask[0].nonzero()[0])] += 5.0
    z2, _ = model.forward_encoder(y, m, torch.Generator().manual_seed(3))
    assert not torch.allclose(z[0], z2[0])  # why mask_input=True is the default


def test_missing_point_differs_from_a_point_at_the_origin():
    ext = SpatioTemporalExtractor(5, 2, adjacency_subsets(5, [(0, 1), (2, 1), (3, 2), (4, 3)], 1), [8], 16).eval()
    x, m = batch(b=1)
    x[0, :, 4] = 0.0
    absent = m.clone()
    absent[0, :, 4] = False
    assert not torch.allclose(ext(x, m), ext(x, absent))
    x2 = x.clone()
    x2[0, :, 4] = float("nan")  # an absent value is never read
    assert torch.equal(ext(x, absent), ext(x2, absent))


def test_encode_decode_shapes_and_determinism():
    model = chain_model().eval()
    x, m = batch()
    z = model.encode(x, m)
    assert z.shape == (3, 32)
    assert torch.equal(z, model.encode(x, m))  # no masking, no randomness
    assert model.decode(z).shape == (3, 15, 5, 2)


@pytest.mark.parametrize("decoder_type, query_type", [("nar", "learnable"), ("nar", "positional"), ("ar", "learnable")])
def test_variants_run_and_train(decoder_type, query_type):
    model = chain_model(decoder_type=decoder_type, query_type=query_type)
    x, m = batch()
    out = model(x, m, ONES)
    assert isinstance(out, ModelOutput) and out.loss.dim() == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.extractor.proj.weight.grad is not None and model.glor_token.grad is not None
    model.eval()
    assert model.decode(model.encode(x, m)).shape == (3, 15, 5, 2)
    if query_type == "positional":
        assert "queries" not in dict(model.named_parameters())  # fixed sinusoidal queries


def test_ar_decoder_is_causal_and_free_running_matches_teacher_forcing():
    model = chain_model(decoder_type="ar").eval()
    torch.nn.init.normal_(model.head.weight, std=0.1)  # the head starts at zero; make frames matter
    x, m = batch()
    z = torch.randn(3, 32)
    pred = model.forward_decoder(z, x, m)
    y = x.clone()
    y[:, 6:] += 3.0
    pred2 = model.forward_decoder(z, y, m)
    assert torch.allclose(pred[:, :7], pred2[:, :7], atol=1e-5)  # frame t sees frames < t only
    assert not torch.allclose(pred[:, 7:], pred2[:, 7:])
    free = model.decode(z)
    forced = model.forward_decoder(z, free, torch.ones(3, 15, 5, dtype=torch.bool))
    assert torch.allclose(free, forced, atol=1e-4)


def test_forward_loss_exact_value():
    model = SignMAE(3, 2, 2, adjacency_subsets(3, [(0, 1), (2, 1)], 1), **SMALL)
    segment = torch.zeros(1, 2, 3, 2)
    segment[0, 1, 2] = float("nan")  # absent point: must not reach the loss
    pred = torch.tensor([[[[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]], [[0.0, 0.0], [1.0, 1.0], [7.0, 7.0]]]])
    mask = torch.ones(1, 2, 3, dtype=torch.bool)
    mask[0, 1, 2] = False
    weights = torch.tensor([1.0, 2.0, 3.0])
    # errors: frame 0 -> 1, 4, 9; frame 1 -> 0, 2, (absent). (1 + 8 + 27 + 0 + 4) / (1 + 2 + 3 + 1 + 2)
    loss = model.forward_loss(segment, pred, mask, weights)
    assert loss.item() == pytest.approx(40 / 9)
    assert model.forward_loss(segment, pred, mask, 2 * weights.expand(1, 3)).item() == pytest.approx(40 / 9)
    assert model.forward_loss(segment, pred, mask, torch.ones(3)).item() == pytest.approx(16 / 5)
    pred.requires_grad_(True)
    model.forward_loss(segment, pred, mask, weights).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[0, 1, 2].abs().sum() == 0  # no NaN, nothing from absent
    with pytest.raises(ValueError, match="weights"):
        model.forward_loss(segment, pred, mask, torch.ones(4))


@pytest.mark.parametrize("decoder_type", ["nar", "ar"])
def test_forward_is_encoder_decoder_and_loss_side_by_side(decoder_type):
    model = chain_model(decoder_type=decoder_type).eval()
    torch.nn.init.normal_(model.head.weight, std=0.1)  # the head starts at zero; make z matter
    x, m = batch()
    weights = torch.tensor([1.0, 2.0, 0.5, 1.5, 1.0])
    z, mask = model.forward_encoder(x, m, torch.Generator().manual_seed(4))
    expected = model.forward_loss(x, model.forward_decoder(z, x, m), m, weights)
    out = model(x, m, weights, torch.Generator().manual_seed(4))
    assert torch.equal(out.loss, expected) and out.metrics == {}
    assert not torch.equal(model(x, m, ONES, torch.Generator().manual_seed(4)).loss, expected)  # W is used


def test_positions_and_fixed_queries_are_the_shared_sinusoidal_table():
    model = chain_model(query_type="positional")
    assert torch.equal(model.pos_embed, sinusoidal_table(15, 32))
    assert torch.equal(model.queries, sinusoidal_table(15, 32))


def test_bad_shapes_and_arguments_raise():
    model = chain_model()
    x, m = batch()
    with pytest.raises(ValueError, match="segment"):
        model(x[:, :10], m[:, :10], ONES)
    with pytest.raises(ValueError, match="point_mask"):
        model(x, m[:, :, :4], ONES)
    with pytest.raises(ValueError, match="weights"):
        model(x, m, torch.ones(4))
    for bad in (dict(mask_ratio=1.0), dict(decoder_type="rnn"), dict(query_type="fixed"), dict(dim=30)):
        with pytest.raises(ValueError):
            chain_model(**bad)


def test_state_dict_round_trip_keeps_the_mean_pose():
    x, m = batch()
    model = chain_model(mean_pose=mean_pose([(x, m)])).eval()
    assert torch.allclose(model.mean_pose, x.mean((0, 1)), atol=1e-6)
    fresh = chain_model().eval()
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh.mean_pose, model.mean_pose)
    assert torch.equal(fresh.decode(fresh.encode(x, m)), model.decode(model.encode(x, m)))


def smooth_segments(n=8, t=15, v=73, c=2, seed=0) -> torch.Tensor:
    """A shared random pose plus per-segment, per-point sinusoids (1-3 cycles per window)."""
    g = torch.Generator().manual_seed(seed)
    time_axis = torch.linspace(0, 1, t)[None, :, None, None]
    base = torch.randn(1, 1, v, c, generator=g)
    amp = 0.5 * torch.randn(n, 1, v, c, generator=g)
    freq = 1 + 2 * torch.rand(n, 1, 1, 1, generator=g)
    phase = 2 * math.pi * torch.rand(n, 1, v, c, generator=g)
    return base + amp * torch.sin(2 * math.pi * freq * time_axis + phase)


def test_learning_reconstruction_loss_falls_tenfold():
    torch.manual_seed(0)
    x = smooth_segments()
    m = torch.ones(8, 15, 73, dtype=torch.bool)
    # With the data's mean pose as the decoder's reference, the first loss is the between-segment
    # variance: a 10x fall means z really tells the 8 segments apart.
    model = SignMAE(73, 2, 15, A73, dim=64, depth=1, heads=4, decoder_depth=1, extractor_channels=8, extractor_blocks=1,
                    dropout=0.0, mean_pose=mean_pose([(x, m)]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    start, first, loss = time.monotonic(), None, None
    for _ in range(300):
        loss = model(x, m, torch.ones(73)).loss
        first = first if first is not None else loss.item()
        if loss.item() < first / 10:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 10, f"loss {first:.4f} -> {loss.item():.4f} in {time.monotonic() - start:.1f} s"
    model.eval()
    with torch.no_grad():  # and without masking, from z alone
        rec = ((model.decode(model.encode(x, m)) - x) ** 2).sum(-1).mean().item()
    assert rec < first / 5
