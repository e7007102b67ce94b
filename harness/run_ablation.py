"""`python harness/run_ablation.py NAME`: one of the paper's ablations as one Ray Tune experiment.

Runs `ablations/NAME.yaml` (variants x seeds), prints the paper's table, writes
RESULTS/NAME/table.md and table.csv (and curve.png for `stride`), and logs everything to MLflow.
"""

from __future__ import annotations

import argparse
import errno
import json
import shlex
import sys
from pathlib import Path

if __package__ in (None, ""):  # `python harness/run_ablation.py` from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.ablation import available, load_ablation  # noqa: E402
from harness.cli import run_cli  # noqa: E402
from harness.config import PROFILES, ConfigError, parse_set  # noqa: E402


def parser() -> argparse.ArgumentParser:
    # allow_abbrev=False: `--seed 3` (python -m harness.trial's seed index) must not silently mean
    # `--seeds 3` and start a three-seed study.
    p = argparse.ArgumentParser(prog="run_ablation.py", description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help=f"ablation: one of {', '.join(available())}")
    p.add_argument("--profile", choices=PROFILES, help="debug | default | paper (default: the ablation's)")
    p.add_argument("--seeds", type=int, help="seeds per variant (default: 1 for debug, 3 otherwise)")
    p.add_argument("--dataset", help="data source: synth, synth:PROFILE, pt:DIR, openpose:DIR, pose:PATH, npz:FILE")
    p.add_argument("--results", default="results", help="results folder (default ./results); with --storage, "
                   "this node's working copy (the same path on every node)")
    p.add_argument("--storage", metavar="URI", help="shared storage for a cluster whose nodes share no file system "
                   "(s3://BUCKET/PREFIX, or any pyarrow.fs URI): Ray's run storage, the stage cache and the "
                   "trial results are mirrored there (default: everything under --results)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///RESULTS/mlflow.db)")
    p.add_argument("--address", help="Ray cluster address (default: a local Ray)")
    p.add_argument("--workers-per-trial", type=int)
    p.add_argument("--gpus-per-worker", type=float)
    p.add_argument("--cpus-per-worker", type=float)
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: as many as the CPUs allow)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="dotted override, repeatable")
    p.add_argument("--only", action="append", metavar="VARIANT", help="run only this variant (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue the last invocation: finished trials are not rerun")
    p.add_argument("--dry-run", action="store_true", help="print the plan (trials, stages to compute) and exit")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def main(argv: list[str] | None = None) -> int:
    from harness import study
    args = parser().parse_args(argv)
    spec = load_ablation(args.name)
    profile = args.profile or spec.profile
    seeds = args.seeds if args.seeds is not None else study.DEFAULT_SEEDS[profile]
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent must be >= 1, got {args.max_concurrent}")
    overrides = parse_set(args.set)
    if args.dataset:
        overrides["data.source"] = args.dataset
    compute = {f"compute.{k}": v for k, v in (("workers_per_trial", args.workers_per_trial),
                                              ("gpus_per_worker", args.gpus_per_worker),
                                              ("cpus_per_worker", args.cpus_per_worker)) if v is not None}
    trials = study.plan_trials(spec, profile, seeds, overrides, compute, args.only)
    results = Path(args.results).resolve()
    from harness.storage import open_storage
    remote = open_storage(args.storage)
    if args.dry_run:
        stages = study.plan_stages(trials, spec.tasks, results, remote)
        if args.json:
            print(json.dumps({"trials": len(trials), "stages": stages}))
        else:
            print(f"{spec.name} ({spec.reproduces}), profile {profile}, {seeds} seed(s): {len(trials)} trials")
            for stage, n in stages.items():
                print(f"  {stage:15s} {n['distinct']:3d} distinct, {n['cached']:3d} cached")
        return 0
    from harness import tracking
    study.check_results_folder(results)
    uri = args.tracking_uri or tracking.default_tracking_uri(results)
    tracking.check_reachable(uri)
    study.check_ray_address(args.address)
    command = " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:]))
    try:
        table = study.run(spec, trials, results=results, tracking_uri=uri, address=args.address,
                          max_concurrent=args.max_concurrent, resume=args.resume, command=command,
                          say=(lambda s: print(s, file=sys.stderr)) if args.json else print, remote=remote)
    except OSError as exc:  # disk full, folder made read-only mid-run: finished stages stay cached
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        raise ConfigError(f"cannot write {exc.filename or results}: {exc.strerror}; free space or fix "
                          f"permissions, then rerun with --resume") from None
    if args.json:
        print(json.dumps({k: v for k, v in table.items() if k != "markdown"}, default=str))
    else:
        if table.get("markdown"):
            print()
            print(table["markdown"])
            print(f"Written: {', '.join(table['files'])}")
        print(f"Compare in MLflow:  mlflow ui --backend-store-uri {uri}")
    if table.get("tracking_error"):
        print(f"warning: {table['tracking_error']}; the table files are written; rerun with --resume once "
              f"the server answers to log it", file=sys.stderr)
    if table.get("storage_error"):
        print(f"warning: {table['storage_error']}", file=sys.stderr)
    if table["missing"]:
        print(f"error: {len(table['missing'])} trial(s) did not finish: {', '.join(table['missing'])}; "
              f"rerun with --resume", file=sys.stderr)
        return 1
    return 1 if table.get("tracking_error") or table.get("storage_error") else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
