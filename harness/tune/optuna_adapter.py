"""Where this harness meets Ray's and Optuna's internals: the searcher, the scheduler, the study.

- `PruneAwareOptunaSearch`: Ray tells Optuna COMPLETE (with the partial value) for a trial ASHA
  stopped, which biases TPE. A Tune Callback cannot repair that: TuneController.stop_trial calls
  the searcher's on_trial_complete before the callbacks' and Optuna refuses to change a finished
  trial. So the searcher itself tells PRUNED when the trial's last result is not its final report
  (stage "done"); Optuna then keeps the last intermediate value (the scheduler's metric per epoch,
  reported with step = that epoch) for TPE's ranking of pruned trials. It overrides OptunaSearch's
  private state (`_ot_trials`, `_completed_trials`, `_ot_study`): tests/test_search.py pins it to
  the installed Ray.
- The Optuna study is persistent (RDB storage, sqlite:////abs/RESULTS/search/NAME/optuna.db, study
  name "search-NAME"). A trial a dead driver left RUNNING is marked FAIL (interrupted) and its
  parameters enqueued again under the same key, so it reuses its MLflow run, its Train checkpoint
  and the stage cache.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from harness import search_space
from harness.config import ConfigError

log = logging.getLogger(__name__)


class PruneAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that records trials a scheduler stopped as PRUNED (see the module docstring)."""

    def __init__(self, *args, intermediate: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self._intermediate = intermediate

    def on_trial_result(self, trial_id: str, result: dict):
        # Optuna's intermediate values: the scheduler's metric at its stage's epochs (Ray's own
        # reports every result at step training_iteration, pretraining included).
        if (not self._intermediate or isinstance(self.metric, list) or trial_id in self._completed_trials
                or search_space.EPOCH_KEY not in result or trial_id not in self._ot_trials):
            return
        value = result.get(search_space.VALUE_KEY)
        if isinstance(value, (int, float)) and math.isfinite(value):
            with warnings.catch_warnings():  # a retried trial reports an epoch twice: Optuna keeps the first
                warnings.simplefilter("ignore")
                self._ot_trials[trial_id].report(float(value), int(result[search_space.EPOCH_KEY]))

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


def make_scheduler(sched: search_space.SchedulerSpec):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    if sched.type != "asha":
        return FIFOScheduler()
    # max_t one below the stage's epochs: no rung at its last epoch, so a trial that trained to the
    # end always gets its final (beam search) evaluation; stop_last_trials=False, else ASHA stops
    # every trial at max_t, before its final report.
    return ASHAScheduler(time_attr=search_space.EPOCH_KEY, metric=search_space.VALUE_KEY, mode=sched.mode,
                         max_t=max(sched.grace_period, sched.max_t - 1), grace_period=sched.grace_period,
                         reduction_factor=sched.reduction_factor, stop_last_trials=False)


def storage_url(folder: Path) -> str:
    return f"sqlite:///{(Path(folder) / 'optuna.db').resolve()}"


def open_study(spec: search_space.SearchSpec, folder: Path, fp: str) -> optuna.Study:
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
        key = t.user_attrs.get(search_space.KEY_ATTR) or search_space.trial_key(t.number)
        study._storage.set_trial_user_attr(t._trial_id, search_space.INTERRUPTED_ATTR, True)
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        if t.params:
            study.enqueue_trial(t.params, user_attrs={search_space.KEY_ATTR: key})
        keys.append(key)
    return keys


def counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that used up the budget: complete, pruned, or failed on their own."""
    return [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            or (t.state == TrialState.FAIL and not t.user_attrs.get(search_space.INTERRUPTED_ATTR))]
