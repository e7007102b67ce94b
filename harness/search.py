"""Search specs (`search_spaces/NAME.yaml`): a question, a base profile, an objective, a space.

DESIGN.md "The harness": `run_search.py NAME` tunes what the paper fixed by hand (section 4.2,
appendix B.2: mask ratio 25%, window 15, stride 7, adaptive pose weighting, the optimizer) with
Ray Tune + Optuna (TPE) + ASHA. This module is the part that knows no Ray: the strict loader,
the define-by-run space handed to Optuna, the objective fields every Tune result carries, and
the files a search leaves behind (best.yaml). `harness.search_tune` runs it.

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
import hashlib
import json
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from harness.config import ConfigError, ExperimentConfig, apply_overrides, flatten, load_profile, read_yaml

SEARCH_DIR = Path(__file__).resolve().parents[1] / "search_spaces"
KINDS = ("float", "int", "loguniform", "choice")
TASKS = ("sign2text", "text2sign")
_KEYS = ("question", "profile", "overrides", "metric", "mode", "trials", "max_concurrent", "startup_trials",
         "scheduler", "enqueue", "space")
_REQUIRED = ("question", "profile", "metric", "mode", "trials", "space")
_SCHEDULER_KEYS = ("type", "metric", "time_attr", "grace_period", "reduction_factor", "max_t")

# Final dev metrics of a trial (harness.worker.final_metrics) and the direction that is better.
_TEXT = {"bleu1": "max", "bleu2": "max", "bleu3": "max", "bleu4": "max", "rouge": "max"}
FINAL_METRICS = {
    **{f"sign2text/dev_{k}": m for k, m in _TEXT.items()},
    **{f"text2sign/dev_{k}": m for k, m in {**_TEXT, "mpjpe": "min", "dtw_mje": "min"}.items()},
}
# Metrics the training loop reports during a stage (harness.loop.train_stage, harness.pipeline).
EPOCH_METRICS = {
    "pretrain/train_loss": "min", "pretrain/dev_recon_mpjpe": "min",
    "sign2text/train_loss": "min", "sign2text/dev_bleu4_greedy": "max",
    "text2sign/train_loss": "min", "text2sign/dev_length_accuracy": "max",
}
DEFAULT_EPOCH_METRIC = {"sign2text": "sign2text/dev_bleu4_greedy"}

# Keys this harness adds to every Tune result (harness.search_tune.SearchReportCallback).
OBJECTIVE_PREFIX = "objective/"  # + metric: the final value; NaN until the trial's last report
VALUE_KEY = "search/value"  # the scheduler's per-epoch metric; NaN on reports without it
EPOCH_KEY = "search/epoch"  # that stage's epoch; only on reports that carry VALUE_KEY
KEY_ATTR = "harness.trial_key"  # Optuna user attr: the trial's key (MLflow, Train run, files)
INTERRUPTED_ATTR = "harness.interrupted"  # Optuna user attr on trials a dead driver left RUNNING


@dataclass(frozen=True)
class Dist:
    """One dimension of the space. A str bound names another dotted key (sampled earlier, or the
    base config's value)."""

    kind: str  # float | int | loguniform | choice
    low: Any = None
    high: Any = None
    step: Any = None
    choices: tuple = ()

    def bounds(self, values: dict[str, Any], fixed: dict[str, Any]) -> tuple[Any, Any]:
        def resolve(b):
            return (values[b] if b in values else fixed[b]) if isinstance(b, str) else b
        return resolve(self.low), resolve(self.high)


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
        return path.resolve(), str(name)
    path = SEARCH_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown search {name!r}; available: {', '.join(available())} (or a path to a .yaml)")
    return path, f"search_spaces/{name}.yaml"


# --------------------------------------------------------------------------------------------
# Strict loading
# --------------------------------------------------------------------------------------------

def _number(value: Any, what: str, where: str, integer: bool = False) -> Any:
    # YAML 1.1 (PyYAML) reads 1e-4 as a string; accept it as the number it obviously is.
    if isinstance(value, str) and not integer:
        try:
            value = float(value)
        except ValueError:
            pass
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        raise ConfigError(f"{what} must be {'an integer' if integer else 'a number'}, got {value!r} ({where})")
    return value


def _parse_dist(key: str, raw: Any, where: str, earlier: dict[str, Dist], base_flat: dict[str, Any]) -> Dist:
    what = f"space.{key}"
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{what} must be a mapping like {{float: [0.1, 0.8]}} ({where})")
    kinds = [k for k in raw if k in KINDS]
    unknown = [k for k in raw if k not in KINDS and k != "step"]
    if unknown:
        raise ConfigError(f"{what}: unknown distribution {unknown[0]!r}; use one of {', '.join(KINDS)} ({where})")
    if len(kinds) != 1:
        raise ConfigError(f"{what} must name exactly one distribution of {', '.join(KINDS)}, got {list(raw)} ({where})")
    kind = kinds[0]
    args = raw[kind]
    if kind == "choice":
        if "step" in raw:
            raise ConfigError(f"{what}: step is only for float and int ({where})")
        if not isinstance(args, list) or not args:
            raise ConfigError(f"{what}: choice needs a non-empty list of values ({where})")
        for v in args:
            if not (v is None or isinstance(v, (bool, int, float, str))):
                raise ConfigError(f"{what}: choice values must be scalars, got {v!r} ({where})")
        if len({json.dumps(v) for v in args}) != len(args):
            raise ConfigError(f"{what}: choice values must be distinct, got {args} ({where})")
        return Dist("choice", choices=tuple(args))
    if not isinstance(args, list) or len(args) != 2:
        raise ConfigError(f"{what}: {kind} needs [low, high], got {args!r} ({where})")
    integer = kind == "int"
    bounds = []
    for b in args:
        if isinstance(b, str) and (integer or not _is_float(b)):
            if b in earlier:
                ref = earlier[b]
                ok = ref.kind == "int" or (ref.kind == "choice" and all(isinstance(c, int) and not isinstance(c, bool)
                                                                           for c in ref.choices))
                ok = ok or (not integer and ref.kind in ("float", "loguniform"))
            elif b in base_flat:
                v = base_flat[b]
                ok = not isinstance(v, bool) and isinstance(v, int if integer else (int, float))
            else:
                raise ConfigError(f"{what}: bound {b!r} is neither an earlier key of the space nor a config key ({where})")
            if not ok:
                raise ConfigError(f"{what}: bound {b!r} must name an {'integer' if integer else 'numeric'} key ({where})")
            bounds.append(b)
        else:
            bounds.append(_number(b, f"{what} bounds", where, integer))
    low, high = bounds
    if not isinstance(low, str) and not isinstance(high, str) and not low < high:
        raise ConfigError(f"{what}: low must be < high, got [{low}, {high}] ({where})")
    if kind == "loguniform" and not isinstance(low, str) and low <= 0:
        raise ConfigError(f"{what}: loguniform needs low > 0, got {low} ({where})")
    step = raw.get("step")
    if step is not None:
        if kind == "loguniform":
            raise ConfigError(f"{what}: step is only for float and int ({where})")
        step = _number(step, f"{what}.step", where, integer)
        if step <= 0:
            raise ConfigError(f"{what}.step must be > 0, got {step} ({where})")
    return Dist(kind, low, high, step)


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _corners(space: dict[str, Dist], fixed: dict[str, Any]) -> Iterator[tuple[str, Any, str, dict[str, Any]]]:
    """Assignments that stress the space: every key at each end (or choice) with the others at
    their low ends, then at their high ends; later bounds follow earlier values (define-by-run)."""
    for side in ("low", "high"):
        for key, dist in space.items():
            for cand in dist.choices if dist.kind == "choice" else ("low", "high"):
                values: dict[str, Any] = {}
                for k, d in space.items():
                    pick = cand if k == key else side
                    if d.kind == "choice":
                        values[k] = pick if k == key else (d.choices[0] if pick == "low" else d.choices[-1])
                        continue
                    lo, hi = d.bounds(values, fixed)
                    v = lo if pick == "low" else hi
                    # what Optuna will return: floats from float/loguniform, so an int key says so
                    values[k] = int(v) if d.kind == "int" else float(v)
                yield key, values[key], side, values


def _check_space(space: dict[str, Dist], base: ExperimentConfig, fixed: dict[str, Any], where: str) -> None:
    for key, value, side, values in _corners(space, fixed):
        for k, d in space.items():
            if d.kind != "choice":
                lo, hi = d.bounds(values, fixed)
                if not lo < hi and not (lo == hi and d.kind == "int"):
                    raise ConfigError(f"space.{k}: empty range [{lo}, {hi}] when {key} = {value!r} ({where})")
                if d.kind == "loguniform" and lo <= 0:
                    raise ConfigError(f"space.{k}: loguniform needs low > 0, got {lo} when {key} = {value!r} ({where})")
        try:
            apply_overrides(base, values)
        except ConfigError as exc:
            raise ConfigError(f"space.{key} = {value!r} (other keys at their {side} ends) gives an invalid "
                              f"configuration: {exc} ({where})") from None


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
    rf = _number(raw.get("reduction_factor", _default(SchedulerSpec, "reduction_factor")),
                 "scheduler.reduction_factor", where)
    if rf <= 1:
        raise ConfigError(f"scheduler.reduction_factor must be > 1, got {rf} ({where})")
    epochs_key = f"{stage}.epochs" if stage else ""
    if epochs_key in space:
        d = space[epochs_key]
        stage_epochs = max(d.choices) if d.kind == "choice" else d.high
    else:
        stage_epochs = flatten(base).get(epochs_key, 1)
    max_t = _number(raw.get("max_t", stage_epochs), "scheduler.max_t", where, integer=True)
    # An integer grace period is epochs; a fraction in (0, 1) is a share of the stage's epochs, so
    # one file serves every profile (sign2text: 40 epochs in `default`, 8 in `debug`).
    grace = _number(raw.get("grace_period", _default(SchedulerSpec, "grace_period")), "scheduler.grace_period", where)
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
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping with keys {', '.join(_KEYS)}")
    for key in data:
        if key not in _KEYS:
            raise ConfigError(f"unknown key {key} ({where}); valid keys: {', '.join(_KEYS)}")
    for key in _REQUIRED:
        if key not in data:
            raise ConfigError(f"missing key {key} ({where})")

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
        space[key] = _parse_dist(key, raw, where, space, base_flat)
    fixed = {b: base_flat[b] for d in space.values() for b in (d.low, d.high) if isinstance(b, str) and b not in space}
    _check_space(space, base, fixed, where)

    trials = _number(data["trials"], "trials", where, integer=True)
    if trials < 1:
        raise ConfigError(f"trials must be >= 1, got {trials} ({where})")
    max_concurrent = data.get("max_concurrent")
    if max_concurrent is not None:
        max_concurrent = _number(max_concurrent, "max_concurrent", where, integer=True)
        if max_concurrent < 1:
            raise ConfigError(f"max_concurrent must be >= 1, got {max_concurrent} ({where})")
    startup = _number(data.get("startup_trials", _default(SearchSpec, "startup_trials")), "startup_trials", where,
                      integer=True)
    if startup < 0:
        raise ConfigError(f"startup_trials must be >= 0, got {startup} ({where})")
    scheduler = _parse_scheduler(data.get("scheduler"), metrics, modes, tasks, base, space, where)

    enqueue = data.get("enqueue") or []
    if not isinstance(enqueue, list):
        raise ConfigError(f"enqueue must be a list of mappings of searched keys ({where})")
    for i, point in enumerate(enqueue):
        _check_point(point, f"enqueue[{i}]", space, fixed, base, where)

    spec = SearchSpec(name=path.stem, path=path, where=where, question=str(data["question"]).strip(),
                      profile=base.profile, tasks=tasks, overrides=dict(overrides), metrics=metrics, modes=modes,
                      trials=trials, max_concurrent=max_concurrent, startup_trials=startup, scheduler=scheduler,
                      space=space, enqueue=tuple(dict(p) for p in enqueue), fixed=fixed)
    return spec, base


def _check_point(point: Any, what: str, space: dict[str, Dist], fixed: dict[str, Any], base: ExperimentConfig,
                 where: str) -> None:
    if not isinstance(point, dict) or not point:
        raise ConfigError(f"{what} must be a non-empty mapping of searched keys ({where})")
    values: dict[str, Any] = {}
    for key, dist in space.items():
        if key not in point:
            continue
        v = point[key]
        values[key] = v
        if dist.kind == "choice":
            if v not in dist.choices:
                raise ConfigError(f"{what}.{key} must be one of {list(dist.choices)}, got {v!r} ({where})")
            continue
        refs = [b for b in (dist.low, dist.high) if isinstance(b, str)]
        if any(r in space and r not in point for r in refs):
            continue  # its range depends on a key this point leaves to the sampler
        lo, hi = dist.bounds(values, fixed)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise ConfigError(f"{what}.{key} must be in [{lo}, {hi}], got {v!r} ({where})")
    for key in point:
        if key not in space:
            raise ConfigError(f"{what}.{key} is not a key of the space ({where})")
    try:
        apply_overrides(base, point)
    except ConfigError as exc:
        raise ConfigError(f"{what} gives an invalid configuration: {exc} ({where})") from None


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
    flat = {k: v for k, v in flatten(base).items() if not k.startswith("compute.")}
    blob = {"base": flat, "space": {k: dataclasses.asdict(d) for k, d in spec.space.items()},
            "metrics": list(spec.metrics), "modes": list(spec.modes)}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Reusing the result
# --------------------------------------------------------------------------------------------

def best_overrides(params: dict[str, Any], base: ExperimentConfig) -> dict[str, Any]:
    """The dotted overrides of the profile that give a trial's config: everything the search fixed
    or sampled that differs from the profile, plus every sampled key (compute.* left out: it says
    how to run, not what)."""
    profile = flatten(load_profile(base.profile))
    cfg = flatten(apply_overrides(base, params))
    out = {k: v for k, v in cfg.items() if k not in ("profile",) and not k.startswith("compute.")
           and (v != profile.get(k) or k in params)}
    return {k: out[k] for k in sorted(out, key=lambda k: (k not in params, k))}


def yaml_scalar(value: Any) -> str:
    """A value as PyYAML writes it (1.0e-05, not 1e-05, which it would read back as a string)."""
    return yaml.safe_dump([value], default_flow_style=True, width=1000).strip()[1:-1]


def set_args(overrides: dict[str, Any]) -> str:
    return " ".join(f"--set {shlex.quote(f'{k}={yaml_scalar(v)}')}" for k, v in overrides.items())


def write_best_yaml(path: Path, header: list[str], entries: list[tuple[str, str, dict[str, Any]]] | dict[str, Any]
                    ) -> None:
    """Single objective: `entries` is one mapping of dotted overrides. Pareto: a list of (name,
    comment, overrides), written as `name: {...}` so the file is an ablation's `variants:`."""
    lines = [f"# {h}" if h else "#" for h in header]
    if isinstance(entries, dict):
        lines += [f"{k}: {yaml_scalar(v)}" for k, v in entries.items()]
    else:
        for name, comment, over in entries:
            lines.append(f"{name}:  # {comment}")
            lines += [f"  {k}: {yaml_scalar(v)}" for k, v in over.items()]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)


def reuse_ablation(keys: set[str], tasks: tuple[str, ...]) -> str | None:
    """An ablation whose variants vary none of `keys` (--set would override what it compares)."""
    from harness.ablation import available as ablations, load_ablation
    for name in ablations():
        try:
            spec = load_ablation(name)
        except ConfigError:
            continue
        varied = {k for over in spec.variants.values() for k in over} | set(spec.overrides)
        if not varied & keys and set(tasks) <= set(spec.tasks):
            return name
    return None
