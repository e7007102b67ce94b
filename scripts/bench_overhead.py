"""Benchmark (not a test): the orchestration overhead of a trial, and ablation wall times.

overhead = wall time of one trial through `run_ablation.py` (local Ray, Tune, one TorchTrainer,
MLflow) / wall time of the same trial's stages run in this process (`python -m harness.trial`),
each into a fresh results folder (nothing cached), one torch thread each. The issue aims at 1.10
or less for the default profile.

    python scripts/bench_overhead.py --profile default                      # overhead only
    python scripts/bench_overhead.py --profile default --ablations apw stride  # plus full wall times
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stderr[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="default")
    p.add_argument("--ablation", default="apw")
    p.add_argument("--variant", default="apw")
    p.add_argument("--ablations", nargs="*", default=[], help="also time these whole ablations")
    p.add_argument("--seeds", type=int, default=None)
    args = p.parse_args()
    py = sys.executable
    report = {"profile": args.profile}
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        inproc = timed([py, "-m", "harness.trial", args.ablation, args.variant, "--profile", args.profile,
                        "--results", a, "--threads", "1", "--json"])
        tuned = timed([py, "harness/run_ablation.py", args.ablation, "--profile", args.profile, "--seeds", "1",
                       "--only", args.variant, "--max-concurrent", "1", "--results", b, "--json"])
    report.update({"trial": f"{args.ablation}/{args.variant}", "in_process_s": round(inproc, 1),
                   "through_tune_and_train_s": round(tuned, 1), "overhead": round(tuned / inproc, 3)})
    for name in args.ablations:
        with tempfile.TemporaryDirectory() as c:
            cmd = [py, "harness/run_ablation.py", name, "--profile", args.profile, "--results", c, "--json"]
            if args.seeds:
                cmd += ["--seeds", str(args.seeds)]
            report[f"{name}_wall_s"] = round(timed(cmd), 1)
    print(json.dumps(report, indent=1))
    print("\n| measure | value |\n|---|---|")
    for k, v in report.items():
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
