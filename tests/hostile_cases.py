"""The hostile-input cases: one table that tests/test_hostile_inputs.py asserts and
scripts/bad_inputs_doc.py turns into docs/bad_inputs.md.

Each case is a command line of run_ablation.py, run_search.py or `python -m harness.inspect_data`
(`W` is a scratch folder), the files it needs under W, and a text the one error line must contain
(the file, key or value, and what is expected). Every case runs the CLI's `main` in this process
and fails before Ray starts (`run_case` makes reaching Ray an error), so the whole table runs in
seconds. Tables are generated where the schema is: every float key of the config gets NaN and
both infinities, every data reader gets garbage, an empty file and a truncated valid file.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from harness.config import flatten, load_profile

W = "W"  # the scratch folder, in args, files and expected texts


@dataclass(frozen=True)
class Case:
    id: str
    group: str  # its section of docs/bad_inputs.md
    cli: str  # ablation | search | inspect
    args: tuple[str, ...]
    expect: str  # the error line contains this (after "error: "), W for the scratch folder
    files: Callable[[Path], None] | None = None  # writes what the case needs under W
    what: str = ""  # the input, for the docs (default: the command line)
    tags: tuple[str, ...] = field(default_factory=tuple)


def _write(rel: str, data: str | bytes) -> Callable[[Path], None]:
    def make(w: Path) -> None:
        path = w / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
    return make


def _both(*makers: Callable[[Path], None]) -> Callable[[Path], None]:
    def make(w: Path) -> None:
        for m in makers:
            m(w)
    return make


# ------------------------------------------------------------------------------------------------
# Command-line flags
# ------------------------------------------------------------------------------------------------

DRY = ("--profile", "debug", "--results", f"{W}/results", "--dry-run")
RUN = ("--profile", "debug", "--results", f"{W}/results")  # past the dry run: preflight's checks

_FLAGS = [
    # (id, args, expect)
    ("no-name", (), "the following arguments are required: name"),
    ("unknown-ablation", ("nosuch",), "unknown ablation 'nosuch'; available: apw,"),
    ("ablation-abs-path", ("/tmp/x",), "ablation '/tmp/x': use letters, digits, _, - and . (not first)"),
    ("ablation-dotdot", ("../x",), "ablation '../x': use letters, digits"),
    ("ablation-space", ("my apw",), "ablation 'my apw': use letters, digits"),
    ("ablation-empty", ("",), "ablation '': use letters, digits"),
    ("ablation-dotfile", (".hidden",), "ablation '.hidden': use letters, digits"),
    ("profile-unknown", ("apw", "--profile", "fast"), "argument --profile: invalid choice: 'fast'"),
    ("seeds-word", ("apw", "--seeds", "two"), "argument --seeds: invalid int value: 'two'"),
    ("seeds-float", ("apw", "--seeds", "1.5"), "argument --seeds: invalid int value: '1.5'"),
    ("seeds-zero", ("apw", "--seeds", "0"), "--seeds must be >= 1, got 0"),
    ("seeds-negative", ("apw", "--seeds", "-3"), "--seeds must be >= 1, got -3"),
    ("seeds-huge", ("apw", "--seeds", "1000000"), "--seeds must be <= 1000, got 1000000"),
    ("seed-abbrev", ("apw", "--seed", "3"), "unrecognized arguments: --seed 3"),
    ("unknown-flag", ("apw", "--fast"), "unrecognized arguments: --fast"),
    ("only-unknown", ("apw", "--only", "xyz"), "--only xyz: not a variant of apw (one of joint_slt-none, "
                                              "joint_slt-fpw,"),
    ("max-concurrent-zero", ("apw", "--max-concurrent", "0"), "--max-concurrent must be >= 1, got 0"),
    ("max-concurrent-negative", ("apw", "--max-concurrent", "-2"), "--max-concurrent must be >= 1, got -2"),
    ("max-concurrent-word", ("apw", "--max-concurrent", "all"), "argument --max-concurrent: invalid int value: 'all'"),
    ("workers-zero", ("apw", "--workers-per-trial", "0"), "compute.workers_per_trial must be >= 1, got 0 (--set)"),
    ("workers-word", ("apw", "--workers-per-trial", "two"), "argument --workers-per-trial: invalid int value: 'two'"),
    ("cpus-zero", ("apw", "--cpus-per-worker", "0"), "compute.cpus_per_worker must be > 0, got 0.0 (--set)"),
    ("cpus-negative", ("apw", "--cpus-per-worker", "-1"), "compute.cpus_per_worker must be > 0, got -1.0 (--set)"),
    ("cpus-nan", ("apw", "--cpus-per-worker", "nan"), "compute.cpus_per_worker must be a finite number, got nan (--set)"),
    ("cpus-inf", ("apw", "--cpus-per-worker", "inf"), "compute.cpus_per_worker must be a finite number, got inf (--set)"),
    ("gpus-negative", ("apw", "--gpus-per-worker", "-1"), "compute.gpus_per_worker must be >= 0, got -1.0 (--set)"),
    ("gpus-nan", ("apw", "--gpus-per-worker", "nan"), "compute.gpus_per_worker must be a finite number, got nan (--set)"),
    ("gpus-word", ("apw", "--gpus-per-worker", "one"), "argument --gpus-per-worker: invalid float value: 'one'"),
    ("dataset-kind", ("apw", "--dataset", "kinect:/x"), "source 'kinect:/x': unknown kind 'kinect'; expected one of synth"),
    ("dataset-no-path", ("apw", "--dataset", "pt"), "source 'pt': pt needs a path, e.g. pt:/path/to/data"),
    ("dataset-synth-seed", ("apw", "--dataset", "synth@x"), "synth@x"),
    ("dataset-synth-profile", ("apw", "--dataset", "synth:nope"), "synth:nope"),
    ("set-no-equals", ("apw", "--set", "pretrain.mask_ratio"), "--set expects key=value, got 'pretrain.mask_ratio'"),
    ("set-empty-key", ("apw", "--set", "=3"), "--set expects key=value with a dotted key like pretrain.mask_ratio, got '=3'"),
    ("set-empty-part", ("apw", "--set", "pretrain..window=3"), "--set expects key=value with a dotted key"),
]

_RUN_FLAGS = [
    ("results-through-file", ("apw", "--results", f"{W}/junk.txt/results", "--profile", "debug"),
     f"cannot write to the results folder {W}/junk.txt/results: Not a directory", _write("junk.txt", "x")),
    ("address-not-host-port", ("apw", *RUN, "--address", "my-cluster"),
     "--address must be HOST:PORT, ray://HOST:PORT or auto, got 'my-cluster'", None),
    ("address-closed-port", ("apw", *RUN, "--address", "127.0.0.1:CLOSED"),
     "cannot reach the Ray cluster at --address 127.0.0.1:CLOSED", None),
    ("tracking-closed-port", ("apw", *RUN, "--tracking-uri", "http://127.0.0.1:CLOSED"),
     "cannot reach the MLflow tracking server at http://127.0.0.1:CLOSED", None),
    ("tracking-file-store", ("apw", *RUN, "--tracking-uri", f"{W}/mlruns"),
     f"cannot use the MLflow tracking store at {W}/mlruns: file stores are disabled", None),
    ("tracking-sqlite-text-file", ("apw", *RUN, "--tracking-uri", f"sqlite:///{W}/notes.txt"),
     f"cannot use the MLflow tracking store at sqlite:///{W}/notes.txt: {W}/notes.txt is not an SQLite database", _write("notes.txt", "my notes, not a database\n" * 20)),
    ("tracking-sqlite-folder", ("apw", *RUN, "--tracking-uri", f"sqlite:///{W}/adir"),
     f"cannot use the MLflow tracking store at sqlite:///{W}/adir: {W}/adir is a folder", _write("adir/keep", "")),
    ("tracking-unknown-scheme", ("apw", *RUN, "--tracking-uri", "ftp://127.0.0.1/x"), "cannot use the MLflow tracking store at ftp://127.0.0.1/x: unsupported scheme 'ftp'", None),
]

_SEARCH_FLAGS = [
    ("search-unknown", ("nosuch", "--dry-run"), "unknown search 'nosuch'; available:"),
    ("search-no-file", (f"{W}/nope.yaml", "--dry-run"), f"search space file {W}/nope.yaml does not exist"),
    ("search-trials-negative", ("sign2text", "--trials", "-1", "--dry-run"), "--trials must be >= 0, got -1"),
    ("search-trials-word", ("sign2text", "--trials", "many"), "argument --trials: invalid int value: 'many'"),
    ("search-trials-huge", ("sign2text", "--trials", "20000", "--dry-run"), "--trials must be <= 10000, got 20000"),
    ("search-max-concurrent-zero", ("sign2text", "--max-concurrent", "0", "--dry-run"),
     "--max-concurrent must be >= 1, got 0"),
    ("search-profile", ("sign2text", "--profile", "fast"), "argument --profile: invalid choice: 'fast'"),
    ("search-seed-word", ("sign2text", "--seed", "x"), "argument --seed: invalid int value: 'x'"),
    ("search-set-searched", ("sign2text", "--set", "pretrain.mask_ratio=0.5", "--dry-run"),
     "--set pretrain.mask_ratio: the key is searched by"),
]

# ------------------------------------------------------------------------------------------------
# --set KEY=VALUE
# ------------------------------------------------------------------------------------------------

_FPW = "pretrain.fpw_weights must be 'dataset', 'paper' or three positive numbers [body, face, hands], got"
_SETS = [
    ("pretrain.fpw_weights=banana", f"{_FPW} 'banana' (--set)"),
    ("pretrain.fpw_weights=[1, -1.17, 1.18]", f"{_FPW} [1, -1.17, 1.18] (--set)"),
    ("pretrain.fpw_weights=[1, 1.17, 1.18, 1]", f"{_FPW} [1, 1.17, 1.18, 1] (--set)"),
    ("recognition.dim=33", "recognition.dim must be divisible by recognition.heads (0: pretrain's), got 33 and 2 (--set)"),
    ("recognition.model=lstm", "recognition.model must be one of 'signmae' | 'gru' | 'transformer', got 'lstm' (--set)"),
    ("pretrain.weight_floor=0", "pretrain.weight_floor must be in (0, 1], got 0.0 (--set)"),
    ("optim.warmup_cap=1.5", "optim.warmup_cap must be in (0, 1], got 1.5 (--set)"),
    ("text2sign.stride=16", "text2sign.stride must be <= pretrain.window (15), got 16 (--set)"),
    ("pretrain.nope=1", "unknown key pretrain.nope; valid keys here: window,"),
    ("nope=1", "unknown key nope"),
    ("optim.lrr=1e-3", "unknown key optim.lrr"),
    ("data.synth.nope=3", "unknown key data.synth.nope"),
    ("pretrain=1", "pretrain must be a mapping of PretrainConfig fields, got 1 (--set)"),
    ("pretrain.window.x=1", "pretrain.window"),
    ("pretrain.window=abc", "pretrain.window must be an integer, got 'abc' (--set)"),
    ("pretrain.window=true", "pretrain.window must be an integer, got True (--set)"),
    ("pretrain.window=1.5", "pretrain.window must be an integer, got 1.5 (--set)"),
    ("pretrain.window=[1, 2]", "pretrain.window must be an integer, got [1, 2] (--set)"),
    ("pretrain.window={a: 1}", "pretrain.window must be an integer"),
    ("pretrain.window=0", "pretrain.window"),
    ("pretrain.window=-5", "pretrain.window"),
    ("pretrain.mask_ratio=abc", "pretrain.mask_ratio must be a number, got 'abc' (--set)"),
    ("pretrain.mask_ratio=1.5", "pretrain.mask_ratio must be in [0, 1), got 1.5 (--set)"),
    ("pretrain.mask_ratio=-0.1", "pretrain.mask_ratio must be in [0, 1), got -0.1 (--set)"),
    ("pretrain.weighting=adaptive", "pretrain.weighting must be one of 'none' | 'fpw' | 'apw', got 'adaptive' (--set)"),
    ("pretrain.weighting=3", "pretrain.weighting must be one of 'none' | 'fpw' | 'apw', got 3 (--set)"),
    ("optim.lr=-1e-3", "optim.lr must be > 0, got -0.001 (--set)"),
    ("optim.lr=0", "optim.lr must be > 0"),
    ("optim.lr=fast", "optim.lr must be a number, got 'fast' (--set)"),
    ("embed.stride=20", "embed.stride must be <= pretrain.window (15), got 20 (--set)"),
    ("pretrain.dim=33", "pretrain.dim must be divisible by pretrain.heads (2), got 33 (--set)"),
    ("seeds=5000", "seeds must be in [1, 1000], got 5000 (--set)"),
    ("seeds=0", "seeds must be in [1, 1000], got 0 (--set)"),
    ("seed=abc", "seed must be an integer, got 'abc' (--set)"),
    ("data.source=kinect:/x", "unknown kind 'kinect'"),
    ("compute.workers_per_trial=0", "compute.workers_per_trial must be >= 1, got 0 (--set)"),
    ("pretrain.window=&a 3", "pretrain.window must be an integer, got '&a 3' (--set)"),
    ("pretrain.window=[", "pretrain.window must be an integer, got '[' (--set)"),
]


def _float_keys() -> list[str]:
    """Every float setting of the config (the debug profile's values): each must be finite."""
    return sorted(k for k, v in flatten(load_profile("debug")).items() if isinstance(v, float))


_NON_FINITE = ((".nan", "nan"), (".inf", "inf"), ("-.inf", "-inf"))

# ------------------------------------------------------------------------------------------------
# Ablation files (W/ablations/NAME.yaml, run as `run_ablation.py NAME --dry-run`)
# ------------------------------------------------------------------------------------------------

HEAD = "question: q\nreproduces: r\nprofile: debug\ntasks: [sign2text]\nbaseline: a\n"
VARIANTS = "variants:\n  a: {}\n  b: {pretrain.window: 8}\n"
BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))

_ABLATIONS = [
    # (id, file text or bytes, expect (W/ablations/ID.yaml is FILE in it))
    ("abl-list", "- a\n- b\n", "ablations/{id}.yaml must be a mapping with keys question, reproduces"),
    ("abl-scalar", "just text\n", "ablations/{id}.yaml must be a mapping"),
    ("abl-empty", "", "ablations/{id}.yaml must be a mapping"),
    ("abl-topkey", HEAD + VARIANTS + "varients: {}\n", "unknown key varients (ablations/{id}.yaml); valid keys:"),
    ("abl-missing-question", "reproduces: r\nprofile: debug\ntasks: [sign2text]\nbaseline: a\n" + VARIANTS,
     "missing key question (ablations/{id}.yaml)"),
    ("abl-missing-variants", HEAD, "missing key variants (ablations/{id}.yaml)"),
    ("abl-tasks-string", HEAD.replace("[sign2text]", "sign2text") + VARIANTS,
     "tasks must be a non-empty list of sign2text, text2sign, recognition, got 'sign2text' (ablations/{id}.yaml)"),
    ("abl-tasks-empty", HEAD.replace("[sign2text]", "[]") + VARIANTS, "tasks must be a non-empty list"),
    ("abl-tasks-unknown", HEAD.replace("[sign2text]", "[translation]") + VARIANTS,
     "tasks must be a non-empty list of sign2text, text2sign, recognition, got ['translation']"),
    ("abl-variants-list", HEAD + "variants: [a, b]\n", "variants must be a mapping of name -> overrides (ablations/{id}.yaml)"),
    ("abl-variants-empty", HEAD + "variants: {}\n", "variants must be a mapping of name -> overrides"),
    ("abl-variant-list", HEAD + "variants:\n  a: [1, 2]\n", "variants.a must be a mapping of dotted overrides"),
    ("abl-variant-unknown-key", HEAD + "variants:\n  a: {pretrain.widnow: 15}\n",
     "unknown key pretrain.widnow; valid keys here: window,"),
    ("abl-variant-wrong-type", HEAD + "variants:\n  a: {pretrain.window: fifteen}\n",
     "pretrain.window must be an integer, got 'fifteen' (ablations/{id}.yaml, variant a)"),
    ("abl-variant-literal", HEAD + "variants:\n  a: {pretrain.weighting: adaptive}\n",
     "pretrain.weighting must be one of 'none' | 'fpw' | 'apw', got 'adaptive' (ablations/{id}.yaml, variant a)"),
    ("abl-variant-range", HEAD + "variants:\n  a: {pretrain.mask_ratio: 1.0}\n",
     "pretrain.mask_ratio must be in [0, 1), got 1.0 (ablations/{id}.yaml, variant a)"),
    ("abl-variant-nan", HEAD + "variants:\n  a: {optim.lr: .nan}\n",
     "optim.lr must be a finite number, got nan (ablations/{id}.yaml, variant a)"),
    ("abl-variant-stride", HEAD + "variants:\n  a: {embed.stride: 20}\n",
     "embed.stride must be <= pretrain.window (15), got 20 (ablations/{id}.yaml, variant a)"),
    ("abl-variant-heads", HEAD + "variants:\n  a: {pretrain.dim: 33}\n",
     "pretrain.dim must be divisible by pretrain.heads (2), got 33 (ablations/{id}.yaml, variant a)"),
    ("abl-variant-name-dotdot", HEAD.replace("baseline: a", "baseline: ../x") + "variants:\n  ../x: {}\n",
     "variant '../x': use letters, digits, _, - and . (not first), at most 64 characters (ablations/{id}.yaml)"),
    ("abl-variant-name-quote", HEAD.replace("baseline: a", "baseline: \"it's\"") + "variants:\n  \"it's\": {}\n",
     "variant \"it's\": use letters, digits"),
    ("abl-baseline-missing", HEAD.replace("baseline: a", "baseline: z") + VARIANTS,
     "baseline 'z' is not one of the variants (ablations/{id}.yaml)"),
    ("abl-baseline-list", HEAD.replace("baseline: a", "baseline: [a]") + VARIANTS,
     "baseline ['a'] is not one of the variants (ablations/{id}.yaml)"),
    ("abl-profile-unknown", HEAD.replace("profile: debug", "profile: fast") + VARIANTS, "unknown profile 'fast'"),
    ("abl-profile-list", HEAD.replace("profile: debug", "profile: [debug]") + VARIANTS,
     "profile must be a string, got ['debug'] (ablations/{id}.yaml)"),
    ("abl-overrides-list", HEAD + VARIANTS + "overrides: [1, 2]\n",
     "overrides must be a mapping of dotted overrides, got [1, 2] (ablations/{id}.yaml)"),
    ("abl-overrides-unknown", HEAD + VARIANTS + "overrides: {optim.lrr: 1}\n", "unknown key optim.lrr"),
    ("abl-curve-list", HEAD + VARIANTS + "curve: [1, 2]\n", "curve must be a mapping {x: {VARIANT: number}, xlabel: text}"),
    ("abl-curve-x-unknown", HEAD + VARIANTS + "curve: {x: {a: 1, zz: 2}}\n",
     "curve.x.zz: not one of the variants (ablations/{id}.yaml)"),
    ("abl-curve-x-word", HEAD + VARIANTS + "curve: {x: {a: one, b: 2}}\n",
     "curve.x.a must be a finite number, got 'one' (ablations/{id}.yaml)"),
    ("abl-curve-x-nan", HEAD + VARIANTS + "curve: {x: {a: .nan, b: 2}}\n", "curve.x.a must be a finite number, got nan"),
    ("abl-syntax", HEAD + "variants: {a: {}\n", "ablations/{id}.yaml line 7: not valid YAML"),
    ("abl-tab", HEAD + "variants:\n\ta: {}\n", "ablations/{id}.yaml line 7: not valid YAML"),
    ("abl-duplicate-variant", HEAD + "variants:\n  a: {}\n  a: {pretrain.window: 8}\n",
     "ablations/{id}.yaml line 8: duplicate key 'a'; each key once per mapping"),
    ("abl-anchor", HEAD + "variants:\n  a: &v {pretrain.window: 8}\n  b: *v\n",
     "ablations/{id}.yaml line 7: YAML anchors and aliases are not accepted (&v); write the values out"),
    ("abl-bomb", BOMB, "ablations/{id}.yaml line 1: YAML anchors and aliases are not accepted (&a0)"),
    ("abl-deep", HEAD + "variants:\n  a: {pretrain.window: " + "[" * 40 + "]" * 40 + "}\n",
     "ablations/{id}.yaml line 7: nested deeper than 32 levels"),
    ("abl-python-tag", HEAD + "variants:\n  a: !!python/object/apply:os.system ['true']\n",
     "ablations/{id}.yaml line 7: not valid YAML (could not determine a constructor"),
    ("abl-binary", b"\xff\xfe\x00garbage\x80\x81", "ablations/{id}.yaml: not UTF-8 text; expected a YAML file"),
    ("abl-huge", "question: " + "x" * (1 << 20) + "\n", "ablations/{id}.yaml: over 1024 KiB"),
]

# ------------------------------------------------------------------------------------------------
# Search files (W/NAME.yaml, run as `run_search.py W/NAME.yaml --dry-run`)
# ------------------------------------------------------------------------------------------------

SEARCH_HEAD = "question: q\nprofile: debug\nmetric: sign2text/dev_bleu4\nmode: max\ntrials: 4\n"
SPACE = "space:\n  pretrain.mask_ratio: {float: [0.1, 0.5]}\n"

_SEARCHES = [
    ("s-gaussian", SEARCH_HEAD + "space:\n  pretrain.mask_ratio: {gaussian: [0.1, 0.5]}\n",
     "space.pretrain.mask_ratio: unknown distribution 'gaussian'; use one of float, int, loguniform, choice"),
    ("s-unknown-key", SEARCH_HEAD + "space:\n  pretrain.mask_rate: {float: [0.1, 0.5]}\n",
     "space.pretrain.mask_rate: unknown config key"),
    ("s-bounds-order", SEARCH_HEAD + "space:\n  pretrain.mask_ratio: {float: [0.5, 0.1]}\n",
     "space.pretrain.mask_ratio: low must be < high, got [0.5, 0.1]"),
    ("s-bounds-inf", SEARCH_HEAD + "space:\n  optim.lr: {loguniform: [1.0e-4, .inf]}\n",
     "space.optim.lr bounds must be a finite number, got inf"),
    ("s-bounds-nan", SEARCH_HEAD + "space:\n  optim.lr: {loguniform: [.nan, 1.0e-3]}\n", "space.optim.lr"),
    ("s-bounds-word", SEARCH_HEAD + "space:\n  pretrain.mask_ratio: {float: [low, 0.5]}\n", "space.pretrain.mask_ratio"),
    ("s-bounds-three", SEARCH_HEAD + "space:\n  pretrain.mask_ratio: {float: [0.1, 0.2, 0.3]}\n",
     "space.pretrain.mask_ratio"),
    ("s-bounds-scalar", SEARCH_HEAD + "space:\n  pretrain.mask_ratio: {float: 0.5}\n", "space.pretrain.mask_ratio"),
    ("s-loguniform-zero", SEARCH_HEAD + "space:\n  optim.lr: {loguniform: [0, 1.0e-3]}\n", "space.optim.lr"),
    ("s-int-float-bounds", SEARCH_HEAD + "space:\n  pretrain.window: {int: [8.5, 16]}\n", "space.pretrain.window"),
    ("s-choice-empty", SEARCH_HEAD + "space:\n  pretrain.weighting: {choice: []}\n", "space.pretrain.weighting"),
    ("s-choice-scalar", SEARCH_HEAD + "space:\n  pretrain.weighting: {choice: apw}\n", "space.pretrain.weighting"),
    ("s-choice-bad-value", SEARCH_HEAD + "space:\n  pretrain.weighting: {choice: [none, adaptive]}\n",
     "pretrain.weighting must be one of 'none' | 'fpw' | 'apw', got 'adaptive'"),
    ("s-dist-not-mapping", SEARCH_HEAD + "space:\n  pretrain.mask_ratio: [0.1, 0.5]\n", "space.pretrain.mask_ratio"),
    ("s-bound-later-key", SEARCH_HEAD + "space:\n  embed.stride: {int: [1, pretrain.window]}\n"
     "  pretrain.window: {choice: [8, 12]}\n",
     "space.embed.stride: its bound pretrain.window is searched after it (keys are sampled in file order); "
     "put pretrain.window above embed.stride"),
    ("s-space-empty", SEARCH_HEAD + "space: {}\n", "space must be a non-empty mapping of dotted key -> distribution"),
    ("s-space-list", SEARCH_HEAD + "space: [a]\n", "space must be a non-empty mapping"),
    ("s-missing-question", SEARCH_HEAD.replace("question: q\n", "") + SPACE, "missing key question"),
    ("s-top-unknown", SEARCH_HEAD + SPACE + "budget: 3\n", "unknown key budget"),
    ("s-metric-unknown", SEARCH_HEAD.replace("sign2text/dev_bleu4", "sign2text/dev_bleu9") + SPACE,
     "unknown metric 'sign2text/dev_bleu9'"),
    ("s-metric-test", SEARCH_HEAD.replace("sign2text/dev_bleu4", "sign2text/test_bleu4") + SPACE,
     "metric sign2text/test_bleu4: optimize a dev metric"),
    ("s-mode", SEARCH_HEAD.replace("mode: max", "mode: up") + SPACE, "mode must be min or max, got 'up'"),
    ("s-mode-wrong-way", SEARCH_HEAD.replace("mode: max", "mode: min") + SPACE, "metric sign2text/dev_bleu4 is better when higher"),
    ("s-trials-zero", SEARCH_HEAD.replace("trials: 4", "trials: 0") + SPACE, "trials must be in [1, 10000], got 0"),
    ("s-trials-word", SEARCH_HEAD.replace("trials: 4", "trials: many") + SPACE, "trials"),
    ("s-trials-huge", SEARCH_HEAD.replace("trials: 4", "trials: 100000000") + SPACE,
     "trials must be in [1, 10000], got 100000000"),
    ("s-max-concurrent", SEARCH_HEAD + "max_concurrent: 0\n" + SPACE, "max_concurrent must be >= 1, got 0"),
    ("s-startup", SEARCH_HEAD + "startup_trials: -1\n" + SPACE, "startup_trials must be >= 0, got -1"),
    ("s-scheduler-type", SEARCH_HEAD + "scheduler: {type: hyperband}\n" + SPACE,
     "scheduler.type must be asha or fifo, got 'hyperband'"),
    ("s-scheduler-list", SEARCH_HEAD + "scheduler: [asha]\n" + SPACE, "scheduler must be a mapping"),
    ("s-scheduler-key", SEARCH_HEAD + "scheduler: {type: asha, patience: 2}\n" + SPACE, "unknown key scheduler.patience"),
    ("s-scheduler-rf", SEARCH_HEAD + "scheduler: {type: asha, reduction_factor: 1}\n" + SPACE,
     "scheduler.reduction_factor must be > 1, got 1"),
    ("s-enqueue-scalar", SEARCH_HEAD + "enqueue: 3\n" + SPACE, "enqueue must be a list of mappings of searched keys"),
    ("s-enqueue-unsearched", SEARCH_HEAD + "enqueue: [{optim.lr: 0.001}]\n" + SPACE, "enqueue"),
    ("s-overrides-list", SEARCH_HEAD + "overrides: [1]\n" + SPACE, "overrides must be a mapping of dotted keys"),
    ("s-overrides-nan", SEARCH_HEAD + "overrides: {optim.lr: .nan}\n" + SPACE, "optim.lr must be a finite number, got nan"),
    ("s-anchor", SEARCH_HEAD + "space: &s\n  pretrain.mask_ratio: {float: [0.1, 0.5]}\n",
     "line 6: YAML anchors and aliases are not accepted (&s); write the values out"),
    ("s-duplicate", SEARCH_HEAD + "space:\n  optim.lr: {loguniform: [1.0e-4, 1.0e-3]}\n  optim.lr: {loguniform: [1.0e-4, 1.0e-3]}\n",
     "line 8: duplicate key 'optim.lr'; each key once per mapping"),
    ("s-syntax", SEARCH_HEAD + "space: {\n", "not valid YAML"),
    ("s-compute-searched", SEARCH_HEAD + "space:\n  compute.cpus_per_worker: {float: [1, 2]}\n",
     "space.compute.cpus_per_worker"),
]

# ------------------------------------------------------------------------------------------------
# Data files (`python -m harness.inspect_data SOURCE`: the reader a study's prepare stage uses)
# ------------------------------------------------------------------------------------------------


def _corpus(frames: int = 6):
    from harness.data.record import SignSequence
    from models.layout import CANONICAL
    kp = np.zeros((frames, 73, 2), np.float32)
    kp[:, :, 0] = np.arange(73) / 73.0 + 10.0
    kp[:, :, 1] = 5.0
    kp[:, CANONICAL.right_shoulder] = [10, 5]
    kp[:, CANONICAL.left_shoulder] = [12, 5]
    mask = np.ones((frames, 73), bool)
    seq = SignSequence(name="a", keypoints=kp, mask=mask, text="a b")
    return {"train": [seq], "dev": [seq], "test": [seq]}


def _npz(rel: str, edit: Callable[[dict], None] | None = None, truncate: bool = False) -> Callable[[Path], None]:
    def make(w: Path) -> None:
        from harness.data.readers.npz import corpus_arrays, write_npz
        path = w / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if edit is None:
            write_npz(_corpus(), path)
        else:
            arrays = corpus_arrays(_corpus())
            edit(arrays)
            np.savez(path, **arrays)
        if truncate:
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
    return make


def _npz_zip_entry(rel: str, name: str, data: bytes) -> Callable[[Path], None]:
    def make(w: Path) -> None:
        with zipfile.ZipFile(w / rel, "w") as z:
            z.writestr(name, data)
    return make


def _set(key: str, value) -> Callable[[dict], None]:
    def edit(arrays: dict) -> None:
        arrays[key] = value
    return edit


def _drop(key: str) -> Callable[[dict], None]:
    def edit(arrays: dict) -> None:
        del arrays[key]
    return edit


def _zero_frames(arrays: dict) -> None:
    arrays["keypoints_0"] = np.zeros((0, 73, 2), np.float32)
    arrays["mask_0"] = np.zeros((0, 73), bool)


def _nan_frame(arrays: dict) -> None:
    arrays["keypoints_0"] = arrays["keypoints_0"].copy()
    arrays["keypoints_0"][2, 5, 0] = np.nan


def _pose(rel: str, truncate: int | None = None) -> Callable[[Path], None]:
    def make(w: Path) -> None:
        from harness.data.readers.pose import write_pose
        seq = _corpus()["train"][0]
        path = w / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write_pose(seq, path)
        if truncate is not None:
            data = path.read_bytes()
            path.write_bytes(data[: truncate if truncate >= 0 else len(data) + truncate])
    return make


def pose_v0_0_bytes(components: list[tuple[str, list[str]]], values: np.ndarray, conf: np.ndarray, fps: int = 24,
                    size: int = 1000) -> bytes:
    """A version 0.0 `.pose` file (pose-format's oldest layout, which it reads but no longer writes):
    pose-format's header with version 0.0, then per frame the number of people and per person an id
    and (x, y, confidence) float32 per point. values (T, N, 2), conf (T, N); components (name, points)."""
    import struct

    from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions
    header = PoseHeader(0.0, PoseHeaderDimensions(size, size, 0),
                        [PoseHeaderComponent(name, points, [], [], "XYC") for name, points in components])
    buf = io.BytesIO()
    header.write(buf)
    data = bytearray(buf.getvalue())
    data[:4] = struct.pack("<f", 0.0)  # pose-format writes its current version; this is the old layout's
    data += struct.pack("<HH", fps, len(values))
    for frame, c in zip(values, conf):
        data += struct.pack("<Hh", 1, 0) + np.concatenate([frame, c[:, None]], -1).astype("<f4").tobytes()
    return bytes(data)


def _pose_v0_0(rel: str, keep: float) -> Callable[[Path], None]:
    """The hostile corpus's sequence as a version 0.0 file, cut to `keep` of its bytes."""
    def make(w: Path) -> None:
        from harness.data.readers.pose import OWN_COMPONENT
        from models.layout import CANONICAL
        seq = _corpus()["train"][0]
        data = pose_v0_0_bytes([(OWN_COMPONENT, list(CANONICAL.names))], seq.keypoints, seq.mask.astype(np.float32))
        _write(rel, data[: int(len(data) * keep)])(w)
    return make


OP_TABLE = "SENTENCE_NAME\tSENTENCE\nsent1\tthe sentence\n"
OP_FRAME = "openpose/sent1/sent1_000000000000_keypoints.json"


def _openpose(frame: str | bytes, table: str = OP_TABLE) -> Callable[[Path], None]:
    return _both(_write("openpose/sentences.tsv", table), _write(OP_FRAME, frame))


def _frame(**person) -> str:
    base = {"pose_keypoints_2d": [1.0] * 75, "face_keypoints_2d": [1.0] * 210,
            "hand_left_keypoints_2d": [1.0] * 63, "hand_right_keypoints_2d": [1.0] * 63}
    return json.dumps({"version": 1.3, "people": [{**base, **person}]})


PT_FRAME = " ".join(["0.5"] * 150 + ["0.0"])


def _pt(skels: str, text: str = "a sentence\n", folder: str = "pt") -> Callable[[Path], None]:
    return _both(_write(f"{folder}/train.skels", skels), _write(f"{folder}/train.text", text),
                 _write(f"{folder}/dev.skels", PT_FRAME + "\n"), _write(f"{folder}/dev.text", "a\n"),
                 _write(f"{folder}/test.skels", PT_FRAME + "\n"), _write(f"{folder}/test.text", "a\n"))


_DATA = [
    # (id, source, files, expect)
    ("npz-missing-file", f"npz:{W}/none.npz", None, f"{W}/none.npz"),
    ("npz-garbage", f"npz:{W}/junk.npz", _write("junk.npz", b"\x00garbage" * 64), f"{W}/junk.npz: not a readable .npz archive"),
    ("npz-empty", f"npz:{W}/empty.npz", _write("empty.npz", b""), f"{W}/empty.npz"),
    ("npz-text", f"npz:{W}/text.npz", _write("text.npz", "keypoints_0,1,2\n"), f"{W}/text.npz"),
    ("npz-truncated", f"npz:{W}/half.npz", _npz("half.npz", truncate=True), f"{W}/half.npz"),
    ("npz-truncated-uncompressed", f"npz:{W}/halfu.npz", _npz("halfu.npz", edit=lambda a: None, truncate=True),
     f"{W}/halfu.npz"),
    ("npz-pickled-array", f"npz:{W}/pickle.npz",
     _npz("pickle.npz", edit=_set("keypoints_0", np.array([{"a": 1}], dtype=object))),
     f"{W}/pickle.npz: key 'keypoints_0' is not a plain array (Object arrays cannot be loaded when allow_pickle=False)"),
    ("npz-entry-garbage", f"npz:{W}/entry.npz", _npz_zip_entry("entry.npz", "splits.npy", b"\x93NUMPY garbage"),
     f"{W}/entry.npz"),
    ("npz-no-keypoints", f"npz:{W}/nokey.npz", _npz("nokey.npz", edit=_drop("keypoints_0")),
     f"{W}/nokey.npz: key 'keypoints_0' missing; expected the uniglor-npz/1 schema"),
    ("npz-no-splits", f"npz:{W}/nosplits.npz", _npz("nosplits.npz", edit=_drop("splits")), f"{W}/nosplits.npz: key 'splits'"),
    ("npz-wrong-format", f"npz:{W}/fmt.npz", _npz("fmt.npz", edit=_set("format", np.array("other/9"))),
     f"{W}/fmt.npz: key 'format' is 'other/9'; expected 'uniglor-npz/1'"),
    ("npz-keypoints-shape", f"npz:{W}/shape.npz", _npz("shape.npz", edit=_set("keypoints_0", np.zeros((4, 50, 2), np.float32))),
     f"{W}/shape.npz: key 'keypoints_0' has shape (4, 50, 2); expected (T, 73, 2|3)"),
    ("npz-keypoints-1d", f"npz:{W}/flat.npz", _npz("flat.npz", edit=_set("keypoints_0", np.zeros(5, np.float32))),
     f"{W}/flat.npz: key 'keypoints_0' has shape (5,)"),
    ("npz-keypoints-strings", f"npz:{W}/str.npz", _npz("str.npz", edit=_set("keypoints_0", np.full((6, 73, 2), "x"))),
     f"{W}/str.npz: key 'keypoints_0' is <U1; expected float32 or float64 numbers"),
    ("npz-zero-frames", f"npz:{W}/zero.npz", _npz("zero.npz", edit=_zero_frames),
     f"{W}/zero.npz: key 'keypoints_0' has 0 frames"),
    ("npz-nan", f"npz:{W}/nan.npz", _npz("nan.npz", edit=_nan_frame),
     f"{W}/nan.npz: key 'keypoints_0', frame 2: NaN or infinite present value"),
    ("npz-bad-split", f"npz:{W}/split.npz", _npz("split.npz", edit=_set("splits", np.array(["train", "dev", "val"]))),
     f"{W}/split.npz: key 'splits'[2] is 'val'"),
    ("npz-mask-dtype", f"npz:{W}/mask.npz", _npz("mask.npz", edit=_set("mask_0", np.ones((6, 73), np.float32))),
     f"{W}/mask.npz: key 'mask_0' is float32 (6, 73); expected bool (6, 73)"),
    ("npz-metas-not-json", f"npz:{W}/metas.npz", _npz("metas.npz", edit=_set("metas", np.array(["{", "{}", "{}"]))),
     f"{W}/metas.npz: key 'metas'[0] is not JSON"),
    ("npz-is-folder", f"npz:{W}/afolder", _write("afolder/x", ""), f"{W}/afolder"),
    ("pose-dev-null", "pose:/dev/null", None, "/dev/null: not a file or folder; expected a .pose file or a folder of them"),
    ("pose-garbage", f"pose:{W}/junk.pose", _write("junk.pose", b"123456789"), f"{W}/junk.pose: not a readable .pose file"),
    ("pose-empty", f"pose:{W}/empty.pose", _write("empty.pose", b""), f"{W}/empty.pose"),
    ("pose-text", f"pose:{W}/text.pose", _write("text.pose", "this is not a pose file at all\n" * 4), f"{W}/text.pose"),
    ("pose-truncated-header", f"pose:{W}/head.pose", _pose("head.pose", truncate=40), f"{W}/head.pose"),
    ("pose-truncated-body", f"pose:{W}/body.pose", _pose("body.pose", truncate=-100), f"{W}/body.pose"),
    ("pose-missing", f"pose:{W}/none.pose", None, f"{W}/none.pose"),
    ("pose-empty-folder", f"pose:{W}/posedir", _write("posedir/readme.txt", "x"), f"{W}/posedir: no .pose files"),
    ("openpose-not-json", f"openpose:{W}/openpose", _openpose("{not json"), f"{W}/{OP_FRAME}: not a readable OpenPose JSON file"),
    ("openpose-empty-frame", f"openpose:{W}/openpose", _openpose(""), f"{W}/{OP_FRAME}"),
    ("openpose-binary", f"openpose:{W}/openpose", _openpose(b"\xff\xfe\x00\x01"), f"{W}/{OP_FRAME}"),
    ("openpose-deep-json", f"openpose:{W}/openpose", _openpose("[" * 100000 + "]" * 100000),
     f"{W}/{OP_FRAME}: not an OpenPose JSON file (nested too deeply)"),
    ("openpose-list", f"openpose:{W}/openpose", _openpose("[1, 2, 3]"), f"{W}/{OP_FRAME}"),
    ("openpose-no-people", f"openpose:{W}/openpose", _openpose('{"version": 1.3}'),
     f"{W}/{OP_FRAME}: no 'people' list; expected OpenPose JSON output"),
    ("openpose-people-dict", f"openpose:{W}/openpose", _openpose('{"people": {"a": 1}}'), f"{W}/{OP_FRAME}"),
    ("openpose-person-list", f"openpose:{W}/openpose", _openpose('{"people": [[1, 2]]}'), f"{W}/{OP_FRAME}"),
    ("openpose-short-pose", f"openpose:{W}/openpose", _openpose(_frame(pose_keypoints_2d=[1.0, 2.0, 3.0])),
     f"{W}/{OP_FRAME}: people[0].pose_keypoints_2d has 3 values; expected 75 (x, y, confidence for 25 points)"),
    ("openpose-pose-strings", f"openpose:{W}/openpose", _openpose(_frame(pose_keypoints_2d=["a"] * 75)),
     f"{W}/{OP_FRAME}: people[0].pose_keypoints_2d"),
    # NaN is "not detected" (issue of real data): the only frame then has no usable shoulders
    ("openpose-pose-nan", f"openpose:{W}/openpose", _openpose(_frame(pose_keypoints_2d=[1.0] * 74).replace("]", ", NaN]", 1)),
     f"source 'openpose:{W}/openpose': all 1 sequences were skipped"),
    ("openpose-no-table", f"openpose:{W}/openpose", _write(OP_FRAME, _frame()), f"{W}/openpose: no sentence table"),
    ("openpose-table-columns", f"openpose:{W}/openpose", _openpose(_frame(), table="NAME\tTEXT\nsent1\tx\n"),
     f"{W}/openpose"),
    ("openpose-table-binary", f"openpose:{W}/openpose",
     _both(_write("openpose/sentences.tsv", b"\xff\xfe\x00bad"), _write(OP_FRAME, _frame())), f"{W}/openpose"),
    ("pt-no-skels", f"pt:{W}/ptempty", _write("ptempty/readme.txt", "x"),
     f"{W}/ptempty: no train.skels, dev.skels or test.skels; expected the PT text format"),
    ("pt-short-line", f"pt:{W}/pt", _pt("1 2 3\n"), "pt/train.skels, line 1: 3 values is not a multiple of 151"),
    ("pt-non-numeric", f"pt:{W}/pt", _pt(PT_FRAME.replace("0.5", "abc", 1) + "\n"),
     "pt/train.skels, line 1, frame 0: non-numeric value 'abc'; expected a number"),
    ("pt-nan", f"pt:{W}/pt", _pt(PT_FRAME.replace("0.5", "nan", 1) + "\n"),
     f"source 'pt:{W}/pt': all 3 sequences were skipped"),  # NaN is a missing joint
    ("pt-inf", f"pt:{W}/pt", _pt(PT_FRAME.replace("0.5", "-inf", 1) + "\n"),
     "pt/train.skels, line 1, frame 0: value -inf overflows float32 or is absurdly large"),
    ("pt-text-count", f"pt:{W}/pt", _pt(PT_FRAME + "\n", text="a\nb\n"),
     "pt/train.text: 2 lines but train.skels has 1; expected one line per sequence in each file"),
    ("pt-binary", f"pt:{W}/pt", _both(_pt(PT_FRAME + "\n"), _write("pt/train.skels", b"\xff\xfe\x00\x01")),
     "pt/train.skels"),
    ("pt-missing", f"pt:{W}/nodir", None, f"{W}/nodir: does not exist"),
    ("pt-is-file", f"pt:{W}/afile", _write("afile", "x"), f"{W}/afile"),
]


# Cases of `inspect` with flags besides the source: (id, args, files, expect)
_OP_FPS = "SENTENCE_NAME\tSENTENCE\tFPS\nsent1\tthe sentence\t{}\n"
_DATA_FLAGS = [
    ("openpose-dims-3", (f"openpose:{W}/openpose", "--set", "data.dims=3"), _openpose(_frame()),
     f"{W}/openpose/sent1: data.dims is 3 but the source has 2 coordinates (x, y); expected data.dims 2 or source"),
    ("pose-truncated-v0.0", (f"pose:{W}/old.pose",), _pose_v0_0("old.pose", keep=0.5),
     f"{W}/old.pose: truncated .pose file (version 0.0): the header promises 6 frames but the"),
    ("openpose-fps-word", (f"openpose:{W}/openpose",), _openpose(_frame(), table=_OP_FPS.format("fast")),
     f"{W}/openpose/sent1: FPS 'fast' in the sentence table; expected a number"),
    ("openpose-fps-zero", (f"openpose:{W}/openpose",), _openpose(_frame(), table=_OP_FPS.format("0")),
     f"{W}/openpose/sent1: FPS '0' in the sentence table; expected frames per second in (0, 1000]"),
    ("openpose-fps-nan", (f"openpose:{W}/openpose",), _openpose(_frame(), table=_OP_FPS.format("nan")),
     f"{W}/openpose/sent1: FPS 'nan' in the sentence table; expected frames per second in (0, 1000]"),
    ("openpose-repeated-frame", (f"openpose:{W}/openpose",),
     _both(_openpose(_frame()), _write("openpose/sent1/sent1_0_keypoints.json", _frame())),
     f"{W}/openpose/sent1/sent1_0_keypoints.json: frame number 0 again (first: sent1_000000000000_keypoints.json); "
     "expected one file per frame"),
    ("inspect-set-other-section", ("synth", "--set", "pretrain.window=8"), None,
     "--set pretrain.window: inspect reads only data.* settings and pretrain.extra_source; expected data.KEY=VALUE"),
    ("inspect-set-unknown-key", ("synth", "--set", "data.fsp=30"), None, "unknown key data.fsp; valid keys here:"),
    ("inspect-set-fps-zero", ("synth", "--set", "data.fps=0"), None, "data.fps must be in [1, 1000], got 0.0 (--set)"),
    ("inspect-set-gaps", ("synth", "--set", "data.gaps=fill"), None,
     "data.gaps must be one of 'mask' | 'interpolate', got 'fill' (--set)"),
    ("inspect-set-dims", ("synth", "--set", "data.dims=4"), None, "data.dims must be one of 'source' | 2 | 3, got 4 (--set)"),
    ("inspect-set-confidence", ("synth", "--set", "data.min_confidence=1.5"), None,
     "data.min_confidence must be in [0, 1], got 1.5 (--set)"),
    ("inspect-set-no-equals", ("synth", "--set", "data.fps"), None, "--set expects key=value, got 'data.fps'"),
    ("inspect-extra-source-kind", ("synth", "--set", "pretrain.extra_source=kinect:/x"), None,
     "source 'kinect:/x': unknown kind 'kinect'; expected one of synth"),
    ("inspect-extra-source-no-train", ("synth", "--set", f"pretrain.extra_source=pt:{W}/pt"),
     _both(_pt(PT_FRAME + "\n"), _write("pt/train.skels", ""), _write("pt/train.text", "")),
     f"pretrain.extra_source pt:{W}/pt: no train sequences after preprocessing; expected a train split to pretrain on"),
]


# ------------------------------------------------------------------------------------------------
# Isolated-sign sources (recognition.source + recognition.labels; harness/data/labels.py), through
# `run_ablation.py recognition`: the table is read when the trials' keys are computed, the labels
# matched and the classes checked when the driver prepares the data, before Ray.
# ------------------------------------------------------------------------------------------------

ISO_HEAD = "NAME\tLABEL\tSPLIT\n"
ISO_OK = ISO_HEAD + "a\tX\ttrain\nb\tY\ttrain\nc\tX\tdev\nd\tX\ttest\ne\tY\ttest\n"
ISO_SOURCE = ("--set", f"recognition.source=pose:{W}/iso")
ISO_LABELS = ("--set", f"recognition.labels={W}/iso/labels.tsv")


def _iso(table: str | bytes | None, names: str) -> Callable[[Path], None]:
    """W/iso/N.pose for each letter N of names (pose-format files of our layout), W/iso/labels.tsv beside them."""
    makers = [_pose(f"iso/{n}.pose") for n in names]
    return _both(*makers, *([_write("iso/labels.tsv", table)] if table is not None else []))


_ISOLATED = [
    # (id, extra args, labels.tsv text (None: no file), .pose names, expect)
    ("no-labels-key", ISO_SOURCE, ISO_OK, "abcde",
     "recognition.labels is empty; expected the path of the label table of recognition.source 'pose:W/iso' "
     "(tab separated: NAME, LABEL[, SPLIT]) (--set)"),
    ("labels-with-synth", ISO_LABELS, ISO_OK, "abcde",
     "recognition.labels is 'W/iso/labels.tsv' but recognition.source is synth (labelled by the generator)"),
    ("source-synth-seed", ("--set", "recognition.source=synth@3", *ISO_LABELS), ISO_OK, "abcde",
     "recognition.source 'synth@3': expected synth alone (the generated unseen corpus) or a keypoint source"),
    ("source-missing", ("--set", f"recognition.source=pose:{W}/nodir", *ISO_LABELS), ISO_OK, "abcde",
     f"{W}/nodir: does not exist (source 'pose:{W}/nodir')"),
    ("table-missing", ISO_SOURCE + ISO_LABELS, None, "abcde",
     f"{W}/iso/labels.tsv: the label table does not exist; expected a tab-separated file with columns NAME and "
     "LABEL (and optionally SPLIT) (recognition.labels)"),
    ("table-folder", ISO_SOURCE + ("--set", f"recognition.labels={W}/iso"), ISO_OK, "abcde",
     f"{W}/iso: the label table is not a file"),
    ("table-binary", ISO_SOURCE + ISO_LABELS, b"\xff\xfe\x00bad", "abcde",
     f"{W}/iso/labels.tsv: cannot read the label table ("),
    ("table-empty", ISO_SOURCE + ISO_LABELS, "", "abcde",
     f"{W}/iso/labels.tsv, line 1: no header; expected the tab-separated columns NAME and LABEL"),
    ("table-no-label-column", ISO_SOURCE + ISO_LABELS, "NAME\tGLOSS\na\tX\n", "abcde",
     f"{W}/iso/labels.tsv, line 1: no LABEL column in the tab-separated header ['NAME', 'GLOSS']"),
    ("table-commas", ISO_SOURCE + ISO_LABELS, "NAME,LABEL\na,X\n", "abcde",
     f"{W}/iso/labels.tsv, line 1: no NAME column in the tab-separated header ['NAME,LABEL']"),
    ("table-only-header", ISO_SOURCE + ISO_LABELS, ISO_HEAD, "abcde",
     f"{W}/iso/labels.tsv: no rows under the header; expected one row per sequence"),
    ("table-cells", ISO_SOURCE + ISO_LABELS, ISO_OK.replace("b\tY\ttrain", "b\tY"), "abcde",
     f"{W}/iso/labels.tsv, line 3: 2 tab-separated cells; expected 3 as in the header"),
    ("empty-name", ISO_SOURCE + ISO_LABELS, ISO_OK.replace("b\tY", " \tY"), "abcde",
     f"{W}/iso/labels.tsv, line 3: empty NAME; expected the name of a sequence of the source"),
    ("duplicate-name", ISO_SOURCE + ISO_LABELS, ISO_OK + "a\tY\ttrain\n", "abcde",
     f"{W}/iso/labels.tsv, line 7: NAME 'a' again (first on line 2); expected one row per sequence"),
    ("empty-label", ISO_SOURCE + ISO_LABELS, ISO_OK.replace("c\tX", "c\t "), "abcde",
     f"{W}/iso/labels.tsv, line 4: empty LABEL for 'c'; expected the sign's gloss"),
    ("bad-split", ISO_SOURCE + ISO_LABELS, ISO_OK.replace("c\tX\tdev", "c\tX\tval"), "abcde",
     f"{W}/iso/labels.tsv, line 4: SPLIT 'val' for 'c'; expected train, dev or test"),
    ("unknown-file", ISO_SOURCE + ISO_LABELS, ISO_OK + "f\tY\tdev\n", "abcde",
     f"{W}/iso/labels.tsv, line 7: NAME 'f' is not a sequence of pose:{W}/iso; expected the name of one of its 5 "
     "sequences (e.g. 'a')"),
    ("file-without-label", ISO_SOURCE + ISO_LABELS, ISO_OK, "abcdef",
     f"{W}/iso/labels.tsv: no row for {W}/iso/f.pose (sequence 'f'); expected a NAME row with its LABEL for each "
     f"of the 6 sequences of pose:{W}/iso"),
    ("one-class", ISO_SOURCE + ISO_LABELS, ISO_OK.replace("\tY\t", "\tX\t"), "abcde",
     f"{W}/iso/labels.tsv: 1 class(es) in the train split ('X'); expected at least 2 LABEL values with train "
     "examples"),
    ("class-without-test", ISO_SOURCE + ISO_LABELS, ISO_OK.replace("e\tY\ttest", "e\tY\tdev"), "abcde",
     f"{W}/iso/labels.tsv, line 3: class 'Y' has no test example; expected at least one sequence of each LABEL "
     "in the test split"),
    ("class-without-train", ISO_SOURCE + ISO_LABELS, ISO_OK + "f\tZ\ttest\n", "abcdef",
     f"{W}/iso/labels.tsv, line 7: class 'Z' has no train example"),
    ("no-dev", ISO_SOURCE + ISO_LABELS, ISO_OK.replace("c\tX\tdev", "c\tX\ttest"), "abcde",
     f"{W}/iso/labels.tsv: no dev example; expected sequences in the dev split"),
    ("no-split-column", ISO_SOURCE + ISO_LABELS, "NAME\tLABEL\na\tX\nb\tY\nc\tX\nd\tX\ne\tY\n", "abcde",
     f"{W}/iso/labels.tsv, line 2: class 'X' has no test example"),  # one folder: all train
]


_THROUGH_ABLATION = ("npz-garbage", "npz-truncated", "npz-nan", "pose-dev-null", "openpose-deep-json",
                     "openpose-short-pose", "pt-inf", "pt-text-count")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cases() -> list[Case]:
    out = [Case(f"flag-{i}", "Command line", "ablation", (*a, *DRY), e) for i, a, e in _FLAGS]
    out += [Case(f"flag-{i}", "Command line", "ablation", a, e, files=f) for i, a, e, f in _RUN_FLAGS]
    out += [Case(f"flag-{i}", "Command line", "search", a, e) for i, a, e in _SEARCH_FLAGS]
    out += [Case(f"set-{kv.split('=')[0]}={kv.split('=', 1)[1][:12]}", "--set KEY=VALUE", "ablation",
                 ("apw", "--set", kv, *DRY), e) for kv, e in _SETS]
    for key in _float_keys():  # NaN and infinities of every float key
        for token, shown in _NON_FINITE:
            out.append(Case(f"nonfinite-{key}={shown}", "--set KEY=VALUE (every float key, generated)", "ablation",
                            ("apw", "--set", f"{key}={token}", *DRY),
                            f"{key} must be a finite number, got {shown} (--set)", tags=("generated",)))
    for i, text, e in _ABLATIONS:
        out.append(Case(i, "Ablation files", "ablation", (i, "--profile", "debug", "--results", f"{W}/results", "--dry-run"),
                        e.replace("{id}", i), files=_write(f"ablations/{i}.yaml", text),
                        what=f"`W/ablations/{i}.yaml`: " + _describe(text)))
    for i, text, e in _SEARCHES:
        out.append(Case(i, "Search files", "search", (f"{W}/{i}.yaml", "--dry-run"), e,
                        files=_write(f"{i}.yaml", text), what=f"`W/{i}.yaml`: " + _describe(text)))
    for i, source, f, e in _DATA:
        out.append(Case(f"data-{i}", "Data files", "inspect", (source,), e, files=f))
    for i, args, f, e in _DATA_FLAGS:
        out.append(Case(f"data-{i}", "Data files", "inspect", args, e, files=f))
    # A second corpus for pretraining is prepared by the driver too, before any trial.
    out.append(Case("study-extra-source-missing", "Data files through run_ablation.py", "ablation",
                    ("apw", "--set", f"pretrain.extra_source=pt:{W}/nodir", *RUN), f"{W}/nodir: does not exist"))
    # The same readers behind a study: the driver prepares the data before any trial (and Ray).
    for i, source, f, e in _DATA:
        if i in _THROUGH_ABLATION:
            out.append(Case(f"study-{i}", "Data files through run_ablation.py", "ablation",
                            ("apw", "--dataset", source, *RUN), e, files=f))
    for i, extra, table, names, e in _ISOLATED:
        args = " ".join(a for a in extra if a != "--set")
        out.append(Case(f"iso-{i}", "Isolated-sign sources", "ablation", ("recognition", *extra, *RUN), e,
                        files=_iso(table, names), what=f"`{args}`; {', '.join(n + '.pose' for n in names)}; labels.tsv: "
                        + ("none" if table is None else "empty" if not table
                           else _describe(table).replace("\t", "→"))))
    return out


def _describe(text: str | bytes) -> str:
    if isinstance(text, bytes):
        return f"{len(text)} bytes of binary"
    if len(text) > 300:
        return f"{len(text) // 1024} KiB of YAML" if len(text) > 4096 else f"{text[:60]!r}... ({len(text)} chars)"
    return "`" + text.replace("\n", "⏎ ").replace("|", "\\|").replace("`", "'") + "`"


# ------------------------------------------------------------------------------------------------
# Running a case
# ------------------------------------------------------------------------------------------------


class ReachedRay(AssertionError):
    """A hostile case got as far as starting Ray: its input was accepted."""


@contextlib.contextmanager
def _sandbox(work: Path, own_ablations: bool):
    """Ray forbidden; with own_ablations, ablation files from W/ablations."""
    import harness.ablation as ablation
    import harness.tune.ablation as tune_ablation
    import harness.tune.search as tune_search

    def no_ray(*args, **kwargs):
        raise ReachedRay("the input was accepted: the command reached Ray")
    saved = ablation.ABLATION_DIR, tune_ablation.ray_session, tune_search.ray_session
    if own_ablations:
        ablation.ABLATION_DIR = work / "ablations"
        (work / "ablations").mkdir(parents=True, exist_ok=True)
    tune_ablation.ray_session = tune_search.ray_session = no_ray
    try:
        yield
    finally:
        ablation.ABLATION_DIR, tune_ablation.ray_session, tune_search.ray_session = saved


def _main(cli: str):
    if cli == "ablation":
        from harness.run_ablation import main
    elif cli == "search":
        from harness.run_search import main
    else:
        from harness.inspect_data import main
    return main


def run_case(case: Case, work: Path) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of the case's command in this process, W = `work`. An exception
    that escapes (a traceback in a real run) comes back as exit code 1 and its traceback on stderr."""
    import traceback

    from harness.cli import run_cli
    work.mkdir(parents=True, exist_ok=True)
    if case.files:
        case.files(work)
    port = str(_closed_port())
    argv = [a.replace(W, str(work), 1) if a.startswith(W) or f":{W}" in a or f"///{W}" in a else a for a in case.args]
    argv = [a.replace(f":{W}/", f":{work}/").replace(f"///{W}/", f"///{work}/").replace(f"={W}/", f"={work}/")
            .replace("CLOSED", port) for a in argv]
    out, err = io.StringIO(), io.StringIO()
    with _sandbox(work, case.group == "Ablation files"), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = run_cli(_main(case.cli), argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001: what the user would see as a traceback
            traceback.print_exc(file=err)
            code = 1
    return code, out.getvalue(), err.getvalue().replace(str(work), W).replace(port, "CLOSED")


def expected_line(case: Case) -> str:
    return case.expect
