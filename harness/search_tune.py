"""A search as one Ray Tune experiment: OptunaSearch (TPE) + ASHA over `harness.search` specs.

DESIGN.md "The harness". The three levels of the ablation driver (harness.study) are reused: a
Tune function trial (`search_trial`) builds one TorchTrainer per trial whose workers run
`harness.worker.train_loop_per_worker` (every stage of `harness.pipeline.Trial`, so trials that
share a pretraining reuse it through the stage cache).

What a search adds, and why (shared/NOTES-ray-mlflow-optuna.md):
- `SearchReportCallback` adds `harness.search.tune_fields` to every worker report: Tune refuses a
  result without the searcher's/scheduler's metric, and ASHA must compare trials at epochs of one
  stage only.
- `PruneAwareOptunaSearch`: Ray tells Optuna COMPLETE (with the partial value) for a trial ASHA
  stopped, which biases TPE. A Tune Callback cannot repair that: TuneController.stop_trial calls
  the searcher's on_trial_complete before the callbacks' and Optuna refuses to change a finished
  trial. So the searcher itself tells PRUNED when the trial's last result is not its final report
  (stage "done"); Optuna then keeps the last intermediate value (the scheduler's metric per epoch,
  reported with step = that epoch) for TPE's ranking of pruned trials.
- The Optuna study is persistent (RDB storage, sqlite:////abs/RESULTS/search/NAME/optuna.db, study
  name "search-NAME"). Resume is "a new Tuner over the same study", not Tuner.restore: the study
  holds every finished trial (they are never rerun, TPE learns from all of them), and a trial a
  dead driver left RUNNING is marked FAIL (interrupted) and its parameters enqueued again under the
  same key, so it reuses its MLflow run, its Train checkpoint and the stage cache. The study, not
  Tune's experiment folder, is the record: extending a search (`--trials N` more) is the same code
  path, and nothing depends on pickled Tune state surviving a crash.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.search.optuna import OptunaSearch

from harness import search as S
from harness.config import ConfigError, ExperimentConfig, apply_overrides, flatten

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Ray pieces
# --------------------------------------------------------------------------------------------

class SearchReportCallback(TuneReportCallback):
    """Rank 0's report, plus the objective and scheduler fields, forwarded to Tune."""

    def __init__(self, metrics: tuple[str, ...], epoch_metric: str):
        super().__init__()
        self.metrics = tuple(metrics)
        self.epoch_metric = epoch_metric

    def after_report(self, run_context, metrics, checkpoint):
        first = {**metrics[0], **S.tune_fields(metrics[0], self.metrics, self.epoch_metric)}
        # The worker's final report says done=1; Tune would then stop (kill) the trial actor while
        # fit() still shuts the worker group down, and the group's placement group would have to be
        # reclaimed by Train's cleaner. Without it the trial ends when search_trial returns.
        first.pop("done", None)
        super().after_report(run_context, [first, *metrics[1:]], checkpoint)


class PruneAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that records trials a scheduler stopped as PRUNED (see the module docstring)."""

    def __init__(self, *args, intermediate: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self._intermediate = intermediate

    def on_trial_result(self, trial_id: str, result: dict):
        # Optuna's intermediate values: the scheduler's metric at its stage's epochs (Ray's own
        # reports every result at step training_iteration, pretraining included).
        if (not self._intermediate or isinstance(self.metric, list) or trial_id in self._completed_trials
                or S.EPOCH_KEY not in result or trial_id not in self._ot_trials):
            return
        value = result.get(S.VALUE_KEY)
        if isinstance(value, (int, float)) and math.isfinite(value):
            with warnings.catch_warnings():  # a retried trial reports an epoch twice: Optuna keeps the first
                warnings.simplefilter("ignore")
                self._ot_trials[trial_id].report(float(value), int(result[S.EPOCH_KEY]))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if trial_id not in self._ot_trials:
            return None  # never suggested (removed while pending): nothing was asked of Optuna
        if trial_id in self._completed_trials:
            return super().on_trial_complete(trial_id, result, error)
        ot_trial = self._ot_trials[trial_id]
        if error:
            return super().on_trial_complete(trial_id, result, error)
        if result and result.get("stage") == "done":
            names = self.metric if isinstance(self.metric, list) else [self.metric]
            values = [result.get(n) for n in names]
            if all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                return super().on_trial_complete(trial_id, result, error)
            log.warning("trial %s finished without a value for %s: recorded as FAIL", trial_id, names)
            self._ot_study.tell(ot_trial, state=TrialState.FAIL)
        elif result and result.get("done"):
            # Stopped by the scheduler (Tune sets done on the result it decided STOP on).
            self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
        else:
            # Removed without a result or a decision (the experiment ended): leave it RUNNING; the
            # next invocation marks it interrupted and retries its parameters.
            pass
        self._completed_trials.add(trial_id)


def make_scheduler(sched: S.SchedulerSpec):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    if sched.type != "asha":
        return FIFOScheduler()
    # max_t one below the stage's epochs: no rung at its last epoch, so a trial that trained to the
    # end always gets its final (beam search) evaluation; stop_last_trials=False, else ASHA stops
    # every trial at max_t, before its final report.
    return ASHAScheduler(time_attr=S.EPOCH_KEY, metric=S.VALUE_KEY, mode=sched.mode,
                         max_t=max(sched.grace_period, sched.max_t - 1), grace_period=sched.grace_period,
                         reduction_factor=sched.reduction_factor, stop_last_trials=False)


def search_trial(config: dict) -> None:
    """One Tune trial: the sampled overrides on the base config, one TorchTrainer, one MLflow run."""
    import ray.train
    from ray.train.torch import TorchTrainer

    from harness import tracking
    from harness.worker import config_from_dict, train_loop_per_worker

    ctx, t = config["ctx"], config["trial"]
    sampled = {k: v for k, v in config.items() if k not in ("ctx", "trial")}
    cfg = apply_overrides(config_from_dict(ctx["base"]), sampled, f"trial {t['key']}")
    nested = dataclasses.asdict(cfg)
    config_key = hashlib.sha256(json.dumps(nested, sort_keys=True).encode()).hexdigest()[:16]
    uri = ctx["tracking_uri"]
    run_id = tracking.trial_run(uri, ctx["experiment_id"], ctx["parent_run_id"], t["key"], run_name=t["key"],
                                tags={"search": ctx["search"], "optuna.number": t["number"],
                                      "task": ",".join(ctx["tasks"]), "profile": cfg.profile},
                                params={k: str(v) for k, v in flatten(cfg).items()})
    compute = cfg.compute
    resources = {"CPU": float(compute.cpus_per_worker)}
    if compute.gpus_per_worker:
        resources["GPU"] = float(compute.gpus_per_worker)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"cfg": nested, "tasks": ctx["tasks"], "results": ctx["results"],
                           "ablation": ctx["folder"], "trial_key": t["key"], "variant": t["key"],
                           "config_key": config_key, "tracking_uri": uri, "run_id": run_id,
                           "storage_uri": ctx["storage_uri"]},
        scaling_config=ray.train.ScalingConfig(num_workers=compute.workers_per_trial,
                                               use_gpu=compute.gpus_per_worker > 0, resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            # Named by the study and the trial key: a retried or re-enqueued trial resumes its Train run.
            name=f"{ctx['study_tag']}-{t['key']}", storage_path=ctx["storage"],
            failure_config=ray.train.FailureConfig(max_failures=compute.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
            callbacks=[SearchReportCallback(tuple(ctx["metrics"]), ctx["epoch_metric"])],
        ),
    )
    # The run's end goes through the trial's pending file, as in harness.study.tune_trial: a tracking
    # store lost mid-search must not turn a trained trial into a failed one. With --storage this
    # actor may run on another node than the trial's rank 0: the folder is pulled first, pushed after.
    from harness.storage import push_trial, remote_of
    from harness.study import close_failed, trial_closer
    results = Path(ctx["results"])
    remote = remote_of(ctx["storage_uri"])
    try:
        trainer.fit()
    except BaseException:
        close_failed(uri, run_id, results, ctx["folder"], t["key"], remote)
        raise
    closer = trial_closer(uri, run_id, results, ctx["folder"], t["key"], remote)
    closer.set_terminated("FINISHED")
    closer.flush()
    push_trial(remote, results, ctx["folder"], t["key"], result=False)  # rank 0 uploaded the result


# --------------------------------------------------------------------------------------------
# The Optuna study
# --------------------------------------------------------------------------------------------

def storage_url(folder: Path) -> str:
    return f"sqlite:///{(Path(folder) / 'optuna.db').resolve()}"


def open_study(spec: S.SearchSpec, folder: Path, fp: str) -> optuna.Study:
    """The persistent study of this search; refuses one made with other settings."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(storage_url(folder))
    directions = ["minimize" if m == "min" else "maximize" for m in spec.modes]
    name = f"search-{spec.name}"
    try:
        existing = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        existing = None
    if existing is not None:
        old = existing.user_attrs.get("fingerprint")
        if old != fp or [d.name.lower() for d in existing.directions] != directions:
            raise ConfigError(
                f"{folder / 'optuna.db'} holds study {name} made with other settings (profile, overrides, --set, "
                f"space or metric changed); use another --results folder or delete {folder}")
        return existing
    study = optuna.create_study(study_name=name, storage=storage, directions=directions, load_if_exists=True)
    study.set_user_attr("fingerprint", fp)
    study.set_user_attr("created", time.strftime("%Y%m%d-%H%M%S"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # set_metric_names is experimental in some Optuna versions
        study.set_metric_names(list(spec.metrics))
    for point in spec.enqueue:
        study.enqueue_trial(point)
    return study


def recover_interrupted(study: optuna.Study) -> list[str]:
    """Trials left RUNNING (a driver that died, an experiment that ended): FAIL + interrupted, and
    their parameters enqueued again under the same key. Returns the keys."""
    keys = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        key = t.user_attrs.get(S.KEY_ATTR) or S.trial_key(t.number)
        study._storage.set_trial_user_attr(t._trial_id, S.INTERRUPTED_ATTR, True)
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        if t.params:
            study.enqueue_trial(t.params, user_attrs={S.KEY_ATTR: key})
        keys.append(key)
    return keys


def counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that used up the budget: complete, pruned, or failed on their own."""
    return [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            or (t.state == TrialState.FAIL and not t.user_attrs.get(S.INTERRUPTED_ATTR))]


@contextlib.contextmanager
def exclusive(folder: Path):
    """One driver per search folder: a second one would mark the first one's trials interrupted."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"another run_search.py is running the search in {folder}") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------------------------

def run(spec: S.SearchSpec, base: ExperimentConfig, *, results: Path, tracking_uri: str, address: str | None,
        trials: int | None, max_concurrent: int | None, resume: bool, seed: int, command: str, say=print,
        remote=None) -> dict:
    """`remote` (harness.storage.Remote, `--storage`): Ray's run storage, the stage cache, the trial
    folders and the final files go there as in harness.study.run; the Optuna study stays here."""
    from harness import storage, tracking
    from harness.pipeline import check_window, prepare, stage_keys
    from harness.stages import StageCache
    from harness.study import git_commit

    results = results.resolve()
    folder = results / "search" / spec.name
    with exclusive(folder):
        state_path = folder / "state.json"
        state = json.loads(state_path.read_text()) if state_path.is_file() else {}
        if resume and not state:
            raise ConfigError(f"nothing to resume: {state_path} does not exist (run without --resume first)")

        # Data once, in the driver: a bad source or a window longer than a sequence fails here.
        cache = StageCache(results / "cache", remote)
        corpus = prepare(base.data.source, base, cache, stage_keys(base, spec.tasks)["prepare"], say)
        check_window(corpus, _largest(spec, "pretrain.window", base.pretrain.window), base.data.source)

        fp = S.fingerprint(spec, base)
        study = open_study(spec, folder, fp)
        interrupted = recover_interrupted(study)
        if interrupted:
            say(f"{len(interrupted)} trial(s) were interrupted; retrying their parameters: {', '.join(interrupted)}")
        done_before = len(counted(study))
        if resume:
            remaining = trials if trials is not None else max(0, int(state.get("target", 0)) - done_before)
        else:
            remaining = trials if trials is not None else spec.trials
        if remaining < 0:
            raise ConfigError(f"--trials must be >= 0, got {remaining}")

        experiment_id = tracking.ensure_experiment(tracking_uri, f"search-{spec.name}",
                                                   storage.artifact_root(results, tracking_uri, remote))
        same_store = state.get("tracking_uri") == tracking_uri and state.get("parent_run_id")
        if resume and same_store:
            parent = state["parent_run_id"]
            tracking.resume_parent(tracking_uri, parent)
            tracking.close_dangling(tracking_uri, experiment_id, parent, keep=set(interrupted))
            invocation = state["invocation"]
            say(f"resuming search {spec.name}: MLflow run {parent}; {done_before} trial(s) done, {remaining} to run")
        else:
            if same_store:
                tracking.close_dangling(tracking_uri, state["experiment_id"], state["parent_run_id"], keep=set())
            invocation = time.strftime("%Y%m%d-%H%M%S")
            corpus_name = base.data.source
            parent = tracking.start_parent(tracking_uri, experiment_id, f"{spec.name} {invocation}", tags={
                "command": command, "profile": base.profile, "corpus": corpus_name,
                "synthetic_corpus": str(corpus_name.startswith("synth")), "git_commit": git_commit(),
                "search": spec.name, "question": spec.question, "metric": ",".join(spec.metrics),
                "mode": ",".join(spec.modes), "scheduler": spec.scheduler.type, "optuna_study": f"search-{spec.name}",
                "optuna_storage": storage_url(folder)})
            tracking.log_params(tracking_uri, parent, {f"base.{k}": str(v) for k, v in flatten(base).items()
                                                       if k not in spec.space})
            if done_before:
                say(f"search {spec.name}: the study has {done_before} finished trial(s); running {remaining} more")
        state = {"parent_run_id": parent, "experiment_id": experiment_id, "tracking_uri": tracking_uri,
                 "invocation": invocation, "target": done_before + remaining, "fingerprint": fp}
        state_path.write_text(json.dumps(state, indent=1))

        if remaining:
            _tune(spec, base, study, folder, results, tracking_uri, experiment_id, parent, address, remaining,
                  max_concurrent, seed, say, remote)
            recover_interrupted(study)  # trials the experiment left RUNNING: retried by --resume
        from mlflow.exceptions import MlflowException

        from harness.study import replay_pending
        # The trials ran on any node: their logs, results and pending MLflow queues are on the remote.
        keys = sorted({t.user_attrs.get(S.KEY_ATTR) or S.trial_key(t.number)
                       for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING})
        try:
            storage.pull_trials(remote, results, f"search/{spec.name}", keys)
        except storage.REMOTE_ERRORS as exc:
            say(f"warning: cannot read the trials' folders from --storage {remote.uri}: {storage.reason(exc)}")
        try:
            pending = replay_pending(results, f"search/{spec.name}", tracking_uri)
        except (MlflowException, tracking.TrackingError, OSError):
            pending = -1
        summary = finalize(spec, base, study, folder, tracking_uri, experiment_id, parent, say)
        if pending and "tracking_error" not in summary:
            summary["tracking_error"] = (f"trial log entries could not be sent to {tracking_uri}; they wait under "
                                         f"{folder / 'trials'}/*/pending (rerun with --resume)")
        if "tracking_error" not in summary:
            tracking.set_terminated(tracking_uri, parent, "FINISHED" if summary["complete"] else "FAILED")
        error = storage.publish(remote, results, f"search/{spec.name}", keys, summary["files"])
        if error:
            summary["storage_error"] = error
        summary["parent_run_id"] = parent
        summary["unfinished"] = max(0, state["target"] - len(counted(study)))
        return summary


def _largest(spec: S.SearchSpec, key: str, default: Any) -> Any:
    d = spec.space.get(key)
    if d is None:
        return default
    if d.kind == "choice":
        return max(d.choices)
    return d.high if not isinstance(d.high, str) else default


def _tune(spec: S.SearchSpec, base: ExperimentConfig, study: optuna.Study, folder: Path, results: Path, uri: str,
          experiment_id: str, parent: str, address: str | None, remaining: int, max_concurrent: int | None,
          seed: int, say, remote=None) -> None:
    import ray

    from harness.study import init_ray

    started = init_ray(None if address in (None, "", "local") else address)
    try:
        _run_tuner(spec, base, study, folder, results, uri, experiment_id, parent, remaining, max_concurrent,
                   seed, started, say, remote)
    finally:
        if started:
            ray.shutdown()


def _run_tuner(spec: S.SearchSpec, base: ExperimentConfig, study: optuna.Study, folder: Path, results: Path,
               uri: str, experiment_id: str, parent: str, remaining: int, max_concurrent: int | None, seed: int,
               started: bool, say, remote=None) -> None:
    import ray
    from ray import tune

    from harness.storage import ray_storage

    from harness.study import make_live_view

    c = base.compute
    per_trial = c.workers_per_trial * c.cpus_per_worker
    cpus = ray.cluster_resources().get("CPU", 1) - (1 if started else 0)  # minus the drivers' slot
    concurrent = max_concurrent or spec.max_concurrent or max(1, int(cpus // per_trial))
    sched = spec.scheduler
    objective_keys = spec.objective_keys()
    # Seeded per invocation: the same seed again would redraw the first invocation's random start.
    sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials), n_startup_trials=spec.startup_trials)
    searcher = PruneAwareOptunaSearch(
        space=S.DefineByRun(spec.space, spec.fixed),
        metric=objective_keys if spec.multi else objective_keys[0],
        mode=list(spec.modes) if spec.multi else spec.modes[0],
        sampler=sampler, study_name=study.study_name, storage=study._storage,
        intermediate=bool(sched.metric) and not spec.multi and sched.mode == spec.modes[0])
    scheduler = make_scheduler(sched)
    ctx = {"base": dataclasses.asdict(base), "tracking_uri": uri, "experiment_id": experiment_id,
           "parent_run_id": parent, "results": str(results), "folder": f"search/{spec.name}",
           "search": spec.name, "tasks": list(spec.tasks), "metrics": list(spec.metrics),
           "epoch_metric": sched.metric,
           # Train checkpoints where every node reaches them: URI/search/NAME/ray with --storage.
           "storage": ray_storage(remote, results, f"search/{spec.name}/ray"),
           "storage_uri": remote.uri if remote is not None else None,
           "study_tag": f"{spec.name}-{study.user_attrs.get('created', 'study')}"}
    say(f"search {spec.name}: {remaining} trial(s), up to {concurrent} at a time, TPE + "
        f"{'ASHA on ' + sched.metric if sched.type == 'asha' else 'FIFO (no early stopping)'}; "
        f"{c.workers_per_trial} worker(s) x {c.cpus_per_worker:g} CPU"
        f"{f' + {c.gpus_per_worker:g} GPU' if c.gpus_per_worker else ''} each")
    tuner = tune.Tuner(
        tune.with_resources(search_trial, {"CPU": 0.01}),
        param_space={"ctx": ctx},
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=remaining,
                                    max_concurrent_trials=concurrent, reuse_actors=False),
        run_config=tune.RunConfig(name=f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                                  storage_path=ctx["storage"],
                                  failure_config=tune.FailureConfig(max_failures=1), verbose=0,
                                  callbacks=[make_live_view(remaining, spec.tasks)]),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        tuner.fit()


# --------------------------------------------------------------------------------------------
# After the trials: best configuration, importances, plots, MLflow
# --------------------------------------------------------------------------------------------

_STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED", TrialState.FAIL: "FAILED"}


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def finalize(spec: S.SearchSpec, base: ExperimentConfig, study: optuna.Study, folder: Path, uri: str,
             experiment_id: str, parent: str, say=print) -> dict:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mlflow import MlflowClient

    from harness import tracking

    trials = [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    interrupted = [t for t in trials if t.state == TrialState.FAIL and t.user_attrs.get(S.INTERRUPTED_ATTR)]
    failed = [t for t in trials if t.state == TrialState.FAIL and t not in interrupted]
    key_of = {t.number: t.user_attrs.get(S.KEY_ATTR) or S.trial_key(t.number) for t in trials}

    rows = [{"trial": key_of[t.number], "number": t.number,
             "state": "INTERRUPTED" if t in interrupted else t.state.name,
             # a pruned trial's value is its last intermediate value (the scheduler's metric)
             **{m: (t.values[i] if t.values else None) for i, m in enumerate(spec.metrics)},
             **{k: t.params.get(k) for k in spec.space},
             "seconds": (t.duration.total_seconds() if t.duration else None)} for t in trials]
    files: list[Path] = []
    summary: dict[str, Any] = {"trials": len(trials), "complete": len(complete), "pruned": len(pruned),
                               "failed": len(failed), "interrupted": len(interrupted), "folder": str(folder),
                               "rows": rows}
    header_common = [f"Search `{spec.name}` ({spec.where}), profile {spec.profile}: {spec.question}",
                     f"{len(trials)} trial(s): {len(complete)} complete, {len(pruned)} pruned, {len(failed)} failed"
                     + (f", {len(interrupted)} interrupted and retried." if interrupted else ".")]
    best_path = folder / "best.yaml"
    if complete and not spec.multi:
        best = study.best_trial
        over = S.best_overrides(best.params, base)
        ablation = S.reuse_ablation(set(over), spec.tasks)
        command = (f"python harness/run_ablation.py {ablation or 'ABLATION'} --profile {spec.profile} "
                   f"{S.set_args(over)}")
        S.write_best_yaml(best_path, header_common + [
            f"Best: {key_of[best.number]}, {spec.metrics[0]} = {_fmt(best.value)}.",
            "Dotted overrides of the profile (the keys of --set and of an ablation's `overrides:`). Reuse:",
            f"  {command}", ""], over)
        summary.update({"best": {"trial": key_of[best.number], "values": [best.value], "overrides": over},
                        "command": command})
    elif complete:
        front = sorted(study.best_trials, key=lambda t: t.number)
        entries = [(key_of[t.number], ", ".join(f"{m} = {_fmt(v)}" for m, v in zip(spec.metrics, t.values)),
                    S.best_overrides(t.params, base)) for t in front]
        S.write_best_yaml(best_path, header_common + [
            f"Pareto front: {len(front)} trial(s). Each entry is one trial's dotted overrides of the profile;",
            "the file is an ablation's `variants:` as it stands.", ""], entries)
        summary.update({"pareto": [{"trial": n, "values": list(t.values), "overrides": o}
                                   for (n, _, o), t in zip(entries, front)]})
    if complete:
        files.append(best_path)

    importances: dict[str, dict[str, float]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's matplotlib plots are experimental
        from optuna.visualization import matplotlib as ovm
        if len(complete) >= 2:
            for i, m in enumerate(spec.metrics):
                try:
                    importances[m] = optuna.importance.get_param_importances(
                        study, target=(lambda t, i=i: t.values[i]) if spec.multi else None)
                except (RuntimeError, ValueError) as exc:
                    say(f"parameter importances for {m} could not be computed: {exc}")
        plots = []
        if complete:
            for i, m in enumerate(spec.metrics):
                suffix = f"_{m.replace('/', '_')}" if spec.multi else ""
                target = (lambda t, i=i: t.values[i]) if spec.multi else None
                plots.append((f"history{suffix}.png", lambda target=target, m=m: ovm.plot_optimization_history(
                    study, target=target, target_name=m)))
                if m in importances:
                    plots.append((f"importances{suffix}.png", lambda target=target, m=m: ovm.plot_param_importances(
                        study, target=target, target_name=m)))
            if spec.multi and len(spec.metrics) in (2, 3):
                plots.append(("pareto_front.png", lambda: ovm.plot_pareto_front(study, target_names=list(spec.metrics))))
        for name, draw in plots:
            try:
                ax = draw()
                fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
                fig.set_size_inches(8, 5)
                fig.tight_layout()
                fig.savefig(folder / name, dpi=100)
                plt.close(fig)
                files.append(folder / name)
            except (RuntimeError, ValueError) as exc:
                say(f"plot {name} skipped: {exc}")
    summary["importances"] = importances
    if importances:
        (folder / "importances.json").write_text(json.dumps(importances, indent=1))
        files.append(folder / "importances.json")

    _write_csv(folder / "trials.csv", rows)
    files.append(folder / "trials.csv")
    summary["files"] = [str(f) for f in files]

    # The files are on disk; a tracking store lost by now is reported in one line, not a traceback.
    from mlflow.exceptions import MlflowException
    try:
        # The trial runs of this parent follow the study's verdict (a pruned trial's actor was
        # killed before it could end its run).
        client = MlflowClient(tracking_uri=uri)
        for t in trials:
            if t.state not in _STATUS or t in interrupted:  # its retry carries the same key and run
                continue
            run_id = tracking.find_trial_run(uri, experiment_id, parent, key_of[t.number])
            if run_id is None:
                continue
            tags = {"optuna.state": t.state.name, "optuna.number": t.number}
            if t.values:
                tags.update({f"objective.{m}": _fmt(v) for m, v in zip(spec.metrics, t.values)})
            tracking.set_tags(uri, run_id, tags)
            if client.get_run(run_id).info.status != _STATUS[t.state]:
                tracking.set_terminated(uri, run_id, _STATUS[t.state])
        # Files and log_dict, not mlflow's log_table: that appends to an existing table, so a
        # resumed parent run would list every trial twice.
        tracking.log_dict(uri, parent, {"rows": rows}, "trials.json")
        for f in files:
            tracking.log_artifact(uri, parent, f)
        metrics = {"trials_complete": len(complete), "trials_pruned": len(pruned), "trials_failed": len(failed)}
        if "best" in summary:
            metrics[f"best/{spec.metrics[0]}"] = summary["best"]["values"][0]
        tracking.log_metrics(uri, parent, metrics)
    except (MlflowException, tracking.TrackingError, OSError) as exc:
        summary["tracking_error"] = (f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}; "
                                     f"the files are written, MLflow is not up to date")
    return summary


def _write_csv(path: Path, rows: list[dict]) -> None:
    import csv
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def print_summary(spec: S.SearchSpec, summary: dict, uri: str, stream=sys.stdout) -> None:
    w = stream.write
    w(f"\nsearch {spec.name}: {summary['trials']} trial(s): {summary['complete']} complete, "
      f"{summary['pruned']} pruned, {summary['failed']} failed"
      + (f", {summary['interrupted']} interrupted and retried" if summary["interrupted"] else "") + "\n")
    if "best" in summary:
        b = summary["best"]
        w(f"best: {b['trial']}  {spec.metrics[0]} = {_fmt(b['values'][0])}\n")
        for k, v in b["overrides"].items():
            w(f"  {k}: {S.yaml_scalar(v)}\n")
    if "pareto" in summary:
        w(f"Pareto front ({', '.join(f'{m} {md}' for m, md in zip(spec.metrics, spec.modes))}):\n")
        for p in summary["pareto"]:
            sampled = {k: v for k, v in p["overrides"].items() if k in spec.space}
            w(f"  {p['trial']}: {', '.join(_fmt(v) for v in p['values'])}  "
              f"{', '.join(f'{k}={S.yaml_scalar(v)}' for k, v in sampled.items())}\n")
    for m, imp in summary.get("importances", {}).items():
        w(f"importances ({m}): {', '.join(f'{k} {v:.2f}' for k, v in imp.items())}\n")
    if summary.get("files"):
        w(f"Written: {', '.join(summary['files'])}\n")
    if summary.get("command"):
        w(f"Reuse:  {summary['command']}\n")
    w(f"Compare in MLflow:  mlflow ui --backend-store-uri {uri}\n")
