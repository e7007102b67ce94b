"""`python -m harness.data inspect SOURCE`: what a keypoint source holds before and after the
preprocessing of paper appendix B.1 (frame counts, dropped frames, parts present, coordinate
ranges, problems). A DataError prints one line "error: ..." to stderr and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from harness.data.prepare import PreparedCorpus, prepare_corpus
from harness.data.preprocess import DEFAULT_NOISE_THRESHOLD
from harness.data.record import DataError


def _stats(counts: list[int]) -> str:
    if not counts:
        return "-"
    return f"{sum(counts)} (min {min(counts)}, max {max(counts)}, mean {sum(counts) / len(counts):.1f})"


def format_report(prepared: PreparedCorpus) -> str:
    """The human-readable report (one block per split)."""
    lines = [f"source: {prepared.source}",
             f"noise threshold: {prepared.params['noise_threshold']} shoulder lengths, "
             f"min frames: {prepared.params['min_frames']}",
             f"fingerprint: {prepared.fingerprint[:16]}"]
    for problem in prepared.problems:
        lines.append(f"problem: {problem}")
    for split, r in prepared.report.items():
        lines.append(f"[{split}] sequences: {r['sequences']} kept of {r['sequences_raw']}")
        if not r["sequences_raw"]:
            continue
        lines.append(f"  frames raw: {_stats(r['frames_raw'])}")
        lines.append(f"  frames kept: {_stats(r['frames'])}")
        lines.append(f"  dropped frames: {r['dropped_frames']} "
                     f"(noisy {r['dropped_noisy_frames']}, empty {r['dropped_empty_frames']})")
        lines.append(f"  skipped: {r['skipped_short']} short, {r['skipped_unnormalizable']} without shoulders")
        parts = ", ".join(f"{p} {v['frames']:.0%} of frames ({v['points']:.0%} of points)"
                          for p, v in r["parts_present"].items())
        lines.append(f"  parts present: {parts}")
        lines.append(f"  coords: C = {'/'.join(map(str, r['coords']))}")
        lines.append(f"  range raw: {r['range_raw']}")
        lines.append(f"  range normalized: {r['range']}")
        for problem in r["problems"][:10]:
            lines.append(f"  problem: {problem}")
        if len(r["problems"]) > 10:
            lines.append(f"  ... {len(r['problems']) - 10} more problems")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.data", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    inspect = sub.add_parser("inspect", help="report what a keypoint source holds")
    inspect.add_argument("source", help="synth[:PROFILE] | pt:DIR | openpose:DIR | pose:FILE_OR_DIR | npz:FILE")
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.add_argument("--noise-threshold", type=float, default=DEFAULT_NOISE_THRESHOLD,
                         help=f"noisy-frame threshold in shoulder lengths (default {DEFAULT_NOISE_THRESHOLD})")
    inspect.add_argument("--min-frames", type=int, default=1,
                         help="skip sequences shorter than this after preprocessing (default 1)")
    args = parser.parse_args(argv)
    try:
        prepared = prepare_corpus(args.source, noise_threshold=args.noise_threshold,
                                  min_frames=args.min_frames, cache_dir=None)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(prepared.to_json()))
    else:
        print(format_report(prepared))
    return 0
