"""Appendix B.1 preprocessing on hand-built sequences with exact expected values."""

import dataclasses

import numpy as np
import pytest

from harness.config import load_profile
from harness.data.preprocess import frame_displacement, keep_frames, normalize, preprocess_sequence
from harness.data.record import DataError, SignSequence
from harness.data.synth import generate_corpus
from models.layout import CANONICAL

RSH, LSH = CANONICAL.right_shoulder, CANONICAL.left_shoulder
NOSE = 0


def _three_frames() -> tuple[np.ndarray, np.ndarray]:
    """Shoulders: frame 0 R(0,0) L(2,0); frame 1 R(1,0) L(3,0); frame 2 R(0,0) L(4,0) (a bad length).
    Median midpoint x of (1, 2, 2) = 2, median length of (2, 2, 4) = 2. Nose at (2, -2) in every frame."""
    kp = np.zeros((3, 73, 2), np.float32)
    mask = np.zeros((3, 73), bool)
    kp[:, RSH] = [[0, 0], [1, 0], [0, 0]]
    kp[:, LSH] = [[2, 0], [3, 0], [4, 0]]
    kp[:, NOSE] = [2, -2]
    mask[:, [RSH, LSH, NOSE]] = True
    return kp, mask


def test_normalize_exact_values():
    kp, mask = _three_frames()
    out = normalize(kp, mask)
    assert out.dtype == np.float32 and out.shape == (3, 73, 2)
    np.testing.assert_array_equal(out[:, RSH], [[-1, 0], [-0.5, 0], [-1, 0]])
    np.testing.assert_array_equal(out[:, LSH], [[0, 0], [0.5, 0], [1, 0]])
    np.testing.assert_array_equal(out[:, NOSE], [[0, -1]] * 3)
    assert (out[:, 20] == 0).all()  # masked points stay 0


def test_normalize_ignores_frames_without_both_shoulders():
    kp, mask = _three_frames()
    kp[1, LSH] = [100, 100]  # a wild left shoulder, but masked: must not affect centre or scale
    mask[1, LSH] = False
    out = normalize(kp, mask)
    # frames 0 and 2: midpoints x (1, 2) -> median 1.5; lengths (2, 4) -> median 3
    np.testing.assert_allclose(out[0, RSH], [-0.5, 0])
    np.testing.assert_allclose(out[2, LSH], [2.5 / 3, 0])
    assert (out[1, LSH] == 0).all()


def test_normalize_without_shoulders_is_an_error():
    kp, mask = _three_frames()
    mask[:, LSH] = False
    with pytest.raises(DataError, match="seq7: no frame has both shoulders"):
        normalize(kp, mask, "seq7")


def test_frame_displacement_over_shared_joints():
    a = np.zeros((73, 2))
    b = np.zeros((73, 2))
    b[0] = [3, 4]  # distance 5
    b[1] = [0, 1]  # distance 1
    b[2] = [100, 0]  # not shared: ignored
    ma = np.zeros(73, bool)
    mb = np.zeros(73, bool)
    ma[[0, 1, 2, 3]] = True
    mb[[0, 1, 3]] = True  # shared: 0, 1, 3 -> mean of (5, 1, 0) = 2
    assert frame_displacement(a, ma, b, mb) == pytest.approx(2.0)
    assert np.isnan(frame_displacement(a, ma, b, np.zeros(73, bool)))


def _static(T: int) -> tuple[np.ndarray, np.ndarray]:
    kp = np.zeros((T, 73, 2), np.float32)
    kp[:, :, 0] = np.arange(73) / 73.0
    return kp, np.ones((T, 73), bool)


def test_spike_dropped_and_next_frame_compared_with_last_kept():
    kp, mask = _static(5)
    kp[2] += 5.0  # every point jumps 5 shoulder lengths in frame 2
    keep = keep_frames(kp, mask, threshold=1.0)
    # frame 3 vs frame 2 also moves 5, but it is compared with frame 1 (last kept) and kept
    np.testing.assert_array_equal(keep, [True, True, False, True, True])


def test_threshold_is_exclusive_and_leading_spike_dropped():
    kp, mask = _static(4)
    kp[1:, :, 0] += 1.0  # D(1) = 1.0 exactly: not above the threshold
    np.testing.assert_array_equal(keep_frames(kp, mask, 1.0), [True] * 4)
    kp, mask = _static(4)
    kp[0] += 3.0  # the first frame is the outlier: frames 1 and 2 agree
    np.testing.assert_array_equal(keep_frames(kp, mask, 1.0), [False, True, True, True])


def test_noisy_first_and_third_frames_do_not_reject_the_sequence():
    # Frame 0 cannot be the reference: it disagrees with frame 1, and frame 1 with the noisy frame 2.
    kp, mask = _static(8)
    kp[0] += 3.0
    kp[2] -= 3.0
    np.testing.assert_array_equal(keep_frames(kp, mask, 1.0), [False, True, False] + [True] * 5)


def test_spike_just_under_threshold_is_replaced_by_the_clean_frame_after_it():
    kp, mask = _static(6)
    kp[3, :, 0] += 0.9  # D = 0.9 from frame 2: kept at first (under 0.91)
    kp[4:, :, 1] += 0.2  # frames 4, 5: 0.2 from frame 2 (closer than frame 3), 0.92 from frame 3
    keep = keep_frames(kp, mask, 0.91)
    np.testing.assert_array_equal(keep, [True, True, True, False, True, True])


def test_lasting_jump_becomes_the_new_reference():
    from harness.data.preprocess import REANCHOR_FRAMES

    T = 3 + REANCHOR_FRAMES + 2
    kp, mask = _static(T)
    kp[3:] += 4.0  # the signer moves for good after frame 2 (a cut, not noise)
    keep = keep_frames(kp, mask, 1.0)
    assert keep.all()  # the run is restored once it lasted REANCHOR_FRAMES frames
    kp, mask = _static(3 + REANCHOR_FRAMES - 1 + 2)
    kp[3:3 + REANCHOR_FRAMES - 1] += 4.0  # a misdetection one frame shorter than that: dropped
    keep = keep_frames(kp, mask, 1.0)
    assert keep.sum() == 5 and not keep[3:3 + REANCHOR_FRAMES - 1].any()


def test_preprocess_sequence_maps_boundaries_and_keeps_text():
    kp, mask = _static(6)
    kp[:, RSH] = [0, 0]
    kp[:, LSH] = [1, 0]  # shoulder length 1, centre (0.5, 0)
    kp[2] += 4.0  # spike
    mask[4] = False  # an empty frame (nobody detected)
    seq = SignSequence(name="s", keypoints=kp, mask=mask, text="hallo welt", gloss="HALLO WELT",
                       signer="p1", boundaries=[(0, 2), (2, 3), (3, 6)], meta={"fps": 25.0})
    out, dropped = preprocess_sequence(seq, noise_threshold=1.0)
    assert dropped == 2 and out.num_frames == 4
    assert out.boundaries == [(0, 2), (2, 2), (2, 4)]
    assert (out.name, out.text, out.gloss, out.signer) == ("s", "hallo welt", "HALLO WELT", "p1")
    assert out.meta["fps"] == 25.0
    assert out.meta["preprocess"]["dropped_empty"] == 1 and out.meta["preprocess"]["dropped_noisy"] == 1
    assert out.meta["preprocess"]["scale"] == 1.0
    np.testing.assert_array_equal(out.keypoints[:, RSH], [[-0.5, 0]] * 4)
    assert out.mask.shape == (4, 73) and out.mask.all()
    assert seq.num_frames == 6  # the input is not modified


def test_default_threshold_on_the_synthetic_corpus():
    """The synthetic corpus marks its noisy frames: the default threshold must find most of them
    and (almost) never drop a clean frame."""
    cfg = load_profile("debug")
    corpus = generate_corpus(**dataclasses.asdict(cfg.data.synth))
    hits = misses = false_drops = clean = 0
    for seq in corpus["train"]:
        keep = keep_frames(normalize(seq.keypoints, seq.mask), seq.mask, cfg.data.noise_threshold)
        noisy = np.zeros(seq.num_frames, bool)
        noisy[seq.meta["noisy_frames"]] = True
        hits += int((noisy & ~keep).sum())
        misses += int((noisy & keep).sum())
        false_drops += int((~noisy & ~keep & seq.mask.any(1)).sum())
        clean += int((~noisy).sum())
    assert hits + misses > 0
    assert hits / (hits + misses) >= 0.8
    assert false_drops / clean <= 0.005
