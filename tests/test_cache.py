"""The stage cache: content keys, complete-or-absent entries, verification, one writer."""

import json
import multiprocessing as mp
import time
from pathlib import Path

import pytest

from harness.cache import StageCache, content_key
from harness.io import load_torch, save_torch


def _write(folder: Path) -> None:
    save_torch({"x": list(range(100))}, folder / "model.pt")
    (folder / "metrics.json").write_text('{"bleu4": 1.0}')


def test_content_key_depends_on_settings_and_upstream_only():
    a = content_key("pretrain", 1, {"window": 15, "mask_ratio": 0.25}, {"prepare": "p1"})
    assert a == content_key("pretrain", 1, {"mask_ratio": 0.25, "window": 15}, {"prepare": "p1"})  # order-free
    assert a != content_key("pretrain", 1, {"window": 15, "mask_ratio": 0.5}, {"prepare": "p1"})
    assert a != content_key("pretrain", 1, {"window": 15, "mask_ratio": 0.25}, {"prepare": "p2"})
    assert a != content_key("embed", 1, {"window": 15, "mask_ratio": 0.25}, {"prepare": "p1"})
    assert a != content_key("pretrain", 2, {"window": 15, "mask_ratio": 0.25}, {"prepare": "p1"})  # code version


def test_committed_entry_is_complete_and_loads(tmp_path):
    cache = StageCache(tmp_path)
    assert not cache.is_complete("pretrain", "k")
    cache.commit("pretrain", "k", _write, {"seconds": 1.5})
    assert cache.is_complete("pretrain", "k")
    assert load_torch(cache.entry("pretrain", "k").file("model.pt")) == {"x": list(range(100))}
    assert json.loads(cache.entry("pretrain", "k").file("DONE.json").read_text())["meta"] == {"seconds": 1.5}
    assert not list((tmp_path / "pretrain").glob(".tmp-*"))  # no temporary folder left behind


def test_truncated_file_is_detected(tmp_path):
    cache = StageCache(tmp_path)
    cache.commit("pretrain", "k", _write)
    path = cache.entry("pretrain", "k").file("model.pt")
    path.write_bytes(path.read_bytes()[:-10])  # a half-written checkpoint
    assert cache.has_files("pretrain", "k")
    assert not cache.is_complete("pretrain", "k")


def test_same_size_corruption_is_detected(tmp_path):
    cache = StageCache(tmp_path)
    cache.commit("pretrain", "k", _write)
    path = cache.entry("pretrain", "k").file("metrics.json")
    path.write_text('{"bleu4": 9.0}')  # same length, different content
    assert not cache.is_complete("pretrain", "k")


def test_interrupted_write_is_never_complete(tmp_path):
    cache = StageCache(tmp_path)

    def crash(folder: Path) -> None:
        _write(folder)
        raise KeyboardInterrupt  # the process dies mid-write

    with pytest.raises(KeyboardInterrupt):
        cache.commit("pretrain", "k", crash)
    assert not cache.is_complete("pretrain", "k")
    assert not cache.entry("pretrain", "k").path.exists()
    assert not list((tmp_path / "pretrain").glob(".tmp-*"))


def test_recommit_replaces_a_corrupted_entry(tmp_path):
    cache = StageCache(tmp_path)
    cache.commit("pretrain", "k", _write)
    (cache.entry("pretrain", "k").path / "DONE.json").write_text("{not json")
    assert not cache.is_complete("pretrain", "k")
    cache.commit("pretrain", "k", _write)
    assert cache.is_complete("pretrain", "k")


def _hold_lock(root: str, started, seconds: float) -> None:
    cache = StageCache(Path(root))
    with cache.lock("pretrain", "k"):
        started.set()
        time.sleep(seconds)
        cache.commit("pretrain", "k", _write)


def test_second_process_waits_for_the_first(tmp_path):
    ctx = mp.get_context("spawn")
    started = ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(tmp_path), started, 1.5))
    proc.start()
    assert started.wait(30)
    cache = StageCache(tmp_path)
    t0 = time.perf_counter()
    with cache.lock("pretrain", "k", poll_s=0.05):
        waited = time.perf_counter() - t0
        complete = cache.is_complete("pretrain", "k")
    proc.join(30)
    assert waited > 0.5  # it waited for the holder ...
    assert complete  # ... and then found the entry the holder wrote
