"""Benchmark (not a test): each stage of one trial against its FLOP-limited time, on one thread.

One trial (ablation `apw`, variant `apw` by default) runs in this process (`harness.pipeline.run_trial`
with `harness.loop.local_runtime`, torch on one thread) into a fresh results folder, so every stage
is computed. Per stage it prints:

- seconds: the stage's own time as `run_trial` reports it (its training, evaluation, decoding and
  cache write; not time spent waiting on reports);
- GFLOP: the matmul, convolution and attention FLOPs of the stage's training AND evaluation, counted
  by `torch.utils.flop_counter.FlopCounterMode`;
- the FLOP-limited seconds, GFLOP / this CPU's single-thread fp32 matmul rate (measured in the same
  run: the best of several 1024^3 products before, between and after the passes), and the ratio.

Counting does not distort the timing: the FLOPs are counted in a second pass of the same trial
(same config and seed, its own fresh cache) whose time is not used; FlopCounterMode intercepts every
op in Python, which slows that pass. In the counting pass PyTorch's fused Transformer fast path is
off (its fused kernels are not in FlopCounterMode's tables and would count as 0 FLOPs); that changes
only float rounding of evaluation forwards, so decoded lengths, and with them the FLOPs, can differ
slightly; the footer says whether both passes produced the same test metrics.

    python scripts/bench_stages.py --profile debug
    python scripts/bench_stages.py --profile default --set pretrain.epochs=2

With `--orchestration` it also runs the same trial, first, through `run_ablation.py` (`--seeds 1 --only
VARIANT --max-concurrent 1`, local Ray, Tune, MLflow, into another fresh folder) and adds, per stage,
its seconds there and the ratio to the in-process seconds, and for the trial its wall time under
Tune (from its trial function's start to its result written: MLflow runs, reports, checkpoints and
waits included) against its in-process wall time: the orchestration ratio. Fixed costs of an
invocation (starting Ray and the trial's actor, the table and figures) are printed separately, as
the whole command's time.

`stage_rows` returns the table as dicts, for scripts that add columns.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness.ablation import load_ablation, variant_config  # noqa: E402
from harness.cache import StageCache  # noqa: E402
from harness.config import parse_set  # noqa: E402
from harness.loop import local_runtime  # noqa: E402
from harness.pipeline import prepare_source, run_trial  # noqa: E402
from harness.results import ResultsLayout  # noqa: E402
from harness.stages import STAGES, StageContext, cached_run, run_order, stage_keys  # noqa: E402


def matmul_gflops(n: int = 1024, repeats: int = 8) -> float:
    """The best single-product rate of an n x n x n fp32 matmul on the current thread count, GFLOP/s."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


@contextmanager
def _no_fused_transformer():
    mha = torch.backends.mha
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(before)


class _GlobalOnly:
    """Stands in for FlopCounterMode's module tracker: every FLOP counts under "Global" only."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def count_flops(cfg, tasks: tuple[str, ...], results: Path) -> tuple[dict[str, float], dict]:
    """FLOPs per stage of the trial, computed again from scratch into `results` (a fresh cache),
    the walk of `harness.pipeline.run_trial` with each stage's computation under FlopCounterMode.
    Returns ({stage: flops}, {stage: stored output})."""
    from torch.utils.flop_counter import FlopCounterMode
    runtime = local_runtime(say=lambda text: None)
    runtime.cpu_bf16 = cfg.compute.cpu_bf16
    cache = StageCache(ResultsLayout(results).cache)
    keys = stage_keys(cfg, tasks)
    ready, stored, flops = {}, {}, {}

    def counted(stage, ctx):
        counter = FlopCounterMode(display=False)
        counter.mod_tracker = _GlobalOnly()  # per-module attribution is not needed, and its hooks
        with counter:  # fail on a no_grad view of a parameter (SignMAE's queries in evaluation)
            out = stage.run(ctx)
        flops[stage.name] = float(counter.get_total_flops())
        return out

    with _no_fused_transformer():
        for name in run_order(tasks):
            stage = STAGES[name]
            ctx = StageContext(cfg=cfg, runtime=runtime, key=keys[name], inputs={n: ready[n] for n in stage.needs},
                               prepare_source=lambda spec: prepare_source(spec, cfg, cache, runtime))
            stored[name], _ = cached_run(stage, keys[name], cache, runtime, lambda: counted(stage, ctx))
            ready[name] = stage.ready(ctx, stored[name])
    return flops, stored


def _test_metrics(stored: dict, tasks: tuple[str, ...]) -> dict:
    return {t: stored[t]["result"]["test"]["metrics"] for t in tasks if t in stored}


def stage_rows(cfg, tasks: tuple[str, ...], results: Path | None = None, say=print) -> tuple[list[dict], dict]:
    """Time the trial in-process, then count its FLOPs in a second pass. Returns one row per stage
    (stage, status, seconds, gflop, flop_s, ratio) plus a "trial" row (the stages' sums; its
    wall_s also holds prepare and the walk), and an info dict (matmul rates, passes)."""
    torch.set_num_threads(1)
    rates = [matmul_gflops()]
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        timed_dir = Path(results).resolve() if results else Path(tmp) / "timed"
        say(f"timed pass: {timed_dir}")
        t0 = time.perf_counter()
        runtime = local_runtime(say=lambda s: None)
        runtime.cpu_bf16 = cfg.compute.cpu_bf16  # as harness.trial does
        result, _ = run_trial(cfg, tasks, StageCache(ResultsLayout(timed_dir).cache), runtime)
        timed_wall = time.perf_counter() - t0
        rates.append(matmul_gflops())
        say(f"counting pass: {Path(tmp) / 'counted'}")
        t0 = time.perf_counter()
        flops, stored = count_flops(cfg, tasks, Path(tmp) / "counted")
        count_wall = time.perf_counter() - t0
        rates.append(matmul_gflops())
    rate = max(rates)
    rows = []
    for name, seconds in result.stage_seconds.items():
        gflop = flops.get(name, 0.0) / 1e9
        flop_s = gflop / rate
        rows.append({"stage": name, "status": result.stages[name], "seconds": seconds, "gflop": gflop,
                     "flop_s": flop_s, "ratio": seconds / flop_s if flop_s else float("inf")})
    total_s = sum(r["seconds"] for r in rows)
    total_gflop = sum(r["gflop"] for r in rows)
    rows.append({"stage": "trial", "status": "", "seconds": total_s, "gflop": total_gflop,
                 "flop_s": total_gflop / rate, "ratio": total_s / (total_gflop / rate) if total_gflop else float("inf"),
                 "wall_s": result.seconds})
    timed_metrics, counted_metrics = {t: result.tasks[t].test.metrics for t in tasks}, _test_metrics(stored, tasks)
    info = {"matmul_gflops": rates, "rate_used": rate, "timed_pass_s": timed_wall, "counting_pass_s": count_wall,
            "same_test_metrics": timed_metrics == counted_metrics, "test_metrics": timed_metrics,
            "counted_test_metrics": counted_metrics}
    return rows, info


def through_tune(ablation: str, variant: str, profile: str | None, sets: list[str], seed: int) -> dict:
    """The same trial through run_ablation.py in a fresh folder: its TrialResult (stage seconds,
    trial_wall_s) and the whole command's wall time."""
    if seed != 0:
        raise SystemExit("--orchestration runs run_ablation.py's first seed: use --seed 0")
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
        cmd = [sys.executable, str(ROOT / "harness" / "run_ablation.py"), ablation, "--seeds", "1", "--only", variant,
               "--max-concurrent", "1", "--results", tmp, "--json"]
        cmd += ["--profile", profile] if profile else []
        for kv in sets:
            cmd += ["--set", kv]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if out.returncode != 0:
            raise SystemExit(f"run_ablation.py failed ({out.returncode}):\n{out.stderr[-3000:]}")
        found = sorted((Path(tmp) / ablation / "trials").glob("*.json"))
        if len(found) != 1:
            raise SystemExit(f"expected one trial result under {tmp}/{ablation}/trials, found {len(found)}")
        data = json.loads(found[0].read_text())
    return {"command_s": wall, "trial_wall_s": float(data["trial_wall_s"]), "stage_seconds": data["stage_seconds"],
            "seconds": float(data["seconds"])}


def add_orchestration(rows: list[dict], info: dict, tune: dict) -> None:
    """Per stage: seconds under Tune and their ratio to in-process; the trial: wall under Tune / in-process."""
    for r in rows[:-1]:
        r["tune_s"] = float(tune["stage_seconds"].get(r["stage"], float("nan")))
        r["orchestration"] = r["tune_s"] / r["seconds"] if r["seconds"] else float("nan")
    trial = rows[-1]
    trial["tune_s"] = tune["trial_wall_s"]
    trial["orchestration"] = tune["trial_wall_s"] / trial["wall_s"]
    info["tune_command_s"] = tune["command_s"]


def markdown(rows: list[dict], info: dict, title: str) -> str:
    orch = "orchestration" in rows[-1]
    head = "| stage | seconds | GFLOP | FLOP-limited s | ratio |" + (" through Tune s | orchestration |" if orch else "")
    lines = [f"**{title}**", "", head, "|---|---:|---:|---:|---:|" + ("---:|---:|" if orch else "")]
    for r in rows:
        name = f"**{r['stage']}**" if r["stage"] == "trial" else r["stage"]
        status = f" ({r['status']})" if r["status"] not in ("", "computed") else ""
        line = f"| {name}{status} | {r['seconds']:.1f} | {r['gflop']:.1f} | {r['flop_s']:.1f} | {r['ratio']:.2f}x |"
        if orch:
            line += f" {r['tune_s']:.1f} | {r['orchestration']:.2f}x |"
        lines.append(line)
    trial = rows[-1]
    rates = ", ".join(f"{g:.0f}" for g in info["matmul_gflops"])
    lines += ["", f"Single-thread fp32 matmul: {info['rate_used']:.0f} GFLOP/s (best of the measurements before, "
              f"between and after the passes: {rates}). Trial wall time in-process {trial['wall_s']:.1f} s "
              f"(the stages plus prepare); FLOP-counting pass {info['counting_pass_s']:.0f} s, not timed. "
              f"Both passes gave the same test metrics: {'yes' if info['same_test_metrics'] else 'no'}."]
    if orch:
        lines += ["", f"Through `run_ablation.py`: the trial's wall time under Tune {trial['tune_s']:.1f} s (its trial "
                  f"function, MLflow, reports and checkpoints) against {trial['wall_s']:.1f} s in-process: "
                  f"{trial['orchestration']:.2f}x. The whole command took {info['tune_command_s']:.1f} s (Python and "
                  f"Ray start, the trial's actor, the parent run, table and figures: once per invocation, not per trial)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="default")
    p.add_argument("--ablation", default="apw")
    p.add_argument("--variant", default="apw")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--results", help="results folder of the timed pass (default: a fresh temporary one, "
                   "so nothing is cached)")
    p.add_argument("--json", action="store_true", help="also print the rows as JSON")
    p.add_argument("--orchestration", action="store_true",
                   help="also run the same trial through run_ablation.py and add its columns")
    args = p.parse_args(argv)
    spec = load_ablation(args.ablation)
    cfg = variant_config(spec, args.variant, args.profile, parse_set(args.set), args.seed)
    tune = None
    if args.orchestration:  # first, so that the two timed runs are next to each other (the FLOP count is last)
        print("through run_ablation.py ...", file=sys.stderr)
        tune = through_tune(args.ablation, args.variant, args.profile, args.set, args.seed)
    rows, info = stage_rows(cfg, spec.tasks, Path(args.results) if args.results else None,
                            say=lambda s: print(s, file=sys.stderr))
    if tune:
        add_orchestration(rows, info, tune)
    print(markdown(rows, info, f"{args.ablation}/{args.variant}, profile {args.profile}, seed {args.seed}, one thread"))
    if args.json:
        print(json.dumps({"rows": rows, "info": info}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
