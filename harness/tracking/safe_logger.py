"""SafeLogger: logging to one run for a training loop's rank 0 whose calls never raise, with what
cannot be logged now kept in a JSON-lines file and replayed, in order, when the store answers again
(also by a later process: replay_pending).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException

from harness.tracking.runs import (
    STATUSES, jsonable, log_dict, log_history, log_metrics, log_params, log_table, log_text, set_tags,
    set_terminated,
)
from harness.tracking.store import TrackingError, check_reachable, is_http, limit_http_retries, mlflow_client

log = logging.getLogger(__name__)

# MlflowException error codes that no retry will fix: the entry is dropped (and counted).
_PERMANENT_CODES = frozenset({
    "INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS", "INVALID_STATE",
    "BAD_REQUEST", "NOT_FOUND", "ENDPOINT_NOT_FOUND", "PERMISSION_DENIED", "UNAUTHENTICATED",
    "FEATURE_DISABLED", "MALFORMED_REQUEST",
})


class PendingLocks:
    """One re-entrant lock per pending file, shared by every SafeLogger of this process on it."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()

    def for_path(self, path: Path) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(str(path), threading.RLock())


# An object, not a bare dict and lock at module level: only for_path() reaches the dict, always
# under its guard. Made at import, which Python's import lock runs once per process: two registries
# made lazily by two threads could hand two loggers of one file different locks.
_PENDING_LOCKS = PendingLocks()


def _is_permanent(error: BaseException) -> bool:
    """True when retrying cannot help (a rejected value, a missing file); False for a lost store."""
    if isinstance(error, MlflowException):
        return error.error_code in _PERMANENT_CODES
    return isinstance(error, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
                              ValueError, TypeError, KeyError))


def _log_file_as(uri: str, run_id: str, local_path: Path, artifact_file: str) -> None:
    """Upload local_path so that it appears as artifact_file (renaming through a temp folder)."""
    client = mlflow_client(uri)
    folder, name = os.path.split(artifact_file)
    if local_path.name == name:
        client.log_artifact(run_id, str(local_path), folder or None)
        return
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / name
        shutil.copyfile(local_path, target)
        client.log_artifact(run_id, str(target), folder or None)


class SafeLogger:
    """Logging to one run whose calls never raise.

    A call that fails because the store is unreachable (or busy) is appended to
    pending_dir/pending-<run_id>.jsonl (files it refers to are copied beside it) and the logger
    goes offline: later calls are queued behind it without touching the network until
    retry_interval_s has passed; then a cheap probe (check_reachable, probe_timeout_s) decides
    whether to replay the queue, in order, before the new call. A call the store rejects for good
    (a missing file, a bad value) is dropped with a warning and counted.
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
        self._lock = _PENDING_LOCKS.for_path(self.pending_path)
        self._retry_at = 0.0  # time.monotonic() before which no network call is tried
        self._offline = False
        self.rejected_count = 0
        self._pending: list[dict] = self._load()
        if is_http(uri):
            limit_http_retries()

    # -- public calls (never raise)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._call("metrics", lambda: {"metrics": {str(k): float(v) for k, v in metrics.items()},
                                       "step": int(step or 0), "timestamp_ms": int(time.time() * 1000)})

    def log_history(self, rows: list[tuple[Mapping[str, float], int, int]]) -> None:
        """Several steps in one call: (metrics, step, timestamp_ms) each."""
        self._call("history", lambda: {"rows": [{"metrics": {str(k): float(v) for k, v in m.items()}, "step": int(step),
                                                 "timestamp_ms": int(ts)} for m, step, ts in rows]})

    def log_dict(self, dictionary: Mapping[str, Any], artifact_file: str) -> None:
        self._call("dict", lambda: {"dictionary": json.loads(json.dumps(dict(dictionary), default=jsonable)),
                                    "artifact_file": artifact_file})

    def log_text(self, text: str, artifact_file: str) -> None:
        self._call("text", lambda: {"text": str(text), "artifact_file": artifact_file})

    def log_table(self, rows: list[Mapping[str, Any]], artifact_file: str) -> None:
        """An MLflow table (runs.log_table: the UI compares it across runs); rows of JSON values."""
        self._call("table", lambda: {"rows": json.loads(json.dumps([dict(r) for r in rows], default=jsonable)),
                                     "artifact_file": artifact_file})

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._call("params", lambda: {"params": {str(k): str(v) for k, v in params.items()}})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._call("tags", lambda: {"tags": {str(k): str(v) for k, v in tags.items()}})

    def log_artifact(self, local_path: str | os.PathLike, artifact_path: str | None = None) -> None:
        def args() -> dict:
            path = Path(local_path)
            if not path.is_file():
                raise FileNotFoundError(f"{path} is not a file")
            return {"path": os.fspath(path), "artifact_file": "/".join(filter(None, (artifact_path, path.name)))}
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
        elif op == "history":
            log_history(uri, run_id, entry["rows"])
        elif op == "dict":
            log_dict(uri, run_id, entry["dictionary"], entry["artifact_file"])
        elif op == "text":
            log_text(uri, run_id, entry["text"], entry["artifact_file"])
        elif op == "params":
            log_params(uri, run_id, entry["params"])
        elif op == "tags":
            set_tags(uri, run_id, entry["tags"])
        elif op == "table":
            log_table(uri, run_id, entry["rows"], entry["artifact_file"])
        elif op == "artifact":
            _log_file_as(uri, run_id, Path(entry["path"]), entry["artifact_file"])
        elif op == "terminated":
            set_terminated(uri, run_id, entry["status"], entry["end_time_ms"])
        else:
            raise ValueError(f"unknown pending operation {op!r}")

    def _queue(self, entry: dict) -> None:
        """Append entry to the pending file, first copying the file an artifact entry names beside
        it (the original may change or vanish before the replay)."""
        entry = dict(entry)
        if entry["op"] == "artifact":
            entry["path"] = self._keep(entry["path"], entry["artifact_file"])
        self.pending_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.pending_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
        self._pending.append(entry)

    def _keep(self, path: str, artifact_file: str) -> str:
        target = self._files_dir / uuid.uuid4().hex / os.path.basename(artifact_file)
        target.parent.mkdir(parents=True, exist_ok=True)
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
        if is_http(self.uri):
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
        p = entry.get("path") if entry["op"] == "artifact" else None
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


def replay_pending(results: str | os.PathLike, folder: str, uri: str) -> int:
    """Log what trials queued while the tracking store was away (SafeLogger files
    RESULTS/FOLDER/trials/KEY/pending/pending-RUN_ID.jsonl); returns the entries still not logged.
    A queue whose run this store does not know (a run of another store) is left for that store;
    any other store error is raised."""
    left = 0
    for path in sorted((Path(results) / folder / "trials").glob("*/pending/pending-*.jsonl")):
        run_id = path.stem[len("pending-"):]
        try:
            mlflow_client(uri).get_run(run_id)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                continue  # a run of another tracking store: its queue waits for that store
            raise
        left += SafeLogger(uri, run_id, path.parent, probe_timeout_s=5.0).flush()
    return left
