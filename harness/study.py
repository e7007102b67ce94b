"""An ablation as one Ray Tune experiment (DESIGN.md "The harness"; paper section 6).

Three levels, as Ray's examples name them: `worker.train_loop_per_worker` (one worker) ->
`tune_trial` (one trial: builds the TorchTrainer, owns the trial's MLflow run) -> `run` (the Tuner
over variants x seeds, then the table). The MLflow parent run is created here before `fit()`;
trial runs are found again by a tag, so a retried or resumed trial continues its own run.
`--resume` reruns only the trials without a result file; finished stages load from the cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import storage
from harness.ablation import AblationSpec, variant_config
from harness.config import ConfigError, ExperimentConfig, flatten
from harness.pipeline import check_window, prepare, stage_keys, stage_of
from harness.stages import STAGES, StageCache
from harness.storage import Remote
from harness.worker import trial_result_path, write_result

DEFAULT_SEEDS = {"debug": 1, "default": 3, "paper": 3}


@dataclass(frozen=True)
class TrialPlan:
    variant: str
    seed: int
    cfg: ExperimentConfig

    @property
    def key(self) -> str:
        return f"{self.variant}-seed{self.seed}"

    @property
    def config_key(self) -> str:
        return hashlib.sha256(json.dumps(dataclasses.asdict(self.cfg), sort_keys=True).encode()).hexdigest()[:16]


def plan_trials(spec: AblationSpec, profile: str | None, seeds: int, overrides: dict[str, Any],
                compute: dict[str, Any], only: list[str] | None = None) -> list[TrialPlan]:
    for variant in only or []:
        if variant not in spec.variants:
            raise ConfigError(f"--only {variant}: not a variant of {spec.name} (one of {', '.join(spec.variants)})")
    trials = []
    for variant in spec.variants:
        if only and variant not in only:
            continue
        for seed in range(seeds):
            cfg = variant_config(spec, variant, profile, {**overrides, **compute}, seed)
            trials.append(TrialPlan(variant, seed, cfg))
    return trials


def plan_stages(trials: list[TrialPlan], tasks: tuple[str, ...], results: Path, remote: Remote | None = None
                ) -> dict[str, dict[str, int]]:
    """Per stage: how many distinct computations the trials need and how many are cached (here or
    on the remote)."""
    cache = StageCache(results / "cache", remote)
    distinct: dict[str, set[str]] = {s: set() for s in STAGES}
    for trial in trials:
        for name, key in stage_keys(trial.cfg, tasks).items():
            distinct[stage_of(name)].add(key)
    return {s: {"distinct": len(keys), "cached": sum(cache.has_files(s, k) for k in keys)}
            for s, keys in distinct.items() if keys}


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parents[1])
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=Path(__file__).resolve().parents[1]).stdout.strip()
        return (out.stdout.strip() or "unknown") + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# --------------------------------------------------------------------------------------------
# The live view
# --------------------------------------------------------------------------------------------

def _progress(stage: str, epoch: int, epochs: int, tasks: tuple[str, ...]) -> float:
    order = ["pretrain", "sign2text", "backtranslator", "text2sign"]
    order = [s for s in order if s == "pretrain" or s in tasks or (s == "backtranslator" and "text2sign" in tasks)]
    if stage == "done":
        return 1.0
    if stage not in order:
        return 0.0
    return (order.index(stage) + (epoch / max(epochs, 1))) / len(order)


def make_live_view(total: int, tasks: tuple[str, ...], stream=sys.stdout):
    from ray.tune import Callback

    class LiveView(Callback):
        """One line per change: each trial's stage, epoch and latest metric, trials done, ETA."""

        def __init__(self):
            self.start = time.time()
            self.state: dict[str, dict] = {}
            self.done = 0
            self.last_print = 0.0

        def _key(self, trial) -> str:
            return trial.config["trial"]["key"]

        def on_trial_result(self, iteration, trials, trial, result, **info):
            stage = str(result.get("stage", "?"))
            epoch, epochs = int(result.get("epoch", 0) or 0), int(result.get("epochs", 0) or 0)
            metric = next(((k, v) for k, v in result.items() if isinstance(k, str) and k.startswith(stage + "/")
                           and ("dev_" in k or "loss" in k) and isinstance(v, (int, float))), None)
            self.state[self._key(trial)] = {"stage": stage, "epoch": epoch, "epochs": epochs, "metric": metric}
            now = time.time()
            if now - self.last_print >= 2.0 or stage == "done":
                self.last_print = now
                self._print(self._key(trial))

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.done += 1
            self.state[self._key(trial)] = {"stage": "done", "epoch": 0, "epochs": 0, "metric": None}
            self._print(self._key(trial))

        def on_trial_error(self, iteration, trials, trial, **info):
            stream.write(f"  trial {self._key(trial)} FAILED; see its log under the results folder\n")
            stream.flush()

        def _print(self, key: str) -> None:
            s = self.state[key]
            fractions = [_progress(v["stage"], v["epoch"], v["epochs"], tasks) for v in self.state.values()]
            progress = (sum(fractions) + 0.0) / max(total, 1)
            elapsed = time.time() - self.start
            eta = f"ETA {elapsed * (1 - progress) / progress / 60:.1f} min" if progress > 0.02 else "ETA ?"
            what = "finished" if s["stage"] == "done" else f"{s['stage']} epoch {s['epoch']}/{s['epochs']}"
            metric = f" {s['metric'][0].split('/')[-1]}={s['metric'][1]:.4g}" if s["metric"] else ""
            stream.write(f"[{elapsed / 60:5.1f} min] {self.done}/{total} trials done | {key}: {what}{metric} | {eta}\n")
            stream.flush()

    return LiveView()


# --------------------------------------------------------------------------------------------
# One trial (runs inside a Tune trial actor)
# --------------------------------------------------------------------------------------------

def tune_trial(config: dict) -> None:
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    from harness import tracking
    from harness.worker import train_loop_per_worker

    started = time.time()
    t, ctx = config["trial"], config["ctx"]
    compute = t["cfg"]["compute"]
    uri = ctx["tracking_uri"]
    run_id = tracking.trial_run(uri, ctx["experiment_id"], ctx["parent_run_id"], t["key"], run_name=t["key"],
                                tags={"variant": t["variant"], "seed": str(t["seed"]), "task": ",".join(ctx["tasks"]),
                                      "ablation": ctx["ablation"], "profile": t["cfg"]["profile"]},
                                params=t["params"])
    gpus = float(compute["gpus_per_worker"])
    resources = {"CPU": float(compute["cpus_per_worker"])}
    if gpus:
        resources["GPU"] = gpus
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"cfg": t["cfg"], "tasks": ctx["tasks"], "results": ctx["results"], "ablation": ctx["ablation"],
                           "trial_key": t["key"], "variant": t["variant"], "config_key": t["config_key"],
                           "tracking_uri": uri, "run_id": run_id, "storage_uri": ctx["storage_uri"]},
        scaling_config=ray.train.ScalingConfig(num_workers=int(compute["workers_per_trial"]), use_gpu=gpus > 0,
                                               resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            # Deterministic name: a rerun of this trial resumes its Train run from the last checkpoint.
            name=f"{ctx['ablation']}-{ctx['invocation']}-{t['key']}",
            storage_path=ctx["storage"],
            failure_config=ray.train.FailureConfig(max_failures=int(compute["max_failures"])),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
            callbacks=[TuneReportCallback()],
        ),
    )
    results = Path(ctx["results"])
    remote = storage.remote_of(ctx["storage_uri"])
    try:
        trainer.fit()
    except BaseException:
        close_failed(uri, run_id, results, ctx["ablation"], t["key"], remote)
        raise
    closer = trial_closer(uri, run_id, results, ctx["ablation"], t["key"], remote)
    # Orchestration overhead: this trial's wall time through Tune and Train next to the time its
    # stages took inside the worker (what the same stages cost in-process).
    path = trial_result_path(results, ctx["ablation"], t["key"])
    if remote is not None and not storage.pull_trial_result(remote, results, ctx["ablation"], t["key"]):
        path.unlink(missing_ok=True)  # a stale copy from an earlier invocation on this node
    if path.is_file():
        result = json.loads(path.read_text())
        result["trial_wall_s"] = time.time() - started
        write_result(path, result)
        closer.log_metrics({"trial/wall_s": result["trial_wall_s"], "trial/stages_s": result["seconds"],
                            "trial/overhead": result["trial_wall_s"] / max(result["seconds"], 1e-9)})
    closer.set_terminated("FINISHED")
    closer.flush()
    storage.push_trial(remote, results, ctx["ablation"], t["key"])


def trial_closer(uri: str, run_id: str, results: Path, folder: str, key: str, remote: Remote | None):
    """The SafeLogger a Tune trial (ablation or search) ends its MLflow run through, on the trial's
    pending file: a tracking server lost mid-study must not turn a trained trial into a failed (and
    retried) one. With --storage, rank 0 may have run on another node: its queue comes first
    (replayed in order)."""
    from harness import tracking
    storage.pull_trial_folder(remote, results, folder, key)
    return tracking.SafeLogger(uri, run_id, Path(results) / folder / "trials" / key / "pending")


def close_failed(uri: str, run_id: str, results: Path, folder: str, key: str, remote: Remote | None) -> None:
    """A Tune trial whose TorchTrainer failed: its run ends FAILED (queued if MLflow is away) and,
    with --storage, its folder goes to the remote; a storage error never hides the trial's own."""
    try:
        failed = trial_closer(uri, run_id, results, folder, key, remote)
    except storage.REMOTE_ERRORS:  # the end status matters more than merging the queue
        failed = trial_closer(uri, run_id, results, folder, key, None)
        remote = None
    failed.set_terminated("FAILED")
    failed.flush()
    with contextlib.suppress(*storage.REMOTE_ERRORS):
        storage.push_trial(remote, results, folder, key, result=False)


def replay_pending(results: Path, ablation: str, uri: str) -> int:
    """Log what trials queued while the tracking store was away (SafeLogger files
    RESULTS/NAME/trials/KEY/pending/pending-RUN_ID.jsonl); returns the entries still not logged."""
    from mlflow.exceptions import MlflowException

    from harness import tracking
    left = 0
    for path in sorted((Path(results) / ablation / "trials").glob("*/pending/pending-*.jsonl")):
        run_id = path.stem[len("pending-"):]
        try:
            tracking._client(uri).get_run(run_id)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                continue  # a run of another tracking store: its queue waits for that store
            raise
        left += tracking.SafeLogger(uri, run_id, path.parent, probe_timeout_s=5.0).flush()
    return left


def check_results_folder(results: Path) -> None:
    """An unwritable results folder fails now, in one line, not after hours of training."""
    try:
        results.mkdir(parents=True, exist_ok=True)
        probe = results / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write to the results folder {results}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------------------------
# The study
# --------------------------------------------------------------------------------------------

def check_ray_address(address: str | None, timeout_s: float = 5.0) -> None:
    """Fail in seconds, with one line, when --address names a host:port nothing listens on
    (ray.init itself retries for minutes)."""
    import socket
    if not address or address in ("local", "auto"):
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address must be HOST:PORT, ray://HOST:PORT or auto, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at --address {address}: {exc.strerror or exc}") from None


def init_ray(address: str | None, quiet: bool = True) -> bool:
    """Connect to `address` or start a local Ray; returns True when we started it (and must stop it)."""
    import logging

    import ray
    os.environ.setdefault("RAY_AUTH_MODE", "disabled") if not address else None
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    # Keep Ray's own console output out of the way: the live view reports progress instead.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR, "configure_logging": True}
    # Every process of the study gets RAY_ADDRESS = this cluster. Ray Train's placement-group
    # cleaner asks the state API with no address; on a host running several Ray instances (tests,
    # two studies) that lookup fails or finds another cluster, and a finished trial's placement
    # group is never removed: the next trial then waits for CPUs forever.
    if address:
        target = address.split("://", 1)[-1]
        if "://" not in address and target not in ("auto", "local"):
            kwargs["runtime_env"] = {"env_vars": {"RAY_ADDRESS": target}}
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot reach the Ray cluster at --address {address}: {str(exc).splitlines()[0]}") from None
        return False
    # A local Ray whose GCS port we choose, so its address is known before it starts, and a
    # dashboard on a free port: the state API behind that cleaner is the dashboard, and the
    # default port 8265 belongs to whichever Ray on this host took it first.
    import socket

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("", 0))
            return s.getsockname()[1]
    previous = os.environ.get("RAY_GCS_SERVER_PORT")
    for attempt in (1, 2):
        port = free_port()
        kwargs["dashboard_port"] = free_port()
        kwargs["runtime_env"] = {"env_vars": {"RAY_ADDRESS": f"{ray.util.get_node_ip_address()}:{port}"}}
        os.environ["RAY_GCS_SERVER_PORT"] = str(port)  # read by the head node as it starts
        try:
            # One extra CPU slot holds the trial drivers' 0.01-CPU reservations (a Tune function trial
            # cannot ask for 0 CPU), so on 2 cores two 1-CPU trial workers still run at once.
            # address="local": a new Ray of our own. Without it ray.init() joins whatever cluster the last
            # `ray start` (or a test's ray.cluster_utils.Cluster) recorded in /tmp/ray/ray_current_cluster,
            # even a dead one, and then refuses num_cpus.
            ray.init(address="local", num_cpus=(os.cpu_count() or 1) + 1, **kwargs)
            break
        except Exception as exc:  # Ray's own bare Exception when its node is not up within 30 s
            if "timed out during startup" not in str(exc):
                raise
            ray.shutdown()
            if attempt == 2:
                raise ConfigError("a local Ray did not start within Ray's 30 s, twice (is the machine overloaded?); "
                                  "try again, or pass --address of a running cluster") from None
        finally:
            if previous is None:
                os.environ.pop("RAY_GCS_SERVER_PORT", None)
            else:
                os.environ["RAY_GCS_SERVER_PORT"] = previous
    return True


def run(spec: AblationSpec, trials: list[TrialPlan], *, results: Path, tracking_uri: str, address: str | None,
        max_concurrent: int | None, resume: bool, command: str, say=print, remote: Remote | None = None) -> dict:
    import ray
    from ray import tune

    from harness import report, tracking

    results = results.resolve()
    tasks = spec.tasks
    out_dir = results / spec.name
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / "state.json"
    if remote is not None and not state_path.is_file():  # --resume from another node than the last run's
        remote.download_file(f"{spec.name}/state.json", state_path)
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}

    # Data once, in the driver: a bad file or a too-long window fails before any training.
    cache = StageCache(results / "cache", remote)
    for cfg in {json.dumps(dataclasses.asdict(t.cfg.data), sort_keys=True): t.cfg for t in trials}.values():
        key = stage_keys(cfg, tasks)["prepare"]
        corpus = prepare(cfg.data.source, cfg, cache, key, say)
        for t in trials:
            if dataclasses.asdict(t.cfg.data) == dataclasses.asdict(cfg.data):
                check_window(corpus, t.cfg.pretrain.window, cfg.data.source)

    experiment = f"ablation-{spec.name}"
    experiment_id = tracking.ensure_experiment(tracking_uri, experiment,
                                               storage.artifact_root(results, tracking_uri, remote))
    commit = git_commit()
    corpus_name = trials[0].cfg.data.source
    synthetic = corpus_name.startswith("synth")
    if resume and state.get("parent_run_id") and state.get("tracking_uri") == tracking_uri:
        parent = state["parent_run_id"]
        tracking.resume_parent(tracking_uri, parent)
        invocation = state["invocation"]
        say(f"resuming {spec.name}: MLflow run {parent}")
    else:
        if state.get("parent_run_id") and state.get("tracking_uri") == tracking_uri:
            # A previous invocation that never finished: close it and its dangling trial runs.
            tracking.close_dangling(tracking_uri, state["experiment_id"], state["parent_run_id"], keep=set())
        invocation = time.strftime("%Y%m%d-%H%M%S")
        parent = tracking.start_parent(tracking_uri, experiment_id, f"{spec.name} {invocation}", tags={
            "command": command, "profile": trials[0].cfg.profile, "corpus": corpus_name,
            "synthetic_corpus": str(synthetic), "git_commit": commit, "ablation": spec.name,
            "reproduces": spec.reproduces, "question": spec.question})
        for t in trials:  # a fresh invocation recomputes results (the stage cache still skips work)
            trial_result_path(results, spec.name, t.key).unlink(missing_ok=True)
            if remote is not None:
                remote.delete_file(f"{storage.trial_rel(spec.name, t.key)}.json")
    state = {"parent_run_id": parent, "experiment_id": experiment_id, "tracking_uri": tracking_uri,
             "invocation": invocation, "trials": [t.key for t in trials]}
    state_path.write_text(json.dumps(state, indent=1))
    if remote is not None:
        remote.upload_file(state_path, f"{spec.name}/state.json")

    def finished_here(t: TrialPlan) -> bool:
        path = trial_result_path(results, spec.name, t.key)
        if not path.is_file():
            return False
        try:
            return json.loads(path.read_text()).get("config_key") == t.config_key
        except ValueError:
            return False

    def finished(t: TrialPlan) -> bool:
        # With --storage a trial that finished in an earlier run elsewhere has its result only there.
        return finished_here(t) or (storage.pull_trial_result(remote, results, spec.name, t.key) and finished_here(t))

    todo = [t for t in trials if not finished(t)]
    if len(todo) < len(trials):
        say(f"{len(trials) - len(todo)} of {len(trials)} trials already finished; running {len(todo)}")
    if todo:
        started = init_ray(None if address in (None, "", "local") else address)
        try:
            first = todo[0].cfg.compute
            # A worker no node can hold (a GPU on a CPU-only machine) would wait forever, silently.
            need = {"CPU": first.cpus_per_worker, **({"GPU": first.gpus_per_worker} if first.gpus_per_worker else {})}
            nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
            if not any(all(r.get(k, 0.0) >= v for k, v in need.items()) for r in nodes):
                most = ", ".join(f"{max((r.get(k, 0.0) for r in nodes), default=0.0):g} {k}" for k in need)
                problem = (f"no Ray node can hold a trial worker ({' + '.join(f'{v:g} {k}' for k, v in need.items())}"
                           f" each; the largest node has {most})")
                if started:
                    tracking.set_terminated(tracking_uri, parent, "FAILED")
                    raise ConfigError(f"{problem}: lower --cpus-per-worker / --gpus-per-worker, or pass --address "
                                      f"of a cluster that has such nodes")
                say(f"warning: {problem}: the trials wait until the cluster's autoscaler adds such a node")
            per_trial = first.workers_per_trial * first.cpus_per_worker
            cpus = ray.cluster_resources().get("CPU", 1) - (1 if started else 0)  # minus the drivers' slot
            concurrent = max_concurrent or max(1, int(cpus // per_trial))
            ctx = {"tracking_uri": tracking_uri, "experiment_id": experiment_id, "parent_run_id": parent,
                   "results": str(results), "ablation": spec.name, "tasks": list(tasks), "invocation": invocation,
                   "storage": storage.ray_storage(remote, results, "ray"),
                   "storage_uri": remote.uri if remote is not None else None}
            grid = [{"key": t.key, "variant": t.variant, "seed": t.seed, "cfg": dataclasses.asdict(t.cfg),
                     "config_key": t.config_key, "params": {k: str(v) for k, v in flatten(t.cfg).items()}}
                    for t in todo]
            say(f"{spec.name}: {len(todo)} trials, up to {concurrent} at a time "
                f"({first.workers_per_trial} worker(s) x {first.cpus_per_worker:g} CPU"
                f"{f' + {first.gpus_per_worker:g} GPU' if first.gpus_per_worker else ''} each)")
            tuner = tune.Tuner(
                tune.with_resources(tune_trial, {"CPU": 0.01}),
                param_space={"trial": tune.grid_search(grid), "ctx": ctx},
                tune_config=tune.TuneConfig(max_concurrent_trials=concurrent, reuse_actors=False),
                run_config=tune.RunConfig(name=f"{spec.name}-{invocation}", storage_path=ctx["storage"],
                                          failure_config=tune.FailureConfig(max_failures=1), verbose=0,
                                          callbacks=[make_live_view(len(todo), tasks)]),
            )
            tuner.fit()
        finally:
            if started:
                ray.shutdown()
        if remote is not None:
            # The trials ran on any node: their results, logs and pending MLflow queues are on the
            # remote. A result there is the last writer's (the trial driver's, with its wall time).
            for t in todo:
                storage.pull_trial_result(remote, results, spec.name, t.key)
    storage.pull_trials(remote, results, spec.name, [t.key for t in trials], results_too=False)

    missing = [t.key for t in trials if not finished(t)]
    trial_results = []
    for t in trials:
        if t.key in missing:
            continue
        result = json.loads(trial_result_path(results, spec.name, t.key).read_text())
        for task in tasks:
            test = result[task]["test"]
            trial_results.append({"variant": t.variant, "seed": t.seed, "task": task, "metrics": test["metrics"],
                                  "hypotheses": test["hypotheses"], "references": test["references"]})
    table = {"missing": missing}
    walls = [(r.get("trial_wall_s"), r.get("seconds")) for r in
             (json.loads(trial_result_path(results, spec.name, t.key).read_text()) for t in trials if t.key not in missing)]
    walls = [(w, s) for w, s in walls if w and s]
    if walls:
        total_wall, total_stages = sum(w for w, _ in walls), sum(s for _, s in walls)
        table["overhead"] = {"trials": len(walls), "trial_wall_s": round(total_wall, 1),
                             "stages_s": round(total_stages, 1), "ratio": round(total_wall / total_stages, 3)}
        say(f"orchestration overhead: {total_wall:.0f} s of trial wall time for {total_stages:.0f} s of stage work "
            f"({total_wall / total_stages:.2f}x)")
    if trial_results:
        rows = report.build_table(trial_results, list(spec.variants), spec.baseline)
        seeds = sorted({t.seed for t in trials})
        footer = report.footer_text(corpus_name, trials[0].cfg.profile, seeds, commit, synthetic, baseline=spec.baseline)
        title = f"{spec.name}: {spec.question} (reproduces {spec.reproduces})"
        markdown = report.write_table(rows, out_dir, title, footer, baseline=spec.baseline)
        files = [out_dir / "table.md", out_dir / "table.csv"]
        if spec.curve:
            png = out_dir / "curve.png"
            report.plot_curve(rows, spec.curve["x"], "bleu4", "sign2text", png,
                              f"Sign-to-text BLEU-4 over {spec.curve.get('xlabel', 'x')} ({corpus_name})",
                              x_label=spec.curve.get("xlabel", "x"))
            files.append(png)
        table.update({"rows": rows, "markdown": markdown, "files": [str(f) for f in files]})
    # The tables are on disk; a tracking server lost by now is reported, not a traceback, and
    # `--resume` (server back) replays the trials' queued logs and logs the table.
    from mlflow.exceptions import MlflowException
    try:
        pending = replay_pending(results, spec.name, tracking_uri)
        # A trial whose result file exists is done; a driver (or trial actor) killed between that
        # file and the run's end status left its run RUNNING: close it (it will not be rerun).
        for t in trials:
            if t.key not in missing:
                run_id = tracking.find_trial_run(tracking_uri, experiment_id, parent, t.key)
                if run_id and tracking._client(tracking_uri).get_run(run_id).info.status == "RUNNING":
                    tracking.set_terminated(tracking_uri, run_id, "FINISHED")
        if trial_results:
            tracking.log_table(tracking_uri, parent, rows, "table.json")
            for f in files:
                tracking.log_artifact(tracking_uri, parent, f)
        tracking.set_terminated(tracking_uri, parent, "FAILED" if missing else "FINISHED")
        if pending:
            table["tracking_error"] = (f"{pending} trial log entries could not be sent to {tracking_uri}; they wait "
                                       f"under {out_dir / 'trials'}/*/pending")
    except (MlflowException, tracking.TrackingError, OSError) as exc:
        try:  # the probe's one line says why better than MLflow's retry message
            tracking.check_reachable(tracking_uri, timeout_s=2.0)
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        except tracking.TrackingError as probe:
            reason = str(probe)
        table["tracking_error"] = f"{reason}; the table was not logged to MLflow"
    error = storage.publish(remote, results, spec.name, [t.key for t in trials],
                            [state_path] + (files if trial_results else []))
    if error:
        table["storage_error"] = error
    table["parent_run_id"] = parent
    return table
