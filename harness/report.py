"""Ablation tables and curves in the paper's layout (paper section 4.3: tables 4a-4d, table 5, figure 3).

The paper reports one number per cell from one run. A study here runs every variant with several
seeds, so a cell is "mean ± std" over seeds, and each row carries a paired bootstrap p-value of its
BLEU-4 against the baseline row of the same task (DESIGN "Metrics").

Conventions (they are also written into every table's footer by `footer_text`):
- std is the *sample* standard deviation over seeds (ddof = 1) when a row has >= 2 seeds, and 0.0
  with one seed (nothing to estimate; the footer names the seeds and rows with fewer seeds are listed).
- p(BLEU-4): the seeds both rows share are paired (seed s of the row against seed s of the
  baseline) and their test-set outputs are concatenated, in seed order, into one corpus per system
  over the repeated references; sacrebleu's paired bootstrap then resamples sentence pairs of that
  corpus. Pairing by seed keeps it a paired test (each resampled item is the same test sentence
  from the same seed in both systems), and pooling the seeds lets seed-to-seed variation enter the
  test (as MultEval pools optimizer replicas) instead of trusting one lucky seed. Caveat: the k
  copies of a test sentence are resampled as independent items, so p is somewhat optimistic for
  sentence sampling; the std column shows the seed spread separately.
- BLEU/ROUGE of text-to-sign rows score back-translations (the backtranslator stage) of the
  generated keypoints; MPJPE/DTW-MJE are in shoulder-length units.

Rows are plain dicts (one per variant and task), so the ablation runner can log them to MLflow with
`harness.tracking.log_table` as they are.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness import metrics as _metrics
from harness.io import atomic_write

TASKS = ("sign2text", "text2sign", "recognition")
TEXT_METRICS = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge")
POSE_METRICS = ("mpjpe", "dtw_mje")
RECOGNITION_METRICS = ("top1", "top5", "top10")  # table 3, percent
TASK_METRICS = {"sign2text": TEXT_METRICS, "text2sign": TEXT_METRICS + POSE_METRICS,
                "recognition": RECOGNITION_METRICS}
# What each task's p-value tests: BLEU-4 for the translators, Top-1 for recognition.
P_METRIC = {"sign2text": "bleu4", "text2sign": "bleu4", "recognition": "top1"}
ALL_METRICS = TEXT_METRICS + POSE_METRICS
# Recognition's columns come last, so a table of the translation tasks keeps its column order.
CSV_COLUMNS = (
    ("variant", "task")
    + ALL_METRICS
    + tuple(f"{m}_std" for m in ALL_METRICS)
    + ("seeds", "p_bleu4")
    + RECOGNITION_METRICS + tuple(f"{m}_std" for m in RECOGNITION_METRICS) + ("p_top1",)
    # The representation probe of the row's pretraining (harness/reading.py probe_columns).
    + tuple(f"probe_{m}{s}" for m in ("knn_acc", "pair_hand", "pair_face", "pair_both") for s in ("", "_std"))
)
BOOTSTRAP_SEED = 12345  # fixed so a table is reproducible from its trial outputs
SYNTHETIC_LINE = "Synthetic corpus: these numbers are not PHOENIX14T or How2Sign results."
_TASK_NAMES = {"sign2text": "sign-to-text", "text2sign": "text-to-sign's back-translation",
               "recognition": "recognition"}
_LABELS = {
    "bleu1": "BLEU-1", "bleu2": "BLEU-2", "bleu3": "BLEU-3", "bleu4": "BLEU-4",
    "rouge": "ROUGE-L", "mpjpe": "MPJPE", "dtw_mje": "DTW-MJE", "top1": "Top-1", "top5": "Top-5", "top10": "Top-10",
}
_TASK_TITLES = {
    "sign2text": "Sign-to-text (SLT)",
    "text2sign": "Text-to-sign (SLP; BLEU/ROUGE-L by back-translation)",
    "recognition": "Recognition of unseen isolated signs (Top-k accuracy, %)",
}


# ----------------------------------------------------------------------------- table rows


def _check_result(i: int, r: Mapping[str, Any]) -> None:
    where = f"results[{i}]"
    for key in ("variant", "seed", "task", "metrics", "hypotheses", "references"):
        if key not in r:
            raise ValueError(f"{where}: missing key {key!r}")
    if r["task"] not in TASKS:
        raise ValueError(f"{where}: task must be one of {TASKS}, got {r['task']!r}")
    needed = TASK_METRICS[r["task"]]
    missing = [m for m in needed if m not in r["metrics"]]
    if missing:
        raise ValueError(f"{where} ({r['variant']}, {r['task']}, seed {r['seed']}): metrics lack {missing}")
    if len(r["hypotheses"]) != len(r["references"]):
        raise ValueError(
            f"{where} ({r['variant']}, {r['task']}, seed {r['seed']}): {len(r['hypotheses'])} "
            f"hypotheses but {len(r['references'])} references"
        )


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if arr.size >= 2 else 0.0
    return float(arr.mean()), std


def _p_bleu4(
    system: dict[int, Mapping[str, Any]], baseline: dict[int, Mapping[str, Any]], n_bootstrap: int
) -> float | None:
    """Paired bootstrap p on BLEU-4, seeds paired and concatenated (see the module docstring)."""
    # A seed of a row with no outputs (not applicable to the source) has nothing to pair.
    shared = sorted(s for s in set(system) & set(baseline) if system[s]["references"] and baseline[s]["references"])
    if not shared:
        return None
    hyps_base: list[str] = []
    hyps_sys: list[str] = []
    refs: list[str] = []
    for seed in shared:
        s, b = system[seed], baseline[seed]
        if list(s["references"]) != list(b["references"]):
            raise ValueError(
                f"{s['variant']} and baseline {b['variant']} ({s['task']}, seed {seed}) were scored "
                "on different references; a paired test needs the same test set"
            )
        hyps_base += list(b["hypotheses"])
        hyps_sys += list(s["hypotheses"])
        refs += list(s["references"])
    if not refs:
        return None
    return _metrics.paired_bootstrap_bleu4(hyps_base, hyps_sys, refs, n_bootstrap, BOOTSTRAP_SEED)


def _p_top1(system: dict[int, Mapping[str, Any]], baseline: dict[int, Mapping[str, Any]], n_bootstrap: int
            ) -> float | None:
    """Paired bootstrap on Top-1 (each row's hypotheses are its top-1 glosses), seeds paired and
    concatenated like BLEU-4's."""
    from harness.probe import paired_bootstrap_accuracy
    shared = sorted(set(system) & set(baseline))
    pairs = [(h == ref, b == ref) for seed in shared
             for h, b, ref in zip(system[seed]["hypotheses"], baseline[seed]["hypotheses"], system[seed]["references"])]
    if not pairs:
        return None
    sys_ok, base_ok = (np.array(v) for v in zip(*pairs))
    return paired_bootstrap_accuracy(base_ok, sys_ok, n_bootstrap, BOOTSTRAP_SEED)


def build_table(
    results: Iterable[Mapping[str, Any]],
    variants_in_order: Sequence[str],
    baseline: str,
    n_bootstrap: int = 1000,
    compare_to: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Aggregate trial results into one row per (variant, task), sign-to-text rows first.

    Each row: variant, task, bleu1..bleu4, rouge, mpjpe, dtw_mje (None for sign2text), the same
    keys with "_std" (sample std over seeds, 0.0 with one seed), seeds (count) and p_bleu4 (paired
    bootstrap against the baseline row of the same task, or the row `compare_to` names for the
    variant; None for a row compared to itself, and when that row is absent or shares no seed).
    Variants with no result are left out.
    """
    compare_to = dict(compare_to or {})
    if baseline not in variants_in_order:
        raise ValueError(f"baseline {baseline!r} is not one of the variants {list(variants_in_order)}")
    if len(set(variants_in_order)) != len(variants_in_order):
        raise ValueError(f"variants_in_order has duplicates: {list(variants_in_order)}")
    known = set(variants_in_order)
    # (variant, task) -> seed -> result
    groups: dict[tuple[str, str], dict[int, Mapping[str, Any]]] = {}
    for i, r in enumerate(results):
        _check_result(i, r)
        if r["variant"] not in known:
            raise ValueError(f"results[{i}]: variant {r['variant']!r} is not in {list(variants_in_order)}")
        by_seed = groups.setdefault((r["variant"], r["task"]), {})
        seed = int(r["seed"])
        if seed in by_seed:
            raise ValueError(f"results[{i}]: a second result for ({r['variant']}, {r['task']}, seed {seed})")
        by_seed[seed] = r

    rows: list[dict[str, Any]] = []
    for task in TASKS:
        for variant in variants_in_order:
            against = compare_to.get(variant, baseline)
            base_group = groups.get((against, task))
            group = groups.get((variant, task))
            if not group:
                continue
            ordered = [group[s] for s in sorted(group)]
            row: dict[str, Any] = {"variant": variant, "task": task}
            for m in ALL_METRICS + RECOGNITION_METRICS:
                if m not in TASK_METRICS[task]:
                    row[m] = row[f"{m}_std"] = None
                    continue
                row[m], row[f"{m}_std"] = _mean_std([float(r["metrics"][m]) for r in ordered])
            row["seeds"] = len(ordered)
            row["p_bleu4"] = row["p_top1"] = None
            if variant != against and base_group is not None:
                test = _p_top1 if task == "recognition" else _p_bleu4
                row[f"p_{P_METRIC[task]}"] = test(group, base_group, n_bootstrap)
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------- headline metrics


def headline_metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """A table's rows as flat MLflow metrics the runs list can show and sort: per task, test metric
    and variant the mean and the std over seeds, e.g. "sign2text.test_bleu4.apw.mean"; pose errors
    say that lower is better ("text2sign.test_mpjpe_lower_better.apw.mean")."""
    out = {}
    for r in rows:
        for m in ("bleu4", "rouge") + POSE_METRICS + RECOGNITION_METRICS:
            if _missing(r.get(m)):
                continue
            name = f"{r['task']}.test_{m}{'_lower_better' if m in POSE_METRICS else ''}.{r['variant']}"
            out[f"{name}.mean"], out[f"{name}.std"] = float(r[m]), float(r.get(f"{m}_std") or 0.0)
        for c in ("knn_acc", "pair_hand", "pair_face", "pair_both"):  # the variant's pretraining, on every row
            if not _missing(r.get(f"probe_{c}")):
                out[f"probe.{c}.{r['variant']}.mean"] = float(r[f"probe_{c}"])
                out[f"probe.{c}.{r['variant']}.std"] = float(r.get(f"probe_{c}_std") or 0.0)
    return out


# ----------------------------------------------------------------------------- degenerate outputs


def degenerate_outputs(results: Iterable[Mapping[str, Any]], variants_in_order: Sequence[str]) -> list[str]:
    """Sentences naming outputs that cannot carry a finding, per task: rows whose test hypotheses
    are empty, or one and the same sentence for every input (BLEU then measures how that sentence
    overlaps the references, not translation). Empty when every row translates."""
    found: dict[tuple[str, str], list[str]] = {}  # (task, problem) -> variants
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    hyps: dict[tuple[str, str], list[str]] = {}
    for r in results:
        hyps.setdefault((r["task"], r["variant"]), []).extend(str(h) for h in r["hypotheses"])
    for (task, variant), hs in hyps.items():
        empty = sum(not h.strip() for h in hs)
        if empty:
            problem = "empty"
        elif len(hs) > 1 and len(set(hs)) == 1:
            problem = "constant"
        else:
            continue
        found.setdefault((task, problem), []).append(variant)
        counts[(task, problem)] = max(counts.get((task, problem), (0, 0)), (empty, len(hs)))
    lines = []
    order = {v: i for i, v in enumerate(variants_in_order)}
    for (task, problem), variants in sorted(found.items(), key=lambda kv: (TASKS.index(kv[0][0]), kv[0][1])):
        variants = sorted(variants, key=lambda v: order.get(v, len(order)))
        rows = "every row" if len(variants) == len({v for t, v in hyps if t == task}) else "rows " + ", ".join(variants)
        empty, n = counts[(task, problem)]
        items, learn = ("test clips", "recognise") if task == "recognition" else ("test sentences", "translate")
        what = (f"empty hypotheses for {empty} of {n} {items}" if problem == "empty"
                else f"one and the same hypothesis for all {n} {items}")
        lines.append(f"{_TASK_NAMES[task].capitalize()} produced {what} ({rows}): its models have not learned "
                     f"to {learn} at this profile, and its scores do not separate the rows.")
    return lines


# ----------------------------------------------------------------------------- files


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell(row: Mapping[str, Any], metric: str) -> str:
    mean, std = row.get(metric), row.get(f"{metric}_std")
    if _missing(mean):
        return "–"
    digits = 3 if metric in POSE_METRICS else 2
    std = 0.0 if _missing(std) else std
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _p_cell(row: Mapping[str, Any], baseline: str | None, baselines: set[str] = frozenset()) -> str:
    p = row.get(f"p_{P_METRIC[row['task']]}")
    if _missing(p):
        return "(baseline)" if row["variant"] == baseline or row["variant"] in baselines else "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _markdown_table(rows: list[Mapping[str, Any]], task: str, baseline: str | None,
                    baselines: set[str] = frozenset()) -> str:
    metrics = TASK_METRICS[task]
    header = ["Variant"] + [_LABELS[m] for m in metrics] + [f"p ({_LABELS[P_METRIC[task]]})"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" + "---:|" * (len(header) - 1),
    ]
    for r in rows:
        cells = [str(r["variant"])] + [_cell(r, m) for m in metrics] + [_p_cell(r, baseline, baselines)]
        if not_applicable(r):
            cells = [str(r["variant"])] + ["n/a"] * (len(cells) - 1)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_table(
    rows: Sequence[Mapping[str, Any]],
    directory: str | os.PathLike,
    title: str,
    footer: str,
    *,
    baseline: str | None = None,
    baselines: set[str] = frozenset(),
) -> str:
    """Write table.md (paper layout: one table per task, then the footer) and table.csv into
    directory, each atomically; returns the markdown text.

    Cells are "mean ± std" (2 decimals; 3 for MPJPE/DTW-MJE); p is "<0.001" or 3 decimals, "–"
    when absent, "(baseline)" in the row of `baseline` (and of `baselines`) when it is given; every
    cell of a row that is not applicable (`not_applicable`) is "n/a".
    """
    directory = Path(directory)
    parts = [f"# {title}", ""]
    for task in TASKS:
        task_rows = [r for r in rows if r["task"] == task]
        if not task_rows:
            continue
        parts += [f"## {_TASK_TITLES[task]}", "", _markdown_table(task_rows, task, baseline, baselines), ""]
    most = max((int(r["seeds"]) for r in rows), default=0)
    short = [f"{r['variant']} ({r['task']}): {r['seeds']}" for r in rows if int(r["seeds"]) < most]
    if short:
        parts += [f"Rows with fewer than {most} seeds: " + "; ".join(short) + ".", ""]
    parts += [footer.rstrip(), ""]
    markdown = "\n".join(parts)

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        # repr keeps every digit, so the csv re-creates the table exactly; missing values are empty.
        writer.writerow(["" if _missing(r.get(c)) else (repr(r[c]) if isinstance(r[c], float) else r[c])
                         for c in CSV_COLUMNS])
    atomic_write(directory / "table.md", markdown)
    atomic_write(directory / "table.csv", buf.getvalue())
    return markdown


def not_applicable(row: Mapping[str, Any]) -> bool:
    """A row with no score at all: its method does not apply to the source (Joint-SLT's CTC loss
    without gloss annotations), so it is n/a, not a zero."""
    return all(_missing(row.get(m)) for m in TASK_METRICS[row["task"]])


def footer_text(
    corpus: str,
    profile: str,
    seeds: Sequence[int],
    commit: str,
    synthetic: bool,
    *,
    baseline: str | None = None,
    n_bootstrap: int | None = None,
    degenerate: Sequence[str] = (),
    readings: Sequence[str] = (),
    weights: Sequence[str] = (),
    recognition: bool = False,
    translation: bool = True,
    probe: Sequence[str] = (),
    data: Sequence[str] = (),
    methods: Sequence[str] = (),
    isolated: str = "synth",
) -> str:
    """The footer every table carries: data, profile, seeds, metric conventions, commit, the
    `reading` of the table and what `degenerate_outputs` found. `data`: the sources' frame rates
    and mixing (reading.data_lines)."""
    seed_list = ", ".join(str(s) for s in seeds)
    vs = f"the baseline row ({baseline})" if baseline else "the baseline row"
    samples = f"{n_bootstrap} resamples, " if n_bootstrap else ""
    lines = [
        f"Corpus: {corpus}. Profile: {profile}. Seeds: {seed_list} "
        "(cells: mean ± sample std over seeds, ddof 1; std 0 with one seed). "
        f"Commit: {commit}.",
        "",
        "BLEU-1..4: sacrebleu corpus BLEU, cumulative BLEU-n, whitespace tokens, lowercased, "
        "no smoothing. ROUGE-L: sentence-level LCS F-measure (beta 1.2) averaged, x100. "
        "Text-to-sign BLEU/ROUGE-L score back-translations of the generated keypoints. "
        "MPJPE / DTW-MJE: in shoulder-length units (lower is better). "
        f"p (BLEU-4): paired bootstrap on BLEU-4 vs {vs} of the same task "
        f"(sacrebleu, {samples}seeds paired and their outputs concatenated).",
    ]
    if not translation:  # a recognition table: no BLEU, MPJPE or BLEU-4 test to explain
        lines = lines[:1]
    if data:
        lines[1:1] = ["", *data]
    if recognition:
        signs = ("the unseen isolated signs (synthetic)" if isolated == "synth"
                 else f"the isolated signs of {isolated} (recognition.source)")
        lines += ["", f"Top-1/5/10: percent of test clips of {signs} whose gloss is among the k "
                      "highest logits. p (Top-1): paired bootstrap on per-clip top-1 correctness vs the baseline row "
                      "(seeds paired and concatenated)."]
    # The baselines' rows (`methods`: what they read and how they are weighted) one paragraph each.
    for block in (probe, *([m] for m in methods), weights, readings):
        lines += [""] + list(block) if block else []
    if degenerate:
        lines += [""] + [f"**{line}**" for line in degenerate]
    if synthetic:
        lines += ["", f"**{SYNTHETIC_LINE}**"]
    return "\n".join(lines)
