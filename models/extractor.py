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
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

POINT_POOLS = ("mean", "flatten")


def _conv_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))


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
        b, _, t, v = x.shape
        pooled = x.mean(dim=2)  # (B, C_in, V): the topology is refined once per segment
        p = self.phi(pooled).view(b, self.k, self.rel, v)  # (B, K, rel, V)
        q = self.psi(pooled).view(b, self.k, self.rel, v)  # (B, K, rel, V)
        values = self.rho(x).view(b, self.k, self.out_channels, t, v)  # (B, K, C_out, T, V)
        # (A_k + alpha Q_k) applied as two products, so alpha scales a (B, C, T, V) tensor, and the
        # refinement built one subset at a time, so only one (B, C_out, V, V) block is live at once.
        y = torch.einsum("kij,bkctj->bcti", self.topology, values)  # (B, C_out, T, V), summed over K
        refined = torch.zeros_like(y)
        for k in range(self.k):
            m = torch.tanh(p[:, k, :, :, None] - q[:, k, :, None, :])  # (B, rel, V, V)
            q_k = torch.matmul(self.xi_weight[k], m.flatten(2)) + self.xi_bias[k]  # (B, C_out, V*V)
            r_k = q_k.view(b, self.out_channels, v, v).transpose(-1, -2)  # (B, C_out, V_j, V_i)
            refined = refined + torch.matmul(values[:, k], r_k)  # (B, C_out, T, V)
        y = y + self.alpha * refined
        return self.relu(self.bn(y) + self.residual(x))


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
        y = torch.cat([branch(x) for branch in self.branches], dim=1)  # (B, C_out, T, V)
        return self.relu(self.bn(y) + self.residual(x))


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
