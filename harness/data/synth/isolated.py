"""An out-of-domain isolated-sign corpus (paper section 5, "Out-of-domain Results", table 3, figure 5).

The paper recognises the isolated signs of an unseen dataset (KSL-Guide-Word: transportation and
directions, 3K words) with its frozen representations. The synthetic stand-in: an *unseen*
inventory of glosses from that domain, none of them a gloss of the sentence corpus, composed from
the same phonology (trajectories, handshapes, facial expressions; signs.compose_signs, minimal-pair
families included), produced one sign per clip (rest, transition, sign, transition, rest) by
signers who are not the sentence corpus's (another seed stream of make_signers), recorded with the
same noise. Every signer appears in every split; glosses are not equally frequent (figure 5 plots
the 10 most frequent), each gloss's clips are split train/dev/test in fixed proportions.

Its seed streams ([seed, 10..15]) are disjoint from the sentence corpus's ([seed, 0..4]): adding this
generator changes nothing in generate_corpus's output.
"""

from __future__ import annotations

import numpy as np

from harness.data.record import SPLITS, Corpus, SignSequence
from harness.data.synth.corpus import _signer_row, record_drafts
from harness.data.synth.grammar import INVENTORY_ORDER
from harness.data.synth.signers import V, _sentence_controls, make_signers
from harness.data.synth.signs import GlossSign, _family_sizes, compose_signs

# The domain of KSL-Guide-Word (transportation and directions); names of the sentence lexicon are
# left out at import, so the inventory is unseen by construction. Past these, WORD<k>.
_DOMAIN = (
    "BUS", "TRAIN", "TRAM", "SUBWAY", "TAXI", "TRUCK", "PLANE", "SHIP", "FERRY", "MOTORBIKE", "SCOOTER",
    "HELICOPTER", "LEFT", "RIGHT", "STRAIGHT", "BACK", "UP", "DOWN", "NEAR", "FAR", "CORNER", "CROSSING",
    "BRIDGE", "TUNNEL", "ROAD", "STREET", "HIGHWAY", "EXIT", "ENTRANCE", "PLATFORM", "STOP", "TRANSFER",
    "ARRIVE", "DEPART", "LATE", "EARLY", "FAST", "SLOW", "MAP", "ROUTE", "DIRECTION", "TRAFFIC", "SIGNAL",
    "PARKING", "FUEL", "SEAT", "LUGGAGE", "PASSPORT", "GATE", "SCHEDULE", "FARE", "CARD", "ELEVATOR", "STAIRS",
    "ESCALATOR", "CROSSWALK", "ROUNDABOUT", "JUNCTION", "DETOUR", "HARBOUR", "TERMINAL", "DRIVER", "PASSENGER",
    "INFORMATION", "TOILET", "DELAY", "CANCEL", "DESTINATION", "TIMETABLE", "LANE",
)
UNSEEN_NAMES = tuple(g for g in _DOMAIN if g not in set(INVENTORY_ORDER))
MIN_UNSEEN_GLOSSES = 2


def unseen_name(k: int) -> str:
    return UNSEEN_NAMES[k] if k < len(UNSEEN_NAMES) else f"WORD{k + 1}"


def unseen_inventory(seed: int, glosses: int) -> list[GlossSign]:
    """`glosses` new signs: families of the sentence inventory's sizes (signs._family_sizes), drawn
    across the names at random (no grammar here), composed like the sentence corpus's signs."""
    rng = np.random.default_rng([seed, 10])
    names = tuple(unseen_name(k) for k in range(glosses))
    sizes = _family_sizes(glosses)
    order = [names[i] for i in rng.permutation(glosses)]
    groups, at = [], 0
    for size in sizes:
        groups.append(order[at:at + size])
        at += size
    return compose_signs(rng, names, groups, len(sizes))


def clip_counts(seed: int, glosses: int, train_per_gloss: int, dev_per_gloss: int, test_per_gloss: int
                ) -> dict[str, list[int]]:
    """Clips per gloss and split: a gloss's frequency f in [1/2, 3/2] (one draw per gloss) scales
    every split's count (at least 1 each)."""
    rng = np.random.default_rng([seed, 11])
    freq = rng.uniform(0.5, 1.5, glosses)
    per = {"train": train_per_gloss, "dev": dev_per_gloss, "test": test_per_gloss}
    return {split: [max(1, int(round(per[split] * f))) for f in freq] for split in SPLITS}


def generate_isolated(*, seed: int, glosses: int, signers: int, train_per_gloss: int, dev_per_gloss: int,
                      test_per_gloss: int, fps: int, noisy_frame_rate: float, missing_point_rate: float,
                      jitter: float) -> Corpus:
    """split -> one SignSequence per clip (text and gloss: the gloss's name, its label), bitwise
    identical for the same arguments. Noise arguments as generate_corpus's."""
    inventory = unseen_inventory(seed, glosses)
    signs = {s.gloss: s for s in inventory}
    people = make_signers(seed, signers, stream=12, prefix="unseen_signer")
    counts = clip_counts(seed, glosses, train_per_gloss, dev_per_gloss, test_per_gloss)
    corpus: Corpus = {}
    for si, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, 13, si])
        drafts, seqs = [], []
        for gi, sign in enumerate(inventory):
            for c in range(counts[split][gi]):
                signer = people[int(rng.integers(signers))]
                controls, boundaries, motion = _sentence_controls(
                    [sign.gloss], signs, signer, fps, np.random.default_rng([seed, 14, si, gi, c]))
                drafts.append((controls, _signer_row(signer), motion))
                seqs.append(SignSequence(
                    name=f"isolated/{split}/{sign.gloss}/{c}", keypoints=np.empty((0, V, 2), np.float32),
                    mask=np.empty((0, V), bool), text=sign.gloss, gloss=sign.gloss, signer=signer.name,
                    boundaries=boundaries, meta={"source": "synth-isolated", "fps": fps, "family": sign.family}))
        record_drafts(seqs, drafts, [seed, 15, si], noisy_frame_rate, missing_point_rate, jitter)
        corpus[split] = seqs
    return corpus
