"""Body parts removed from a corpus as a source without them would have them: masked as absent.

The positive control (ablations/parts.yaml, config key `pretrain.parts`) takes hands and face away
from every stage but the back-translator; harness/stages/prepare.py applies it once, to what the
stages receive.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from harness.data.record import Corpus
from models.layout import CANONICAL


def kept_points(parts: tuple[str, ...]) -> np.ndarray:
    """(V,) bool: the canonical points that belong to one of `parts` (CANONICAL part names)."""
    unknown = sorted(set(parts) - set(CANONICAL.parts))
    if unknown:
        raise ValueError(f"unknown parts {unknown}; the layout's parts are {', '.join(CANONICAL.parts)}")
    keep = np.zeros(CANONICAL.num_points, bool)
    for name in parts:
        keep[list(CANONICAL.parts[name])] = True
    return keep


def drop_parts(corpus: Corpus, parts: tuple[str, ...]) -> Corpus:
    """The corpus with every point outside `parts` masked as absent (mask False, coordinates 0, as
    SignSequence requires of absent points). The same object when `parts` covers the layout;
    otherwise new sequences with new arrays (texts, glosses, boundaries and meta are shared)."""
    keep = kept_points(parts)
    if keep.all():
        return corpus
    return {split: [replace(s, keypoints=np.where(keep[:, None], s.keypoints, 0).astype(s.keypoints.dtype),
                            mask=s.mask & keep) for s in seqs] for split, seqs in corpus.items()}
