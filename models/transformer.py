"""Shared Transformer pieces of the task-specific mappings (paper section 3.4, appendix B.2).

The mappings "largely follow the configuration of Joint-SLT" (B.2): a pre-LayerNorm Transformer
encoder-decoder as in joeynmt, with sinusoidal positions (Vaswani et al.). This module holds what
the sign-to-text, text-to-sign, recognition and back-translation models share: the one sinusoidal
table, the pre-LN encoder/decoder builders (SignMAE uses both too, with GELU), TransformerSpec (the
encoder-decoder shape of the three mapping models), mask helpers, the token cross-entropy and
batching helpers.

Mask polarity, stated once for all of models/: every mask a model takes or returns as a bool tensor
is True where an element is VALID (a point is present, a frame, segment or token is real). PyTorch's
attention wants the opposite (True = ignore), so the inversion happens only inside these models,
right at the attention call (and causal_mask, an attention mask, is True = blocked). SignMAE's
token mask is not a validity mask but MAE's removal mask, float, 1 = removed (models/signmae.py).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_table(length: int, d_model: int) -> torch.Tensor:
    """The fixed sin/cos table of Vaswani et al.: (length, d_model); d_model must be even."""
    if d_model % 2 != 0:
        raise ValueError(f"sinusoidal positions: d_model must be even, got {d_model}")
    position = torch.arange(length, dtype=torch.float32)[:, None]  # (L, 1)
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))  # (D/2,)
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)
    return table  # (L, D)


class SinusoidalPositionalEncoding(nn.Module):
    """Adds fixed sinusoidal positions to a (B, L, D) sequence."""

    def __init__(self, d_model: int, max_positions: int = 1024):
        super().__init__()
        self.max_positions = max_positions
        # Not persistent: it is a function of (max_positions, d_model), not a learned state.
        self.register_buffer("table", sinusoidal_table(max_positions, d_model), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        if length > self.max_positions:
            raise ValueError(
                f"sequence of length {length} exceeds max_positions={self.max_positions}; "
                "raise max_positions in the model's constructor"
            )
        return x + self.table[:length].to(x.dtype)  # (B, L, D)


def lengths_to_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) bool, True for the first lengths[b] positions."""
    lengths = torch.as_tensor(lengths)
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]  # (B, L)


def check_mask(mask: torch.Tensor, batch_shape: Sequence[int], name: str) -> torch.Tensor:
    """Validates a (B, L) True-is-valid mask; an all-invalid row would make attention NaN."""
    if mask.dtype != torch.bool:
        raise ValueError(f"{name}: expected a bool mask (True = valid), got dtype {mask.dtype}")
    if tuple(mask.shape) != tuple(batch_shape):
        raise ValueError(f"{name}: expected shape {tuple(batch_shape)}, got {tuple(mask.shape)}")
    empty = (~mask.any(dim=1)).nonzero().flatten()
    if len(empty) > 0:
        raise ValueError(f"{name}: batch row {int(empty[0])} has no valid position; every row needs one")
    return mask


def causal_mask(length: int, device: torch.device | None = None) -> torch.Tensor:
    """(L, L) bool, True where attention is blocked (a position may not see later ones)."""
    return torch.triu(torch.ones(length, length, dtype=torch.bool, device=device), diagonal=1)


def transformer_encoder(
    d_model: int, num_heads: int, num_layers: int, dim_feedforward: int, dropout: float,
    activation: str = "relu",
) -> nn.TransformerEncoder:
    """Pre-LN encoder with a final LayerNorm (joeynmt / Joint-SLT style; pre-LN trains without
    the long warmup post-LN needs)."""
    layer = nn.TransformerEncoderLayer(
        d_model, num_heads, dim_feedforward, dropout, activation=activation,
        batch_first=True, norm_first=True,
    )
    # Nested tensors are only a speed path for post-LN; turning them off silences the warning and
    # keeps outputs at padded positions defined (zeros are never read, but NaNs would be surprising).
    return nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)


def transformer_decoder(
    d_model: int, num_heads: int, num_layers: int, dim_feedforward: int, dropout: float,
    activation: str = "relu",
) -> nn.TransformerDecoder:
    """Pre-LN decoder with a final LayerNorm, the counterpart of transformer_encoder."""
    layer = nn.TransformerDecoderLayer(
        d_model, num_heads, dim_feedforward, dropout, activation=activation,
        batch_first=True, norm_first=True,
    )
    return nn.TransformerDecoder(layer, num_layers, norm=nn.LayerNorm(d_model))


@dataclass(frozen=True)
class TransformerSpec:
    """The encoder-decoder shape shared by the three mapping models (sign-to-text, text-to-sign,
    the back-translator): B.2's Joint-SLT configuration, ReLU feed-forward. Each model builds its
    parts from it in its own order (the order of construction fixes the random initialisation)."""

    d_model: int = 256
    num_heads: int = 4
    num_encoder_layers: int = 3  # unused by text-to-sign with a Hugging Face text encoder
    num_decoder_layers: int = 3
    dim_feedforward: int = 1024
    dropout: float = 0.1
    max_positions: int = 1024  # longest sequence the sinusoidal table covers

    def positions(self) -> SinusoidalPositionalEncoding:
        return SinusoidalPositionalEncoding(self.d_model, self.max_positions)

    def encoder(self) -> nn.TransformerEncoder:
        return transformer_encoder(
            self.d_model, self.num_heads, self.num_encoder_layers, self.dim_feedforward, self.dropout
        )

    def decoder(self) -> nn.TransformerDecoder:
        return transformer_decoder(
            self.d_model, self.num_heads, self.num_decoder_layers, self.dim_feedforward, self.dropout
        )


def token_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, pad_id: int, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Eq. 3 with the reduction stated: mean over the non-pad target tokens of the batch
    (eq. 3 sums over one sentence; a per-token mean keeps the learning rate independent of
    sentence length and batch size). logits (B, L, V), targets (B, L) -> scalar."""
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
        ignore_index=pad_id, label_smoothing=label_smoothing,
    )


def length_penalty(length: int | torch.Tensor, alpha: float) -> float | torch.Tensor:
    """GNMT length penalty as joeynmt uses it: ((5 + length) / 6) ** alpha; alpha = 0 disables it."""
    return ((5.0 + length) / 6.0) ** alpha


def teacher_forcing_pair(
    sentences: Sequence[Sequence[int]], pad_id: int = 0, bos_id: int = 1, eos_id: int = 2,
    device: torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id sentences (without BOS/EOS) -> (tgt_in, tgt_out), each (B, L) with L = max len + 1:
    tgt_in = [BOS, y_1..y_U, PAD..], tgt_out = [y_1..y_U, EOS, PAD..]."""
    length = max(len(s) for s in sentences) + 1
    tgt_in = torch.full((len(sentences), length), pad_id, dtype=torch.long, device=device)
    tgt_out = torch.full_like(tgt_in, pad_id)
    for b, sentence in enumerate(sentences):
        ids = torch.as_tensor(list(sentence), dtype=torch.long, device=device)
        tgt_in[b, 0] = bos_id
        tgt_in[b, 1 : len(ids) + 1] = ids
        tgt_out[b, : len(ids)] = ids
        tgt_out[b, len(ids)] = eos_id
    return tgt_in, tgt_out  # (B, L), (B, L)


def pad_batch(sequences: Sequence[torch.Tensor], pad_value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Variable-length (N_i, ...) tensors -> (B, N_max, ...) padded and a (B, N_max) True-is-valid mask."""
    padded = nn.utils.rnn.pad_sequence(list(sequences), batch_first=True, padding_value=pad_value)
    lengths = torch.tensor([len(s) for s in sequences], device=padded.device)
    return padded, lengths_to_mask(lengths, padded.shape[1])


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[None]:
    """Runs a block in eval mode without gradients and restores the previous mode: decoding must
    not depend on whether the caller remembered model.eval() (dropout would change the output)."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


class TextEncoder(nn.Module):
    """Learned token embedding (scaled by sqrt(D)) + sinusoidal positions + the spec's encoder: the
    text side of the production baselines (PT, NSLP-G), which read the sentence directly.
    tokens (B, L) padded with pad_id -> memory (B, L, D), memory mask (B, L) True = valid."""

    def __init__(self, vocab_size: int, spec: TransformerSpec, pad_id: int = 0):
        super().__init__()
        self.d_model, self.pad_id = spec.d_model, pad_id
        self.embed = nn.Embedding(vocab_size, spec.d_model)
        nn.init.normal_(self.embed.weight, std=spec.d_model**-0.5)
        self.pos = spec.positions()
        self.dropout = nn.Dropout(spec.dropout)
        self.encoder = spec.encoder()

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if tokens.dim() != 2:
            raise ValueError(f"TextEncoder: expected tokens of shape (B, L), got {tuple(tokens.shape)}")
        mask = check_mask(tokens != self.pad_id, tokens.shape, "TextEncoder tokens (all pad)")  # (B, L)
        x = self.dropout(self.pos(self.embed(tokens) * math.sqrt(self.d_model)))  # (B, L, D)
        return self.encoder(x, src_key_padding_mask=~mask), mask  # (B, L, D), (B, L)
