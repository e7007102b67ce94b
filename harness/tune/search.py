"""A search as one Ray Tune experiment: OptunaSearch (TPE) + ASHA over a `harness.search_space` spec.

What differs from an ablation is only how trials are made: Optuna samples each trial's dotted
overrides of the base config (define-by-run, in file order) and ASHA stops the weak ones early.
Each trial is `tune.driver.train_driver_fn`, as in an ablation, so trials that share a pretraining
reuse it through the stage cache.

The Optuna study is the record, not Tune's experiment folder: resume is "a new Tuner over the same
study", not Tuner.restore. The study holds every finished trial (never rerun, TPE learns from all
of them), extending a search (`--trials N` more) is the same code path, and nothing depends on
pickled Tune state surviving a crash.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from ray import tune

from harness import folder_lock, search_space, storage, tracking
from harness.config import ConfigError, ExperimentConfig, flatten
from harness.results import TrialSpec
from harness.tune.driver import train_driver_fn, trial_failures, trial_resources
from harness.tune.invocation import Invocation
from harness.tune.live_view import LiveView
from harness.tune.optuna_adapter import (PruneAwareOptunaSearch, counted, make_scheduler, open_study,
                                         recover_interrupted, storage_url)
from harness.tune.search_results import finalize
from harness.tune.session import concurrency, describe, ray_session


def run(spec: search_space.SearchSpec, base: ExperimentConfig, *, results: Path, tracking_uri: str,
        address: str | None, trials: int | None, max_concurrent: int | None, resume: bool, seed: int, command: str,
        say=print, remote: storage.Remote | storage.NoRemote = storage.NO_REMOTE) -> dict:
    """With `--storage` Ray's run storage, the stage cache, the trial folders and the final files go
    to the remote as in an ablation; the Optuna study stays on this node (its only writer)."""
    inv = Invocation(f"search/{spec.name}", f"search-{spec.name}", results.resolve(), tracking_uri, remote, say,
                     description=f"**{spec.question}** (objective: {', '.join(f'{m} ({d})' for m, d in zip(spec.metrics, spec.modes))}; "
                                 f"searched: {', '.join(spec.space)}).\n\nRun: `python harness/run_search.py {spec.name}`.")
    folder = inv.layout.folder(inv.name)
    with folder_lock.hold(folder, say, command):
        state = inv.read_state(pull=False)
        if resume and not state:
            raise ConfigError(f"nothing to resume: {inv.state_path} does not exist (run without --resume first)")
        if resume and state.get("tracking_uri") != tracking_uri:
            raise ConfigError(f"--resume: the invocation in {inv.state_path} logged to {state.get('tracking_uri')}, "
                              f"not {tracking_uri}; pass --tracking-uri {state.get('tracking_uri')}")
        inv.check_data([(base, _largest(spec, "pretrain.window", base.pretrain.window))])

        fp = search_space.fingerprint(spec, base)
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

        corpus_name = base.data.source
        resumed = inv.start(resume, keep_on_resume=set(interrupted), tags={
            "command": command, "profile": base.profile, "corpus": corpus_name,
            "synthetic_corpus": str(corpus_name.startswith("synth")), "search": spec.name, "question": spec.question,
            "metric": ",".join(spec.metrics), "mode": ",".join(spec.modes), "scheduler": spec.scheduler.type,
            "optuna_study": f"search-{spec.name}", "optuna_storage": storage_url(folder)})
        if resumed:
            say(f"resuming search {spec.name}: MLflow run {inv.parent}; {done_before} trial(s) done, "
                f"{remaining} to run")
        else:
            tracking.log_params(tracking_uri, inv.parent, {f"base.{k}": str(v) for k, v in flatten(base).items()
                                                           if k not in spec.space})
            if done_before:
                say(f"search {spec.name}: the study has {done_before} finished trial(s); running {remaining} more")
        inv.write_state(target=done_before + remaining, fingerprint=fp)

        if remaining:
            _tune(spec, base, study, inv, address, remaining, max_concurrent, seed)
            recover_interrupted(study)  # trials the experiment left RUNNING: retried by --resume
        return _finish(spec, base, study, inv)


def _largest(spec: search_space.SearchSpec, key: str, default: Any) -> Any:
    d = spec.space.get(key)
    if d is None:
        return default
    if d.kind == "choice":
        return max(d.choices)
    return d.high if not isinstance(d.high, str) else default


def _tune(spec: search_space.SearchSpec, base: ExperimentConfig, study: optuna.Study, inv: Invocation,
          address: str | None, remaining: int, max_concurrent: int | None, seed: int) -> None:
    c = base.compute
    with ray_session(address, inv.tracking_uri) as started:
        inv.check_capacity(c, started)
        concurrent = concurrency(c, started, max_concurrent or spec.max_concurrent)
        sched = spec.scheduler
        objective_keys = spec.objective_keys()
        # Seeded per invocation: the same seed again would redraw the first invocation's random start.
        sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials), n_startup_trials=spec.startup_trials)
        searcher = PruneAwareOptunaSearch(
            space=search_space.DefineByRun(spec.space, spec.fixed),
            metric=objective_keys if spec.multi else objective_keys[0],
            mode=list(spec.modes) if spec.multi else spec.modes[0],
            sampler=sampler, study_name=study.study_name, storage=study._storage,
            intermediate=bool(sched.metric) and not spec.multi and sched.mode == spec.modes[0])
        # Train checkpoints where every node reaches them: URI/search/NAME/ray with --storage.
        ray_storage = inv.ray_storage(f"{inv.name}/ray")
        # The Optuna trial's key replaces key and variant (TrialSpec.from_tune); the Train run is
        # named by the study and that key, so a retried or re-enqueued trial resumes its Train run.
        base_spec = TrialSpec(cfg=base, tasks=spec.tasks, key="", variant="", folder=inv.name,
                              results=str(inv.results), tracking_uri=inv.tracking_uri,
                              experiment_id=inv.experiment_id, parent_run_id=inv.parent,
                              run_prefix=f"{spec.name}-{study.user_attrs.get('created', 'study')}",
                              ray_storage=ray_storage, storage_uri=inv.remote.uri, tags={"search": spec.name},
                              objectives=tuple(spec.metrics), epoch_metric=sched.metric)
        inv.say(f"search {spec.name}: {remaining} trial(s), up to {concurrent} at a time, TPE + "
                f"{'ASHA on ' + sched.metric if sched.type == 'asha' else 'FIFO (no early stopping)'}; {describe(c)}")
        tuner = tune.Tuner(
            tune.with_resources(train_driver_fn, trial_resources(c)),
            param_space=base_spec.to_tune(),
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=make_scheduler(sched), num_samples=remaining,
                                        max_concurrent_trials=concurrent, reuse_actors=True),
            run_config=tune.RunConfig(name=f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=ray_storage,
                                      failure_config=tune.FailureConfig(max_failures=trial_failures(c)), verbose=0,
                                      callbacks=[LiveView(remaining, spec.tasks)]),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            tuner.fit()


def _finish(spec: search_space.SearchSpec, base: ExperimentConfig, study: optuna.Study, inv: Invocation) -> dict:
    # The trials ran on any node: their logs, results and pending MLflow queues are on the remote.
    keys = sorted({t.user_attrs.get(search_space.KEY_ATTR) or search_space.trial_key(t.number)
                   for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING})
    try:
        storage.pull_trials(inv.remote, inv.results, inv.name, keys)
    except storage.REMOTE_ERRORS as exc:
        inv.say(f"warning: cannot read the trials' folders from --storage {inv.remote.uri}: {storage.reason(exc)}")
    try:
        pending = inv.replay_pending()
    except tracking.ERRORS:
        pending = -1
    folder = inv.layout.folder(inv.name)
    summary = finalize(spec, base, study, folder, inv.tracking_uri, inv.experiment_id, inv.parent, inv.say)
    if pending and "tracking_error" not in summary:
        summary["tracking_error"] = (f"trial log entries could not be sent to {inv.tracking_uri}; they wait under "
                                     f"{folder / 'trials'}/*/pending (rerun with --resume)")
    if "tracking_error" not in summary:
        inv.close_parent("FINISHED" if summary["complete"] else "FAILED")
    error = inv.publish(keys, summary["files"])
    if error:
        summary["storage_error"] = error
    summary["parent_run_id"] = inv.parent
    summary["experiment_id"] = inv.experiment_id
    summary["unfinished"] = max(0, inv.state["target"] - len(counted(study)))
    return summary
