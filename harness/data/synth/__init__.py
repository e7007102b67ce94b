"""The synthetic sign corpus: the harness's embedded default data.

Real corpora cannot ship with the code, so the default data is generated deterministically from a
seed, at any size, as 2D keypoints in the canonical 73-point layout (models/layout.py; paper
section 4.2 and appendix B figure 6), in pixel-like image coordinates (a 1280x720 frame, y down)
so that the preprocessing of appendix B.1 (shoulder centring and scaling, noisy-frame removal)
has real work to do. What makes the paper's questions meaningful rather than trivial:

- Language (grammar.py). A gloss inventory (weather and daily life, like PHOENIX14T's domain) and a grammar
  that yields (gloss sequence, spoken sentence) pairs. The gloss order is time-first, topic
  (subject, object or place) before a clause-final verb, negation and modals after the verb,
  nouns before their adjectives; the English text is subject-verb-object with the time phrase
  moved, and carries function words that have no sign (articles, prepositions, auxiliaries,
  "it"/"there", "to", "and"). Texts are lowercase, whitespace tokenized and end with " ." as
  PHOENIX14T's do; glosses are uppercase. Two clauses can be coordinated ("... and ...").
- Signs (signs.py). Each gloss is a hand trajectory (the dominant wrist moves through 2-3 key locations of
  the signing space in one of four path types; one- or two-handed), a handshape sequence (the 21
  hand joints relative to the wrist, interpolated from a start to an end shape), and a facial
  expression (brows, lids, mouth). Arms follow by 2-link inverse kinematics. The inventory is
  built in families: a family shares one trajectory and its members differ only in handshape,
  only in face, or in both (minimal pairs), so a model that ignores the small channels (hands
  relative to the wrist, face relative to the nose) cannot tell them apart: the question that
  pose weighting (APW, paper eq. 1-2) is about. The members of a family fill the same slot of
  the grammar (COFFEE / TEA, NORTH / SOUTH, TODAY / TOMORROW; grammar.slot), as the signs of one
  semantic field often share their movement in real sign languages, so neither the gloss order
  nor the sentence around a sign tells them apart: only the hands and the face do.
- Signers and recording (signers.py). Per-signer proportions (shoulder width, arms, hand and face size, head
  height, position in the frame, size of the signing space) and speed (10-22 frames per sign at
  25 fps), coarticulated transitions (a few frames of interpolation between signs), slow body
  sway, Gaussian jitter, noisy frames (a random subset of points jumps to random image positions,
  like a pose-detector failure) and missing points (random points, and now and then a whole hand
  for a few frames). The derived hand points (palm centre, fingertip centroid) are computed from
  the 21 observed joints exactly as a reader computes them (present only when all inputs are).
- Analysis. Gloss boundaries are kept (SignSequence.boundaries, the sign's own frames; the
  transitions between signs belong to no gloss) and meta records the template, the gloss -> text
  word alignment and the noisy frames.

A second language (second_language.py): How2Sign's stand-in for pretraining on two corpora (source
`synth2`): its own instructional lexicon, a verb-before-object grammar with sentence-final markers
and its own signers, signs from the same phonology, by default 4.4x the train sentences.

Out of domain (isolated.py): isolated signs of an unseen inventory (new glosses from the same
phonology, by other signers, on seed streams of their own) for recognition (paper table 3).

Splits (corpus.py): every signer appears in every split (no held-out signer). Dev and test sentences are
drawn from the same grammar and re-drawn (a bounded number of times) until their gloss sequence
is not a train sentence and all their glosses occur in train, so they are mostly new combinations
of seen signs. It is honest about what it is: numbers on it show that the harness measures an
effect, not PHOENIX14T results. scripts/corpus_stats.py measures the claims above.
"""

from harness.data.synth.corpus import generate_corpus
from harness.data.synth.isolated import UNSEEN_NAMES, generate_isolated, unseen_inventory
from harness.data.synth.grammar import INVENTORY_ORDER, MAX_GLOSSES, MIN_GLOSSES, slot
from harness.data.synth.second_language import SECOND_ORDER, generate_second_corpus, second_inventory, slot2
from harness.data.synth.signers import DERIVED, FRAME_SIZE, PRIMARY, Signer, make_signers
from harness.data.synth.signs import (
    EXPRESSIONS, HANDSHAPES, MIN_FACE_CONTRAST, MIN_HAND_CONTRAST, GlossSign, Trajectory, gloss_inventory,
    minimal_pairs,
)

__all__ = [
    "DERIVED", "EXPRESSIONS", "FRAME_SIZE", "HANDSHAPES", "INVENTORY_ORDER", "MAX_GLOSSES", "MIN_FACE_CONTRAST",
    "MIN_GLOSSES", "MIN_HAND_CONTRAST", "PRIMARY", "SECOND_ORDER", "UNSEEN_NAMES", "GlossSign", "Signer",
    "Trajectory", "generate_corpus", "generate_isolated", "generate_second_corpus", "gloss_inventory", "make_signers",
    "minimal_pairs", "second_inventory", "slot", "slot2", "unseen_inventory",
]
