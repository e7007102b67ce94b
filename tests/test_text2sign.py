"""Text-to-sign mapping (paper 3.4, eq. 4-6; appendix B.2, figure 7)."""

from __future__ import annotations

import math

import pytest
import torch

from models.text2sign import LengthRegulator, TextToSign, leading_count, overlap_mean, t2s_loss
from models.transformer import TransformerSpec, pad_batch

PAD = 0


def tiny(d_z: int = 8, num_queries: int = 16, **kw) -> TextToSign:
    spec = TransformerSpec(d_model=64, num_heads=4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=128,
                           dropout=0.0)
    return TextToSign(20, d_z, spec, num_queries=num_queries, **kw)


def force_lengths(model: TextToSign, logits: list[float]) -> None:
    """Makes the length regulator output fixed logits, whatever the text."""
    with torch.no_grad():
        model.regulator.readout.weight.zero_()
        model.regulator.readout.bias.copy_(torch.tensor(logits))


# ---- exact values ------------------------------------------------------------------------------


def test_t2s_loss_exact_values():
    z_hat = torch.zeros(1, 2, 2)
    z_target = torch.tensor([[[1.0, 1.0], [5.0, 5.0]]])  # the second position is padding
    valid = torch.tensor([[True, False]])
    loss = t2s_loss(z_hat, torch.zeros(1, 2), z_target, valid)
    assert loss.metrics["loss_repr"].item() == pytest.approx(2.0)  # ||(1, 1)||^2 at the one valid position
    assert loss.metrics["loss_len"].item() == pytest.approx(math.log(2))  # p = 0.5 everywhere
    assert loss.loss.item() == pytest.approx(2.0 + math.log(2))  # eq. 6
    # mean over valid positions: two valid positions with errors 2 and 0 -> 1
    both = t2s_loss(z_hat, torch.zeros(1, 2), torch.tensor([[[1.0, 1.0], [0.0, 0.0]]]), torch.tensor([[True, True]]))
    assert both.metrics["loss_repr"].item() == pytest.approx(1.0)


def test_t2s_loss_as_printed_sums_per_sentence():
    # Two sentences, Q = 3: errors 2 and 8 at the first's two valid positions, 4 at the second's one.
    z_hat = torch.zeros(2, 3, 2)
    z_target = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [9.0, 9.0]], [[0.0, 2.0], [9.0, 9.0], [9.0, 9.0]]])
    valid = torch.tensor([[True, True, False], [True, False, False]])
    total = t2s_loss(z_hat, torch.zeros(2, 3), z_target, valid, "sum")
    assert total.metrics["loss_repr"].item() == pytest.approx((2 + 8 + 4) / 2)  # eq. 4 per sentence, batch mean
    assert total.metrics["loss_len"].item() == pytest.approx(3 * math.log(2))  # eq. 5 summed over the 3 queries
    mean = t2s_loss(z_hat, torch.zeros(2, 3), z_target, valid, "mean")
    assert mean.metrics["loss_repr"].item() == pytest.approx((2 + 8 + 4) / 3)
    assert mean.metrics["loss_len"].item() == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="reduction"):
        t2s_loss(z_hat, torch.zeros(2, 3), z_target, valid, "max")
    model = tiny(reduction="sum")
    assert model.reduction == "sum"


def test_overlapping_segments_are_averaged():
    segs = torch.tensor([[0.0, 0.0, 0.0], [3.0, 3.0, 3.0], [6.0, 6.0, 6.0]])[..., None, None]  # (3, w=3, 1, 1)
    assert overlap_mean(segs, 3).flatten().tolist() == [0, 0, 0, 3, 3, 3, 6, 6, 6]  # stride = window: concatenated
    # stride 2: frames 0-2, 2-4, 4-6; frames 2 and 4 are covered twice
    assert overlap_mean(segs, 2).flatten().tolist() == [0, 0, 1.5, 3, 4.5, 6, 6]
    assert overlap_mean(segs, 1).flatten().tolist() == [0, 1.5, 3, 4.5, 6]  # (0 + 3 + 6) / 3 in the middle
    with pytest.raises(ValueError, match="stride"):
        overlap_mean(segs, 4)


def test_leading_count():
    valid = torch.tensor([[1, 1, 0, 1], [0, 1, 1, 1], [1, 1, 1, 1]]).bool()
    assert leading_count(valid).tolist() == [2, 0, 4]


def test_length_regulator_shape_and_residual_path():
    reg = LengthRegulator(d_model=32, num_queries=128)
    assert reg(torch.randn(3, 32)).shape == (3, 128)
    assert reg.fc1.out_features == 8 and reg.fc2.out_features == 32  # bottleneck D -> D/4 -> D


# ---- shapes, masks, errors ---------------------------------------------------------------------


def test_default_has_128_queries_and_shapes():
    torch.manual_seed(0)
    model = TextToSign(20, 12, TransformerSpec(d_model=32, num_heads=2, num_encoder_layers=1, num_decoder_layers=1,
                                               dim_feedforward=64))
    assert model.num_queries == 128
    tokens = torch.tensor([[4, 5, 6], [7, PAD, PAD]])
    z_hat, logits = model.predict(tokens)
    assert z_hat.shape == (2, 128, 12) and logits.shape == (2, 128)
    z_target, z_valid = pad_batch([torch.randn(5, 12), torch.randn(2, 12)])
    out = model(tokens, z_target, z_valid)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert out.loss.item() == pytest.approx(out.metrics["loss_repr"].item() + out.metrics["loss_len"].item(), rel=1e-6)
    assert not out.metrics["loss_repr"].requires_grad  # metrics are for logging only
    assert model.predicted_lengths(tokens).shape == (2,)


def test_padded_tokens_and_padded_targets_change_nothing():
    torch.manual_seed(0)
    model = tiny().eval()
    short = torch.tensor([[4, 5, 6]])
    long = torch.tensor([[4, 5, 6, PAD, PAD]])
    z_a, l_a = model.predict(short)
    z_b, l_b = model.predict(long)
    assert torch.allclose(z_a, z_b, atol=1e-5) and torch.allclose(l_a, l_b, atol=1e-5)
    z_target, z_valid = pad_batch([torch.randn(3, 8), torch.randn(1, 8)])
    tokens = torch.tensor([[4, 5], [6, 7]])
    before = model(tokens, z_target, z_valid).loss
    z_target[1, 1:] = 1e3
    assert model(tokens, z_target, z_valid).loss.item() == pytest.approx(before.item(), rel=1e-6)


def test_bad_targets_raise():
    model = tiny(num_queries=4)
    tokens = torch.tensor([[4, 5]])
    with pytest.raises(ValueError, match="num_queries"):
        model(tokens, torch.randn(1, 5, 8), torch.ones(1, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="prefix"):
        model(tokens, torch.randn(1, 3, 8), torch.tensor([[True, False, True]]))
    with pytest.raises(ValueError, match="no valid position"):
        model.predict(torch.tensor([[PAD, PAD]]))


def test_missing_hugging_face_directory_raises_value_error():
    # ValueError both when transformers is absent and when the directory is not a model.
    with pytest.raises(ValueError, match="text_encoder"):
        TextToSign(20, 8, text_encoder="/nonexistent/distilbert")


def test_local_hugging_face_encoder(tmp_path):
    import transformers  # the [hf] extra, which the [test] extra includes: this test never skips
    config = transformers.DistilBertConfig(vocab_size=30, dim=32, n_layers=1, n_heads=2, hidden_dim=64,
                                           max_position_embeddings=64, pad_token_id=PAD)
    transformers.DistilBertModel(config).save_pretrained(tmp_path)  # a local directory, no download
    spec = TransformerSpec(d_model=32, num_heads=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=64)
    model = TextToSign(30, 8, spec, num_queries=6, text_encoder=str(tmp_path))
    tokens = torch.tensor([[1, 5, 6, 7], [1, 8, PAD, PAD]])  # [CLS] first (id 1 here)
    head, memory, memory_mask = model.encode_text(tokens)
    assert head.shape == (2, 32) and memory.shape == (2, 3, 32)
    assert memory_mask.tolist() == [[True, True, True], [True, False, False]]
    loss = model(tokens, torch.randn(2, 2, 8), torch.tensor([[True, True], [True, False]]))
    assert torch.isfinite(loss.loss)


# ---- generation --------------------------------------------------------------------------------


def test_generate_decodes_the_valid_prefix_in_order():
    torch.manual_seed(0)
    model = tiny(num_queries=6)
    w = 3
    calls = []

    def decode(z):  # (n, D_z) -> (n, w, V=1, C=D_z): each segment repeats its z for w frames
        calls.append(z.shape[0])
        return z[:, None, None, :].expand(-1, w, 1, -1)

    tokens = torch.tensor([[4, 5, 6], [7, 8, PAD]])
    z_hat, _ = model.eval().predict(tokens)
    force_lengths(model, [9, 9, 9, -9, -9, -9])
    out = model.generate(tokens, decode)
    assert calls == [3, 3] and [x.shape for x in out] == [(9, 1, 8), (9, 1, 8)]
    for b in range(2):
        for i in range(3):
            assert torch.allclose(out[b][i * w : (i + 1) * w, 0], z_hat[b, i].expand(w, -1), atol=1e-6)
    # a hole ends the valid prefix: positions 0, 1 valid, 2 not, 3 valid -> n = 2
    force_lengths(model, [9, 9, -9, 9, -9, -9])
    assert model.predicted_lengths(tokens).tolist() == [2, 2]
    assert [x.shape[0] for x in model.generate(tokens, decode)] == [6, 6]
    # nothing valid -> min_len = 1 segment
    force_lengths(model, [-9] * 6)
    assert model.predicted_lengths(tokens).tolist() == [1, 1]
    assert [x.shape[0] for x in model.generate(tokens, decode)] == [3, 3]
    # text2sign.stride below the window: n = 3 segments of 3 frames every 2 frames -> 7 frames
    force_lengths(model, [9, 9, 9, -9, -9, -9])
    assert [x.shape[0] for x in model.generate(tokens, decode, stride=2)] == [7, 7]
    # a stricter threshold: p = sigmoid(1) = 0.73 passes 0.5 but not 0.8
    force_lengths(model, [9, 1, -9, -9, -9, -9])
    assert model.predicted_lengths(tokens, threshold=0.5).tolist() == [2, 2]
    assert model.predicted_lengths(tokens, threshold=0.8).tolist() == [1, 1]


def test_generate_rejects_a_decode_of_the_wrong_shape():
    model = tiny(num_queries=4)
    force_lengths(model, [9, 9, -9, -9])
    with pytest.raises(ValueError, match="decode"):
        model.generate(torch.tensor([[4, 5]]), lambda z: torch.zeros(1, 3, 2, 2))


# ---- learning ----------------------------------------------------------------------------------


def test_overfits_a_few_sentences_and_their_lengths():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(3)
    sentences = [[4, 5, 6, 7], [8, 9, 10], [11, 12, 13, 14, 15], [5, 16, 17]]
    counts = [3, 5, 2, 6]
    tokens, _ = pad_batch([torch.tensor(s) for s in sentences], pad_value=PAD)
    z_target, z_valid = pad_batch([torch.randn(n, 8, generator=gen) for n in counts])
    model = tiny()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    first = None
    for step in range(400):
        loss = model(tokens.long(), z_target, z_valid).loss
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < first / 30 and step > 50:
            break
    assert loss.item() <= first / 10
    assert model.predicted_lengths(tokens.long()).tolist() == counts
    z_hat, _ = model.eval().predict(tokens.long())
    err = ((z_hat[:, : z_valid.shape[1]] - z_target) ** 2).sum(-1)[z_valid].mean()
    assert err < 0.1 * (z_target**2).sum(-1)[z_valid].mean()


# ---- query count from the data -----------------------------------------------------------------


def test_num_queries_zero_is_the_longest_training_sequence():
    from harness.builders import text2sign_queries
    from harness.config import apply_overrides, load_profile
    default = load_profile("default")
    assert default.text2sign.num_queries == 0  # the default profile follows its corpus
    assert text2sign_queries(default, 9) == 9
    assert text2sign_queries(load_profile("paper"), 9) == 128  # the paper's count stays in its profile
    assert text2sign_queries(apply_overrides(default, {"text2sign.num_queries": 12}), 9) == 12
    with pytest.raises(ValueError, match="longest"):
        text2sign_queries(default, None)


def test_a_test_sentence_longer_than_the_queries_is_generated_truncated_and_scored():
    from harness.metrics import dtw_mje, mpjpe
    torch.manual_seed(0)
    model = tiny(num_queries=3)  # the longest training sequence had 3 segments
    force_lengths(model, [9, 9, 9])
    w = 2
    out = model.generate(torch.tensor([[4, 5, 6, 7, 8]]), lambda z: torch.zeros(z.shape[0], w, 4, 2))
    assert out[0].shape == (3 * w, 4, 2)  # at most num_queries segments
    truth = torch.randn(5 * w, 4, 2).numpy()  # five segments long
    assert math.isfinite(mpjpe(out[0].numpy(), truth)) and math.isfinite(dtw_mje(out[0].numpy(), truth))
