"""The tracking store: URIs, reachability checks, bounded HTTP retries, errors, the client cache.

Stores: the default is a SQLite file beside the results (default_tracking_uri); on a cluster, an
`mlflow server` HTTP URI (several nodes must not share one SQLite file). MLflow's HTTP client
retries 7 times with exponential backoff by default (minutes against a dead server);
limit_http_retries() bounds that for every HTTP URI used through this package, and
check_reachable() answers in seconds before a study starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException


class TrackingError(RuntimeError):
    """The tracking store cannot be used (unreachable, not writable, inconsistent run state)."""


class ParamConflictError(TrackingError):
    """A param is already logged on the run with another value (MLflow params are write-once)."""


# What a caller catches for "the tracking store failed": MLflow's own errors (a rejected request,
# a server that stopped answering mid-call), this package's, and the OS errors of a local store.
ERRORS: tuple[type[BaseException], ...] = (MlflowException, TrackingError, OSError)


def default_tracking_uri(results_dir: str | os.PathLike) -> str:
    """"sqlite:////abs/results/mlflow.db": absolute, because Tune trials run in other working dirs."""
    return f"sqlite:///{Path(results_dir).resolve() / 'mlflow.db'}"


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


def quiet_logging(level: int = logging.WARNING) -> None:
    """Keep MLflow's INFO lines off the console: a study's live view reports progress instead."""
    logging.getLogger("mlflow").setLevel(level)


def is_http(uri: str) -> bool:
    return urllib.parse.urlparse(uri).scheme in ("http", "https")


class ClientCache:
    """One MlflowClient per tracking URI, made on first use (bounding HTTP retries first)."""

    def __init__(self) -> None:
        self._clients: dict[str, MlflowClient] = {}
        self._lock = threading.Lock()

    def get(self, uri: str) -> MlflowClient:
        with self._lock:
            client = self._clients.get(uri)
            if client is None:
                if is_http(uri):
                    limit_http_retries()
                client = self._clients[uri] = MlflowClient(tracking_uri=uri)
            return client


# An object, not a bare dict and lock at module level: only get() reaches the dict, always under its
# lock, and a test can build its own ClientCache. Made at import, which Python's import lock runs
# once per process; made lazily, two threads could each make one.
_CLIENTS = ClientCache()


def mlflow_client(uri: str) -> MlflowClient:
    """This process's MlflowClient for uri (for code inside harness.tracking and its tests)."""
    return _CLIENTS.get(uri)


def open_existing_store(uri: str) -> None:
    """Open an existing local SQLite store once in this process (MLflow checks its schema on the
    first open, about 0.7 s, and reuses the store after). A missing file is left alone: opening it
    would create and migrate it. Best effort: an error only forgoes the head start."""
    if not uri.startswith("sqlite:///") or not Path(_local_path(uri)).is_file():
        return
    try:
        mlflow_client(uri).search_experiments(max_results=1)
    except Exception:  # noqa: BLE001 - whoever logs next opens the store and reports its errors
        pass


def _local_path(uri: str) -> str:
    """The file path of a sqlite:/// or file: URI ('' for an in-memory database)."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "sqlite":
        # sqlite:///rel.db -> "rel.db"; sqlite:////abs.db -> "/abs.db" (SQLAlchemy's rule)
        return uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else ""
    return urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else uri


_DATABASES = ("postgresql", "mysql", "mssql", "databricks")  # MLflow's other stores, by URI scheme


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
    elif scheme not in _DATABASES:
        raise TrackingError(f"cannot use the MLflow tracking store at {uri}: unsupported scheme {parsed.scheme!r}; "
                            f"use sqlite:///FILE, http(s)://SERVER or a database URI ({', '.join(_DATABASES)})")
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
    if uri.startswith("sqlite:") and db.exists():
        if not db.is_file():
            raise TrackingError(f"cannot use the MLflow tracking store at {uri}: {db} is a folder; expected an "
                                f"SQLite database file (or a new file name)")
        with open(db, "rb") as f:
            head = f.read(16)
        if head and head != b"SQLite format 3\x00":
            raise TrackingError(f"cannot use the MLflow tracking store at {uri}: {db} is not an SQLite database; "
                                f"expected an MLflow database file (or a new file name)")


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


def moved_store(uri: str, old: str, new: str) -> int:
    """The results folder moved from `old` to `new` (with its mlartifacts/): a sqlite store's
    experiments and runs keep absolute artifact paths under `old`, and logging to them would
    recreate the old folder. Rewrites those prefixes to `new`; returns the rows changed. Other
    stores (a tracking server) keep their artifacts where the server says: nothing to do."""
    import sqlite3
    if not uri.startswith("sqlite:///"):
        return 0
    path = _local_path(uri)
    if not path or path == ":memory:" or not Path(path).is_file():
        return 0
    old, new = old.rstrip("/"), new.rstrip("/")
    changed = 0
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as db, db:
        for table, column in (("experiments", "artifact_location"), ("runs", "artifact_uri")):
            for head in ("file://", ""):
                before = f"{head}{old}/"
                cur = db.execute(f"UPDATE {table} SET {column} = ? || substr({column}, ?) "  # noqa: S608 (fixed names)
                                 f"WHERE substr({column}, 1, ?) = ?",
                                 (f"{head}{new}/", len(before) + 1, len(before), before))
                changed += cur.rowcount
    return changed
