"""A data source spec resolved against the experiment config, and what every stage asks of a corpus.

`harness.data` reads sources without knowing the config (it must stay usable on its own); here a
spec meets the config: the synthetic generator's parameters, the source's identity for cache keys,
loading and preprocessing (appendix B.1), the checks a prepared corpus gets, and how a second
corpus for pretraining (`pretrain.extra_source`, table 4d) is made one input with the main one. The
prepare stage, the drivers' check before any trial, pretraining's extra source and
`python -m harness.inspect_data` all go through these functions; what they did is said in words
(`rate_text`, `Mixing.notes`) in `inspect` and in every ablation table's footer.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.config import ConfigError, ExperimentConfig, load_profile
from harness.data.labels import apply_labels, check_classes, read_label_table
from harness.data.parts import drop_parts
from harness.data.prepare import drop_z, preprocess_corpus
from harness.data.record import Corpus, DataError, ReadOptions, SignSequence
from harness.data.sources import SYNTH_KINDS, Source, load_source, parse_source, source_files
from harness.file_hashes import file_hashes
from models.layout import CANONICAL


def synth_params(source: Source, cfg: ExperimentConfig) -> dict:
    """The generator's parameters of a synthetic source: `synth` and `synth@SEED` take this
    config's `data.synth` (with another seed), `synth:PROFILE` that profile's. The second language
    (`synth2`, `synth2@SEED`, `synth2:PROFILE`) takes the same with `data.synth2.train_scale` times
    the train sentences (How2Sign's size beside PHOENIX14T's)."""
    if source.profile:
        try:
            data = load_profile(source.profile).data
        except ConfigError as err:
            raise DataError(f"source {source.spec}: {err}") from None
    else:
        data = cfg.data
    params = dataclasses.asdict(data.synth)
    if source.seed is not None:
        params["seed"] = source.seed
    if source.kind == "synth2":
        params["train"] = max(1, round(params["train"] * data.synth2.train_scale))
    return params


def absolute_spec(spec: str) -> str:
    """A file-based source spec with its path made absolute against this process's working folder:
    Ray runs each trial in its own folder, where `pt:relative/dir` names nothing. Lexical (no
    symlinks followed), so an absolute spec is returned as it is."""
    if not spec.strip():
        return spec
    source = parse_source(spec)
    if source.kind in SYNTH_KINDS:
        return spec
    return f"{source.kind}:{os.path.abspath(source.path)}"


def absolute_sources(cfg: ExperimentConfig) -> ExperimentConfig:
    """`cfg` with data.source and pretrain.extra_source absolute: the driver calls it before a
    config leaves for a trial."""
    return dataclasses.replace(
        cfg, data=dataclasses.replace(cfg.data, source=absolute_spec(cfg.data.source)),
        pretrain=dataclasses.replace(cfg.pretrain, extra_source=absolute_spec(cfg.pretrain.extra_source)))


def source_identity(spec: str, cfg: ExperimentConfig) -> dict:
    """What a source's content depends on: the generator's parameters, or the files' content
    hashes (harness.file_hashes: computed once per file, remembered by its stat)."""
    source = parse_source(spec)
    if source.kind in SYNTH_KINDS:  # {"synth": ...} or {"synth2": ...}: the two languages never share a key
        return {source.kind: synth_params(source, cfg)}
    hashes = file_hashes(source_files(source))
    return {"spec": spec, "files": sorted(hashes.items())}


def read_options(cfg: ExperimentConfig) -> ReadOptions:
    return ReadOptions(min_confidence=cfg.data.min_confidence, unlabelled=cfg.data.unlabelled)


def timeline_options(cfg: ExperimentConfig) -> dict:
    """harness.data.timeline.conform_corpus's settings: rate, gaps and coordinates."""
    d = cfg.data
    return {"fps": d.fps, "gaps": d.gaps, "max_gap": d.max_gap, "dims": d.dims}


def load_raw(spec: str, cfg: ExperimentConfig, problems: list[str] | None = None) -> Corpus:
    source = parse_source(spec)
    params = synth_params(source, cfg) if source.kind in SYNTH_KINDS else None
    return load_source(source, params, problems, read_options(cfg))


def prepare_corpus(spec: str, cfg: ExperimentConfig) -> tuple[Corpus, dict]:
    """Load and preprocess a source: the corpus and the per-split report `inspect` prints."""
    return preprocess_corpus(load_raw(spec, cfg), cfg.data.noise_threshold, timeline_options(cfg))


def isolated_identity(spec: str, labels: str, cfg: ExperimentConfig) -> dict:
    """What a user isolated-sign source's corpus depends on: its files, its label table's content and
    the data settings that change what is read."""
    source = parse_source(spec)
    if source.kind in SYNTH_KINDS:
        raise ConfigError(f"recognition.source {spec!r}: expected synth alone (the generated unseen corpus) or a "
                          "keypoint source pt:DIR, openpose:DIR, pose:FILE_OR_DIR, npz:FILE")
    read_label_table(Path(labels))  # a missing or malformed table fails here, before any trial
    return {**source_identity(spec, cfg), "labels": sorted(file_hashes([Path(labels)]).items()),
            **timeline_options(cfg), "min_confidence": cfg.data.min_confidence}


def prepare_isolated(spec: str, labels: str, cfg: ExperimentConfig) -> tuple[Corpus, dict]:
    """A user isolated-sign source (harness/data/labels.py) read, labelled from its table and
    preprocessed like every source (appendix B.1); its classes checked after preprocessing too."""
    rows = read_label_table(Path(labels))
    options = dataclasses.replace(read_options(cfg), unlabelled=True, sentences=False)
    labelled = apply_labels(load_source(parse_source(spec), None, [], options), rows, Path(labels), spec)
    check_classes(labelled, rows, Path(labels))
    try:
        corpus, report = preprocess_corpus(labelled, cfg.data.noise_threshold, timeline_options(cfg))
    except DataError as err:
        raise DataError(f"recognition.source {spec}: {err}") from None
    dropped = sum(map(len, labelled.values())) - sum(map(len, corpus.values()))
    check_classes(corpus, rows, Path(labels), f" after preprocessing dropped {dropped} sequence(s)" if dropped else "")
    return corpus, report


def check_window(corpus: Corpus, window: int, source: str) -> None:
    """A window longer than the shortest sequence is a user error, named with the sequence."""
    for split, seqs in corpus.items():
        if not seqs:
            continue
        shortest = min(seqs, key=lambda s: s.num_frames)
        if shortest.num_frames < window:
            raise ConfigError(
                f"pretrain.window ({window}) is longer than the shortest {split} sequence of {source} "
                f"({shortest.name}: {shortest.num_frames} frames after preprocessing); use a smaller window")


def present_points(seqs: list[SignSequence]) -> np.ndarray:
    """(V,) bool: points present in at least half the frames of a split (e.g. no face in PHOENIX14T)."""
    masks = np.concatenate([s.mask for s in seqs], axis=0)  # (sum T, V)
    return masks.mean(axis=0) >= 0.5


def coords_of(corpus: Corpus) -> int | None:
    """C of a corpus (one for all its sequences after preprocessing); None when it has none."""
    return next((int(s.keypoints.shape[-1]) for seqs in corpus.values() for s in seqs), None)


def rate_text(corpus: Corpus, fps: float) -> str:
    """In words, how a prepared corpus's frame rate came to `data.fps` (the rate its windows count in)."""
    seqs = [s for split in corpus.values() for s in split]
    recorded = sorted({float(s.meta.get("fps_source", s.meta["fps"])) for s in seqs if s.meta.get("fps") is not None})
    resampled = sum("fps_source" in s.meta for s in seqs)
    unknown = sum(s.meta.get("fps") is None for s in seqs)
    said = []
    if recorded:
        rates = ", ".join(f"{r:g}" for r in recorded)
        said.append(f"recorded at {rates} fps, {resampled} of {len(seqs)} sequence(s) resampled to data.fps {fps:g}"
                    if resampled else f"recorded at {rates} fps = data.fps {fps:g} (not resampled)")
    if unknown:
        said.append(f"{unknown} sequence(s) with no recorded rate, taken to be at data.fps {fps:g}")
    return "; ".join(said) or "no sequences"


def shown_parts(seqs: list[SignSequence]) -> list[str]:
    """The layout's parts with a point present in some frame (PHOENIX14T skeletons never show the face)."""
    return [part for part, idx in CANONICAL.parts.items() if any(s.mask[:, list(idx)].any() for s in seqs)]


@dataclass(frozen=True)
class Mixing:
    """How the second pretraining corpus and the main one become one input: one C (z dropped from
    the 3D one when the other is 2D: a model has one input width) and one layout (both are in the
    canonical layout; a part the main corpus never shows is masked in the extra one too, so SignMAE
    does not learn to reconstruct what no later stage sees). `notes` say what was done."""

    coords: int
    drop_main_z: bool  # the main corpus loses z in every stage of the trial, not only in pretraining
    drop_extra_z: bool
    keep_parts: tuple[str, ...]  # the parts the extra corpus keeps
    notes: tuple[str, ...]

    def main(self, corpus: Corpus) -> Corpus:
        return drop_z(corpus) if self.drop_main_z else corpus

    def extra(self, corpus: Corpus) -> list[SignSequence]:
        """The extra corpus's train split as pretraining gets it."""
        train = {"train": corpus["train"]}
        return drop_parts(drop_z(train) if self.drop_extra_z else train, self.keep_parts)["train"]


def mixing(main: Corpus, extra: Corpus, main_spec: str, extra_spec: str, parts: tuple[str, ...]) -> Mixing:
    """How `extra` (pretraining only, its train split) is mixed with `main` (see Mixing); `parts`:
    `pretrain.parts`, what the main corpus keeps."""
    if not extra.get("train"):
        raise DataError(f"pretrain.extra_source {extra_spec}: no train sequences after preprocessing; expected a "
                        "train split to pretrain on (run `python -m harness.inspect_data SOURCE` to see why)")
    c_main, c_extra = coords_of(main), coords_of({"train": extra["train"]})
    coords = min(c_main, c_extra)
    if c_main > coords:
        dims = (f"z dropped from {main_spec} (3D) to match {extra_spec}'s 2D, in every stage of this trial "
                "(set data.dims=2 in every variant to compare like with like)")
    elif c_extra > coords:
        dims = f"z dropped from {extra_spec} (3D) to match {main_spec}'s 2D"
    else:
        dims = f"both {'2D (x, y)' if coords == 2 else '3D (x, y, z)'}, nothing dropped"
    shown_main, shown_extra = shown_parts([s for seqs in main.values() for s in seqs]), shown_parts(extra["train"])
    keep = tuple(p for p in parts if p in shown_main)
    masked = [p for p in shown_extra if p in parts and p not in shown_main]
    lacking = [p for p in shown_main if p in parts and p not in shown_extra]
    layout = f"layout: both read into the canonical {CANONICAL.num_points}-point layout"
    if masked:
        layout += f"; {', '.join(masked)} masked in {extra_spec} because {main_spec} never shows it"
    if lacking:
        layout += f"; {', '.join(lacking)} absent from {extra_spec} (masked there, never zero-filled)"
    if not (masked or lacking):
        layout += f", the same parts shown ({', '.join(p for p in shown_main if p in parts)})"
    return Mixing(coords, c_main > coords, c_extra > coords, keep, (dims, layout))


def data_text(spec: str, corpus: Corpus, fps: float, extra: str = "", extra_corpus: Corpus | None = None,
              mixed: Mixing | None = None) -> str:
    """One trial's data in words (the table footer): each source's frame rate and how they were mixed."""
    text = f"{spec}: {rate_text(corpus, fps)}."
    if extra and extra_corpus is not None and mixed is not None:
        text += (f" Pretraining also on the train split of {extra}: {rate_text({'train': extra_corpus['train']}, fps)}; "
                 f"mixed: {'; '.join(mixed.notes)}.")
    return text
