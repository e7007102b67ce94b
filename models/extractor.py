"""SignMAE's spatio-temporal feature extractor (paper section 3.2: "CTR-GC [12] and MS-TCN [45]").

Re-implemented from the two papers' descriptions:

- CTR-GC, channel-wise topology refinement graph convolution (Chen et al., ICCV 2021). For each
  adjacency subset k (self / inward / outward, models/graph.py) the unit keeps a topology A_k shared
  by all channels (learnable, initialised from the skeleton) and refines it per channel:
  phi, psi are 1x1 maps of the temporally pooled input, M(i, j) = tanh(phi_i - psi_j) relates every
  pair of points, xi lifts M to the output channels: Q_k = xi(M) (one V x V matrix per channel), and
  R_k = A_k + alpha * Q_k with a learnable scalar alpha (0 at start: the unit begins as a plain graph
  conv and learns how much refinement to use). The features rho(x) (1x1 map) are aggregated per
  channel, y_i = sum_k sum_j R_k[c, i, j] rho(x)_j, then BN, a residual and ReLU.
- MS-TCN, multi-scale temporal convolution (Liu et al., CVPR 2020, MS-G3D): parallel branches,
  each a 1x1 conv + BN + ReLU then a temporal conv with its own dilation; a branch with a temporal
  max-pool instead; a plain 1x1 branch. The branches are concatenated (BN per channel equals one BN
  after the concatenation), a residual is added, ReLU. Defaults (kernel 5, dilations 1 and 2) are
  the ones CTR-GC pairs MS-TCN with. Time is never strided: each of the w frames stays a token.

A block is CTR-GC then MS-TCN. Missing points: inputs are multiplied by the point mask and the mask
is appended as an extra channel, so a missing point differs from a point at the origin.

How it is computed (the same functions up to float rounding, the same parameters; tests/test_extractor.py
checks both against the formulas written out): CTR-GC builds one (C_out, V, V) matrix per sample
and subset, R_k^T = A_k^T + alpha Q_k^T with tanh(u) = 2 sigmoid(2u) - 1 folded into xi's weights and
bias, a few samples at a time inside a custom autograd function that rebuilds them in the backward
pass instead of storing them (_CTRAggregate); 1x1 convolutions that read the same input are one
batched matmul, the temporal convolutions an im2col matmul. On one CPU thread (default profile) a
SignMAE training step is about 1.9x faster than with the broadcast-matmul formulation, and encoding
windows 2x faster.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

POINT_POOLS = ("mean", "flatten")


def _conv_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))


def _pointwise(x: torch.Tensor, convs: Sequence[nn.Conv2d]) -> torch.Tensor:
    """Several 1x1 Conv2d of the same input as one batched matmul: (B, C_in, T, V) -> (B, sum C_out, T, V),
    their outputs concatenated in order. The modules keep their parameters (and state_dict keys); on
    CPU one matmul is 1.5-3x faster than the convolutions, which pay a layout conversion each."""
    b, c, t, v = x.shape
    weight = torch.cat([m.weight.view(m.out_channels, c) for m in convs])  # (sum C_out, C_in)
    bias = torch.cat([m.bias for m in convs])  # (sum C_out,)
    y = torch.baddbmm(bias.view(1, -1, 1), weight.expand(b, -1, -1), x.reshape(b, c, t * v))  # (B, sum C_out, T*V)
    return y.view(b, -1, t, v)


# Samples per step of the refinement on CPU: a few samples' (C_out, V, V) matrices stay in cache
# (measured on a 2-core EPYC, training step of one unit: 4 is 1.3-1.8x faster than the whole batch
# of 32 at once and 1.1x faster than one sample at a time, whose per-call overhead dominates). On
# GPUs one step covers the whole batch.
REFINE_CHUNK = 4


def _refined_topology(p2: torch.Tensor, q2: torch.Tensor, w2: torch.Tensor, base: torch.Tensor, k: int,
                      b0: int, b1: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Subset k's per-channel topology for samples b0:b1, transposed: R^T (n, C, V_j * V_i), and the
    sigmoid map s (n, rel, V_j, V_i) it was built from (see _CTRAggregate)."""
    n = b1 - b0
    s = torch.sub(p2[b0:b1, k, :, None, :], q2[b0:b1, k, :, :, None]).sigmoid_()  # (n, rel, V_j, V_i)
    _, c, rel = w2.shape
    r = torch.baddbmm(base[k], w2[k].expand(n, c, rel), s.flatten(2))  # (n, C, V_j * V_i)
    return r, s


class _CTRAggregate(torch.autograd.Function):
    """y[b, c, t, i] = sum_k sum_j values[k, b, c, t, j] R_k^T[b, c, j, i], where
    R_k^T[b, c, j, i] = base[k, c, j * V + i] + sum_r w2[k, c, r] sigmoid(p2[b, k, r, i] - q2[b, k, r, j]).

    Computed a few samples at a time so that each (C, V, V) block stays in cache, and never stored:
    the backward pass rebuilds it from p2, q2, w2 and base (a tenth of the block's products) instead
    of saving B x K x C x V x V values. Shapes: values (K, B, C, T, V) contiguous; p2, q2 (B, K, rel, V);
    w2 (K, C, rel); base (K, C, V * V). Autocast does not apply inside: every input must have one dtype."""

    @staticmethod
    def forward(ctx, values, p2, q2, w2, base, chunk):
        kk, b, c, t, v = values.shape
        y = values.new_empty(b, c, t, v)
        with torch.autocast(values.device.type, enabled=False):
            for b0 in range(0, b, chunk):
                b1 = min(b, b0 + chunk)
                n = b1 - b0
                yc = y[b0:b1].view(n * c, t, v)
                for k in range(kk):
                    r, _ = _refined_topology(p2, q2, w2, base, k, b0, b1)
                    vk = values[k, b0:b1].view(n * c, t, v)
                    if k == 0:
                        torch.bmm(vk, r.view(n * c, v, v), out=yc)
                    else:
                        yc.baddbmm_(vk, r.view(n * c, v, v))
        ctx.save_for_backward(values, p2, q2, w2, base)
        ctx.chunk = chunk
        return y

    @staticmethod
    def backward(ctx, dy):
        values, p2, q2, w2, base = ctx.saved_tensors
        kk, b, c, t, v = values.shape
        rel = p2.shape[2]
        dy = dy.contiguous()
        dvalues = torch.empty_like(values)
        dp2, dq2 = torch.empty_like(p2), torch.empty_like(q2)
        dw2, dbase = torch.zeros_like(w2), torch.zeros_like(base)
        with torch.autocast(values.device.type, enabled=False):
            for b0 in range(0, b, ctx.chunk):
                b1 = min(b, b0 + ctx.chunk)
                n = b1 - b0
                dyc = dy[b0:b1].view(n * c, t, v)  # (n C, T, V_i)
                for k in range(kk):
                    r, s = _refined_topology(p2, q2, w2, base, k, b0, b1)
                    torch.bmm(dyc, r.view(n * c, v, v).transpose(1, 2), out=dvalues[k, b0:b1].view(n * c, t, v))
                    vk = values[k, b0:b1].view(n * c, t, v)
                    dr = torch.bmm(vk.transpose(1, 2), dyc).view(n, c, v * v)  # dR^T (n, C, V_j * V_i)
                    dbase[k] += dr.sum(0)
                    dw2[k] += torch.bmm(dr, s.view(n, rel, v * v).transpose(1, 2)).sum(0)
                    ds = torch.bmm(w2[k].t().expand(n, rel, c), dr)  # (n, rel, V_j * V_i)
                    du = torch.ops.aten.sigmoid_backward(ds, s.view(n, rel, v * v)).view(n, rel, v, v)
                    torch.sum(du, 2, out=dp2[b0:b1, k])
                    torch.sum(du, 3, out=dq2[b0:b1, k]).neg_()
        return dvalues, dp2, dq2, dw2, dbase, None


class CTRGraphConv(nn.Module):
    """One CTR-GC unit over all K adjacency subsets: (B, C_in, T, V) -> (B, C_out, T, V)."""

    def __init__(self, in_channels: int, out_channels: int, adjacency: torch.Tensor, rel_reduction: int = 8):
        super().__init__()
        if adjacency.dim() != 3 or adjacency.shape[1] != adjacency.shape[2]:
            raise ValueError(f"CTRGraphConv: adjacency must be (K, V, V), got {tuple(adjacency.shape)}")
        k = adjacency.shape[0]
        # CTR-GC's rule: C_in / 8 relation channels, but 8 for the raw-coordinate input.
        rel = in_channels // rel_reduction if in_channels >= 2 * rel_reduction else 8
        self.k, self.rel, self.out_channels = k, rel, out_channels
        self.topology = nn.Parameter(adjacency.detach().clone().float())  # A_k, shared over channels
        self.alpha = nn.Parameter(torch.zeros(1))
        # phi, psi, rho for all K subsets in one 1x1 map each.
        self.phi = nn.Conv1d(in_channels, k * rel, 1)
        self.psi = nn.Conv1d(in_channels, k * rel, 1)
        self.rho = nn.Conv2d(in_channels, k * out_channels, 1)
        # xi (rel -> C_out per subset) as plain matrices: a 1x1 Conv2d over V x V maps is several
        # times slower on CPU than the equivalent matmul.
        bound = 1.0 / rel**0.5  # the default init of a 1x1 conv with rel inputs
        self.xi_weight = nn.Parameter(torch.empty(k, out_channels, rel).uniform_(-bound, bound))
        self.xi_bias = nn.Parameter(torch.empty(k, out_channels, 1).uniform_(-bound, bound))
        self.bn = nn.BatchNorm2d(out_channels)
        self.residual = nn.Identity() if in_channels == out_channels else _conv_bn(in_channels, out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # y_i = sum_k sum_j (A_k + alpha Q_k)[c, i, j] rho_j with Q_k = xi(tanh(phi_i - psi_j)), computed as
        # one product per subset: tanh(u) = 2 sigmoid(2u) - 1, so
        #   A_k + alpha Q_k = A_k + alpha (b_k - sum_r W_k[:, r]) + sum_r (2 alpha W_k[:, r]) sigmoid(2 phi_i - 2 psi_j),
        # the same function up to float rounding (sigmoid is several times cheaper than tanh on CPU,
        # and the topology needs no product of its own). See _CTRAggregate for how it is evaluated.
        b, _, t, v = x.shape
        pooled = x.mean(dim=2)  # (B, C_in, V): the topology is refined once per segment
        kc = self.k * self.out_channels
        if isinstance(self.residual, nn.Identity):
            values, residual = _pointwise(x, [self.rho]), x
        else:  # rho and the residual's 1x1 map read the same input: one product
            values, residual = _pointwise(x, [self.rho, self.residual[0]]).split([kc, self.out_channels], dim=1)
            residual = self.residual[1](residual)
        # (K, B, C_out, T, V): one copy here saves a strided copy per block of samples in _CTRAggregate
        values = values.view(b, self.k, self.out_channels, t, v).transpose(0, 1).contiguous()
        dtype = values.dtype  # the autocast dtype, if any: _CTRAggregate computes in one dtype
        # phi and psi as one batched matmul (a Conv1d's result depends on the batch size on CPU, and
        # a window's features must not depend on which windows share its batch)
        pq = torch.baddbmm(torch.cat([self.phi.bias, self.psi.bias]).view(1, -1, 1),
                           torch.cat([self.phi.weight, self.psi.weight])[..., 0].expand(b, -1, -1), pooled)
        p2, q2 = (2 * pq).to(dtype).view(b, 2, self.k, self.rel, v).unbind(1)  # (B, K, rel, V) each
        w2 = (2 * self.alpha) * self.xi_weight  # (K, C_out, rel)
        offset = self.alpha * (self.xi_bias - self.xi_weight.sum(-1, keepdim=True))  # (K, C_out, 1)
        base = self.topology.transpose(1, 2).unsqueeze(1) + offset.unsqueeze(-1)  # (K, C_out, V_j, V_i)
        chunk = b if x.device.type == "cuda" else REFINE_CHUNK
        y = _CTRAggregate.apply(values, p2, q2, w2.to(dtype), base.flatten(2).to(dtype), chunk)  # (B, C_out, T, V)
        return self.relu(self.bn(y) + residual)


def _temporal_conv(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """A (kernel, 1) temporal Conv2d with zero padding as one batched matmul over the kernel's shifted
    copies of x (im2col along time): on CPU 1.3x faster than the convolution, forward and backward."""
    b, c, t, v = x.shape
    k, d, pad = conv.kernel_size[0], conv.dilation[0], conv.padding[0]
    padded = F.pad(x.reshape(b, c, t * v), (pad * v, pad * v))  # (B, C, (T + 2 pad) V)
    cols = torch.cat([padded[:, :, i * d * v:i * d * v + t * v] for i in range(k)], dim=1)  # (B, k C, T V)
    weight = conv.weight[..., 0].permute(0, 2, 1).reshape(conv.out_channels, k * c)  # [o, i C + c]
    return torch.baddbmm(conv.bias.view(1, -1, 1), weight.expand(b, -1, -1), cols).view(b, -1, t, v)


def _temporal_max(x: torch.Tensor, pool: nn.MaxPool2d) -> torch.Tensor:
    """The branch's (k, 1) max-pool over time, stride 1. Without autograd as an elementwise maximum of
    shifted views (the same values; max_pool2d is about 30x slower on CPU here); with autograd the
    pool itself, whose gradient goes to the first maximum of each window."""
    if torch.is_grad_enabled() and x.requires_grad:
        return pool(x)
    k, pad = pool.kernel_size[0], pool.padding[0]
    padded = F.pad(x, (0, 0, pad, pad), value=float("-inf"))
    t = x.shape[2]
    out = padded[:, :, :t]
    for i in range(1, k):
        out = torch.maximum(out, padded[:, :, i:i + t])
    return out


class MultiScaleTemporalConv(nn.Module):
    """MS-TCN unit: (B, C_in, T, V) -> (B, C_out, T, V), same T."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5, dilations: Sequence[int] = (1, 2)):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"MultiScaleTemporalConv: kernel_size must be odd to keep T, got {kernel_size}")
        num_branches = len(dilations) + 2
        if out_channels < num_branches:
            raise ValueError(f"MultiScaleTemporalConv: out_channels {out_channels} < {num_branches} branches")
        width = out_channels // num_branches
        widths = [out_channels - width * (num_branches - 1)] + [width] * (num_branches - 1)  # first takes the rest

        def squeeze(w: int) -> list[nn.Module]:
            return [nn.Conv2d(in_channels, w, 1), nn.BatchNorm2d(w), nn.ReLU()]

        branches: list[nn.Module] = []
        for w, d in zip(widths, dilations):
            pad = (kernel_size - 1) * d // 2
            branches.append(nn.Sequential(*squeeze(w), nn.Conv2d(w, w, (kernel_size, 1), padding=(pad, 0), dilation=(d, 1))))
        branches.append(nn.Sequential(*squeeze(widths[-2]), nn.MaxPool2d((3, 1), stride=1, padding=(1, 0))))
        branches.append(nn.Conv2d(in_channels, widths[-1], 1))
        self.branches = nn.ModuleList(branches)
        self.bn = nn.BatchNorm2d(out_channels)
        self.residual = nn.Identity() if in_channels == out_channels else _conv_bn(in_channels, out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Every branch starts with a 1x1 map of x (and so does the residual when it is not the
        # identity): one product for all of them, then each branch's remaining layers on its slice.
        firsts = [branch[0] for branch in self.branches[:-1]] + [self.branches[-1]]
        residual_map = not isinstance(self.residual, nn.Identity)
        maps = firsts + ([self.residual[0]] if residual_map else [])
        pieces = _pointwise(x, maps).split([m.out_channels for m in maps], dim=1)  # split: one cat backward
        outs = []
        for branch, piece in zip(self.branches, pieces):
            if isinstance(branch, nn.Sequential):
                piece = branch[2](branch[1](piece))  # BN, ReLU
                tail = branch[3]
                piece = _temporal_conv(piece, tail) if isinstance(tail, nn.Conv2d) else _temporal_max(piece, tail)
            outs.append(piece)
        y = torch.cat(outs, dim=1)  # (B, C_out, T, V)
        residual = self.residual[1](pieces[-1]) if residual_map else x
        return self.relu(self.bn(y) + residual)


class SpatioTemporalExtractor(nn.Module):
    """Stacked CTR-GC + MS-TCN blocks, pooled over points: per-frame tokens (B, T, D)."""

    def __init__(
        self,
        num_points: int,
        in_channels: int,
        adjacency: torch.Tensor,
        channels: Sequence[int],
        out_dim: int,
        kernel_size: int = 5,
        dilations: Sequence[int] = (1, 2),
        point_pool: str = "mean",
    ):
        super().__init__()
        if point_pool not in POINT_POOLS:
            raise ValueError(f"extractor: point_pool {point_pool!r}, expected one of {POINT_POOLS}")
        if tuple(adjacency.shape[1:]) != (num_points, num_points):
            raise ValueError(f"extractor: adjacency is {tuple(adjacency.shape)}, expected (K, {num_points}, {num_points})")
        if len(channels) == 0:
            raise ValueError("extractor: channels must name at least one block width")
        self.num_points, self.in_channels = num_points, in_channels
        blocks: list[nn.Module] = []
        width = in_channels + 1  # coordinates plus the presence channel
        for c in channels:
            blocks += [CTRGraphConv(width, c, adjacency), MultiScaleTemporalConv(c, c, kernel_size, dilations)]
            width = c
        self.blocks = nn.Sequential(*blocks)
        self.point_pool = point_pool
        self.proj = nn.Linear(width if point_pool == "mean" else width * num_points, out_dim)

    def forward(self, x: torch.Tensor, point_mask: torch.Tensor) -> torch.Tensor:
        present = point_mask.bool().unsqueeze(-1)  # (B, T, V, 1)
        # where, not a product: a missing point's stored value must not reach the net even if NaN.
        x = torch.where(present, x, torch.zeros((), dtype=x.dtype, device=x.device))  # (B, T, V, C)
        h = torch.cat([x, present.to(x.dtype)], dim=-1).permute(0, 3, 1, 2)  # (B, C+1, T, V)
        h = self.blocks(h)  # (B, C', T, V)
        if self.point_pool == "mean":
            return self.proj(h.mean(dim=-1).transpose(1, 2))  # (B, T, D)
        return self.proj(h.permute(0, 2, 3, 1).flatten(2))  # (B, T, V*C') -> (B, T, D)
