"""`python -m harness.inspect_data SOURCE`: what a keypoint source holds before and after the
preprocessing of paper appendix B.1 (frame rates, coordinates, gaps, frame counts, dropped frames,
parts present, coordinate ranges, problems), through the prepare stage's own code: the same source resolution and loading
(harness.stages.prepare) and the same per-split preprocessing (harness.data.prepare).

Unlike a trial it does not stop at an empty split, so it can show why a trial did. A user error
prints one line "error: ..." to stderr and exits 2. `--set data.KEY=VALUE` reads the source as a
trial with that override would (data.fps, data.gaps, data.dims, data.min_confidence, ...);
`--set pretrain.extra_source=SOURCE` also reads a second corpus for pretraining (table 4d) and says
how the two are mixed (one C, one layout: harness.datasource.Mixing), as a trial would mix them.
`--json` is strict JSON (no NaN or Infinity tokens).
"""

from __future__ import annotations

import argparse
import json
import sys

from harness.cli import Parser, run_cli
from harness.config import ConfigError, ExperimentConfig, load_profile, parse_set
from harness.data.prepare import prepare_splits
from harness.data.record import SPLITS, DataError
from harness.datasource import load_raw, mixing, rate_text, timeline_options

# The config inspect reads a source with: `synth`, `synth2` and their @SEED take its data.synth settings, and
# its data.noise_threshold is the default threshold (this profile is the field defaults).
PROFILE = "default"


def _stats(counts: list[int]) -> str:
    if not counts:
        return "-"
    return f"{sum(counts)} (min {min(counts)}, max {max(counts)}, mean {sum(counts) / len(counts):.1f})"


def format_report(doc: dict) -> str:
    """The human-readable report of inspect(): a header, then one block per split."""
    p = doc["params"]
    lines = [f"source: {doc['source']}",
             f"noise threshold: {p['noise_threshold']} shoulder lengths, min frames: {p['min_frames']}",
             f"frame rate: resampled to {p['fps']:g} fps (data.fps); gaps: {p['gaps']} (max {p['max_gap']} frames); "
             f"dims: {p['dims']}; min confidence: {p['min_confidence']:g}"]
    for note in doc.get("notes", []):
        lines.append(f"note: {note}")
    for problem in doc["problems"]:
        lines.append(f"problem: {problem}")
    for split, r in doc["splits"].items():
        lines.append(f"[{split}] sequences: {r['sequences']} kept of {r['sequences_raw']}")
        if not r["sequences_raw"]:
            continue
        rates = ", ".join(f"{x:g}" for x in r["fps_recorded"]) or "-"
        unknown = f" ({r['fps_not_recorded']} not recorded, taken as {p['fps']:g})" if r["fps_not_recorded"] else ""
        lines.append(f"  fps recorded: {rates}{unknown}; dims as read: C = {'/'.join(map(str, r['coords_kept']))}")
        g = r["gaps"]
        lines.append(f"  gaps: {g['missing_frames']} missing frames in {g['sequences']} sequence(s)"
                     f" ({g['filled_frames']} interpolated)")
        for item in g["per_sequence"][:5]:
            runs = ", ".join(f"{a}+{n}" for a, n in item["runs"])
            lines.append(f"    {item['name']}: {item['missing_frames']} missing, {item['filled_frames']} filled"
                         f" (start+length: {runs or '-'})")
        if r["outside_frame"]["points"]:
            lines.append(f"  outside the image by more than 10%: {r['outside_frame']['points']} present point(s) "
                         f"in {r['outside_frame']['sequences']} sequence(s) (kept; check the extractor)")
        if r["unlabelled"]:
            lines.append(f"  unlabelled: {r['unlabelled']} sequence(s) kept for pretraining only")
        if r["frames_recorded"] != r["frames_raw"]:
            lines.append(f"  frames recorded: {_stats(r['frames_recorded'])} (before resampling)")
        lines.append(f"  frames raw: {_stats(r['frames_raw'])}")
        lines.append(f"  frames kept: {_stats(r['frames'])}")
        lines.append(f"  dropped frames: {r['dropped_frames']} "
                     f"(noisy {r['dropped_noisy_frames']}, empty {r['dropped_empty_frames']})")
        lines.append(f"  skipped: {r['skipped_short']} short, {r['skipped_unnormalizable']} without shoulders")
        for item in r["skipped"][:10]:
            lines.append(f"    skipped {item['name']}: {item['reason']}")
        parts = ", ".join(f"{p} {v['frames']:.0%} of frames ({v['points']:.0%} of points)"
                          for p, v in r["parts_present"].items())
        lines.append(f"  parts present: {parts}")
        lines.append(f"  coords: C = {'/'.join(map(str, r['coords']))} after data.dims")
        lines.append(f"  range raw: {r['range_raw']}")
        lines.append(f"  range normalized: {r['range']}")
        for problem in r["problems"][:10]:
            lines.append(f"  problem: {problem}")
        if len(r["problems"]) > 10:
            lines.append(f"  ... {len(r['problems']) - 10} more problems")
    x = doc.get("extra_source")
    if x:
        lines.append(f"[pretrain.extra_source {x['source']}] train sequences: {x['sequences']} kept of "
                     f"{x['sequences_raw']} (pretraining only)")
        lines.append(f"  fps: {x['fps']}; coords: C = {'/'.join(map(str, x['coords']))}")
        parts = ", ".join(f"{p} {v['frames']:.0%} of frames" for p, v in x["parts_present"].items())
        lines.append(f"  parts present: {parts}")
        for note in x["mixing"]:
            lines.append(f"  mixing: {note}")
        for problem in x["problems"][:10]:
            lines.append(f"  problem: {problem}")
    return "\n".join(lines)


def inspect(spec: str, cfg: ExperimentConfig, *, noise_threshold: float, min_frames: int) -> dict:
    """Load and preprocess a source as a trial of cfg would; the report as one JSON-ready dict:
    source, params (noise threshold, min_frames), problems (reader and corpus-wide) and splits
    (split -> split report)."""
    if min_frames < 1:
        raise DataError(f"min_frames is {min_frames}; expected at least 1")
    if not noise_threshold > 0:
        raise DataError(f"noise_threshold is {noise_threshold}; expected a positive number of shoulder lengths")
    problems: list[str] = []
    raw = load_raw(spec, cfg, problems)
    coords_kept = {split: sorted({int(s.keypoints.shape[-1]) for s in seqs}) for split, seqs in raw.items()}
    corpus, report = prepare_splits(raw, noise_threshold=noise_threshold, min_frames=min_frames,
                                    timeline=timeline_options(cfg))
    for split in SPLITS:
        report[split]["coords_kept"] = coords_kept.get(split, [])
    splits = {split: report[split] for split in SPLITS}
    total_raw = sum(r["sequences_raw"] for r in splits.values())
    if total_raw and not any(corpus.values()):
        raise DataError(
            f"source {spec!r}: all {total_raw} sequences were skipped ("
            + ", ".join(f"{s}: {r['skipped_short']} short, {r['skipped_unnormalizable']} without shoulders"
                        for s, r in splits.items())
            + f"); expected at least one with both shoulders and >= {min_frames} frames"
        )
    extra = None
    if cfg.pretrain.extra_source:
        spec_x = cfg.pretrain.extra_source
        extra_problems: list[str] = []
        extra_corpus, extra_report = prepare_splits(load_raw(spec_x, cfg, extra_problems), noise_threshold=noise_threshold,
                                                    min_frames=min_frames, timeline=timeline_options(cfg))
        mixed = mixing(corpus, extra_corpus, spec, spec_x, cfg.pretrain.parts)
        train = extra_report["train"]
        extra = {"source": spec_x, "sequences": train["sequences"], "sequences_raw": train["sequences_raw"],
                 "fps": rate_text({"train": extra_corpus["train"]}, cfg.data.fps), "coords": train["coords"],
                 "parts_present": train["parts_present"], "mixing": list(mixed.notes),
                 "problems": extra_problems + extra_report["problems"] + train["problems"]}
    d = cfg.data
    params = {"noise_threshold": float(noise_threshold), "min_frames": int(min_frames), "fps": float(d.fps),
              "gaps": d.gaps, "max_gap": d.max_gap, "dims": d.dims, "min_confidence": float(d.min_confidence),
              "unlabelled": d.unlabelled}
    doc = {"source": spec, "params": params, "notes": report["notes"],
           "problems": problems + report["problems"], "splits": splits}
    if extra is not None:
        doc["extra_source"] = extra
    return doc


def main(argv: list[str] | None = None) -> int:
    cfg = load_profile(PROFILE)
    parser = Parser(prog="python -m harness.inspect_data", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="synth | synth@SEED | synth:PROFILE | synth2[@SEED|:PROFILE] | pt:DIR | "
                                       "openpose:DIR | pose:FILE_OR_DIR | npz:FILE")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--noise-threshold", type=float, default=None,
                        help=f"noisy-frame threshold in shoulder lengths (default {cfg.data.noise_threshold})")
    parser.add_argument("--min-frames", type=int, default=1,
                        help="skip sequences shorter than this after preprocessing (default 1)")
    parser.add_argument("--set", action="append", default=[], metavar="data.KEY=VALUE",
                        help="dotted override of a data setting, repeatable (data.fps=30, data.gaps=interpolate, ...; "
                             "pretrain.extra_source=SOURCE: a second corpus, mixed as a trial would)")
    args = parser.parse_args(argv)
    overrides = parse_set(args.set)
    other = sorted(k for k in overrides if not k.startswith("data.") and k != "pretrain.extra_source")
    if other:
        raise ConfigError(f"--set {other[0]}: inspect reads only data.* settings and pretrain.extra_source; "
                          "expected data.KEY=VALUE")
    cfg = load_profile(PROFILE, overrides, "--set")
    if args.noise_threshold is None:
        args.noise_threshold = cfg.data.noise_threshold
    doc = inspect(args.source, cfg, noise_threshold=args.noise_threshold, min_frames=args.min_frames)
    # allow_nan=False: the report must parse with a strict JSON reader (a NaN here is a bug, not output)
    print(json.dumps(doc, allow_nan=False) if args.json else format_report(doc))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
