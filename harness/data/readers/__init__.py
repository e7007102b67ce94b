"""Readers (and writers) of the file-based keypoint sources, one module per format: pt
(Progressive Transformers PHOENIX14T skeletons), openpose (How2Sign-style JSON folders), pose
(pose-format `.pose` files) and npz (our archive). Each maps its layout into the canonical one
with harness.data.canonical; harness.data.sources dispatches a parsed spec to them.
"""
