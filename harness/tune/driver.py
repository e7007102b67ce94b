"""One Tune trial, for ablations and searches alike: its MLflow run, then its worker.

Three levels, as Ray's examples name them: `tune.worker.run_worker` (one worker) ->
`train_driver_fn` (one trial: owns the trial's MLflow run and starts its worker) -> the Tuner of
`tune.ablation` (a grid of variants x seeds) or `tune.search` (Optuna + ASHA). A trial with several
workers or a GPU gets a TorchTrainer (DDP, Ray Train's restarts of the worker group); a one-worker
CPU trial trains inside the Tune trial itself, since a TorchTrainer would add its 15-25 s start to
every trial and its 2 s report polling to every epoch. The trial's MLflow run is found again by a
tag, so a retried or resumed trial continues its own run; the Train run is named by the trial key,
so a rerun resumes from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path

import ray.train
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from harness import storage, tracking
from harness.config import ComputeConfig
from harness.results import TrialResult, TrialSpec
from harness.search_space import tune_fields
from harness.tune.session import worker_resources


def in_trial(compute: ComputeConfig) -> bool:
    """One CPU worker trains inside the Tune trial; several workers or a GPU get a TorchTrainer."""
    return compute.workers_per_trial == 1 and not compute.gpus_per_worker


def trial_resources(compute: ComputeConfig) -> dict[str, float]:
    """What the Tune trial itself asks for: the worker's CPUs when it trains in the trial, else a
    sliver (a function trial cannot ask for 0 CPU) so the CPUs go to the TorchTrainer's workers."""
    return {"CPU": float(compute.cpus_per_worker)} if in_trial(compute) else {"CPU": 0.01}


def trial_failures(compute: ComputeConfig) -> int:
    """Tune's retries of a trial: a one-worker CPU trial's restarts from its last checkpoint are
    Tune's; a TorchTrainer restarts its own worker group, and Tune retries its driver once."""
    return compute.max_failures if in_trial(compute) else 1


def tune_result(spec: TrialSpec, metrics: dict) -> dict:
    """A report as Tune must see it. In a search, with the objective and scheduler fields: Tune
    refuses a result without the searcher's and the scheduler's metric, and ASHA must compare
    trials at epochs of one stage only."""
    out = dict(metrics)
    if spec.objectives:
        out.update(tune_fields(out, spec.objectives, spec.epoch_metric))
    # A report with done=1 makes Tune stop (kill) the trial actor while fit() still shuts the worker
    # group down, and the group's placement group would have to be reclaimed by Train's cleaner.
    # Without it the trial ends when train_driver_fn returns.
    out.pop("done", None)
    return out


class ReportCallback(TuneReportCallback):
    """Rank 0's report of a TorchTrainer forwarded to Tune, as `tune_result` makes it."""

    def __init__(self, spec: TrialSpec):
        super().__init__()
        self.spec = spec

    def after_report(self, run_context, metrics, checkpoint):
        super().after_report(run_context, [tune_result(self.spec, metrics[0]), *metrics[1:]], checkpoint)


def _trainer(spec: TrialSpec) -> TorchTrainer:
    from harness.tune.worker import train_loop_per_worker
    compute = spec.cfg.compute
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=spec.to_tune(),
        scaling_config=ray.train.ScalingConfig(num_workers=compute.workers_per_trial,
                                               use_gpu=compute.gpus_per_worker > 0,
                                               resources_per_worker=worker_resources(compute)),
        run_config=ray.train.RunConfig(
            name=spec.train_run, storage_path=spec.ray_storage,
            failure_config=ray.train.FailureConfig(max_failures=compute.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
            callbacks=[ReportCallback(spec)],
        ),
    )


def train_driver_fn(config: dict) -> None:
    """A Tune function trial: the spec in `config`, one MLflow run, one worker (or a TorchTrainer's)."""
    from harness.tune.worker import run_in_trial
    started = time.time()
    spec = TrialSpec.from_tune(config)
    cfg = spec.cfg
    run_id = tracking.trial_run(spec.tracking_uri, spec.experiment_id, spec.parent_run_id, spec.key,
                                run_name=spec.key, tags={**spec.tags, "task": ",".join(spec.tasks),
                                                         "profile": cfg.profile}, params=spec.params)
    spec = dataclasses.replace(spec, run_id=run_id)
    results = Path(spec.results)
    remote = storage.remote_of(spec.storage_uri)
    try:
        if in_trial(cfg.compute):
            run_in_trial(spec, lambda metrics: tune_result(spec, metrics))
        else:
            _trainer(spec).fit()
    except BaseException:
        close_failed(spec, remote)
        raise
    closer = trial_closer(spec, remote)
    if spec.failure_path.is_file():  # diverged: ended without a result, on purpose not retried
        closer.set_terminated("FAILED")
        closer.flush()
        storage.push_trial(remote, results, spec.folder, spec.key, result=False)
        return
    # Orchestration overhead: this trial's wall time through Tune (and Train) next to its stages'
    # own work inside the worker (waiting on reports and MLflow excluded).
    path = spec.result_path
    if remote and not storage.pull_trial_result(remote, results, spec.folder, spec.key):
        path.unlink(missing_ok=True)  # a stale copy from an earlier invocation on this node
    result = TrialResult.read(path)
    if result is not None:
        wall = time.time() - started
        dataclasses.replace(result, trial_wall_s=wall).write(path)
        closer.log_metrics({"trial/wall_s": wall, "trial/stages_s": result.seconds,
                            "trial/overhead": wall / max(result.seconds, 1e-9)})
    closer.set_terminated("FINISHED")
    closer.flush()
    storage.push_trial(remote, results, spec.folder, spec.key)


def trial_closer(spec: TrialSpec, remote) -> tracking.SafeLogger:
    """The SafeLogger a trial ends its MLflow run through, on the trial's pending file: a tracking
    server lost mid-study must not turn a trained trial into a failed (and retried) one. With
    --storage, rank 0 may have run on another node: its queue comes first (replayed in order)."""
    storage.pull_trial_folder(remote, Path(spec.results), spec.folder, spec.key)
    return tracking.SafeLogger(spec.tracking_uri, spec.run_id, spec.trial_dir / "pending")


def close_failed(spec: TrialSpec, remote) -> None:
    """A trial whose TorchTrainer failed: its run ends FAILED (queued if MLflow is away) and, with
    --storage, its folder goes to the remote; a storage error never hides the trial's own."""
    try:
        failed = trial_closer(spec, remote)
    except storage.REMOTE_ERRORS:  # the end status matters more than merging the queue
        failed = trial_closer(spec, storage.NO_REMOTE)
        remote = storage.NO_REMOTE
    failed.set_terminated("FAILED")
    failed.flush()
    with contextlib.suppress(*storage.REMOTE_ERRORS):
        storage.push_trial(remote, Path(spec.results), spec.folder, spec.key, result=False)
