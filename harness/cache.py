"""The stage cache: content keys, complete-or-absent entries, one writer per entry.

Each stage's output is stored under `<results>/cache/<stage>/<key>/` where `key` hashes exactly the
settings the output depends on plus the keys of the stages it reads. An entry is complete only
when its `DONE.json` exists and every file it lists has the recorded size and SHA-256: an
interrupted write (no DONE.json) or a truncated checkpoint (hash mismatch) is never loaded, it is
deleted and recomputed. Writers build the entry in a temporary folder and rename it into place.
Two trials needing the same entry serialize on a lock file next to it, so the second one waits
and then loads what the first one wrote (also across nodes when the results folder is a shared
file system).

With a remote (`--storage URI`, harness.storage) every node keeps its own local cache and mirrors
it to URI/cache/<stage>/<key>/. `lookup` fetches a remote entry on a local miss: its files go to a
temporary folder, every SHA-256 is checked against the remote DONE.json, and only then is it
renamed into place; an entry that fails the check is reported like a corrupted local one and
recomputed. `commit` uploads the files first and DONE.json last, so DONE.json is the commit
marker remotely too. The lock is per node: an object store has no locks, so two nodes that miss
the same entry at the same time each compute it once. That is wasted work, not a wrong result:
the key is content-addressed, both uploads are valid, and the last one wins (a reader that meets
a half-replaced entry sees hashes that do not match its DONE.json and recomputes).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from harness import file_hashes
from harness.io import atomic_write, digest, sha256_file
from harness.storage import NO_REMOTE, Remote, check_relative


def content_key(stage: str, version: int, settings: dict[str, Any], upstream: dict[str, str] | None = None) -> str:
    """A short stable hash of a stage's settings, its code version and its upstream stage keys."""
    return digest({"stage": stage, "version": version, "settings": settings, "upstream": upstream or {}})


@dataclass(frozen=True)
class Entry:
    stage: str
    key: str
    path: Path  # the entry's folder

    def file(self, name: str) -> Path:
        return self.path / name


def _verified(folder: Path) -> bool:
    """True when folder/DONE.json exists and every file it lists has the recorded size and hash."""
    done = folder / "DONE.json"
    if not done.is_file():
        return False
    try:
        manifest = json.loads(done.read_text())
        for name, meta in manifest["files"].items():
            p = folder / name
            if not p.is_file() or p.stat().st_size != meta["size"] or sha256_file(p) != meta["sha256"]:
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


class StageCache:
    """Content-addressed, verified, lock-protected stage outputs under `root`, optionally mirrored
    to `remote` under `remote_prefix`/<stage>/<key>/."""

    def __init__(self, root: Path, remote: Remote = NO_REMOTE, remote_prefix: str = "cache"):
        self.root = Path(root)
        self.remote = remote
        self.remote_prefix = remote_prefix
        file_hashes.use_store(self.root / "file-hashes.json")  # data-file hashes live beside the entries

    def entry(self, stage: str, key: str) -> Entry:
        return Entry(stage, key, self.root / stage / key)

    def remote_rel(self, stage: str, key: str) -> str:
        return f"{self.remote_prefix}/{stage}/{key}"

    def is_complete(self, stage: str, key: str) -> bool:
        """True when the local entry exists and every file matches its recorded size and hash."""
        return _verified(self.entry(stage, key).path)

    def lookup(self, stage: str, key: str) -> bool:
        """True when the entry is complete here, after fetching it from the remote on a local miss."""
        return self.is_complete(stage, key) or self._fetch(stage, key)

    def has_files(self, stage: str, key: str) -> bool:
        """Cheap check (no hashing) for planning: DONE.json exists here or on the remote."""
        if (self.entry(stage, key).path / "DONE.json").is_file():
            return True
        return self.remote.exists(f"{self.remote_rel(stage, key)}/DONE.json")

    def _fetch(self, stage: str, key: str) -> bool:
        """Download the remote entry, verify it, rename it into place; False (nothing changed here)
        when the remote has no DONE.json or its files do not match it. Network errors propagate:
        a store that cannot be read must not silently turn into recomputing everything."""
        rel = self.remote_rel(stage, key)
        manifest_bytes = self.remote.read_bytes(f"{rel}/DONE.json")
        if manifest_bytes is None:
            return False
        entry = self.entry(stage, key)
        entry.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.path.parent / f".fetch-{key}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            try:
                names = list(json.loads(manifest_bytes)["files"])
                for name in names:
                    if not self.remote.download_file(f"{rel}/{check_relative(name)}", tmp / name):
                        return False  # listed but gone: an upload replacing this entry is under way
            except (ValueError, KeyError, TypeError, AttributeError):
                return False  # an unreadable manifest is a failed verification
            (tmp / "DONE.json").write_bytes(manifest_bytes)
            if not _verified(tmp):
                return False
            if self.is_complete(stage, key):  # another process on this node placed it meanwhile
                return True
            shutil.rmtree(entry.path, ignore_errors=True)  # a stale or corrupted local copy
            try:
                os.replace(tmp, entry.path)
            except OSError:  # lost a race with another local fetch: theirs is as good as ours
                return self.is_complete(stage, key)
            return True
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self, stage: str, key: str, poll_s: float = 0.5) -> Iterator[None]:
        """Exclusive lock for computing one entry; other processes wait here."""
        lock_path = self.root / stage / f"{key}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a+") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    time.sleep(poll_s)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def commit(self, stage: str, key: str, write: Callable[[Path], None], meta: dict | None = None) -> Entry:
        """Build an entry with `write(tmp_folder)`, record hashes, and rename it into place."""
        entry = self.entry(stage, key)
        tmp = entry.path.parent / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            write(tmp)
            files = {}
            for p in sorted(tmp.rglob("*")):
                if p.is_file():
                    files[str(p.relative_to(tmp))] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
            manifest = {"stage": stage, "key": key, "files": files, "meta": meta or {}, "created": time.time()}
            atomic_write(tmp / "DONE.json", json.dumps(manifest, indent=1, default=str))
            if self.remote:
                # Upload before the local rename: a failed upload fails the commit, so a retry on
                # this node recomputes and uploads instead of finding a local-only entry. The old
                # DONE.json goes first, so while the files are replaced the entry reads as absent.
                rel = self.remote_rel(stage, key)
                self.remote.delete_file(f"{rel}/DONE.json")
                self.remote.upload_folder(tmp, rel, last="DONE.json")
            if entry.path.exists():  # a stale or corrupted entry: replace it
                shutil.rmtree(entry.path)
            os.replace(tmp, entry.path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return entry
