"""The prepare stage (appendix B.1): a data source read into the canonical layout and preprocessed.

Its cache key is the source's identity (the synthetic corpus's parameters, or the content hash of
every file it reads) and the data settings that change what is read (noise threshold, rate,
gaps, coordinates, confidence, unlabelled sequences); `harness.datasource` does the reading, for
this stage and for `python -m harness.inspect_data` alike.

The one place where `pretrain.parts` applies (ablations/parts.yaml, the positive control): what
downstream stages receive, `Prepared.corpus`, has the other parts masked as absent (mask False,
coordinates 0: exactly what a source without those parts gives), so pretraining, both embeddings,
sign-to-text and text-to-sign (its targets, the points it is scored on, the points the judge is
told are present) see only those parts. `Prepared.full` keeps every part: the back-translator, the
judge of production, trains on it, so the judge is the same for every parts variant. The cached
entry is the full corpus (the key does not hash the parts); the view is made when it is handed on.

A second corpus for pretraining (`pretrain.extra_source`, table 4d) is read here too, so that both
are made one input (one C, one layout: harness.datasource.Mixing) before any stage sees either.

Sequences kept without a sentence (`data.unlabelled: true`) are for pretraining only: they are
not in `Prepared.corpus` (every stage that reads text sees only labelled ones) but in
`Prepared.unlabelled`, which pretraining adds to its training split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.config import ExperimentConfig
from harness.data.datasets import Vocabulary
from harness.data.parts import drop_parts
from harness.data.readers.npz import read_npz, write_npz
from harness.data.record import Corpus, DataError
from harness.datasource import Mixing, check_window, mixing, prepare_corpus, source_identity
from harness.stages.base import Stage, StageContext


@dataclass(frozen=True)
class Prepared:
    """What downstream stages get: the corpus with only `pretrain.parts` present (module doc), the
    vocabulary of its training texts, C, and the corpus with every part (the back-translator's)."""

    corpus: Corpus
    vocab: Vocabulary
    num_coords: int
    full: Corpus
    unlabelled: tuple = ()  # train sequences without a sentence, with only `pretrain.parts` present
    # `pretrain.extra_source`'s train split as pretraining gets it, and how it was mixed with this
    # corpus (harness.datasource.Mixing: when it is 2D and this one 3D, this one's z is dropped here,
    # for every stage, since one model reads both).
    extra: tuple = ()
    mixing: Mixing | None = None


def settings(cfg: ExperimentConfig) -> dict:
    d = cfg.data
    return {"source": source_identity(d.source, cfg), "noise_threshold": d.noise_threshold,
            "fps": d.fps, "gaps": d.gaps, "max_gap": d.max_gap, "dims": d.dims,
            "min_confidence": d.min_confidence, "unlabelled": d.unlabelled}


def _save(out: tuple[Corpus, dict], folder: Path) -> None:
    corpus, report = out
    write_npz(corpus, folder / "corpus.npz")
    (folder / "report.json").write_text(json.dumps(report))


def _ready(ctx: StageContext, corpus: Corpus) -> Prepared:
    cfg = ctx.cfg
    check_window(corpus, cfg.pretrain.window, cfg.data.source)
    extra, mixed = (), None
    if cfg.pretrain.extra_source:
        extra_corpus = ctx.prepare_source(cfg.pretrain.extra_source)
        check_window(extra_corpus, cfg.pretrain.window, cfg.pretrain.extra_source)
        mixed = mixing(corpus, extra_corpus, cfg.data.source, cfg.pretrain.extra_source, cfg.pretrain.parts)
        corpus, extra = mixed.main(corpus), tuple(mixed.extra(extra_corpus))
        ctx.runtime.say(f"prepare: pretraining also on {cfg.pretrain.extra_source}: {'; '.join(mixed.notes)}")
    unlabelled = [s for s in corpus["train"] if s.meta.get("unlabelled")]
    if unlabelled:
        corpus = {split: [s for s in seqs if not s.meta.get("unlabelled")] for split, seqs in corpus.items()}
        for split, seqs in corpus.items():
            if not seqs:
                raise DataError(f"source {ctx.cfg.data.source}: the {split} split has no sequence with a sentence "
                                "(data.unlabelled keeps the others for pretraining only); expected sentences to translate")
    parts = ctx.cfg.pretrain.parts
    return Prepared(drop_parts(corpus, parts), Vocabulary.build([s.text for s in corpus["train"]]),
                    int(corpus["train"][0].keypoints.shape[-1]), full=corpus,
                    unlabelled=tuple(drop_parts({"train": unlabelled}, parts)["train"]) if unlabelled else (),
                    extra=extra, mixing=mixed)


PREPARE = Stage(
    name="prepare", needs=(), settings=settings,
    run=lambda ctx: prepare_corpus(ctx.cfg.data.source, ctx.cfg),
    save=_save, load=lambda folder: read_npz(folder / "corpus.npz"), ready=_ready,
    # A trial always sees exactly the cached arrays, whether it computed them or not.
    reload=True, reported=False,
    version=2)  # 2: the synthetic corpus's minimal pairs fill one grammatical slot (synth/signs.py _families)
