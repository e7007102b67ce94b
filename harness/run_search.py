"""`python harness/run_search.py NAME`: search `search_spaces/NAME.yaml` with Ray Tune + Optuna (TPE) + ASHA.

The Optuna study persists in RESULTS/search/NAME/optuna.db: running the command again runs
`--trials N` (default: the file's `trials`) more trials on the same study; `--resume` finishes an
interrupted invocation in its MLflow parent run (finished trials are never rerun; interrupted ones
are retried). At the end: the best configuration (or the Pareto front) printed and written to
RESULTS/search/NAME/best.yaml as dotted overrides, parameter importances and Optuna's plots, all
logged to the MLflow experiment "search-NAME". NAME may also be a path to a .yaml file.

On a cluster whose nodes share no file system, `--storage URI` (docs/cluster.md "Storage") holds
Ray's run storage and Train checkpoints (URI/search/NAME/ray), the stage cache, the trials' folders
and the final files (URI/search/NAME/). The Optuna study stays a SQLite file on the driver's node:
this command is its only writer, so run it (and --resume, --trials N) on that node.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # `python harness/run_search.py` from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.cli import Parser, absolute_paths, add_run_flags, command_line, compute_overrides, preflight, run_cli, writing  # noqa: E402
from harness.config import PROFILES, ConfigError, parse_set  # noqa: E402
from harness.search_space import MAX_TRIALS, available, load_search  # noqa: E402


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="run_search.py", description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help=f"search: one of {', '.join(available())}, or a path to a .yaml")
    p.add_argument("--profile", choices=PROFILES, help="debug | default | paper (default: the file's)")
    p.add_argument("--trials", type=int, help="trials to run now (default: the file's `trials`; with --resume: "
                                              "what the interrupted invocation had left)")
    add_run_flags(p, "Ray's run storage, the stage cache, the trials' folders and best.yaml/plots are "
                     "mirrored there (default: everything under --results). The Optuna study stays in "
                     "RESULTS/search/NAME/optuna.db on the driver's node, its only writer")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: the file's, else as many as the CPUs allow)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override of the base config, repeatable (not a searched key)")
    p.add_argument("--resume", action="store_true", help="finish the last, interrupted invocation")
    p.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler (the training seed is --set seed=N)")
    p.add_argument("--dry-run", action="store_true", help="validate the file and print the space")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    overrides = {**parse_set(args.set), **compute_overrides(args)}
    args = absolute_paths(args)
    spec, base = load_search(args.name, args.profile, overrides)
    from harness.datasource import absolute_sources
    base = absolute_sources(base)  # before it leaves for a trial, which runs in Ray's folder
    for flag, value in (("--trials", args.trials), ("--max-concurrent", args.max_concurrent)):
        if value is not None and value < (0 if flag == "--trials" else 1):
            raise ConfigError(f"{flag} must be >= {0 if flag == '--trials' else 1}, got {value}")
    if args.trials is not None and args.trials > MAX_TRIALS:
        raise ConfigError(f"--trials must be <= {MAX_TRIALS}, got {args.trials}")
    from harness import storage
    remote = storage.open_storage(args.storage)  # an unusable URI is one line before anything runs
    if args.dry_run:
        plan = {"name": spec.name, "profile": spec.profile, "metrics": list(spec.metrics), "modes": list(spec.modes),
                "tasks": list(spec.tasks), "trials": args.trials or spec.trials, "scheduler": spec.scheduler.type,
                "space": {k: {"kind": d.kind, "low": d.low, "high": d.high, "step": d.step, "choices": list(d.choices)}
                          for k, d in spec.space.items()}}
        if args.json:
            print(json.dumps(plan))
        else:
            print(f"{spec.name} ({spec.where}), profile {spec.profile}: {spec.question}")
            print(f"  objective: {', '.join(f'{m} ({md})' for m, md in zip(spec.metrics, spec.modes))}; "
                  f"scheduler: {spec.scheduler.type}{' on ' + spec.scheduler.metric if spec.scheduler.type == 'asha' else ''}")
            for k, d in spec.space.items():
                print(f"  {k:28s} {d.kind:10s} {list(d.choices) if d.kind == 'choice' else [d.low, d.high]}")
        return 0

    from harness.tune import search
    from harness.tune.search_results import print_summary
    results, uri = preflight(args)
    say = (lambda s: print(s, file=sys.stderr)) if args.json else print
    summary = writing(results, lambda: search.run(
        spec, base, results=results, tracking_uri=uri, address=args.address, trials=args.trials,
        max_concurrent=args.max_concurrent, resume=args.resume, seed=args.seed, command=command_line(argv), say=say,
        remote=remote))
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        print_summary(spec, summary, uri)
    if summary.get("tracking_error"):
        print(f"warning: MLflow: {summary['tracking_error']}", file=sys.stderr)
    if summary.get("storage_error"):
        print(f"warning: {summary['storage_error']}", file=sys.stderr)
    if summary["unfinished"]:
        print(f"error: {summary['unfinished']} trial(s) of this invocation did not finish; rerun with --resume",
              file=sys.stderr)
        return 1
    if not summary["complete"]:
        print("error: no trial completed; see the trials' logs under "
              f"{Path(summary['folder']) / 'trials'}", file=sys.stderr)
        return 1
    return 1 if summary.get("tracking_error") or summary.get("storage_error") else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
