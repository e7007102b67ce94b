"""The one training loop shared by every stage (appendix B.2's optimizer and schedule).

AdamW (beta1, beta2), weight decay, linear warmup to the peak learning rate, cosine decay to the
floor; gradient clipping; bf16 autocast on GPU; a checkpoint per epoch through the `Runtime`, so a
restarted worker group resumes the stage at the epoch after its last checkpoint. The checkpoint holds
everything that decides the stage's result (weights, optimizer and schedule, the best dev epoch's
weights and score, every rank's random streams), so a resumed stage ends as an uninterrupted one. The loop knows
nothing of Ray: `Runtime` is filled in by `harness.tune.worker` (Ray Train) or `local_runtime()`
(one process, for `python -m harness.trial`, tests and the overhead benchmark).
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from harness.config import ConfigError, OptimConfig


class Diverged(ConfigError):
    """A stage's training loss (or gradient norm) became NaN or infinite: a user error (most often
    the learning rate), one line, and the stage is never cached (its cache entry is written only
    after `run` returns)."""


def check_finite(value: float, what: str, stage: str, epoch: int, epochs: int, cfg: OptimConfig) -> None:
    """Stop the stage at the first non-finite training value: every step after it trains on NaN."""
    if not math.isfinite(value):
        clip = "" if cfg.grad_clip > 0 else ", or clip gradients (optim.grad_clip > 0)"
        raise Diverged(f"{stage}: the training {what} became {value} in epoch {epoch + 1}/{epochs}; the learning "
                       f"rate is the likely cause: lower optim.lr (now {cfg.lr:g}){clip}; nothing of {stage} was cached")


@dataclass
class Runtime:
    """Where a stage trains: rank, device, model preparation, reporting and checkpoints."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    bf16: bool = True
    cpu_bf16: bool = False  # bf16 autocast on CPU too (compute.cpu_bf16)
    # wrap a model for this runtime (DDP across workers); identity in-process
    prepare_model: Callable[[nn.Module], nn.Module] = lambda m: m
    # report(metrics, checkpoint_state or None): called on EVERY rank once per epoch
    report: Callable[[dict, dict | None], None] = lambda metrics, state: None
    # the latest checkpoint state of this trial, or None
    latest_checkpoint: Callable[[], dict | None] = lambda: None
    # progress line for people (rank 0 only does anything)
    say: Callable[[str], None] = lambda text: None
    # metric logging (rank 0 -> MLflow); (metrics, step)
    log_metrics: Callable[[dict, int], None] = lambda metrics, step: None
    # a checkpoint at most this often (0: every epoch); short epochs are not worth one each
    checkpoint_every_s: float = 0.0
    # seconds spent in report() and log_metrics(): waiting on Ray and MLflow is not stage work
    waited_s: float = 0.0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def end_epoch(self, metrics: dict, step: int, report: dict, state: dict | None) -> None:
        """Log and report one epoch, counting the time as waiting, not as the stage's work."""
        t0 = time.perf_counter()
        self.log_metrics(metrics, step)
        self.report(report, state)
        self.waited_s += time.perf_counter() - t0

    def barrier(self) -> None:
        if self.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's value of `obj` on every rank."""
        if self.world_size > 1 and torch.distributed.is_initialized():
            box = [obj]
            torch.distributed.broadcast_object_list(box, src=0)
            return box[0]
        return obj

    def gather(self, obj: Any) -> list:
        """Every rank's value of `obj`, by rank, on every rank."""
        if self.world_size > 1 and torch.distributed.is_initialized():
            box: list = [None] * self.world_size
            torch.distributed.all_gather_object(box, obj)
            return box
        return [obj]

    def all_sum(self, value: float) -> float:
        if self.world_size > 1 and torch.distributed.is_initialized():
            t = torch.tensor([value], dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
            torch.distributed.all_reduce(t)
            return float(t.item())
        return value

    def all_mean(self, value: float) -> float:
        return self.all_sum(value) / self.world_size

    @property
    def autocast(self):
        """bf16 autocast: on GPU with `bf16` (compute.bf16), on CPU only with `cpu_bf16`
        (compute.cpu_bf16, off by default: see ComputeConfig)."""
        if self.device.type == "cuda":
            use = self.bf16
        else:
            use = self.device.type == "cpu" and self.cpu_bf16
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=use)


def import_training_machinery() -> None:
    """Import what torch loads lazily on the first optimizer of a process (torch._dynamo: 2-4 s on
    one CPU core), at start-up: it is paid once per process, so it belongs to the process's start
    and not to the first stage that happens to build an optimizer (and its timing)."""
    import torch._dynamo  # noqa: F401


def local_runtime(say: Callable[[str], None] = print) -> Runtime:
    import_training_machinery()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return Runtime(device=device, say=say)


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seeds offset by rank so DDP workers draw different data but start from one broadcast model."""
    s = seed + 1000 * rank
    random.seed(s)
    np.random.seed(s % (2**32))
    torch.manual_seed(s)


def rng_state(device: torch.device) -> dict:
    """This process's random streams (dropout, masking, sampling): a stage resumed from a
    checkpoint draws what the uninterrupted run would have drawn from that epoch on. Plain
    tensors and ints only, so a checkpoint still loads with weights_only=True."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def shard_order(n: int, seed: int, epoch: int, rank: int, world_size: int) -> list[int]:
    """DistributedSampler semantics: one permutation per (seed, epoch), padded and split by rank."""
    g = torch.Generator().manual_seed(seed * 100003 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    per_rank = math.ceil(n / world_size)
    order = order + order[: per_rank * world_size - n]
    return order[rank::world_size]


def steps_per_epoch(n: int, batch_size: int, world_size: int) -> int:
    """Batches one rank draws per epoch from `n` items (its shard is ceil(n / world_size) items)."""
    shard = -(-n // world_size)
    return max(1, -(-shard // batch_size))


def warmup_length(cfg: OptimConfig, total_steps: int) -> int:
    """warmup_steps, at most `warmup_cap` of the stage's steps (rounded down), at least one step."""
    # The 1e-9 keeps float rounding from losing a step (0.29 * 100 is 28.999999999999996).
    return min(cfg.warmup_steps, max(math.floor(total_steps * cfg.warmup_cap + 1e-9), 1))


def make_optimizer(model: nn.Module, cfg: OptimConfig, total_steps: int):
    params = [p for p in model.parameters() if p.requires_grad]
    # The fused kernel (one pass over all parameters) where torch has it: 3.4x faster per step than
    # the default per-parameter loop on CPU (SignMAE, default profile); it rounds differently, so
    # weights differ from the loop's at float level (1e-7 after 60 steps), not beyond.
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay,
                            fused=fused or None)
    warmup = warmup_length(cfg, total_steps)
    floor = cfg.min_lr / cfg.lr if cfg.lr > 0 else 0.0

    def factor(step: int) -> float:
        # Linear warmup, then cosine from the peak down to the floor (B.2: 1e-4 -> 5e-5).
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return opt, sched


@dataclass
class StageRun:
    """What one stage's training needs; `batches(epoch)` yields this rank's batches, each a tuple
    of the model's forward arguments (every model returns a `ModelOutput` whose `loss` is trained)."""

    stage: str
    key: str
    model: nn.Module
    batches: Callable[[int], Iterable[tuple]]
    epochs: int
    steps_per_epoch: int
    evaluate: Callable[[nn.Module, int], dict] | None = None  # (model, epoch) -> metrics, on every rank
    evaluate_every: int = 1
    epoch_metrics: Callable[[int], dict] | None = None  # (epoch) -> metrics of what its batches held
    # A metric of `evaluate` (higher is better): the model returned is the one of the epoch that
    # scored best on it (the paper's early stopping), not the last one. None: the last one.
    keep_best: str | None = None


def train_stage(run: StageRun, cfg: OptimConfig, rt: Runtime) -> dict:
    """Train `run.model` in place for `run.epochs`, resuming from this stage's latest checkpoint.

    Returns the last epoch's metrics. The model returned to the caller is unwrapped (not DDP)."""
    model = run.model.to(rt.device)
    wrapped = rt.prepare_model(model)
    total = max(1, run.epochs * run.steps_per_epoch)
    opt, sched = make_optimizer(wrapped, cfg, total)
    start_epoch = 0
    # The best-scoring epoch's weights so far: part of the checkpoint, since they decide the result.
    best: dict = {"score": -math.inf, "epoch": -1, "state": None}
    state = rt.latest_checkpoint()
    # A checkpoint without the best-epoch or random state (an older harness's) cannot continue the
    # run it came from exactly: the stage restarts instead of finishing with other numbers.
    if state and state.get("stage") == run.stage and state.get("key") == run.key and "rng" in state:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        sched.load_state_dict(state["sched"])
        best = state["best"]
        rngs = state["rng"]
        # Each rank's own streams; another world size draws otherwise anyway, so rank 0's then.
        set_rng_state(rngs[rt.rank] if len(rngs) == rt.world_size else rngs[0], rt.device)
        start_epoch = int(state["epoch"]) + 1
        rt.say(f"{run.stage}: resumed from the checkpoint of epoch {start_epoch} (continuing at epoch {start_epoch + 1})")
    metrics: dict = {}
    last_checkpoint = time.perf_counter()
    for epoch in range(start_epoch, run.epochs):
        t0 = time.perf_counter()
        wrapped.train()
        total_loss, steps = 0.0, 0
        for batch in run.batches(epoch):
            with rt.autocast:
                loss = wrapped(*batch).loss
            value = float(loss.detach())
            # Every rank decides on the sum of all ranks' losses (one NaN makes it NaN): a rank that
            # stopped alone would leave the others waiting in DDP's all-reduce for ever.
            check_finite(rt.all_sum(value), "loss", run.stage, epoch, run.epochs, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                # Finite loss, infinite gradient: clipping would scale it to NaN weights. (Under DDP
                # the gradients are all-reduced already, so every rank sees the same norm.)
                norm = torch.nn.utils.clip_grad_norm_(wrapped.parameters(), cfg.grad_clip)
                check_finite(float(norm), "gradient norm", run.stage, epoch, run.epochs, cfg)
            opt.step()
            sched.step()
            total_loss += value
            steps += 1
        metrics = {f"{run.stage}/train_loss": rt.all_mean(total_loss / max(steps, 1)),
                   f"{run.stage}/lr": sched.get_last_lr()[0],
                   f"{run.stage}/epoch_s": time.perf_counter() - t0}
        if run.epoch_metrics is not None:
            metrics.update(run.epoch_metrics(epoch))
        if run.evaluate is not None and ((epoch + 1) % run.evaluate_every == 0 or epoch + 1 == run.epochs):
            model.eval()
            with torch.no_grad():
                metrics.update(run.evaluate(model, epoch))
            if run.keep_best is not None and metrics[run.keep_best] > best["score"]:
                best = {"score": metrics[run.keep_best], "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
        checkpoint = None
        # Not after the last epoch: the stage's cache entry, written next, is its lasting result.
        due = time.perf_counter() - last_checkpoint >= rt.checkpoint_every_s and epoch + 1 < run.epochs
        # Every rank decides alike (rank 0's clock) and sends its random state: a collective.
        due = rt.broadcast(due)
        rngs = rt.gather(rng_state(rt.device)) if due else None
        if rt.is_main and due:
            checkpoint = {"stage": run.stage, "key": run.key, "epoch": epoch, "model": model.state_dict(),
                          "optim": opt.state_dict(), "sched": sched.state_dict(), "best": best, "rng": rngs}
            last_checkpoint = time.perf_counter()
        rt.end_epoch(metrics, epoch, {"stage": run.stage, "epoch": epoch + 1, "epochs": run.epochs, **metrics},
                     checkpoint)
        rt.say(f"{run.stage} epoch {epoch + 1}/{run.epochs} loss {metrics[f'{run.stage}/train_loss']:.4f}")
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    model.eval()
    return metrics
