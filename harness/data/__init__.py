"""Keypoint data layer (paper section 3.1, 4.2 "Keypoint Processing", appendix B.1).

Sources (harness.data.sources): synth[:PROFILE], pt:DIR, openpose:DIR, pose:FILE_OR_DIR, npz:FILE,
all read into the canonical 73-point layout (models.layout.CANONICAL) with a presence mask.
Preprocessing (harness.data.preprocess) and the cached prepare stage (harness.data.prepare).
Submodules are imported on use so that importing the package stays cheap (pose-format, the
config system and the synthetic generator load only when their source is used).
"""

from harness.data.record import SPLITS, Corpus, DataError, SignSequence

__all__ = ["SPLITS", "Corpus", "DataError", "SignSequence"]
