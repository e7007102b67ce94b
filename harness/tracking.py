"""MLflow 3 tracking for studies: restore-safe, idempotent, explicit run ids (DESIGN "The harness").

Layout in MLflow: one experiment per ablation or search; a parent run per invocation (created by the
driver before Tune's fit, holding the table and figures); one nested run per trial (tag
mlflow.parentRunId), with the flattened dotted config as params, per-epoch curves and artifacts.

Why not Ray's MLflowLoggerCallback (shared/NOTES-ray-mlflow-optuna.md): after Tuner.restore every
resumed trial gets a second run and the first stays RUNNING forever. Here a trial's run is found
again by its trial key (tag harness.trial_key under its parent) and reused, params already logged
with the same value are skipped, and runs a crashed driver left RUNNING are closed by
close_dangling unless the caller is about to resume them.

Everything goes through MlflowClient with explicit run ids: no global active run, so threads and
processes can log to several runs at once.

Stores: the default is a SQLite file beside the results (default_tracking_uri) with artifacts in
results/mlartifacts; on a cluster, an `mlflow server` HTTP URI (several nodes must not share one
SQLite file). MLflow's HTTP client retries 7 times with exponential backoff by default (minutes
against a dead server); limit_http_retries() bounds that for every HTTP URI used through this
module, and check_reachable() answers in seconds before a study starts.

SafeLogger is for training loops: its calls never raise; what cannot be logged now is kept in a
JSON-lines file and replayed, in order, when the store answers again (also by a later process).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

log = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
TRIAL_KEY_TAG = "harness.trial_key"
ATTEMPT_TAG = "harness.attempt"  # 1 when a trial run is created, +1 each time it is reused
ROLE_TAG = "harness.role"  # "parent" or "trial"
STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
_PARAMS_PER_BATCH = 100  # mlflow.utils.validation.MAX_PARAMS_TAGS_PER_BATCH
_METRICS_PER_BATCH = 1000  # mlflow.utils.validation.MAX_METRICS_PER_BATCH
# MlflowException error codes that no retry will fix: the entry is dropped (and counted).
_PERMANENT_CODES = frozenset({
    "INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS", "INVALID_STATE",
    "BAD_REQUEST", "NOT_FOUND", "ENDPOINT_NOT_FOUND", "PERMISSION_DENIED", "UNAUTHENTICATED",
    "FEATURE_DISABLED", "MALFORMED_REQUEST",
})


class TrackingError(RuntimeError):
    """The tracking store cannot be used (unreachable, not writable, inconsistent run state)."""


class ParamConflictError(TrackingError):
    """A param is already logged on the run with another value (MLflow params are write-once)."""


# ----------------------------------------------------------------------------- URIs and clients


def default_tracking_uri(results_dir: str | os.PathLike) -> str:
    """"sqlite:////abs/results/mlflow.db": absolute, because Tune trials run in other working dirs."""
    return f"sqlite:///{Path(results_dir).resolve() / 'mlflow.db'}"


def default_artifact_root(results_dir: str | os.PathLike) -> str:
    """The artifact folder beside the default SQLite store: /abs/results/mlartifacts."""
    return str(Path(results_dir).resolve() / "mlartifacts")


def limit_http_retries(
    max_retries: int = 2, backoff_factor: int = 1, timeout_s: int = 10, override: bool = False
) -> None:
    """Bound MLflow's HTTP retry loop (default 7 retries, backoff 2, 120 s timeout: minutes per call
    against a dead server). MLflow reads these environment variables on every request; values the
    user already set are kept unless override=True. Process-wide by nature."""
    for name, value in (
        ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", max_retries),
        ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", backoff_factor),
        ("MLFLOW_HTTP_REQUEST_TIMEOUT", timeout_s),
    ):
        if override:
            os.environ[name] = str(int(value))
        else:
            os.environ.setdefault(name, str(int(value)))


def _is_http(uri: str) -> bool:
    return urllib.parse.urlparse(uri).scheme in ("http", "https")


_clients: dict[str, MlflowClient] = {}
_clients_lock = threading.Lock()


def _client(uri: str) -> MlflowClient:
    with _clients_lock:
        client = _clients.get(uri)
        if client is None:
            if _is_http(uri):
                limit_http_retries()
            client = _clients[uri] = MlflowClient(tracking_uri=uri)
        return client


def _local_path(uri: str) -> str:
    """The file path of a sqlite:/// or file: URI ('' for an in-memory database)."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "sqlite":
        # sqlite:///rel.db -> "rel.db"; sqlite:////abs.db -> "/abs.db" (SQLAlchemy's rule)
        return uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else ""
    return urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else uri


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Raise TrackingError within about timeout_s when the store at uri cannot be used.

    http(s): GET /health (the MLflow server's), falling back to the experiments search endpoint
    for a proxy without /health. sqlite: the database's folder is created if missing and must be
    writable. file stores: the same, and MLFLOW_ALLOW_FILE_STORE must be true (MLflow >= 3.13).
    Other database URIs: a TCP connect to host:port.
    """
    parsed = urllib.parse.urlparse(uri)
    scheme = parsed.scheme.split("+")[0]
    if scheme in ("http", "https"):
        _check_http(uri, timeout_s)
    elif scheme in ("sqlite", "file", ""):
        if scheme != "sqlite" and os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("true", "1"):
            raise TrackingError(
                f"cannot use the MLflow tracking store at {uri}: file stores are disabled since "
                "MLflow 3.13 (set MLFLOW_ALLOW_FILE_STORE=true, or use a sqlite:/// URI)"
            )
        path = _local_path(uri)
        if path in ("", ":memory:"):
            return
        _check_writable(uri, Path(path) if scheme == "sqlite" else Path(path) / "mlflow.probe")
    elif parsed.hostname:
        port = parsed.port or {"postgresql": 5432, "mysql": 3306, "mssql": 1433}.get(scheme)
        if port is None:
            return
        try:
            with socket.create_connection((parsed.hostname, port), timeout=timeout_s):
                pass
        except OSError as e:
            raise TrackingError(f"cannot reach the MLflow tracking server at {uri}: {e}") from None


def _check_writable(uri: str, db: Path) -> None:
    folder = db.resolve().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrackingError(f"cannot use the MLflow tracking store at {uri}: cannot create {folder}: "
                            f"{e.strerror or e}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise TrackingError(f"cannot use the MLflow tracking store at {uri}: {folder} is not writable")
    if db.exists() and not os.access(db, os.W_OK):
        raise TrackingError(f"cannot use the MLflow tracking store at {uri}: {db} is not writable")


def _check_http(uri: str, timeout_s: float) -> None:
    base = uri.rstrip("/")

    def get(endpoint: str) -> int:
        request = urllib.request.Request(base + endpoint, method="GET")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return int(response.status)
        except urllib.error.HTTPError as e:  # the server answered, with an error status
            return int(e.code)

    try:
        status = get("/health")
        if status == 404:
            status = get("/api/2.0/mlflow/experiments/search?max_results=1")
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise TrackingError(f"cannot reach the MLflow tracking server at {uri}: {reason}") from None
    # 401: the server is up and wants credentials, which MLflow's client sends from its env vars.
    if status not in (200, 401):
        raise TrackingError(
            f"cannot reach the MLflow tracking server at {uri}: it answered HTTP {status} "
            "(if 403, start the server with --allowed-hosts including this host)"
        )


# ----------------------------------------------------------------------------- experiments, runs


def ensure_experiment(uri: str, name: str, artifact_root: str | os.PathLike | None = None) -> str:
    """The id of experiment `name`, created if missing (restored if deleted).

    A new experiment's artifact_location is artifact_root/<name> (a local folder is made absolute;
    None lets the store decide, as an `mlflow server --artifacts-destination` should).
    """
    client = _client(uri)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        location = None
        if artifact_root is not None:
            root = os.fspath(artifact_root)
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
            if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", root) and not re.match(r"^[A-Za-z]:[\\/]", root):
                location = f"{root.rstrip('/')}/{safe}"  # a URI (s3://, mlflow-artifacts:/, file://)
            else:
                location = str(Path(root).resolve() / safe)
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":  # else another process just created it
                raise
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        log.warning("MLflow experiment %r (id %s) was deleted; restoring it", name, exp.experiment_id)
        client.restore_experiment(exp.experiment_id)
    return exp.experiment_id


def _str_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (tags or {}).items()}


def start_parent(uri: str, experiment_id: str, run_name: str, tags: Mapping[str, Any] | None = None) -> str:
    """Create the parent run of one study invocation; returns its run id (keep it to resume)."""
    run = _client(uri).create_run(
        experiment_id, run_name=run_name, tags={**_str_tags(tags), ROLE_TAG: "parent"}
    )
    return run.info.run_id


def resume_parent(uri: str, run_id: str) -> None:
    """Mark a parent run RUNNING again (a restored study); raises TrackingError when it is gone."""
    client = _client(uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as e:
        raise TrackingError(f"cannot resume parent run {run_id} at {uri}: {e.message}") from None
    if run.info.lifecycle_stage == "deleted":
        raise TrackingError(f"cannot resume parent run {run_id} at {uri}: it was deleted")
    client.update_run(run_id, status="RUNNING")


def _check_key(trial_key: str) -> str:
    if not trial_key or "'" in trial_key or '"' in trial_key or "\\" in trial_key:
        raise ValueError(f"trial_key must be a non-empty string without quotes or backslashes, got {trial_key!r}")
    return trial_key


def _search_all(client: MlflowClient, experiment_id: str, filter_string: str) -> list:
    runs: list = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string=filter_string, max_results=1000,
            order_by=["attributes.start_time ASC"], page_token=token,
        )
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _children_filter(parent_run_id: str) -> str:
    _check_key(parent_run_id)
    return f"tags.`{PARENT_TAG}` = '{parent_run_id}'"


def find_trial_run(uri: str, experiment_id: str, parent_run_id: str, trial_key: str) -> str | None:
    """The run id of the child of parent_run_id tagged with trial_key (the oldest if several)."""
    runs = _search_all(
        _client(uri), experiment_id,
        f"{_children_filter(parent_run_id)} and tags.`{TRIAL_KEY_TAG}` = '{_check_key(trial_key)}'",
    )
    if len(runs) > 1:
        log.warning("%d MLflow runs carry trial key %r under parent %s; reusing the oldest, %s",
                    len(runs), trial_key, parent_run_id, runs[0].info.run_id)
    return runs[0].info.run_id if runs else None


def trial_run(
    uri: str,
    experiment_id: str,
    parent_run_id: str,
    trial_key: str,
    run_name: str,
    tags: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> str:
    """The nested run of one trial: reused (status RUNNING again) when a child of parent_run_id
    already carries trial_key, else created. params (the flattened dotted config; nested dicts are
    flattened with dots) are logged idempotently: see log_params."""
    client = _client(uri)
    run_id = find_trial_run(uri, experiment_id, parent_run_id, trial_key)
    if run_id is None:
        run = client.create_run(
            experiment_id,
            run_name=run_name,
            tags={**_str_tags(tags), PARENT_TAG: parent_run_id, TRIAL_KEY_TAG: trial_key,
                  ROLE_TAG: "trial", ATTEMPT_TAG: "1"},
        )
        run_id = run.info.run_id
    else:
        attempt = client.get_run(run_id).data.tags.get(ATTEMPT_TAG, "1")
        client.update_run(run_id, status="RUNNING")
        set_tags(uri, run_id, {**_str_tags(tags), ATTEMPT_TAG: int(attempt) + 1 if attempt.isdigit() else 2})
    if params:
        log_params(uri, run_id, params)
    return run_id


def close_dangling(
    uri: str, experiment_id: str, parent_run_id: str, keep: Iterable[str] = frozenset()
) -> list[str]:
    """Mark the children of parent_run_id still RUNNING (left so by a crashed driver) as KILLED,
    except those whose trial key is in keep (the caller is about to resume them). Returns the
    killed run ids."""
    keep = set(keep)
    client = _client(uri)
    killed = []
    for run in _search_all(client, experiment_id,
                           f"{_children_filter(parent_run_id)} and attributes.status = 'RUNNING'"):
        if run.data.tags.get(TRIAL_KEY_TAG) in keep:
            continue
        client.set_terminated(run.info.run_id, status="KILLED")
        killed.append(run.info.run_id)
    return killed


# ----------------------------------------------------------------------------- logging


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)  # MLflow stores str(value); compare the same way
    return out


def log_params(uri: str, run_id: str, params: Mapping[str, Any]) -> None:
    """Log params in batches of 100; a param already logged with the same value is skipped, one
    logged with another value raises ParamConflictError naming it (MLflow params are write-once)."""
    client = _client(uri)
    flat = _flatten(params)
    existing = client.get_run(run_id).data.params
    conflicts = [k for k, v in flat.items() if k in existing and existing[k] != v]
    if conflicts:
        k = conflicts[0]
        raise ParamConflictError(
            f"run {run_id}: param {k} is logged as {existing[k]!r}, cannot log {flat[k]!r}"
            + (f" ({len(conflicts) - 1} more conflicting params)" if len(conflicts) > 1 else "")
        )
    todo = [Param(k, v) for k, v in flat.items() if k not in existing]
    for i in range(0, len(todo), _PARAMS_PER_BATCH):
        client.log_batch(run_id, params=todo[i:i + _PARAMS_PER_BATCH])


def log_metrics(
    uri: str, run_id: str, metrics: Mapping[str, float], step: int | None = None,
    timestamp_ms: int | None = None,
) -> None:
    """Log metrics (one step) in batches of 1000; timestamp_ms defaults to now."""
    ts = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
    entries = [Metric(str(k), float(v), ts, int(step or 0)) for k, v in metrics.items()]
    client = _client(uri)
    for i in range(0, len(entries), _METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=entries[i:i + _METRICS_PER_BATCH])


def set_tags(uri: str, run_id: str, tags: Mapping[str, Any]) -> None:
    entries = [RunTag(k, v) for k, v in _str_tags(tags).items()]
    client = _client(uri)
    for i in range(0, len(entries), _PARAMS_PER_BATCH):
        client.log_batch(run_id, tags=entries[i:i + _PARAMS_PER_BATCH])


def set_terminated(uri: str, run_id: str, status: str = "FINISHED", end_time_ms: int | None = None) -> None:
    """End a run with status FINISHED, FAILED or KILLED (end time: now unless given)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    _client(uri).set_terminated(run_id, status=status, end_time=end_time_ms)


def log_dict(uri: str, run_id: str, dictionary: Mapping[str, Any], artifact_file: str) -> None:
    _client(uri).log_dict(run_id, dict(dictionary), artifact_file)


def log_text(uri: str, run_id: str, text: str, artifact_file: str) -> None:
    _client(uri).log_text(run_id, text, artifact_file)


def log_artifact(uri: str, run_id: str, local_path: str | os.PathLike, artifact_path: str | None = None) -> None:
    """Upload one file (or a folder's contents) under artifact_path."""
    client = _client(uri)
    if Path(local_path).is_dir():
        client.log_artifacts(run_id, os.fspath(local_path), artifact_path)
    else:
        client.log_artifact(run_id, os.fspath(local_path), artifact_path)


def _log_file_as(client: MlflowClient, run_id: str, local_path: Path, artifact_file: str) -> None:
    """Upload local_path so that it appears as artifact_file (renaming through a temp folder)."""
    folder, name = os.path.split(artifact_file)
    if local_path.name == name:
        client.log_artifact(run_id, str(local_path), folder or None)
        return
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / name
        shutil.copyfile(local_path, target)
        client.log_artifact(run_id, str(target), folder or None)


def log_figure(uri: str, run_id: str, figure: Any, artifact_file: str) -> None:
    """Log a matplotlib figure, or an image file (e.g. a PNG written by report.plot_curve), as
    artifact_file."""
    client = _client(uri)
    if isinstance(figure, (str, os.PathLike)):
        _log_file_as(client, run_id, Path(figure), artifact_file)
    else:
        client.log_figure(run_id, figure, artifact_file)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def log_table(
    uri: str, run_id: str, rows: Sequence[Mapping[str, Any]], artifact_file: str,
    files: Iterable[str | os.PathLike] = (),
) -> None:
    """Log rows (list of dicts, e.g. report.build_table's) with MLflow's log_table (artifact_file
    must end in .json; the UI shows it as a table), plus files (table.md, table.csv) beside it."""
    columns: list[str] = []
    for row in rows:
        columns += [str(k) for k in row if str(k) not in columns]
    data = {c: [_jsonable(row.get(c)) for row in rows] for c in columns}
    client = _client(uri)
    folder_name = os.path.dirname(artifact_file) or None
    if any(a.path == artifact_file for a in client.list_artifacts(run_id, folder_name)):
        # MLflow's log_table appends to an existing table (a resumed study would list its rows
        # twice): overwrite it in the same "split" JSON layout log_table writes.
        client.log_dict(run_id, {"columns": columns, "data": [[data[c][i] for c in columns]
                                                              for i in range(len(rows))]}, artifact_file)
    else:
        client.log_table(run_id, data=data, artifact_file=artifact_file)
    folder = os.path.dirname(artifact_file) or None
    for f in files:
        client.log_artifact(run_id, os.fspath(f), folder)


# ----------------------------------------------------------------------------- SafeLogger


_pending_locks: dict[str, threading.RLock] = {}
_pending_locks_guard = threading.Lock()


def _lock_for(path: Path) -> threading.RLock:
    with _pending_locks_guard:
        return _pending_locks.setdefault(str(path), threading.RLock())


def _is_permanent(error: BaseException) -> bool:
    """True when retrying cannot help (a rejected value, a missing file); False for a lost store."""
    if isinstance(error, ParamConflictError):
        return True
    if isinstance(error, MlflowException):
        return error.error_code in _PERMANENT_CODES
    return isinstance(error, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
                              ValueError, TypeError, KeyError))


class SafeLogger:
    """Logging to one run whose calls never raise.

    A call that fails because the store is unreachable (or busy) is appended to
    pending_dir/pending-<run_id>.jsonl (files it refers to are copied beside it) and the logger
    goes offline: later calls are queued behind it without touching the network until
    retry_interval_s has passed; then a cheap probe (check_reachable, probe_timeout_s) decides
    whether to replay the queue, in order, before the new call. A call the store rejects for good
    (a changed param, a missing file, a bad value) is dropped with a warning and counted.
    flush() replays what it can now and returns how many entries could not be logged (still
    pending + rejected); pending entries stay on disk and a later SafeLogger for the same run and
    pending_dir replays them (the run id, not the URI, names the file: a restarted server at a new
    address still receives them).

    Thread-safe (one lock per pending file). Metric timestamps and the end time are taken at the
    call, so a replay records when things happened, not when the server came back.
    """

    def __init__(
        self,
        uri: str,
        run_id: str,
        pending_dir: str | os.PathLike,
        *,
        retry_interval_s: float = 30.0,
        probe_timeout_s: float = 2.0,
    ) -> None:
        self.uri = uri
        self.run_id = run_id
        self.retry_interval_s = float(retry_interval_s)
        self.probe_timeout_s = float(probe_timeout_s)
        self.pending_path = Path(pending_dir) / f"pending-{run_id}.jsonl"
        self._files_dir = Path(pending_dir) / f"pending-{run_id}-files"
        self._lock = _lock_for(self.pending_path)
        self._retry_at = 0.0  # time.monotonic() before which no network call is tried
        self._offline = False
        self.rejected_count = 0
        self._pending: list[dict] = self._load()
        if _is_http(uri):
            limit_http_retries()

    # -- public calls (never raise)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._call("metrics", lambda: {"metrics": {str(k): float(v) for k, v in metrics.items()},
                                       "step": int(step or 0), "timestamp_ms": int(time.time() * 1000)})

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._call("params", lambda: {"params": _flatten(params)})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._call("tags", lambda: {"tags": _str_tags(tags)})

    def log_dict(self, dictionary: Mapping[str, Any], artifact_file: str) -> None:
        self._call("dict", lambda: {"dictionary": json.loads(json.dumps(dict(dictionary), default=_jsonable)),
                                    "artifact_file": artifact_file})

    def log_text(self, text: str, artifact_file: str) -> None:
        self._call("text", lambda: {"text": str(text), "artifact_file": artifact_file})

    def log_table(self, rows: Sequence[Mapping[str, Any]], artifact_file: str,
                  files: Iterable[str | os.PathLike] = ()) -> None:
        self._call("table", lambda: {
            "rows": json.loads(json.dumps([dict(r) for r in rows], default=_jsonable)),
            "artifact_file": artifact_file,
            "files": [os.fspath(f) for f in files],
        })

    def log_artifact(self, local_path: str | os.PathLike, artifact_path: str | None = None) -> None:
        def args() -> dict:
            path = Path(local_path)
            if not path.is_file():
                raise FileNotFoundError(f"{path} is not a file")
            return {"path": os.fspath(path), "artifact_file": "/".join(filter(None, (artifact_path, path.name)))}
        self._call("artifact", args)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        """A matplotlib figure (rendered to PNG now) or an image file, logged as artifact_file."""
        def args() -> dict:
            if isinstance(figure, (str, os.PathLike)):
                return {"path": os.fspath(figure), "artifact_file": artifact_file}
            buf = io.BytesIO()
            figure.savefig(buf, format=os.path.splitext(artifact_file)[1].lstrip(".") or "png")
            return {"data": buf.getvalue(), "artifact_file": artifact_file}
        self._call("artifact", args)

    def set_terminated(self, status: str = "FINISHED") -> None:
        def args() -> dict:
            if status not in STATUSES:
                raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
            return {"status": status, "end_time_ms": int(time.time() * 1000)}
        self._call("terminated", args)

    def flush(self) -> int:
        """Replay the queue now; return the number of entries not logged (pending + rejected)."""
        with self._lock:
            try:
                self._drain(force=True)
            except Exception as e:  # never raise, even for a broken pending folder
                log.warning("MLflow SafeLogger for run %s: flush failed: %s", self.run_id, e)
            lost = len(self._pending) + self.rejected_count
            if lost:
                log.warning(
                    "MLflow run %s: %d entries could not be logged (%d pending in %s, replayed by the "
                    "next SafeLogger for this run; %d rejected by the store)",
                    self.run_id, lost, len(self._pending), self.pending_path, self.rejected_count,
                )
            return lost

    # -- machinery

    def _call(self, op: str, make_args) -> None:
        with self._lock:
            try:
                entry = {"op": op, **make_args()}
            except Exception as e:
                self._reject(op, e)
                return
            try:
                if self._pending:
                    self._drain(force=False)
                if self._pending:
                    self._queue(entry)
                    return
                try:
                    self._apply(entry)
                except Exception as e:
                    if _is_permanent(e):
                        self._reject(op, e)
                    else:
                        self._go_offline(e)
                        self._queue(entry)
            except Exception as e:  # the pending file itself failed: the entry is lost
                self._reject(op, e)

    def _reject(self, op: str, error: BaseException) -> None:
        self.rejected_count += 1
        log.warning("MLflow run %s: dropped a %s entry: %s", self.run_id, op, error)

    def _go_offline(self, error: BaseException) -> None:
        if not self._offline:
            log.warning("MLflow store at %s failed (%s); queueing to %s and retrying every %.0f s",
                        self.uri, str(error).splitlines()[0][:300] if str(error) else type(error).__name__,
                        self.pending_path, self.retry_interval_s)
        self._offline = True
        self._retry_at = time.monotonic() + self.retry_interval_s

    def _apply(self, entry: Mapping[str, Any]) -> None:
        op, uri, run_id = entry["op"], self.uri, self.run_id
        if op == "metrics":
            log_metrics(uri, run_id, entry["metrics"], entry["step"], entry["timestamp_ms"])
        elif op == "params":
            log_params(uri, run_id, entry["params"])
        elif op == "tags":
            set_tags(uri, run_id, entry["tags"])
        elif op == "dict":
            log_dict(uri, run_id, entry["dictionary"], entry["artifact_file"])
        elif op == "text":
            log_text(uri, run_id, entry["text"], entry["artifact_file"])
        elif op == "table":
            log_table(uri, run_id, entry["rows"], entry["artifact_file"], entry["files"])
        elif op == "artifact":
            if "data" in entry:  # an in-memory figure: write it under its artifact name first
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / os.path.basename(entry["artifact_file"])
                    path.write_bytes(entry["data"])
                    _log_file_as(_client(uri), run_id, path, entry["artifact_file"])
            else:
                _log_file_as(_client(uri), run_id, Path(entry["path"]), entry["artifact_file"])
        elif op == "terminated":
            set_terminated(uri, run_id, entry["status"], entry["end_time_ms"])
        else:
            raise ValueError(f"unknown pending operation {op!r}")

    def _queue(self, entry: dict) -> None:
        """Append entry to the pending file, first copying the files it names beside it (the
        originals may change or vanish before the replay)."""
        entry = dict(entry)
        if entry["op"] == "artifact":
            entry["path"] = self._keep(entry.pop("data", None), entry.get("path"), entry["artifact_file"])
        elif entry["op"] == "table":
            entry["files"] = [self._keep(None, f, os.path.basename(f)) for f in entry["files"]]
        self.pending_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.pending_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
        self._pending.append(entry)

    def _keep(self, data: bytes | None, path: str | None, artifact_file: str) -> str:
        target = self._files_dir / uuid.uuid4().hex / os.path.basename(artifact_file)
        target.parent.mkdir(parents=True, exist_ok=True)
        if data is not None:
            target.write_bytes(data)
        else:
            shutil.copyfile(path, target)
        return os.fspath(target)

    def _load(self) -> list[dict]:
        try:
            lines = self.pending_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        except OSError as e:
            log.warning("cannot read MLflow pending file %s: %s", self.pending_path, e)
            return []
        entries = []
        for i, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:  # a crash in the middle of an append
                self._reject("pending", ValueError(f"{self.pending_path}:{i}: not a JSON line"))
        return entries

    def _drain(self, force: bool) -> None:
        if not self._pending or (not force and time.monotonic() < self._retry_at):
            return
        if _is_http(self.uri):
            try:
                check_reachable(self.uri, self.probe_timeout_s)
            except TrackingError as e:
                self._go_offline(e)
                return
        done = 0
        try:
            for entry in self._pending:
                try:
                    self._apply(entry)
                except Exception as e:
                    if not _is_permanent(e):
                        self._go_offline(e)
                        break
                    self._reject(entry["op"], e)
                self._forget_files(entry)
                done += 1
        finally:
            if done:
                self._pending = self._pending[done:]
                self._rewrite()
        if not self._pending:
            if self._offline:
                log.warning("MLflow store at %s answers again; the queue for run %s is logged",
                            self.uri, self.run_id)
            self._offline = False

    def _forget_files(self, entry: Mapping[str, Any]) -> None:
        paths = [entry.get("path")] if entry["op"] == "artifact" else list(entry.get("files", ()))
        for p in paths:
            if p and Path(p).parent.parent == self._files_dir:
                shutil.rmtree(Path(p).parent, ignore_errors=True)

    def _rewrite(self) -> None:
        if not self._pending:
            with contextlib.suppress(FileNotFoundError):
                self.pending_path.unlink()
            with contextlib.suppress(OSError):
                self._files_dir.rmdir()  # only when empty
            return
        fd, tmp = tempfile.mkstemp(prefix=".pending.", dir=self.pending_path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(e) + "\n" for e in self._pending)
        os.replace(tmp, self.pending_path)


__all__ = [
    "TrackingError", "ParamConflictError", "SafeLogger", "PARENT_TAG", "TRIAL_KEY_TAG",
    "default_tracking_uri", "default_artifact_root", "limit_http_retries", "check_reachable",
    "ensure_experiment", "start_parent", "resume_parent", "find_trial_run", "trial_run",
    "close_dangling", "log_params", "log_metrics", "set_tags", "set_terminated", "log_dict",
    "log_text", "log_artifact", "log_figure", "log_table",
]
