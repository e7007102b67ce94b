"""One trial's whole pipeline on one worker: a Ray Train worker of the trial's TorchTrainer (several
workers with DDP, or a GPU), or, for a one-worker CPU trial, the Tune trial itself.

One worker runs every stage (a TorchTrainer start costs ~20-25 s on 2 cores, so a stage must not
pay it, and a one-worker CPU trial does not need one at all). Rank 0 writes the cache, the checkpoints and the MLflow logs; all ranks train
(DDP through `ray.train.torch.prepare_model`), draw their own shard of each epoch, and seed with an
offset by rank. A checkpoint is reported every epoch; when Ray Train restarts the worker group
after a failure (`ray.train.FailureConfig`), finished stages load from the cache and the
interrupted one resumes at the epoch after its last checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pickle
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import ray.train
import ray.train.torch
import ray.tune
import torch

from harness import storage, tracking
from harness.cache import StageCache
from harness.io import atomic_write, load_torch, save_torch, sha256_file
from harness.loop import Diverged, Runtime, import_training_machinery
from harness.pipeline import figure_files, run_trial
from harness.stages.pretrain import FPW_PREFIX
from harness.results import PoseSample, ResultsLayout, TrialResult, TrialSpec, write_pose_samples


def write_checkpoint(state: dict, folder: Path) -> None:
    """A Train checkpoint: state.pt and its SHA-256, so a truncated copy is detected on resume."""
    save_torch(state, folder / "state.pt")
    (folder / "state.sha256").write_text(sha256_file(folder / "state.pt"))


def read_checkpoint(folder: Path, say=lambda text: None) -> dict | None:
    """The state in a Train checkpoint, or None (the stage restarts at its first epoch) when the
    file is missing, truncated or altered: a damaged checkpoint is never loaded."""
    path, digest = folder / "state.pt", folder / "state.sha256"
    try:
        if digest.is_file() and sha256_file(path) != digest.read_text().strip():
            raise ValueError("its SHA-256 does not match state.sha256")
        return load_torch(path)
    except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        say(f"checkpoint {path} is damaged ({str(exc).splitlines()[0][:200]}); "
            f"not loading it: the stage restarts at its first epoch")
        return None


def log_trial_artifacts(logger: tracking.SafeLogger, result: TrialResult, samples: list[PoseSample], trial_dir: Path
                        ) -> None:
    """Which stages came from the cache (tags stage.NAME.cached: a cached stage's curves, if any, are
    another trial's or an earlier attempt's), sample translations as an MLflow table at the run's
    top level (the UI's compare view shows the runs' tables side by side) and, for text-to-sign, a
    skeleton animation of the first side-by-side sentence (generated vs ground truth)."""
    from harness.metrics import sentence_bleu4
    from models.layout import CANONICAL
    # "false" too: a resumed trial's earlier attempt may have said otherwise
    logger.set_tags({f"stage.{name}.cached": str(how == "cached").lower() for name, how in result.stages.items()})
    # FPW's part weights are fixed for the whole pretraining: parameters of the run, not curves.
    fpw = {f"pretrain.fpw.{k[len(FPW_PREFIX):]}": f"{v:.4g}" for k, v in result.pretrain_metrics.items()
           if k.startswith(FPW_PREFIX)}
    if fpw:
        logger.log_params(fpw)
    rows = []
    for task in ("sign2text", "text2sign"):
        if task in result.tasks:
            test = result.tasks[task].test
            pairs = list(zip(test.hypotheses, test.references))[:20]
            scores = sentence_bleu4([h for h, _ in pairs], [r for _, r in pairs]) if pairs else []
            rows += [{"task": task, "reference": ref, "hypothesis": hyp, "sentence_bleu4": round(score, 2)}
                     for (hyp, ref), score in zip(pairs, scores)]
    if rows:
        logger.log_table(rows, "translations.json")
    if samples:
        from harness.render import render_skeleton_gif
        gif = trial_dir / "text2sign_sample.gif"
        render_skeleton_gif(samples[0].generated, samples[0].ground_truth, samples[0].mask,
                            CANONICAL.edges, gif, title=samples[0].text[:60])
        logger.log_artifact(gif, "samples")


class MetricsBuffer:
    """Per-epoch metrics for MLflow, sent every `every_s` seconds in one request (and at the end):
    one request per epoch costs seconds per trial at the default profile."""

    def __init__(self, logger: tracking.SafeLogger, every_s: float = 10.0):
        self.logger, self.every_s = logger, every_s
        self.rows: list[tuple[dict, int, int]] = []
        self.sent = time.monotonic()

    def add(self, metrics: dict, step: int) -> None:
        self.rows.append((dict(metrics), int(step), int(time.time() * 1000)))
        if time.monotonic() - self.sent >= self.every_s:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.logger.log_history(self.rows)
            self.rows = []
        self.sent = time.monotonic()


@dataclass(frozen=True)
class RayIO:
    """How a worker reports to Ray: through Ray Train (a TorchTrainer's workers) or straight to
    Tune (a one-worker CPU trial run inside the Tune trial itself)."""

    report: Callable[..., None]  # report(metrics, checkpoint=...)
    get_checkpoint: Callable[[], Any]
    checkpoint: type  # the Checkpoint class this API takes
    fields: Callable[[dict], dict] = lambda metrics: metrics  # what Tune must see besides (a search's)
    # Epoch reports without a checkpoint closer together than this are not sent: each one waits for
    # Tune's controller to take it. 0 (Ray Train): every epoch, since Train's report is collective.
    every_s: float = 0.0
    needed: Callable[[dict], bool] = lambda metrics: True  # a report that is always sent (ASHA's epochs)


def _runtime(spec: TrialSpec, rank: int, world: int, device: torch.device, io: RayIO, say,
             metrics: MetricsBuffer | None) -> Runtime:
    sent = [float("-inf")]

    def report(values: dict, state: dict | None) -> None:
        if state is None and time.monotonic() - sent[0] < io.every_s and not io.needed(values):
            return
        sent[0] = time.monotonic()
        checkpoint, folder = None, None
        if state is not None:
            folder = Path(tempfile.mkdtemp(prefix="uniglor-ckpt-"))
            write_checkpoint(state, folder)
            checkpoint = io.checkpoint.from_directory(str(folder))
        io.report(io.fields({k: v for k, v in values.items() if isinstance(v, (int, float, str))}),
                  checkpoint=checkpoint)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def latest() -> dict | None:
        checkpoint = io.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            return read_checkpoint(Path(folder), say)

    def prepare_model(model: torch.nn.Module) -> torch.nn.Module:
        if world == 1:
            return model.to(device)
        # Frozen or unused branches (e.g. positional queries) must not stall DDP's reducer.
        return ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"find_unused_parameters": True})

    import_training_machinery()
    return Runtime(rank=rank, world_size=world, device=device, bf16=spec.cfg.compute.bf16,
                   cpu_bf16=spec.cfg.compute.cpu_bf16,
                   prepare_model=prepare_model, report=report, latest_checkpoint=latest, say=say,
                   log_metrics=metrics.add if metrics else (lambda m, step: None),
                   checkpoint_every_s=spec.cfg.compute.checkpoint_every_s)


def run_worker(spec: TrialSpec, rank: int, world: int, device: torch.device, io: RayIO) -> None:
    """One worker's whole trial: every stage, then (rank 0) the result file, the MLflow logs, and
    the final report that carries the trial's dev and test metrics."""
    cfg = spec.cfg
    threads = cfg.compute.torch_threads or max(1, int(cfg.compute.cpus_per_worker))
    torch.set_num_threads(threads)
    results = Path(spec.results)
    trial_dir = spec.trial_dir
    trial_dir.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        spec.failure_path.unlink(missing_ok=True)  # an earlier attempt's
    remote = storage.remote_of(spec.storage_uri)  # every rank: a rank on another node fetches cache entries
    if rank == 0:
        # An earlier attempt may have run on another node: continue its log and pending queue.
        storage.pull_trial_folder(remote, results, spec.folder, spec.key)
    logger = tracking.SafeLogger(spec.tracking_uri, spec.run_id, trial_dir / "pending") if rank == 0 else None
    buffer = MetricsBuffer(logger) if logger else None
    log_file = open(trial_dir / f"worker{rank}.log", "a", buffering=1) if rank == 0 else None

    def say(text: str) -> None:
        if log_file:
            log_file.write(f"{time.strftime('%H:%M:%S')} {text}\n")

    runtime = _runtime(spec, rank, world, device, io, say, buffer)
    # The node id says where a trial ran (multi-node debugging; the fault tests kill that node).
    say(f"trial {spec.key}: rank {rank}/{world} on {runtime.device}, {threads} torch threads, "
        f"node {ray.get_runtime_context().get_node_id()}")
    try:
        cache = StageCache(ResultsLayout(results).cache, remote)
        result, samples = run_trial(cfg, spec.tasks, cache, runtime)
    except BaseException as exc:
        if rank == 0:  # the log says why; its node may be gone by the time anyone looks
            # One line, as the command line would print it (a diverged stage names stage, epoch, cause).
            say(f"trial {spec.key} failed: {(str(exc).splitlines() or [type(exc).__name__])[0]}")
            buffer.flush()
            with contextlib.suppress(*storage.REMOTE_ERRORS):
                storage.push_trial(remote, results, spec.folder, spec.key, result=False)
        if isinstance(exc, Diverged):
            # Not a node's failure: a retry from the last checkpoint diverges again. The trial
            # ends here without an error, so neither Tune nor Train retries it; the file below
            # tells its driver (run FAILED) and the study's (the table's missing row) why.
            if rank == 0:
                atomic_write(spec.failure_path, json.dumps({"trial": spec.key, "error": str(exc)}))
                with contextlib.suppress(*storage.REMOTE_ERRORS):
                    storage.push_trial(remote, results, spec.folder, spec.key, result=False)
            if log_file:
                log_file.close()
            return
        raise
    metrics = result.final_metrics()
    if rank == 0:
        result = dataclasses.replace(result, key=spec.key, variant=spec.variant)
        buffer.flush()
        log_trial_artifacts(logger, result, samples, trial_dir)
        if samples:  # in the trial folder, which reaches the study's driver (--storage too): figure 4's strip
            write_pose_samples(samples, spec.pose_samples_path)
        for png in figure_files(cfg, spec.tasks, cache):
            logger.log_artifact(png, "figures")
        result.write(spec.result_path)
        logger.log_metrics(metrics, step=0)
        logger.log_dict({"stages": result.stages, "stage_seconds": result.stage_seconds}, "stages.json")
        pending = logger.flush()
        if pending:
            say(f"MLflow: {pending} log entries could not be written (kept in {trial_dir / 'pending'})")
        say(f"trial {spec.key}: done in {result.seconds:.1f} s; stages {result.stages}")
        # Before the report below: the trial driver (maybe on another node) reads this file from
        # the remote as soon as fit() returns.
        storage.push_trial(remote, results, spec.folder, spec.key)
    # Not Tune's reserved "done" key: a result with done=1 makes Tune stop (kill) the trial actor
    # while fit() is still returning, so the trial's MLflow run was never closed (left RUNNING).
    io.report(io.fields({"stage": "done", **metrics}))
    if log_file:
        log_file.close()


REPORT_EVERY_S = 2.0  # the live view's refresh; Tune needs no more
TRAIN_IO = RayIO(report=ray.train.report, get_checkpoint=ray.train.get_checkpoint, checkpoint=ray.train.Checkpoint)


def train_loop_per_worker(config: dict) -> None:
    """A Ray Train worker (TorchTrainer): several workers (DDP) or a GPU."""
    ctx = ray.train.get_context()
    run_worker(TrialSpec.from_tune(config), ctx.get_world_rank(), ctx.get_world_size(),
               ray.train.torch.get_device(), TRAIN_IO)


def run_in_trial(spec: TrialSpec, fields: Callable[[dict], dict]) -> None:
    """A one-worker CPU trial inside the Tune trial itself: no TorchTrainer to start per trial (its
    worker group costs 15-25 s before the first step), reports straight to Tune, at most every
    REPORT_EVERY_S seconds except those a search's scheduler decides on."""
    run_worker(spec, 0, 1, torch.device("cpu"),
               RayIO(report=ray.tune.report, get_checkpoint=ray.tune.get_checkpoint, checkpoint=ray.tune.Checkpoint,
                     fields=fields, every_s=REPORT_EVERY_S,
                     needed=lambda metrics: bool(spec.epoch_metric) and spec.epoch_metric in metrics))
