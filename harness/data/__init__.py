"""Keypoint data layer (paper section 3.1, 4.2 "Keypoint Processing", appendix B.1).

Sources (harness.data.sources): synth, synth@SEED, synth:PROFILE, synth2 (a second synthetic
language; also @SEED, :PROFILE), pt:DIR, openpose:DIR, pose:FILE_OR_DIR, npz:FILE, read (harness.data.readers, harness.data.synth) into the canonical
73-point layout (models.layout.CANONICAL, harness.data.canonical) with a presence mask.
Time and coordinates as recorded (harness.data.timeline: frame gaps, resampling to one rate,
data.dims), preprocessing (harness.data.preprocess) and the whole-corpus prepare step with its
report (harness.data.prepare). This package imports nothing else from the harness: the harness resolves
what needs the config (synthetic generator parameters, the default noise threshold) and passes
it down.
"""

from harness.data.record import SPLITS, Corpus, DataError, ReadOptions, SignSequence

__all__ = ["SPLITS", "Corpus", "DataError", "ReadOptions", "SignSequence"]
