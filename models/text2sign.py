"""Text-to-sign mapping (paper section 3.4, eq. 4-6; appendix B.2, figure 7).

A text encoder reads the sentence with a head token in front (the [CLS] of the paper's DistilBERT).
The encoded tokens EXCLUDING the head are the memory of a non-autoregressive Transformer decoder whose
input is a fixed set of learnable queries (128 in the paper), one gloss-level representation z_hat_i
per query. The head token goes through the length regulator (figure 7), which predicts for each of
the queries whether it is valid; the valid mask multiplies the decoder output, and the frozen SignMAE
decoder turns each valid z_hat_i into `window` frames.

Loss (eq. 4-6), with the reduction chosen (`reduction`):
  "sum" (as printed): per sentence, L_repr = sum over its ground-truth-valid positions of
         ||z_i - z_hat_i||_2^2 (eq. 4) and L_len = the binary cross-entropy of the valid logits summed
         over all num_queries positions (eq. 5); both averaged over the sentences of the batch;
  "mean": L_repr averaged over the valid positions of the batch and L_len over all positions, which
         keeps the scale independent of N and Q (and weighs the length loss Q / N times less against
         L_repr than the sums do);
  L_t2s = L_repr + L_len (eq. 6).
During training the representation loss reads the raw decoder output at ground-truth-valid positions,
which equals multiplying by the ground-truth mask; multiplying by the PREDICTED mask would cut the
gradient wherever the regulator is still wrong. At inference the predicted mask is used.

Text encoder: "learned" (the offline default: token embedding + sinusoidal positions + Transformer
encoder, with a learned head embedding prepended), or a local Hugging Face model directory (the paper
used DistilBERT), loaded with local_files_only=True; then tokens must be that model's tokenizer ids,
[CLS] first, and no head is prepended.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from models.outputs import ModelOutput
from models.transformer import TransformerSpec, check_mask, evaluating


class LengthRegulator(nn.Module):
    """Figure 7: a bottleneck block on the head token, LayerNorm(h + Dropout(FC2(GELU(FC1(h))))),
    then a linear read-out to one valid-logit per query. The read-out layer is our addition: the
    figure's residual block keeps width D, and something must map D to num_queries logits."""

    def __init__(self, d_model: int, num_queries: int, hidden: int | None = None, dropout: float = 0.1):
        super().__init__()
        hidden = hidden or max(d_model // 4, 1)
        self.fc1 = nn.Linear(d_model, hidden)
        self.fc2 = nn.Linear(hidden, d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)
        self.readout = nn.Linear(d_model, num_queries)

    def forward(self, head: torch.Tensor) -> torch.Tensor:
        """head (B, D) -> valid logits (B, Q)."""
        h = self.norm(head + self.dropout(self.fc2(F.gelu(self.fc1(head)))))  # (B, D)
        return self.readout(h)  # (B, Q)


REDUCTIONS = ("mean", "sum")


def t2s_loss(
    z_hat: torch.Tensor, valid_logits: torch.Tensor, z_target: torch.Tensor, z_valid: torch.Tensor,
    reduction: str = "mean",
) -> ModelOutput:
    """Eq. 4-6 with the module docstring's reductions. z_hat, z_target (B, Q, D); valid_logits (B, Q);
    z_valid (B, Q) bool, True where a ground-truth segment exists. loss = L_t2s (eq. 6); metrics
    "loss_repr" (eq. 4) and "loss_len" (eq. 5)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"t2s_loss: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    squared = ((z_hat - z_target) ** 2).sum(dim=-1)  # (B, Q)
    valid = z_valid.to(squared.dtype)  # (B, Q)
    if reduction == "sum":
        loss_repr = (squared * valid).sum() / len(valid)
        loss_len = F.binary_cross_entropy_with_logits(valid_logits, valid, reduction="sum") / len(valid)
    else:
        loss_repr = (squared * valid).sum() / valid.sum().clamp(min=1.0)
        loss_len = F.binary_cross_entropy_with_logits(valid_logits, valid)
    return ModelOutput(loss_repr + loss_len, {"loss_repr": loss_repr.detach(), "loss_len": loss_len.detach()})


def leading_count(valid: torch.Tensor) -> torch.Tensor:
    """(B, Q) bool -> (B,) number of leading True values (the length of the valid prefix)."""
    return valid.to(torch.long).cumprod(dim=1).sum(dim=1)


class TextToSign(nn.Module):
    """Tokens (B, L) -> gloss-level representations (B, Q, D_z) and valid logits (B, Q)."""

    def __init__(
        self,
        vocab_size: int,
        d_z: int,
        spec: TransformerSpec = TransformerSpec(),
        num_queries: int = 128,
        regulator_hidden: int | None = None,
        text_encoder: str = "learned",
        pad_id: int = 0,
        reduction: str = "mean",
    ):
        """spec: the text encoder's and the query decoder's shape (with a Hugging Face text_encoder
        its num_encoder_layers is unused). pad_id: the token padding id (with a Hugging Face encoder,
        its tokenizer's). reduction: eq. 4-6's, "mean" or "sum" (module doc)."""
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"TextToSign: reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        d_model, dropout = spec.d_model, spec.dropout
        self.d_model = d_model
        self.num_queries = num_queries
        self.pad_id = pad_id
        self.text_encoder = text_encoder
        if text_encoder == "learned":
            self.token_embed = nn.Embedding(vocab_size, d_model)
            nn.init.normal_(self.token_embed.weight, std=d_model**-0.5)
            self.head_token = nn.Parameter(torch.randn(1, 1, d_model) * d_model**-0.5)
            self.text_pos = spec.positions()
            self.text_dropout = nn.Dropout(dropout)
            self.encoder = spec.encoder()
        else:
            self.encoder = _load_local_hf_encoder(text_encoder)
            self.text_proj = nn.Linear(self.encoder.config.hidden_size, d_model)

        self.queries = nn.Parameter(torch.randn(1, num_queries, d_model) * 0.02)
        self.decoder = spec.decoder()
        self.out_proj = nn.Linear(d_model, d_z)
        self.regulator = LengthRegulator(d_model, num_queries, regulator_hidden, dropout)

    def encode_text(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """tokens (B, L) padded with pad_id -> head (B, D), memory (B, L', D), memory_mask (B, L').
        For the learned encoder L' = L (the head is prepended, then split off again)."""
        if tokens.dim() != 2:
            raise ValueError(f"TextToSign: expected tokens of shape (B, L), got {tuple(tokens.shape)}")
        token_mask = tokens != self.pad_id  # (B, L)
        if self.text_encoder == "learned":
            check_mask(token_mask, tokens.shape, "TextToSign tokens (all pad)")
            x = self.token_embed(tokens) * math.sqrt(self.d_model)  # (B, L, D)
            x = torch.cat([self.head_token.expand(len(tokens), -1, -1), x], dim=1)  # (B, 1 + L, D)
            full_mask = F.pad(token_mask, (1, 0), value=True)  # (B, 1 + L)
            h = self.encoder(self.text_dropout(self.text_pos(x)), src_key_padding_mask=~full_mask)  # (B, 1 + L, D)
            return h[:, 0], h[:, 1:], token_mask
        # Hugging Face encoder: its own [CLS] is tokens[:, 0].
        check_mask(token_mask[:, 1:], (tokens.shape[0], tokens.shape[1] - 1), "TextToSign tokens after [CLS]")
        h = self.text_proj(self.encoder(input_ids=tokens, attention_mask=token_mask.long()).last_hidden_state)  # (B, L, D)
        return h[:, 0], h[:, 1:], token_mask[:, 1:]

    def predict(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (B, L) -> z_hat (B, Q, D_z) unmasked, valid logits (B, Q)."""
        head, memory, memory_mask = self.encode_text(tokens)
        queries = self.queries.expand(len(tokens), -1, -1)  # (B, Q, D)
        # No causal mask: all queries are decoded at once (non-autoregressive).
        h = self.decoder(queries, memory, memory_key_padding_mask=~memory_mask)  # (B, Q, D)
        return self.out_proj(h), self.regulator(head)  # (B, Q, D_z), (B, Q)

    def forward(self, tokens: torch.Tensor, z_target: torch.Tensor, z_valid: torch.Tensor) -> ModelOutput:
        """tokens (B, L); z_target (B, N_max, D_z) frozen-encoder outputs of the ground-truth windows,
        N_max <= num_queries (padded here to num_queries); z_valid (B, N_max) bool, a valid prefix.
        Returns t2s_loss's ModelOutput: loss eq. 6, metrics loss_repr (eq. 4) and loss_len (eq. 5)."""
        batch, n_max = z_valid.shape
        if n_max > self.num_queries:
            raise ValueError(
                f"TextToSign: targets have {n_max} segments but num_queries={self.num_queries}; "
                "raise num_queries or use a larger stride"
            )
        if tuple(z_target.shape[:2]) != (batch, n_max):
            raise ValueError(
                f"TextToSign: z_target {tuple(z_target.shape)} does not match z_valid {tuple(z_valid.shape)}"
            )
        if bool((leading_count(z_valid) != z_valid.sum(dim=1)).any()):
            raise ValueError("TextToSign: z_valid must be a prefix (True for the first N_i segments only)")
        pad = self.num_queries - n_max
        z_target = F.pad(z_target.masked_fill(~z_valid[..., None], 0.0), (0, 0, 0, pad))  # (B, Q, D_z)
        z_valid = F.pad(z_valid, (0, pad), value=False)  # (B, Q)
        z_hat, valid_logits = self.predict(tokens)
        return t2s_loss(z_hat, valid_logits, z_target, z_valid, self.reduction)

    def predicted_lengths(self, tokens: torch.Tensor, threshold: float = 0.5, min_len: int = 1) -> torch.Tensor:
        """(B,) the number of LEADING queries with p(valid) > threshold, at least min_len (a sentence
        has at least one sign; an empty sequence could not be decoded or back-translated)."""
        with evaluating(self):
            _, valid_logits = self.predict(tokens)
        return leading_count(torch.sigmoid(valid_logits) > threshold).clamp(min=min_len)

    def generate(
        self,
        tokens: torch.Tensor,
        decode: Callable[[torch.Tensor], torch.Tensor],
        threshold: float = 0.5,
        min_len: int = 1,
        stride: int | None = None,
    ) -> list[torch.Tensor]:
        """tokens (B, L) -> B keypoint sequences, each ((n - 1) * s + w, V, C).

        n = the leading count of predicted-valid queries (predicted_lengths). The predicted mask
        multiplies the output, so the first n rows are the valid representations; each goes through
        decode (the frozen SignMAE decoder: (n, D_z) -> (n, w, V, C)), and segment i is placed at frame
        i * s. With s = w (None, the paper's choice for SLP) the segments are concatenated; with s < w
        the frames where segments overlap are their mean.
        """
        with evaluating(self):
            z_hat, valid_logits = self.predict(tokens)  # (B, Q, D_z), (B, Q)
            lengths = leading_count(torch.sigmoid(valid_logits) > threshold).clamp(min=min_len)  # (B,)
            keep = torch.arange(self.num_queries, device=tokens.device)[None, :] < lengths[:, None]  # (B, Q)
            z_hat = z_hat * keep[..., None].to(z_hat.dtype)
            sequences = []
            for b, n in enumerate(lengths.tolist()):
                segments = decode(z_hat[b, :n])  # (n, w, V, C)
                if segments.dim() != 4 or segments.shape[0] != n:
                    raise ValueError(f"TextToSign.generate: decode must return (n, w, V, C) with n={n}, "
                                     f"got {tuple(segments.shape)}")
                sequences.append(overlap_mean(segments, stride or segments.shape[1]))  # ((n-1)*s + w, V, C)
            return sequences


def overlap_mean(segments: torch.Tensor, stride: int) -> torch.Tensor:
    """(n, w, V, C) segments starting every `stride` frames -> ((n - 1) * stride + w, V, C), each frame
    the mean of the segments covering it (1 <= stride <= w: every frame is covered)."""
    n, w = segments.shape[:2]
    if not 1 <= stride <= w:
        raise ValueError(f"overlap_mean: stride must be in [1, {w}], got {stride}")
    if stride == w:
        return segments.reshape(-1, *segments.shape[2:])  # (n*w, V, C): no overlap
    total = (n - 1) * stride + w
    out = segments.new_zeros(total, *segments.shape[2:])  # (T, V, C)
    count = segments.new_zeros(total)  # (T,)
    for i in range(n):
        out[i * stride: i * stride + w] += segments[i]
        count[i * stride: i * stride + w] += 1
    return out / count.view(-1, *([1] * (segments.dim() - 2)))


def _load_local_hf_encoder(path: str) -> nn.Module:
    """A local Hugging Face encoder directory (e.g. a saved DistilBERT); never downloads."""
    try:
        from transformers import AutoModel
    except ImportError as err:
        raise ValueError(
            f"text_encoder={path!r} needs the `transformers` package; install it or use text_encoder='learned'"
        ) from err
    try:
        return AutoModel.from_pretrained(path, local_files_only=True)
    except OSError as err:
        raise ValueError(f"text_encoder={path!r}: not a local Hugging Face model directory ({err})") from err
