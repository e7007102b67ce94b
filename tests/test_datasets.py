"""harness.data.datasets: segments (paper 3.2), sliding windows (3.4), vocabulary, padding."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from harness.data.datasets import (
    SegmentDataset,
    Vocabulary,
    num_windows,
    pad_sequences,
    pad_windows,
    random_segment_starts,
    sliding_windows,
)
from harness.data.record import DataError, SignSequence
from models.transformer import pad_batch

V, C = 73, 3


def _seq(name: str, frames: int) -> SignSequence:
    # keypoints[t, v, c] = 1000 t + 10 v + c: every frame is recognizable from its values.
    t, v, c = np.meshgrid(np.arange(frames), np.arange(V), np.arange(C), indexing="ij")
    kp = (1000 * t + 10 * v + c).astype(np.float32)
    mask = np.ones((frames, V), dtype=bool)
    mask[:, 8:27] = (np.arange(frames) % 2 == 0)[:, None]  # face present on even frames only
    return SignSequence(name=name, keypoints=kp, mask=mask, text="hallo welt")


# ----------------------------------------------------------------------------- sliding windows


def test_num_windows_paper_formula():
    assert num_windows(30, 15, 7) == 3  # floor((30 - 15) / 7) + 1 = 2 + 1
    assert num_windows(15, 15, 7) == 1
    assert num_windows(29, 15, 7) == 3  # floor(14 / 7) + 1
    assert num_windows(28, 15, 7) == 2  # floor(13 / 7) + 1
    with pytest.raises(ValueError, match="14 frames is shorter than the window of 15"):
        num_windows(14, 15, 7)


@pytest.mark.parametrize("as_torch", [False, True])
def test_sliding_windows_equal_slices(as_torch):
    seq = _seq("a", 30)
    kp, mask = seq.keypoints, seq.mask
    if as_torch:
        kp, mask = torch.from_numpy(kp), torch.from_numpy(mask)
    windows, masks = sliding_windows(kp, mask, window=15, stride=7)
    assert tuple(windows.shape) == (3, 15, V, C) and tuple(masks.shape) == (3, 15, V)
    for n, start in enumerate((0, 7, 14)):  # frames 29 (after the last window) is dropped
        np.testing.assert_array_equal(np.asarray(windows[n]), seq.keypoints[start : start + 15])
        np.testing.assert_array_equal(np.asarray(masks[n]), seq.mask[start : start + 15])
    assert isinstance(windows, torch.Tensor) == as_torch


def test_sliding_windows_rejects_short_and_mismatched():
    seq = _seq("a", 10)
    with pytest.raises(ValueError, match="shorter than the window"):
        sliding_windows(seq.keypoints, seq.mask, 15, 7)
    with pytest.raises(ValueError, match="mask"):
        sliding_windows(seq.keypoints, seq.mask[:5], 5, 1)


# ----------------------------------------------------------------------------- segments


def test_segment_starts_deterministic_in_range_and_epoch_dependent():
    lengths = [20, 15, 40]
    a = random_segment_starts(lengths, 15, 8, seed=1, epoch=0)
    b = random_segment_starts(lengths, 15, 8, seed=1, epoch=0)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, 8) and a.dtype == np.int64
    assert (a >= 0).all() and (a[0] <= 5).all() and (a[1] == 0).all() and (a[2] <= 25).all()
    assert not np.array_equal(a, random_segment_starts(lengths, 15, 8, seed=1, epoch=1))
    assert not np.array_equal(a, random_segment_starts(lengths, 15, 8, seed=2, epoch=0))


def test_segment_dataset_items_are_slices_and_set_epoch_redraws():
    seqs = [_seq("a", 40), _seq("b", 25)]
    ds = SegmentDataset(seqs, window=15, segments_per_sequence=4, seed=5)
    assert len(ds) == 8
    seg, pmask = ds[5]  # sequence 1, segment 1
    assert seg.dtype == torch.float32 and tuple(seg.shape) == (15, V, C)
    assert pmask.dtype == torch.bool and tuple(pmask.shape) == (15, V)
    start = int(ds.starts[1, 1])
    np.testing.assert_array_equal(seg.numpy(), seqs[1].keypoints[start : start + 15])
    np.testing.assert_array_equal(pmask.numpy(), seqs[1].mask[start : start + 15])

    again = SegmentDataset(seqs, window=15, segments_per_sequence=4, seed=5)
    assert all(torch.equal(ds[i][0], again[i][0]) for i in range(len(ds)))
    before = ds.starts.copy()
    ds.set_epoch(1)
    assert ds.epoch == 1 and not np.array_equal(before, ds.starts)
    again.set_epoch(1)
    np.testing.assert_array_equal(ds.starts, again.starts)
    seg[:] = -1.0  # items are copies: writing into one never alters the corpus
    assert seqs[1].keypoints.min() >= 0
    with pytest.raises(IndexError):
        ds[8]


def test_segment_dataset_short_sequence_names_it():
    with pytest.raises(ValueError, match=r"'short' has 10 frames, shorter than the window of 15"):
        SegmentDataset([_seq("ok", 30), _seq("short", 10)], 15, 2, seed=0)


# ----------------------------------------------------------------------------- vocabulary


def test_vocabulary_ids_round_trip_and_unk():
    vocab = Vocabulary.build(["Der Hund bellt", "der hund", "die Katze"], min_freq=1)
    # specials 0-3; then by count: der 2, hund 2 (alphabetical tie), then bellt, die, katze (1 each)
    assert vocab.itos == ["<pad>", "<bos>", "<eos>", "<unk>", "der", "hund", "bellt", "die", "katze"]
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3)
    assert len(vocab) == 9
    assert vocab.encode("der Hund") == [4, 5]
    assert vocab.encode("der vogel", add_bos_eos=True) == [1, 4, 3, 2]
    assert vocab.decode([1, 4, 5, 6, 2, 7, 7]) == "der hund bellt"  # stops at eos
    assert vocab.decode([0, 4, 3, 0]) == "der <unk>"  # pads dropped, unk kept

    restored = Vocabulary.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert restored == vocab and restored.encode("die katze") == [7, 8]


def test_vocabulary_min_freq():
    vocab = Vocabulary.build(["a a b", "a b c"], min_freq=2)
    assert vocab.itos[4:] == ["a", "b"]
    assert vocab.encode("c") == [vocab.unk_id]


def test_vocabulary_from_dict_rejects_bad_data():
    with pytest.raises(DataError, match="vocab.json: key 'itos'"):
        Vocabulary.from_dict({"itos": ["a", "<pad>"]}, source="vocab.json")
    with pytest.raises(DataError, match="unknown key 'size'"):
        Vocabulary.from_dict({"itos": list(Vocabulary.SPECIALS), "size": 4})


# ----------------------------------------------------------------------------- padding


def test_pad_sequences():
    ids, lengths = pad_sequences([[5, 6, 7], [8], []])
    assert ids.dtype == torch.long
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert lengths.tolist() == [3, 1, 0]


def test_pad_windows_mask_true_is_valid():
    a = torch.ones(3, 2)
    b = torch.full((1, 2), 2.0)
    batch, valid = pad_windows([a, b])
    assert tuple(batch.shape) == (2, 3, 2)
    assert valid.dtype == torch.bool
    assert valid.tolist() == [[True, True, True], [True, False, False]]
    assert batch[1].tolist() == [[2.0, 2.0], [0.0, 0.0], [0.0, 0.0]]
    # The one polarity of models/: pad_batch gives the same mask for the same items.
    assert torch.equal(pad_batch([a, b])[1], valid)
    # PyTorch's key_padding_mask is the negation: padded keys get no attention weight.
    attn = torch.nn.MultiheadAttention(2, 1, batch_first=True)
    _, weights = attn(batch, batch, batch, key_padding_mask=~valid)
    assert torch.all(weights[1, :, 1:] == 0)
    with pytest.raises(ValueError, match="same shape"):
        pad_windows([torch.ones(2, 2), torch.ones(2, 3)])
