"""The one training loop: resuming a stage from its last epoch checkpoint (with the state that
decides its result), sharding, step counts, and stopping on a non-finite loss (on every DDP rank at once)."""

from __future__ import annotations

import copy

import pytest

import torch
from torch import nn

from harness.config import OptimConfig
from harness.loop import Runtime, StageRun, shard_order, steps_per_epoch, train_stage
from models.outputs import ModelOutput


class Line(nn.Module):
    """y = x . w, squared error: small enough that every step is exactly reproducible."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))

    def forward(self, x, y):
        return ModelOutput(((x @ self.w - y) ** 2).mean())


class NoisyLine(Line):
    """Line under dropout: the random stream decides every step."""

    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.5)

    def forward(self, x, y):
        return super().forward(self.drop(x), y)


def _train(epochs: int, key: str = "k", latest: dict | None = None, every_s: float = 0.0,
           model: nn.Module | None = None, scores: list[float] | None = None):
    """`scores`: a dev score per epoch, and the loop keeps the best-scoring epoch's model."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, generator=g)  # (8, 3)
    y = x @ torch.tensor([1.0, -2.0, 3.0])  # (8,)
    model = model or Line()
    reports: list[tuple[dict, dict | None]] = []
    runtime = Runtime(report=lambda m, state: reports.append((m, copy.deepcopy(state))),
                      latest_checkpoint=lambda: latest, checkpoint_every_s=every_s)
    evaluate = (lambda m, epoch: {"stage/dev": scores[epoch]}) if scores else None
    run = StageRun("stage", key, model, lambda epoch: [(x[i:i + 4], y[i:i + 4]) for i in (0, 4)], epochs, 2,
                   evaluate=evaluate, keep_best="stage/dev" if scores else None)
    train_stage(run, OptimConfig(lr=0.1, warmup_steps=1, min_lr=0.01), runtime)
    return model, reports


def test_a_resumed_stage_ends_where_an_uninterrupted_one_does():
    whole, reports = _train(4)
    assert [m["epoch"] for m, _ in reports] == [1, 2, 3, 4]
    after_two = reports[1][1]  # the checkpoint of epoch 2 (0-based epoch 1)
    assert after_two["epoch"] == 1 and after_two["stage"] == "stage" and after_two["key"] == "k"
    resumed, more = _train(4, latest=after_two)
    assert [m["epoch"] for m, _ in more] == [3, 4]  # epochs 1 and 2 are not trained again
    assert torch.equal(resumed.w, whole.w)
    assert more[-1][0]["stage/train_loss"] == reports[-1][0]["stage/train_loss"]


def test_a_checkpoint_of_another_stage_key_is_not_loaded():
    _, reports = _train(2)
    assert reports[0][1]["epoch"] == 0
    fresh, again = _train(2, key="other", latest=reports[0][1])
    assert [m["epoch"] for m, _ in again] == [1, 2]
    assert torch.equal(fresh.w, _train(2, key="other")[0].w)


def test_a_checkpoint_keeps_the_best_dev_epoch_and_the_random_streams_that_decide_the_result():
    scores = [0.1, 0.9, 0.3, 0.2, 0.5]  # epoch 2 is the best: the model returned is epoch 2's
    whole, reports = _train(5, model=NoisyLine(), scores=scores)
    assert reports[1][1]["best"]["epoch"] == 1
    assert torch.equal(whole.w, reports[1][1]["best"]["state"]["w"])  # not the last epoch's weights
    assert not torch.equal(whole.w, reports[3][1]["model"]["w"])
    after_three = reports[2][1]
    assert torch.equal(_train(5, latest=after_three, model=NoisyLine(), scores=scores)[0].w, whole.w)
    # The same checkpoint without the best epoch's weights ends elsewhere: they are what decides.
    forgetful = dict(after_three, best={"score": float("-inf"), "epoch": -1, "state": None})
    assert not torch.equal(_train(5, latest=forgetful, model=NoisyLine(), scores=scores)[0].w, whole.w)
    # Keeping the last epoch, the random streams show: restored, the resumed run draws the same
    # dropout masks; with other streams (as after a restart that reseeds) it ends elsewhere.
    last = [0.0, 0.0, 0.0, 0.0, 1.0]
    whole_last, reports_last = _train(5, model=NoisyLine(), scores=last)
    state = reports_last[2][1]
    torch.manual_seed(123)
    stale = dict(state, rng=[dict(state["rng"][0], torch=torch.get_rng_state())])
    assert torch.equal(_train(5, latest=state, model=NoisyLine(), scores=last)[0].w, whole_last.w)
    assert not torch.equal(_train(5, latest=stale, model=NoisyLine(), scores=last)[0].w, whole_last.w)


def test_a_checkpoint_without_the_result_deciding_state_restarts_the_stage():
    whole, reports = _train(3)
    old = {k: v for k, v in reports[0][1].items() if k not in ("best", "rng")}  # an older harness's
    again, more = _train(3, latest=old)
    assert [m["epoch"] for m, _ in more] == [1, 2, 3]  # from the first epoch, not the checkpoint's
    assert torch.equal(again.w, whole.w)


def test_checkpoints_follow_the_time_budget_and_skip_the_last_epoch():
    _, every = _train(4)
    assert [state is not None for _, state in every] == [True, True, True, False]  # the cache keeps the end
    _, budget = _train(4, every_s=3600.0)
    assert [state for _, state in budget] == [None] * 4  # short epochs: none within the budget


def test_steps_per_epoch_counts_one_ranks_batches():
    assert steps_per_epoch(10, 4, 1) == 3  # 4 + 4 + 2
    assert steps_per_epoch(10, 4, 2) == 2  # a shard of 5: 4 + 1
    assert steps_per_epoch(8, 4, 2) == 1
    assert steps_per_epoch(0, 4, 1) == 1  # the schedule never divides by zero


def test_shard_order_splits_one_permutation_by_rank():
    shards = [shard_order(10, seed=3, epoch=1, rank=r, world_size=3) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]  # padded to a multiple of the world size
    assert set(sum(shards, [])) == set(range(10))
    assert shard_order(10, 3, 1, 0, 1) == shard_order(10, 3, 1, 0, 1) != shard_order(10, 3, 2, 0, 1)


def test_schedule_warms_up_linearly_then_decays_by_cosine_to_the_floor():
    from harness.loop import make_optimizer
    cfg = OptimConfig(lr=1e-3, min_lr=1e-4, warmup_steps=4)
    opt, sched = make_optimizer(Line(), cfg, total_steps=44)
    lrs = []
    for _ in range(44):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[:4] == [2.5e-4, 5e-4, 7.5e-4, 1e-3]  # (step + 1) / warmup of the peak
    assert abs(lrs[4 + 20] - (1e-4 + 0.9e-3 * 0.5)) < 1e-12  # half way: the mean of peak and floor
    assert abs(sched.get_last_lr()[0] - 1e-4) < 1e-12  # the floor at the end, never zero
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))  # monotone after the warmup


def test_warmup_cap_default_is_the_old_ten_percent_rule_and_one_lets_the_warmup_run():
    from harness.loop import warmup_length

    def old(ws, total):  # the rule before optim.warmup_cap existed
        return min(ws, max(total // 10, 1)) if total < 10 * ws else ws

    for ws in (0, 1, 4, 7, 10, 100, 333):
        for total in range(1, 4000, 7):
            assert warmup_length(OptimConfig(warmup_steps=ws), total) == old(ws, total), (ws, total)
    assert warmup_length(OptimConfig(warmup_steps=10000, warmup_cap=1.0), 30000) == 10000  # the paper's 10K
    assert warmup_length(OptimConfig(warmup_steps=10000, warmup_cap=1.0), 5550) == 5550  # a shorter stage: all of it
    assert warmup_length(OptimConfig(warmup_steps=10000, warmup_cap=0.5), 5550) == 2775
    assert warmup_length(OptimConfig(warmup_steps=100, warmup_cap=0.29), 100) == 29  # 0.29 * 100 is 28.999999999999996


def test_gradients_are_clipped_to_the_configured_norm():
    model = Line()
    seen: list[float] = []
    x = torch.full((4, 3), 100.0)  # a huge gradient
    y = torch.full((4,), 50.0)

    class Spy(torch.optim.AdamW):
        def step(self, closure=None):
            seen.append(float(torch.linalg.vector_norm(model.w.grad)))
            return super().step(closure)

    import harness.loop as loop
    real = torch.optim.AdamW
    loop.torch.optim.AdamW = Spy
    try:
        train_stage(StageRun("s", "k", model, lambda epoch: [(x, y)], 1, 1), OptimConfig(grad_clip=0.5), Runtime())
    finally:
        loop.torch.optim.AdamW = real
    assert seen and abs(seen[0] - 0.5) < 1e-5


class Poisoned(Line):
    """A loss that turns `bad` from the `at`-th forward on (a planted divergence)."""

    def __init__(self, at: int, bad: float):
        super().__init__()
        self.calls, self.at, self.bad = 0, at, bad

    def forward(self, x, y):
        self.calls += 1
        out = super().forward(x, y)
        return ModelOutput(out.loss * self.bad) if self.calls >= self.at else out


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_loss_stops_the_stage_with_one_line(bad):
    from harness.config import ConfigError
    from harness.loop import Diverged
    model = Poisoned(at=4, bad=bad)  # two steps per epoch: the 4th forward is epoch 2's second step
    reports: list = []
    run = StageRun("pretrain", "k", model, lambda epoch: [(torch.ones(4, 3), torch.ones(4))] * 2, 3, 2)
    with pytest.raises(Diverged) as err:
        train_stage(run, OptimConfig(lr=0.1, warmup_steps=1), Runtime(report=lambda m, s: reports.append(m)))
    msg = str(err.value)
    assert isinstance(err.value, ConfigError) and "\n" not in msg  # the CLI's one-line user error
    assert msg.startswith(f"pretrain: the training loss became {bad} in epoch 2/3;") and "lower optim.lr (now 0.1)" in msg
    assert len(reports) == 1 and model.calls == 4  # epoch 1 reported; nothing trained after the bad step


def test_an_infinite_gradient_stops_the_stage_when_clipping_would_hide_it():
    from harness.loop import Diverged
    model = Line()
    # The loss is (0 - 1e18)^2 = 1e36, finite in float32; its gradient, 4 x 1e21 x 5e17 = 2e39, is not.
    x, y = torch.full((4, 3), 1e21), torch.full((4,), 1e18)
    run = StageRun("sign2text", "k", model, lambda epoch: [(x, y)], 1, 1)
    with pytest.raises(Diverged, match=r"^sign2text: the training gradient norm became inf in epoch 1/1;"):
        train_stage(run, OptimConfig(grad_clip=1.0), Runtime())
    assert torch.equal(model.w, torch.zeros(3))  # never stepped with it


def _ddp_rank(rank: int, port: int, root: str, out) -> None:
    """One of two DDP ranks (gloo, this machine) training a stage through `cached_run`; rank 1's
    loss alone becomes NaN in epoch 2."""
    import os
    from pathlib import Path

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from harness.cache import StageCache
    from harness.loop import Diverged
    from harness.stages.base import Stage, cached_run
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    x = torch.ones(4, 3)  # (B, 3)

    def batches(epoch):
        for step in range(2):
            xb = x.clone()
            if rank == 1 and epoch == 1 and step == 1:
                xb[0, 0] = float("nan")
            yield xb, torch.ones(4)

    rt = Runtime(rank=rank, world_size=2, prepare_model=DistributedDataParallel)
    run = StageRun("pretrain", "k", Line(), batches, 3, 2)
    stage = Stage(name="pretrain", needs=(), settings=lambda cfg: {},
                  run=lambda ctx: None, save=lambda o, folder: (folder / "w.pt").write_text("w"), load=lambda f: None)
    try:
        cached_run(stage, "k", StageCache(Path(root)), rt, lambda: train_stage(run, OptimConfig(lr=0.1, warmup_steps=1), rt))
        out.put((rank, "finished"))
    except Diverged as exc:
        out.put((rank, str(exc)))
    except Exception as exc:  # e.g. the peer gone from the all-reduce
        out.put((rank, f"{type(exc).__name__}: {exc}"))
    finally:
        dist.destroy_process_group()


def test_one_ranks_non_finite_loss_stops_every_rank_together_and_caches_nothing(tmp_path):
    import multiprocessing as mp
    import queue
    import socket

    from harness.cache import StageCache
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_ddp_rank, args=(rank, port, str(tmp_path), out)) for rank in (0, 1)]
    for p in procs:
        p.start()
    try:
        said = dict(out.get(timeout=120) for _ in procs)  # a rank left waiting would time out here
    except queue.Empty:
        said = None
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert said is not None, "a rank hung in DDP after its peer's loss became NaN"
    assert said[0] == said[1], said  # the same one line on both ranks
    assert said[0].startswith("pretrain: the training loss became nan in epoch 2/3;") and "\n" not in said[0]
    assert not StageCache(tmp_path).has_files("pretrain", "k")  # not cached
    assert [p.exitcode for p in procs] == [0, 0]
