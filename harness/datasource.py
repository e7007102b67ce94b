"""A data source spec resolved against the experiment config, and what every stage asks of a corpus.

`harness.data` reads sources without knowing the config (it must stay usable on its own); here a
spec meets the config: the synthetic generator's parameters, the source's identity for cache keys,
loading and preprocessing (appendix B.1), and the checks a prepared corpus gets. The prepare stage,
the drivers' check before any trial, pretraining's extra source and `python -m harness.inspect_data`
all go through these functions.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from harness.config import ConfigError, ExperimentConfig, load_profile
from harness.data.labels import apply_labels, check_classes, read_label_table
from harness.data.prepare import preprocess_corpus
from harness.data.record import Corpus, DataError, ReadOptions, SignSequence
from harness.data.sources import Source, load_source, parse_source, source_files
from harness.file_hashes import file_hashes


def synth_params(source: Source, cfg: ExperimentConfig) -> dict:
    """The generator's parameters of a synthetic source: `synth` and `synth@SEED` take this
    config's `data.synth` (with another seed), `synth:PROFILE` that profile's."""
    if source.profile:
        try:
            params = dataclasses.asdict(load_profile(source.profile).data.synth)
        except ConfigError as err:
            raise DataError(f"source {source.spec}: {err}") from None
    else:
        params = dataclasses.asdict(cfg.data.synth)
    if source.seed is not None:
        params["seed"] = source.seed
    return params


def source_identity(spec: str, cfg: ExperimentConfig) -> dict:
    """What a source's content depends on: the generator's parameters, or the files' content
    hashes (harness.file_hashes: computed once per file, remembered by its stat)."""
    source = parse_source(spec)
    if source.kind == "synth":
        return {"synth": synth_params(source, cfg)}
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
    params = synth_params(source, cfg) if source.kind == "synth" else None
    return load_source(source, params, problems, read_options(cfg))


def prepare_corpus(spec: str, cfg: ExperimentConfig) -> tuple[Corpus, dict]:
    """Load and preprocess a source: the corpus and the per-split report `inspect` prints."""
    return preprocess_corpus(load_raw(spec, cfg), cfg.data.noise_threshold, timeline_options(cfg))


def isolated_identity(spec: str, labels: str, cfg: ExperimentConfig) -> dict:
    """What a user isolated-sign source's corpus depends on: its files, its label table's content and
    the data settings that change what is read."""
    source = parse_source(spec)
    if source.kind == "synth":
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
