"""One Tune trial, for ablations and searches alike: its MLflow run and the TorchTrainer of its workers.

Three levels, as Ray's examples name them: `tune.worker.train_loop_per_worker` (one worker) ->
`train_driver_fn` (one trial: builds the TorchTrainer, owns the trial's MLflow run) -> the Tuner of
`tune.ablation` (a grid of variants x seeds) or `tune.search` (Optuna + ASHA). The trial's run is
found again by a tag, so a retried or resumed trial continues its own run; the Train run is named
by the trial key, so a rerun resumes from its last checkpoint.
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
from harness.results import TrialResult, TrialSpec
from harness.search_space import tune_fields
from harness.tune.session import worker_resources


class ReportCallback(TuneReportCallback):
    """Rank 0's report forwarded to Tune; in a search, with the objective and scheduler fields:
    Tune refuses a result without the searcher's and the scheduler's metric, and ASHA must compare
    trials at epochs of one stage only."""

    def __init__(self, objectives: tuple[str, ...], epoch_metric: str):
        super().__init__()
        self.objectives, self.epoch_metric = tuple(objectives), epoch_metric

    def after_report(self, run_context, metrics, checkpoint):
        first = dict(metrics[0])
        if self.objectives:
            first.update(tune_fields(first, self.objectives, self.epoch_metric))
        # A report with done=1 makes Tune stop (kill) the trial actor while fit() still shuts the
        # worker group down, and the group's placement group would have to be reclaimed by Train's
        # cleaner. Without it the trial ends when train_driver_fn returns.
        first.pop("done", None)
        super().after_report(run_context, [first, *metrics[1:]], checkpoint)


def train_driver_fn(config: dict) -> None:
    """A Tune function trial: the spec in `config`, one TorchTrainer, one MLflow run."""
    from harness.tune.worker import train_loop_per_worker
    started = time.time()
    spec = TrialSpec.from_tune(config)
    cfg = spec.cfg
    run_id = tracking.trial_run(spec.tracking_uri, spec.experiment_id, spec.parent_run_id, spec.key,
                                run_name=spec.key, tags={**spec.tags, "task": ",".join(spec.tasks),
                                                         "profile": cfg.profile}, params=spec.params)
    spec = dataclasses.replace(spec, run_id=run_id)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=spec.to_tune(),
        scaling_config=ray.train.ScalingConfig(num_workers=cfg.compute.workers_per_trial,
                                               use_gpu=cfg.compute.gpus_per_worker > 0,
                                               resources_per_worker=worker_resources(cfg.compute)),
        run_config=ray.train.RunConfig(
            name=spec.train_run, storage_path=spec.ray_storage,
            failure_config=ray.train.FailureConfig(max_failures=cfg.compute.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
            callbacks=[ReportCallback(spec.objectives, spec.epoch_metric)],
        ),
    )
    results = Path(spec.results)
    remote = storage.remote_of(spec.storage_uri)
    try:
        trainer.fit()
    except BaseException:
        close_failed(spec, remote)
        raise
    closer = trial_closer(spec, remote)
    # Orchestration overhead: this trial's wall time through Tune and Train next to the time its
    # stages took inside the worker (what the same stages cost in-process).
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
