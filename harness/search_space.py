"""Search specs (`search_spaces/NAME.yaml`): a question, a base profile, an objective, a space.

`run_search.py NAME` tunes what the paper fixed by hand (section 4.2,
appendix B.2: mask ratio 25%, window 15, stride 7, adaptive pose weighting, the optimizer) with
Ray Tune + Optuna (TPE) + ASHA. This module is the part that knows no Ray: the strict loader,
the define-by-run space handed to Optuna, the objective fields every Tune result carries, and
the fields every Tune result of a search carries. `harness.tune.search` runs it;
`harness.search_dists` parses and checks the distributions.

A spec, all keys but `enqueue`, `overrides`, `max_concurrent`, `startup_trials` and `scheduler`
required:

    question: ...                          # what the search answers (also a header comment)
    profile: default                       # base profile
    overrides: {sign2text.epochs: 20}      # fixed dotted overrides of the profile
    metric: sign2text/dev_bleu4            # or a list (multi-objective: a Pareto front)
    mode: max                              # or a list, one per metric
    trials: 40
    max_concurrent: 4                      # default: as many as the CPUs allow
    startup_trials: 10                     # TPE's random start (Optuna's default 10)
    scheduler: {type: asha, metric: sign2text/dev_bleu4_greedy, time_attr: epoch,
                grace_period: 0.25, reduction_factor: 2}   # or {type: fifo}
    enqueue: [{pretrain.window: 15, embed.stride: 7}]      # tried first (e.g. the paper's setting)
    space:                                 # sampled in this order (define-by-run)
      pretrain.window: {choice: [8, 12, 15, 20]}
      embed.stride: {int: [1, pretrain.window]}            # a bound may name an earlier key
      pretrain.mask_ratio: {float: [0.1, 0.8]}             # optional step: {float: [..], step: 0.05}
      optim.lr: {loguniform: [1.0e-4, 3.0e-3]}

Objectives are dev-split metrics of a trial's final result (test metrics are never optimized).
The scheduler compares a per-epoch metric of one stage; `epoch` is that stage's epoch, counted
only on reports that carry the metric (Tune's own `training_iteration`/`time_total_s` are not
offered: they count pretraining reports too, and a trial whose pretraining came from the stage
cache would be ahead of the others).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import ConfigError, ExperimentConfig, apply_overrides, flatten, load_profile, read_mapping
from harness.io import digest
from harness.search_dists import Dist, check_point, check_space, number, parse_dist
from harness.user_input import check_name

SEARCH_DIR = Path(__file__).resolve().parents[1] / "search_spaces"
TASKS = ("sign2text", "text2sign")
MAX_TRIALS = 10_000  # per invocation; Optuna's TPE slows down long before this
_KEYS = ("question", "profile", "overrides", "metric", "mode", "trials", "max_concurrent", "startup_trials",
         "scheduler", "enqueue", "space")
_REQUIRED = ("question", "profile", "metric", "mode", "trials", "space")
_SCHEDULER_KEYS = ("type", "metric", "time_attr", "grace_period", "reduction_factor", "max_t")

# Final dev metrics of a trial (TrialResult.final_metrics) and the direction that is better.
_TEXT = {"bleu1": "max", "bleu2": "max", "bleu3": "max", "bleu4": "max", "rouge": "max"}
FINAL_METRICS = {
    **{f"sign2text/dev_{k}": m for k, m in _TEXT.items()},
    **{f"text2sign/dev_{k}": m for k, m in {**_TEXT, "mpjpe": "min", "dtw_mje": "min"}.items()},
}
# Metrics the training loop reports during a stage (harness.loop.train_stage, harness.stages).
EPOCH_METRICS = {
    "pretrain/train_loss": "min", "pretrain/dev_recon_mpjpe": "min",
    "sign2text/train_loss": "min", "sign2text/dev_bleu4_greedy": "max",
    "text2sign/train_loss": "min", "text2sign/dev_length_accuracy": "max",
}
DEFAULT_EPOCH_METRIC = {"sign2text": "sign2text/dev_bleu4_greedy"}

# Keys this harness adds to every Tune result of a search (harness.tune.driver.ReportCallback).
OBJECTIVE_PREFIX = "objective/"  # + metric: the final value; NaN until the trial's last report
VALUE_KEY = "search/value"  # the scheduler's per-epoch metric; NaN on reports without it
EPOCH_KEY = "search/epoch"  # that stage's epoch; only on reports that carry VALUE_KEY
KEY_ATTR = "harness.trial_key"  # Optuna user attr: the trial's key (MLflow, Train run, files)
INTERRUPTED_ATTR = "harness.interrupted"  # Optuna user attr on trials a dead driver left RUNNING


@dataclass(frozen=True)
class SchedulerSpec:
    type: str = "fifo"  # asha | fifo
    metric: str = ""  # a per-epoch metric (EPOCH_METRICS); also Optuna's intermediate values
    mode: str = "max"
    time_attr: str = "epoch"
    grace_period: int = 1
    reduction_factor: float = 2.0
    max_t: int = 1  # rungs are grace_period * reduction_factor**k up to max_t

    @property
    def stage(self) -> str:
        return self.metric.split("/")[0]


@dataclass(frozen=True)
class SearchSpec:
    name: str
    path: Path
    where: str  # how messages name the file
    question: str
    profile: str
    tasks: tuple[str, ...]
    overrides: dict[str, Any]
    metrics: tuple[str, ...]
    modes: tuple[str, ...]
    trials: int
    max_concurrent: int | None
    scheduler: SchedulerSpec
    space: dict[str, Dist]
    startup_trials: int = 10  # TPE's random trials before it models the space
    enqueue: tuple[dict[str, Any], ...] = ()
    fixed: dict[str, Any] = field(default_factory=dict)  # base values of keys that bounds name

    @property
    def multi(self) -> bool:
        return len(self.metrics) > 1

    def objective_keys(self) -> list[str]:
        return [OBJECTIVE_PREFIX + m for m in self.metrics]


def available() -> list[str]:
    return sorted(p.stem for p in SEARCH_DIR.glob("*.yaml"))


def spec_path(name: str) -> tuple[Path, str]:
    """NAME -> search_spaces/NAME.yaml; a path to a .yaml file is taken as is."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"search space file {name} does not exist")
        # The stem names RESULTS/search/NAME/ and the MLflow experiment.
        check_name("search", path.stem, f"the name of {name}")
        return path.resolve(), str(name)
    check_name("search", name)
    path = SEARCH_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown search {name!r}; available: {', '.join(available())} (or a path to a .yaml)")
    return path, f"search_spaces/{name}.yaml"


# --------------------------------------------------------------------------------------------
# Strict loading
# --------------------------------------------------------------------------------------------

def _default(cls: type, name: str) -> Any:
    """What a file that omits `name` gets: the dataclass field's default, the one place it is set."""
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def _parse_scheduler(raw: Any, metrics: tuple[str, ...], modes: tuple[str, ...], tasks: tuple[str, ...],
                     base: ExperimentConfig, space: dict[str, Dist], where: str) -> SchedulerSpec:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"scheduler must be a mapping like {{type: asha, grace_period: 2}} ({where})")
    for k in raw:
        if k not in _SCHEDULER_KEYS:
            raise ConfigError(f"unknown key scheduler.{k}; valid keys: {', '.join(_SCHEDULER_KEYS)} ({where})")
    kind = raw.get("type", _default(SchedulerSpec, "type"))
    if kind not in ("asha", "fifo"):
        raise ConfigError(f"scheduler.type must be asha or fifo, got {kind!r} ({where})")
    first_stage = metrics[0].split("/")[0]
    metric = raw.get("metric") or DEFAULT_EPOCH_METRIC.get(first_stage, "")
    if kind == "asha" and not metric:
        raise ConfigError(f"scheduler.metric is required for {metrics[0]}: name a per-epoch metric, one of "
                          f"{', '.join(EPOCH_METRICS)} ({where})")
    if metric and metric not in EPOCH_METRICS:
        raise ConfigError(f"scheduler.metric must be a per-epoch metric, one of {', '.join(EPOCH_METRICS)}, "
                          f"got {metric!r} ({where})")
    stage = metric.split("/")[0] if metric else ""
    if stage and stage != "pretrain" and stage not in tasks:
        raise ConfigError(f"scheduler.metric {metric} belongs to the {stage} stage, which this search does not "
                          f"run (tasks: {', '.join(tasks)}) ({where})")
    time_attr = raw.get("time_attr", _default(SchedulerSpec, "time_attr"))
    if time_attr != "epoch":
        raise ConfigError(f"scheduler.time_attr must be epoch (epochs of the {stage or 'metric'} stage), got "
                          f"{time_attr!r}; Tune's training_iteration and time_total_s also count pretraining "
                          f"({where})")
    rf = number(raw.get("reduction_factor", _default(SchedulerSpec, "reduction_factor")),
                 "scheduler.reduction_factor", where)
    if rf <= 1:
        raise ConfigError(f"scheduler.reduction_factor must be > 1, got {rf} ({where})")
    epochs_key = f"{stage}.epochs" if stage else ""
    if epochs_key in space:
        d = space[epochs_key]
        stage_epochs = max(d.choices) if d.kind == "choice" else d.high
    else:
        stage_epochs = flatten(base).get(epochs_key, 1)
    max_t = number(raw.get("max_t", stage_epochs), "scheduler.max_t", where, integer=True)
    # An integer grace period is epochs; a fraction in (0, 1) is a share of the stage's epochs, so
    # one file serves every profile (sign2text: 40 epochs in `default`, 8 in `debug`).
    grace = number(raw.get("grace_period", _default(SchedulerSpec, "grace_period")), "scheduler.grace_period", where)
    if isinstance(grace, float) and 0 < grace < 1:
        grace = max(1, int(round(grace * max_t)))
    elif isinstance(grace, float) and grace.is_integer():
        grace = int(grace)
    if not isinstance(grace, int) or grace < 1:
        raise ConfigError(f"scheduler.grace_period must be epochs (an integer >= 1) or a fraction in (0, 1) of "
                          f"the stage's epochs, got {raw.get('grace_period')!r} ({where})")
    if kind == "asha" and grace > max_t:
        raise ConfigError(f"scheduler.grace_period ({grace}) exceeds {epochs_key or 'max_t'} ({max_t}): ASHA would "
                          f"never compare trials ({where})")
    mode = EPOCH_METRICS.get(metric, modes[0])
    return SchedulerSpec(kind, metric, mode, time_attr, grace, float(rf), max_t)


def _as_list(value: Any, what: str, where: str) -> list:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{what} must be a name or a non-empty list of names, got {value!r} ({where})")


def load_search(name: str, profile: str | None = None, cli_overrides: dict[str, Any] | None = None
                ) -> tuple[SearchSpec, ExperimentConfig]:
    """Parse and validate `search_spaces/NAME.yaml` (or a path); returns the spec and the base config
    (profile, then the spec's overrides, then the CLI's) that every trial's sample is applied to."""
    path, where = spec_path(name)
    data = read_mapping(path, where, _KEYS, _REQUIRED)

    metrics = tuple(_as_list(data["metric"], "metric", where))
    modes = tuple(_as_list(data["mode"], "mode", where))
    if len(modes) != len(metrics):
        raise ConfigError(f"mode needs one entry per metric ({len(metrics)}), got {len(modes)} ({where})")
    if len(set(metrics)) != len(metrics):
        raise ConfigError(f"metric lists {metrics} twice ({where})")
    for m, mode in zip(metrics, modes):
        if mode not in ("min", "max"):
            raise ConfigError(f"mode must be min or max, got {mode!r} ({where})")
        if "/test_" in m:
            raise ConfigError(f"metric {m}: optimize a dev metric (e.g. {m.replace('/test_', '/dev_')}), "
                              f"never the test set ({where})")
        if m not in FINAL_METRICS:
            raise ConfigError(f"unknown metric {m!r}; one of {', '.join(FINAL_METRICS)} ({where})")
        if FINAL_METRICS[m] != mode:
            raise ConfigError(f"metric {m} is better when {'higher' if FINAL_METRICS[m] == 'max' else 'lower'}: "
                              f"mode must be {FINAL_METRICS[m]}, got {mode} ({where})")
    tasks = tuple(t for t in TASKS if any(m.startswith(t + "/") for m in metrics))

    prof = data["profile"]
    overrides = data.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"overrides must be a mapping of dotted keys ({where})")
    base = load_profile(profile or str(prof), overrides, f"{where}, overrides")
    cli = dict(cli_overrides or {})
    raw_space = data["space"]
    if not isinstance(raw_space, dict) or not raw_space:
        raise ConfigError(f"space must be a non-empty mapping of dotted key -> distribution ({where})")
    for key in cli:
        if key in raw_space:
            raise ConfigError(f"--set {key}: the key is searched by {where}; remove it from --set")
    base = apply_overrides(base, cli, "--set")
    base_flat = flatten(base)

    space: dict[str, Dist] = {}
    for key, raw in raw_space.items():
        key = str(key)
        if key == "profile" or key.startswith("compute."):
            raise ConfigError(f"space.{key}: {'the profile' if key == 'profile' else 'compute settings'} "
                              f"cannot be searched ({where})")
        if key not in base_flat:
            raise ConfigError(f"space.{key}: unknown config key (dotted keys like pretrain.mask_ratio; "
                              f"see harness/config.py) ({where})")
        space[key] = parse_dist(key, raw, where, space, base_flat)
    order = list(space)
    for key, d in space.items():  # define-by-run: a bound is read when its key is sampled, in file order
        for b in (d.low, d.high):
            if isinstance(b, str) and b in space and order.index(b) >= order.index(key):
                raise ConfigError(f"space.{key}: its bound {b} is searched {'by itself' if b == key else 'after it'} "
                                  f"(keys are sampled in file order); put {b} above {key} ({where})")
    fixed = {b: base_flat[b] for d in space.values() for b in (d.low, d.high) if isinstance(b, str) and b not in space}
    check_space(space, base, fixed, where)

    trials = number(data["trials"], "trials", where, integer=True)
    if not 1 <= trials <= MAX_TRIALS:
        raise ConfigError(f"trials must be in [1, {MAX_TRIALS}], got {trials} ({where})")
    max_concurrent = data.get("max_concurrent")
    if max_concurrent is not None:
        max_concurrent = number(max_concurrent, "max_concurrent", where, integer=True)
        if max_concurrent < 1:
            raise ConfigError(f"max_concurrent must be >= 1, got {max_concurrent} ({where})")
    startup = number(data.get("startup_trials", _default(SearchSpec, "startup_trials")), "startup_trials", where,
                      integer=True)
    if startup < 0:
        raise ConfigError(f"startup_trials must be >= 0, got {startup} ({where})")
    scheduler = _parse_scheduler(data.get("scheduler"), metrics, modes, tasks, base, space, where)

    enqueue = data.get("enqueue") or []
    if not isinstance(enqueue, list):
        raise ConfigError(f"enqueue must be a list of mappings of searched keys ({where})")
    for i, point in enumerate(enqueue):
        check_point(point, f"enqueue[{i}]", space, fixed, base, where)

    spec = SearchSpec(name=path.stem, path=path, where=where, question=str(data["question"]).strip(),
                      profile=base.profile, tasks=tasks, overrides=dict(overrides), metrics=metrics, modes=modes,
                      trials=trials, max_concurrent=max_concurrent, startup_trials=startup, scheduler=scheduler,
                      space=space, enqueue=tuple(dict(p) for p in enqueue), fixed=fixed)
    return spec, base


# --------------------------------------------------------------------------------------------
# The define-by-run space (Optuna) and the fields of every Tune result
# --------------------------------------------------------------------------------------------

class DefineByRun:
    """Optuna's define-by-run space: keys in file order, so `embed.stride: {int: [1, pretrain.window]}`
    is drawn after the window. Returns the trial's number and key; the sampled values are what
    OptunaSearch captures (a module-level class: Tune pickles the searcher with it)."""

    def __init__(self, space: dict[str, Dist], fixed: dict[str, Any]):
        self.space = dict(space)
        self.fixed = dict(fixed)

    def __call__(self, trial) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, d in self.space.items():
            if d.kind == "choice":
                values[key] = trial.suggest_categorical(key, list(d.choices))
                continue
            lo, hi = d.bounds(values, self.fixed)
            if d.kind == "int":
                values[key] = trial.suggest_int(key, int(lo), int(hi), step=int(d.step or 1))
            else:
                values[key] = trial.suggest_float(key, float(lo), float(hi), step=d.step,
                                                  log=d.kind == "loguniform")
        # A retried configuration (re-enqueued after an interrupted run) keeps its key, so its MLflow
        # run and its Train checkpoints are found again.
        key = trial.user_attrs.get(KEY_ATTR) or trial_key(trial.number)
        trial.set_user_attr(KEY_ATTR, key)
        return {"trial": {"number": trial.number, "key": key}}


def trial_key(number: int) -> str:
    return f"trial{number:04d}"


def tune_fields(report: dict[str, Any], metrics: tuple[str, ...], epoch_metric: str) -> dict[str, Any]:
    """The keys this harness adds to one worker report before Tune sees it.

    Tune refuses a result without the searcher's and the scheduler's metric, and the worker reports
    per-epoch metrics of several stages before the final one: so every result carries the
    objectives (NaN until the final report, stage "done") and VALUE_KEY (NaN where the scheduler's
    metric is absent). EPOCH_KEY is set only where VALUE_KEY is a number, so ASHA (time_attr
    EPOCH_KEY) compares trials at the epochs of its stage only, and ignores the rest."""
    nan = float("nan")
    out: dict[str, Any] = {}
    final = report.get("stage") == "done"
    for m in metrics:
        v = report.get(m) if final else None
        out[OBJECTIVE_PREFIX + m] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else nan
    out[VALUE_KEY] = nan
    stage = epoch_metric.split("/")[0] if epoch_metric else None
    v = report.get(epoch_metric) if epoch_metric else None
    if (not final and report.get("stage") == stage and isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v) and "epoch" in report):
        out[VALUE_KEY] = float(v)
        out[EPOCH_KEY] = int(report["epoch"])
    return out


def fingerprint(spec: SearchSpec, base: ExperimentConfig) -> str:
    """What a study's trials depend on: the base config (but how it is computed), the space and the
    objectives. A persistent study refuses to be continued with another fingerprint."""
    # compute.* says how trials run, `seeds` is an ablation's: neither changes what a trial computes.
    flat = {k: v for k, v in flatten(base).items() if not k.startswith("compute.") and k != "seeds"}
    blob = {"base": flat, "space": {k: dataclasses.asdict(d) for k, d in spec.space.items()},
            "metrics": list(spec.metrics), "modes": list(spec.modes)}
    return digest(blob)
