"""The back-translation judge of sign language production (paper section 4.1, "Metrics").

To score generated keypoints with BLEU/ROUGE-L, the paper translates them back to text with Joint-SLT
trained on ground-truth keypoints (following Progressive Transformers). This is that judge without the
gloss (CTC) branch, since our study has no glosses on most corpora: a keypoint-frame embedder, then the
same encoder-decoder and decoding as the sign-to-text mapping (models.sign2text.SignToText, reused,
not duplicated).

Frame embedder: each frame's present points (coordinates zeroed where absent, plus the presence bit,
so an absent point is never read as a position at the origin) -> linear -> D, then one temporal
convolution (kernel 2s+1, stride s) that downsamples time by s = `downsample`, which keeps attention
over ~100-200-frame sentences cheap. The downsampled frame mask is True where the convolution saw at
least one valid frame.

Masks are True where a point / frame is valid (see models/transformer.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.outputs import ModelOutput
from models.sign2text import SignToText
from models.transformer import TransformerSpec, check_mask, evaluating, pad_batch


class FrameEmbedder(nn.Module):
    """(B, T, V, C) keypoints + (B, T, V) point mask + (B, T) frame mask -> (B, T', D), (B, T')."""

    def __init__(self, num_points: int, num_coords: int, d_model: int, downsample: int = 2, dropout: float = 0.1):
        super().__init__()
        if downsample < 1:
            raise ValueError(f"FrameEmbedder: downsample must be >= 1, got {downsample}")
        self.num_points, self.num_coords, self.stride = num_points, num_coords, downsample
        self.frame_proj = nn.Linear(num_points * (num_coords + 1), d_model)
        self.norm = nn.LayerNorm(d_model)
        self.conv = nn.Conv1d(d_model, d_model, kernel_size=2 * downsample + 1, stride=downsample, padding=downsample)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, point_mask: torch.Tensor, frame_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, frames, points, coords = x.shape
        if (points, coords) != (self.num_points, self.num_coords):
            raise ValueError(
                f"FrameEmbedder: expected keypoints (B, T, {self.num_points}, {self.num_coords}), got {tuple(x.shape)}"
            )
        check_mask(frame_mask, (batch, frames), "BackTranslator frame_mask")
        present = point_mask & frame_mask[..., None]  # (B, T, V)
        x = x.masked_fill(~present[..., None], 0.0)  # (B, T, V, C)
        feats = torch.cat([x, present[..., None].to(x.dtype)], dim=-1).flatten(2)  # (B, T, V*(C+1))
        h = F.gelu(self.norm(self.frame_proj(feats)))  # (B, T, D)
        # Padded frames become exact zeros, i.e. the conv's own zero padding: they cannot leak.
        h = h.masked_fill(~frame_mask[..., None], 0.0)
        h = self.conv(h.transpose(1, 2)).transpose(1, 2)  # (B, T', D), T' = ceil(T / s)
        k, s = self.conv.kernel_size[0], self.conv.stride[0]
        mask = F.max_pool1d(frame_mask[:, None].float(), k, s, padding=self.conv.padding[0])[:, 0] > 0  # (B, T')
        return self.dropout(F.gelu(h)), mask  # (B, T', D), (B, T')


class BackTranslator(nn.Module):
    """Keypoints (B, T, V, C) -> token ids: FrameEmbedder + SignToText."""

    def __init__(
        self,
        num_points: int,
        num_coords: int,
        vocab_size: int,
        spec: TransformerSpec = TransformerSpec(),
        downsample: int = 2,
        label_smoothing: float = 0.0,
        tie_embeddings: bool = True,
        pad_id: int = 0,
        bos_id: int = 1,
        eos_id: int = 2,
    ):
        """spec: the encoder-decoder's shape; the frame embedder outputs spec.d_model."""
        super().__init__()
        self.embedder = FrameEmbedder(num_points, num_coords, spec.d_model, downsample, spec.dropout)
        self.translator = SignToText(spec.d_model, vocab_size, spec, label_smoothing, tie_embeddings, pad_id, bos_id, eos_id)

    def forward(
        self, x: torch.Tensor, point_mask: torch.Tensor, frame_mask: torch.Tensor,
        tgt_in: torch.Tensor, tgt_out: torch.Tensor,
    ) -> ModelOutput:
        """Token cross-entropy (mean over non-pad tokens), as SignToText.forward."""
        return self.translator(*self.embedder(x, point_mask, frame_mask), tgt_in, tgt_out)

    def greedy(
        self, x: torch.Tensor, point_mask: torch.Tensor, frame_mask: torch.Tensor, max_len: int = 100
    ) -> list[list[int]]:
        with evaluating(self):
            feats, mask = self.embedder(x, point_mask, frame_mask)
            return self.translator.greedy(feats, mask, max_len)

    def beam_search(
        self, x: torch.Tensor, point_mask: torch.Tensor, frame_mask: torch.Tensor,
        beam_size: int = 5, alpha: float = 1.0, max_len: int = 100,
    ) -> list[list[int]]:
        with evaluating(self):
            feats, mask = self.embedder(x, point_mask, frame_mask)
            return self.translator.beam_search(feats, mask, beam_size, alpha, max_len)

    def translate(
        self,
        sequences: Sequence[torch.Tensor],
        point_masks: Sequence[torch.Tensor] | None = None,
        beam_size: int = 5,
        alpha: float = 1.0,
        max_len: int = 100,
    ) -> list[list[int]]:
        """The judge's entry point: variable-length (T_i, V, C) sequences (e.g. TextToSign.generate's
        output) -> token ids. point_masks (T_i, V) default to all present; for a corpus whose judge was
        trained with parts absent (PHOENIX14T has no face), pass the same absence here, or the judge
        reads generated points it never saw in training."""
        if point_masks is None:
            point_masks = [torch.ones(s.shape[:2], dtype=torch.bool, device=s.device) for s in sequences]
        x, frame_mask = pad_batch(sequences)  # (B, T, V, C), (B, T)
        point_mask, _ = pad_batch(point_masks, pad_value=False)  # (B, T, V)
        if beam_size == 1:
            return self.greedy(x, point_mask.bool(), frame_mask, max_len)
        return self.beam_search(x, point_mask.bool(), frame_mask, beam_size, alpha, max_len)
