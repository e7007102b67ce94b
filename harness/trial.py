"""`python -m harness.trial ABLATION VARIANT`: one trial in this process, without Ray Tune or Train.

For debugging (breakpoints work) and for measuring the orchestration overhead: the same stages,
the same cache and the same training loop as a trial of `run_ablation.py`, on one local worker.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from harness.ablation import available, load_ablation, variant_config
from harness.cli import Parser, run_cli
from harness.config import PROFILES, ConfigError, parse_set
from harness.cache import StageCache
from harness.loop import local_runtime
from harness.pipeline import run_trial
from harness.results import ResultsLayout


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m harness.trial", description=__doc__)
    p.add_argument("ablation", help=f"one of {', '.join(available())}")
    p.add_argument("variant")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", choices=PROFILES)
    p.add_argument("--results", default="results")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    # One thread by default: with the other cores busy (another trial, a test run), two threads make a
    # training step 1.8-2.1x slower than one on a 2-core machine.
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0 keeps torch's default)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    spec = load_ablation(args.ablation)
    if args.variant not in spec.variants:
        raise ConfigError(f"unknown variant {args.variant!r} of {args.ablation}; one of {', '.join(spec.variants)}")
    cfg = variant_config(spec, args.variant, args.profile, parse_set(args.set), args.seed)
    if args.threads < 0:
        raise ConfigError(f"--threads must be 0 (torch's default) or a positive count, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    say = (lambda s: print(s, file=sys.stderr)) if args.json else print
    cache = StageCache(ResultsLayout(Path(args.results).resolve()).cache)
    runtime = local_runtime(say)
    runtime.cpu_bf16 = cfg.compute.cpu_bf16  # what Runtime.autocast reads on CPU
    result, _ = run_trial(cfg, spec.tasks, cache, runtime)
    summary = {task: result.tasks[task].test.metrics for task in spec.tasks if task in result.tasks}
    if args.json:
        print(json.dumps({"metrics": summary, "stages": result.stages, "stage_seconds": result.stage_seconds,
                          "seconds": result.seconds}))
    else:
        for task, metrics in summary.items():
            print(f"{task} (test): " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
        print(f"stages: {result.stages}; {result.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
