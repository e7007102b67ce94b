"""NSLP-G: the non-autoregressive production baseline of tables 2 and 5 and figure 4, as the UniGloR
paper describes it (sections 2, 3.2, 3.4; Hwang et al. 2021, "Non-autoregressive Sign Language
Production with Gaussian Space").

What the UniGloR paper says of it, and what this module builds from that:
- non-autoregressive decoding, all frames at once (section 2: "one-shot decoding, thus avoiding
  error propagation");
- the decoder's inputs are positional encodings (section 3.2: "In contrast to NSLP-G, which uses PE
  for decoder inputs"): a fixed sinusoidal table of `num_frames` rows is the query sequence, with
  self-attention and cross-attention to the encoded sentence, then a linear projection per frame;
- it "cannot adjust the length of the output sequences" (section 3.4): the output always has
  `num_frames` frames;
- gloss-free: text encoder (models.transformer.TextEncoder) straight to poses.
Hwang et al.'s first phase (a pose generator trained into a Gaussian latent space, the decoder
then regressing that space) is not in the UniGloR paper's description and is not built here: the
decoder regresses keypoints directly.

Fixed length in training: a sequence shorter than num_frames is continued by holding its last real
frame (the signer at rest), so every one of the num_frames outputs has a target and generation
returns a sequence that ends at rest instead of num_frames - T frames of untrained output. A
sequence longer than num_frames raises. Loss: eq. 2's weighted error
(models.weighting.weighted_pose_error, the same none / FPW / APW weights SignMAE takes) over the
present points of all num_frames target frames (held frames keep their last real frame's points).
"""

from __future__ import annotations

import torch
from torch import nn

from models.outputs import ModelOutput
from models.transformer import TextEncoder, TransformerSpec, check_mask, evaluating, sinusoidal_table
from models.weighting import weighted_pose_error


def hold_last_frame(
    x: torch.Tensor, point_mask: torch.Tensor, frame_mask: torch.Tensor, num_frames: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, V, C), (B, T, V), (B, T) prefix mask -> (B, num_frames, V, C), (B, num_frames, V): each
    sequence padded to num_frames by repeating its last real frame (module doc)."""
    batch, frames = frame_mask.shape
    if frames > num_frames:
        if bool(frame_mask[:, num_frames:].any()):
            raise ValueError(f"NSLP-G: a sequence has {int(frame_mask.sum(1).max())} frames but num_frames={num_frames}")
        x, point_mask, frame_mask = x[:, :num_frames], point_mask[:, :num_frames], frame_mask[:, :num_frames]
        frames = num_frames
    last = frame_mask.sum(dim=1) - 1  # (B,)
    t = torch.arange(num_frames, device=x.device)[None, :]  # (1, T')
    source = torch.minimum(t, last[:, None])  # (B, T')
    rows = torch.arange(batch, device=x.device)[:, None]
    return x[rows, source], point_mask.bool()[rows, source]  # (B, T', V, C), (B, T', V)


class NSLPG(nn.Module):
    """Tokens (B, L) -> keypoints (B, num_frames, V, C) in one pass."""

    def __init__(
        self,
        vocab_size: int,
        num_points: int,
        num_coords: int,
        num_frames: int,
        spec: TransformerSpec = TransformerSpec(),
        pad_id: int = 0,
    ):
        super().__init__()
        if num_frames < 1:
            raise ValueError(f"NSLP-G: num_frames must be >= 1, got {num_frames}")
        self.num_points, self.num_coords, self.num_frames = num_points, num_coords, num_frames
        self.text = TextEncoder(vocab_size, spec, pad_id)
        # Fixed, not learned (the UniGloR paper's contrast with its own learnable queries); not
        # persistent: a function of (num_frames, d_model).
        self.register_buffer("queries", sinusoidal_table(num_frames, spec.d_model)[None], persistent=False)
        self.decoder = spec.decoder()
        self.out_proj = nn.Linear(spec.d_model, num_points * num_coords)

    def predict(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) -> (B, num_frames, V, C). No causal mask: every frame at once."""
        memory, memory_mask = self.text(tokens)  # (B, L, D), (B, L)
        queries = self.queries.expand(tokens.shape[0], -1, -1)  # (B, T', D)
        h = self.decoder(queries, memory, memory_key_padding_mask=~memory_mask)  # (B, T', D)
        return self.out_proj(h).reshape(tokens.shape[0], self.num_frames, self.num_points, self.num_coords)

    def forward(
        self, tokens: torch.Tensor, x: torch.Tensor, point_mask: torch.Tensor, frame_mask: torch.Tensor,
        weights: torch.Tensor,
    ) -> ModelOutput:
        """tokens (B, L); target keypoints x (B, T, V, C), point_mask (B, T, V), frame_mask (B, T) a
        valid prefix, T <= num_frames after padding is dropped; weights: eq. 2's W, (V,) or (B, V)
        (per-frame (B, T, V) weights are held like the frames). Loss: module doc."""
        if x.dim() != 4 or tuple(x.shape[2:]) != (self.num_points, self.num_coords):
            raise ValueError(f"NSLP-G: expected keypoints (B, T, {self.num_points}, {self.num_coords}), got {tuple(x.shape)}")
        check_mask(frame_mask, x.shape[:2], "NSLP-G frame_mask")
        if weights.dim() == 3:
            weights, _ = hold_last_frame(weights[..., None], point_mask, frame_mask, self.num_frames)
            weights = weights[..., 0]
        target, present = hold_last_frame(x, point_mask, frame_mask, self.num_frames)
        return ModelOutput(weighted_pose_error(self.predict(tokens), target, present, weights))

    def generate(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """tokens (B, L) -> B sequences, each (num_frames, V, C) (the length is fixed, module doc)."""
        with evaluating(self):
            return list(self.predict(tokens).unbind(0))
