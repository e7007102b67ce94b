"""The phonology of the synthetic corpus: how each gloss is signed (paper section 3.3's question).

A sign is a hand trajectory (the dominant wrist through 2-3 key locations of the signing space in
one of four path types; one- or two-handed), a handshape sequence (the 21 hand joints relative to
the wrist, from a start to an end shape) and a facial expression. The inventory is built in
families that share a trajectory and differ only in handshape, only in face, or in both (minimal
pairs), so a model that ignores the small channels cannot tell them apart: what pose weighting
(APW, paper eq. 1-2) is about. The members of a family fill one grammatical slot (_families), so
the sentence around a sign does not tell them apart either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.data.synth.grammar import INVENTORY_ORDER, slot
from models.layout import FACE_NAMES

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
# Secondary movement: in this share of the trajectories the wrist rotates back and forth (a twist of
# the palm, 1.5 cycles over the sign) with an amplitude drawn from TWIST, radians. Real hands move
# relative to their wrists about as much as the arms move (body : wrist-relative hands variance 0.8-1.9
# on the real samples, scripts/corpus_stats.py); handshape changes alone leave them too still.
TWIST_SHARE, TWIST, TWIST_CYCLES = 0.7, (0.4, 0.8), 1.5
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

# Non-manual expressions (head widths). Sized so that the centroid-normalised face's variance relative
# to the body's falls inside the real samples' range (scripts/corpus_stats.py, tests/test_synth.py) while
# face-only minimal pairs stay separable by a 1-NN on 2D keypoints with jitter.
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
_EXPRESSION_GAIN = 0.9  # tuned with corpus_stats.py: face/body variance in the real range, face-only pairs separable
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
    twist: float  # amplitude of the wrist's back-and-forth rotation (TWIST), radians; 0 = none
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
    twists, size, side = rng.random(), rng.uniform(*TWIST), rng.choice([-1, 1])  # all drawn: one stream either way
    twist = float(size * side) if twists < TWIST_SHARE else 0.0
    return Trajectory(path, tuple(keys), hands, float(rng.choice([-0.5, 0.0, 0.5])), twist, bulge, frames)


def _family_sizes(n: int) -> list[int]:
    """Family sizes: n // 8 triples, max(n // 8, 1) pairs, the rest single (>= 1/3 have a partner)."""
    triples, pairs = n // 8, max(n // 8, 1) if n >= 2 else 0
    return [3] * triples + [2] * pairs + [1] * (n - 3 * triples - 2 * pairs)


def _families(names: tuple[str, ...], sizes: list[int], rng: np.random.Generator, slot_of=slot) -> list[list[str]]:
    """Members of each family (sizes in order). A family of 2 or 3 is drawn from one grammatical
    slot (grammar.slot: COFFEE / TEA, NORTH / SOUTH, TODAY / TOMORROW) whenever a slot has that
    many glosses left, as real minimal pairs often are (signs of one semantic field share their
    movement), so the sentence around a sign cannot tell the members apart; only when none has
    (tiny inventories) is a family drawn across slots. The rest are families of one. slot_of: the
    language's slots (the second language's: second_language.slot2)."""
    left: dict[str, list[str]] = {}
    for g in names:
        left.setdefault(slot_of(g), []).append(g)
    for members in left.values():
        rng.shuffle(members)
    out = []
    for size in sizes:
        if size == 1:
            break
        room = [k for k, v in left.items() if len(v) >= size]
        if room:
            members = left[room[rng.integers(len(room))]]
            out.append([members.pop() for _ in range(size)])
        else:  # across slots, from the emptiest ones: what is left for the next families stays paired
            emptiest = sorted(left, key=lambda k: len(left[k]))[:size]
            out.append([left[k].pop() for k in emptiest])
        left = {k: v for k, v in left.items() if v}
    singles = [g for g in names if all(g not in f for f in out)]
    return out + [[g] for g in singles]


def gloss_inventory(seed: int, glosses: int) -> list[GlossSign]:
    """The signs of the first `glosses` glosses of INVENTORY_ORDER, in that order.

    Families of size 3 (base, a handshape variant, a face variant), 2 (alternately differing in
    handshape, face, or both) and 1 share a trajectory within the family and have distinct
    trajectories across families; the members of a family fill the same grammatical slot
    (_families). Deterministic in (seed, glosses); split sizes do not change it.
    """
    rng = np.random.default_rng([seed, 0])
    names = INVENTORY_ORDER[:glosses]
    sizes = _family_sizes(glosses)
    groups = _families(names, sizes, rng)
    return compose_signs(rng, names, groups, len(sizes))


def compose_signs(rng: np.random.Generator, names: tuple[str, ...], groups: list[list[str]], families: int
                  ) -> list[GlossSign]:
    """The signs of `names` (in that order) from the phonology: one trajectory per family of
    `groups` (the first `families` are drawn), its members varied in handshape, face or both as
    gloss_inventory describes. The out-of-domain inventory (isolated.py) composes its own glosses
    with this same function and its own seed stream."""
    # Distinct trajectories: reject a candidate whose reference path is too close to one taken;
    # relax the threshold if the signing space is crowded (large inventories).
    paths: list[np.ndarray] = []
    trajectories: list[Trajectory] = []
    threshold, tries = 0.25, 0
    while len(trajectories) < families:
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
        changes, b = rng.random() < 0.5, HANDSHAPES[rng.integers(len(HANDSHAPES))]  # both drawn: one stream
        return (a, b) if changes else (a, a)

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
    pair_kind = 0
    for family, (members, traj) in enumerate(zip(groups, trajectories)):
        size = len(members)
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
