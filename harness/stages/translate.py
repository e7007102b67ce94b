"""The two translators into text: sign-to-text over Z (section 3.4) and the back-translator, a
keypoint-to-text model trained on ground-truth keypoints that judges text-to-sign (section 5).

Both train with teacher-forced cross-entropy (eq. 3), keep the epoch with the best greedy dev BLEU-4
(the paper's early stopping), then decode dev and test with beam search.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import torch

from harness.builders import build_backtranslator, build_sign2text
from harness.config import ExperimentConfig
from harness.data.datasets import pad_windows
from harness.io import load_torch, save_torch
from harness.loop import StageRun, seed_everything, shard_order, steps_per_epoch, train_stage
from harness.stages.base import Stage, StageContext, numerics
from models.transformer import pad_batch, teacher_forcing_pair

EVALUATIONS = 8  # greedy dev evaluations over a stage (every epochs // 8 epochs)


def train_translator(ctx: StageContext, name: str, model, inputs: dict[str, list], batch_of: Callable, epochs: int,
                     beam_size: int, length_penalty: float, max_len: int, translate: Callable) -> dict:
    from harness.metrics import text_metrics
    cfg, rt = ctx.cfg, ctx.runtime
    prepared = ctx.inputs["prepare"]
    corpus, vocab = prepared.corpus, prepared.vocab
    targets = [vocab.encode(s.text) for s in corpus["train"]]
    bs = cfg.optim.batch_size
    n = len(targets)

    def batches(epoch):
        order = shard_order(n, cfg.seed, epoch, rt.rank, rt.world_size)
        for i in range(0, len(order), bs):
            idx = order[i:i + bs]
            tgt_in, tgt_out = teacher_forcing_pair([targets[j] for j in idx], vocab.pad_id, vocab.bos_id,
                                                   vocab.eos_id, device=rt.device)  # (B, L), (B, L)
            yield batch_of("train", idx) + (tgt_in, tgt_out)

    dev_refs = [s.text for s in corpus["dev"]]

    def decode_split(m, split, beam):
        hyps = []
        for i in range(0, len(inputs[split]), bs):
            idx = list(range(i, min(i + bs, len(inputs[split]))))
            hyps += [vocab.decode(ids) for ids in translate(m, batch_of(split, idx), beam, length_penalty, max_len)]
        return hyps

    def evaluate(m, epoch):
        return {f"{name}/dev_bleu4_greedy": text_metrics(decode_split(m, "dev", 1), dev_refs)["bleu4"]}

    seed_everything(cfg.seed, rt.rank)
    # The model of the best greedy dev BLEU-4 comes back (the loop keeps it, in its checkpoints too).
    train_stage(StageRun(name, ctx.key, model, batches, epochs, steps_per_epoch(n, bs, rt.world_size), evaluate,
                         max(1, epochs // EVALUATIONS), keep_best=f"{name}/dev_bleu4_greedy"), cfg.optim, rt)
    result = {}
    with torch.no_grad():
        for split in ("dev", "test"):
            hyps = decode_split(model, split, beam_size)
            refs = [s.text for s in corpus[split]]
            result[split] = {"metrics": text_metrics(hyps, refs), "hypotheses": hyps, "references": refs}
    return {"model": model.state_dict(), "result": result}


def run_sign2text(ctx: StageContext) -> dict:
    cfg, rt = ctx.cfg, ctx.runtime
    z = ctx.inputs["embed"]

    def batch_of(split, idx):
        padded, valid = pad_windows([z[split][j] for j in idx])  # (B, N, D), (B, N)
        return (padded.to(rt.device), valid.to(rt.device))

    def translate(m, batch, beam, alpha, max_len):
        zz, zmask = batch
        return m.greedy(zz, zmask, max_len) if beam == 1 else m.beam_search(zz, zmask, beam, alpha, max_len)

    seed_everything(cfg.seed, rt.rank)
    model = build_sign2text(cfg, z["train"][0].shape[-1], ctx.inputs["prepare"].vocab).to(rt.device)
    s = cfg.sign2text
    return train_translator(ctx, "sign2text", model, z, batch_of, s.epochs, s.beam_size, s.length_penalty,
                            s.max_output_len, translate)


def _frames(ctx: StageContext) -> tuple[dict, dict]:
    # Every part, whatever pretrain.parts says: the judge of production is the same for every variant.
    corpus = ctx.inputs["prepare"].full
    frames = {split: [torch.from_numpy(s.keypoints) for s in seqs] for split, seqs in corpus.items()}
    masks = {split: [torch.from_numpy(s.mask) for s in seqs] for split, seqs in corpus.items()}
    return frames, masks


def run_backtranslator(ctx: StageContext) -> dict:
    cfg, rt = ctx.cfg, ctx.runtime
    frames, masks = _frames(ctx)

    def batch_of(split, idx):
        x, fmask = pad_batch([frames[split][j] for j in idx])  # (B, T, V, C), (B, T)
        pm, _ = pad_batch([masks[split][j] for j in idx], pad_value=False)  # (B, T, V)
        return (x.to(rt.device), pm.bool().to(rt.device), fmask.to(rt.device))

    def translate(m, batch, beam, alpha, max_len):
        x, pm, fm = batch
        return m.greedy(x, pm, fm, max_len) if beam == 1 else m.beam_search(x, pm, fm, beam, alpha, max_len)

    seed_everything(cfg.seed, rt.rank)
    model = build_backtranslator(cfg, ctx.inputs["prepare"].num_coords, ctx.inputs["prepare"].vocab).to(rt.device)
    b = cfg.backtranslator
    return train_translator(ctx, "backtranslator", model, frames, batch_of, b.epochs, b.beam_size, 1.0,
                            cfg.sign2text.max_output_len, translate)


def _save(out: dict, folder: Path) -> None:
    save_torch({"model": out["model"]}, folder / "model.pt")
    (folder / "result.json").write_text(json.dumps(out["result"]))


def _load(folder: Path) -> dict:
    return {"model": load_torch(folder / "model.pt")["model"], "result": json.loads((folder / "result.json").read_text())}


def _ready_backtranslator(ctx: StageContext, out: dict) -> dict:
    """The judge as a model in eval mode (text-to-sign decodes its generated keypoints with it)."""
    model = build_backtranslator(ctx.cfg, ctx.inputs["prepare"].num_coords, ctx.inputs["prepare"].vocab)
    model.load_state_dict(out["model"])
    model.to(ctx.runtime.device).eval()
    return {"model": model, "result": out["result"]}


def _settings(section: str) -> Callable[[ExperimentConfig], dict]:
    return lambda cfg: {section: dataclasses.asdict(getattr(cfg, section)), "optim": dataclasses.asdict(cfg.optim),
                        "seed": cfg.seed, **numerics(cfg)}


SIGN2TEXT = Stage(name="sign2text", needs=("prepare", "embed"), settings=_settings("sign2text"), run=run_sign2text,
                  save=_save, load=_load)
BACKTRANSLATOR = Stage(name="backtranslator", needs=("prepare",), settings=_settings("backtranslator"),
                       run=run_backtranslator, save=_save, load=_load, ready=_ready_backtranslator)
