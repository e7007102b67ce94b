"""Isolated sign recognition on top of the representations (paper section 5, table 3).

For KSL-Guide-Word the paper uses "a Transformer encoder configured identically to the SignMAE
encoder, followed by a single linear projection layer that maps the encoded features to class
probabilities". Here the encoder is a ViT/MAE-style pre-LN Transformer with GELU (the SignMAE
encoder's style), its width, depth and heads given as arguments so a caller can match the SignMAE
it sits on. It reads a sequence of z's (or frame tokens), pools by a prepended [CLS] token or by
the mean over valid positions, and classifies into glosses. Top-1/5/10 accuracy (table 3) comes
from predict(k).

Table 3's baselines read keypoints, not z: a GRU over normalized keypoints (GRUClassifier; GRU +
Normalization [38]) and a Transformer encoder over the frames (RecognitionHead itself, fed frames).

Masks are True where a position is valid (see models/transformer.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.outputs import ModelOutput
from models.transformer import SinusoidalPositionalEncoding, check_mask, evaluating, transformer_encoder

POOLINGS = ("cls", "mean")


class RecognitionHead(nn.Module):
    """(B, N, D_in) sequence + (B, N) mask -> gloss logits (B, num_classes)."""

    def __init__(
        self,
        d_in: int,
        num_classes: int,
        d_model: int = 256,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
        pooling: str = "cls",
        label_smoothing: float = 0.0,
        max_positions: int = 1024,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"RecognitionHead: pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.label_smoothing = label_smoothing
        self.in_proj = nn.Linear(d_in, d_model)
        self.pos = SinusoidalPositionalEncoding(d_model, max_positions + 1)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model)) if pooling == "cls" else None
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=0.02)
        self.dropout = nn.Dropout(dropout)
        self.encoder = transformer_encoder(
            d_model, num_heads, depth, int(d_model * mlp_ratio), dropout, activation="gelu"
        )
        self.classifier = nn.Linear(d_model, num_classes)

    def logits(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        """x (B, N, D_in), x_mask (B, N) True = valid -> (B, num_classes)."""
        if x.dim() != 3:
            raise ValueError(f"RecognitionHead: expected x of shape (B, N, D_in), got {tuple(x.shape)}")
        check_mask(x_mask, x.shape[:2], "RecognitionHead x_mask")
        x = x.masked_fill(~x_mask[..., None], 0.0)  # padding can carry anything, even NaN
        h = self.in_proj(x)  # (B, N, D)
        mask = x_mask
        if self.cls_token is not None:
            h = torch.cat([self.cls_token.expand(len(h), -1, -1), h], dim=1)  # (B, 1 + N, D)
            mask = F.pad(x_mask, (1, 0), value=True)
        h = self.encoder(self.dropout(self.pos(h)), src_key_padding_mask=~mask)  # (B, N', D)
        if self.cls_token is not None:
            pooled = h[:, 0]  # (B, D)
        else:
            weights = mask[..., None].to(h.dtype)  # (B, N, 1)
            pooled = (h * weights).sum(dim=1) / weights.sum(dim=1)  # (B, D)
        return self.classifier(pooled)  # (B, num_classes)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, labels: torch.Tensor) -> ModelOutput:
        """Cross-entropy over glosses, mean over the batch; labels (B,) class ids."""
        logits = self.logits(x, x_mask)  # (B, num_classes)
        return ModelOutput(F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing))

    def predict(self, x: torch.Tensor, x_mask: torch.Tensor, k: int = 1) -> torch.Tensor:
        """(B, k) class ids, best first (table 3's top-k accuracy: label in row)."""
        with evaluating(self):
            return self.logits(x, x_mask).topk(k, dim=-1).indices  # (B, k)


class GRUClassifier(nn.Module):
    """(B, T, D_in) frames + (B, T) mask -> gloss logits: a bidirectional GRU, the mean of its
    states over valid frames, one linear layer. The same interface as RecognitionHead."""

    def __init__(self, d_in: int, num_classes: int, hidden: int = 128, layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.in_proj = nn.Linear(d_in, hidden)
        self.gru = nn.GRU(hidden, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                          dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * hidden, num_classes)

    def logits(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"GRUClassifier: expected x of shape (B, T, D_in), got {tuple(x.shape)}")
        check_mask(x_mask, x.shape[:2], "GRUClassifier x_mask")
        x = x.masked_fill(~x_mask[..., None], 0.0)
        lengths = x_mask.sum(dim=1).cpu()  # (B,)
        packed = nn.utils.rnn.pack_padded_sequence(self.dropout(self.in_proj(x)), lengths, batch_first=True,
                                                   enforce_sorted=False)
        h, _ = self.gru(packed)
        h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=x.shape[1])  # (B, T, 2H)
        weights = x_mask[..., None].to(h.dtype)  # (B, T, 1)
        pooled = (h * weights).sum(dim=1) / weights.sum(dim=1)  # (B, 2H)
        return self.classifier(self.dropout(pooled))  # (B, num_classes)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, labels: torch.Tensor) -> ModelOutput:
        return ModelOutput(F.cross_entropy(self.logits(x, x_mask), labels))

    def predict(self, x: torch.Tensor, x_mask: torch.Tensor, k: int = 1) -> torch.Tensor:
        with evaluating(self):
            return self.logits(x, x_mask).topk(k, dim=-1).indices  # (B, k)
