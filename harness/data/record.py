"""The one in-memory record every keypoint source is read into (paper section 3.1: X in R^{T x V x C})."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SPLITS = ("train", "dev", "test")

# data.min_confidence's default (harness/config.py DataConfig says why this value); here so that a
# reader called without the harness's options drops the same points a trial does.
MIN_CONFIDENCE = 0.1


@dataclass(frozen=True)
class ReadOptions:
    """What a reader needs from the user's settings (the harness fills it from DataConfig; the data
    layer does not import the config).

    min_confidence: a point whose confidence is below it is missing (as is confidence 0, NaN and
      an all-zero point, the extractors' own "not detected"). 0 keeps every detection.
    unlabelled: keep sequences that have no sentence in the sentence table (meta["unlabelled"],
      text "") for pretraining only; False (the default) makes them an error.
    sentences: read the sentence table beside the keypoint files. False for an isolated-sign
      source (harness/data/labels.py), whose own label table may be the .tsv beside them.
    """

    min_confidence: float = MIN_CONFIDENCE
    unlabelled: bool = False
    sentences: bool = True


class DataError(ValueError):
    """A user's data is malformed. The message is one line naming the file, the line or frame,
    and what is wrong; CLIs print it without a traceback."""


@dataclass
class SignSequence:
    """One signed sentence in the canonical layout (models.layout.CANONICAL).

    keypoints: (T, V, C) float32, V = 73; C = 2 or 3 as the source gives them.
    mask: (T, V) bool, True where the point is present (detected and provided by the source).
      Values where the mask is False are 0 and must never be read as positions.
    """

    name: str
    keypoints: np.ndarray  # (T, V, C) float32
    mask: np.ndarray  # (T, V) bool
    text: str
    gloss: str | None = None  # space-separated glosses, when the source has them
    signer: str | None = None
    # Synthetic corpus only: (start_frame, end_frame_exclusive) of each gloss, in gloss order.
    boundaries: list[tuple[int, int]] | None = None
    meta: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.keypoints.shape[0])


Corpus = dict[str, list[SignSequence]]  # split name ("train", "dev", "test") -> sequences
