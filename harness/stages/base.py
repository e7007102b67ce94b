"""A stage as a record, and the one protocol that loads it from the cache or computes it.

A stage says what it needs (the names of upstream stages: the graph is written once, here), which
settings its output depends on (exactly what its cache key hashes), how to compute, save and load
its output, and how that stored output becomes what downstream stages receive (`ready`, e.g. a
state dict becomes a frozen model). Stages never import each other: `harness.pipeline` walks them
and hands each one its upstream outputs in a `StageContext`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness.cache import StageCache
from harness.config import ExperimentConfig
from harness.data.record import Corpus
from harness.loop import Runtime


@dataclass(frozen=True)
class StageContext:
    cfg: ExperimentConfig
    runtime: Runtime
    key: str  # this stage's cache key: its Train checkpoints carry it, so a resume never mixes stages
    inputs: dict[str, Any]  # upstream stage name -> its ready output
    # Another data source through the prepare stage's cache (pretraining's `pretrain.extra_source`).
    prepare_source: Callable[[str], Corpus]


def numerics(cfg: ExperimentConfig) -> dict:
    """What a training stage's key hashes of how it computes: bf16 on CPU changes its numbers (and
    is absent from the key when off, so turning nothing on changes no key)."""
    return {"cpu_bf16": True} if cfg.compute.cpu_bf16 else {}


def _identity(ctx: StageContext, stored: Any) -> Any:
    return stored


@dataclass(frozen=True)
class Stage:
    name: str
    needs: tuple[str, ...]  # upstream stages, in the order they are run
    settings: Callable[[ExperimentConfig], dict]  # what the cache key hashes, besides the upstream keys
    run: Callable[[StageContext], Any]  # computes the stored output (on every rank under DDP)
    save: Callable[[Any, Path], None]
    load: Callable[[Path], Any]
    ready: Callable[[StageContext, Any], Any] = _identity  # stored output -> what downstream stages get
    folder: str = ""  # cache folder, if not `name`: text-to-sign's embedding is an `embed` entry
    version: int = 1  # bump when the computation changes so that old entries are invalid
    reload: bool = False  # hand on what was written, not what was computed (prepare: the npz's dtypes)
    reported: bool = True  # listed in a trial's `stages` (prepare, isolated: run by the driver before any trial)

    @property
    def cache_folder(self) -> str:
        return self.folder or self.name


def cached_run(stage: Stage, key: str, cache: StageCache, runtime: Runtime, produce: Callable[[], Any]
               ) -> tuple[Any, str]:
    """The stored output of `stage` and "cached" or "computed".

    Loads the entry if it is complete (here, or fetched from the remote); otherwise computes it on
    every rank (DDP) while rank 0 holds the entry's lock, and rank 0 writes it."""
    folder = stage.cache_folder
    lock = None
    hit = None
    if runtime.is_main:
        lock = cache.lock(folder, key)
        lock.__enter__()
        try:
            # Under the lock, so a trial that waited here loads what the holder just wrote (or, with
            # a remote, what another node uploaded meanwhile) instead of computing it again.
            hit = cache.lookup(folder, key)
            if not hit and cache.has_files(folder, key):
                runtime.say(f"{stage.name}: cache entry {key} failed verification; recomputing")
        except BaseException:
            lock.__exit__(None, None, None)
            raise
    hit = runtime.broadcast(hit)
    t0 = time.perf_counter()
    try:
        if hit:
            _fetch_on_this_node(stage, key, cache, runtime)
            return stage.load(cache.entry(folder, key).path), "cached"
        runtime.say(f"{stage.name}: computing ({key})")
        output = produce()
        if runtime.is_main:
            cache.commit(folder, key, lambda path: stage.save(output, path), {"seconds": time.perf_counter() - t0})
        runtime.barrier()
        if stage.reload:
            _fetch_on_this_node(stage, key, cache, runtime)
            output = stage.load(cache.entry(folder, key).path)
        return output, "computed"
    finally:
        if lock is not None:
            lock.__exit__(None, None, None)


def _fetch_on_this_node(stage: Stage, key: str, cache: StageCache, runtime: Runtime) -> None:
    """A rank on another node than rank 0 has no local copy: it fetches its own (without the lock,
    which rank 0 holds; a fetch places a verified copy or nothing)."""
    if not runtime.is_main and cache.remote and not cache.lookup(stage.cache_folder, key):
        raise RuntimeError(f"{stage.name}: cache entry {key} vanished from {cache.remote.uri}")
