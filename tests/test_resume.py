"""Resume equals no interruption (issue: "a trial killed mid-stage and resumed ends with the same
table"): a trial stopped right after an epoch checkpoint, in pretraining and again in sign-to-text,
then resumed from those checkpoints (through the same files Ray Train keeps: harness.tune.worker's
write_checkpoint / read_checkpoint), ends with exactly the numbers of an uninterrupted trial of the
same seed; and the loop's own pieces (random streams, the best dev epoch) each shown to matter."""

from __future__ import annotations

import copy
import dataclasses
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from harness.cache import StageCache
from harness.config import OptimConfig, apply_overrides
from harness.loop import Runtime, StageRun, local_runtime, train_stage
from harness.pipeline import run_trial
from harness.tune.worker import read_checkpoint, write_checkpoint
from models.outputs import ModelOutput


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


# --------------------------------------------------------------------------------------------
# The loop alone: what a checkpoint must hold for that
# --------------------------------------------------------------------------------------------


class NoisyLine(nn.Module):
    """y = x . w under dropout: the random stream decides every step."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))
        self.drop = nn.Dropout(0.5)

    def forward(self, x, y):
        return ModelOutput(((self.drop(x) @ self.w - y) ** 2).mean())


def _train(epochs: int, latest: dict | None, scores: list[float]):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, generator=g)  # (8, 3)
    y = x @ torch.tensor([1.0, -2.0, 3.0])  # (8,)
    model = NoisyLine()
    reports: list[tuple[dict, dict | None]] = []
    runtime = Runtime(report=lambda m, state: reports.append((m, copy.deepcopy(state))),
                      latest_checkpoint=lambda: latest)
    run = StageRun("stage", "k", model, lambda epoch: [(x[i:i + 4], y[i:i + 4]) for i in (0, 4)], epochs, 2,
                   evaluate=lambda m, epoch: {"stage/dev": scores[epoch]}, keep_best="stage/dev")
    train_stage(run, OptimConfig(lr=0.1, warmup_steps=1, min_lr=0.01), runtime)
    return model, reports


def test_the_loop_keeps_the_best_dev_epoch_and_its_random_streams_across_a_resume():
    scores = [0.1, 0.9, 0.3, 0.2, 0.5]  # epoch 2 is the best: the model returned is epoch 2's
    whole, reports = _train(5, None, scores)
    assert reports[1][1]["best"]["epoch"] == 1
    assert torch.equal(whole.w, reports[1][1]["best"]["state"]["w"])  # not the last epoch's weights
    assert not torch.equal(whole.w, reports[3][1]["model"]["w"])
    after_three = reports[2][1]
    resumed, _ = _train(5, after_three, scores)
    assert torch.equal(resumed.w, whole.w)
    # The same checkpoint without the best epoch's weights ends elsewhere: they are what decides.
    forgetful = dict(after_three, best={"score": float("-inf"), "epoch": -1, "state": None})
    assert not torch.equal(_train(5, forgetful, scores)[0].w, whole.w)
    # And without its random streams (dropout draws from the restarted seed) the later epochs differ.
    last = [0.0, 0.0, 0.0, 0.0, 1.0]  # keep the last epoch, so the streams show in the result
    whole_last, reports_last = _train(5, None, last)
    torch.manual_seed(123)
    stale = dict(reports_last[2][1], rng=[dict(reports_last[2][1]["rng"][0], torch=torch.get_rng_state())])
    assert torch.equal(_train(5, reports_last[2][1], last)[0].w, whole_last.w)
    assert not torch.equal(_train(5, stale, last)[0].w, whole_last.w)


def test_a_checkpoint_without_the_result_deciding_state_restarts_the_stage():
    scores = [0.1, 0.9, 0.3]
    whole, reports = _train(3, None, scores)
    old = {k: v for k, v in reports[0][1].items() if k not in ("best", "rng")}  # an older harness's
    again, more = _train(3, old, scores)
    assert [m["epoch"] for m, _ in more] == [1, 2, 3]  # from the first epoch, not the checkpoint's
    assert torch.equal(again.w, whole.w)
