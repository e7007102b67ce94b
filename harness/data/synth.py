"""The synthetic sign corpus: the harness's embedded default data (DESIGN.md, "The synthetic sign corpus").

Real corpora cannot ship with the code, so the default data is generated deterministically from a
seed, at any size, as 2D keypoints in the canonical 73-point layout (models/layout.py; paper
section 4.2 and appendix B figure 6), in pixel-like image coordinates (a 1280x720 frame, y down)
so that the preprocessing of appendix B.1 (shoulder centring and scaling, noisy-frame removal)
has real work to do. What makes the paper's questions meaningful rather than trivial:

- Language. A gloss inventory (weather and daily life, like PHOENIX14T's domain) and a grammar
  that yields (gloss sequence, spoken sentence) pairs. The gloss order is time-first, topic
  (subject, object or place) before a clause-final verb, negation and modals after the verb,
  nouns before their adjectives; the English text is subject-verb-object with the time phrase
  moved, and carries function words that have no sign (articles, prepositions, auxiliaries,
  "it"/"there", "to", "and"). Texts are lowercase, whitespace tokenized and end with " ." as
  PHOENIX14T's do; glosses are uppercase. Two clauses can be coordinated ("... and ...").
- Signs. Each gloss is a hand trajectory (the dominant wrist moves through 2-3 key locations of
  the signing space in one of four path types; one- or two-handed), a handshape sequence (the 21
  hand joints relative to the wrist, interpolated from a start to an end shape), and a facial
  expression (brows, lids, mouth). Arms follow by 2-link inverse kinematics. The inventory is
  built in families: a family shares one trajectory and its members differ only in handshape,
  only in face, or in both (minimal pairs), so a model that ignores the small channels (hands
  relative to the wrist, face relative to the nose) cannot tell them apart: the question that
  pose weighting (APW, paper eq. 1-2) is about.
- Signers and recording. Per-signer proportions (shoulder width, arms, hand and face size, head
  height, position in the frame, size of the signing space) and speed (10-22 frames per sign at
  25 fps), coarticulated transitions (a few frames of interpolation between signs), slow body
  sway, Gaussian jitter, noisy frames (a random subset of points jumps to random image positions,
  like a pose-detector failure) and missing points (random points, and now and then a whole hand
  for a few frames). The derived hand points (palm centre, fingertip centroid) are computed from
  the 21 observed joints exactly as a reader computes them (present only when all inputs are).
- Analysis. Gloss boundaries are kept (SignSequence.boundaries, the sign's own frames; the
  transitions between signs belong to no gloss) and meta records the template, the gloss -> text
  word alignment and the noisy frames.

Splits: every signer appears in every split (no held-out signer). Dev and test sentences are
drawn from the same grammar and re-drawn (a bounded number of times) until their gloss sequence
is not a train sentence and all their glosses occur in train, so they are mostly new combinations
of seen signs. It is honest about what it is: numbers on it show that the harness measures an
effect, not PHOENIX14T results. scripts/corpus_stats.py measures the claims above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.data.record import SPLITS, Corpus, SignSequence
from models.layout import CANONICAL, FACE_NAMES, FINGERTIP_CENTROID_FROM, PALM_CENTRE_FROM

FRAME_SIZE = (1280, 720)  # (width, height) of the virtual camera image, pixels
V = CANONICAL.num_points  # 73
BODY, FACE = CANONICAL.parts["body"], CANONICAL.parts["face"]
LEFT_HAND, RIGHT_HAND = CANONICAL.parts["left_hand"], CANONICAL.parts["right_hand"]
# The 69 points a detector observes; the 4 derived hand points are computed from them.
_JOINTS_L = np.asarray(LEFT_HAND[:21])
_JOINTS_R = np.asarray(RIGHT_HAND[:21])
PRIMARY = np.concatenate([np.asarray(BODY), np.asarray(FACE), _JOINTS_L, _JOINTS_R])
DERIVED = np.asarray([LEFT_HAND[21], LEFT_HAND[22], RIGHT_HAND[21], RIGHT_HAND[22]])

# ----------------------------------------------------------------------------------------------
# The lexicon. Each table is gloss -> what the grammar needs to say it in English. A '*' marks the
# word a gloss is aligned to in the text (meta["alignment"]); unmarked words have no sign.
# ----------------------------------------------------------------------------------------------

_TIME = {  # phrase, tense it sets
    "TOMORROW": ("*tomorrow", "fut"), "TODAY": ("*today", "pres"), "YESTERDAY": ("*yesterday", "past"),
    "MORNING": ("in the *morning", "pres"), "EVENING": ("in the *evening", "pres"),
    "NIGHT": ("at *night", "pres"), "WEEKEND": ("at the *weekend", "fut"), "LATER": ("*later", "fut"),
    "MONDAY": ("on *monday", "fut"), "TUESDAY": ("on *tuesday", "fut"), "WEDNESDAY": ("on *wednesday", "fut"),
    "THURSDAY": ("on *thursday", "fut"), "FRIDAY": ("on *friday", "fut"), "SATURDAY": ("on *saturday", "fut"),
    "SUNDAY": ("on *sunday", "fut"),
}
_PERSON = {  # noun phrase, agreement (3 = third person singular)
    "I": ("*i", 1), "YOU": ("*you", 2), "WE": ("*we", 1), "MOTHER": ("my *mother", 3),
    "FATHER": ("my *father", 3), "FRIEND": ("my *friend", 3), "SISTER": ("my *sister", 3),
    "BROTHER": ("my *brother", 3), "TEACHER": ("the *teacher", 3), "CHILD": ("the *child", 3),
    "DOCTOR": ("the *doctor", 3), "GRANDMOTHER": ("my *grandmother", 3), "NEIGHBOUR": ("our *neighbour", 3),
    "BOSS": ("the *boss", 3), "STUDENT": ("the *student", 3), "UNCLE": ("my *uncle", 3), "AUNT": ("my *aunt", 3),
    "GRANDFATHER": ("my *grandfather", 3), "BABY": ("the *baby", 3), "COUSIN": ("my *cousin", 3),
}
_OBJECT = {  # noun, kinds (which verbs/adjectives take it), countable (takes "a"/"an")
    "BREAD": ("bread", ("food",), False), "APPLE": ("apple", ("food",), True), "CAKE": ("cake", ("food",), True),
    "FISH": ("fish", ("food",), False), "SOUP": ("soup", ("food",), False), "RICE": ("rice", ("food",), False),
    "PASTA": ("pasta", ("food",), False), "EGG": ("egg", ("food",), True), "CHEESE": ("cheese", ("food",), False),
    "MEAT": ("meat", ("food",), False), "SALAD": ("salad", ("food",), True), "BANANA": ("banana", ("food",), True),
    "ORANGE": ("orange", ("food",), True), "SANDWICH": ("sandwich", ("food",), True),
    "PIZZA": ("pizza", ("food",), True),
    "COFFEE": ("coffee", ("drink",), False), "TEA": ("tea", ("drink",), False), "WATER": ("water", ("drink",), False),
    "MILK": ("milk", ("drink",), False), "JUICE": ("juice", ("drink",), False), "BEER": ("beer", ("drink",), False),
    "WINE": ("wine", ("drink",), False),
    "BOOK": ("book", ("read", "write"), True), "LETTER": ("letter", ("read", "write"), True),
    "NEWSPAPER": ("newspaper", ("read",), True), "MAGAZINE": ("magazine", ("read",), True),
    "EMAIL": ("email", ("read", "write"), True),
    "CAR": ("car", ("vehicle",), True), "BIKE": ("bike", ("vehicle",), True), "BOAT": ("boat", ("vehicle",), True),
    "PHONE": ("phone", ("thing",), True), "COMPUTER": ("computer", ("thing",), True), "BAG": ("bag", ("thing",), True),
    "COAT": ("coat", ("thing",), True), "UMBRELLA": ("umbrella", ("thing",), True), "KEY": ("key", ("thing",), True),
    "TICKET": ("ticket", ("thing",), True), "SHOES": ("shoes", ("thing",), False),
    "CHOCOLATE": ("chocolate", ("food",), False), "POTATO": ("potato", ("food",), True),
    "BOTTLE": ("bottle", ("thing",), True), "CHAIR": ("chair", ("thing",), True), "TABLE": ("table", ("thing",), True),
}
_ALL_KINDS = ("food", "drink", "read", "write", "vehicle", "thing")
_VERB_T = {  # (base, 3sg, past), object kinds
    "EAT": (("eat", "eats", "ate"), ("food",)), "DRINK": (("drink", "drinks", "drank"), ("drink",)),
    "COOK": (("cook", "cooks", "cooked"), ("food",)), "ORDER": (("order", "orders", "ordered"), ("food", "drink")),
    "READ": (("read", "reads", "read"), ("read",)), "WRITE": (("write", "writes", "wrote"), ("write",)),
    "BUY": (("buy", "buys", "bought"), _ALL_KINDS), "LIKE": (("like", "likes", "liked"), _ALL_KINDS),
    "NEED": (("need", "needs", "needed"), _ALL_KINDS), "WASH": (("wash", "washes", "washed"), ("vehicle",)),
    "SELL": (("sell", "sells", "sold"), ("vehicle", "thing", "read")), "LOSE": (("lose", "loses", "lost"), ("thing",)),
    "FIND": (("find", "finds", "found"), ("thing",)), "CARRY": (("carry", "carries", "carried"), ("thing",)),
}
_HAVE = ("have", "has", "had")
_ADJ = {  # word, object kinds it modifies, countable nouns only
    "NEW": ("new", ("read", "vehicle", "thing"), False), "OLD": ("old", ("read", "vehicle", "thing"), False),
    "BIG": ("big", ("food", "vehicle", "thing"), True), "SMALL": ("small", ("food", "vehicle", "thing"), True),
    "HOT": ("hot", ("drink", "food"), False), "COLD": ("cold", ("drink", "food"), False),
    "WARM": ("warm", ("drink",), False), "CHEAP": ("cheap", ("vehicle", "thing", "food"), False),
    "EXPENSIVE": ("expensive", ("vehicle", "thing", "drink"), False), "GOOD": ("good", _ALL_KINDS, False),
    "RED": ("red", ("vehicle", "thing"), False), "BLUE": ("blue", ("vehicle", "thing"), False),
    "GREEN": ("green", ("vehicle", "thing"), False), "FRESH": ("fresh", ("food", "drink"), False),
}
_PLACE = {  # phrase after a motion verb, phrase after an activity verb
    "SCHOOL": ("to *school", "at *school"), "HOME": ("*home", "at *home"), "SHOP": ("to the *shop", "in the *shop"),
    "PARK": ("to the *park", "in the *park"), "HOSPITAL": ("to the *hospital", "in the *hospital"),
    "CITY": ("to the *city", "in the *city"), "BEACH": ("to the *beach", "on the *beach"),
    "OFFICE": ("to the *office", "in the *office"), "CHURCH": ("to *church", "in *church"),
    "STATION": ("to the *station", "at the *station"), "AIRPORT": ("to the *airport", "at the *airport"),
    "LIBRARY": ("to the *library", "in the *library"), "MARKET": ("to the *market", "at the *market"),
    "RESTAURANT": ("to the *restaurant", "in the *restaurant"), "GARDEN": ("to the *garden", "in the *garden"),
    "CINEMA": ("to the *cinema", "at the *cinema"), "UNIVERSITY": ("to the *university", "at the *university"),
    "FOREST": ("to the *forest", "in the *forest"), "LAKE": ("to the *lake", "at the *lake"),
    "BANK": ("to the *bank", "at the *bank"), "HOTEL": ("to the *hotel", "in the *hotel"),
    "MUSEUM": ("to the *museum", "in the *museum"), "ZOO": ("to the *zoo", "at the *zoo"),
    "POOL": ("to the *pool", "in the *pool"), "THEATRE": ("to the *theatre", "at the *theatre"),
}
_VERB_M = {  # motion verbs: (base, 3sg, past), take the place's first phrase
    "GO": ("go", "goes", "went"), "DRIVE": ("drive", "drives", "drove"), "WALK": ("walk", "walks", "walked"),
    "COME": ("come", "comes", "came"), "RUN": ("run", "runs", "ran"), "FLY": ("fly", "flies", "flew"),
    "TRAVEL": ("travel", "travels", "travelled"), "CYCLE": ("cycle", "cycles", "cycled"),
}
_VERB_I = {  # activity verbs: (base, 3sg, past), take the place's second phrase
    "WORK": ("work", "works", "worked"), "PLAY": ("play", "plays", "played"), "SLEEP": ("sleep", "sleeps", "slept"),
    "SWIM": ("swim", "swims", "swam"), "WAIT": ("wait", "waits", "waited"), "STUDY": ("study", "studies", "studied"),
    "DANCE": ("dance", "dances", "danced"), "SING": ("sing", "sings", "sang"), "REST": ("rest", "rests", "rested"),
    "LEARN": ("learn", "learns", "learned"), "PAINT": ("paint", "paints", "painted"),
    "LAUGH": ("laugh", "laughs", "laughed"), "RELAX": ("relax", "relaxes", "relaxed"),
}
_WEATHER = {  # how the clause is said, the word(s), whether STRONG can modify it
    "RAIN": ("verb", ("rain", "rains", "rained", "heavy rain"), True),
    "SNOW": ("verb", ("snow", "snows", "snowed", "heavy snow"), True),
    "SUN": ("sun", ("shine", "shines", "shone"), False),
    "WIND": ("adj", ("windy", "a strong wind"), True),
    "CLOUD": ("adj", ("cloudy",), False), "FOG": ("adj", ("foggy",), False),
    "STORM": ("there", ("a storm", "a strong storm"), True), "THUNDER": ("there", ("thunder",), False),
    "HAIL": ("there", ("hail", "heavy hail"), True), "FROST": ("there", ("frost",), False),
    "SHOWER": ("there", ("showers", "heavy showers"), True),
}
_REGION = {
    "NORTH": "in the *north", "SOUTH": "in the *south", "EAST": "in the *east", "WEST": "in the *west",
    "MOUNTAIN": "in the *mountains", "COAST": "on the *coast", "VALLEY": "in the *valleys",
    **{c: f"in *{c.lower()}" for c in (
        "BERLIN", "HAMBURG", "MUNICH", "COLOGNE", "FRANKFURT", "STUTTGART", "DRESDEN", "LEIPZIG", "BREMEN",
        "HANOVER", "NUREMBERG", "DORTMUND", "ESSEN", "BONN", "KIEL", "ROSTOCK", "MAINZ", "FREIBURG",
        "AUGSBURG", "POTSDAM", "MUENSTER", "ERFURT", "MAGDEBURG", "SCHWERIN", "SAARBRUECKEN", "WIESBADEN",
        "KASSEL", "ULM", "TRIER", "PASSAU", "REGENSBURG", "LUEBECK", "JENA", "HALLE", "GOETTINGEN", "KONSTANZ",
        "BAMBERG", "WUERZBURG", "OLDENBURG")},
}
_TEMP = {"COLD": "cold", "WARM": "warm", "HOT": "hot", "MILD": "mild", "COOL": "cool", "FREEZING": "freezing"}
_MODAL = ("WANT", "CAN", "MUST")
_SPECIAL = ("NOT", "STRONG", "VERY", "HAVE") + _MODAL

# Which glosses a small inventory keeps: the first `glosses` of this order. The head is chosen by
# hand so that every prefix of at least 4 glosses can say something (weather first, then daily
# life); the rest follows round-robin over the tables.
_HEAD = (
    "TOMORROW RAIN SUN TODAY NORTH I EAT BREAD MOTHER DRINK COFFEE GO SCHOOL HOME YESTERDAY NOT "
    "YOU COLD WARM SOUTH WORK PLAY PARK BOOK READ WANT HAVE CAR NEW SNOW WIND FATHER "
    "FRIEND TEA WATER APPLE BUY LIKE SHOP SLEEP MORNING EVENING STRONG HOT EAST WEST CAN OLD"
).split()


def _inventory_order() -> tuple[str, ...]:
    order = list(_HEAD)
    tables = [list(t) for t in (_TIME, _PERSON, _OBJECT, _VERB_T, _PLACE, _VERB_M, _VERB_I, _WEATHER,
                                _REGION, _TEMP, _ADJ, _SPECIAL)]
    while any(tables):
        for t in tables:
            while t:
                g = t.pop(0)
                if g not in order:
                    order.append(g)
                    break
    return tuple(order)


INVENTORY_ORDER = _inventory_order()
MIN_GLOSSES, MAX_GLOSSES = 4, len(INVENTORY_ORDER)


def _words(phrase: str, pos: int) -> list[tuple[str, int]]:
    """Tokens of a phrase; the '*' word is aligned to gloss position pos, the others to -1."""
    return [(w.lstrip("*"), pos if w.startswith("*") else -1) for w in phrase.split()]


def _be(tense: str, neg: int | None) -> list[tuple[str, int]]:
    """'is' / 'was' / 'will be' for 'it' and 'there', with 'not' aligned to NOT when negated."""
    no = [("not", neg)] if neg is not None else []
    if tense == "fut":
        return [("will", -1)] + no + [("be", -1)]
    return [("was" if tense == "past" else "is", -1)] + no


def _vp(forms: tuple[str, str, str], tense: str, agr: int, verb: int,
        neg: int | None = None, modal: tuple[str, int] | None = None) -> list[tuple[str, int]]:
    """The English verb phrase for tense/agreement, with do-support for negation and a modal."""
    base, s3, past = forms
    third = agr == 3
    if neg is not None:
        aux = {"pres": "does" if third else "do", "past": "did", "fut": "will"}[tense]
        return [(aux, -1), ("not", neg), (base, verb)]
    if modal is not None:
        name, pos = modal
        if name == "WANT":
            w = "wanted" if tense == "past" else ("wants" if third else "want")
            return [(w, pos), ("to", -1), (base, verb)]
        if name == "CAN":
            return [("could" if tense == "past" else "can", pos), (base, verb)]
        if tense == "past":  # MUST
            return [("had", -1), ("to", pos), (base, verb)]
        return [("must", pos), (base, verb)]
    if tense == "fut":
        return [("will", -1), (base, verb)]
    if tense == "past":
        return [(past, verb)]
    return [(s3 if third else base, verb)]


class _Grammar:
    """Samples (gloss sequence, text tokens, template) from the tables restricted to an inventory."""

    def __init__(self, names: tuple[str, ...]):
        have = set(names)
        pick = lambda table: sorted(g for g in table if g in have)  # noqa: E731  (sorted: deterministic)
        self.time, self.person, self.objects = pick(_TIME), pick(_PERSON), pick(_OBJECT)
        self.verb_t = [v for v in pick(_VERB_T) if self._objects_for(_VERB_T[v][1])]
        self.have = "HAVE" in have and bool(self.objects)
        self.place, self.verb_m, self.verb_i = pick(_PLACE), pick(_VERB_M), pick(_VERB_I)
        self.weather, self.region, self.temp, self.adj = pick(_WEATHER), pick(_REGION), pick(_TEMP), pick(_ADJ)
        self.modal = [m for m in _MODAL if m in have]
        self.neg, self.strong, self.very = "NOT" in have, "STRONG" in have, "VERY" in have
        self.person_kinds = [k for k, ok in (
            ("object", bool(self.person and self.verb_t)), ("motion", bool(self.person and self.verb_m and self.place)),
            ("activity", bool(self.person and self.verb_i)), ("have", bool(self.person and self.have)),
        ) if ok]
        self.weather_kinds = [k for k, ok in (("weather", bool(self.weather)), ("temp", bool(self.temp))) if ok]
        if not self.person_kinds and not self.weather_kinds:
            raise ValueError(f"synth: the inventory {sorted(have)} cannot form a sentence; use more glosses")

    def _objects_for(self, kinds) -> list[str]:
        return [o for o in self.objects if set(_OBJECT[o][1]) & set(kinds)]

    # -- clauses: each appends its glosses (gloss order) and returns its text tokens -------------------

    def _object_np(self, rng, glosses: list[str], obj: str) -> list[tuple[str, int]]:
        noun, kinds, countable = _OBJECT[obj]
        op = len(glosses)
        glosses.append(obj)
        adjs = [a for a in self.adj if set(_ADJ[a][1]) & set(kinds) and (countable or not _ADJ[a][2])]
        words: list[tuple[str, int]] = [(noun, op)]
        if adjs and rng.random() < 0.3:
            a = adjs[rng.integers(len(adjs))]
            words.insert(0, (_ADJ[a][0], len(glosses)))
            glosses.append(a)  # gloss order: noun before adjective
        if countable:
            words.insert(0, ("an" if words[0][0][0] in "aeiou" else "a", -1))
        return words

    def _person_clause(self, rng, glosses: list[str], tense: str) -> list[tuple[str, int]]:
        kind = self.person_kinds[rng.integers(len(self.person_kinds))]
        subj = self.person[rng.integers(len(self.person))]
        phrase, agr = _PERSON[subj]
        subject = _words(phrase, len(glosses))
        glosses.append(subj)
        if kind == "object":
            verb = self.verb_t[rng.integers(len(self.verb_t))]
            forms, kinds = _VERB_T[verb]
            objs = self._objects_for(kinds)
            complement = self._object_np(rng, glosses, objs[rng.integers(len(objs))])
        elif kind == "have":
            verb, forms = "HAVE", _HAVE
            complement = self._object_np(rng, glosses, self.objects[rng.integers(len(self.objects))])
        else:
            table = _VERB_M if kind == "motion" else _VERB_I
            verbs = self.verb_m if kind == "motion" else self.verb_i
            verb = verbs[rng.integers(len(verbs))]
            forms = table[verb]
            complement = []
            if kind == "motion" or (self.place and rng.random() < 0.7):
                place = self.place[rng.integers(len(self.place))]
                complement = _words(_PLACE[place][0 if kind == "motion" else 1], len(glosses))
                glosses.append(place)  # gloss order: place before the verb
        vpos = len(glosses)
        glosses.append(verb)  # verb-final
        neg = modal = None
        r = rng.random()
        if self.neg and r < 0.2:
            neg = len(glosses)
            glosses.append("NOT")
        elif self.modal and r < 0.4:
            m = self.modal[rng.integers(len(self.modal))]
            modal = (m, len(glosses))
            glosses.append(m)
        return subject + _vp(forms, tense, agr, vpos, neg, modal) + complement

    def _weather_clause(self, rng, glosses: list[str], tense: str) -> list[tuple[str, int]]:
        kind = self.weather_kinds[rng.integers(len(self.weather_kinds))]
        region: list[tuple[str, int]] = []
        if self.region and rng.random() < 0.6:
            g = self.region[rng.integers(len(self.region))]
            region = _words(_REGION[g], len(glosses))
            glosses.append(g)  # gloss order: place before the event
        if kind == "temp":
            t = self.temp[rng.integers(len(self.temp))]
            word = [(_TEMP[t], len(glosses))]
            glosses.append(t)
            if self.very and rng.random() < 0.3:
                word.insert(0, ("very", len(glosses)))
                glosses.append("VERY")
            neg = None
            if self.neg and rng.random() < 0.15:
                neg = len(glosses)
                glosses.append("NOT")
            return [("it", -1)] + _be(tense, neg) + word + region
        w = self.weather[rng.integers(len(self.weather))]
        how, forms, strongable = _WEATHER[w]
        wpos = len(glosses)
        glosses.append(w)
        strong = None
        if strongable and self.strong and rng.random() < 0.3:
            strong = len(glosses)
            glosses.append("STRONG")
        neg = None
        if self.neg and rng.random() < 0.15:
            neg = len(glosses)
            glosses.append("NOT")
        if how == "sun":
            clause = [("the", -1), ("sun", wpos)] + _vp(forms, tense, 3, -1, neg)
        elif strong is not None:  # "there will be heavy rain", "there is a strong wind"
            phrase = forms[-1].split()
            words = [(x, -1) for x in phrase[:-2]] + [(phrase[-2], strong), (phrase[-1], wpos)]
            clause = [("there", -1)] + _be(tense, neg) + words
        elif how == "verb":
            clause = [("it", -1)] + _vp(forms[:3], tense, 3, wpos, neg)
        elif how == "adj":
            clause = [("it", -1)] + _be(tense, neg) + [(forms[0], wpos)]
        else:  # "there"
            phrase = forms[0].split()
            clause = [("there", -1)] + _be(tense, neg) + [(x, -1) for x in phrase[:-1]] + [(phrase[-1], wpos)]
        return clause + region

    def sentence(self, rng) -> tuple[list[str], list[tuple[str, int]], str]:
        """One (glosses, text tokens with gloss alignment, template name)."""
        families = (["person"] if self.person_kinds else []) + (["weather"] if self.weather_kinds else [])
        # Weather reports (PHOENIX14T's domain) and daily life, the latter a little more often.
        family = families[rng.integers(len(families))] if len(families) == 1 else (
            "person" if rng.random() < 0.55 else "weather")
        glosses: list[str] = []
        time_words: list[tuple[str, int]] = []
        tense = "pres"
        if self.time and rng.random() < 0.6:
            t = self.time[rng.integers(len(self.time))]
            phrase, tense = _TIME[t]
            time_words = _words(phrase, 0)
            glosses.append(t)  # gloss order: time first
        clause = self._person_clause if family == "person" else self._weather_clause
        text = clause(rng, glosses, tense)
        clauses = 1
        if rng.random() < 0.25:
            text = text + [("and", -1)] + clause(rng, glosses, tense)
            clauses = 2
        # Text order: weather reports put the time first, daily-life sentences put it last.
        text = time_words + text if family == "weather" else text + time_words
        return glosses, text, f"{family}{clauses}"


# ----------------------------------------------------------------------------------------------
# Phonology: locations, trajectories, handshapes, faces.
# ----------------------------------------------------------------------------------------------

# Dominant (right) wrist locations. Coordinates: x right in the image (the signer's right hand
# is on the image's left, x < 0), y down, z towards the camera. "body" in shoulder widths from the
# shoulder midpoint; "face" in head widths from the nose (x, y) with z in shoulder widths; "space"
# like "body" but scaled by the signer's signing-space size.
_LOCATIONS = {
    "forehead": ("face", -0.15, 0.20, 0.35), "temple": ("face", -0.60, 0.10, 0.25),
    "chin": ("face", -0.05, 0.95, 0.35), "cheek": ("face", -0.45, 0.60, 0.30), "mouth": ("face", 0.00, 0.70, 0.40),
    "chest": ("body", -0.05, 0.45, 0.25), "chest_side": ("body", -0.35, 0.45, 0.25),
    "shoulder_opp": ("body", 0.35, 0.25, 0.25), "stomach": ("body", -0.05, 0.95, 0.30),
    "centre": ("space", -0.15, 0.65, 0.60), "centre_high": ("space", -0.20, 0.05, 0.70),
    "side_high": ("space", -0.85, -0.10, 0.40), "side_low": ("space", -0.80, 0.75, 0.40),
    "cross": ("space", 0.30, 0.65, 0.55), "low": ("space", -0.20, 1.00, 0.50),
    "far_high": ("space", -0.35, -0.55, 0.55),
}
_LOCATION_NAMES = tuple(_LOCATIONS)
_REST = np.array([-0.45, 0.95, 0.15])  # dominant wrist at rest (hands low, in front of the hips)
_BASE = np.array([0.20, 0.70, 0.50])  # non-dominant wrist of a two-handed sign with a base hand
_PATHS = ("line", "arc", "circle", "repeat")
_HANDS = ("one", "mirror", "base")

# Hand model, in hand lengths (wrist to extended middle tip = ~1), frame (along, across): along
# the forearm towards the fingertips, across towards the thumb (palm facing the camera).
_FINGER_BASE = np.array([[0.42, 0.11], [0.44, 0.035], [0.42, -0.04], [0.38, -0.11]])  # index..pinky MCP
_FINGER_LEN = np.array([[0.21, 0.12, 0.09], [0.23, 0.14, 0.10], [0.21, 0.13, 0.09], [0.16, 0.10, 0.08]])
_THUMB_BASE, _THUMB_LEN = np.array([0.10, 0.10]), np.array([0.20, 0.14, 0.12])
_FIST = (85, 100, 60)
_STRAIGHT = (0, 0, 0)
_THUMB_IN = (40, (30, 60, 40))  # thumb folded over the fingers
# name -> (spread of index..pinky in degrees, flexion (MCP, PIP, DIP) per finger in degrees,
#          (thumb direction in degrees from `along` towards `across`, thumb flexion in-plane)).
# Finger flexion bends out of the image plane (the projected segment shortens, past 90 degrees
# it points back); the thumb opposes within the plane.
_HANDSHAPE_SPECS = {
    "open": ((12, 2, -8, -18), [_STRAIGHT] * 4, (55, _STRAIGHT)),
    "flat": ((3, 0, -3, -6), [_STRAIGHT] * 4, (12, _STRAIGHT)),
    "fist": ((5, 0, -5, -10), [_FIST] * 4, _THUMB_IN),
    "point": ((5, 0, -5, -10), [_STRAIGHT, _FIST, _FIST, _FIST], _THUMB_IN),
    "V": ((14, -6, -5, -10), [_STRAIGHT, _STRAIGHT, _FIST, _FIST], _THUMB_IN),
    "claw": ((12, 2, -8, -18), [(25, 70, 50)] * 4, (50, (10, 20, 20))),
    "Y": ((5, 0, -5, -30), [_FIST, _FIST, _FIST, _STRAIGHT], (75, _STRAIGHT)),
    "L": ((0, 0, -5, -10), [_STRAIGHT, _FIST, _FIST, _FIST], (85, _STRAIGHT)),
    "O": ((4, 0, -4, -8), [(45, 55, 35)] * 4, (35, (15, 30, 30))),
    "bent": ((3, 0, -3, -6), [(85, 0, 0)] * 4, (15, _STRAIGHT)),
    "relaxed": ((8, 0, -6, -12), [(15, 25, 15)] * 4, (30, (5, 10, 5))),  # resting hand only
}
HANDSHAPES = tuple(n for n in _HANDSHAPE_SPECS if n != "relaxed")


def _shape_points(spread, flex, thumb) -> np.ndarray:
    """The 21 hand joints (21, 2) in the (along, across) frame of one handshape."""
    pts = np.zeros((21, 2))
    phi, tflex = thumb
    p, cum = _THUMB_BASE.copy(), 0.0
    pts[1] = p
    for k in range(3):
        cum += np.radians(tflex[k])
        d = np.radians(phi) - cum
        p = p + _THUMB_LEN[k] * np.array([np.cos(d), np.sin(d)])
        pts[2 + k] = p
    for f in range(4):
        direction = np.array([np.cos(np.radians(spread[f])), np.sin(np.radians(spread[f]))])
        p, cum = _FINGER_BASE[f].copy(), 0.0
        pts[5 + 4 * f] = p
        for k in range(3):
            cum += np.radians(flex[f][k])
            p = p + _FINGER_LEN[f, k] * np.cos(cum) * direction
            pts[6 + 4 * f + k] = p
    return pts


_SHAPE_POINTS = {name: _shape_points(*spec) for name, spec in _HANDSHAPE_SPECS.items()}
_SHAPE_DIST = {(a, b): float(np.linalg.norm(_SHAPE_POINTS[a] - _SHAPE_POINTS[b], axis=1).mean())
               for a in _SHAPE_POINTS for b in _SHAPE_POINTS}

# Face, in head widths from the nose tip (x right in the image, y down), FACE_NAMES order.
_FACE_TEMPLATE = np.array([
    [-0.40, -0.50], [-0.25, -0.56], [-0.09, -0.50], [0.09, -0.50], [0.25, -0.56], [0.40, -0.50],  # brows
    [-0.34, -0.36], [-0.12, -0.35], [0.12, -0.35], [0.34, -0.36],  # eye corners
    [-0.23, -0.40], [0.23, -0.40],  # upper lids
    [-0.19, 0.30], [0.19, 0.30], [0.00, 0.24], [0.00, 0.37], [0.00, 0.29], [0.00, 0.31],  # mouth
    [0.00, 0.62],  # chin
])


_FACE_INDEX = {n: i for i, n in enumerate(FACE_NAMES)}


def _face_delta(**moves: tuple[float, float]) -> np.ndarray:
    """Point displacements (19, 2). A name with SIDE moves both sides symmetrically, dx > 0 towards
    the face midline; any other name is a FACE_NAMES entry moved by (dx, dy) in image axes."""
    d = np.zeros((19, 2))
    for name, (dx, dy) in moves.items():
        if "SIDE" in name:
            d[_FACE_INDEX[name.replace("SIDE", "right")]] += (dx, dy)  # the signer's right is at x < 0
            d[_FACE_INDEX[name.replace("SIDE", "left")]] += (-dx, dy)
        else:
            d[_FACE_INDEX[name]] += (dx, dy)
    return d

# Non-manual expressions (head widths). Larger than real faces move relative to a shoulder, on
# purpose: the channel must be learnable from 2D keypoints with jitter (see corpus_stats.py).
_EXPRESSIONS = {
    "neutral": np.zeros((19, 2)),
    "brows_up": _face_delta(SIDE_brow_outer=(0, -0.12), SIDE_brow_middle=(0, -0.15), SIDE_brow_inner=(0, -0.13),
                            SIDE_upper_lid=(0, -0.05)),
    "brows_down": _face_delta(SIDE_brow_inner=(0.05, 0.10), SIDE_brow_middle=(0.02, 0.07),
                              SIDE_brow_outer=(0, 0.03), SIDE_upper_lid=(0, 0.03)),
    "mouth_open": _face_delta(lower_lip_outer=(0, 0.20), lower_lip_inner=(0, 0.20), upper_lip_inner=(0, -0.02),
                              chin=(0, 0.17), mouth_right=(0.04, 0.06), mouth_left=(-0.04, 0.06)),
    "mouth_round": _face_delta(mouth_right=(0.09, 0.0), mouth_left=(-0.09, 0.0), upper_lip_outer=(0, -0.04),
                               lower_lip_outer=(0, 0.06), upper_lip_inner=(0, -0.03), lower_lip_inner=(0, 0.05)),
    "mouth_spread": _face_delta(mouth_right=(-0.08, -0.04), mouth_left=(0.08, -0.04), lower_lip_outer=(0, -0.02),
                                upper_lip_inner=(0, -0.01), lower_lip_inner=(0, 0.01)),
    "squint": _face_delta(SIDE_upper_lid=(0, 0.06), SIDE_brow_outer=(0, 0.05), SIDE_brow_middle=(0, 0.04)),
}
_EXPRESSIONS["brows_up+mouth_open"] = _EXPRESSIONS["brows_up"] + _EXPRESSIONS["mouth_open"]
_EXPRESSIONS["brows_down+mouth_round"] = _EXPRESSIONS["brows_down"] + _EXPRESSIONS["mouth_round"]
_EXPRESSIONS["squint+mouth_spread"] = _EXPRESSIONS["squint"] + _EXPRESSIONS["mouth_spread"]
_EXPRESSION_GAIN = 1.25  # tuned with corpus_stats.py: face-only pairs separable by 1-NN, still the hardest
_EXPRESSIONS = {k: v * _EXPRESSION_GAIN for k, v in _EXPRESSIONS.items()}
EXPRESSIONS = tuple(_EXPRESSIONS)
_FACE_DIST = {(a, b): float(np.linalg.norm(_EXPRESSIONS[a] - _EXPRESSIONS[b], axis=1).mean())
              for a in _EXPRESSIONS for b in _EXPRESSIONS}
MIN_HAND_CONTRAST = 0.12  # mean joint distance (hand lengths) between the shapes of a hand minimal pair
MIN_FACE_CONTRAST = 0.045  # mean point distance (head widths) between the faces of a face minimal pair


@dataclass(frozen=True)
class Trajectory:
    """The manual movement of a sign, shared by the members of a minimal-pair family."""

    path: str  # "line" | "arc" | "circle" | "repeat"
    keys: tuple[str, ...]  # 2-3 location names the dominant wrist passes through
    hands: str  # "one" | "mirror" (the other hand mirrors) | "base" (the other hand holds still)
    bend: float  # wrist bend relative to the forearm, radians
    bulge: float  # arc height or circle radius, shoulder widths (signed: which side)
    frames: int  # duration at 25 fps for a signer of speed 1


@dataclass(frozen=True)
class GlossSign:
    """One gloss of the inventory and how it is signed."""

    gloss: str
    trajectory: Trajectory
    handshapes: tuple[str, str]  # start, end (the same for a static handshape)
    face: str  # a name in EXPRESSIONS
    family: int  # glosses of one family share the trajectory (minimal pairs)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _locate(name: str, nose_height: float, face: float, space: float) -> np.ndarray:
    anchor, x, y, z = _LOCATIONS[name]
    if anchor == "face":
        return np.array([x * face, -nose_height + y * face, z])
    s = space if anchor == "space" else 1.0
    return np.array([x * s, y * s, z])


def _wrist_path(traj: Trajectory, keys: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Dominant wrist positions (n, 3) at normalized times u (n,) through key positions (K, 3)."""
    if traj.path == "circle":  # a loop through the first key, then to the second
        loop = u < 0.6
        theta = 2 * np.pi * _smoothstep(u / 0.6)
        r, sgn = abs(traj.bulge), np.sign(traj.bulge)
        circle = keys[0] + r * np.stack([sgn * np.sin(theta), np.cos(theta) - 1.0, np.zeros_like(u)], -1)
        f = _smoothstep((u - 0.6) / 0.4)[:, None]
        return np.where(loop[:, None], circle, keys[0] + f * (keys[1] - keys[0]))
    if traj.path == "repeat":  # back and forth: k0 -> k1 -> k0 -> k1
        keys = keys[[0, 1, 0, 1]]
    legs = len(keys) - 1
    s = u * legs
    leg = np.minimum(s.astype(int), legs - 1)
    f = _smoothstep(s - leg)[:, None]
    a, b = keys[leg], keys[leg + 1]
    pos = a + f * (b - a)
    if traj.path == "arc":  # bulge sideways (in the image plane) on every leg
        d = (b - a)[:, :2]
        perp = np.stack([-d[:, 1], d[:, 0]], -1) / (np.linalg.norm(d, axis=1, keepdims=True) + 1e-9)
        pos[:, :2] += traj.bulge * np.sin(np.pi * f) * perp
    return pos


def _reference_path(traj: Trajectory) -> np.ndarray:
    """Both wrists' image-plane path (16, 4) for an average signer: to keep trajectories distinct."""
    keys = np.stack([_locate(k, 0.75, 0.43, 1.0) for k in traj.keys])
    right = _wrist_path(traj, keys, np.linspace(0, 1, 16))
    left = _other_wrist(traj, right)
    return np.concatenate([right[:, :2], left[:, :2]], 1)


def _mirror(p: np.ndarray) -> np.ndarray:
    return p * np.array([-1.0, 1.0, 1.0])


def _other_wrist(traj: Trajectory, right: np.ndarray) -> np.ndarray:
    if traj.hands == "mirror":
        return _mirror(right)
    return np.broadcast_to(_mirror(_REST) if traj.hands == "one" else _BASE, right.shape).copy()


def _sample_trajectory(rng: np.random.Generator) -> Trajectory:
    path = _PATHS[rng.choice(4, p=[0.35, 0.3, 0.15, 0.2])]
    hands = _HANDS[rng.choice(3, p=[0.6, 0.25, 0.15])]
    n_keys = 3 if path in ("line", "arc") and rng.random() < 0.4 else 2
    allowed = [n for n in _LOCATION_NAMES if not (hands == "mirror" and n in ("cross", "shoulder_opp"))]
    while True:
        keys = [allowed[i] for i in rng.choice(len(allowed), n_keys, replace=False)]
        pos = np.stack([_locate(k, 0.75, 0.43, 1.0) for k in keys])
        if (np.linalg.norm(np.diff(pos[:, :2], axis=0), axis=1) >= 0.35).all():  # large motion per leg
            break
    bulge = float(rng.uniform(0.12, 0.25) * rng.choice([-1, 1]))
    frames = int(rng.integers(13, 19)) + (2 if path in ("circle", "repeat") else 0)
    return Trajectory(path, tuple(keys), hands, float(rng.choice([-0.5, 0.0, 0.5])), bulge, frames)


def _family_sizes(n: int) -> list[int]:
    """Family sizes: n // 8 triples, max(n // 8, 1) pairs, the rest single (>= 1/3 have a partner)."""
    triples, pairs = n // 8, max(n // 8, 1) if n >= 2 else 0
    return [3] * triples + [2] * pairs + [1] * (n - 3 * triples - 2 * pairs)


def gloss_inventory(seed: int, glosses: int) -> list[GlossSign]:
    """The signs of the first `glosses` glosses of INVENTORY_ORDER, in that order.

    Families of size 3 (base, a handshape variant, a face variant), 2 (alternately differing in
    handshape, face, or both) and 1 share a trajectory within the family and have distinct
    trajectories across families. Deterministic in (seed, glosses); split sizes do not change it.
    """
    _check_int("glosses", glosses, MIN_GLOSSES, MAX_GLOSSES)
    rng = np.random.default_rng([seed, 0])
    names = INVENTORY_ORDER[:glosses]
    order = rng.permutation(glosses)
    sizes = _family_sizes(glosses)
    # Distinct trajectories: reject a candidate whose reference path is too close to one taken;
    # relax the threshold if the signing space is crowded (large inventories).
    paths: list[np.ndarray] = []
    trajectories: list[Trajectory] = []
    threshold, tries = 0.25, 0
    while len(trajectories) < len(sizes):
        t = _sample_trajectory(rng)
        p = _reference_path(t)
        tries += 1
        if all(np.linalg.norm(p - q, axis=1).mean() >= threshold for q in paths):
            trajectories.append(t)
            paths.append(p)
        elif tries % 200 == 0:
            threshold *= 0.8
    shape_seqs = [(a, b) for a in HANDSHAPES for b in HANDSHAPES]

    def hand_seq() -> tuple[str, str]:
        a = HANDSHAPES[rng.integers(len(HANDSHAPES))]
        return (a, a) if rng.random() < 0.5 else (a, HANDSHAPES[rng.integers(len(HANDSHAPES))])

    def other_hand(seq: tuple[str, str]) -> tuple[str, str]:
        far = [s for s in shape_seqs
               if 0.5 * (_SHAPE_DIST[seq[0], s[0]] + _SHAPE_DIST[seq[1], s[1]]) >= MIN_HAND_CONTRAST]
        return far[rng.integers(len(far))]

    def face() -> str:  # neutral half of the time
        return "neutral" if rng.random() < 0.5 else EXPRESSIONS[1 + rng.integers(len(EXPRESSIONS) - 1)]

    def other_face(f: str) -> str:
        far = [e for e in EXPRESSIONS if _FACE_DIST[f, e] >= MIN_FACE_CONTRAST]
        return far[rng.integers(len(far))]

    signs: dict[str, GlossSign] = {}
    start, pair_kind = 0, 0
    for family, (size, traj) in enumerate(zip(sizes, trajectories)):
        members = [names[i] for i in order[start:start + size]]
        start += size
        h, f = hand_seq(), face()
        if size == 3:
            variants = [(h, f), (other_hand(h), f), (h, other_face(f))]
        elif size == 2:
            kind = ("hand", "face", "both")[pair_kind % 3]
            pair_kind += 1
            h2 = other_hand(h) if kind in ("hand", "both") else h
            f2 = other_face(f) if kind in ("face", "both") else f
            variants = [(h, f), (h2, f2)]
        else:
            variants = [(h, f)]
        for g, (hs, fc) in zip(members, variants):
            signs[g] = GlossSign(g, traj, hs, fc, family)
    return [signs[g] for g in names]


def minimal_pairs(inventory: list[GlossSign]) -> dict[str, list[tuple[str, str]]]:
    """Gloss pairs with the same trajectory, by what tells them apart: "hand" (only the
    handshapes), "face" (only the face), "hand+face" (both, nothing else)."""
    out: dict[str, list[tuple[str, str]]] = {"hand": [], "face": [], "hand+face": []}
    for i, a in enumerate(inventory):
        for b in inventory[i + 1:]:
            if a.trajectory != b.trajectory:
                continue
            hand, face = a.handshapes != b.handshapes, a.face != b.face
            if hand or face:
                out["hand+face" if hand and face else ("hand" if hand else "face")].append((a.gloss, b.gloss))
    return out


# ----------------------------------------------------------------------------------------------
# Signers and rendering.
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signer:
    """Body proportions (in shoulder widths unless said otherwise), placement and speed."""

    name: str
    shoulder_px: float  # shoulder width in pixels
    centre_px: tuple[float, float]  # shoulder midpoint in the image
    upper_arm: float
    forearm: float
    hand: float  # hand length
    face: float  # head width
    nose_height: float  # nose above the shoulder line
    space: float  # size of the signing space
    speed: float  # frames multiplier (> 1: slower)


def make_signers(seed: int, signers: int) -> list[Signer]:
    rng = np.random.default_rng([seed, 1])
    out = []
    for k in range(signers):
        u = rng.uniform(size=10)
        out.append(Signer(
            name=f"signer{k + 1}", shoulder_px=150 + 70 * u[0],
            centre_px=(560 + 160 * u[1], 320 + 60 * u[2]),
            upper_arm=0.75 + 0.12 * u[3], forearm=0.65 + 0.12 * u[4], hand=0.45 + 0.10 * u[5],
            face=0.40 + 0.07 * u[6], nose_height=0.68 + 0.14 * u[7], space=0.88 + 0.24 * u[8],
            speed=0.85 + 0.35 * u[9],
        ))
    return out


# The per-frame control vector: what is interpolated across transitions (coarticulation).
_C_RW, _C_LW = slice(0, 3), slice(3, 6)  # wrists (shoulder widths, 3D)
_C_RS, _C_LS = slice(6, 48), slice(48, 90)  # handshapes (21 x 2, hand frame)
_C_FACE = slice(90, 128)  # face expression (19 x 2, head widths)
_C_BEND = slice(128, 130)  # wrist bends (right, left)
_C = 130


def _rest_control() -> np.ndarray:
    c = np.zeros(_C)
    c[_C_RW], c[_C_LW] = _REST, _mirror(_REST)
    c[_C_RS] = c[_C_LS] = _SHAPE_POINTS["relaxed"].ravel()
    return c


_REST_CONTROL = _rest_control()


def _sign_controls(sign: GlossSign, signer: Signer, n: int, rng: np.random.Generator) -> np.ndarray:
    """Control vectors (n, _C) of one sign instance."""
    traj = sign.trajectory
    u = np.linspace(0.0, 1.0, n)
    keys = np.stack([_locate(k, signer.nose_height, signer.face, signer.space) for k in traj.keys])
    keys[:, :2] += rng.normal(0.0, 0.03, (len(keys), 2))  # no two productions are the same
    right = _wrist_path(traj, keys, u)  # (n, 3)
    c = np.empty((n, _C))
    c[:, _C_RW] = right
    c[:, _C_LW] = _other_wrist(traj, right)
    w = _smoothstep((u - 0.2) / 0.6)[:, None]  # handshape change in the middle of the sign
    a, b = _SHAPE_POINTS[sign.handshapes[0]].ravel(), _SHAPE_POINTS[sign.handshapes[1]].ravel()
    c[:, _C_RS] = a + w * (b - a)
    c[:, _C_LS] = c[:, _C_RS] if traj.hands == "mirror" else _SHAPE_POINTS[
        "relaxed" if traj.hands == "one" else "flat"].ravel()
    c[:, _C_FACE] = _EXPRESSIONS[sign.face].ravel() * _smoothstep(u / 0.3)[:, None]  # onset, then hold
    c[:, 128] = traj.bend
    c[:, 129] = -traj.bend if traj.hands == "mirror" else 0.0
    return c


def _transition(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """k frames strictly between control vectors a and b (eased)."""
    w = _smoothstep(np.arange(1, k + 1) / (k + 1))[:, None]
    return a + w * (b - a)


def _elbow(shoulder: np.ndarray, wrist: np.ndarray, l1: np.ndarray, l2: np.ndarray, outward: float):
    """2-link arm inverse kinematics: (elbow (T, 3), reachable wrist (T, 3)) from the wrist target
    (T, 3) and the segment lengths (T, 1); the elbow hangs down (a little out and back) in the
    plane that contains the shoulder-wrist line."""
    d = wrist - shoulder  # (T, 3)
    dist = np.linalg.norm(d, axis=1, keepdims=True) + 1e-9  # (T, 1)
    dh = d / dist
    reach = np.clip(dist, np.abs(l1 - l2) + 1e-3, 0.999 * (l1 + l2))
    wrist = shoulder + dh * reach
    cos_a = np.clip((l1 * l1 + reach * reach - l2 * l2) / (2 * l1 * reach), -1.0, 1.0)  # (T, 1)
    g = np.array([0.35 * outward, 1.0, -0.3])
    n = g - (dh @ g)[:, None] * dh
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-9
    elbow = shoulder + l1 * (cos_a * dh + np.sqrt(1 - cos_a ** 2) * n)
    return elbow, wrist


def _hand(wrist: np.ndarray, elbow: np.ndarray, shape: np.ndarray, bend: np.ndarray,
          length: np.ndarray, forearm: np.ndarray, left: bool) -> np.ndarray:
    """21 hand joints (T, 21, 2): the shape (T, 21, 2), in hand lengths (T, 1), placed in the frame
    of the forearm's image direction turned by the wrist bend (T,)."""
    along = (wrist - elbow)[:, :2]  # (T, 2)
    along[:, 1] -= 0.1 * forearm[:, 0]  # bias up: a forearm pointing at the camera has no direction
    along /= np.linalg.norm(along, axis=1, keepdims=True)
    c, s = np.cos(bend), np.sin(bend)
    ax, ay = c * along[:, 0] - s * along[:, 1], s * along[:, 0] + c * along[:, 1]
    across = np.stack([ay, -ax], 1) if left else np.stack([-ay, ax], 1)  # towards the thumb
    along = np.stack([ax, ay], 1)
    offsets = shape[..., :1] * along[:, None] + shape[..., 1:] * across[:, None]  # (T, 21, 2)
    return wrist[:, None, :2] + length[:, :, None] * offsets


_NOSE, _NECK = CANONICAL.index("body.nose"), CANONICAL.index("body.neck")
_R_ELBOW, _R_WRIST = CANONICAL.index("body.right_elbow"), CANONICAL.index("body.right_wrist")
_L_ELBOW, _L_WRIST = CANONICAL.index("body.left_elbow"), CANONICAL.index("body.left_wrist")


def _render(controls: np.ndarray, who: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """Clean keypoints (T, V, 2) in pixels from control vectors (T, _C), the per-frame signer
    properties who (T, 9) (Signer fields in order, centre split in x and y) and the per-frame
    body sway and head motion motion (T, 4), in shoulder widths."""
    T = len(controls)
    shoulder_px, cx, cy, upper, fore, hand, face, nose_h = (who[:, i:i + 1] for i in range(8))
    pts = np.zeros((T, V, 2))
    r_sh, l_sh = np.array([-0.5, 0.0, 0.0]), np.array([0.5, 0.0, 0.0])
    r_el, r_wr = _elbow(r_sh, controls[:, _C_RW], upper, fore, -1.0)
    l_el, l_wr = _elbow(l_sh, controls[:, _C_LW], upper, fore, 1.0)
    nose = np.concatenate([np.zeros_like(nose_h), -nose_h], 1) + motion[:, 2:]  # (T, 2)
    pts[:, _NOSE] = nose
    pts[:, _NECK] = (0.0, -0.04)
    pts[:, CANONICAL.right_shoulder], pts[:, CANONICAL.left_shoulder] = r_sh[:2], l_sh[:2]
    pts[:, _R_ELBOW], pts[:, _R_WRIST] = r_el[:, :2], r_wr[:, :2]
    pts[:, _L_ELBOW], pts[:, _L_WRIST] = l_el[:, :2], l_wr[:, :2]
    pts[:, FACE] = nose[:, None] + face[:, :, None] * (_FACE_TEMPLATE + controls[:, _C_FACE].reshape(T, 19, 2))
    r_shape, l_shape = controls[:, _C_RS].reshape(T, 21, 2), controls[:, _C_LS].reshape(T, 21, 2)
    pts[:, _JOINTS_R] = _hand(r_wr, r_el, r_shape, controls[:, 128], hand, fore, left=False)
    pts[:, _JOINTS_L] = _hand(l_wr, l_el, l_shape, controls[:, 129], hand, fore, left=True)
    pts += motion[:, None, :2]
    return np.concatenate([cx, cy], 1)[:, None] + shoulder_px[:, :, None] * pts


def _derive_hand_points(kp: np.ndarray, mask: np.ndarray) -> None:
    """Palm centre and fingertip centroid from the 21 joints, in place (layout.py's rule)."""
    for hand in (LEFT_HAND, RIGHT_HAND):
        for target, sources in ((hand[21], PALM_CENTRE_FROM), (hand[22], FINGERTIP_CENTROID_FROM)):
            idx = [hand[i] for i in sources]
            kp[:, target] = kp[:, idx].mean(axis=1)
            mask[:, target] = mask[:, idx].all(axis=1)


def _sentence_controls(glosses: list[str], signs: dict[str, GlossSign], signer: Signer, fps: int,
                       rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int]], np.ndarray]:
    """(control vectors (T, _C), gloss boundaries, motion (T, 4)) of one signed sentence:
    rest, (transition, sign)*, transition, rest."""
    f = fps / 25.0  # durations are designed at 25 fps
    lo, hi = max(1, round(10 * f)), max(1, round(22 * f))
    blocks = [np.repeat(_REST_CONTROL[None], max(1, round(int(rng.integers(3, 7)) * f)), 0)]
    boundaries = []
    frame = len(blocks[0])
    for i, g in enumerate(glosses):
        n = int(np.clip(round(signs[g].trajectory.frames * signer.speed * rng.uniform(0.88, 1.12) * f), lo, hi))
        sign = _sign_controls(signs[g], signer, n, rng)
        k = max(1, round(int(rng.integers(4, 8 if i == 0 else 7)) * signer.speed * f))  # coarticulation
        blocks.append(_transition(blocks[-1][-1], sign[0], k))
        boundaries.append((frame + k, frame + k + n))
        frame += k + n
        blocks.append(sign)
    blocks.append(_transition(blocks[-1][-1], _REST_CONTROL, max(1, round(int(rng.integers(4, 8)) * f))))
    blocks.append(np.repeat(_REST_CONTROL[None], max(1, round(int(rng.integers(2, 6)) * f)), 0))
    controls = np.concatenate(blocks)  # (T, _C)
    # Slow body sway (x, y) and head motion (x, y), shoulder widths.
    t = np.arange(len(controls))[:, None] / fps
    amp, period, phase = rng.uniform(0.0, 0.02), rng.uniform(1.6, 3.6), rng.uniform(0, 2 * np.pi, 4)
    scale = np.array([amp, 0.4 * amp, 0.015, 0.015])
    freq = np.array([1 / period, 1 / period, 1 / 2.3, 1 / 1.7])
    motion = scale * np.sin(2 * np.pi * freq * t + phase)  # (T, 4)
    return controls, boundaries, motion


def _record(controls: list[np.ndarray], who: list[np.ndarray], motion: list[np.ndarray], rng: np.random.Generator,
            noisy_frame_rate: float, missing_point_rate: float, jitter: float):
    """Render and "detect" a batch of sentences at once (one vectorized pass over all frames):
    per sentence (keypoints (T, V, 2) float32, mask (T, V), noisy frame indices)."""
    lengths = [len(c) for c in controls]
    props = np.concatenate([np.repeat(w[None], n, 0) for w, n in zip(who, lengths)])  # (T, 9)
    kp = _render(np.concatenate(controls), props, np.concatenate(motion))  # (T, V, 2)
    T = len(kp)
    kp += rng.normal(0.0, 1.0, kp.shape) * (jitter * props[:, :1, None])  # jitter in shoulder widths
    # Noisy frames: a random subset (30-80%) of the observed points jumps to random image positions.
    noisy = np.flatnonzero(rng.random(T) < noisy_frame_rate)
    hit = rng.random((len(noisy), len(PRIMARY))) < rng.uniform(0.3, 0.8, (len(noisy), 1))
    jump = rng.uniform((0.0, 0.0), FRAME_SIZE, (len(noisy), len(PRIMARY), 2))
    rows = kp[noisy[:, None], PRIMARY[None]]  # (n, 69, 2)
    kp[noisy[:, None], PRIMARY[None]] = np.where(hit[..., None], jump, rows)
    # Missing points: 2/3 of the rate as single points, 1/3 as whole-hand dropouts of 3-8 frames.
    mask = np.ones((T, V), bool)
    mask[:, PRIMARY] = rng.random((T, len(PRIMARY))) >= missing_point_rate * 2 / 3
    mask &= ((kp >= 0) & (kp < FRAME_SIZE)).all(-1)  # outside the image: not detected (rare by design)
    for _ in range(rng.poisson(missing_point_rate / 3 * T * len(PRIMARY) / (21 * 5.5))):
        hand = (_JOINTS_L, _JOINTS_R)[rng.integers(2)]
        start = int(rng.integers(T))
        mask[start:start + int(rng.integers(3, 9)), hand] = False
    _derive_hand_points(kp, mask)
    kp[~mask] = 0.0
    kp = kp.astype(np.float32)
    starts = np.cumsum([0] + lengths)
    return [(kp[a:b].copy(), mask[a:b].copy(), noisy[(noisy >= a) & (noisy < b)] - a)
            for a, b in zip(starts[:-1], starts[1:])]


# ----------------------------------------------------------------------------------------------
# The corpus.
# ----------------------------------------------------------------------------------------------


def _check_int(key: str, value, lo: int, hi: int | None = None) -> None:
    integer = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not integer or value < lo or (hi is not None and value > hi):
        bound = f"an integer in [{lo}, {hi}]" if hi is not None else f"an integer >= {lo}"
        raise ValueError(f"synth: {key}={value!r}; expected {bound}")


def _check_rate(key: str, value, hi: float) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= value < hi:
        raise ValueError(f"synth: {key}={value!r}; expected a number in [0, {hi})")


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
    """
    _check_int("seed", seed, 0)
    _check_int("glosses", glosses, MIN_GLOSSES, MAX_GLOSSES)
    for key, value, lo in (("signers", signers, 1), ("train", train, 0), ("dev", dev, 0), ("test", test, 0),
                           ("min_signs", min_signs, 1), ("max_signs", max_signs, 1), ("fps", fps, 5)):
        _check_int(key, value, lo)
    if max_signs < min_signs:
        raise ValueError(f"synth: max_signs={max_signs} < min_signs={min_signs}; expected max_signs >= min_signs")
    _check_rate("noisy_frame_rate", noisy_frame_rate, 0.5)
    _check_rate("missing_point_rate", missing_point_rate, 0.5)
    _check_rate("jitter", jitter, 1.0)
    inventory = gloss_inventory(seed, glosses)
    signs = {s.gloss: s for s in inventory}
    grammar = _Grammar(tuple(signs))
    people = make_signers(seed, signers)
    corpus: Corpus = {}
    train_sentences: set[str] = set()
    train_glosses: set[str] = set()
    for si, split in enumerate(SPLITS):
        count = {"train": train, "dev": dev, "test": test}[split]
        rng = np.random.default_rng([seed, 2, si])
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
                raise ValueError(f"synth: no sentence of {min_signs}..{max_signs} glosses from an inventory of "
                                 f"{glosses}; widen min_signs/max_signs or use more glosses")
            if split == "train":
                train_sentences.add(" ".join(gl))
                train_glosses.update(gl)
            signer = people[int(rng.integers(signers))]
            controls, boundaries, motion = _sentence_controls(
                gl, signs, signer, fps, np.random.default_rng([seed, 3, si, i]))
            drafts.append((controls, _signer_row(signer), motion))
            seqs.append(SignSequence(
                name=f"synth/{split}/{i}", keypoints=np.empty((0, V, 2), np.float32), mask=np.empty((0, V), bool),
                text=" ".join(w for w, _ in tokens) + " .", gloss=" ".join(gl), signer=signer.name,
                boundaries=boundaries,
                meta={"source": "synth", "fps": fps, "template": template, "alignment": _alignment(tokens, len(gl))},
            ))
        for chunk in range(0, count, _RECORD_CHUNK):  # bounded memory for paper-sized corpora
            recorded = _record(*zip(*drafts[chunk:chunk + _RECORD_CHUNK]),
                               np.random.default_rng([seed, 4, si, chunk]), noisy_frame_rate, missing_point_rate,
                               jitter)
            for seq, (kp, mask, noisy) in zip(seqs[chunk:], recorded):
                seq.keypoints, seq.mask = kp, mask
                seq.meta["noisy_frames"] = [int(t) for t in noisy]
        corpus[split] = seqs
    return corpus
