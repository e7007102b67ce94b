"""A second synthetic sign language: the stand-in for How2Sign beside PHOENIX14T (paper table 4d and
the main rows, which pretrain SignMAE on both corpora; How2Sign has about 4.4x PHOENIX14T's train
sentences, in another sign language and domain).

What it shares with the first language (grammar.py) is only the phonology: its signs are composed
by signs.compose_signs from the same trajectories, handshapes and facial expressions (minimal-pair
families included, drawn within this language's own slots, slot2), on a seed stream of its own, so
no sign is the first language's. Everything else is its own:

- Lexicon: instructional, How2Sign-like (cooking, repairs, sewing, gardening, exercise, cleaning):
  actions, their objects, tools, containers, manners, durations and sequence markers. No gloss name
  is one of the first language's (nor of the isolated signs' unseen inventory, isolated.py).
- Grammar: an imperative how-to clause with the verb BEFORE its object (the first language is
  verb-final; an object known from the last step is not signed: "STIR" = "stir it ."), the adjective before its noun (the first: after), the tool after the object, then
  manner and duration; a placement clause is topic-comment, the container first ("BOWL PUT ONION":
  put the onion in the bowl); a sequence marker (FIRST, NEXT, ...) opens the sentence and a
  sentence-final marker makes it a question (QUESTION: "should i ... ?") or a negated / insistent
  instruction (NEVER, ALWAYS). English texts are lowercase and end with " ." or " ?".
- Signers: make_signers on another stream with the prefix "signer_b" (other people).

Seed streams: [seed, 20] inventory, [seed, 21] signers, [seed, 22..24] sentences, signing and
recording (generate_sentences), disjoint from the first corpus's (0..4) and the isolated signs'
(10..15). Its size: harness/config.py's data.synth2 (train sentences scaled by train_scale).
"""

from __future__ import annotations

import numpy as np

from harness.data.record import Corpus, DataError
from harness.data.synth.grammar import inventory_order
from harness.data.synth.corpus import Language, generate_sentences
from harness.data.synth.signers import make_signers
from harness.data.synth.signs import GlossSign, _family_sizes, _families, compose_signs


def _table(spec: str) -> dict[str, tuple[str, ...]]:
    """'GLOSS a b | GLOSS2 c' -> {GLOSS: (a, b), GLOSS2: (c,)}: a gloss and its attributes."""
    out = {}
    for entry in spec.split("|"):
        gloss, *rest = entry.split()
        out[gloss] = tuple(rest)
    return out


# ----------------------------------------------------------------------------------------------
# The lexicon. Objects by kind (what verbs, tools, containers and adjectives apply to); verbs with
# the kinds they take ('~': durative, takes "for N minutes"); tools and containers with the kinds
# they are used on; adjectives with the kinds they modify. Text words are the lowercase glosses.
# ----------------------------------------------------------------------------------------------

_OBJECT_KINDS = {
    "food": "ONION GARLIC CARROT TOMATO PEPPER LEMON LIME FLOUR SUGAR BUTTER OIL SALT DOUGH HONEY CREAM "
            "YOGURT NOODLES BEANS PEAS CORN MUSHROOM CUCUMBER LETTUCE CABBAGE SPINACH CELERY GINGER BASIL "
            "PARSLEY NUTS ALMONDS OATS BATTER SAUCE VINEGAR CHICKEN BEEF PORK SHRIMP TOFU AVOCADO PEACH PEAR "
            "GRAPES STRAWBERRY MANGO COCONUT CINNAMON",
    "material": "WOOD BOARD PLANK PIPE WIRE NAIL BOLT PANEL TILE BRICK CABLE HINGE FRAME LID HANDLE KNOB "
                "VALVE FILTER BATTERY SCREW",
    "fabric": "CLOTH THREAD YARN SLEEVE BUTTON ZIPPER COLLAR POCKET RIBBON FABRIC SHIRT SCARF SOCK HEM",
    "plant": "SEED SOIL FLOWER BRANCH LEAF ROOT BUSH HEDGE LAWN GRASS VINE BULB WEED COMPOST",
    "body": "ARM LEG KNEE SHOULDER HIP NECK WRIST ANKLE ELBOW FOOT HAND FINGER HEAD SPINE TOE",
    "surface": "FLOOR WINDOW MIRROR COUNTER CARPET DISH STOVE BATHTUB",
}
_OBJECT = {g: kind for kind, names in _OBJECT_KINDS.items() for g in names.split()}
_VERB = _table(
    "CUT food material fabric plant | CHOP food plant | SLICE food | PEEL food | GRATE food | MIX food ~ | "
    "STIR food ~ | WHISK food ~ | KNEAD food ~ | HEAT food ~ | BOIL food ~ | FRY food ~ | BAKE food ~ | "
    "GRILL food ~ | ROAST food ~ | SQUEEZE food | SPRINKLE food | MASH food | SEASON food | TASTE food | "
    "FLIP food | MEASURE material fabric food | MARK material fabric | DRILL material | SAW material | "
    "SAND material surface ~ | GLUE material fabric | TIGHTEN material | LOOSEN material | ATTACH material fabric | "
    "REMOVE material fabric plant | SEW fabric | KNIT fabric ~ | IRON fabric ~ | FOLD fabric food | "
    "TIE fabric plant | WRAP food fabric | STITCH fabric | DIG plant | TRIM plant fabric | PRUNE plant | "
    "SPRAY plant surface | SOW plant | STRETCH body ~ | BEND body | ROTATE body ~ | RAISE body ~ | "
    "LOWER body | MASSAGE body ~ | CLEAN surface material | WIPE surface | SCRUB surface ~ | DRY surface fabric ~ | "
    "POLISH surface material ~ | SWEEP surface | VACUUM surface ~ | HOLD material body food ~ | "
    "PRESS food fabric body ~ | TWIST material body | PULL material fabric plant | ROLL food fabric | "
    "CHECK material fabric plant surface | COVER food plant | RINSE food surface")
_PLACE_VERB = _table("PUT food material fabric plant | PLACE food material fabric | ADD food | "
                     "STORE food material fabric | DROP food plant | LAY fabric material plant | HANG fabric | "
                     "KEEP food material fabric plant")
_TOOL = _table(
    "KNIFE food material fabric plant | SPOON food | FORK food | SPATULA food | LADLE food | TONGS food | "
    "PEELER food | GRATER food | PAN food | HAMMER material | SCREWDRIVER material | WRENCH material | "
    "PLIERS material fabric | BRUSH surface material | SPONGE surface | RAG surface | SCISSORS fabric plant | "
    "NEEDLE fabric | GLOVE plant surface | RULER material fabric | PENCIL material | SHOVEL plant | "
    "RAKE plant | HOSE plant surface | TOWEL body surface | STRAP body | ROLLER food surface")
_CONTAINER = _table(
    "BOWL in food | PLATE on food | JAR in food | BOX in material fabric | BASKET in food fabric plant | "
    "TRAY on food material | OVEN in food | DRAWER in material fabric | CUPBOARD in food material | "
    "BUCKET in plant | FRIDGE in food | FREEZER in food | SHELF on material fabric food | CLOSET in fabric | "
    "BIN in plant food | CUP in food | MUG in food | BLENDER in food | POT in food plant | HOOK on fabric | "
    "RACK on food fabric | WOK in food")
_ADJ = _table(
    "SOFT food fabric | HARD food material | THIN food material fabric | THICK food material fabric | "
    "LONG material fabric plant | SHORT material fabric plant | SMOOTH material surface fabric | "
    "ROUGH material surface | HEAVY material | WHOLE food | LOOSE material fabric | WET fabric surface plant | "
    "DIRTY surface fabric | RIPE food | RAW food | FROZEN food | SPARE material fabric | WIDE material fabric | "
    "NARROW material fabric | ROUND food material | SORE body | STIFF body fabric | TALL plant | YOUNG plant | "
    "DEAD plant | CRISPY food")
_MANNER = tuple("SLOWLY QUICKLY GENTLY FIRMLY CAREFULLY EVENLY LIGHTLY TIGHTLY THOROUGHLY".split())
_NUMBER = tuple("ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN FIFTEEN TWENTY THIRTY".split())
_UNIT = ("SECOND", "MINUTE", "HOUR")
_STEP = tuple("FIRST NEXT THEN FINALLY NOW AFTERWARDS MEANWHILE".split())
_MARK = ("QUESTION", "NEVER", "ALWAYS")

# The first `glosses` of this order form an inventory (as grammar.INVENTORY_ORDER for the first
# language): the head by hand, so that every prefix of at least 4 glosses can say something (CUT
# ONION from 2 on); the rest round-robin over the tables.
_HEAD = ("CUT ONION KNIFE FIRST STIR SAUCE SPOON BOWL PUT NEXT SLOWLY QUESTION THIN FIVE MINUTE NEVER "
         "TOMATO SLICE PAN FRY DRILL WOOD BOARD SEW CLOTH NEEDLE STRETCH ARM GENTLY WIPE FLOOR RAG THEN "
         "ALWAYS TEN SECOND DIG SOIL SHOVEL ADD PLATE").split()


SECOND_ORDER = inventory_order(_HEAD, (_OBJECT, _VERB, _TOOL, _CONTAINER, _ADJ, _PLACE_VERB, _MANNER, _NUMBER,
                                       _UNIT, _STEP, _MARK))
SECOND_MAX_GLOSSES = len(SECOND_ORDER)


def slot2(gloss: str) -> str:
    """The slot a gloss fills in the second language's grammar (grammar.slot's counterpart): the
    members of a minimal-pair family are drawn from one slot (ONION / GARLIC, KNIFE / SPOON)."""
    if gloss in _OBJECT:
        return "object:" + _OBJECT[gloss]
    for name, table in (("verb", _VERB), ("place_verb", _PLACE_VERB), ("tool", _TOOL), ("container", _CONTAINER),
                        ("adj", _ADJ), ("manner", _MANNER), ("number", _NUMBER), ("unit", _UNIT), ("step", _STEP)):
        if gloss in table:
            return name
    return gloss


class _Grammar2:
    """Samples (gloss sequence, text tokens, template) of the second language restricted to an
    inventory (the module doc's grammar)."""

    def __init__(self, names: tuple[str, ...]):
        have = set(names)
        pick = lambda table: sorted(g for g in table if g in have)  # noqa: E731  (sorted: deterministic)
        self.objects, self.tools, self.containers, self.adj = pick(_OBJECT), pick(_TOOL), pick(_CONTAINER), pick(_ADJ)
        self.verbs = [v for v in pick(_VERB) if self._objects(_VERB[v])]
        self.place_verbs = [v for v in pick(_PLACE_VERB) if self._containers(v)]
        self.manner, self.steps, self.marks = pick(_MANNER), pick(_STEP), [m for m in _MARK if m in have]
        self.numbers, self.units = pick(_NUMBER), pick(_UNIT)
        self.kinds = [k for k, ok in (("action", self.verbs), ("place", self.place_verbs)) if ok]
        if not self.kinds:
            raise DataError(f"synth2: the inventory {sorted(have)} cannot form a sentence; use more glosses")

    def _objects(self, kinds) -> list[str]:
        return [o for o in self.objects if _OBJECT[o] in kinds]

    def _containers(self, verb: str) -> list[str]:
        return [c for c in self.containers if self._objects(set(_PLACE_VERB[verb]) & set(_CONTAINER[c][1:]))]

    @staticmethod
    def _pick(rng, options: list[str]) -> str:
        return options[rng.integers(len(options))]

    def _noun_phrase(self, rng, glosses: list[str], obj: str) -> list[tuple[str, int]]:
        words = [("your" if _OBJECT[obj] == "body" else "the", -1)]
        adjs = [a for a in self.adj if _OBJECT[obj] in _ADJ[a]]
        if adjs and rng.random() < 0.3:
            words.append((self._pick(rng, adjs).lower(), len(glosses)))
            glosses.append(words[-1][0].upper())  # gloss order: adjective before the noun
        words.append((obj.lower(), len(glosses)))
        glosses.append(obj)
        return words

    def _clause(self, rng, glosses: list[str]) -> tuple[list[tuple[str, int]], str]:
        kind = self._pick(rng, self.kinds)
        if kind == "place":  # topic-comment: the container first, then the verb and its object
            verb = self._pick(rng, self.place_verbs)
            container = self._pick(rng, self._containers(verb))
            where = [(_CONTAINER[container][0], -1), ("the", -1), (container.lower(), len(glosses))]
            glosses.append(container)
            head = [(verb.lower(), len(glosses))]
            glosses.append(verb)
            obj = self._pick(rng, self._objects(set(_PLACE_VERB[verb]) & set(_CONTAINER[container][1:])))
            words = head + self._noun_phrase(rng, glosses, obj) + where
            durative = False
        else:  # verb before its object, then the tool
            verb = self._pick(rng, self.verbs)
            words = [(verb.lower(), len(glosses))]
            glosses.append(verb)
            if rng.random() < 0.25:  # the object known from the last step is not signed: "stir it ."
                words.append(("it", -1))
                tools = []
            else:
                obj = self._pick(rng, self._objects(_VERB[verb]))
                words += self._noun_phrase(rng, glosses, obj)
                tools = [t for t in self.tools if _OBJECT[obj] in _TOOL[t]]
            if tools and rng.random() < 0.4:
                tool = self._pick(rng, tools)
                words += [("with", -1), ("an" if tool[0] in "AEIOU" else "a", -1), (tool.lower(), len(glosses))]
                glosses.append(tool)
            durative = "~" in _VERB[verb]
        if self.manner and rng.random() < 0.25:
            words.append((self._pick(rng, self.manner).lower(), len(glosses)))
            glosses.append(words[-1][0].upper())
        if durative and self.numbers and self.units and rng.random() < 0.35:
            number, unit = self._pick(rng, self.numbers), self._pick(rng, self.units)
            words += [("for", -1), (number.lower(), len(glosses)),
                      (unit.lower() + ("" if number == "ONE" else "s"), len(glosses) + 1)]
            glosses += [number, unit]
        return words, kind

    def sentence(self, rng) -> tuple[list[str], list[tuple[str, int]], str]:
        """One (glosses, text tokens with gloss alignment, template name); the text's tokens end
        with its mark ("." or "?")."""
        r = rng.random()
        mark = next((m for m, p in zip(_MARK, (0.15, 0.25, 0.3)) if r < p and m in self.marks), None)
        glosses: list[str] = []
        words: list[tuple[str, int]] = []
        if mark != "QUESTION" and self.steps and rng.random() < 0.5:
            step = self._pick(rng, self.steps)
            words.append((step.lower(), 0))
            glosses.append(step)  # gloss order: the sequence marker first
        if mark in ("NEVER", "ALWAYS"):
            lead = [(mark.lower(), -2)]  # aligned below: the mark's gloss comes last
        elif mark == "QUESTION":
            lead = [("should", -2), ("i", -1)]
        else:
            lead = []
        text, kind = self._clause(rng, glosses)
        clauses = 1
        if rng.random() < 0.25:
            more, _ = self._clause(rng, glosses)
            text, clauses = text + [("and", -1)] + more, 2
        if mark is not None:
            lead = [(w, len(glosses) if pos == -2 else pos) for w, pos in lead]
            glosses.append(mark)  # gloss order: sentence-final marker
        words += lead + text + [("?" if mark == "QUESTION" else ".", -1)]
        return glosses, words, ("question" if mark == "QUESTION" else kind) + str(clauses)


def second_inventory(seed: int, glosses: int) -> list[GlossSign]:
    """The signs of the first `glosses` glosses of SECOND_ORDER, in that order, composed like the
    first language's (signs.gloss_inventory) on the seed stream [seed, 20]."""
    if not 1 <= glosses <= SECOND_MAX_GLOSSES:
        raise DataError(f"synth2: glosses is {glosses}; expected 1..{SECOND_MAX_GLOSSES} (its lexicon's size)")
    rng = np.random.default_rng([seed, 20])
    names = SECOND_ORDER[:glosses]
    sizes = _family_sizes(glosses)
    return compose_signs(rng, names, _families(names, sizes, rng, slot_of=slot2), len(sizes))


def generate_second_corpus(*, seed: int, glosses: int, signers: int, train: int, dev: int, test: int,
                           min_signs: int, max_signs: int, fps: int, noisy_frame_rate: float,
                           missing_point_rate: float, jitter: float) -> Corpus:
    """The second language's corpus (generate_corpus's arguments and generator): split ->
    SignSequences named synth2/SPLIT/I, signed by signer_b1.. , bitwise identical for the same
    arguments. The harness scales `train` (data.synth2.train_scale) before it gets here."""
    signs = {s.gloss: s for s in second_inventory(seed, glosses)}
    people = make_signers(seed, signers, stream=21, prefix="signer_b")
    language = Language("synth2", signs, _Grammar2(tuple(signs)), people, (22, 23, 24), stop="")
    return generate_sentences(language, seed=seed, glosses=glosses, train=train, dev=dev, test=test,
                              min_signs=min_signs, max_signs=max_signs, fps=fps, noisy_frame_rate=noisy_frame_rate,
                              missing_point_rate=missing_point_rate, jitter=jitter)
