"""What a table says in words: which differences are significant (the reading) and what each
variant's SignMAE loss weighted the parts with (section 3.3, eq. 1-2: the weights it trained with),
for the footer of every ablation table (harness/report.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.report import _LABELS, P_METRIC, TASKS, _TASK_NAMES, _missing

# ----------------------------------------------------------------------------- the reading


ALPHA = 0.05  # the significance level the reading uses


def reading(rows: Sequence[Mapping[str, Any]], baseline: str, alpha: float = ALPHA) -> list[str]:
    """One sentence per task: each variant's BLEU-4 (recognition: Top-1) difference to the baseline
    row and whether its paired-bootstrap p is below `alpha`. No sentence for a task without a
    baseline row or others."""
    out = []
    for task in TASKS:
        m = P_METRIC[task]
        base = next((r for r in rows if r["task"] == task and r["variant"] == baseline), None)
        others = [r for r in rows if r["task"] == task and r["variant"] != baseline and not _missing(r.get(f"p_{m}"))]
        if base is None or not others:
            continue
        parts = []
        for r in others:
            p, diff = float(r[f"p_{m}"]), float(r[m]) - float(base[m])
            shown = "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
            verdict = "significant" if p < alpha else "not significant"
            parts.append(f"{r['variant']} {diff:+.2f} ({shown}, {verdict})")
        sig = [r["variant"] for r in others if float(r[f"p_{m}"]) < alpha]
        summary = (f"{', '.join(sig)} {'differs' if len(sig) == 1 else 'differ'} from {baseline} at p < {alpha}"
                   if sig else f"no variant differs from {baseline} at p < {alpha}")
        out.append(f"Reading, {_TASK_NAMES[task]} {_LABELS[m]} against {baseline}: {'; '.join(parts)}: {summary}.")
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
        for g in ("face", "hands"):
            if f"{g}_q50" not in w:
                continue
            spread = "" if w[f"{g}_q25"] == w[f"{g}_q75"] else f" [{w[f'{g}_q25']:.2f}, {w[f'{g}_q75']:.2f}]"
            groups.append(f"{g} {w[f'{g}_q50']:.2f}{spread}")
        extra = ""
        if w.get("floored", 0) or w.get("degenerate", 0):
            extra = (f", eq. 1 floored in {100 * w.get('floored', 0):.0f}% of segments and undefined "
                     f"(uniform weights) in {100 * w.get('degenerate', 0):.0f}%")
        parts.append(f"{variant}: {', '.join(groups)}{extra}")
    lines = ["Pose weights of the SignMAE loss (body = 1; median [quartiles] over the last pretraining epoch's "
             "segments, averaged over seeds): " + "; ".join(parts) + "."]
    same: dict[tuple, list[str]] = {}
    for variant, w in found.items():
        same.setdefault(tuple(round(w.get(k, 0.0), 4) for k in ("face_q25", "face_q50", "face_q75", "hands_q25",
                                                                "hands_q50", "hands_q75")), []).append(variant)
    for members in same.values():
        if len(members) > 1:
            lines.append(f"**{' and '.join(members)} trained with the same weights on this data: their rows differ "
                         "only by nondeterminism.**")
    return lines
