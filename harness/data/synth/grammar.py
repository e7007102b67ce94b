"""The language of the synthetic corpus: a lexicon of weather and daily-life glosses (like
PHOENIX14T's domain) and a grammar that yields (gloss sequence, spoken sentence) pairs.

Gloss order is time-first, topic (subject, object or place) before a clause-final verb, negation
and modals after the verb, nouns before their adjectives; the English text is subject-verb-object
with the time phrase moved and carries function words that have no sign, so a model has to learn
reordering and insertion, not a word-by-word lookup.
"""

from __future__ import annotations

from harness.data.record import DataError

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


def inventory_order(head, tables) -> tuple[str, ...]:
    """A language's inventory order: the head as given, then one new gloss of each table in turn
    until every table is used up (each language's first N glosses can say something)."""
    order = list(head)
    tables = [list(t) for t in tables]
    while any(tables):
        for t in tables:
            while t:
                g = t.pop(0)
                if g not in order:
                    order.append(g)
                    break
    return tuple(order)


INVENTORY_ORDER = inventory_order(_HEAD, (_TIME, _PERSON, _OBJECT, _VERB_T, _PLACE, _VERB_M, _VERB_I, _WEATHER,
                                           _REGION, _TEMP, _ADJ, _SPECIAL))
MIN_GLOSSES, MAX_GLOSSES = 4, len(INVENTORY_ORDER)


def slot(gloss: str) -> str:
    """The slot a gloss fills in the grammar: glosses of one slot can replace each other in a
    sentence (COFFEE / TEA, NORTH / SOUTH, TODAY / TOMORROW, EAT / DRINK), so the sentence around
    a sign does not tell them apart. Objects are split by what they are (food, drink, ...), and
    HAVE is a transitive verb like BUY; NOT, STRONG and VERY fill slots of their own."""
    if gloss in _OBJECT:
        return "object:" + _OBJECT[gloss][1][0]
    for name, table in (("time", _TIME), ("person", _PERSON), ("verb_t", _VERB_T), ("place", _PLACE),
                        ("verb_m", _VERB_M), ("verb_i", _VERB_I), ("weather", _WEATHER), ("region", _REGION),
                        ("temp", _TEMP), ("adj", _ADJ)):
        if gloss in table:
            return name
    if gloss in _MODAL:
        return "modal"
    return "verb_t" if gloss == "HAVE" else gloss


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
            raise DataError(f"synth: the inventory {sorted(have)} cannot form a sentence; use more glosses")

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

