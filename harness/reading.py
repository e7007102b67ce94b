"""What a table says in words: which differences are significant (the reading) and what each
variant's SignMAE loss weighted the parts with (section 3.3, eq. 1-2: the weights it trained with),
and what the baselines' rows are (tables 1, 2, 5), for the footer of every ablation table
(harness/report.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.report import _LABELS, P_METRIC, TASKS, _TASK_NAMES, _missing, not_applicable

# ----------------------------------------------------------------------------- the reading


ALPHA = 0.05  # the significance level the reading uses


def reading(rows: Sequence[Mapping[str, Any]], baseline: str, alpha: float = ALPHA,
            compare_to: Mapping[str, str] | None = None) -> list[str]:
    """One sentence per task and baseline row: each variant's BLEU-4 (recognition: Top-1)
    difference to its baseline row (`baseline`, or the row `compare_to` names for it) and whether
    its paired-bootstrap p is below `alpha`. No sentence for a baseline row without others."""
    compare_to = compare_to or {}
    out = []
    for task in TASKS:
        m = P_METRIC[task]
        against_of = {r["variant"]: compare_to.get(r["variant"], baseline) for r in rows if r["task"] == task}
        for against in dict.fromkeys(against_of.values()):
            base = next((r for r in rows if r["task"] == task and r["variant"] == against), None)
            others = [r for r in rows if r["task"] == task and against_of[r["variant"]] == against
                      and r["variant"] != against and not _missing(r.get(f"p_{m}"))]
            if base is None or not others:
                continue
            parts = []
            for r in others:
                p, diff = float(r[f"p_{m}"]), float(r[m]) - float(base[m])
                shown = "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
                verdict = "significant" if p < alpha else "not significant"
                parts.append(f"{r['variant']} {diff:+.2f} ({shown}, {verdict})")
            sig = [r["variant"] for r in others if float(r[f"p_{m}"]) < alpha]
            summary = (f"{', '.join(sig)} {'differs' if len(sig) == 1 else 'differ'} from {against} at p < {alpha}"
                       if sig else f"no variant differs from {against} at p < {alpha}")
            out.append(f"Reading, {_TASK_NAMES[task]} {_LABELS[m]} against {against}: {'; '.join(parts)}: {summary}.")
    return out


# ----------------------------------------------------------------------------- the pose weights


def _weights_of(metrics: Sequence[Mapping[str, float]]) -> dict[str, float] | None:
    """A variant's pretraining weight statistics (pretrain/w_*), averaged over its seeds."""
    keys = sorted({k for m in metrics for k in m if k.startswith("pretrain/w_")})
    if not keys or any(k not in m for m in metrics for k in keys):
        return None
    return {k[len("pretrain/w_"):]: sum(float(m[k]) for m in metrics) / len(metrics) for k in keys}


def weights_text(pretrain_metrics: Mapping[str, Sequence[Mapping[str, float]]]) -> list[str]:
    """What each variant's SignMAE loss weighted its parts with ({variant: its seeds' pretrain
    metrics}), and which variants trained with the same weights on this data."""
    found = {v: w for v, ms in pretrain_metrics.items() if (w := _weights_of(ms)) is not None}
    if not found:
        return []
    parts = []
    for variant, w in found.items():
        groups = []
        for g in ("body", "face", "hands"):  # the body only where it did not weigh 1 (pretrain.weight_norm)
            if f"{g}_q50" not in w:
                continue
            spread = "" if w[f"{g}_q25"] == w[f"{g}_q75"] else f" [{w[f'{g}_q25']:.2f}, {w[f'{g}_q75']:.2f}]"
            groups.append(f"{g} {w[f'{g}_q50']:.2f}{spread}")
        extra = ""
        if w.get("floored", 0) or w.get("degenerate", 0):
            extra = (f", eq. 1 floored in {100 * w.get('floored', 0):.0f}% of segments and undefined "
                     f"(uniform weights) in {100 * w.get('degenerate', 0):.0f}%")
        parts.append(f"{variant}: {', '.join(groups)}{extra}")
    body = "body = 1 unless stated" if any("body_q50" in w for w in found.values()) else "body = 1"
    lines = [f"Pose weights of the SignMAE loss ({body}; median [quartiles] over the last pretraining epoch's "
             "segments, averaged over seeds): " + "; ".join(parts) + "."]
    same: dict[tuple, list[str]] = {}
    for variant, w in found.items():
        same.setdefault(tuple(round(w.get(f"{g}_{q}", 1.0 if g == "body" else 0.0), 4) for g in ("body", "face", "hands")
                              for q in ("q25", "q50", "q75")), []).append(variant)
    for members in same.values():
        if len(members) > 1:
            lines.append(f"**{' and '.join(members)} trained with the same weights on this data: their rows differ "
                         "only by nondeterminism.**")
    return lines


# ----------------------------------------------------------------------------- the representation probe

PROBE_COLUMNS = ("knn_acc", "pair_hand", "pair_face", "pair_both")  # harness/stages/probe.py
_PROBE_LABELS = {"knn_acc": "k-NN gloss acc.", "pair_hand": "hand pairs", "pair_face": "face pairs",
                 "pair_both": "hand+face pairs"}


def probe_columns(pretrain_metrics: Mapping[str, Sequence[Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """{variant: {"probe_knn_acc": mean, "probe_knn_acc_std": std over seeds, ...}} from its seeds'
    pretrain metrics (probe/*): the extra columns every row of the variant gets. A measure that
    some seed lacks is left out."""
    from harness.report import _mean_std
    out: dict[str, dict[str, float]] = {}
    for variant, ms in pretrain_metrics.items():
        cols: dict[str, float] = {}
        for c in PROBE_COLUMNS:
            values = [m.get(f"probe/{c}") for m in ms]
            if values and all(v is not None for v in values):
                cols[f"probe_{c}"], cols[f"probe_{c}_std"] = _mean_std([float(v) for v in values])
        if cols:
            out[variant] = cols
    return out


def probe_text(columns: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The probe's columns as a markdown table for the footer (one row per variant)."""
    if not columns:
        return []
    shown = [c for c in PROBE_COLUMNS if any(f"probe_{c}" in v for v in columns.values())]
    lines = ["Representation probe of each variant's pretraining (1-NN of z on the corpus's own gloss clips: dev and "
             "test clips against train clips, %; a minimal pair's clips against that pair's train clips only, "
             "chance 50):", "",
             "| Variant | " + " | ".join(_PROBE_LABELS[c] for c in shown) + " |", "|---|" + "---:|" * len(shown)]
    for variant, cols in columns.items():
        cells = [f"{cols[f'probe_{c}']:.1f} ± {cols[f'probe_{c}_std']:.1f}" if f"probe_{c}" in cols else "–"
                 for c in shown]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return lines


# ----------------------------------------------------------------------------- the baselines


# What the footer says of each baseline's rows (harness/stages/translate.py and text2sign.py).
_METHOD_NOTES = {
    "translation": "Joint-SLT, Joint-SLT w/ glosses and ConSLT read the prepared keypoints directly (no SignMAE), "
                   "sized by the sign2text keys and decoded by the same beam search; their none / FPW / APW rows "
                   "weight their INPUT: each point's coordinates times its eq. 2 weight (APW: eq. 1 per "
                   "window of the sequence), since they have no keypoint loss for eq. 2 to weight.",
    "production": "PT and NSLP-G generate keypoints from text directly (gloss-free, no extra ground-truth data at "
                  "inference), sized by the text2sign keys; their pose regression losses take eq. 2's none / FPW / "
                  "APW weights as SignMAE's does; their BLEU / ROUGE-L come from the same back-translator as every "
                  "text-to-sign row.",
}


def methods_text(rows: Sequence[Mapping[str, Any]], methods: Mapping[str, str]) -> list[str]:
    """Footer paragraphs on the baselines the table has rows of, and its not-applicable rows."""
    present = {methods.get(r["variant"], "uniglor") for r in rows}
    lines = []
    if present & {"joint_slt", "joint_slt_gloss", "conslt"}:
        lines.append(_METHOD_NOTES["translation"])
    if present & {"pt", "nslp_g"}:
        lines.append(_METHOD_NOTES["production"])
    na = [f"{r['variant']} ({_TASK_NAMES[r['task']]})" for r in rows if not_applicable(r)]
    if na:
        lines.append(f"n/a: {', '.join(na)}: not applicable to this source (it has no gloss annotations for the "
                     "CTC loss).")
    return lines


def data_lines(trials: Sequence[tuple[str, str]]) -> list[str]:
    """The footer's data lines from (variant, its data in words) per trial: one line when every
    variant read the same, else one per group of variants that did (e.g. table 4d's second corpus)."""
    groups: dict[str, list[str]] = {}
    for variant, text in trials:
        if variant not in groups.setdefault(text, []):
            groups[text].append(variant)
    if len(groups) == 1:
        return [f"Data (frame rate, as windowed): {next(iter(groups))}"]
    return [f"Data of {', '.join(variants)} (frame rate, as windowed): {text}" for text, variants in groups.items()]
