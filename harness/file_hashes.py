"""Content hashes of a user's data files, for the prepare stage's cache key (harness/cache.py).

A source's identity is the SHA-256 of every file it reads, so a corrected file is always seen,
even one copied into place with `cp -p` or `rsync -a` (same path, size and modification time as
the file it replaces). Hashing a large corpus on every trial would cost seconds to minutes, so a
file's hash is computed once and remembered by (path, size, mtime, ctime): the ctime is in the
key because `cp -p` and `rsync -a` set the mtime back but cannot set the ctime, which every write
moves. Remembered in this process and in a JSON file beside the stage cache that the process
uses (`use_store`, called by harness.cache.StageCache: nothing is written outside the results
folder), or in UNIGLOR_HASH_CACHE if set; with neither (e.g. `inspect`) in this process only. A
lost or unreadable store only costs re-hashing, never a wrong key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness.io import atomic_write, sha256_file

_MEMO: dict[str, tuple[int, int, int, str]] = {}
_STORE: list[Path] = []  # the store of this process's stage cache, if one was opened


def use_store(path: Path) -> None:
    """Remember hashes in `path` from now on (the stage cache's folder)."""
    _STORE[:] = [Path(path)]


def store_path() -> Path | None:
    if os.environ.get("UNIGLOR_HASH_CACHE"):
        return Path(os.environ["UNIGLOR_HASH_CACHE"])
    return _STORE[0] if _STORE else None


def _load(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def file_hashes(paths: list[Path]) -> dict[str, str]:
    """Resolved path -> SHA-256 of its content, hashing only files not seen with this stat."""
    out, fresh = {}, {}
    store = None
    for path in paths:
        name = str(Path(path).resolve())
        st = os.stat(name)
        stat = (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        known = _MEMO.get(name)
        if known is None:
            if store is None:
                path = store_path()
                store = _load(path) if path else {}
            entry = store.get(name)
            known = tuple(entry) if isinstance(entry, list) and len(entry) == 4 else None
        if known is not None and tuple(known[:3]) == stat:
            out[name] = known[3]
            _MEMO[name] = known
            continue
        digest = sha256_file(Path(name))
        _MEMO[name] = (*stat, digest)
        fresh[name] = [*stat, digest]
        out[name] = digest
    path = store_path()
    if fresh and path is not None:
        try:
            atomic_write(path, json.dumps({**_load(path), **fresh}))
        except OSError:
            pass  # a read-only folder: hashes are then remembered in this process only
    return out
