"""Signers and recording for the synthetic corpus: per-signer proportions, placement and speed;
rendering a gloss sequence into 2D keypoints in the canonical 73-point layout (arms by 2-link
inverse kinematics, coarticulated transitions, body sway); and "detecting" them like a pose
estimator would (jitter, noisy frames, missing points, derived hand points as a reader computes
them). Coordinates are pixel-like (a 1280x720 image, y down), so the preprocessing of appendix B.1
has real work to do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.data.synth.signs import (
    _EXPRESSIONS, _FACE_TEMPLATE, _LOCATIONS, _REST, _SHAPE_POINTS, TWIST_CYCLES, GlossSign, _locate, _mirror,
    _other_wrist, _smoothstep, _wrist_path,
)
from models.layout import CANONICAL, FINGERTIP_CENTROID_FROM, PALM_CENTRE_FROM

FRAME_SIZE = (1280, 720)  # (width, height) of the virtual camera image, pixels
V = CANONICAL.num_points  # 73
BODY, FACE = CANONICAL.parts["body"], CANONICAL.parts["face"]
LEFT_HAND, RIGHT_HAND = CANONICAL.parts["left_hand"], CANONICAL.parts["right_hand"]
# The 69 points a detector observes; the 4 derived hand points are computed from them.
_JOINTS_L = np.asarray(LEFT_HAND[:21])
_JOINTS_R = np.asarray(RIGHT_HAND[:21])
PRIMARY = np.concatenate([np.asarray(BODY), np.asarray(FACE), _JOINTS_L, _JOINTS_R])
# Detector jitter per point, in units of `jitter`: face landmarks are localised more precisely than
# limb and hand joints (and real faces barely move relative to their centroid: corpus_stats.py).
PART_JITTER = np.ones(V)
PART_JITTER[list(FACE)] = 0.5
# A noisy frame (a detector failure) moves this share of the observed points (uniform in the range):
# most of the skeleton, so that B.1 can see it; a frame where only a few points jump would survive the
# removal and dominate the small channels' variance, which real detectors' masked low-confidence
# points do not.
FAILURE_SHARE = (0.5, 0.9)
# The signing space (shoulder widths): key locations are drawn towards SPACE_CENTRE by these factors
# (locations at the face less, so that face signs stay near the face). Real signers' arms move about as
# much as their hands move relative to the wrists, and far less than the full reach of the arms
# (corpus_stats.py measures both on the real samples).
SPACE_CENTRE, SPACE_SCALE, FACE_LOCATION_SCALE = np.array([-0.15, 0.25]), 0.45, 0.6
DERIVED = np.asarray([LEFT_HAND[21], LEFT_HAND[22], RIGHT_HAND[21], RIGHT_HAND[22]])


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


def make_signers(seed: int, signers: int, *, stream: int = 1, prefix: str = "signer") -> list[Signer]:
    """`signers` signers drawn from the seed stream [seed, stream]; the sentence corpus uses stream 1,
    the out-of-domain isolated signs another (isolated.py), so their signers are other people."""
    rng = np.random.default_rng([seed, stream])
    out = []
    for k in range(signers):
        u = rng.uniform(size=10)
        out.append(Signer(
            name=f"{prefix}{k + 1}", shoulder_px=150 + 70 * u[0],
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
    scale = np.array([FACE_LOCATION_SCALE if _LOCATIONS[k][0] == "face" else SPACE_SCALE for k in traj.keys])
    keys[:, :2] = SPACE_CENTRE + scale[:, None] * (keys[:, :2] - SPACE_CENTRE)  # (K, 2)
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
    c[:, 128] = traj.bend + traj.twist * np.sin(2 * np.pi * TWIST_CYCLES * u)  # secondary movement
    c[:, 129] = -c[:, 128] if traj.hands == "mirror" else 0.0
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
    kp += rng.normal(0.0, 1.0, kp.shape) * (jitter * props[:, :1, None] * PART_JITTER[:, None])  # shoulder widths
    # Noisy frames: a random subset (FAILURE_SHARE) of the observed points jumps to random image positions.
    noisy = np.flatnonzero(rng.random(T) < noisy_frame_rate)
    hit = rng.random((len(noisy), len(PRIMARY))) < rng.uniform(*FAILURE_SHARE, (len(noisy), 1))
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
