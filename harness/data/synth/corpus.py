"""The synthetic corpus itself: sentences drawn from the grammar, signed by the signers, recorded
in batches, split into train/dev/test. One generator (generate_sentences) for every synthetic
language: the first (generate_corpus) and the second (second_language.py) bring only their signs,
grammar, signers and seed streams (Language).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.data.record import SPLITS, Corpus, DataError, SignSequence
from harness.data.synth.grammar import _Grammar
from harness.data.synth.signers import V, Signer, _record, _sentence_controls, make_signers
from harness.data.synth.signs import GlossSign, gloss_inventory

_RECORD_CHUNK = 256  # sentences rendered in one vectorized pass


def _signer_row(signer: Signer) -> np.ndarray:
    """The per-frame signer properties _render reads, in its order."""
    return np.array([signer.shoulder_px, *signer.centre_px, signer.upper_arm, signer.forearm, signer.hand,
                     signer.face, signer.nose_height, signer.space])


def _alignment(tokens: list[tuple[str, int]], n: int) -> list[int]:
    """For each gloss, the index of its text word (-1 if it has none)."""
    where = {}
    for j, (_, pos) in enumerate(tokens):
        if pos >= 0:
            where.setdefault(pos, j)
    return [where.get(k, -1) for k in range(n)]


def record_drafts(seqs: list, drafts: list, stream: list[int], noisy_frame_rate: float, missing_point_rate: float,
                  jitter: float) -> None:
    """Record each draft (controls, signer row, motion) into its sequence's keypoints, mask and
    noisy frames, _RECORD_CHUNK at a time (bounded memory for paper-sized corpora); chunk c draws
    from default_rng([*stream, c])."""
    for chunk in range(0, len(seqs), _RECORD_CHUNK):
        recorded = _record(*zip(*drafts[chunk:chunk + _RECORD_CHUNK]),
                           np.random.default_rng([*stream, chunk]), noisy_frame_rate, missing_point_rate, jitter)
        for seq, (kp, mask, noisy) in zip(seqs[chunk:], recorded):
            seq.keypoints, seq.mask = kp, mask
            seq.meta["noisy_frames"] = [int(t) for t in noisy]


@dataclass(frozen=True)
class Language:
    """What a synthetic sign language brings to the one generator (generate_sentences): its signs,
    its grammar, its signers and the seed streams its sentences are drawn from. The first language
    (generate_corpus) and the second (second_language.py) differ only in these."""

    name: str  # the source's name: in sequence names, meta["source"] and messages
    signs: dict[str, GlossSign]
    grammar: Any  # .sentence(rng) -> (glosses, text tokens with gloss alignment, template name)
    people: list[Signer]
    streams: tuple[int, int, int]  # seed streams of the sentences, their signing and their recording
    stop: str = " ."  # appended to every text (a grammar whose tokens end with their own mark: "")


def generate_corpus(*, seed: int, glosses: int, signers: int, train: int, dev: int, test: int, min_signs: int,
                    max_signs: int, fps: int, noisy_frame_rate: float, missing_point_rate: float,
                    jitter: float) -> Corpus:
    """The synthetic corpus: split -> SignSequences, bitwise identical for the same arguments.

    train/dev/test: sentences per split; glosses: inventory size (the first `glosses` of
    INVENTORY_ORDER); signers: number of signers (all appear in every split); min/max_signs:
    glosses per sentence; fps: frame rate (durations scale with it); noisy_frame_rate: share of
    frames in which a random subset of points jumps to random image positions;
    missing_point_rate: share of observed points masked (2/3 single points, 1/3 whole-hand
    dropouts); jitter: std of per-frame Gaussian noise, in shoulder widths.

    The arguments are not checked here: harness/config.py's SynthConfig holds their ranges (one
    place for them), and every value it accepts works.
    """
    inventory = gloss_inventory(seed, glosses)
    signs = {s.gloss: s for s in inventory}
    language = Language("synth", signs, _Grammar(tuple(signs)), make_signers(seed, signers), (2, 3, 4))
    return generate_sentences(language, seed=seed, glosses=glosses, train=train, dev=dev, test=test,
                              min_signs=min_signs, max_signs=max_signs, fps=fps, noisy_frame_rate=noisy_frame_rate,
                              missing_point_rate=missing_point_rate, jitter=jitter)


def generate_sentences(language: Language, *, seed: int, glosses: int, train: int, dev: int, test: int,
                       min_signs: int, max_signs: int, fps: int, noisy_frame_rate: float, missing_point_rate: float,
                       jitter: float) -> Corpus:
    """A language's sentences drawn, signed, recorded and split (generate_corpus's arguments):
    split -> SignSequences, bitwise identical for the same arguments."""
    signs, grammar, people, name = language.signs, language.grammar, language.people, language.name
    s_sentence, s_sign, s_record = language.streams
    corpus: Corpus = {}
    train_sentences: set[str] = set()
    train_glosses: set[str] = set()
    for si, split in enumerate(SPLITS):
        count = {"train": train, "dev": dev, "test": test}[split]
        rng = np.random.default_rng([seed, s_sentence, si])
        seqs: list[SignSequence] = []
        drafts = []
        for i in range(count):
            for attempt in range(400):
                gl, tokens, template = grammar.sentence(rng)
                if not min_signs <= len(gl) <= max_signs:
                    continue
                if split == "train" or attempt >= 100:
                    break
                # dev/test: prefer new combinations of glosses seen in train
                if " ".join(gl) not in train_sentences and train_glosses.issuperset(gl):
                    break
            else:
                raise DataError(f"{name}: no sentence of {min_signs}..{max_signs} glosses from an inventory of "
                                f"{glosses}; widen min_signs/max_signs or use more glosses")
            if split == "train":
                train_sentences.add(" ".join(gl))
                train_glosses.update(gl)
            signer = people[int(rng.integers(len(people)))]
            controls, boundaries, motion = _sentence_controls(
                gl, signs, signer, fps, np.random.default_rng([seed, s_sign, si, i]))
            drafts.append((controls, _signer_row(signer), motion))
            seqs.append(SignSequence(
                name=f"{name}/{split}/{i}", keypoints=np.empty((0, V, 2), np.float32), mask=np.empty((0, V), bool),
                text=" ".join(w for w, _ in tokens) + language.stop, gloss=" ".join(gl), signer=signer.name,
                boundaries=boundaries,
                meta={"source": name, "fps": fps, "template": template, "alignment": _alignment(tokens, len(gl))},
            ))
        record_drafts(seqs, drafts, [seed, s_record, si], noisy_frame_rate, missing_point_rate, jitter)
        corpus[split] = seqs
    return corpus
