"""Keypoint preprocessing (paper appendix B.1): shoulder normalization and noisy-frame removal.

1. normalize: centre at the shoulder midpoint and scale so the shoulder length is 1. Both are per
   sequence and robust: the centre is the (coordinate-wise) median shoulder midpoint and the scale
   the median shoulder length over the frames where both shoulders are present, so one misdetected
   shoulder cannot move or blow up a whole sequence. One translation and one scale per sequence
   (not per frame) keep body sway and leaning, which carry meaning in signing, and keep a single
   bad shoulder detection local to that frame's shoulder points. A sequence with no frame that has
   both shoulders cannot be normalized: DataError.

2. Noisy-frame removal (eq. 7-9): D(t) = mean over joints of ||x_t - x_{t-1}||, and frames with
   D(t) > threshold are dropped. Our adaptations, because we carry a mask instead of OpenPose's
   zero-filled missing joints:
   - the mean runs over the joints present in both frames (a missing joint is not a jump);
   - a frame with no present point at all is dropped (it is what the paper's threshold removes:
     with zero-filled joints such a frame is a huge jump); counted with the dropped frames;
   - x_{t-1} is the last KEPT frame, so a one-frame spike is dropped and the frame after it is
     compared with the clean frame before it (comparing with the dropped spike would drop the
     clean frame too). If two frames share no present joint, D is undefined and the frame is kept;
   - the walk starts from an anchor, the first frame that agrees with the next one (D <= threshold;
     two random jumps rarely agree), and goes forward to the end and backward to the start, each
     frame compared with the last kept frame in walking direction. Starting at frame 0 instead
     would let a noisy first frame reject every later frame;
   - a spike just under the threshold is kept and becomes the reference, and the clean frame after
     it may then be just over the threshold. So a frame that disagrees with the last kept frame
     but agrees with the kept frame before it, and is closer to it than the last kept frame is,
     replaces the last kept one, which is dropped;
   - a "last kept" rule cannot recover from a real discontinuity (the signer steps aside, a cut):
     every later frame would be dropped. So a run of REANCHOR_FRAMES consecutive dropped frames
     that agree with each other (each with the one before) is a new position, not noise: the run
     is restored and becomes the reference. A misdetection lasting shorter than that is dropped.

   Threshold units: the paper's 400 is in pixels of How2Sign video, where a shoulder spans roughly
   200-300 px, i.e. about 1.3-2 shoulder lengths. Ours is in shoulder lengths (after step 1), and
   every function here takes it as an argument; its default, 0.75, is DataConfig.noise_threshold
   in harness/config.py (the data layer does not know the config). Why 0.75: a hand moves under
   ~0.5 shoulder lengths per frame at 25 fps and most of the 73 points (body, face) move far less,
   so real signing stays well below that. On the 15 real PHOENIX14T sentences (1942 frames) D
   averages 0.09 and peaks at 0.53 (the fastest sentence); on the real OpenPose and MediaPipe
   .pose samples it peaks at 0.15 and 0.13. 0.75 leaves a 1.4x margin over the fastest real frame
   (0.5 would drop 9 real PHOENIX frames; 0.6 none). On the synthetic corpus (its noisy frames
   move 50-90% of the points to random image positions) 0.75 drops all of the noisy frames and
   no clean one; 1.0 would catch 97%.
   Stricter than the paper's pixel value, which was tuned for zero-filled missing joints.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from harness.data.record import DataError, SignSequence
from models.layout import CANONICAL

REANCHOR_FRAMES = 12  # ~0.5 s at 25 fps: a run of mutually consistent "noisy" frames this long is kept


def shoulder_frame(keypoints: np.ndarray, mask: np.ndarray, name: str = "sequence") -> tuple[np.ndarray, float]:
    """(centre (C,), scale) of a sequence: median shoulder midpoint and median shoulder length
    over frames with both shoulders. keypoints (T, V, C), mask (T, V)."""
    rsh, lsh = CANONICAL.right_shoulder, CANONICAL.left_shoulder
    both = mask[:, rsh] & mask[:, lsh]  # (T,)
    if not both.any():
        raise DataError(f"{name}: no frame has both shoulders; expected at least one to normalize by shoulder length")
    right = keypoints[both, rsh].astype(np.float64)  # (T', C)
    left = keypoints[both, lsh].astype(np.float64)  # (T', C)
    centre = np.median((right + left) / 2, axis=0)  # (C,)
    scale = float(np.median(np.linalg.norm(right - left, axis=-1)))
    if not scale > 0:
        raise DataError(f"{name}: median shoulder length is {scale}; expected a positive distance between the shoulders")
    return centre, scale


def normalize(keypoints: np.ndarray, mask: np.ndarray, name: str = "sequence") -> np.ndarray:
    """Centre at the shoulder midpoint, scale to shoulder length 1 (per sequence, see module doc).

    keypoints (T, V, C), mask (T, V) -> (T, V, C) float32 with masked values 0.
    """
    centre, scale = shoulder_frame(keypoints, mask, name)
    out = (keypoints.astype(np.float64) - centre) / scale  # (T, V, C)
    return np.where(mask[..., None], out, 0.0).astype(np.float32)


def frame_displacement(a: np.ndarray, mask_a: np.ndarray, b: np.ndarray, mask_b: np.ndarray) -> np.ndarray:
    """Eq. 8-9 over the joints present in both frames: mean ||a - b||; NaN where none is shared.

    a, b (..., V, C), masks (..., V) -> (...)
    """
    both = mask_a & mask_b  # (..., V)
    dist = np.linalg.norm(a - b, axis=-1)  # (..., V)
    count = both.sum(-1)
    total = np.where(both, dist, 0.0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def keep_frames(keypoints: np.ndarray, mask: np.ndarray, threshold: float) -> np.ndarray:
    """(T,) bool: the frames that survive noisy-frame removal (rules in the module docstring)."""
    T = keypoints.shape[0]
    nonempty = mask.any(axis=1)  # (T,)
    if T == 0:
        return nonempty
    consecutive = frame_displacement(keypoints[1:], mask[1:], keypoints[:-1], mask[:-1])  # (T-1,)
    if nonempty.all() and not (consecutive > threshold).any():
        return nonempty  # fast path: nothing dropped, so "last kept" is always the previous frame
    keep = np.zeros(T, bool)
    frames = np.flatnonzero(nonempty)
    if len(frames) == 0:
        return keep

    def dist(i: int, j: int) -> float:
        return float(frame_displacement(keypoints[i], mask[i], keypoints[j], mask[j]))

    def agree(i: int, j: int) -> bool | None:
        d = dist(i, j)
        return None if np.isnan(d) else d <= threshold

    # Anchor: the first frame that agrees with the next one (two random jumps rarely agree).
    start = next((i for i in range(len(frames) - 1) if agree(frames[i], frames[i + 1])), 0)
    keep[frames[start]] = True
    for order in (frames[start + 1:], frames[:start][::-1]):  # forward, then backward from the anchor
        kept, run = [frames[start]], []  # kept: the kept frames of this walk, latest last
        for t in order:
            if agree(kept[-1], t) is not False:  # close to the last kept frame, or nothing to compare
                keep[t], run = True, []
                kept.append(t)
                continue
            if len(kept) >= 2 and agree(kept[-2], t) and dist(kept[-2], t) < dist(kept[-2], kept[-1]):
                # t fits the frame before the last kept one better than the last kept one did: that
                # was a spike just under the threshold, and keeping it as the reference would
                # reject the clean frames after it.
                keep[kept.pop()], keep[t], run = False, True, []
                kept.append(t)
                continue
            run = run + [t] if run and agree(run[-1], t) else [t]
            if len(run) >= REANCHOR_FRAMES:  # a lasting new position is a scene change, not noise
                keep[run] = True
                kept += run
                run = []
    return keep


def preprocess_sequence(seq: SignSequence, *, noise_threshold: float) -> tuple[SignSequence, int]:
    """Normalize, then drop noisy and empty frames. Returns (new sequence, number of dropped frames).

    Text, gloss, name, signer are kept; synthetic `boundaries` are mapped through the dropped
    frames (a boundary index counts the kept frames before it, so a gloss whose frames were all
    dropped gets an empty span and gloss order is preserved). meta["preprocess"] records the
    centre and scale (to map back to source units) and the dropped-frame counts.
    """
    centre, scale = shoulder_frame(seq.keypoints, seq.mask, seq.name)
    keypoints = normalize(seq.keypoints, seq.mask, seq.name)  # (T, V, C)
    keep = keep_frames(keypoints, seq.mask, noise_threshold)  # (T,)
    T = seq.num_frames
    # Recorded-but-missing frames (harness/data/timeline.py) keep their place in time: they are
    # empty because the source lost them, not because a detector failed, and dropping them would
    # pull the frames after a gap earlier.
    hold = np.zeros(T, bool)
    hold[list(seq.meta.get("missing_frames") or [])] = True
    hold &= ~seq.mask.any(axis=1)
    keep |= hold
    dropped = int(T - keep.sum())
    empty = int((~seq.mask.any(axis=1) & ~hold).sum())
    boundaries = None
    if seq.boundaries is not None:
        kept_before = np.concatenate([[0], np.cumsum(keep)])  # (T + 1,) new index of each old index
        boundaries = [
            (int(kept_before[min(max(s, 0), T)]), int(kept_before[min(max(e, 0), T)])) for s, e in seq.boundaries
        ]
    meta = dict(seq.meta)
    if "missing_frames" in meta:
        new_index = np.cumsum(keep) - 1  # (T,) index of each kept frame in the output
        meta["missing_frames"] = [int(new_index[t]) for t in np.flatnonzero(hold)]
    meta["preprocess"] = {
        "frames_raw": T,
        "dropped_empty": empty,
        "dropped_noisy": dropped - empty,
        "centre": [float(c) for c in centre],
        "scale": scale,
        "noise_threshold": float(noise_threshold),
    }
    out = dataclasses.replace(
        seq, keypoints=keypoints[keep], mask=seq.mask[keep].copy(), boundaries=boundaries, meta=meta
    )
    return out, dropped
