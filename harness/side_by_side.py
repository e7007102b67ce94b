"""Every row of a study side by side on the same test sentences (paper section 7, tables 6 and 8,
figure 4): `translations.md` (the reference and each row's hypothesis, the correctly translated
words marked) and, with text-to-sign, `skeletons.png` (uniformly sampled frames, ground truth above
each row's output).

The sentences are `results.sample_indices` of the test split, the same for every row; the rows are
one stated seed's trials (the lowest seed that finished). A hypothesis word is "correct" when it is
a clipped unigram match of the reference, as BLEU-1 counts them (the paper's "correctly translated
1-grams"): on the lowercased whitespace tokens the metrics score, each reference word matches at
most one hypothesis word, taken left to right. The paper also marks semantically correct words
(table 8, in green); that needs a judgement no rule makes, so it is not attempted here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.io import atomic_write
from harness.results import PoseSample, TrialResult, sample_indices

TRANSLATIONS = "translations.md"
SKELETONS = "skeletons.png"
_TITLES = {"sign2text": "Sign-to-text (SLT): each row's translation of the test keypoints",
           "text2sign": "Text-to-sign (SLP): the judge's back-translation of each row's generated keypoints"}
_MARKDOWN_SPECIAL = set("\\`*_[]<>|~")  # what would change a table cell's inline text


@dataclass(frozen=True)
class Row:
    """One row of the study at the stated seed: its trial's result and pose samples, if it finished."""

    variant: str
    key: str  # the trial's key ("apw-seed0")
    result: TrialResult | None
    samples: list[PoseSample] | None = None
    # The tasks its trial runs (a baseline's: only its own, harness.stages.trial_tasks); None: every
    # task of the study. A row is shown only in the sections of its tasks.
    tasks: tuple[str, ...] | None = None

    def runs(self, task: str) -> bool:
        return self.tasks is None or task in self.tasks


def _escape(word: str) -> str:
    """A word as literal markdown text (a table cell's `|`, emphasis marks, ...)."""
    return "".join(f"\\{c}" if c in _MARKDOWN_SPECIAL else c for c in word)


def mark_words(hypothesis: str, reference: str) -> tuple[str, int, int]:
    """The hypothesis as markdown with its correct words in bold, the number correct and of words.

    Correct: the clipped unigram matches of BLEU-1 on lowercased whitespace tokens (each reference
    word matches at most one hypothesis word, left to right)."""
    words = hypothesis.split()
    left = Counter(reference.lower().split())
    marked, correct = [], 0
    for word in words:
        if left[word.lower()] > 0:
            left[word.lower()] -= 1
            correct += 1
            marked.append(f"**{_escape(word)}**")
        else:
            marked.append(_escape(word))
    return " ".join(marked), correct, len(words)


def _cell(text: str) -> str:
    return " ".join(_escape(w) for w in text.split()) or "(empty)"


def _section(task: str, rows: Sequence[Row], indices: list[int], references: list[str]) -> list[str]:
    lines = [f"## {_TITLES[task]}", ""]
    for i in indices:
        lines += [f"### Test sentence {i + 1} of {len(references)}", "",
                  "| Row | Translation | Correct words |", "|---|---|---:|",
                  f"| reference | {_cell(references[i])} | |"]
        for row in (r for r in rows if r.runs(task)):
            split = row.result.tasks[task].test if row.result and task in row.result.tasks else None
            if split is None:
                lines.append(f"| {_escape(row.variant)} | (trial {_escape(row.key)} did not finish) | |")
            elif i >= len(split.references) or split.references[i] != references[i]:
                lines.append(f"| {_escape(row.variant)} | (not in this row's test split) | |")
            else:
                marked, correct, total = mark_words(split.hypotheses[i], references[i])
                lines.append(f"| {_escape(row.variant)} | {marked or '(empty)'} | {correct} of {total} |")
        lines.append("")
    return lines


def _references(task: str, rows: Sequence[Row]) -> list[str] | None:
    """The test references of the first row that ran `task` (the sentences every row is shown on)."""
    for row in rows:
        if row.result and task in row.result.tasks:
            return row.result.tasks[task].test.references
    return None


def translations_markdown(name: str, tasks: Sequence[str], rows: Sequence[Row], seed: int, corpus: str,
                          profile: str, synthetic: bool, skeletons: bool = False) -> str:
    """translations.md: a header saying what is shown and how "correct" is decided, then per task
    (sign-to-text, text-to-sign's back-translation) one table per test sentence."""
    present = [t for t in ("sign2text", "text2sign") if t in tasks and _references(t, rows)]
    refs = {t: _references(t, rows) for t in present}
    n = len(next(iter(refs.values()))) if refs else 0
    chosen = sample_indices(n)
    lines = [f"# {name}: translations side by side (tables 6 and 8 of the paper)", ""]
    if synthetic:
        lines += ["**Synthetic corpus: these sentences and translations come from the harness's generated "
                  "corpus, not PHOENIX14T or How2Sign.**", ""]
    lines += [f"Corpus: {corpus}. Profile: {profile}. Seed {seed} of every row (trials "
              f"{', '.join(r.key for r in rows)}). Test sentences {', '.join(str(i + 1) for i in chosen)} of {n}: "
              "evenly spaced over the test split, the same for every row.", "",
              "Correct words are in **bold**: a hypothesis word is correct when it matches a word of the reference "
              "that no earlier word of the hypothesis matched (lowercased whitespace tokens; each reference word "
              "matches at most one hypothesis word, left to right: the clipped 1-gram matches BLEU-1 counts). "
              "\"Correct words\" is that count of the hypothesis's words. Words that are only semantically right "
              "(the paper's green) are not marked: no rule decides them.", ""]
    if skeletons:
        lines += [f"The same sentences' keypoints, ground truth above each row's production: {SKELETONS}.", ""]
    for task in present:
        lines += _section(task, rows, [i for i in chosen if i < len(refs[task])], refs[task])
    return "\n".join(lines).rstrip() + "\n"


def strip_blocks(rows: Sequence[Row], references: list[str]) -> list:
    """Figure 4's blocks: per side-by-side test sentence, its ground truth and each row's production
    (a row without that sentence's sample, or whose sample is of another sentence, shows no output)."""
    from harness.figures import StripRow
    blocks = []
    for i in sample_indices(len(references)):
        found = {r.key: s for r in rows for s in (r.samples or []) if s.index == i and s.text == references[i]}
        if not found:
            continue
        truth = next(iter(found.values()))
        drawn = truth.mask.any(0)  # (V,): a point the source never has is not drawn in an output either
        outputs = [StripRow(r.variant, found[r.key].generated, np.broadcast_to(drawn, found[r.key].generated.shape[:2]))
                   if r.key in found else StripRow(r.variant, None) for r in rows if r.runs("text2sign")]
        blocks.append((f"test sentence {i + 1} of {len(references)}: {references[i]}",
                       StripRow("ground truth", truth.ground_truth, truth.mask), outputs))
    return blocks


def write(name: str, tasks: Sequence[str], rows: Sequence[Row], seed: int, out_dir: Path, corpus: str,
          profile: str) -> list[Path]:
    """translations.md (a study with sign-to-text or text-to-sign) and skeletons.png (text-to-sign
    trials that left pose samples) in out_dir; the paths written."""
    from harness.figures import plot_skeleton_strips
    from models.layout import CANONICAL
    if not any(t in tasks for t in ("sign2text", "text2sign")) or not any(r.result for r in rows):
        return []
    files = []
    references = _references("text2sign", rows) if "text2sign" in tasks else None
    blocks = strip_blocks(rows, references) if references else []
    if blocks:
        files.append(plot_skeleton_strips(blocks, CANONICAL.edges, out_dir / SKELETONS))
    markdown = translations_markdown(name, tasks, rows, seed, corpus, profile, corpus.startswith("synth"),
                                     skeletons=bool(blocks))
    atomic_write(out_dir / TRANSLATIONS, markdown)
    return [out_dir / TRANSLATIONS] + files
