"""Sign-to-text mapping (paper 3.4, eq. 3) and the shared Transformer pieces (models/transformer.py)."""

from __future__ import annotations

import math

import pytest
import torch

from models.outputs import ModelOutput
from models.sign2text import SignToText
from models.transformer import (
    TransformerSpec,
    length_penalty,
    lengths_to_mask,
    pad_batch,
    sinusoidal_table,
    teacher_forcing_pair,
    token_cross_entropy,
)

from conftest import fit

PAD, BOS, EOS = 0, 1, 2


def tiny(d_in: int = 16, vocab: int = 20, dropout: float = 0.0, **kw) -> SignToText:
    spec = TransformerSpec(d_model=64, num_heads=4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=128,
                           dropout=dropout)
    return SignToText(d_in, vocab, spec, **kw)


# ---- shared pieces: exact values ---------------------------------------------------------------


def test_sinusoidal_table_known_values():
    table = sinusoidal_table(3, 4)
    assert table.shape == (3, 4)
    assert torch.allclose(table[0], torch.tensor([0.0, 1.0, 0.0, 1.0]))
    # position 1: frequencies 1 and 10000^(-2/4) = 0.01
    assert torch.allclose(table[1], torch.tensor([math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)]))


def test_transformer_spec_builds_the_b2_shape():
    spec = TransformerSpec()
    assert (spec.d_model, spec.num_heads, spec.num_encoder_layers, spec.dim_feedforward) == (256, 4, 3, 1024)
    encoder, decoder = TransformerSpec(d_model=32, num_encoder_layers=2, num_decoder_layers=1).encoder(), spec.decoder()
    assert len(encoder.layers) == 2 and encoder.layers[0].linear1.out_features == 1024 and len(decoder.layers) == 3
    assert encoder.layers[0].norm_first and encoder.norm is not None  # pre-LN with a final LayerNorm
    assert TransformerSpec(d_model=8, max_positions=5).positions().table.shape == (5, 8)


def test_lengths_to_mask_and_pad_batch():
    assert lengths_to_mask(torch.tensor([2, 0, 3])).tolist() == [
        [True, True, False], [False, False, False], [True, True, True]
    ]
    padded, mask = pad_batch([torch.ones(2, 3), torch.ones(1, 3)])
    assert padded.shape == (2, 2, 3) and mask.tolist() == [[True, True], [True, False]]
    assert padded[1, 1].abs().sum() == 0


def test_teacher_forcing_pair_exact():
    tgt_in, tgt_out = teacher_forcing_pair([[5, 6, 7], [8]], PAD, BOS, EOS)
    assert tgt_in.tolist() == [[1, 5, 6, 7], [1, 8, 0, 0]]
    assert tgt_out.tolist() == [[5, 6, 7, 2], [8, 2, 0, 0]]


def test_token_cross_entropy_uniform_is_log_vocab_and_ignores_pad():
    logits = torch.zeros(2, 3, 7)
    targets = torch.tensor([[3, 4, PAD], [5, PAD, PAD]])
    assert token_cross_entropy(logits, targets, PAD).item() == pytest.approx(math.log(7))
    # a confident wrong logit at a pad target position must not change the loss
    logits[0, 2, 6] = 50.0
    assert token_cross_entropy(logits, targets, PAD).item() == pytest.approx(math.log(7))


def test_length_penalty_gnmt_values():
    assert length_penalty(1, 1.0) == pytest.approx(1.0)
    assert length_penalty(7, 1.0) == pytest.approx(2.0)
    assert length_penalty(7, 0.0) == pytest.approx(1.0)


# ---- model: shapes and masks -------------------------------------------------------------------


def test_shapes_and_loss_is_finite_scalar():
    torch.manual_seed(0)
    model = tiny()
    z, z_mask = pad_batch([torch.randn(5, 16), torch.randn(3, 16)])
    tgt_in, tgt_out = teacher_forcing_pair([[4, 5, 6], [7]])
    assert model.logits(z, z_mask, tgt_in).shape == (2, 4, 20)
    out = model(z, z_mask, tgt_in, tgt_out)
    assert isinstance(out, ModelOutput) and out.metrics == {}
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert torch.equal(out.loss, token_cross_entropy(model.logits(z, z_mask, tgt_in), tgt_out, PAD))
    out.loss.backward()
    assert model.src_proj.weight.grad is not None


def test_tied_output_projection_shares_the_embedding():
    model = tiny(tie_embeddings=True)
    assert model.out_proj.weight is model.tgt_embed.weight
    untied = tiny(tie_embeddings=False)
    assert untied.out_proj.weight is not untied.tgt_embed.weight


def test_padded_segments_change_nothing():
    torch.manual_seed(0)
    model = tiny().eval()
    z, z_mask = pad_batch([torch.randn(6, 16), torch.randn(2, 16)])
    tgt_in, _ = teacher_forcing_pair([[4, 5], [6, 7, 8]])
    before = model.logits(z, z_mask, tgt_in)
    z_changed = z.clone()
    z_changed[1, 2:] = torch.randn(4, 16) * 100
    z_changed[1, 5] = float("nan")
    after = model.logits(z_changed, z_mask, tgt_in)
    assert torch.allclose(before, after, atol=1e-5)
    assert model.greedy(z, z_mask, 10) == model.greedy(z_changed, z_mask, 10)


def test_trailing_target_pads_change_nothing():
    torch.manual_seed(0)
    model = tiny().eval()
    z, z_mask = pad_batch([torch.randn(4, 16)])
    short = torch.tensor([[BOS, 4, 5]])
    long = torch.tensor([[BOS, 4, 5, PAD, PAD]])
    assert torch.allclose(model.logits(z, z_mask, short), model.logits(z, z_mask, long)[:, :3], atol=1e-5)


def test_bad_masks_raise():
    model = tiny()
    z = torch.randn(2, 3, 16)
    with pytest.raises(ValueError, match="no valid position"):
        model.greedy(z, torch.tensor([[True, True, False], [False, False, False]]), 5)
    with pytest.raises(ValueError, match="bool"):
        model.greedy(z, torch.ones(2, 3), 5)
    with pytest.raises(ValueError, match="differ"):
        SignToText(16, 20, pad_id=0, bos_id=0, eos_id=2)


def test_beam_size_one_equals_greedy_on_random_models():
    torch.set_num_threads(1)
    lengths = []
    for seed in range(6):
        torch.manual_seed(seed)
        model = tiny(vocab=8, tie_embeddings=False)
        # sharper random logits, so sentences end at varied steps (EOS and max_len paths both run)
        torch.nn.init.normal_(model.out_proj.weight, std=0.5)
        z, z_mask = pad_batch([torch.randn(n, 16) * 3 for n in (3, 7, 5, 1, 4, 6)])
        greedy = model.greedy(z, z_mask, max_len=12)
        assert model.beam_search(z, z_mask, beam_size=1, alpha=1.0, max_len=12) == greedy
        lengths += [len(s) for s in greedy]
    assert max(lengths) == 12 and any(0 < n < 12 for n in lengths)


def scripted(model: SignToText, table: dict[tuple[int, ...], dict[int, float]]) -> SignToText:
    """Replaces the network's next-token distribution by a table: prefix (after BOS) -> probs.
    Unlisted tokens get 1e-6 (renormalized), unlisted prefixes end the sentence."""

    def next_log_probs(memory, z_mask, prefix):
        rows = []
        for p in prefix[:, 1:].tolist():
            probs = torch.full((model.vocab_size,), 1e-6)
            for token, prob in table.get(tuple(p), {EOS: 1.0}).items():
                probs[token] = prob
            probs[[PAD, BOS]] = 0.0
            rows.append((probs / probs.sum()).log())
        return torch.stack(rows)

    model._next_log_probs = next_log_probs
    return model


def test_beam_finds_the_better_sentence_greedy_misses():
    a, b = 3, 4
    model = scripted(tiny(vocab=6), {(): {a: 0.6, b: 0.4}, (a,): {EOS: 0.35, a: 0.33, b: 0.32}, (b,): {EOS: 0.9}})
    z, z_mask = pad_batch([torch.randn(2, 16)])
    assert model.greedy(z, z_mask, 5) == [[a]]  # p = 0.6 * 0.35 = 0.21
    assert model.beam_search(z, z_mask, beam_size=1, max_len=5) == [[a]]
    assert model.beam_search(z, z_mask, beam_size=2, alpha=0.0, max_len=5) == [[b]]  # p = 0.36


def test_early_low_scoring_endings_do_not_stop_the_search():
    a, b, c = 3, 4, 5
    # K = 3: [b] and [c] end at step 1 and [a, a] at step 2 (three finished, all worse than the
    # best), while the best sentence [a, a, a] (p = 0.4 * 0.9 * 0.9 = 0.324 > 0.2) ends at step 3.
    table = {(): {a: 0.4, b: 0.2, c: 0.2, 6: 0.2}, (b,): {EOS: 1.0}, (c,): {EOS: 1.0},
             (a,): {a: 0.9, EOS: 0.1}, (a, a): {a: 0.9, EOS: 0.1}, (a, a, a): {EOS: 1.0}}
    model = scripted(tiny(vocab=8), table)
    z, z_mask = pad_batch([torch.randn(2, 16)])
    assert model.beam_search(z, z_mask, beam_size=3, alpha=0.0, max_len=8) == [[a, a, a]]


def test_length_penalty_decides_between_lengths():
    a = 3
    # [] scores log 0.45 = -0.80 (penalty 1); [a] scores log(0.55 * 0.75) = -0.885, divided by
    # ((5 + 2) / 6) ** alpha: -0.885 with alpha 0 (loses), -0.759 with alpha 1 (wins).
    model = scripted(tiny(vocab=6), {(): {EOS: 0.45, a: 0.55}, (a,): {EOS: 0.75, a: 0.25}})
    z, z_mask = pad_batch([torch.randn(2, 16)])
    assert model.beam_search(z, z_mask, beam_size=2, alpha=0.0, max_len=5) == [[]]
    assert model.beam_search(z, z_mask, beam_size=2, alpha=1.0, max_len=5) == [[a]]


def test_max_len_caps_unterminated_sentences():
    a = 3
    model = scripted(tiny(vocab=6), {tuple([a] * n): {a: 0.9, EOS: 0.1} for n in range(10)})
    z, z_mask = pad_batch([torch.randn(2, 16)])
    assert model.greedy(z, z_mask, 4) == [[a] * 4]
    assert model.beam_search(z, z_mask, beam_size=1, max_len=4) == [[a] * 4]


def test_decoding_restores_training_mode():
    model = tiny(dropout=0.3).train()
    z, z_mask = pad_batch([torch.randn(3, 16)])
    model.beam_search(z, z_mask, beam_size=2, max_len=4)
    assert model.training


# ---- learning: the wiring must let it memorize -------------------------------------------------


def test_memorizes_eight_sentences_greedy_and_beam():
    from harness.metrics import bleu

    torch.set_num_threads(1)
    torch.manual_seed(0)
    vocab = 24
    gen = torch.Generator().manual_seed(1)
    sentences = []
    while len(sentences) < 8:
        length = int(torch.randint(4, 9, (1,), generator=gen))
        s = torch.randint(4, vocab, (length,), generator=gen).tolist()
        if s not in sentences:
            sentences.append(s)
    lengths = [3, 5, 8, 4, 10, 6, 2, 7]
    z, z_mask = pad_batch([torch.randn(n, 16, generator=gen) for n in lengths])
    tgt_in, tgt_out = teacher_forcing_pair(sentences)

    model = tiny(vocab=vocab)
    first, last = fit(model, lambda: model(z, z_mask, tgt_in, tgt_out).loss, 300, 2e-3)
    assert last < first / 50

    greedy = model.greedy(z, z_mask, max_len=12)
    beam = model.beam_search(z, z_mask, beam_size=4, alpha=1.0, max_len=12)
    assert greedy == sentences
    assert beam == sentences
    assert model.beam_search(z, z_mask, beam_size=1, max_len=12) == greedy

    as_text = lambda ids: [" ".join(f"w{t}" for t in s) for s in ids]  # noqa: E731
    assert bleu(as_text(beam), as_text(sentences))["bleu4"] == pytest.approx(100.0)


def test_label_smoothing_and_tied_embeddings_follow_the_config():
    """sign2text.label_smoothing and sign2text.tie_embeddings reach the model (the paper profile: 0 and untied)."""
    from harness.builders import build_sign2text
    from harness.config import load_profile
    from harness.data.datasets import Vocabulary
    vocab = Vocabulary([*Vocabulary.SPECIALS, "a", "b", "c"])
    small = build_sign2text(load_profile("debug"), 8, vocab)
    assert small.label_smoothing == 0.1 and small.out_proj.weight is small.tgt_embed.weight
    paper = build_sign2text(load_profile("paper"), 8, vocab)
    assert paper.label_smoothing == 0.0 and paper.out_proj.weight is not paper.tgt_embed.weight
    assert not torch.equal(paper.out_proj.weight, paper.tgt_embed.weight)
