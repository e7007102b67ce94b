"""Z of whole sequences (paper section 3.4): each cut into sliding windows, N = floor((T - w) / s) + 1,
each window through the frozen SignMAE encoder. The embed stage, recognition and the figure of z
(section 5) all encode this way.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from harness.data.datasets import sliding_windows

# Windows per encoder call. Small enough that every intermediate stays in cache and below the
# allocator's mmap threshold: at 512 each (512, 16, 73, 73) CTR-GC block was mmapped and zero-filled
# page by page for every call. Measured per window on one thread (default profile): 16 is 2.4x
# faster than 512 with the original CTR-GC and 2.0x with the current one (8 and 32 are slower).
# Z does not depend on the chunk: torch.equal at 16 and 512 (tests/test_extractor.py checks it).
CHUNK = 16


def encode_sequences(encoder, seqs, window: int, stride: int, device) -> list[torch.Tensor]:
    """Z of each sequence, [(N_i, D)]: its sliding windows through the frozen encoder."""
    windows, masks, counts = [], [], []
    for seq in seqs:
        win, wmask = sliding_windows(torch.from_numpy(seq.keypoints), torch.from_numpy(seq.mask),
                                     window, stride)  # (N, w, V, C), (N, w, V)
        windows.append(win)
        masks.append(wmask)
        counts.append(win.shape[0])
    flat, flat_mask = torch.cat(windows), torch.cat(masks)  # (sum N, w, V, C), (sum N, w, V)
    with torch.no_grad():
        z = torch.cat([encoder.encode(flat[i:i + CHUNK].to(device), flat_mask[i:i + CHUNK].to(device)).cpu()
                       for i in range(0, flat.shape[0], CHUNK)])  # (sum N, D)
    return list(torch.split(z, counts))


def encode_clips(encoder, seqs, window: int, stride: int, device) -> list[torch.Tensor]:
    """encode_sequences for isolated-sign clips: a clip shorter than the window is padded with its
    last frame to one window."""
    def padded(seq):
        extra = window - seq.num_frames
        if extra <= 0:
            return seq
        kp = np.concatenate([seq.keypoints, np.repeat(seq.keypoints[-1:], extra, 0)])  # (w, V, C)
        return dataclasses.replace(seq, keypoints=kp,
                                   mask=np.concatenate([seq.mask, np.repeat(seq.mask[-1:], extra, 0)]))
    return encode_sequences(encoder, [padded(s) for s in seqs], window, stride, device)
