"""The embed stage (section 3.4): every sequence cut into sliding windows, each through the frozen
SignMAE encoder: Z, N = floor((T - w) / s) + 1 gloss-level representations per sequence.

Sign-to-text reads Z at `embed.stride`; text-to-sign learns to produce Z at `text2sign.stride`
(by default the window: non-overlapping segments that its frozen decoder renders back to frames,
section 4.2). The two are
the same computation with another stride, so both are entries of one cache folder.
"""

from __future__ import annotations

import torch

from harness.builders import text2sign_stride
from harness.config import ExperimentConfig
from harness.data.datasets import sliding_windows
from harness.io import load_torch, save_torch
from harness.stages.base import Stage, StageContext

# Windows per encoder call. Small enough that every intermediate stays in cache and below the
# allocator's mmap threshold: at 512 each (512, 16, 73, 73) CTR-GC block was mmapped and zero-filled
# page by page for every call. Measured per window on one thread (default profile): 16 is 2.4x
# faster than 512 with the original CTR-GC and 2.0x with the current one (8 and 32 are slower).
# Z does not depend on the chunk: torch.equal at 16 and 512 (tests/test_extractor.py checks it).
CHUNK = 16


def embed(ctx: StageContext, stride: int) -> dict[str, list[torch.Tensor]]:
    """Z for every sequence of every split: split -> [(N_i, D)]."""
    encoder = ctx.inputs["pretrain"].model
    device = ctx.runtime.device
    window = ctx.cfg.pretrain.window
    out: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for split, seqs in ctx.inputs["prepare"].corpus.items():
            windows, masks, counts = [], [], []
            for seq in seqs:
                win, wmask = sliding_windows(torch.from_numpy(seq.keypoints), torch.from_numpy(seq.mask),
                                             window, stride)  # (N, w, V, C), (N, w, V)
                windows.append(win)
                masks.append(wmask)
                counts.append(win.shape[0])
            flat, flat_mask = torch.cat(windows), torch.cat(masks)  # (sum N, w, V, C), (sum N, w, V)
            z = torch.cat([encoder.encode(flat[i:i + CHUNK].to(device), flat_mask[i:i + CHUNK].to(device)).cpu()
                           for i in range(0, flat.shape[0], CHUNK)])  # (sum N, D)
            out[split] = list(torch.split(z, counts))
    return out


def _save(out: dict, folder) -> None:
    save_torch(out, folder / "z.pt")


def _load(folder) -> dict:
    return load_torch(folder / "z.pt")


def _stage(name: str, stride) -> Stage:
    return Stage(name=name, needs=("prepare", "pretrain"), folder="embed",
                 settings=lambda cfg: {"stride": stride(cfg)}, run=lambda ctx: embed(ctx, stride(ctx.cfg)),
                 save=_save, load=_load)


def sign2text_stride(cfg: ExperimentConfig) -> int:
    return cfg.embed.stride


EMBED = _stage("embed", sign2text_stride)
EMBED_T2S = _stage("embed_t2s", text2sign_stride)  # text2sign.stride, 0 meaning the window
