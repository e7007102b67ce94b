"""Resume equals no interruption: a trial stopped right after an epoch checkpoint, in pretraining
and again in sign-to-text, then resumed from those checkpoints (through the same files Ray Train
keeps: harness.tune.worker's write_checkpoint / read_checkpoint), ends with exactly the numbers of
an uninterrupted trial of the same seed. (The loop's own pieces, the random streams and the best
dev epoch, are each shown to matter in tests/test_loop.py.)"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from harness.cache import StageCache
from harness.config import apply_overrides
from harness.loop import Runtime, local_runtime
from harness.pipeline import run_trial
from harness.tune.worker import read_checkpoint, write_checkpoint


class Killed(Exception):
    """The worker dying right after its checkpoint reached storage (a controlled fault)."""


def _runtime(store: Path, kill_at: tuple[str, int] | None) -> Runtime:
    """A one-process runtime whose checkpoints go through the Train checkpoint files, as a restarted
    worker group finds them; `kill_at` = (stage, epoch) dies after that epoch's checkpoint."""
    def report(metrics: dict, state: dict | None) -> None:
        if state is not None:
            shutil.rmtree(store, ignore_errors=True)
            store.mkdir(parents=True)
            write_checkpoint(state, store)
        if kill_at == (metrics["stage"], metrics["epoch"]):
            raise Killed(f"killed after {kill_at}")

    return dataclasses.replace(local_runtime(lambda s: None), report=report, checkpoint_every_s=0.0,
                               latest_checkpoint=lambda: read_checkpoint(store) if store.is_dir() else None)


def _numbers(result) -> dict:
    """What the table is built from: every metric and hypothesis, no wall times."""
    out = dataclasses.asdict(result)
    for k in ("stages", "stage_seconds", "seconds"):
        out.pop(k)
    out["pretrain_metrics"] = {k: v for k, v in out["pretrain_metrics"].items() if not k.endswith("epoch_s")}
    return out


@pytest.fixture
def resume_cfg(tiny_cfg):
    # Dropout on, so the random streams decide the weights; sign-to-text evaluates every epoch.
    return apply_overrides(tiny_cfg, {"pretrain.epochs": 3, "sign2text.epochs": 4}, "test")


def test_a_trial_killed_mid_stage_and_resumed_ends_with_the_uninterrupted_numbers(resume_cfg, tmp_path):
    torch.set_num_threads(1)
    tasks = ("sign2text",)
    whole, _ = run_trial(resume_cfg, tasks, StageCache(tmp_path / "a"), _runtime(tmp_path / "ckpt-a", None))

    cache, store = StageCache(tmp_path / "b"), tmp_path / "ckpt-b"
    with pytest.raises(Killed):
        run_trial(resume_cfg, tasks, cache, _runtime(store, ("pretrain", 1)))
    assert read_checkpoint(store)["stage"] == "pretrain" and read_checkpoint(store)["epoch"] == 0
    with pytest.raises(Killed):  # pretraining resumed at epoch 2, then killed in sign-to-text
        run_trial(resume_cfg, tasks, cache, _runtime(store, ("sign2text", 2)))
    state = read_checkpoint(store)
    assert state["stage"] == "sign2text" and state["epoch"] == 1 and state["best"]["epoch"] in (0, 1)
    resumed, _ = run_trial(resume_cfg, tasks, cache, _runtime(store, None))
    assert resumed.stages["sign2text"] == "computed" and resumed.stages["pretrain"] == "cached"
    assert _numbers(resumed) == _numbers(whole)
