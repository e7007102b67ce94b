"""SignMAE (paper section 3.2, loss eq. 2 with the pose weights of section 3.3).

Structure follows facebookresearch/mae: forward_encoder, forward_decoder and forward_loss side by
side; forward returns a ModelOutput (models/outputs.py) with the loss; forward_encoder and
forward_decoder give the token mask and the reconstruction.

Token mask polarity, stated once for this file: mask 0 is keep, 1 is remove (MAE's removal mask;
every other mask, point_mask included, is True = valid, see models/transformer.py).

Encoder: segment (B, w, V, C) -> CTR-GC + MS-TCN extractor -> per-frame tokens (B, w, D) + fixed
sinusoidal positional embeddings -> random masking of round(mask_ratio * w) tokens per sample
(rounded half up, so w=15, ratio 0.25 -> 4 masked; MAE's per-sample random shuffle, keep the
first) -> learnable [GloR] token prepended -> Transformer encoder -> z = output at [GloR] (B, D).
The extractor's temporal convolutions mix neighbouring frames, so a visible token would carry part
of a masked frame if masking happened only after it (as the paper's text orders it); with
mask_input=True (default) the masked frames are also blanked at the input (all their points marked
absent), so the encoder never sees them.

Decoder: its memory is z alone (B, 1, D), so decode(z) works from z only, which the text-to-sign
mapping needs (it generates z's and the frozen decoder turns each into w frames).
- "nar": w queries, learnable (B.2) or fixed sinusoidal ("positional", table 4b, as NSLP-G), with
  self-attention and cross-attention to z; a linear projection to (B, w, V, C).
- "ar" (table 4a): a causal Transformer decoder predicts frame t from frames < t: teacher forcing
  in training (inputs are the ground-truth frames shifted right behind a learned start token);
  decode(z) runs it frame by frame from the start token. query_type does not apply to it.

The decoder predicts offsets from a fixed reference pose (mean_pose, (V, C), a buffer saved with
the weights; the training set's per-point mean, zeros by default) and a zero-initialised head, so
training starts at "every segment is the mean pose". Without this, fitting the mean pose first
flattens z across samples and the reconstruction sits on a long plateau at the mean-segment loss
(measured on the learning test's 8 segments, Adam 1e-3: with mean_pose the loss is 10x below that
level after ~130 steps; with zeros it is still at that level after 400).

Loss (eq. 2): the whole segment is the target, sum_t W_t ||psi_t - hat psi_t||^2 over present
points only, divided by the weighted count sum W * point_mask so that its scale depends neither on
how many points are present nor on the overall scale of W. The pose weights W (none / FPW / APW,
section 3.3) are the caller's: models.weighting.loss_weights computes them, forward takes them.

Part-relative terms (relative_weight > 0; our addition, not in the paper). In shoulder-normalized
coordinates a handshape or a facial expression moves points by a few hundredths of a shoulder
length while the arms move by about one, so eq. 2 alone is all but blind to them: on the synthetic
corpus (default profile, 10 epochs) the decoder reconstructs the face relative to its centroid no
better than the mean face (error 0.0243 against 0.0247) and z tells minimal-pair partners apart no
better than the body alone does (1-NN on z: 43% / 37% of hand-only / face-only pair signs with all
parts, 38% / 32% with the body only). With relative_groups (point indices, anchor: a point, or -1
for the group's present-point centroid; builders passes both hands from their own wrists and the
face from its centroid):
- the extractor also gets each group's points relative to their anchor, magnified by
  RELATIVE_INPUT_SCALE (2C input channels; 0 for points outside the groups or without an anchor);
- the loss is the eq. 2 term divided by the (W-weighted) variance of its targets, plus
  relative_weight times the mean over the groups present of their relative reconstruction error
  divided by its variance; the variances are the batch's, detached. Each term is then a fraction
  of variance unexplained, so a face counts as much as an arm. Same measurement with them: 91% /
  90%. Neither half does it alone (input only 54% / 48%, loss only 52% / 56%).
relative_weight = 0 (the default here) is eq. 2 exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from models.extractor import SpatioTemporalExtractor
from models.outputs import ModelOutput
from models.transformer import sinusoidal_table, transformer_decoder, transformer_encoder
from models.weighting import weighted_pose_error

DECODER_TYPES = ("nar", "ar")
QUERY_TYPES = ("learnable", "positional")
# Part-relative input coordinates are multiplied by this: a hand (about 0.5 shoulder lengths) then
# spans about what the arms do in the absolute coordinates.
RELATIVE_INPUT_SCALE = 4.0


def num_masked(window: int, mask_ratio: float) -> int:
    """Tokens removed per sample: round(mask_ratio * window), halves rounded up (not Python's
    round-half-to-even), so 15 x 0.25 = 3.75 -> 4 and 10 x 0.25 = 2.5 -> 3."""
    return int(math.floor(mask_ratio * window + 0.5))


def mean_pose(samples: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Per-point mean over every present frame of (segment (B, T, V, C), point_mask (B, T, V))
    pairs: (V, C); a point never present gets 0. The decoder's reference pose (module doc)."""
    total, count = None, None
    for segment, point_mask in samples:
        x = torch.as_tensor(segment, dtype=torch.float64)
        m = torch.as_tensor(point_mask, dtype=torch.bool)
        x, m = x.reshape(-1, *x.shape[-2:]), m.reshape(-1, m.shape[-1])  # (B*T, V, C), (B*T, V)
        x = torch.where(m.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype))
        total = x.sum(0) if total is None else total + x.sum(0)
        count = m.sum(0).double() if count is None else count + m.sum(0).double()
    if total is None:
        raise ValueError("mean_pose: no samples given")
    return (total / count.clamp(min=1).unsqueeze(-1)).float()


def _variance(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Detached w-weighted variance of x (B, T, P, C) about its per-point mean over (B, T): the
    mean squared distance to that mean; w (B, T, P) weights (0: absent)."""
    x, w = x.detach(), w.detach().to(x.dtype)
    total = w.sum().clamp(min=1e-12)
    mu = (x * w.unsqueeze(-1)).sum((0, 1)) / w.sum((0, 1)).unsqueeze(-1).clamp(min=1e-12)  # (P, C)
    return ((((x - mu) ** 2).sum(-1)) * w).sum() / total


class SignMAE(nn.Module):
    """Masked autoencoder over keypoint segments; z = the [GloR] output is the gloss-level
    representation. Shapes: segment (B, w, V, C) float, point_mask (B, w, V) bool, True = present."""

    def __init__(
        self,
        num_points: int,
        in_channels: int,
        window: int,
        adjacency: torch.Tensor,
        dim: int = 128,
        depth: int = 3,
        heads: int = 4,
        decoder_dim: int | None = None,
        decoder_depth: int = 2,
        decoder_heads: int | None = None,
        mask_ratio: float = 0.25,
        decoder_type: str = "nar",
        query_type: str = "learnable",
        dropout: float = 0.1,
        mlp_ratio: float = 4.0,
        extractor_channels: int | Sequence[int] = 32,
        extractor_blocks: int = 2,
        mask_input: bool = True,
        point_pool: str = "flatten",
        mean_pose: torch.Tensor | None = None,
        relative_groups: Sequence[tuple[Sequence[int], int]] = (),
        relative_weight: float = 0.0,
    ):
        """extractor_channels: one width per CTR-GC + MS-TCN block, or an int used for
        extractor_blocks blocks. decoder_dim / decoder_heads default to dim / heads.
        point_pool: "mean" over points (CTR-GC's pooling) or "flatten" (V * C' -> D, keeps which
        point is which). mean_pose (V, C): the decoder predicts offsets from it (see module doc);
        None means zeros; compute it with mean_pose() on the training set. relative_groups,
        relative_weight: the part-relative terms (module doc); off with weight 0 or no groups."""
        super().__init__()
        decoder_dim = dim if decoder_dim is None else decoder_dim
        decoder_heads = heads if decoder_heads is None else decoder_heads
        if decoder_type not in DECODER_TYPES:
            raise ValueError(f"SignMAE: decoder_type {decoder_type!r}, expected one of {DECODER_TYPES}")
        if query_type not in QUERY_TYPES:
            raise ValueError(f"SignMAE: query_type {query_type!r}, expected one of {QUERY_TYPES}")
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"SignMAE: mask_ratio must be in [0, 1), got {mask_ratio}")
        for name, d, h in (("dim", dim, heads), ("decoder_dim", decoder_dim, decoder_heads)):
            if d % h or d % 2:
                raise ValueError(f"SignMAE: {name} {d} must be even and divisible by its heads {h}")
        if tuple(adjacency.shape[1:]) != (num_points, num_points):
            raise ValueError(f"SignMAE: adjacency {tuple(adjacency.shape)}, expected (K, {num_points}, {num_points})")
        channels = [extractor_channels] * extractor_blocks if isinstance(extractor_channels, int) else list(extractor_channels)
        if relative_weight < 0:
            raise ValueError(f"SignMAE: relative_weight must be >= 0, got {relative_weight}")
        self.relative_groups = [(tuple(int(i) for i in idx), int(anchor)) for idx, anchor in relative_groups]
        for idx, anchor in self.relative_groups:
            if not idx or not all(0 <= i < num_points for i in (*idx, *([anchor] if anchor >= 0 else []))):
                raise ValueError(f"SignMAE: relative group {idx} / anchor {anchor} outside 0..{num_points - 1}")
        self.relative_weight = float(relative_weight) if self.relative_groups else 0.0

        self.num_points, self.in_channels, self.window = num_points, in_channels, window
        self.dim, self.mask_ratio, self.mask_input = dim, mask_ratio, mask_input
        self.decoder_type, self.query_type = decoder_type, query_type
        if mean_pose is None:
            mean_pose = torch.zeros(num_points, in_channels)
        if tuple(mean_pose.shape) != (num_points, in_channels):
            raise ValueError(f"SignMAE: mean_pose {tuple(mean_pose.shape)}, expected ({num_points}, {in_channels})")
        self.register_buffer("mean_pose", torch.as_tensor(mean_pose, dtype=torch.float32).clone())  # (V, C), saved

        # --- encoder ---
        extractor_in = in_channels * (2 if self.relative_weight else 1)  # + the part-relative coordinates
        self.extractor = SpatioTemporalExtractor(num_points, extractor_in, adjacency, channels, dim, point_pool=point_pool)
        self.register_buffer("pos_embed", sinusoidal_table(window, dim), persistent=False)  # (w, D)
        self.glor_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.encoder = transformer_encoder(dim, heads, depth, int(dim * mlp_ratio), dropout, activation="gelu")

        # --- decoder ---
        self.decoder_embed = nn.Linear(dim, decoder_dim)
        if decoder_type == "nar" and query_type == "learnable":
            self.queries = nn.Parameter(torch.zeros(window, decoder_dim))  # (w, D)
        else:
            self.register_buffer("queries", sinusoidal_table(window, decoder_dim), persistent=False)
        if decoder_type == "ar":
            self.start_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
            self.frame_embed = nn.Linear(num_points * in_channels, decoder_dim)
        self.decoder = transformer_decoder(
            decoder_dim, decoder_heads, decoder_depth, int(decoder_dim * mlp_ratio), dropout, activation="gelu"
        )
        self.head = nn.Linear(decoder_dim, num_points * in_channels)
        self._init_tokens()

    def _init_tokens(self) -> None:
        for p in (self.glor_token, getattr(self, "start_token", None)):
            if p is not None:
                nn.init.normal_(p, std=0.02)
        if isinstance(self.queries, nn.Parameter):
            nn.init.normal_(self.queries, std=0.02)
        # A zero head starts from predicting 0 for every segment; a random head's output noise
        # would first have to be unlearned, which in practice also flattens z across samples
        # (a long plateau at the mean-segment loss before reconstruction takes off).
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    # ------------------------------------------------------------------ checks
    def _check(self, segment: torch.Tensor, point_mask: torch.Tensor) -> None:
        want = (self.window, self.num_points, self.in_channels)
        if segment.dim() != 4 or tuple(segment.shape[1:]) != want:
            raise ValueError(f"SignMAE: segment {tuple(segment.shape)}, expected (B, {want[0]}, {want[1]}, {want[2]})")
        if tuple(point_mask.shape) != tuple(segment.shape[:3]):
            raise ValueError(f"SignMAE: point_mask {tuple(point_mask.shape)}, expected {tuple(segment.shape[:3])}")

    # ------------------------------------------------------------------ encoder
    def random_masking(self, batch: int, device: torch.device, generator: torch.Generator | None = None):
        """Per-sample random shuffle, keep the first w - num_masked. Returns ids_keep (B, w_keep)
        and the token mask (B, w) float, 0 is keep, 1 is remove."""
        len_keep = self.window - num_masked(self.window, self.mask_ratio)
        noise = torch.rand(batch, self.window, device=device, generator=generator)  # (B, w)
        ids_keep = torch.argsort(noise, dim=1)[:, :len_keep]  # (B, w_keep)
        mask = torch.ones(batch, self.window, device=device)  # (B, w)
        mask.scatter_(1, ids_keep, 0.0)
        return ids_keep, mask

    def _encode(self, segment: torch.Tensor, point_mask: torch.Tensor, ids_keep: torch.Tensor | None) -> torch.Tensor:
        if self.relative_weight:
            segment = torch.cat([segment, RELATIVE_INPUT_SCALE * self.relative(segment, point_mask)[0]], -1)  # (B, w, V, 2C)
        tokens = self.extractor(segment, point_mask) + self.pos_embed  # (B, w, D)
        if ids_keep is not None:
            tokens = torch.gather(tokens, 1, ids_keep.unsqueeze(-1).expand(-1, -1, self.dim))  # (B, w_keep, D)
        x = torch.cat([self.glor_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)  # (B, 1 + w_keep, D)
        return self.encoder(x)[:, 0]  # (B, D)

    def forward_encoder(
        self, segment: torch.Tensor, point_mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked encoding for training: z (B, D) and the token mask (B, w) (0 keep, 1 remove)."""
        point_mask = point_mask.bool()
        ids_keep, mask = self.random_masking(segment.shape[0], segment.device, generator)
        if self.mask_input:
            point_mask = point_mask & (mask == 0).unsqueeze(-1)  # (B, w, V): masked frames look empty
        return self._encode(segment, point_mask, ids_keep), mask

    # ------------------------------------------------------------------ decoder
    def forward_decoder(
        self, z: torch.Tensor, segment: torch.Tensor | None = None, point_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """z (B, D) -> reconstruction (B, w, V, C). The "ar" decoder uses segment and point_mask
        for teacher forcing when given and runs free otherwise; "nar" ignores them."""
        b = z.shape[0]
        memory = self.decoder_embed(z).unsqueeze(1)  # (B, 1, D_dec)
        if self.decoder_type == "nar":
            h = self.decoder(self.queries.unsqueeze(0).expand(b, -1, -1), memory)  # (B, w, D_dec)
            offsets = self.head(h)  # (B, w, V*C)
        elif segment is None:
            offsets = self._generate(memory)  # (B, w, V*C)
        else:
            present = (  # (B, w, V, 1) or (B, w, V, C)
                point_mask.bool().unsqueeze(-1) if point_mask is not None else torch.ones_like(segment, dtype=torch.bool)
            )
            zero = torch.zeros((), dtype=segment.dtype, device=segment.device)
            frames = torch.where(present, segment - self.mean_pose, zero)  # (B, w, V, C): what the head predicts
            previous = self.frame_embed(frames[:, :-1].flatten(2))  # (B, w-1, D_dec): frames shifted right
            x = torch.cat([self.start_token.expand(b, -1, -1), previous], dim=1) + self.queries  # (B, w, D_dec)
            causal = nn.Transformer.generate_square_subsequent_mask(self.window, device=z.device, dtype=x.dtype)
            offsets = self.head(self.decoder(x, memory, tgt_mask=causal, tgt_is_causal=True))  # (B, w, V*C)
        return offsets.view(b, self.window, self.num_points, self.in_channels) + self.mean_pose  # (B, w, V, C)

    def _generate(self, memory: torch.Tensor) -> torch.Tensor:
        """Free-running "ar" decoding from the start token, one frame per step: (B, w, V*C)."""
        x = self.start_token.expand(memory.shape[0], -1, -1)  # (B, 1, D_dec)
        frames = []
        for t in range(self.window):
            causal = nn.Transformer.generate_square_subsequent_mask(t + 1, device=memory.device, dtype=x.dtype)
            h = self.decoder(x + self.queries[: t + 1], memory, tgt_mask=causal, tgt_is_causal=True)  # (B, t+1, D_dec)
            frame = self.head(h[:, -1])  # (B, V*C)
            frames.append(frame)
            x = torch.cat([x, self.frame_embed(frame).unsqueeze(1)], dim=1)  # (B, t+2, D_dec)
        return torch.stack(frames, 1)  # (B, w, V*C)

    # ------------------------------------------------------------------ loss
    def forward_loss(
        self, segment: torch.Tensor, pred: torch.Tensor, point_mask: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """Eq. 2 over the whole segment: weights (B, V) or (V,); absent points contribute nothing."""
        if tuple(weights.shape) not in ((self.num_points,), (segment.shape[0], self.num_points)):
            raise ValueError(f"SignMAE: weights {tuple(weights.shape)}, expected ({self.num_points},) or (B, {self.num_points})")
        loss = weighted_pose_error(pred, segment, point_mask, weights)
        if not self.relative_weight:
            return loss
        present = point_mask.bool()  # (B, w, V)
        zero = torch.zeros((), dtype=pred.dtype, device=pred.device)
        target = torch.where(present.unsqueeze(-1), segment, zero)  # (B, w, V, C)
        err = torch.where(present, ((pred - target) ** 2).sum(-1), zero)  # (B, w, V): squared L2 over C
        w = weights.to(err.dtype).expand(segment.shape[0], self.num_points).unsqueeze(1) * present  # (B, w, V)
        # The part-relative terms (module doc): every term a fraction of its targets' variance.
        loss = loss / _variance(target, w).clamp(min=1e-8)
        rel_t, defined = self.relative(target, present)  # (B, w, V, C), (B, w, V)
        rel_p, _ = self.relative(pred, present)
        terms = []
        for idx, _ in self.relative_groups:
            i = list(idx)
            ok = defined[:, :, i].to(err.dtype)  # (B, w, P)
            if not ok.any():
                continue  # e.g. a source (or pretrain.parts) without this group
            e = (((rel_p[:, :, i] - rel_t[:, :, i]) ** 2).sum(-1) * ok).sum() / ok.sum()
            terms.append(e / _variance(rel_t[:, :, i], ok).clamp(min=1e-8))
        return loss + self.relative_weight * torch.stack(terms).mean() if terms else loss

    def relative(self, x: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each relative group's points minus their anchor: (B, w, V, C), 0 outside the groups and
        where undefined, and where it is defined (B, w, V): the point and its anchor present (for a
        centroid anchor: the point present, the centroid of the group's present points)."""
        rel = torch.zeros_like(x)
        defined = torch.zeros_like(present, dtype=torch.bool)
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        for idx, anchor in self.relative_groups:
            i = list(idx)
            ok = present[:, :, i].bool()  # (B, w, P)
            if anchor >= 0:
                ok = ok & present[:, :, anchor:anchor + 1].bool()
                origin = x[:, :, anchor:anchor + 1]  # (B, w, 1, C)
            else:
                okf = ok.unsqueeze(-1).to(x.dtype)
                origin = (torch.where(ok.unsqueeze(-1), x[:, :, i], zero)).sum(2, keepdim=True) / okf.sum(
                    2, keepdim=True).clamp(min=1)  # (B, w, 1, C)
            rel[:, :, i] = torch.where(ok.unsqueeze(-1), x[:, :, i] - origin, zero)
            defined[:, :, i] = ok
        return rel, defined

    def forward(
        self,
        segment: torch.Tensor,
        point_mask: torch.Tensor,
        weights: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> ModelOutput:
        """Masked reconstruction loss (eq. 2). weights: the W of eq. 2, (B, V) or (V,), from
        models.weighting.loss_weights (all ones for no pose weighting)."""
        self._check(segment, point_mask)
        z, _ = self.forward_encoder(segment, point_mask, generator)  # (B, D)
        pred = self.forward_decoder(z, segment, point_mask)  # (B, w, V, C)
        return ModelOutput(self.forward_loss(segment, pred, point_mask, weights))

    # ------------------------------------------------------------------ inference
    def encode(self, segment: torch.Tensor, point_mask: torch.Tensor) -> torch.Tensor:
        """z (B, D) of whole segments, without masking (inference and the mapping stages)."""
        self._check(segment, point_mask)
        return self._encode(segment, point_mask.bool(), None)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, D) -> segments (B, w, V, C), from z alone."""
        return self.forward_decoder(z)
