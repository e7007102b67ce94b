"""Progressive Transformers (PT): the autoregressive production baseline of tables 2 and 5 and
figure 4 (paper section 4.3; Saunders et al. 2020, "Progressive Transformers for End-to-End Sign
Language Production").

Gloss-free text-to-pose (Saunders et al.'s T2P configuration), re-implemented from their
description, not from their code:

- text encoder: token embedding + sinusoidal positions + Transformer encoder
  (models.transformer.TextEncoder);
- the counter: frame t of a T-frame sequence carries c_t = t / T (t = 1..T), a value in (0, 1]
  that says how far the sequence has progressed; the last frame has c_T = 1 exactly;
- progressive decoder: a causal Transformer decoder over frame embeddings, each a linear layer over
  [the frame's coordinates (zeroed where a point is absent), its counter]. The counter is PT's
  stand-in for positions on the pose side, so no sinusoidal table is added there. Step t reads
  frames 0..t (frame 0 is the start frame: all-zero coordinates with counter 0, which no real frame
  has) and regresses frame t+1 and its counter c_{t+1}. Teacher forcing in training;
- generation feeds each predicted frame (and predicted counter) back and stops after the first
  frame whose predicted counter reaches `stop_at` (1.0 by default: "when the counter reaches 1"),
  or at max_frames. Nothing from the ground truth is used at inference (no ground-truth first
  frame, length or counter), as the UniGloR paper requires of its PT (section 4.3).

Loss: the pose term is eq. 2's weighted error (models.weighting.weighted_pose_error, the same none /
FPW / APW weights SignMAE takes) over the present points of the real frames; the counter term is
the mean squared counter error over the real frames; L = L_pose + counter_weight * L_counter.
Saunders et al.'s data augmentations (Gaussian noise on the inputs, future prediction) are not
included: `input_noise` > 0 adds the Gaussian noise to the teacher-forced coordinates in training,
off by default.

Masks are True where a point / frame is valid (see models/transformer.py).
"""

from __future__ import annotations

import torch
from torch import nn

from models.outputs import ModelOutput
from models.transformer import TextEncoder, TransformerSpec, causal_mask, check_mask, evaluating
from models.weighting import weighted_pose_error


def counter_values(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """(B,) sequence lengths -> (B, T_max) counters c_t = t / T for t = 1..T, 0 past the end."""
    lengths = torch.as_tensor(lengths)
    max_len = int(lengths.max()) if max_len is None else max_len
    t = torch.arange(1, max_len + 1, device=lengths.device, dtype=torch.float32)[None, :]  # (1, T)
    c = t / lengths[:, None].clamp(min=1).to(torch.float32)  # (B, T)
    return torch.where(t <= lengths[:, None], c, torch.zeros_like(c))


class ProgressiveTransformer(nn.Module):
    """Tokens (B, L) -> keypoint sequences (T_i, V, C), autoregressively with the counter."""

    def __init__(
        self,
        vocab_size: int,
        num_points: int,
        num_coords: int,
        spec: TransformerSpec = TransformerSpec(),
        counter_weight: float = 1.0,
        input_noise: float = 0.0,
        pad_id: int = 0,
    ):
        super().__init__()
        if counter_weight < 0 or input_noise < 0:
            raise ValueError("ProgressiveTransformer: counter_weight and input_noise must be >= 0")
        self.num_points, self.num_coords = num_points, num_coords
        self.counter_weight, self.input_noise = float(counter_weight), float(input_noise)
        self.max_positions = spec.max_positions
        self.text = TextEncoder(vocab_size, spec, pad_id)
        self.frame_embed = nn.Linear(num_points * num_coords + 1, spec.d_model)
        self.frame_dropout = nn.Dropout(spec.dropout)
        self.decoder = spec.decoder()
        self.out_proj = nn.Linear(spec.d_model, num_points * num_coords + 1)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[2:]) != (self.num_points, self.num_coords):
            raise ValueError(f"PT: expected keypoints (B, T, {self.num_points}, {self.num_coords}), got {tuple(x.shape)}")

    def step(
        self, frames: torch.Tensor, counters: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder inputs frames (B, t, V, C) with counters (B, t) -> the next frames (B, t, V, C) and
        their counters (B, t), one prediction per input position (causal)."""
        b, t = frames.shape[:2]
        inp = torch.cat([frames.reshape(b, t, -1), counters[..., None]], dim=-1)  # (B, t, V*C + 1)
        h = self.decoder(
            self.frame_dropout(self.frame_embed(inp)), memory,
            tgt_mask=causal_mask(t, frames.device), memory_key_padding_mask=~memory_mask,
        )  # (B, t, D)
        out = self.out_proj(h)  # (B, t, V*C + 1)
        return out[..., :-1].reshape(b, t, self.num_points, self.num_coords), out[..., -1]

    def forward(
        self, tokens: torch.Tensor, x: torch.Tensor, point_mask: torch.Tensor, frame_mask: torch.Tensor,
        weights: torch.Tensor,
    ) -> ModelOutput:
        """tokens (B, L); target keypoints x (B, T, V, C), point_mask (B, T, V), frame_mask (B, T)
        (a valid prefix); weights: eq. 2's W, (V,), (B, V) or (B, T, V) (models.weighting).
        Loss and metrics "loss_pose", "loss_counter" (module doc)."""
        self._check(x)
        batch, frames = x.shape[:2]
        check_mask(frame_mask, (batch, frames), "PT frame_mask")
        if frames > self.max_positions:
            raise ValueError(f"PT: {frames} frames exceed max_positions={self.max_positions}")
        present = point_mask.bool() & frame_mask[..., None]  # (B, T, V)
        clean = x.masked_fill(~present[..., None], 0.0)  # (B, T, V, C)
        lengths = frame_mask.sum(dim=1)  # (B,)
        target_counter = counter_values(lengths, frames)  # (B, T)
        # Inputs: the start frame (zeros, counter 0), then the ground-truth frames 1..T-1.
        inp = torch.cat([torch.zeros_like(clean[:, :1]), clean[:, :-1]], dim=1)  # (B, T, V, C)
        if self.training and self.input_noise > 0:
            inp = inp + self.input_noise * torch.randn_like(inp)
        inp_counter = torch.cat([torch.zeros_like(target_counter[:, :1]), target_counter[:, :-1]], dim=1)  # (B, T)
        memory, memory_mask = self.text(tokens)
        pred, pred_counter = self.step(inp, inp_counter, memory, memory_mask)
        loss_pose = weighted_pose_error(pred, clean, present, weights)
        valid = frame_mask.to(pred_counter.dtype)  # (B, T)
        loss_counter = (((pred_counter - target_counter) ** 2) * valid).sum() / valid.sum()
        loss = loss_pose + self.counter_weight * loss_counter
        return ModelOutput(loss, {"loss_pose": loss_pose.detach(), "loss_counter": loss_counter.detach()})

    def generate(self, tokens: torch.Tensor, max_frames: int = 300, stop_at: float = 1.0) -> list[torch.Tensor]:
        """tokens (B, L) -> B sequences (T_i, V, C): frames up to and including the first one whose
        predicted counter (clamped to [0, 1]) is >= stop_at, at most max_frames each. A regressed
        counter can land just short of 1 on the last frame; a stop_at a little under 1 (but above
        1 - 1/T for the longest T) tolerates that. The whole prefix is re-decoded each step (a
        stock nn.TransformerDecoder keeps no cache)."""
        if max_frames < 1 or max_frames > self.max_positions:
            raise ValueError(f"PT.generate: max_frames must be in 1..{self.max_positions}, got {max_frames}")
        with evaluating(self):
            memory, memory_mask = self.text(tokens)
            batch = tokens.shape[0]
            frames = torch.zeros(batch, 1, self.num_points, self.num_coords, device=tokens.device)  # start frame
            counters = torch.zeros(batch, 1, device=tokens.device)
            lengths = torch.full((batch,), max_frames, dtype=torch.long, device=tokens.device)
            ended = torch.zeros(batch, dtype=torch.bool, device=tokens.device)
            for t in range(max_frames):
                pred, pred_counter = self.step(frames, counters, memory, memory_mask)
                nxt, c = pred[:, -1:], pred_counter[:, -1:].clamp(0.0, 1.0)  # (B, 1, V, C), (B, 1)
                frames, counters = torch.cat([frames, nxt], dim=1), torch.cat([counters, c], dim=1)
                stop = (c[:, 0] >= stop_at) & ~ended
                lengths[stop] = t + 1
                ended |= stop
                if bool(ended.all()):
                    break
            return [frames[b, 1 : 1 + int(n)] for b, n in enumerate(lengths.tolist())]
