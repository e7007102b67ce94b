"""Time and coordinates as recorded, before preprocessing (paper section 4.2 "Keypoint Processing",
appendix B.1): frame gaps, one frame rate, one number of coordinates.

The paper's windows (w = 15 frames, strides 7 and 15, section 3.4 and appendix B.2) are lengths of
time at PHOENIX14T's 25 fps. A source at another rate, or with deleted frames read as consecutive,
would give the same window another duration; so every sequence is put on its recorded timeline
and resampled to one rate (data.fps) before anything is cut into windows.

- Gaps: a reader that knows frames are missing (OpenPose folders with missing frame numbers)
  lists them in meta["missing_frames"]; they are all-masked frames at their place in time.
  data.gaps = "mask" keeps them so (preprocessing does not drop them as empty frames);
  "interpolate" fills each point linearly across a gap of at most data.max_gap frames when the
  point is present on both sides (longer gaps, and points absent at an end, stay masked).
- Rate: linear interpolation to data.fps on the sequence's own clock (frame k at k / fps). A
  point is present at a new frame when both source frames around it are, or when only the nearer
  one is (then its value is taken as is). A source without a recorded rate (meta["fps"] None) is
  taken to be at data.fps. At equal rates nothing changes, bit for bit.
- Coordinates: data.dims "source" keeps a z that is in x/y's units (meta["z_units"] "xy": PT's
  3D lifting, our own .pose layout) and drops one that is not (MediaPipe's relative depth, which
  after shoulder normalization is 0.002 to 0.015 shoulder lengths: a third coordinate that is
  effectively 0); 2 drops every z; 3 keeps z where it is in x/y's units and refuses the rest
  (a 2D source, or MediaPipe's z, whose scale the files do not record).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from harness.data.record import Corpus, DataError, SignSequence

GAPS = ("mask", "interpolate")
DIMS = ("source", 2, 3)


def _runs(frames: list[int]) -> list[tuple[int, int]]:
    """Sorted frame indices -> (start, length) of each run of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for t in frames:
        if runs and runs[-1][0] + runs[-1][1] == t:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((t, 1))
    return runs


def fill_gaps(seq: SignSequence, mode: str, max_gap: int) -> SignSequence:
    """Interpolate the sequence's missing frames (module doc); "mask" returns seq unchanged."""
    if mode not in GAPS:
        raise ValueError(f"gaps mode {mode!r}; expected one of {GAPS}")
    missing = seq.meta.get("missing_frames") or []
    if mode == "mask" or not missing:
        return seq
    kp, mask = seq.keypoints.copy(), seq.mask.copy()  # (T, V, C), (T, V)
    T = seq.num_frames
    still = []
    for start, length in _runs(list(missing)):
        before, after = start - 1, start + length
        if length > max_gap or before < 0 or after >= T:
            still += list(range(start, start + length))
            continue
        both = mask[before] & mask[after]  # (V,)
        for i in range(1, length + 1):
            w = i / (length + 1)
            kp[before + i] = np.where(both[:, None], (1 - w) * kp[before] + w * kp[after], 0.0)
            mask[before + i] = both
        still += [t for t in range(start, start + length) if not mask[t].any()]
    meta = dict(seq.meta, missing_frames=still, filled_frames=len(missing) - len(still))
    return dataclasses.replace(seq, keypoints=kp.astype(np.float32), mask=mask, meta=meta)


def resample(seq: SignSequence, fps: float) -> SignSequence:
    """The sequence at `fps` frames per second (module doc); meta["fps_source"] keeps the recorded rate."""
    src = seq.meta.get("fps")
    if src is None or float(src) == float(fps) or seq.num_frames == 0:
        return seq
    src = float(src)
    T = seq.num_frames
    T_new = max(1, int(round(T * fps / src)))
    u = np.arange(T_new) * (src / fps)  # (T',) position of each new frame on the old frame axis
    i0 = np.minimum(np.floor(u).astype(np.int64), T - 1)
    i1 = np.minimum(i0 + 1, T - 1)
    w = np.where(i1 > i0, u - i0, 0.0)  # (T',)
    m0, m1 = seq.mask[i0], seq.mask[i1]  # (T', V)
    k0, k1 = seq.keypoints[i0].astype(np.float64), seq.keypoints[i1].astype(np.float64)  # (T', V, C)
    near1 = (w > 0.5)[:, None]  # (T', 1) the nearer source frame is i1
    both = m0 & m1
    lerp = (1 - w)[:, None, None] * k0 + w[:, None, None] * k1
    near = np.where(near1[..., None], k1, k0)
    mask = both | np.where(near1, m1, m0)  # (T', V)
    kp = np.where(both[..., None], lerp, np.where(mask[..., None], near, 0.0)).astype(np.float32)
    gap = np.zeros(T, bool)
    gap[list(seq.meta.get("missing_frames") or [])] = True
    missing = np.flatnonzero((gap[i0] | gap[i1]) & ~mask.any(axis=1)).tolist()
    boundaries = None
    if seq.boundaries is not None:
        scale = fps / src
        boundaries = [(min(int(round(a * scale)), T_new), min(int(round(b * scale)), T_new)) for a, b in seq.boundaries]
    meta = dict(seq.meta, fps=float(fps), fps_source=src, frames_recorded=T, missing_frames=missing)
    return dataclasses.replace(seq, keypoints=kp, mask=mask, boundaries=boundaries, meta=meta)


def conform_dims(seq: SignSequence, dims: str | int) -> SignSequence:
    """The sequence with the coordinates data.dims asks for (module doc)."""
    if dims not in DIMS:
        raise ValueError(f"dims {dims!r}; expected one of {DIMS}")
    C = int(seq.keypoints.shape[-1])
    units = seq.meta.get("z_units", "xy")  # sources without the key (synthetic, npz) are in one unit
    where = seq.meta.get("file") or seq.meta.get("folder") or seq.name
    if dims == 3 and C == 2:
        raise DataError(f"{where}: data.dims is 3 but the source has 2 coordinates (x, y); expected data.dims 2 or source")
    if dims == 3 and units != "xy":
        raise DataError(f"{where}: data.dims is 3 but its z is {units}'s relative depth, not in x/y's units, and the "
                        "file does not record its scale; expected data.dims 2 or source (z dropped)")
    if C == 3 and (dims == 2 or units != "xy"):
        meta = dict(seq.meta, z_dropped=units if units != "xy" else "data.dims 2")
        return dataclasses.replace(seq, keypoints=np.ascontiguousarray(seq.keypoints[..., :2]), meta=meta)
    return seq


def conform_corpus(raw: Corpus, *, fps: float, gaps: str, max_gap: int, dims: str | int,
                   notes: list[str]) -> Corpus:
    """Gaps, rate and coordinates of every sequence (module doc), each step said once in notes."""
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps {fps!r}; expected a positive number")
    out: Corpus = {}
    resampled: dict[float, int] = {}
    z_dropped: dict[str, int] = {}
    for split, seqs in raw.items():
        out[split] = []
        for seq in seqs:
            new = conform_dims(resample(fill_gaps(seq, gaps, max_gap), fps), dims)
            if "fps_source" in new.meta and "fps_source" not in seq.meta:
                resampled[new.meta["fps_source"]] = resampled.get(new.meta["fps_source"], 0) + 1
            if "z_dropped" in new.meta and "z_dropped" not in seq.meta:
                z_dropped[new.meta["z_dropped"]] = z_dropped.get(new.meta["z_dropped"], 0) + 1
            out[split].append(new)
    for src, n in sorted(resampled.items()):
        notes.append(f"{n} sequence(s) recorded at {src:g} fps resampled to {fps:g} fps (data.fps)")
    for why, n in sorted(z_dropped.items()):
        reason = "data.dims 2" if why == "data.dims 2" else f"{why} z is not in x/y's units (data.dims source)"
        notes.append(f"z dropped from {n} sequence(s): {reason}")
    return out
