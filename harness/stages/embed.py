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
from harness.encode import encode_sequences
from harness.io import load_torch, save_torch
from harness.stages.base import Stage, StageContext


def embed(ctx: StageContext, stride: int) -> dict[str, list[torch.Tensor]]:
    """Z for every sequence of every split: split -> [(N_i, D)]."""
    encoder = ctx.inputs["pretrain"].model
    return {split: encode_sequences(encoder, seqs, ctx.cfg.pretrain.window, stride, ctx.runtime.device)
            for split, seqs in ctx.inputs["prepare"].corpus.items()}


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
