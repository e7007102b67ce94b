"""One invocation of `run_ablation.py` or `run_search.py`: what both drivers do around their Tuner.

RESULTS/<name>/state.json names the invocation's MLflow parent run, so `--resume` continues it; a
fresh invocation closes the runs an unfinished earlier one left RUNNING. The data is prepared once
in the driver, before any trial: a bad file or a window longer than a sequence fails in one line,
not inside every trial. At the end the trials' queued MLflow logs are replayed and the results
folder is mirrored to `--storage`.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness import storage, tracking
from harness.cache import StageCache
from harness.config import ComputeConfig, ConfigError, ExperimentConfig
from harness.io import atomic_write
from harness.loop import Runtime
from harness.pipeline import isolated_corpus, prepare_source
from harness.results import ResultsLayout
from harness.datasource import check_window, data_text, mixing
from harness.stages import method_of
from harness.tune.session import check_capacity

_REPO = Path(__file__).resolve().parents[2]
RESULTS_MARK = "{results}"  # the results folder, in a stored path


def _relative_uri(uri: str, results: Path) -> str:
    """A sqlite:/// URI of a file inside `results`, with the folder as RESULTS_MARK; others as they are."""
    prefix = f"sqlite:///{results}/"
    return f"sqlite:///{RESULTS_MARK}/{uri[len(prefix):]}" if uri.startswith(prefix) else uri


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=_REPO)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=_REPO).stdout.strip()
        return (out.stdout.strip() or "unknown") + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass
class Invocation:
    name: str  # the folder under RESULTS: "apw", "search/sign2text"
    experiment: str  # the MLflow experiment: "ablation-apw", "search-sign2text"
    results: Path
    tracking_uri: str
    remote: storage.Remote | storage.NoRemote
    say: Callable[[str], None] = print
    state: dict[str, Any] = field(default_factory=dict)  # the previous invocation's, until `start`
    experiment_id: str = ""
    parent: str = ""
    invocation: str = ""  # its timestamp: Tune and Train run names carry it
    commit: str = ""  # the code's git commit, in the parent run's tags and the tables' footers
    description: str = ""  # the MLflow experiment's: what it asks and how to run it

    @property
    def layout(self) -> ResultsLayout:
        return ResultsLayout(self.results)

    @property
    def state_path(self) -> Path:
        return self.layout.state(self.name)

    @property
    def cache(self) -> StageCache:
        return StageCache(self.layout.cache, self.remote)

    def read_state(self, pull: bool = True) -> dict[str, Any]:
        """The last invocation's state: here or, with `pull`, on the remote (a --resume from another
        node; a search's study lives on one node only, so its state is not pulled)."""
        path = self.state_path
        path.parent.mkdir(parents=True, exist_ok=True)
        if pull and not path.is_file():
            self.remote.download_file(f"{self.name}/state.json", path)
        try:
            self.state = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError):
            raise ConfigError(f"{path}: not a readable state file (JSON written by run_ablation.py / "
                              f"run_search.py); move it away to start afresh") from None
        if not isinstance(self.state, dict):
            raise ConfigError(f"{path}: not a state file (expected a JSON object); move it away to start afresh")
        if isinstance(self.state.get("tracking_uri"), str):
            self.state["tracking_uri"] = self.state["tracking_uri"].replace(RESULTS_MARK, str(self.results))
        return self.state

    def check_resumable(self, name: str, planned: dict[str, str]) -> None:
        """`--resume` continues the invocation in the state file, or refuses in one line: no state,
        another ablation's, other settings (each trial's config key), another tracking store."""
        st, path = self.state, self.state_path
        if not st.get("parent_run_id"):
            raise ConfigError(f"nothing to resume: {path} does not exist (run without --resume first)")
        if st.get("ablation", name) != name:
            raise ConfigError(f"--resume: {path} is the state of ablation {st['ablation']!r}, not {name!r}")
        earlier = st.get("config_keys")
        if isinstance(earlier, dict) and earlier != planned:
            what = sorted(set(earlier) ^ set(planned))
            diff = (f"trials {', '.join(what[:3])}{' ...' if len(what) > 3 else ''} planned by one, not the other"
                    if what else f"trial {next(k for k in planned if planned[k] != earlier[k])} has other settings")
            raise ConfigError(f"--resume: {path} was written by `{st.get('command', '?')}`, with other settings "
                              f"({diff}); resume with the same flags, or run without --resume (the finished "
                              f"results are kept)")
        if st.get("tracking_uri") != self.tracking_uri:
            raise ConfigError(f"--resume: the invocation in {path} logged to {st.get('tracking_uri')}, not "
                              f"{self.tracking_uri}; pass --tracking-uri {st.get('tracking_uri')}")

    def check_data(self, checks: list[tuple[ExperimentConfig, int]]) -> list[str]:
        """Prepare each distinct data config once (and each `pretrain.extra_source` with it) and check
        each window against it, and each Hugging Face text encoder (before anything trains: the stage
        would find it only after pretraining). Returns each check's data in words (its frame rates
        and how an extra source was mixed in: harness.datasource.data_text), for the table footer."""
        from harness.stages.text2sign import text_tokenizer
        for path in sorted({cfg.text2sign.text_encoder for cfg, _ in checks} - {"learned"}):
            text_tokenizer(path)
        corpora: dict[tuple[str, str], Any] = {}
        isolated: dict[str, Any] = {}

        def prepared(spec: str, cfg: ExperimentConfig) -> Any:
            ident = (spec, json.dumps(dataclasses.asdict(cfg.data), sort_keys=True))
            if ident not in corpora:
                corpora[ident] = prepare_source(spec, cfg, self.cache, Runtime(say=self.say))
            return corpora[ident]
        texts = []
        for cfg, window in checks:
            main = prepared(cfg.data.source, cfg)
            check_window(main, window, cfg.data.source)
            extra, extra_corpus, mixed = cfg.pretrain.extra_source, None, None
            if extra:
                extra_corpus = prepared(extra, cfg)
                check_window(extra_corpus, window, extra)
                mixed = mixing(main, extra_corpus, cfg.data.source, extra, cfg.pretrain.parts)
            texts.append(data_text(cfg.data.source, main, cfg.data.fps, extra, extra_corpus, mixed))
            # Every trial that pretrains draws figure 5 on the isolated signs: a user's label table fails
            # here, once. A baseline's trial (method_of) neither pretrains nor reads them.
            if method_of(cfg) != "uniglor":
                continue
            key = json.dumps([dataclasses.asdict(cfg.recognition), dataclasses.asdict(cfg.data)], sort_keys=True)
            if key not in isolated:
                isolated[key] = isolated_corpus(cfg, self.cache, Runtime(say=self.say))
            coords = {int(seqs[0].keypoints.shape[-1]) for c in (main, isolated[key]) for seqs in c.values() if seqs}
            if len(coords) > 1:
                raise ConfigError(f"recognition.source {cfg.recognition.source} and data.source {cfg.data.source} "
                                  f"have different coordinates ({sorted(coords)}); expected the same (set data.dims)")
        return texts

    @property
    def same_store(self) -> bool:
        return bool(self.state.get("parent_run_id")) and self.state.get("tracking_uri") == self.tracking_uri

    def start(self, resume: bool, tags: dict[str, Any], keep_on_resume: set[str] | None = None) -> bool:
        """The parent run: the last one's on `--resume` (True), else a new one (False). A new one first
        closes what an unfinished earlier invocation left RUNNING. `keep_on_resume`: on resume, also
        close that invocation's RUNNING trial runs except these (None: leave them)."""
        uri = self.tracking_uri
        self.commit = git_commit()
        self.experiment_id = tracking.ensure_experiment(uri, self.experiment,
                                                        storage.artifact_root(self.results, uri, self.remote),
                                                        self.description)
        if resume and self.same_store:
            moved_from = self.state.get("results_at")
            if moved_from and moved_from != str(self.results):
                tracking.moved_store(uri, moved_from, str(self.results))
            self.parent = self.state["parent_run_id"]
            tracking.resume_parent(uri, self.parent)
            if keep_on_resume is not None:
                tracking.close_dangling(uri, self.experiment_id, self.parent, keep=keep_on_resume)
            self.invocation = self.state["invocation"]
            return True
        if self.same_store:
            tracking.close_dangling(uri, self.state["experiment_id"], self.state["parent_run_id"], keep=set())
        self.invocation = time.strftime("%Y%m%d-%H%M%S")
        self.parent = tracking.start_parent(uri, self.experiment_id, f"{self.name.split('/')[-1]} {self.invocation}",
                                            tags={**tags, "git_commit": self.commit})
        return False

    def write_state(self, **extra: Any) -> None:
        """The state names paths inside the results folder relative to it (the default MLflow store
        as sqlite:///{results}/mlflow.db), so `--resume` still matches after the folder moved."""
        self.state = {"parent_run_id": self.parent, "experiment_id": self.experiment_id,
                      "tracking_uri": self.tracking_uri, "invocation": self.invocation, **extra}
        stored = dict(self.state, tracking_uri=_relative_uri(self.tracking_uri, self.results),
                      results_at=str(self.results))
        atomic_write(self.state_path, json.dumps(stored, indent=1))
        self.remote.upload_file(self.state_path, f"{self.name}/state.json")

    def ray_storage(self, rel: str) -> str:
        """Ray Tune's and Train's storage_path: URI/rel with --storage (Train checkpoints must be
        where every node reaches them), else RESULTS/rel."""
        return storage.ray_storage(self.remote, self.results, rel)

    def check_capacity(self, compute: ComputeConfig, started: bool) -> None:
        """A trial worker no node can hold: on our own Ray, the parent run ends FAILED and one line."""
        try:
            check_capacity(compute, started, self.say)
        except ConfigError:
            self.close_parent("FAILED")
            raise

    def close_parent(self, status: str) -> None:
        tracking.set_terminated(self.tracking_uri, self.parent, status)

    def replay_pending(self) -> int:
        """Log what trials queued while the tracking store was away; the entries still not logged."""
        return tracking.replay_pending(self.results, self.name, self.tracking_uri)

    def tracking_reason(self, exc: BaseException) -> str:
        """One line for a tracking store that failed: the probe's says why better than MLflow's retry."""
        try:
            tracking.check_reachable(self.tracking_uri, timeout_s=2.0)
            return str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        except tracking.TrackingError as probe:
            return str(probe)

    def publish(self, keys: list[str], files: list) -> str | None:
        return storage.publish(self.remote, self.results, self.name, keys, files)
