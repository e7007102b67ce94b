"""A user's isolated signs as the recognition stage's corpus (paper section 5, table 3 and figure
5: recognition of the isolated signs of an unseen dataset, KSL-Guide-Word there).

Any keypoint source the harness reads (`pose:DIR`, `openpose:DIR`, `npz:FILE`, `pt:DIR`; one sign
per sequence) plus a label table (`recognition.source`, `recognition.labels`). The table:

- UTF-8 text, tab separated, one header line naming the columns NAME and LABEL, and optionally
  SPLIT (in any order; other columns are ignored); then one row per sequence; blank lines skipped.
- NAME: the sequence's name as its reader names it: a .pose file's stem, an OpenPose sentence
  folder's name, an npz archive's `names` entry, a PT `.files` line.
- LABEL: the sign's gloss, its class (the cell stripped of surrounding spaces, compared as written).
- SPLIT: train, dev or test. Without the column (or with an empty cell) a sequence stays in the
  split its source gives it (train/dev/test subfolders; a folder without them is all train).

Every sequence of the source needs a row and every row a sequence (a misspelt NAME would silently
drop a sign). The recognition stage trains on train, keeps the epoch with the best dev Top-1 and
scores test, so the train split needs at least 2 classes, every class a train and a test example,
and dev at least one example. Each violation is one DataError line naming the table, the line
where there is one, and what is expected. The source's own sentence table is not read
(ReadOptions.sentences): the label table may be the .tsv beside the files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from harness.data.record import SPLITS, Corpus, DataError, SignSequence

COLUMNS = "NAME and LABEL (and optionally SPLIT)"
MIN_CLASSES = 2


@dataclass(frozen=True)
class Row:
    label: str
    split: str | None  # None: the source's own split
    line: int


def read_label_table(path: Path) -> dict[str, Row]:
    """NAME -> Row of a label table (module docstring); a malformed table raises DataError."""
    path = Path(path)
    if not path.is_file():
        what = "does not exist" if not path.exists() else "is not a file"
        raise DataError(f"{path}: the label table {what}; expected a tab-separated file with columns {COLUMNS} "
                        "(recognition.labels)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the label table ({err}); expected UTF-8 text") from None
    if not lines or not lines[0].strip():
        raise DataError(f"{path}, line 1: no header; expected the tab-separated columns {COLUMNS}")
    header = [h.strip() for h in lines[0].split("\t")]
    for col in ("NAME", "LABEL"):
        if col not in header:
            raise DataError(f"{path}, line 1: no {col} column in the tab-separated header {header}; "
                            f"expected {COLUMNS}")
    i_name, i_label = header.index("NAME"), header.index("LABEL")
    i_split = header.index("SPLIT") if "SPLIT" in header else None
    rows: dict[str, Row] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split("\t")]
        if len(cells) != len(header):
            raise DataError(f"{path}, line {lineno}: {len(cells)} tab-separated cells; expected {len(header)} "
                            "as in the header")
        name, label = cells[i_name], cells[i_label]
        if not name:
            raise DataError(f"{path}, line {lineno}: empty NAME; expected the name of a sequence of the source")
        if name in rows:
            raise DataError(f"{path}, line {lineno}: NAME {name!r} again (first on line {rows[name].line}); "
                            "expected one row per sequence")
        if not label:
            raise DataError(f"{path}, line {lineno}: empty LABEL for {name!r}; expected the sign's gloss")
        split = cells[i_split] if i_split is not None else ""
        if split and split not in SPLITS:
            raise DataError(f"{path}, line {lineno}: SPLIT {split!r} for {name!r}; expected train, dev or test "
                            "(or empty: the source's own split)")
        rows[name] = Row(label, split or None, lineno)
    if not rows:
        raise DataError(f"{path}: no rows under the header; expected one row per sequence of the source")
    return rows


def apply_labels(corpus: Corpus, rows: dict[str, Row], path: Path, spec: str) -> Corpus:
    """The source's sequences with their LABEL as text and gloss, in their SPLIT. Raises DataError
    for a row without a sequence, a sequence without a row, or a name the source has twice."""
    where: dict[str, tuple[str, SignSequence]] = {}
    for split in SPLITS:
        for seq in corpus.get(split, []):
            if seq.name in where:
                raise DataError(f"{spec}: sequence name {seq.name!r} is in {where[seq.name][0]} and {split}; "
                                "expected unique names, which the label table's NAME refers to")
            where[seq.name] = (split, seq)
    for name, row in rows.items():
        if name not in where:
            first = next(iter(where), None)
            raise DataError(f"{path}, line {row.line}: NAME {name!r} is not a sequence of {spec}; expected the name "
                            f"of one of its {len(where)} sequences (e.g. {first!r})")
    out: Corpus = {split: [] for split in SPLITS}
    for name, (split, seq) in where.items():
        if name not in rows:
            file = seq.meta.get("file") or seq.meta.get("folder") or name
            raise DataError(f"{path}: no row for {file} (sequence {name!r}); expected a NAME row with its LABEL "
                            f"for each of the {len(where)} sequences of {spec}")
        row = rows[name]
        meta = {k: v for k, v in seq.meta.items() if k != "unlabelled"}
        out[row.split or split].append(dataclasses.replace(seq, text=row.label, gloss=row.label, meta=meta))
    return out


def check_classes(corpus: Corpus, rows: dict[str, Row], path: Path, note: str = "") -> None:
    """DataError unless train has at least MIN_CLASSES classes, every class a train and a test
    example, and dev an example; `note` is appended (e.g. what preprocessing dropped)."""
    labels = {split: {s.text for s in corpus.get(split, [])} for split in SPLITS}
    first_line: dict[str, int] = {}
    for row in sorted(rows.values(), key=lambda r: r.line):
        first_line.setdefault(row.label, row.line)
    if len(labels["train"]) < MIN_CLASSES:
        found = ", ".join(repr(x) for x in sorted(labels["train"])) or "none"
        raise DataError(f"{path}: {len(labels['train'])} class(es) in the train split ({found}){note}; expected "
                        f"at least {MIN_CLASSES} LABEL values with train examples to tell apart")
    for label in sorted(set().union(*labels.values()), key=lambda g: first_line.get(g, 0)):
        for split in ("train", "test"):
            if label not in labels[split]:
                raise DataError(f"{path}, line {first_line.get(label, 0)}: class {label!r} has no {split} example"
                                f"{note}; expected at least one sequence of each LABEL in the {split} split")
    if not corpus.get("dev"):
        raise DataError(f"{path}: no dev example{note}; expected sequences in the dev split (recognition keeps "
                        "the epoch with the best dev Top-1)")
