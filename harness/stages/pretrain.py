"""The pretrain stage: SignMAE on random segments of the training sequences (sections 3.2-3.3, B.2).

The reconstruction loss is weighted per point by `pretrain.weighting` (eq. 1-2): `none`, `fpw`
(fixed per part: eq. 1 once on training-set statistics, or `pretrain.fpw_weights`) or `apw` (eq. 1
per segment). Downstream stages
receive the model frozen (section 3.4: its encoder gives Z, its decoder renders text-to-sign).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.builders import build_signmae
from harness.config import ExperimentConfig
from harness.data.datasets import SegmentDataset
from harness.data.record import SignSequence
from harness.io import load_torch, save_torch
from harness.loop import StageRun, seed_everything, shard_order, steps_per_epoch, train_stage
from harness.stages.base import Stage, StageContext, numerics
from harness.datasource import source_identity
from harness.pose_weights import fpw_part_weights, loss_weights

# Dev segments for the per-epoch reconstruction error: one per sequence, drawn with a fixed seed so
# every variant and seed is measured on the same segments.
DEV_SEGMENT_SEED = 12345
EVALUATIONS = 4  # per-epoch dev evaluations over a stage (every epochs // 4 epochs)
FPW_PREFIX = "pretrain/fpw_"  # pretrain/fpw_body, _face, _hands: FPW's fixed part weights


@dataclass(frozen=True)
class Pretrained:
    model: torch.nn.Module  # SignMAE, frozen, in eval mode on the runtime's device
    metrics: dict[str, float]  # the last epoch's


def settings(cfg: ExperimentConfig) -> dict:
    extra = cfg.pretrain.extra_source
    return {"pretrain": dataclasses.asdict(cfg.pretrain), "optim": dataclasses.asdict(cfg.optim), "seed": cfg.seed,
            # "mixing" 2: the extra corpus loses the parts the main one never shows (datasource.Mixing)
            "extra": {**source_identity(extra, cfg), "mixing": 2} if extra else None,
            "extra_noise_threshold": cfg.data.noise_threshold if extra else None, **numerics(cfg)}


def training_sequences(ctx: StageContext) -> list[SignSequence]:
    """The training split, plus the train split of `pretrain.extra_source` (table 4d), which the
    prepare stage read and made one input with it (harness.datasource.Mixing)."""
    prepared = ctx.inputs["prepare"]
    return list(prepared.corpus["train"]) + list(prepared.unlabelled) + list(prepared.extra)


def run(ctx: StageContext) -> dict:
    from models import weighting
    from models.signmae import mean_pose
    cfg, rt = ctx.cfg, ctx.runtime
    prepared = ctx.inputs["prepare"]
    seqs = training_sequences(ctx)
    seed_everything(cfg.seed, rt.rank)
    dataset = SegmentDataset(seqs, cfg.pretrain.window, cfg.pretrain.segments_per_sequence, cfg.seed)
    # One segment per training sequence: the statistics FPW and the decoder's reference pose use.
    stats = SegmentDataset(seqs, cfg.pretrain.window, 1, cfg.seed + 1)
    segs = torch.stack([stats[i][0] for i in range(len(stats))])  # (S, w, V, C)
    masks = torch.stack([stats[i][1] for i in range(len(stats))])  # (S, w, V)
    model = build_signmae(cfg, prepared.num_coords, mean_pose([(segs, masks)]))
    fixed = None
    if cfg.pretrain.weighting == "fpw":
        # FPW: a fixed weight per part (eq. 1 once on training-set statistics, or given).
        fixed = fpw_part_weights(cfg, segs, masks)
        rt.say(f"pretrain: FPW part weights {json.dumps({k: round(float(v), 3) for k, v in fixed.items()})}")
    bs = cfg.optim.batch_size

    def batches(epoch):
        dataset.set_epoch(epoch)
        order = shard_order(len(dataset), cfg.seed, epoch, rt.rank, rt.world_size)
        for i in range(0, len(order), bs):
            items = [dataset[j] for j in order[i:i + bs]]
            seg = torch.stack([a for a, _ in items]).to(rt.device)  # (B, w, V, C)
            pmask = torch.stack([b for _, b in items]).to(rt.device)  # (B, w, V)
            w = loss_weights(cfg, seg, pmask, fixed)
            seen.append(w)
            yield seg, pmask, w.points  # w.points: (B, V)

    seen: list = []  # this epoch's batch weights, for the weights' statistics

    def weight_metrics(epoch: int) -> dict:
        # What eq. 2 weighted this epoch's segments with (body = 1): visible in MLflow and the table.
        stats = {f"pretrain/w_{k}": v for k, v in weighting.summarize(seen).items()}
        seen.clear()
        return stats

    dev = SegmentDataset(prepared.corpus["dev"], cfg.pretrain.window, 1, DEV_SEGMENT_SEED)
    dev_seg = torch.stack([dev[i][0] for i in range(len(dev))]).to(rt.device)  # (S, w, V, C)
    dev_mask = torch.stack([dev[i][1] for i in range(len(dev))]).to(rt.device)  # (S, w, V)

    def evaluate(model, epoch):
        # Reconstruction error of whole dev segments from z alone (no masking): MPJPE.
        rec = model.decode(model.encode(dev_seg, dev_mask))  # (S, w, V, C)
        err = torch.linalg.vector_norm(rec - dev_seg, dim=-1)[dev_mask].mean()
        return {"pretrain/dev_recon_mpjpe": float(err)}

    epochs = cfg.pretrain.epochs
    metrics = train_stage(StageRun("pretrain", ctx.key, model, batches, epochs,
                                   steps_per_epoch(len(dataset), bs, rt.world_size), evaluate,
                                   max(1, epochs // EVALUATIONS), weight_metrics), cfg.optim, rt)
    if fixed is not None:  # FPW's weights themselves, which the trial also logs as MLflow parameters
        metrics = {**metrics, **{f"{FPW_PREFIX}{g}": float(w) for g, w in fixed.items()}}
    return {"model": model.state_dict(), "in_channels": prepared.num_coords, "metrics": metrics}


def _save(out: dict, folder: Path) -> None:
    save_torch({"model": out["model"], "in_channels": out["in_channels"]}, folder / "signmae.pt")
    (folder / "metrics.json").write_text(json.dumps(out["metrics"]))


def _load(folder: Path) -> dict:
    state = load_torch(folder / "signmae.pt")
    metrics = json.loads((folder / "metrics.json").read_text())
    return {"model": state["model"], "in_channels": state["in_channels"], "metrics": metrics}


def _ready(ctx: StageContext, out: dict) -> Pretrained:
    model = build_signmae(ctx.cfg, out["in_channels"])
    model.load_state_dict(out["model"])
    model.to(ctx.runtime.device).eval()
    for p in model.parameters():
        p.requires_grad_(False)  # frozen from here on (section 3.4)
    return Pretrained(model, out["metrics"])


# Version 2: CTR-GC computed without per-sample 73 x 73 products (the same function up to float
# rounding, other numbers), and the part-relative terms: entries of version 1 are not reused.
PRETRAIN = Stage(name="pretrain", needs=("prepare",), settings=settings, run=run, save=_save, load=_load,
                 ready=_ready, version=2)
