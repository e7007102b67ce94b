"""Eq. 2's pose weights on the canonical layout, for every method with a keypoint loss or input
(paper section 3.3, eq. 1-2; section 6 "Impact of APW", table 5).

`pretrain.weighting` (none / fpw / apw) and its FPW constants, floor and normalisation are one
setting for the whole study: SignMAE's reconstruction loss, PT's and NSLP-G's pose regression
losses, and (as their input weighting, harness/stages/translate.py) Joint-SLT's and ConSLT's
keypoints all take the same weights. APW over a whole sequence is eq. 1 window by window
(`pretrain.window` frames, as SignMAE sees it), so a long sequence's weights follow what moves
in each part of it.
"""

from __future__ import annotations

import torch

from harness.config import ExperimentConfig
from models.layout import CANONICAL

# Each hand's own wrist, the anchor of its relative coordinates in eq. 1 (left hand, right hand).
WRISTS = (CANONICAL.left_wrist, CANONICAL.right_wrist)


def weighting_settings(cfg: ExperimentConfig) -> dict:
    """What a baseline's weights depend on (its cache key hashes them): the kind, the window APW
    works in, FPW's constants, eq. 1's floor and normalisation."""
    p = cfg.pretrain
    return {"weighting": p.weighting, "window": p.window, "fpw_weights": p.fpw_weights,
            "weight_floor": p.weight_floor, "weight_norm": p.weight_norm}


def loss_weights(cfg: ExperimentConfig, seg: torch.Tensor, pmask: torch.Tensor, fixed: dict[str, float] | None):
    """Eq. 2's weights of a batch on the canonical layout, (B, w, V, C), (B, w, V) -> GroupWeights
    (per point (B, V), per group (B, 3), and where eq. 1 was floored or degenerate)."""
    from models import weighting
    p = cfg.pretrain
    return weighting.group_weights(p.weighting, seg, pmask, CANONICAL.parts, *WRISTS, fixed, floor=p.weight_floor,
                                   normalise=p.weight_norm)


def fpw_part_weights(cfg: ExperimentConfig, segs: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """FPW's {group: weight} under `pretrain.fpw_weights`, from the training segments (S, w, V, C),
    (S, w, V): eq. 1 on their pooled variances ("dataset"), or the paper's or the given numbers. A group
    these segments lack gets 0, whatever was asked: its points never enter the loss, and the logged
    weights say what was trained with."""
    from models import weighting
    p = cfg.pretrain
    variances = weighting.dataset_part_variances([(segs, masks)], CANONICAL.parts, *WRISTS)
    if p.fpw_weights == "dataset":
        return weighting.fpw_part_weights(variances, floor=p.weight_floor, normalise=p.weight_norm)
    given = weighting.PAPER_FPW if p.fpw_weights == "paper" else dict(zip(weighting.GROUPS, p.fpw_weights))
    return {g: (float(given[g]) if variances[g] is not None else 0.0) for g in weighting.GROUPS}


def training_fpw(cfg: ExperimentConfig, sequences) -> dict[str, float] | None:
    """FPW's constants from whole training sequences [(T_i, V, C) keypoints, (T_i, V) masks] (their
    first window each, as pretraining's one segment per sequence), or None unless weighting is fpw."""
    if cfg.pretrain.weighting != "fpw":
        return None
    w = cfg.pretrain.window
    segs = torch.stack([torch.as_tensor(x[:w]).float() for x, _ in sequences])  # (S, w, V, C)
    masks = torch.stack([torch.as_tensor(m[:w]).bool() for _, m in sequences])  # (S, w, V)
    return fpw_part_weights(cfg, segs, masks)


def sequence_weights(cfg: ExperimentConfig, x: torch.Tensor, mask: torch.Tensor, fixed: dict[str, float] | None
                     ) -> torch.Tensor:
    """Per-frame weights of one sequence (T, V, C), (T, V) -> (T, V): each `pretrain.window`-frame
    window's weights (the last window may be shorter) repeated over its frames."""
    w = cfg.pretrain.window
    out = []
    for start in range(0, x.shape[0], w):
        seg, pm = x[start:start + w][None], mask[start:start + w][None]  # (1, w', V, C), (1, w', V)
        out.append(loss_weights(cfg, seg, pm.bool(), fixed).points.expand(seg.shape[1], -1))  # (w', V)
    return torch.cat(out)  # (T, V)
