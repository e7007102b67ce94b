"""Pose weighting of SignMAE's reconstruction loss (paper section 3.3, eq. 1; used by eq. 2).

Three groups, in this order everywhere: body (b), face normalised by its centroid (nf), hands
relative to their wrists (rh). From a layout's parts: "body" -> body, "face" -> face,
"left_hand" + "right_hand" -> hands (both hands together).

Variance of a group (our precise reading of "spatiotemporal variance ... across all frames"):
  1. relative coordinates: body as is; face X_nf = X_f - mu_f with mu_f the per-frame mean of the
     PRESENT face points; each hand X_rh = X_h - X_wrist with that hand's OWN wrist joint (a hand
     point counts at frame t only when it and its wrist are both present at t).
  2. per point and coordinate: the population variance (divide by n, not n - 1) over the frames
     where the point counts. A point contributes only when it counts in at least 2 frames. The
     hand's own wrist joint never contributes (its residual is 0 by construction).
  3. sigma_p^2 = the mean of those variances over the group's contributing points and coordinates.
  A group with no contributing point is ABSENT (e.g. no face in PHOENIX14T skeletons).

Eq. 1 literally, absent groups dropped from the sum:
  w^p = 1 - (sigma_p^2 + sigma_b^2) / sum_q sigma_q^2,   p in {b, nf, rh}
With three groups this is w^b = (s_nf + s_rh - s_b) / S, w^nf = s_rh / S, w^rh = s_nf / S: a body
that moves more than face and hands together gives w^b <= 0.

Usable weights: eq. 1's raw values clamped to a floor, then normalised (`normalise`: "body" rescales
so the body weight is 1, "mean" so the present groups' weights average 1, "none" keeps the floored
values). The paper specifies neither step; the choices, their defaults and the reasoning are
documented at `pretrain.weight_floor` and `pretrain.weight_norm` in harness/config.py. Where eq. 1
is degenerate (fewer than three groups present, or all-zero variances) the present groups get
weight 1 and absent groups 0 (their points are masked out of the loss anyway).

FPW applies the same formula to dataset-level variances: per group, the mean of the per-point
variances of step 2 over every training sample (so a group's variance is pooled over all its
contributing (sample, point, coordinate) triples). Pass windows of the pretraining length so the
statistics match what APW sees per segment.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

GROUPS = ("body", "face", "hands")
LAYOUT_PART_GROUP = {"body": "body", "face": "face", "left_hand": "hands", "right_hand": "hands"}
PAPER_FPW = {"body": 1.0, "face": 1.17, "hands": 1.18}  # section 6, "Impact of APW"
DEFAULT_FLOOR = 0.05
WEIGHTINGS = ("none", "fpw", "apw")
NORMALISATIONS = ("body", "mean", "none")


def part_groups(parts: Mapping[str, Sequence[int]]) -> dict[str, tuple[int, ...]]:
    """Layout parts -> the three groups' point indices (a group a layout lacks is empty)."""
    unknown = sorted(set(parts) - set(LAYOUT_PART_GROUP))
    if unknown:
        raise ValueError(f"weighting: unknown parts {unknown}; expected a subset of {sorted(LAYOUT_PART_GROUP)}")
    groups: dict[str, tuple[int, ...]] = {g: () for g in GROUPS}
    for name, indices in parts.items():
        groups[LAYOUT_PART_GROUP[name]] += tuple(int(i) for i in indices)
    return groups


def _batched(segment, point_mask) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(np.asarray(segment) if not torch.is_tensor(segment) else segment).float()
    m = torch.as_tensor(np.asarray(point_mask) if not torch.is_tensor(point_mask) else point_mask).bool()
    if x.dim() == 3:
        x, m = x.unsqueeze(0), m.unsqueeze(0)
    if x.dim() != 4 or tuple(m.shape) != tuple(x.shape[:3]):
        raise ValueError(f"weighting: expected segment (B, T, V, C) and mask (B, T, V), got {tuple(x.shape)} and {tuple(m.shape)}")
    return x, m


def point_variances(
    segment: torch.Tensor,
    point_mask: torch.Tensor,
    parts: Mapping[str, Sequence[int]],
    left_wrist: int,
    right_wrist: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 1-2 of the module doc: per-point variance (B, V) averaged over C, and whether the
    point contributes (B, V) bool."""
    x, m = _batched(segment, point_mask)  # (B, T, V, C), (B, T, V)
    x = torch.where(m.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))  # never read absent values
    rel, valid = x.clone(), m.clone()
    face = list(parts.get("face", ()))
    if face:
        fm = m[:, :, face].unsqueeze(-1).float()  # (B, T, F, 1)
        centroid = (x[:, :, face] * fm).sum(2, keepdim=True) / fm.sum(2, keepdim=True).clamp(min=1)  # (B, T, 1, C)
        rel[:, :, face] = x[:, :, face] - centroid
    for name, wrist in (("left_hand", left_wrist), ("right_hand", right_wrist)):
        hand = list(parts.get(name, ()))
        if not hand:
            continue
        rel[:, :, hand] = x[:, :, hand] - x[:, :, wrist : wrist + 1]
        valid[:, :, hand] = m[:, :, hand] & m[:, :, wrist : wrist + 1]
        valid[:, :, wrist] = False  # the anchor's residual is identically 0
    w = valid.unsqueeze(-1).float()  # (B, T, V, 1)
    n = w.sum(1)  # (B, V, 1)
    mean = (rel * w).sum(1) / n.clamp(min=1)  # (B, V, C)
    var = (((rel - mean.unsqueeze(1)) ** 2) * w).sum(1) / n.clamp(min=1)  # (B, V, C)
    return var.mean(-1), n.squeeze(-1) >= 2


def part_variances(
    segment: torch.Tensor,
    point_mask: torch.Tensor,
    parts: Mapping[str, Sequence[int]],
    left_wrist: int,
    right_wrist: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """sigma^2 per group (B, 3) in GROUPS order, and the number of contributing points (B, 3)."""
    var, contributes = point_variances(segment, point_mask, parts, left_wrist, right_wrist)  # (B, V)
    groups = part_groups(parts)
    sums, counts = [], []
    for g in GROUPS:
        idx = list(groups[g])
        c = contributes[:, idx].float()  # (B, P)
        sums.append((var[:, idx] * c).sum(1))
        counts.append(c.sum(1))
    count = torch.stack(counts, 1)  # (B, 3)
    return torch.stack(sums, 1) / count.clamp(min=1), count


def eq1_raw_weights(variances: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Eq. 1 as printed, (..., 3) -> (..., 3); absent groups drop out of the sum and get 0.
    Where the present variances sum to 0 the result is 0 (the formula divides by 0)."""
    s = variances * present  # (..., 3)
    total = s.sum(-1, keepdim=True)
    w = 1 - (s + s[..., :1]) / total.clamp(min=1e-30)
    return torch.where(present & (total > 0), w, torch.zeros_like(w))


def usable_weights(variances: torch.Tensor, present: torch.Tensor, floor: float = DEFAULT_FLOOR,
                   normalise: str = "body") -> torch.Tensor:
    """Eq. 1 made usable (module doc): floor, normalise, uniform fallback when degenerate. (..., 3)."""
    if not 0 < floor <= 1:
        raise ValueError(f"weighting: floor must be in (0, 1], got {floor}")
    if normalise not in NORMALISATIONS:
        raise ValueError(f"weighting: normalise must be one of {NORMALISATIONS}, got {normalise!r}")
    present = present.bool()
    raw = eq1_raw_weights(variances, present).clamp(min=floor)
    if normalise == "body":
        scaled = raw / raw[..., :1]
    elif normalise == "mean":  # where defined all three groups are present, so the mean is over three
        scaled = raw / raw.mean(-1, keepdim=True)
    else:
        scaled = raw
    defined = present.all(-1, keepdim=True) & ((variances * present).sum(-1, keepdim=True) > 0)
    return torch.where(defined, scaled, present.float())


def _expand(group_weights: torch.Tensor, parts: Mapping[str, Sequence[int]], num_points: int) -> torch.Tensor:
    """(..., 3) group weights -> (..., V) point weights; points in no part keep weight 1."""
    out = torch.ones(*group_weights.shape[:-1], num_points, dtype=group_weights.dtype, device=group_weights.device)
    groups = part_groups(parts)
    for k, g in enumerate(GROUPS):
        idx = list(groups[g])
        if idx:
            out[..., idx] = group_weights[..., k : k + 1]
    return out


def apw_weights(
    segment: torch.Tensor,
    point_mask: torch.Tensor,
    parts: Mapping[str, Sequence[int]],
    left_wrist: int,
    right_wrist: int,
    floor: float = DEFAULT_FLOOR,
    normalise: str = "body",
) -> torch.Tensor:
    """Adaptive Pose Weights: (B, T, V, C), (B, T, V) -> per-sample, per-point weights (B, V)."""
    return group_weights("apw", segment, point_mask, parts, left_wrist, right_wrist, floor=floor,
                         normalise=normalise).points


def dataset_part_variances(
    samples: Iterable[tuple[torch.Tensor, torch.Tensor]],
    parts: Mapping[str, Sequence[int]],
    left_wrist: int,
    right_wrist: int,
) -> dict[str, float | None]:
    """Group variances pooled over a data set (module doc); None for a group absent everywhere.
    samples: (segment, point_mask) pairs, (B, T, V, C) / (B, T, V) or unbatched, torch or numpy."""
    total = torch.zeros(3, dtype=torch.float64)
    count = torch.zeros(3, dtype=torch.float64)
    for segment, point_mask in samples:
        var, n = part_variances(segment, point_mask, parts, left_wrist, right_wrist)  # (B, 3)
        total += (var.double() * n.double()).sum(0)
        count += n.double().sum(0)
    return {g: (float(total[k] / count[k]) if count[k] > 0 else None) for k, g in enumerate(GROUPS)}


def fpw_part_weights(
    data: Mapping[str, float | None] | Iterable[tuple[torch.Tensor, torch.Tensor]],
    parts: Mapping[str, Sequence[int]] | None = None,
    left_wrist: int | None = None,
    right_wrist: int | None = None,
    floor: float = DEFAULT_FLOOR,
    normalise: str = "body",
) -> dict[str, float]:
    """Fixed Pose Weights {group: weight} from training-set statistics: either precomputed group
    variances {"body": .., "face": .., "hands": ..} (None or NaN = absent), or (segment, mask) pairs
    together with parts and wrists."""
    if isinstance(data, Mapping):
        unknown = sorted(set(data) - set(GROUPS))
        if unknown:
            raise ValueError(f"fpw_part_weights: unknown groups {unknown}; expected {list(GROUPS)}")
        variances = dict(data)
    else:
        if parts is None or left_wrist is None or right_wrist is None:
            raise ValueError("fpw_part_weights: samples need parts, left_wrist and right_wrist")
        variances = dataset_part_variances(data, parts, left_wrist, right_wrist)
    present = torch.tensor([variances.get(g) is not None and not math.isnan(variances[g]) for g in GROUPS])
    var = torch.tensor([float(variances[g]) if present[k] else 0.0 for k, g in enumerate(GROUPS)], dtype=torch.float64)
    weights = usable_weights(var, present, floor, normalise)
    return {g: float(weights[k]) for k, g in enumerate(GROUPS)}


def fpw_weights(part_weights: Mapping[str, float], parts: Mapping[str, Sequence[int]], num_points: int) -> torch.Tensor:
    """{group: weight} -> per-point weights (V,). Every group the layout has must be given."""
    groups = part_groups(parts)
    missing = [g for g in GROUPS if groups[g] and g not in part_weights]
    if missing:
        raise ValueError(f"fpw_weights: part_weights lacks {missing}; expected keys {list(GROUPS)}")
    w = torch.tensor([float(part_weights.get(g, 0.0)) for g in GROUPS])
    return _expand(w, parts, num_points)


def loss_weights(
    kind: str,
    segment: torch.Tensor,
    point_mask: torch.Tensor,
    parts: Mapping[str, Sequence[int]] | None = None,
    left_wrist: int | None = None,
    right_wrist: int | None = None,
    fixed: torch.Tensor | None = None,
    floor: float = DEFAULT_FLOOR,
    normalise: str = "body",
) -> torch.Tensor:
    """The W of eq. 2 for a batch, (B, V): "none" -> ones, "fpw" -> `fixed` (V,) per sample,
    "apw" -> apw_weights."""
    b, _, v, _ = segment.shape
    if kind == "none":
        return torch.ones(b, v, device=segment.device)
    if kind == "fpw":
        if fixed is None:
            raise ValueError("loss_weights: 'fpw' needs the fixed (V,) weights")
        return fixed.to(segment.device, torch.float32).expand(b, v)
    if kind == "apw":
        if parts is None or left_wrist is None or right_wrist is None:
            raise ValueError("loss_weights: 'apw' needs parts, left_wrist and right_wrist")
        return apw_weights(segment, point_mask, parts, left_wrist, right_wrist, floor, normalise)
    raise ValueError(f"loss_weights: unknown weighting {kind!r}; expected one of {WEIGHTINGS}")


def weighted_pose_error(
    pred: torch.Tensor, target: torch.Tensor, present: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Eq. 2's weighted reconstruction error, the one definition SignMAE and the production
    baselines (PT, NSLP-G) share: sum over present points of W * ||target - pred||^2 (squared L2
    over C), divided by the sum of W over the present points, so the scale depends neither on how
    many points are present nor on the overall scale of W.

    pred, target (B, T, V, C); present (B, T, V) bool (absent points and padded frames False);
    weights (V,), (B, V) or (B, T, V) (none / FPW / APW from loss_weights; per-frame weights let
    a caller apply APW window by window over a long sequence). -> scalar."""
    b, t, v, _ = target.shape
    if tuple(weights.shape) not in ((v,), (b, v), (b, t, v)):
        raise ValueError(f"weighted_pose_error: weights {tuple(weights.shape)}, expected ({v},), ({b}, {v}) or ({b}, {t}, {v})")
    present = present.bool()
    zero = torch.zeros((), dtype=pred.dtype, device=pred.device)
    # Absent targets are replaced before the subtraction: masking only the error afterwards would
    # still send NaN gradients back from a NaN stored at an absent point.
    target = torch.where(present.unsqueeze(-1), target, zero)  # (B, T, V, C)
    err = torch.where(present, ((pred - target) ** 2).sum(-1), zero)  # (B, T, V)
    w = weights.to(err.dtype)
    w = (w.expand(b, v).unsqueeze(1) if w.dim() < 3 else w) * present  # (B, T, V)
    return (err * w).sum() / w.sum().clamp(min=1e-12)


# ----------------------------------------------------------------------------- what was trained with


@dataclass(frozen=True)
class GroupWeights:
    """Eq. 2's weights of a batch, per point and per group, and how eq. 1 produced them."""

    points: torch.Tensor  # (B, V): the W of eq. 2
    groups: torch.Tensor  # (B, 3) in GROUPS order (body 1 wherever eq. 1 is defined, with normalise "body")
    floored: torch.Tensor  # (B, 3) bool: eq. 1's raw weight fell below the floor (APW only)
    degenerate: torch.Tensor  # (B,) bool: eq. 1 undefined for the segment, present groups weigh 1 (APW only)


def group_weights(
    kind: str,
    segment: torch.Tensor,
    point_mask: torch.Tensor,
    parts: Mapping[str, Sequence[int]],
    left_wrist: int,
    right_wrist: int,
    fixed: Mapping[str, float] | None = None,
    floor: float = DEFAULT_FLOOR,
    normalise: str = "body",
) -> GroupWeights:
    """The batch's weights under `kind`: "none" ones, "fpw" the `fixed` {group: weight}, "apw" eq. 1
    per segment (as apw_weights). (B, T, V, C), (B, T, V) -> GroupWeights."""
    b, v = segment.shape[0], segment.shape[-2]
    no = torch.zeros(b, 3, dtype=torch.bool, device=segment.device)
    if kind == "none":
        groups = torch.ones(b, 3, device=segment.device)
        return GroupWeights(torch.ones(b, v, device=segment.device), groups, no, no[:, 0])
    if kind == "fpw":
        if fixed is None:
            raise ValueError("group_weights: 'fpw' needs the fixed {group: weight}")
        groups = torch.tensor([float(fixed.get(g, 0.0)) for g in GROUPS], device=segment.device).expand(b, 3)
        return GroupWeights(_expand(groups, parts, v), groups, no, no[:, 0])
    if kind != "apw":
        raise ValueError(f"group_weights: unknown weighting {kind!r}; expected one of {WEIGHTINGS}")
    with torch.no_grad():
        var, count = part_variances(segment, point_mask, parts, left_wrist, right_wrist)  # (B, 3)
        present = count > 0
        groups = usable_weights(var, present, floor, normalise)
        defined = present.all(-1) & ((var * present).sum(-1) > 0)  # (B,)
        floored = defined.unsqueeze(-1) & (eq1_raw_weights(var, present) < floor)
        return GroupWeights(_expand(groups, parts, v), groups, floored, ~defined)


def summarize(batches: Sequence[GroupWeights]) -> dict[str, float]:
    """Per group the mean and quartiles of the segments' weights (the body's only where it is not 1
    everywhere), and the share of segments where eq. 1 was floored (in any group) or degenerate:
    {"face_mean", "face_q25", ..., "floored", "degenerate"}."""
    if not batches:
        return {}
    groups = torch.cat([b.groups for b in batches]).double().cpu()  # (N, 3)
    out: dict[str, float] = {}
    for k, g in enumerate(GROUPS):
        if g == "body" and bool((groups[:, 0] == 1).all()):  # body = 1 (normalise "body"): nothing to say
            continue
        q = torch.quantile(groups[:, k], torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
        out.update({f"{g}_mean": float(groups[:, k].mean()), f"{g}_q25": float(q[0]), f"{g}_q50": float(q[1]),
                    f"{g}_q75": float(q[2])})
    out["floored"] = float(torch.cat([b.floored.any(-1) for b in batches]).double().mean())
    out["degenerate"] = float(torch.cat([b.degenerate for b in batches]).double().mean())
    return out
