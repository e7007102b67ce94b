"""`--storage URI`: the results folder mirrored to object storage (docs/cluster.md "Storage").

The shared storage path for Ray runs and the stage cache is an S3 URI taken from one place the
user edits (cluster.yaml's UNIGLOR_STORAGE line). Cluster nodes share no file system, so each node keeps its own `--results` folder (the same path on every
node) and mirrors what other nodes need to one URI that `pyarrow.fs` understands (s3://bucket/prefix
on AWS; file:///abs/path in the tests):

    URI/ray/                           Ray Tune/Train run storage (Ray writes it itself)
    URI/cache/<stage>/<key>/           stage cache entries, DONE.json uploaded last (harness.cache)
    URI/<ablation>/trials/<key>/       a trial's worker log and pending MLflow entries
    URI/<ablation>/trials/<key>.json   its result, uploaded after its folder
    URI/<ablation>/state.json, table.md, table.csv, curve.png
    URI/search/<name>/ray/             run_search.py: Ray Tune/Train run storage of the search
    URI/search/<name>/trials/<key>/    a search trial's worker log and pending MLflow entries (and <key>.json)
    URI/search/<name>/best.yaml, trials.csv, importances.json, *.png

The Optuna study of a search (RESULTS/search/<name>/optuna.db, SQLite) is not mirrored: it stays
on the driver's node, whose run_search.py is its only writer (a later --resume or --trials N runs
there too).

An object store has no locks and no atomic rename of a folder. What keeps the mirror correct is
that every reader checks before it trusts: a cache entry is loaded only when each file matches the
SHA-256 in its DONE.json, and a trial result only when its config key matches the trial's.

Without `--storage` the remote is `NO_REMOTE`, a null object whose reads find nothing and whose
writes do nothing, so callers never branch on whether there is one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import pyarrow
import pyarrow.fs as pafs

from harness.config import ConfigError

# What pyarrow raises for a bad URI (ArrowInvalid is a ValueError) or an unreachable store (OSError).
REMOTE_ERRORS = (OSError, ValueError, pyarrow.ArrowException)


def check_relative(name: str) -> str:
    """A name read from a remote manifest must stay inside its folder."""
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
        raise ValueError(f"unsafe file name {name!r} in a remote manifest")
    return name


class Remote:
    """One storage URI resolved to a pyarrow file system and a base path; paths below are relative
    to it, '/'-separated. Pickles as its URI (a Ray worker opens its own connection)."""

    def __init__(self, uri: str):
        self.uri = str(uri)
        self.fs, base = pafs.FileSystem.from_uri(self.uri)
        self.base = base.rstrip("/")
        if not self.base:
            raise ValueError("it names no bucket or folder")
        # S3 PUTs are atomic per object; on a local file system a reader could see a half-written
        # file, so local writes go to a temporary name and are moved into place.
        self._local = isinstance(self.fs, pafs.LocalFileSystem)

    def __reduce__(self):
        return (Remote, (self.uri,))

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"Remote({self.uri!r})"

    def path(self, rel: str = "") -> str:
        return f"{self.base}/{rel.strip('/')}" if rel.strip("/") else self.base

    def child_uri(self, rel: str) -> str:
        """URI of a folder below this one, keeping a query (?endpoint_override=...) at the end."""
        head, sep, query = self.uri.partition("?")
        return f"{head.rstrip('/')}/{rel.strip('/')}{sep}{query}"

    # -- single files

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.path(rel)).type == pafs.FileType.File

    def read_bytes(self, rel: str) -> bytes | None:
        """The file's content, or None when it does not exist."""
        try:
            with self.fs.open_input_stream(self.path(rel)) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def _put(self, rel: str, write: Callable[[Any], Any]) -> None:
        """Create or replace one remote file, `write(stream)` filling it."""
        target = self.path(rel)
        if not self._local:
            with self.fs.open_output_stream(target) as stream:
                write(stream)
            return
        self.fs.create_dir(str(PurePosixPath(target).parent), recursive=True)
        tmp = str(PurePosixPath(target).with_name(f".{PurePosixPath(target).name}.{uuid.uuid4().hex[:8]}"))
        with self.fs.open_output_stream(tmp) as stream:
            write(stream)
        self.fs.move(tmp, target)

    def write_bytes(self, rel: str, data: bytes) -> None:
        self._put(rel, lambda stream: stream.write(data))

    def upload_file(self, local: Path, rel: str) -> None:
        with open(local, "rb") as src:
            self._put(rel, lambda stream: shutil.copyfileobj(src, stream, 1 << 20))

    def download_file(self, rel: str, local: Path) -> bool:
        """Copy one remote file to `local` (replaced atomically); False when the remote has none."""
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}")
        try:
            with self.fs.open_input_stream(self.path(rel)) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.replace(tmp, local)
            return True
        except FileNotFoundError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def delete_file(self, rel: str) -> None:
        try:
            self.fs.delete_file(self.path(rel))
        except FileNotFoundError:
            pass

    # -- folders

    def list_files(self, rel: str = "") -> list[str]:
        """Every file below `rel`, as paths relative to it, sorted; [] when there is none."""
        root = self.path(rel)
        infos = self.fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        return sorted(i.path[len(root) + 1:] for i in infos if i.type == pafs.FileType.File)

    def upload_folder(self, local: Path, rel: str, last: str | None = None, mirror: bool = False) -> list[str]:
        """Upload every file under `local` to `rel`, the file named `last` after all others (a
        commit marker). mirror=True also deletes remote files under `rel` that `local` lacks."""
        local = Path(local)
        names = sorted(str(p.relative_to(local).as_posix()) for p in local.rglob("*") if p.is_file())
        for name in sorted(names, key=lambda n: n == last):
            self.upload_file(local / name, f"{rel}/{name}")
        if mirror:
            for name in set(self.list_files(rel)) - set(names):
                self.delete_file(f"{rel}/{name}")
        return names

    def download_missing(self, rel: str, local: Path) -> list[str]:
        """Download the files under `rel` that `local` lacks. A JSON-lines file on both sides (an
        MLflow pending queue that two nodes appended to) gets the remote lines it lacks appended."""
        local = Path(local)
        fetched = []
        for name in self.list_files(rel):
            target = local / check_relative(name)
            if not target.exists():
                if self.download_file(f"{rel}/{name}", target):
                    fetched.append(name)
            elif name.endswith(".jsonl"):
                remote = self.read_bytes(f"{rel}/{name}") or b""
                have = set(target.read_bytes().splitlines())
                extra = [line for line in remote.splitlines() if line.strip() and line not in have]
                if extra:
                    with open(target, "ab") as f:
                        f.write(b"".join(line + b"\n" for line in extra))
                    fetched.append(name)
        return fetched


class NoRemote:
    """No `--storage`: everything stays under the results folder; reads find nothing, writes do nothing."""

    uri = None

    def __bool__(self) -> bool:
        return False

    def __reduce__(self):
        return (NoRemote, ())

    def __repr__(self) -> str:
        return "NO_REMOTE"

    def exists(self, rel: str) -> bool:
        return False

    def read_bytes(self, rel: str) -> None:
        return None

    def download_file(self, rel: str, local: Path) -> bool:
        return False

    def list_files(self, rel: str = "") -> list[str]:
        return []

    def download_missing(self, rel: str, local: Path) -> list[str]:
        return []

    def write_bytes(self, rel: str, data: bytes) -> None:
        pass

    def upload_file(self, local: Path, rel: str) -> None:
        pass

    def upload_folder(self, local: Path, rel: str, last: str | None = None, mirror: bool = False) -> list[str]:
        return []

    def delete_file(self, rel: str) -> None:
        pass


NO_REMOTE = NoRemote()


def reason(exc: BaseException, limit: int = 200) -> str:
    """The first line of a storage error, for a one-line message."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def remote_of(uri: str | None) -> Remote | NoRemote:
    """The Remote of a storage URI the driver already checked (a trial's `storage_uri`)."""
    return Remote(uri) if uri else NO_REMOTE


def open_storage(uri: str | None) -> Remote | NoRemote:
    """The Remote for `--storage URI`, proven writable now: a bad URI, a missing bucket or missing
    credentials is one line before anything trains, not a failed trial hours later."""
    if not uri:
        return NO_REMOTE
    try:
        remote = Remote(uri)
        probe = f".write-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        remote.write_bytes(probe, b"ok")
        back = remote.read_bytes(probe)
        remote.delete_file(probe)
        if back != b"ok":
            raise OSError("a probe file written there did not read back")
    except REMOTE_ERRORS as exc:
        raise ConfigError(f"cannot use --storage {uri}: {reason(exc, 240)}") from None
    return remote


# --------------------------------------------------------------------------------------------
# Trial outputs: RESULTS/<ablation>/trials/<key>.json and RESULTS/<ablation>/trials/<key>/
# --------------------------------------------------------------------------------------------

def trial_rel(ablation: str, key: str) -> str:
    return f"{ablation}/trials/{key}"


def pull_trial_folder(remote: Remote | NoRemote, results: Path, ablation: str, key: str) -> None:
    """Before a process writes to a trial's folder (its log, its MLflow pending queue), bring in
    what other nodes left there, so the push afterwards loses nothing."""
    rel = trial_rel(ablation, key)
    remote.download_missing(rel, Path(results) / rel)


def push_trial(remote: Remote | NoRemote, results: Path, ablation: str, key: str, result: bool = True) -> None:
    """Mirror a trial's folder (a pending queue replayed here is deleted remotely too), then its
    result file: a result on the remote means the trial's logs are there as well."""
    rel = trial_rel(ablation, key)
    folder = Path(results) / rel
    if folder.is_dir():
        remote.upload_folder(folder, rel, mirror=True)
    if result and (Path(results) / f"{rel}.json").is_file():
        remote.upload_file(Path(results) / f"{rel}.json", f"{rel}.json")


def pull_trial_result(remote: Remote | NoRemote, results: Path, ablation: str, key: str) -> bool:
    """Replace the local result file by the remote's (the last writer's, authoritative); False when
    the remote has none."""
    rel = f"{trial_rel(ablation, key)}.json"
    return remote.download_file(rel, Path(results) / rel)


# --------------------------------------------------------------------------------------------
# What run_ablation.py and run_search.py do the same way with --storage
# --------------------------------------------------------------------------------------------

def ray_storage(remote: Remote | NoRemote, results: Path, rel: str) -> str:
    """Ray Tune's and Ray Train's storage_path: URI/rel with --storage (Train checkpoints must be
    where every node reaches them), else RESULTS/rel."""
    return remote.child_uri(rel) if remote else str(Path(results) / rel)


def artifact_root(results: Path, tracking_uri: str, remote: Remote | NoRemote) -> str | None:
    """Where a new MLflow experiment keeps its artifacts. With --storage the results folder is per
    node: an MLflow server (the cluster's) then keeps them where its --artifacts-destination says
    (None), not in this node's folder."""
    served = bool(remote) and tracking_uri.startswith(("http://", "https://"))
    return None if served else str(Path(results) / "mlartifacts")


def pull_trials(remote: Remote | NoRemote, results: Path, folder: str, keys, results_too: bool = True) -> None:
    """On the driver, after trials ran on any node: each trial's folder (its log and pending MLflow
    queue, which the driver replays) and, with results_too, its result file (the remote's)."""
    for key in keys:
        if results_too:
            pull_trial_result(remote, results, folder, key)
        pull_trial_folder(remote, results, folder, key)


def publish(remote: Remote | NoRemote, results: Path, folder: str, keys, files) -> str | None:
    """The driver's last step: mirror the trials' folders (a pending queue replayed here is deleted
    remotely too), then upload `files` to URI/<folder>/. Returns the warning line when the storage
    failed (the files stay under RESULTS/<folder>), else None."""
    try:
        for key in keys:
            push_trial(remote, results, folder, key, result=False)
        for f in files:
            remote.upload_file(Path(f), f"{folder}/{Path(f).name}")
    except REMOTE_ERRORS as exc:
        return (f"cannot upload to --storage {remote.uri}: {reason(exc)}; "
                f"the files are under {Path(results) / folder}")
    return None
