"""Compute settings of the training loop: fused AdamW, CPU bf16 autocast off by default, and
`python -m harness.trial`'s thread default."""

from __future__ import annotations

import types

import pytest
import torch

from harness.config import OptimConfig, load_profile
from harness.loop import Runtime, make_optimizer


def test_make_optimizer_uses_fused_adamw_and_matches_the_loop():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))
    twin = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))
    twin.load_state_dict(model.state_dict())
    cfg = OptimConfig()
    opt, sched = make_optimizer(model, cfg, total_steps=20)
    assert opt.defaults["fused"] is True
    loop = torch.optim.AdamW(twin.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay,
                             foreach=False)
    loop_sched = torch.optim.lr_scheduler.LambdaLR(loop, sched.lr_lambdas[0])
    x = torch.randn(32, 8)
    for _ in range(5):
        for m, o, s in ((model, opt, sched), (twin, loop, loop_sched)):
            o.zero_grad()
            m(x).square().mean().backward()
            o.step()
            s.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-6)  # the same update up to float rounding


def test_cpu_bf16_autocast_is_off_unless_asked():
    assert load_profile("default").compute.cpu_bf16 is False
    rt = Runtime(device=torch.device("cpu"))
    with rt.autocast:
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32
    rt.cpu_bf16 = True  # what compute.cpu_bf16 sets
    with rt.autocast:
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16


@pytest.mark.parametrize("flag, threads", [([], 1), (["--threads", "2"], 2), (["--threads", "0"], None)])
def test_trial_command_runs_on_one_thread_by_default(monkeypatch, tmp_path, flag, threads):
    import harness.trial as trial
    before = torch.get_num_threads()
    seen = {}

    def fake_run_trial(cfg, tasks, cache, runtime):
        seen["threads"] = torch.get_num_threads()
        test = types.SimpleNamespace(metrics={"bleu4": 0.0})
        return types.SimpleNamespace(tasks={t: types.SimpleNamespace(test=test) for t in tasks}, stages={},
                                     stage_seconds={}, seconds=0.0), []

    monkeypatch.setattr(trial, "run_trial", fake_run_trial)
    try:
        torch.set_num_threads(2)
        assert trial.main(["apw", "apw", "--profile", "debug", "--results", str(tmp_path)] + flag) == 0
        assert seen["threads"] == (threads if threads is not None else 2)  # 0 keeps what torch had
    finally:
        torch.set_num_threads(before)
