"""`python harness/run_ablation.py NAME`: one of the paper's ablations as one Ray Tune experiment.

Runs `ablations/NAME.yaml` (variants x seeds), prints the paper's table, writes
RESULTS/NAME/table.md and table.csv (and curve.png for `stride`), the rows side by side on the same
test sentences (translations.md; skeletons.png with text-to-sign), and logs everything to MLflow.

One invocation at a time writes RESULTS/NAME: it holds RESULTS/NAME/.lock (pid, host, start), and
a second one on the same folder is refused. Nothing a finished trial wrote is deleted: a fresh
invocation (no --resume) in a used folder moves the earlier invocation's trial results and table to
RESULTS/NAME/earlier/INVOCATION/ and recomputes every trial (finished stages load from the cache);
--resume continues the earlier invocation instead (same flags; the results folder may have moved).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # `python harness/run_ablation.py` from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.ablation import available, load_ablation  # noqa: E402
from harness.cli import (Parser, absolute_paths, add_run_flags, command_line, compute_overrides, mlflow_hint, preflight, run_cli,  # noqa: E402
                         writing)
from harness.config import MAX_SEEDS, PROFILES, ConfigError, load_profile, parse_set  # noqa: E402


def parser() -> argparse.ArgumentParser:
    # allow_abbrev=False: `--seed 3` (python -m harness.trial's seed index) must not silently mean
    # `--seeds 3` and start a three-seed study.
    p = Parser(prog="run_ablation.py", description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help=f"ablation: one of {', '.join(available())}")
    p.add_argument("--profile", choices=PROFILES, help="debug | default | paper (default: the ablation's)")
    p.add_argument("--seeds", type=int, help="seeds per variant (default: the profile's `seeds`: 1 for debug, 3 otherwise)")
    p.add_argument("--dataset", help="data source: synth, synth@SEED, synth:PROFILE, synth2[@SEED|:PROFILE], "
                                     "pt:DIR, openpose:DIR, pose:PATH, npz:FILE")
    add_run_flags(p, "Ray's run storage, the stage cache and the trial results are mirrored there "
                     "(default: everything under --results)")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: as many as the CPUs allow)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="dotted override, repeatable")
    p.add_argument("--only", action="append", metavar="NAME[,NAME]",
                   help="run only these variants or methods (a method: all its variants, e.g. --only uniglor for "
                        "UniGloR's own rows; repeatable, comma-separated)")
    p.add_argument("--resume", action="store_true", help="continue the last invocation (same flags; refused otherwise): finished trials are not "
                        "rerun. Without it, a used folder's finished results move to RESULTS/NAME/earlier/")
    p.add_argument("--dry-run", action="store_true", help="print the plan (trials, stages to compute) and exit")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def main(argv: list[str] | None = None) -> int:
    from harness import storage
    from harness.tune import ablation
    args = absolute_paths(parser().parse_args(argv))
    spec = load_ablation(args.name)
    profile = args.profile or spec.profile
    overrides = parse_set(args.set)
    if args.dataset:
        overrides["data.source"] = args.dataset
    seeds = args.seeds if args.seeds is not None else load_profile(profile, overrides, "--set").seeds
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if seeds > MAX_SEEDS:  # every trial is planned (and hashed by --dry-run) before anything runs
        raise ConfigError(f"--seeds must be <= {MAX_SEEDS}, got {seeds}")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent must be >= 1, got {args.max_concurrent}")
    trials = ablation.plan_trials(spec, profile, seeds, overrides, compute_overrides(args), args.only)
    remote = storage.open_storage(args.storage)
    if args.dry_run:
        stages = ablation.plan_stages(trials, spec.tasks, Path(args.results), remote)
        from harness.stages import trial_tasks
        variants = {t.variant: {"method": spec.methods[t.variant], "tasks": list(trial_tasks(t.cfg, spec.tasks))}
                    for t in trials}
        methods = list(dict.fromkeys(v["method"] for v in variants.values()))
        if args.json:
            print(json.dumps({"trials": len(trials), "stages": stages, "methods": methods, "variants": variants}))
        else:
            print(f"{spec.name} ({spec.reproduces}), profile {profile}, {seeds} seed(s): {len(trials)} trials; "
                  f"methods {', '.join(methods)}")
            for stage, n in stages.items():
                print(f"  {stage:15s} {n['distinct']:3d} distinct, {n['cached']:3d} cached")
        return 0
    results, uri = preflight(args)
    say = (lambda s: print(s, file=sys.stderr)) if args.json else print
    table = writing(results, lambda: ablation.run(
        spec, trials, results=results, tracking_uri=uri, address=args.address, max_concurrent=args.max_concurrent,
        resume=args.resume, command=command_line(argv), say=say, remote=remote))
    if args.json:
        print(json.dumps({k: v for k, v in table.items() if k != "markdown"}, default=str))
    else:
        if table.get("markdown"):
            print()
            print(table["markdown"])
            print(f"Written: {', '.join(table['files'])}")
        print(mlflow_hint(uri, table.get("experiment_id", "")))
    if table.get("tracking_error"):
        print(f"warning: {table['tracking_error']}; the table files are written; rerun with --resume once "
              f"the server answers to log it", file=sys.stderr)
    if table.get("storage_error"):
        print(f"warning: {table['storage_error']}", file=sys.stderr)
    failed = table.get("failed", {})
    for key, why in failed.items():  # not retried: a rerun with the same settings diverges again
        print(f"error: trial {key} stopped, not retried: {why}", file=sys.stderr)
    others = [k for k in table["missing"] if k not in failed]
    if others:
        print(f"error: {len(others)} trial(s) did not finish: {', '.join(others)}; "
              f"rerun with --resume", file=sys.stderr)
    if table["missing"]:
        return 2 if not others else 1  # only diverged trials: the settings are the user's to fix
    return 1 if table.get("tracking_error") or table.get("storage_error") else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
