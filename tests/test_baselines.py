"""The paper's baselines (tables 1, 2, 5): Joint-SLT (with and without glosses), ConSLT, PT, NSLP-G.

Per model: a learning test (it memorises a few sentences / poses at tiny sizes), the same run with
its wiring broken on purpose (the encoder's output zeroed) that must NOT learn, exact values where
a value is defined (CTC layout and loss, counter targets, contrastive loss, the held frames, eq. 2),
and a forward at the paper profile's sizes (512 wide, 3 layers, 8 heads).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models.conslt import ConSLT, token_contrastive_loss
from models.joint_slt import JointSLT, ctc_collapse, ctc_gloss_loss
from models.nslp_g import NSLPG, hold_last_frame
from models.progressive_transformer import ProgressiveTransformer, counter_values
from models.sign2text import SignToText
from models.transformer import TransformerSpec, pad_batch, teacher_forcing_pair
from models.layout import CANONICAL
from models.weighting import loss_weights, weighted_pose_error

from conftest import fit

V, C = 6, 2
SENTENCES = [[4, 5, 6, 7], [8, 9, 10, 11, 12], [13, 5, 14, 15], [16, 17, 18, 19, 4, 6]]
GLOSSES = [[1, 2, 3], [4, 5], [6, 2, 7], [8, 9, 1]]


def tiny_spec(dropout: float = 0.0) -> TransformerSpec:
    return TransformerSpec(d_model=32, num_heads=4, num_encoder_layers=2, num_decoder_layers=2,
                           dim_feedforward=64, dropout=dropout)


def paper_spec() -> TransformerSpec:
    return TransformerSpec(d_model=512, num_heads=8, num_encoder_layers=3, num_decoder_layers=3,
                           dim_feedforward=2048, dropout=0.1)


def zero_output(module: torch.nn.Module) -> None:
    """Breaks the wiring on purpose: the module's output (or the first element of it) becomes zeros."""
    def hook(_module, _inputs, out):
        if isinstance(out, tuple):
            return (torch.zeros_like(out[0]),) + out[1:]
        return torch.zeros_like(out)
    module.register_forward_hook(hook)


def sign_batch():
    gen = torch.Generator().manual_seed(7)
    sequences = [torch.randn(t, V, C, generator=gen) for t in (12, 16, 10, 14)]
    point_masks = [torch.rand(len(s), V, generator=gen) > 0.1 for s in sequences]
    x, frame_mask = pad_batch(sequences)
    point_mask, _ = pad_batch(point_masks, pad_value=False)
    tgt_in, tgt_out = teacher_forcing_pair(SENTENCES)
    glosses, _ = pad_batch([torch.tensor(g) for g in GLOSSES], pad_value=0)
    return x, point_mask.bool(), frame_mask, tgt_in, tgt_out, glosses.long()


def pose_batch():
    """Four short smooth pose sequences of different lengths (a random walk per point)."""
    gen = torch.Generator().manual_seed(3)
    sequences = [torch.cumsum(0.3 * torch.randn(t, V, C, generator=gen), dim=0) for t in (6, 9, 7, 8)]
    x, frame_mask = pad_batch(sequences)
    point_mask = frame_mask[..., None].expand(-1, -1, V).clone()
    tokens, _ = pad_batch([torch.tensor(s) for s in SENTENCES], pad_value=0)
    return tokens.long(), sequences, x, point_mask, frame_mask


# ---- Joint-SLT ------------------------------------------------------------------------------


def test_ctc_loss_exact_on_a_hand_made_case():
    # Uniform over {blank, 1, 2}: sentence 0 (3 frames, glosses [1, 2]) has 5 alignments
    # (112, 122, 12_, 1_2, _12) of probability 1/27 each; sentence 1 (1 frame, [2]) has one of 1/3.
    logits = torch.zeros(2, 3, 3)
    frame_mask = torch.tensor([[True, True, True], [True, False, False]])
    glosses = torch.tensor([[1, 2], [2, 0]])  # left-aligned, padded with 0 = blank
    expected = (math.log(27 / 5) + math.log(3)) / 2
    assert ctc_gloss_loss(logits, frame_mask, glosses).item() == pytest.approx(expected, rel=1e-6)
    # and against torch's ctc_loss on random logits, same layout
    logits = torch.randn(2, 3, 3, generator=torch.Generator().manual_seed(0))
    ref = F.ctc_loss(torch.log_softmax(logits, -1).transpose(0, 1), torch.tensor([1, 2, 2]),
                     torch.tensor([3, 1]), torch.tensor([2, 1]), blank=0, reduction="sum") / 2
    assert ctc_gloss_loss(logits, frame_mask, glosses).item() == pytest.approx(ref.item(), rel=1e-6)


def test_ctc_layout_is_checked_and_collapse_is_exact():
    with pytest.raises(ValueError, match="1..2"):
        ctc_gloss_loss(torch.zeros(1, 3, 3), torch.ones(1, 3, dtype=torch.bool), torch.tensor([[3]]))
    with pytest.raises(ValueError, match="at least one gloss"):
        ctc_gloss_loss(torch.zeros(1, 3, 3), torch.ones(1, 3, dtype=torch.bool), torch.tensor([[0]]))
    assert ctc_collapse([0, 1, 1, 0, 1, 2, 2, 0]) == [1, 1, 2]
    with pytest.raises(ValueError, match="gloss variant needs"):
        x, pm, fm, tin, tout, _ = sign_batch()
        JointSLT(V, C, 20, tiny_spec(), num_glosses=10)(x, pm, fm, tin, tout)


def test_joint_slt_reuses_sign_to_text_and_ignores_padding():
    torch.manual_seed(0)
    model = JointSLT(V, C, 20, tiny_spec(), num_glosses=10).eval()
    assert isinstance(model.translator, SignToText)
    x, pm, fm, tin, tout, glosses = sign_batch()
    before = model(x, pm, fm, tin, tout, glosses).loss
    changed = x.clone()
    changed[~(pm & fm[..., None])] = float("nan")  # absent points and padded frames
    assert torch.allclose(model(changed, pm, fm, tin, tout, glosses).loss, before, atol=1e-5)


def _train_joint(model, steps=300):
    x, pm, fm, tin, tout, glosses = sign_batch()
    first, last = fit(model, lambda: model(x, pm, fm, tin, tout, glosses).loss, steps, 3e-3)
    return first, last, (x, pm, fm)


def test_joint_slt_with_glosses_memorises_translation_and_glosses():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = JointSLT(V, C, 20, tiny_spec(), num_glosses=10)
    first, last, (x, pm, fm) = _train_joint(model)
    assert last < first / 50
    assert model.greedy(x, pm, fm, max_len=10) == SENTENCES
    assert model.beam_search(x, pm, fm, beam_size=3, max_len=10) == SENTENCES
    assert model.recognize(x, pm, fm) == GLOSSES


def test_joint_slt_with_zeroed_encoder_does_not_learn():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = JointSLT(V, C, 20, tiny_spec(), num_glosses=10)
    zero_output(model.translator.encoder)
    _, last, (x, pm, fm) = _train_joint(model, steps=150)
    # Without the input the decoder cannot know which of 4 first tokens comes: >= 4 log 4 / 23 in L_T.
    assert last > 0.2
    assert sum(h == s for h, s in zip(model.greedy(x, pm, fm, max_len=10), SENTENCES)) <= 1


def test_joint_slt_gloss_free_has_no_gloss_head():
    model = JointSLT(V, C, 20, tiny_spec())
    x, pm, fm, tin, tout, _ = sign_batch()
    out = model(x, pm, fm, tin, tout)
    assert model.gloss_head is None and set(out.metrics) == {"loss_translation"}
    assert out.loss.item() == pytest.approx(out.metrics["loss_translation"].item())


# ---- ConSLT ---------------------------------------------------------------------------------


def test_contrastive_loss_exact_on_a_hand_made_case():
    anchor = torch.tensor([[[1.0, 0.0], [3.0, 3.0]]])  # position 1 is padding
    positive = torch.tensor([[[2.0, 0.0], [-1.0, 7.0]]])  # cos 1 with the anchor at position 0
    negatives = torch.tensor([[[0.0, 5.0]]])  # cos 0
    valid = torch.tensor([[True, False]])
    # logits [1 / 0.5, 0 / 0.5] = [2, 0]: -log(e^2 / (e^2 + 1)) = log(1 + e^-2)
    loss = token_contrastive_loss(anchor, positive, negatives, valid, temperature=0.5)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)


def test_conslt_negatives_are_outside_the_sentence_and_not_special():
    model = ConSLT(V, C, 8, tiny_spec(), num_negatives=500)
    tgt_out = torch.tensor([[3, 4, 2, 0]])  # tokens 3, 4, EOS, PAD
    negatives = model.sample_negatives(tgt_out, torch.Generator().manual_seed(0))
    assert sorted(negatives[0].tolist()) == [5, 6, 7]  # K capped at what the vocabulary has left
    model.num_negatives = 2
    assert set(model.sample_negatives(tgt_out)[0].tolist()) <= {5, 6, 7}


def test_conslt_adds_its_term_in_training_only():
    torch.manual_seed(0)
    model = ConSLT(V, C, 20, tiny_spec(dropout=0.1), num_negatives=5)
    x, pm, fm, tin, tout, _ = sign_batch()
    train = model(x, pm, fm, tin, tout)
    assert "loss_contrastive" in train.metrics and train.metrics["loss_contrastive"] > 0
    assert "loss_contrastive" not in model.eval()(x, pm, fm, tin, tout).metrics


def test_conslt_memorises_and_fails_with_zeroed_encoder():
    torch.set_num_threads(1)
    x, pm, fm, tin, tout, _ = sign_batch()
    results = []
    for broken in (False, True):
        torch.manual_seed(0)
        model = ConSLT(V, C, 20, tiny_spec(dropout=0.1), num_negatives=8, contrastive_weight=0.1)
        if broken:
            zero_output(model.translator.encoder)
        fit(model, lambda: model(x, pm, fm, tin, tout).loss, 100 if broken else 200, 3e-3)
        results.append(sum(h == s for h, s in zip(model.greedy(x, pm, fm, max_len=10), SENTENCES)))
    assert results[0] == len(SENTENCES)
    assert results[1] <= 1


# ---- Progressive Transformers ---------------------------------------------------------------


def test_counter_targets_exact():
    assert counter_values(torch.tensor([4, 2]), 4).tolist() == [[0.25, 0.5, 0.75, 1.0], [0.5, 1.0, 0.0, 0.0]]
    assert counter_values(torch.tensor([1])).tolist() == [[1.0]]


def test_weighted_pose_error_exact():
    pred = torch.zeros(1, 2, 3, 1)
    target = torch.tensor([[[[1.0], [2.0], [float("nan")]], [[3.0], [0.0], [0.0]]]])
    present = torch.tensor([[[True, True, False], [True, False, False]]])
    weights = torch.tensor([1.0, 2.0, 5.0])
    # (1 * 1 + 2 * 4 + 1 * 9) / (1 + 2 + 1)
    assert weighted_pose_error(pred, target, present, weights).item() == pytest.approx(18 / 4)
    assert weighted_pose_error(pred, target, present, weights.expand(1, 2, 3)).item() == pytest.approx(18 / 4)
    with pytest.raises(ValueError, match="weights"):
        weighted_pose_error(pred, target, present, torch.ones(4))


def test_pt_uses_the_counter_as_its_stop_signal():
    torch.manual_seed(0)
    model = ProgressiveTransformer(20, V, C, tiny_spec())
    tokens, *_ = pose_batch()
    with torch.no_grad():
        model.out_proj.weight.zero_()
        model.out_proj.bias.zero_()
        model.out_proj.bias[-1] = 0.4  # every step predicts counter 0.4
    assert [len(s) for s in model.generate(tokens, max_frames=5)] == [5] * 4  # never reaches 1
    assert [len(s) for s in model.generate(tokens, max_frames=5, stop_at=0.4)] == [1] * 4


def _train_pt(model, steps):
    tokens, sequences, x, pm, fm = pose_batch()
    # A low stop: the counter must be precise to a fraction of 1 / T for the stop to land on the last frame.
    first, last = fit(model, lambda: model(tokens, x, pm, fm, torch.ones(V)).loss, steps, 3e-3, stop=1e-3)
    return first, last, tokens, sequences


def _mean_error(generated, sequences) -> float:
    errs = [(g[: len(s)] - s[: len(g)]).norm(dim=-1).mean().item() for g, s in zip(generated, sequences)]
    return sum(errs) / len(errs)


def test_pt_memorises_poses_and_their_lengths():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    # PT's own remedy for drift, Gaussian noise on the teacher-forced inputs: without it the
    # free-running counter drifts by ~0.1 over 9 frames here although the teacher-forced one is exact.
    model = ProgressiveTransformer(20, V, C, tiny_spec(), input_noise=0.1)
    first, last, tokens, sequences = _train_pt(model, 400)
    assert last < first / 50
    generated = model.generate(tokens, max_frames=20, stop_at=0.97)
    # The stop lands within one frame of the true end (the lengths are 6, 9, 7, 8).
    assert all(abs(len(g) - len(s)) <= 1 for g, s in zip(generated, sequences))
    assert _mean_error(generated, sequences) < 0.15


def test_pt_with_zeroed_text_encoder_does_not_learn():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = ProgressiveTransformer(20, V, C, tiny_spec(), input_noise=0.1)
    zero_output(model.text)
    _, _, tokens, sequences = _train_pt(model, 200)
    generated = model.generate(tokens, max_frames=20, stop_at=0.97)
    # Nothing tells the sentences apart: one sequence for all, so no length can be within 1 of both 6 and 9.
    assert all(torch.allclose(g, generated[0], atol=1e-5) for g in generated)
    assert _mean_error(generated, sequences) > 0.3


# ---- NSLP-G ---------------------------------------------------------------------------------


def test_hold_last_frame_exact():
    x = torch.arange(6.0).reshape(2, 3, 1, 1)  # sentence 0: frames 0, 1, 2; sentence 1: 3, 4 (+ pad)
    fm = torch.tensor([[True, True, True], [True, True, False]])
    held, present = hold_last_frame(x, torch.ones(2, 3, 1, dtype=torch.bool), fm, 4)
    assert held.flatten(1).tolist() == [[0, 1, 2, 2], [3, 4, 4, 4]]
    assert present.all()
    with pytest.raises(ValueError, match="num_frames=2"):
        hold_last_frame(x, torch.ones(2, 3, 1, dtype=torch.bool), fm, 2)


def test_nslp_g_queries_are_fixed_positional_encodings():
    model = NSLPG(20, V, C, 10, tiny_spec())
    assert "queries" not in dict(model.named_parameters())
    from models.transformer import sinusoidal_table
    assert torch.equal(model.queries[0], sinusoidal_table(10, 32))


def _train_nslp(model, steps):
    tokens, sequences, x, pm, fm = pose_batch()
    first, last = fit(model, lambda: model(tokens, x, pm, fm, torch.ones(V)).loss, steps, 3e-3)
    return first, last, tokens, sequences


def test_nslp_g_memorises_poses():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = NSLPG(20, V, C, 10, tiny_spec())
    first, last, tokens, sequences = _train_nslp(model, 300)
    assert last < first / 50
    generated = model.generate(tokens)
    assert all(g.shape == (10, V, C) for g in generated)
    assert _mean_error(generated, sequences) < 0.15


def test_nslp_g_with_zeroed_text_encoder_does_not_learn():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = NSLPG(20, V, C, 10, tiny_spec())
    zero_output(model.text)
    _, _, tokens, sequences = _train_nslp(model, 150)
    generated = model.generate(tokens)
    assert all(torch.allclose(g, generated[0]) for g in generated)
    assert _mean_error(generated, sequences) > 0.3


# ---- the paper profile's sizes --------------------------------------------------------------


def test_forward_at_paper_sizes():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    v, c, vocab, frames = 73, 2, 50, 24
    x = torch.randn(2, frames, v, c)
    pm = torch.ones(2, frames, v, dtype=torch.bool)
    fm = torch.ones(2, frames, dtype=torch.bool)
    fm[1, 18:] = False
    tin, tout = teacher_forcing_pair([[4, 5, 6], [7, 8]])
    glosses = torch.tensor([[1, 2, 3], [4, 0, 0]])
    for model in (JointSLT(v, c, vocab, paper_spec(), num_glosses=10), ConSLT(v, c, vocab, paper_spec(), num_glosses=10)):
        out = model(x, pm, fm, tin, tout, glosses)
        assert out.loss.dim() == 0 and torch.isfinite(out.loss)
        memory, _ = model.encode(x, pm, fm)
        assert memory.shape == (2, frames, 512) and model.gloss_logits(memory).shape == (2, frames, 10)
    tokens = torch.tensor([[4, 5, 6], [7, 8, 0]])
    # The production losses take SignMAE's pose weights: APW per sentence on the canonical layout.
    apw = loss_weights("apw", x, pm & fm[..., None], CANONICAL.parts, CANONICAL.left_wrist, CANONICAL.right_wrist)
    assert apw.shape == (2, v)
    pt = ProgressiveTransformer(vocab, v, c, paper_spec())
    assert torch.isfinite(pt(tokens, x, pm, fm, apw).loss)
    assert [g.shape[1:] for g in pt.generate(tokens, max_frames=3)] == [(v, c)] * 2
    nslp = NSLPG(vocab, v, c, 32, paper_spec())
    assert torch.isfinite(nslp(tokens, x, pm, fm, apw).loss)
    assert nslp.predict(tokens).shape == (2, 32, v, c)


def test_production_losses_are_eq2_with_the_given_weights():
    torch.manual_seed(0)
    tokens, _, x, pm, fm = pose_batch()
    w = torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0, 1.0])
    nslp = NSLPG(20, V, C, 10, tiny_spec()).eval()
    target, present = hold_last_frame(x, pm, fm, 10)
    expected = weighted_pose_error(nslp.predict(tokens), target, present, w)
    assert nslp(tokens, x, pm, fm, w).loss.item() == pytest.approx(expected.item(), rel=1e-6)
    pt = ProgressiveTransformer(20, V, C, tiny_spec()).eval()
    out = pt(tokens, x, pm, fm, w)
    assert out.loss.item() == pytest.approx((out.metrics["loss_pose"] + out.metrics["loss_counter"]).item(), rel=1e-6)
    assert out.metrics["loss_pose"].item() != pytest.approx(pt(tokens, x, pm, fm, torch.ones(V)).metrics["loss_pose"].item())
