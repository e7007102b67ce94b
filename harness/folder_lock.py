"""One writer per study folder (RESULTS/NAME of an ablation, RESULTS/search/NAME of a search).

A study's driver deletes, moves and rewrites what is in its folder (its state, its trials' result
files, its table) and closes the MLflow runs an earlier invocation left RUNNING; a second driver on
the same folder would do that to a live one. So the driver holds RESULTS/NAME/.lock for its whole
run: an exclusive `flock` on a file that says who holds it (JSON: pid, host, since, command).

- A second invocation is refused with one line naming the holder.
- The kernel drops a flock when its process dies, even by SIGKILL: a lock file that can be locked
  but still names a holder was left by a killed driver. On this host it is taken over, in one line;
  from another host (a shared file system) the holder cannot be checked, so it is refused.
- Released (the file removed) when the block ends: normally, on an error and on Ctrl-C.

Studies in different folders of one RESULTS (two ablations) still run side by side: what they
share, the stage cache, has its own per-entry locks (harness.cache).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from harness.user_input import ConfigError

LOCK_NAME = ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _holder(text: str) -> dict:
    try:
        data = json.loads(text)
        return data if isinstance(data, dict) else {}
    except ValueError:
        return {}


def _who(holder: dict) -> str:
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('since', '?')}"
            + (f" ({' '.join(str(holder['command']).split())})" if holder.get("command") else ""))


def _read(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _lock(path: Path) -> int:
    """An fd of `path` holding its flock; ConfigError when another process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(_read(fd))
            os.close(fd)
            raise ConfigError(f"{path.parent} is in use by {_who(holder) if holder else 'another process'} "
                              f"(lock {path}): wait until it ends or stop it, or pass another --results") from None
        # The holder removes the file as it releases: a lock taken on a file already unlinked (or
        # replaced) guards nothing, so take it again on the file the path names now.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def hold(folder: Path, say: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
         command: str = "") -> Iterator[Path]:
    """Hold `folder`'s lock for the block (the folder is created). Yields the lock file's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = _lock(path)
    try:
        left = _holder(_read(fd))
        host = socket.gethostname()
        if left:
            if left.get("host") != host:
                raise ConfigError(f"{path} names {_who(left)}, which cannot be checked from {host}: if that "
                                  f"process has ended, delete {path} and rerun")
            pid = left.get("pid")
            why = "is not running" if not (isinstance(pid, int) and _alive(pid)) else "no longer holds it"
            say(f"taking over the lock {path} of {_who(left)}: that process {why}")
        me = {"pid": os.getpid(), "host": host, "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": command}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(me).encode())
        os.fsync(fd)
        try:
            yield path
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # before the flock goes: see _lock
    finally:
        os.close(fd)
