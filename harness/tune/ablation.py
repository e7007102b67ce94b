"""An ablation as one Ray Tune experiment: a grid of variants x seeds, then the paper's table (section 6).

What differs from a search is only the grid: every trial is planned here, a finished trial (its
result file matches its config) is not rerun, and the rows are built from the trials' test results
by `harness.report`. The trial itself is `tune.driver.train_driver_fn`, as for a search.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune

from harness import figures, folder_lock, reading, report, side_by_side, storage, tracking
from harness.ablation import AblationSpec, variant_config
from harness.cache import StageCache
from harness.config import ConfigError, ExperimentConfig
from harness.datasource import absolute_sources
from harness.results import ResultsLayout, TrialResult, TrialSpec, config_key, read_pose_samples
from harness.stages import CACHE_FOLDERS, STAGES, stage_keys, trial_tasks
from harness.tune.driver import train_driver_fn, trial_failures, trial_resources
from harness.tune.invocation import Invocation
from harness.tune.live_view import LiveView
from harness.tune.session import concurrency, describe, ray_session
from harness.user_input import SAFE_NAME


@dataclass(frozen=True)
class TrialPlan:
    variant: str
    seed: int
    cfg: ExperimentConfig

    @property
    def key(self) -> str:
        return f"{self.variant}-seed{self.seed}"


def plan_trials(spec: AblationSpec, profile: str | None, seeds: int, overrides: dict[str, Any],
                compute: dict[str, Any], only: list[str] | None = None) -> list[TrialPlan]:
    """Every variant x seed; `only`: names of variants or of methods (every variant of that method,
    e.g. `uniglor` for UniGloR's own rows), each item possibly comma-separated."""
    names = [n.strip() for item in only or [] for n in item.split(",") if n.strip()]
    methods = set(spec.methods.values())
    for name in names:
        if name not in spec.variants and name not in methods:
            raise ConfigError(f"--only {name}: not a variant of {spec.name} (one of {', '.join(spec.variants)}) "
                              f"nor a method of it (one of {', '.join(dict.fromkeys(spec.methods.values()))})")
    chosen = [v for v in spec.variants if not names or v in names or spec.methods.get(v) in names]
    # Relative data paths are resolved here, on the driver: a trial runs in Ray's folder, not ours.
    return [TrialPlan(variant, seed, absolute_sources(variant_config(spec, variant, profile, {**overrides, **compute}, seed)))
            for variant in chosen for seed in range(seeds)]


def plan_stages(trials: list[TrialPlan], tasks: tuple[str, ...], results: Path,
                remote: storage.Remote | storage.NoRemote = storage.NO_REMOTE) -> dict[str, dict[str, int]]:
    """Per cache folder: how many distinct computations the trials need and how many are cached
    (here or on the remote)."""
    cache = StageCache(ResultsLayout(results).cache, remote)
    distinct: dict[str, set[str]] = {folder: set() for folder in CACHE_FOLDERS}
    for trial in trials:
        for name, key in stage_keys(trial.cfg, tasks).items():
            distinct[STAGES[name].cache_folder].add(key)
    return {s: {"distinct": len(keys), "cached": sum(cache.has_files(s, k) for k in keys)}
            for s, keys in distinct.items() if keys}


def _finished(inv: Invocation, t: TrialPlan) -> bool:
    """A result file of this trial's config, here or (with --storage, from an earlier run
    elsewhere) on the remote."""
    path = inv.layout.trial_result(inv.name, t.key)

    def here() -> bool:
        result = TrialResult.read(path)
        return result is not None and result.config_key == config_key(t.cfg)
    return here() or (storage.pull_trial_result(inv.remote, inv.results, inv.name, t.key) and here())


def run(spec: AblationSpec, trials: list[TrialPlan], *, results: Path, tracking_uri: str, address: str | None,
        max_concurrent: int | None, resume: bool, command: str, say=print,
        remote: storage.Remote | storage.NoRemote = storage.NO_REMOTE) -> dict:
    inv = Invocation(spec.name, f"ablation-{spec.name}", results.resolve(), tracking_uri, remote, say,
                     description=f"**{spec.question}** (reproduces {spec.reproduces}; variants "
                                 f"{', '.join(spec.variants)}, baseline {spec.baseline}).\n\n"
                                 f"Run: `python harness/run_ablation.py {spec.name}`. Each run of this list is one "
                                 "invocation (its table in its description and metrics); its trials are nested under it.")
    with folder_lock.hold(inv.layout.folder(spec.name), say, command):
        return _run(spec, trials, inv, address, max_concurrent, resume, command)


def _run(spec: AblationSpec, trials: list[TrialPlan], inv: Invocation, address: str | None,
         max_concurrent: int | None, resume: bool, command: str) -> dict:
    say, remote = inv.say, inv.remote
    state = inv.read_state()
    planned = {t.key: config_key(t.cfg) for t in trials}
    if resume:
        inv.check_resumable(spec.name, planned)
    data = inv.check_data([(t.cfg, t.cfg.pretrain.window) for t in trials])
    corpus_name = trials[0].cfg.data.source
    resumed = inv.start(resume, tags={
        "command": command, "profile": trials[0].cfg.profile, "corpus": corpus_name,
        "synthetic_corpus": str(corpus_name.startswith("synth")), "ablation": spec.name,
        "reproduces": spec.reproduces, "question": spec.question})
    if resumed:
        say(f"resuming {spec.name}: MLflow run {inv.parent}")
    else:
        _keep_earlier(inv, spec.name, [t.key for t in trials], state)
    inv.write_state(ablation=spec.name, command=command, trials=[t.key for t in trials], config_keys=planned)

    todo = [t for t in trials if not _finished(inv, t)]
    if len(todo) < len(trials):
        say(f"{len(trials) - len(todo)} of {len(trials)} trials already finished; running {len(todo)}")
    if todo:
        _tune(spec, todo, inv, address, max_concurrent)
        # The trials ran on any node: their results, logs and pending MLflow queues are on the
        # remote. A result there is the last writer's (the trial driver's, with its wall time).
        for t in todo:
            storage.pull_trial_result(remote, inv.results, spec.name, t.key)
    storage.pull_trials(remote, inv.results, spec.name, [t.key for t in trials], results_too=False)
    return _table(spec, trials, inv, data)


EARLIER = "earlier"  # RESULTS/NAME/earlier/INVOCATION/: what a fresh invocation found finished


def _keep_earlier(inv: Invocation, name: str, keys: list[str], state: dict) -> None:
    """A fresh invocation recomputes every trial (the stage cache still skips finished stages), but
    never deletes what an earlier one finished: that invocation's trial result files and table move
    to RESULTS/NAME/earlier/INVOCATION/ (on --storage too), with its state.json."""
    folder = inv.layout.folder(name)
    found = [inv.layout.trial_result(name, k) for k in keys if inv.layout.trial_result(name, k).is_file()]
    tables = [folder / f for f in ("table.md", "table.csv", "curve.png", side_by_side.TRANSLATIONS,
                                   side_by_side.SKELETONS) if (folder / f).is_file()]
    remote_found = [k for k in keys if inv.remote.exists(f"{storage.trial_rel(name, k)}.json")]
    if not (found or tables or remote_found):
        return
    label = str(state.get("invocation", ""))
    if not SAFE_NAME.fullmatch(label):  # no state (or an edited one): name it by its newest file
        label = time.strftime("%Y%m%d-%H%M%S", time.localtime(max((p.stat().st_mtime for p in found + tables),
                                                                  default=time.time())))
    target, n = folder / EARLIER / label, 1
    while target.exists():
        n += 1
        target = folder / EARLIER / f"{label}-{n}"
    rel = target.relative_to(folder).as_posix()
    (target / "trials").mkdir(parents=True)
    for path in found:
        path.replace(target / "trials" / path.name)
    for path in tables:
        path.replace(target / path.name)
    if inv.state_path.is_file():
        shutil.copy2(inv.state_path, target / "state.json")
    for key in remote_found:
        data = inv.remote.read_bytes(f"{storage.trial_rel(name, key)}.json")
        if data is not None:
            inv.remote.write_bytes(f"{name}/{rel}/trials/{key}.json", data)
        inv.remote.delete_file(f"{storage.trial_rel(name, key)}.json")
    inv.say(f"kept the earlier invocation's {max(len(found), len(remote_found))} finished trial result(s)"
            f"{' and table' if tables else ''} in {target}: this run recomputes them (cached stages load); "
            f"`--resume` continues that invocation instead")


def _tune(spec: AblationSpec, todo: list[TrialPlan], inv: Invocation, address: str | None,
          max_concurrent: int | None) -> None:
    first = todo[0].cfg.compute
    with ray_session(address, inv.tracking_uri) as started:
        inv.check_capacity(first, started)
        concurrent = concurrency(first, started, max_concurrent)
        ray_storage = inv.ray_storage("ray")
        grid = [TrialSpec(cfg=t.cfg, tasks=trial_tasks(t.cfg, spec.tasks), key=t.key, variant=t.variant, folder=spec.name,
                          results=str(inv.results), tracking_uri=inv.tracking_uri, experiment_id=inv.experiment_id,
                          parent_run_id=inv.parent, run_prefix=f"{spec.name}-{inv.invocation}",
                          ray_storage=ray_storage, storage_uri=inv.remote.uri,
                          tags={"variant": t.variant, "seed": str(t.seed), "ablation": spec.name}).to_tune()["spec"]
                for t in todo]
        inv.say(f"{spec.name}: {len(todo)} trials, up to {concurrent} at a time ({describe(first)})")
        tuner = tune.Tuner(
            tune.with_resources(train_driver_fn, trial_resources(first)),
            param_space={"spec": tune.grid_search(grid)},
            tune_config=tune.TuneConfig(max_concurrent_trials=concurrent, reuse_actors=True),
            run_config=tune.RunConfig(name=f"{spec.name}-{inv.invocation}", storage_path=ray_storage,
                                      failure_config=tune.FailureConfig(max_failures=trial_failures(first)), verbose=0,
                                      callbacks=[LiveView(len(todo), spec.tasks)]),
        )
        tuner.fit()


def _side_by_side(spec: AblationSpec, trials: list[TrialPlan], finished: dict[str, TrialResult],
                  layout: ResultsLayout, out_dir: Path) -> list[Path]:
    """translations.md and skeletons.png: every row's trial of the lowest finished seed on the same
    test sentences (tables 6, 8, figure 4), from the trials' results and their folders' pose samples."""
    seed = min(t.seed for t in trials if t.key in finished)
    production = "text2sign" in spec.tasks
    rows = [side_by_side.Row(t.variant, t.key, finished.get(t.key),
                             read_pose_samples(layout.pose_samples(spec.name, t.key))
                             if production and t.key in finished else None, trial_tasks(t.cfg, spec.tasks))
            for t in trials if t.seed == seed]
    return side_by_side.write(spec.name, spec.tasks, rows, seed, out_dir, trials[0].cfg.data.source,
                              trials[0].cfg.profile)


def _table(spec: AblationSpec, trials: list[TrialPlan], inv: Invocation, data: list[str] | None = None) -> dict:
    """The paper's table from the finished trials' test results, logged to the parent run; `data`:
    each trial's data in words (Invocation.check_data), for the footer (None: no data lines)."""
    say, out_dir = inv.say, inv.layout.folder(spec.name)
    finished = {t.key: TrialResult.read(inv.layout.trial_result(spec.name, t.key))
                for t in trials if _finished(inv, t)}
    missing = [t.key for t in trials if t.key not in finished]
    rows_in = [{"variant": t.variant, "seed": t.seed, "task": task,
                "metrics": finished[t.key].tasks[task].test.metrics,
                "hypotheses": finished[t.key].tasks[task].test.hypotheses,
                "references": finished[t.key].tasks[task].test.references}
               for t in trials if t.key in finished for task in trial_tasks(t.cfg, spec.tasks)]
    failed = {k: why for k in missing if (why := inv.layout.failure(spec.name, k))}
    table: dict[str, Any] = {"missing": missing, "failed": failed, "experiment_id": inv.experiment_id}
    walls = [(r.trial_wall_s, r.seconds) for r in finished.values() if r.trial_wall_s and r.seconds]
    if walls:
        total_wall, total_stages = sum(w for w, _ in walls), sum(s for _, s in walls)
        table["overhead"] = {"trials": len(walls), "trial_wall_s": round(total_wall, 1),
                             "stages_s": round(total_stages, 1), "ratio": round(total_wall / total_stages, 3)}
        say(f"orchestration overhead: {total_wall:.0f} s of trial wall time for {total_stages:.0f} s of stage work "
            f"({total_wall / total_stages:.2f}x)")
    files: list[Path] = []
    if rows_in:
        corpus_name = trials[0].cfg.data.source
        rows = report.build_table(rows_in, list(spec.variants), spec.baseline, compare_to=spec.compare_to)
        probe = reading.probe_columns({v: [finished[t.key].pretrain_metrics for t in trials
                                           if t.variant == v and t.key in finished] for v in spec.variants})
        rows = [{**r, **probe.get(r["variant"], {})} for r in rows]
        seeds = sorted({t.seed for t in trials})
        degenerate = report.degenerate_outputs(rows_in, list(spec.variants))
        translates = any(t in ("sign2text", "text2sign") for t in spec.tasks)
        for line in degenerate:
            say(f"warning: {line}")
        footer = report.footer_text(corpus_name, trials[0].cfg.profile, seeds, inv.commit,
                                    corpus_name.startswith("synth"), baseline=spec.baseline, degenerate=degenerate,
                                    recognition="recognition" in spec.tasks, translation=translates,
                                    isolated=trials[0].cfg.recognition.source,
                                    readings=reading.reading(rows, spec.baseline, compare_to=spec.compare_to),
                                    probe=reading.probe_text(probe),
                                    methods=reading.methods_text(rows, spec.methods),
                                    data=reading.data_lines([(t.variant, text) for t, text in zip(trials, data or [])]),
                                    # A recognition table's rows share a pretraining: its weights say nothing of them.
                                    weights=[] if not translates else reading.weights_text(
                                        {v: [finished[t.key].pretrain_metrics for t in trials
                                             if t.variant == v and t.key in finished] for v in spec.variants}))
        title = f"{spec.name}: {spec.question} (reproduces {spec.reproduces})"
        if missing:  # a partial table says so where it is read, not only in the terminal
            title += f" [PARTIAL: {len(missing)} of {len(trials)} trials missing]"
            footer = (f"**Partial table: trial(s) {', '.join(missing)} did not finish"
                      + "".join(f"; {k}: {why}" for k, why in failed.items()) + ".**\n\n" + footer)
        markdown = report.write_table(rows, out_dir, title, footer, baseline=spec.baseline,
                                      baselines=set(spec.compare_to.values()))
        files = [out_dir / "table.md", out_dir / "table.csv"]
        if spec.curve:
            png = out_dir / "curve.png"
            figures.plot_curve(rows, spec.curve["x"], "bleu4", "sign2text", png,
                              f"Sign-to-text BLEU-4 over {spec.curve.get('xlabel', 'x')} ({corpus_name})",
                              x_label=spec.curve.get("xlabel", "x"))
            files.append(png)
        files += _side_by_side(spec, trials, finished, inv.layout, out_dir)
        table.update({"rows": rows, "markdown": markdown, "files": [str(f) for f in files], "degenerate": degenerate})
    # The tables are on disk; a tracking server lost by now is reported, not a traceback, and
    # `--resume` (server back) replays the trials' queued logs and logs the table.
    try:
        pending = inv.replay_pending()
        # A trial whose result file exists is done; a driver (or trial actor) killed between that
        # file and the run's end status left its run RUNNING: close it (it will not be rerun).
        for key in finished:
            run_id = tracking.find_trial_run(inv.tracking_uri, inv.experiment_id, inv.parent, key)
            if run_id and tracking.run_status(inv.tracking_uri, run_id) == "RUNNING":
                tracking.set_terminated(inv.tracking_uri, run_id, "FINISHED")
        if rows_in:
            tracking.log_table(inv.tracking_uri, inv.parent, table["rows"], "table.json")
            # The runs list shows the winner: each variant's mean and std as the parent's metrics, the table
            # itself as its description.
            headline = report.headline_metrics(table["rows"])
            tracking.log_metrics(inv.tracking_uri, inv.parent, headline)
            # The runs table's columns: each task's BLEU-4 (what the table tests) per variant.
            tracking.set_runs_view(inv.tracking_uri, inv.experiment_id,
                                   [k for k in headline if ".test_bleu4." in k and k.endswith(".mean")])
            tracking.set_tags(inv.tracking_uri, inv.parent, {tracking.DESCRIPTION_TAG: table["markdown"]})
            # In words where the runs list shows it: a table of untrained models is not a finding.
            tracking.set_tags(inv.tracking_uri, inv.parent, {"degenerate_outputs": " ".join(degenerate) or "none"})
            for f in files:
                tracking.log_artifact(inv.tracking_uri, inv.parent, f)
        inv.close_parent("FAILED" if missing else "FINISHED")
        if pending:
            table["tracking_error"] = (f"{pending} trial log entries could not be sent to {inv.tracking_uri}; they "
                                       f"wait under {out_dir / 'trials'}/*/pending")
    except tracking.ERRORS as exc:
        table["tracking_error"] = f"{inv.tracking_reason(exc)}; the table was not logged to MLflow"
    error = inv.publish([t.key for t in trials], [inv.state_path] + files)
    if error:
        table["storage_error"] = error
    table["parent_run_id"] = inv.parent
    return table
