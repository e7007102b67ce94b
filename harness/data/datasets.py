"""Torch datasets and batching for the two ways the paper cuts a sign sequence.

- Paper 3.2 (SignMAE pretraining): "randomly sampled sign segments" of `window` frames
  (w = 15 in the paper) from the full sequences: `random_segment_starts`, `SegmentDataset`.
  The draw is a pure function of (seed, epoch), so a run is reproducible and every Ray Train
  worker draws the same segments; `set_epoch` draws new ones for the next epoch.
- Paper 3.4 (sign-to-text / text-to-sign mapping): a sliding window of `window` frames with
  `stride` s over the sequence, N = floor((T - w) / s) + 1 segments: `num_windows`,
  `sliding_windows`. Trailing frames that do not fill a whole window are dropped, as the
  formula implies.
- Text side: a word-level `Vocabulary` built from the training sentences, and the padding
  helpers `pad_sequences` (token ids) and `pad_windows` (per-sequence segment features).

Mask polarity, one for the whole code base (models/transformer.py states it too): True = valid.
A point mask is True where the point is present, a padding mask True where the position is real
and False where it is padding; PyTorch's key_padding_mask is the negation, taken where a model
calls nn.MultiheadAttention.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

from harness.data.record import DataError, SignSequence

# ----------------------------------------------------------------------------- segments (3.2)


def random_segment_starts(
    lengths: Sequence[int], window: int, segments_per_sequence: int, seed: int, epoch: int = 0
) -> np.ndarray:
    """Start frames of random `window`-frame segments: (num_sequences, segments_per_sequence) int64.

    Starts are uniform over 0..T_i - window (inclusive), drawn independently per segment from a
    generator seeded by (seed, epoch) only, so the same arguments always give the same starts.
    Raises ValueError when a length is shorter than the window.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if segments_per_sequence < 1:
        raise ValueError(f"segments_per_sequence must be >= 1, got {segments_per_sequence}")
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
    lengths_a = np.asarray(lengths, dtype=np.int64)
    short = np.flatnonzero(lengths_a < window)
    if short.size:
        i = int(short[0])
        raise ValueError(f"sequence {i} has {lengths_a[i]} frames, shorter than the window of {window}")
    rng = np.random.default_rng([seed, epoch])
    # integers(high) draws from [0, high): high = T - w + 1 makes the last full window reachable.
    high = (lengths_a - window + 1)[:, None]  # (num_sequences, 1)
    return rng.integers(0, high, size=(len(lengths_a), segments_per_sequence), dtype=np.int64)


class SegmentDataset(Dataset):
    """Random fixed-length segments for SignMAE pretraining (paper 3.2).

    Item k is segment k % segments_per_sequence of sequence k // segments_per_sequence:
    (segment (w, V, C) float32 tensor, point_mask (w, V) bool tensor, True = point present).
    """

    def __init__(
        self,
        sequences: list[SignSequence],
        window: int,
        segments_per_sequence: int,
        seed: int,
        epoch: int = 0,
    ):
        for seq in sequences:
            if seq.num_frames < window:
                # The harness filters these earlier with a counted skip; reaching here is a bug.
                raise ValueError(
                    f"sequence {seq.name!r} has {seq.num_frames} frames, shorter than the window of {window}"
                )
        self.sequences = sequences
        self.window = window
        self.segments_per_sequence = segments_per_sequence
        self.seed = seed
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's segments (a pure function of (seed, epoch))."""
        self.epoch = epoch
        self.starts = random_segment_starts(
            [s.num_frames for s in self.sequences],
            self.window,
            self.segments_per_sequence,
            self.seed,
            epoch,
        )  # (num_sequences, segments_per_sequence)

    def __len__(self) -> int:
        return len(self.sequences) * self.segments_per_sequence

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} segments")
        seq_i, seg_i = divmod(index, self.segments_per_sequence)
        seq = self.sequences[seq_i]
        start = int(self.starts[seq_i, seg_i])
        stop = start + self.window
        # Copies, so a consumer writing into a batch can never alter the corpus.
        segment = torch.tensor(seq.keypoints[start:stop], dtype=torch.float32)  # (w, V, C)
        point_mask = torch.tensor(seq.mask[start:stop], dtype=torch.bool)  # (w, V)
        return segment, point_mask


# ----------------------------------------------------------------------------- sliding windows (3.4)


def num_windows(num_frames: int, window: int, stride: int) -> int:
    """N = floor((T - w) / s) + 1 (paper 3.4). Raises ValueError when T < w."""
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got window={window}, stride={stride}")
    if num_frames < window:
        raise ValueError(f"a sequence of {num_frames} frames is shorter than the window of {window}")
    return (num_frames - window) // stride + 1


def sliding_windows(keypoints, mask, window: int, stride: int):
    """Overlapping windows of a whole sequence (paper 3.4).

    keypoints: (T, V, C), mask: (T, V) bool; both numpy arrays or both torch tensors.
    Returns (windows (N, w, V, C), masks (N, w, V)) of the same kind as the input, with
    windows[n] == keypoints[n * s : n * s + w]; frames after the last full window are dropped.
    numpy outputs are contiguous copies (sliding_window_view alone is a read-only view);
    torch outputs are views made by Tensor.unfold.
    """
    if keypoints.ndim != 3 or mask.ndim != 2 or tuple(mask.shape) != tuple(keypoints.shape[:2]):
        raise ValueError(
            f"need keypoints (T, V, C) and mask (T, V), got {tuple(keypoints.shape)} and {tuple(mask.shape)}"
        )
    n = num_windows(int(keypoints.shape[0]), window, stride)
    if isinstance(keypoints, torch.Tensor):
        # unfold(0, w, s) puts the window axis last: (N, V, C, w) -> (N, w, V, C).
        windows = keypoints.unfold(0, window, stride).permute(0, 3, 1, 2)  # (N, w, V, C)
        masks = mask.unfold(0, window, stride).permute(0, 2, 1)  # (N, w, V)
    else:
        keypoints = np.asarray(keypoints)
        mask = np.asarray(mask)
        # sliding_window_view gives every start (T - w + 1 of them); [::s] keeps the strided ones.
        windows = sliding_window_view(keypoints, window, axis=0)[::stride]  # (N, V, C, w)
        windows = np.ascontiguousarray(np.moveaxis(windows, -1, 1))  # (N, w, V, C)
        masks = sliding_window_view(mask, window, axis=0)[::stride]  # (N, V, w)
        masks = np.ascontiguousarray(np.moveaxis(masks, -1, 1))  # (N, w, V)
    assert windows.shape[0] == n
    return windows, masks


# ----------------------------------------------------------------------------- vocabulary


class Vocabulary:
    """Word-level vocabulary of the spoken-language side (lowercased whitespace tokens).

    Ids 0-3 are the specials <pad>, <bos>, <eos>, <unk>; the words follow, most frequent
    first, ties in alphabetical order, so the same training texts always give the same ids.
    """

    PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
    SPECIALS = (PAD, BOS, EOS, UNK)
    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __init__(self, itos: Sequence[str], min_freq: int = 1):
        itos = list(itos)
        if tuple(itos[: len(self.SPECIALS)]) != self.SPECIALS:
            raise ValueError(f"a vocabulary must start with {list(self.SPECIALS)}, got {itos[:4]}")
        if len(set(itos)) != len(itos):
            dup = next(t for t, c in Counter(itos).items() if c > 1)
            raise ValueError(f"token {dup!r} appears more than once in the vocabulary")
        self.itos = itos
        self.min_freq = min_freq
        self.stoi = {tok: i for i, tok in enumerate(itos)}

    @staticmethod
    def tokenize(text: str) -> list[str]:
        """The same normalization as harness.metrics: lowercase, split on whitespace."""
        return text.lower().split()

    @classmethod
    def build(cls, texts: Iterable[str], min_freq: int = 1) -> Vocabulary:
        """Words seen at least min_freq times in the (training) texts."""
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        counts = Counter(tok for text in texts for tok in cls.tokenize(text))
        words = sorted(
            (w for w, c in counts.items() if c >= min_freq and w not in cls.SPECIALS),
            key=lambda w: (-counts[w], w),
        )
        return cls(list(cls.SPECIALS) + words, min_freq=min_freq)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, add_bos_eos: bool = False) -> list[int]:
        ids = [self.stoi.get(tok, self.unk_id) for tok in self.tokenize(text)]
        return [self.bos_id, *ids, self.eos_id] if add_bos_eos else ids

    def decode(self, ids: Iterable[int]) -> str:
        """Words up to the first <eos>; <pad> and <bos> are dropped, <unk> is kept as "<unk>"
        so an unknown word still counts as a (wrong) token in BLEU's length and precision."""
        words = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            if not 0 <= i < len(self.itos):
                raise ValueError(f"token id {i} is outside the vocabulary of {len(self.itos)}")
            words.append(self.itos[i])
        return " ".join(words)

    def to_dict(self) -> dict:
        """JSON-ready form; from_dict(to_dict()) gives an equal vocabulary."""
        return {"itos": list(self.itos), "min_freq": self.min_freq}

    @classmethod
    def from_dict(cls, data: dict, source: str = "vocabulary") -> Vocabulary:
        """Inverse of to_dict. Malformed data raises DataError naming `source` (e.g. the file)."""
        if not isinstance(data, dict):
            raise DataError(f"{source}: expected a JSON object, got {type(data).__name__}")
        unknown = set(data) - {"itos", "min_freq"}
        if unknown:
            raise DataError(f"{source}: unknown key {sorted(unknown)[0]!r}; expected 'itos', 'min_freq'")
        itos = data.get("itos")
        if not isinstance(itos, list) or not all(isinstance(t, str) for t in itos):
            raise DataError(f"{source}: key 'itos' must be a list of strings")
        min_freq = data.get("min_freq", 1)
        if not isinstance(min_freq, int) or isinstance(min_freq, bool) or min_freq < 1:
            raise DataError(f"{source}: key 'min_freq' must be an integer >= 1, got {min_freq!r}")
        try:
            return cls(itos, min_freq=min_freq)
        except ValueError as e:
            raise DataError(f"{source}: key 'itos': {e}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.to_dict() == other.to_dict()


# ----------------------------------------------------------------------------- padding


def pad_sequences(seqs: Sequence[Sequence[int]], pad_id: int = Vocabulary.pad_id) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists: (ids (B, L) int64, lengths (B,) int64), L = the longest length."""
    if len(seqs) == 0:
        raise ValueError("pad_sequences needs at least one sequence")
    tensors = [torch.as_tensor(list(s), dtype=torch.long) for s in seqs]
    lengths = torch.tensor([len(t) for t in tensors], dtype=torch.long)  # (B,)
    ids = pad_sequence(tensors, batch_first=True, padding_value=pad_id)  # (B, L)
    return ids, lengths


def pad_windows(items: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch per-sequence segment features of different N: (B, N_max, ...) zero-padded, and a
    bool mask (B, N_max), True = valid (a real segment), False = padding.

    items: list of (N_i, D) tensors (any trailing shape, the same for all items).
    """
    if len(items) == 0:
        raise ValueError("pad_windows needs at least one item")
    trailing = {tuple(t.shape[1:]) for t in items}
    if len(trailing) != 1:
        raise ValueError(f"all items need the same shape after the first axis, got {sorted(trailing)}")
    lengths = torch.tensor([t.shape[0] for t in items], dtype=torch.long)  # (B,)
    batch = pad_sequence(list(items), batch_first=True, padding_value=0.0)  # (B, N_max, D)
    valid = torch.arange(batch.shape[1])[None, :] < lengths[:, None]  # (B, N_max)
    return batch, valid
