"""Files written so that a reader never sees half of one, checkpoints loaded safely, content digests.

Every file the harness writes that another process may read while it is written (stage-cache
manifests, trial results, tables, checkpoints) goes through `atomic_write`: a temporary file in the
same folder, then `os.replace`, which is atomic on POSIX file systems.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` via a temporary sibling and `os.replace` (text as UTF-8, newlines kept)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8", "newline": ""})) as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_torch(obj: Any, path: Path) -> None:
    """torch.save through a buffer, then an atomic write: a crash never leaves half a checkpoint."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(path, buffer.getvalue())


def load_torch(path: Path) -> Any:
    """Checkpoints hold tensors, numbers, strings and containers only: weights_only=True, so a
    file whose pickle would run code is refused."""
    return torch.load(path, map_location="cpu", weights_only=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def digest(obj: Any) -> str:
    """A short stable hash of a JSON-able object (keys sorted; other values by their str)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
