"""What a search leaves behind: best.yaml (or the Pareto front), importances, Optuna's plots,
trials.csv, the trial runs' final states in MLflow, and the summary printed at the end.

best.yaml holds dotted overrides of the profile, so the best configuration is reused as it stands:
`run_ablation.py NAME --set ...` or an ablation's `variants:`.
"""

from __future__ import annotations

import json
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from harness import search_space, tracking
from harness.cli import mlflow_hint
from harness.config import ConfigError, ExperimentConfig, apply_overrides, flatten, load_profile
from harness.io import atomic_write


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
    atomic_write(path, "\n".join(lines) + "\n")


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


_STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED", TrialState.FAIL: "FAILED"}


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def finalize(spec: search_space.SearchSpec, base: ExperimentConfig, study: optuna.Study, folder: Path, uri: str,
             experiment_id: str, parent: str, say=print) -> dict:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    interrupted = [t for t in trials if t.state == TrialState.FAIL and t.user_attrs.get(search_space.INTERRUPTED_ATTR)]
    failed = [t for t in trials if t.state == TrialState.FAIL and t not in interrupted]
    key_of = {t.number: t.user_attrs.get(search_space.KEY_ATTR) or search_space.trial_key(t.number) for t in trials}

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
        over = best_overrides(best.params, base)
        ablation = reuse_ablation(set(over), spec.tasks)
        command = (f"python harness/run_ablation.py {ablation or 'ABLATION'} --profile {spec.profile} "
                   f"{set_args(over)}")
        write_best_yaml(best_path, header_common + [
            f"Best: {key_of[best.number]}, {spec.metrics[0]} = {_fmt(best.value)}.",
            "Dotted overrides of the profile (the keys of --set and of an ablation's `overrides:`). Reuse:",
            f"  {command}", ""], over)
        summary.update({"best": {"trial": key_of[best.number], "values": [best.value], "overrides": over},
                        "command": command})
    elif complete:
        front = sorted(study.best_trials, key=lambda t: t.number)
        entries = [(key_of[t.number], ", ".join(f"{m} = {_fmt(v)}" for m, v in zip(spec.metrics, t.values)),
                    best_overrides(t.params, base)) for t in front]
        write_best_yaml(best_path, header_common + [
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
    try:
        # The trial runs of this parent follow the study's verdict (a pruned trial's actor was
        # killed before it could end its run).
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
            if tracking.run_status(uri, run_id) != _STATUS[t.state]:
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
    except tracking.ERRORS as exc:
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


def print_summary(spec: search_space.SearchSpec, summary: dict, uri: str, stream=sys.stdout) -> None:
    w = stream.write
    w(f"\nsearch {spec.name}: {summary['trials']} trial(s): {summary['complete']} complete, "
      f"{summary['pruned']} pruned, {summary['failed']} failed"
      + (f", {summary['interrupted']} interrupted and retried" if summary["interrupted"] else "") + "\n")
    if "best" in summary:
        b = summary["best"]
        w(f"best: {b['trial']}  {spec.metrics[0]} = {_fmt(b['values'][0])}\n")
        for k, v in b["overrides"].items():
            w(f"  {k}: {yaml_scalar(v)}\n")
    if "pareto" in summary:
        w(f"Pareto front ({', '.join(f'{m} {md}' for m, md in zip(spec.metrics, spec.modes))}):\n")
        for p in summary["pareto"]:
            sampled = {k: v for k, v in p["overrides"].items() if k in spec.space}
            w(f"  {p['trial']}: {', '.join(_fmt(v) for v in p['values'])}  "
              f"{', '.join(f'{k}={yaml_scalar(v)}' for k, v in sampled.items())}\n")
    for m, imp in summary.get("importances", {}).items():
        w(f"importances ({m}): {', '.join(f'{k} {v:.2f}' for k, v in imp.items())}\n")
    if summary.get("files"):
        w(f"Written: {', '.join(summary['files'])}\n")
    if summary.get("command"):
        w(f"Reuse:  {summary['command']}\n")
    w(mlflow_hint(uri, summary.get("experiment_id", "")) + "\n")
