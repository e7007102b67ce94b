"""The translators into text: sign-to-text over Z (section 3.4), the back-translator, a
keypoint-to-text model trained on ground-truth keypoints that judges text-to-sign (section 5), and
the translation baselines of tables 1 and 5 on the same prepared keypoints (section 4.3): Joint-SLT
(gloss-free, or with the CTC gloss loss where the source has glosses) and ConSLT.

All train with teacher-forced cross-entropy (eq. 3; the baselines add their own terms), keep the
epoch with the best greedy dev BLEU-4 (the paper's early stopping), then decode dev and test with
beam search, scored by the same metrics.

APW for Joint-SLT and ConSLT (table 5): they have no keypoint loss for eq. 2 to weight, so the
weights weigh what they read: each point's coordinates are multiplied by its eq. 2 weight W
(`pretrain.weighting`: none, FPW, or APW window by window, harness/pose_weights.py) before the
frame embedding, the same W SignMAE's loss would give that frame. With `none` the input is the
keypoints unchanged. FPW's constants scale each part's input by a fixed factor, which a linear
embedding can absorb (it changes the starting point and the weight decay's pull, not what the
model can express); APW's per-sample weights cannot be absorbed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import torch

from harness.builders import build_backtranslator, build_keypoint_translator, build_sign2text
from harness.config import ExperimentConfig
from harness.data.datasets import pad_windows
from harness.io import load_torch, save_torch
from harness.loop import StageRun, seed_everything, shard_order, steps_per_epoch, train_stage
from harness.pose_weights import sequence_weights, training_fpw, weighting_settings
from harness.stages.base import Stage, StageContext, numerics
from models.transformer import pad_batch, teacher_forcing_pair

EVALUATIONS = 8  # greedy dev evaluations over a stage (every epochs // 8 epochs)


def train_translator(ctx: StageContext, name: str, model, inputs: dict[str, list], batch_of: Callable, epochs: int,
                     beam_size: int, length_penalty: float, max_len: int, translate: Callable,
                     extra_of: Callable | None = None) -> dict:
    """extra_of(idx): training-only forward arguments after the targets (Joint-SLT's glosses)."""
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
            yield batch_of("train", idx) + (tgt_in, tgt_out) + (extra_of(idx) if extra_of else ())

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


def _frames(ctx: StageContext, full: bool = True) -> tuple[dict, dict]:
    # The judge reads every part, whatever pretrain.parts says: it is the same for every variant.
    # The baselines read what every method reads (full=False: only pretrain.parts present).
    corpus = ctx.inputs["prepare"].full if full else ctx.inputs["prepare"].corpus
    frames = {split: [torch.from_numpy(s.keypoints) for s in seqs] for split, seqs in corpus.items()}
    masks = {split: [torch.from_numpy(s.mask) for s in seqs] for split, seqs in corpus.items()}
    return frames, masks


def _keypoint_batches(frames: dict, masks: dict, device) -> Callable:
    def batch_of(split, idx):
        x, fmask = pad_batch([frames[split][j] for j in idx])  # (B, T, V, C), (B, T)
        pm, _ = pad_batch([masks[split][j] for j in idx], pad_value=False)  # (B, T, V)
        return (x.to(device), pm.bool().to(device), fmask.to(device))
    return batch_of


def _translate_keypoints(m, batch, beam, alpha, max_len):
    x, pm, fm = batch
    return m.greedy(x, pm, fm, max_len) if beam == 1 else m.beam_search(x, pm, fm, beam, alpha, max_len)


def run_backtranslator(ctx: StageContext) -> dict:
    cfg, rt = ctx.cfg, ctx.runtime
    frames, masks = _frames(ctx)
    batch_of, translate = _keypoint_batches(frames, masks, rt.device), _translate_keypoints
    seed_everything(cfg.seed, rt.rank)
    model = build_backtranslator(cfg, ctx.inputs["prepare"].num_coords, ctx.inputs["prepare"].vocab).to(rt.device)
    b = cfg.backtranslator
    return train_translator(ctx, "backtranslator", model, frames, batch_of, b.epochs, b.beam_size, 1.0,
                            cfg.sign2text.max_output_len, translate)


def gloss_targets(corpus) -> tuple[list[list[int]], int] | None:
    """The training sentences' glosses as CTC targets (models/joint_slt.py: ids 1.., 0 the blank),
    numbered by sorted gloss name, and the head's size (blank included); None when a training
    sequence has no gloss annotation (the source has none: the row is not applicable)."""
    train = corpus["train"]
    if any(not (s.gloss or "").split() for s in train):
        return None
    names = sorted({g for s in train for g in s.gloss.split()})
    ids = {g: i + 1 for i, g in enumerate(names)}
    return [[ids[g] for g in s.gloss.split()] for s in train], len(names) + 1


NOT_APPLICABLE = "not applicable: the source has no gloss annotations for the CTC loss"


def _not_applicable(ctx: StageContext) -> dict:
    """A result with no score (NaN, shown as n/a) and no outputs, saying why."""
    from harness.report import TEXT_METRICS
    return {"model": {}, "result": {"not_applicable": NOT_APPLICABLE, **{
        split: {"metrics": {m: float("nan") for m in TEXT_METRICS}, "hypotheses": [], "references": []}
        for split in ("dev", "test")}}}


def run_keypoint_translator(ctx: StageContext) -> dict:
    """Joint-SLT (gloss-free or with CTC glosses) or ConSLT on the prepared keypoints, as
    `sign2text.method` says, sized and trained by the sign2text keys (module doc: its input weighting)."""
    cfg, rt = ctx.cfg, ctx.runtime
    s = cfg.sign2text
    glosses = gloss_targets(ctx.inputs["prepare"].corpus) if s.method == "joint_slt_gloss" else None
    if s.method == "joint_slt_gloss" and glosses is None:
        rt.say(f"{s.method}: {NOT_APPLICABLE}")
        return _not_applicable(ctx)
    frames, masks = _frames(ctx, full=False)
    fixed = training_fpw(cfg, list(zip(frames["train"], masks["train"])))
    weighted = {split: [x * sequence_weights(cfg, x, m, fixed)[..., None] for x, m in zip(xs, masks[split])]
                for split, xs in frames.items()}  # [(T_i, V, C)]
    extra_of, num_glosses = None, None
    if glosses is not None:
        targets, num_glosses = glosses

        def extra_of(idx):  # the CTC targets, left-aligned, 0-padded (models/joint_slt.py)
            return (pad_batch([torch.tensor(targets[j]) for j in idx])[0].long().to(rt.device),)  # (B, S)
    seed_everything(cfg.seed, rt.rank)
    model = build_keypoint_translator(cfg, ctx.inputs["prepare"].num_coords, ctx.inputs["prepare"].vocab,
                                      num_glosses).to(rt.device)
    return train_translator(ctx, s.method, model, weighted, _keypoint_batches(weighted, masks, rt.device), s.epochs,
                            s.beam_size, s.length_penalty, s.max_output_len, _translate_keypoints, extra_of)


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
    # Not the method: the stage is the method (and keys of the UniGloR stages stay what they were).
    return lambda cfg: {section: {k: v for k, v in dataclasses.asdict(getattr(cfg, section)).items() if k != "method"},
                        "optim": dataclasses.asdict(cfg.optim), "seed": cfg.seed, **numerics(cfg)}


def _baseline_settings(cfg: ExperimentConfig) -> dict:
    """A baseline's key: its method and sign2text sizes, the weighting of its inputs, the parts it sees."""
    return {"sign2text": dataclasses.asdict(cfg.sign2text), "optim": dataclasses.asdict(cfg.optim), "seed": cfg.seed,
            "weighting": weighting_settings(cfg), "parts": list(cfg.pretrain.parts), **numerics(cfg)}


SIGN2TEXT = Stage(name="sign2text", needs=("prepare", "embed"), settings=_settings("sign2text"), run=run_sign2text,
                  save=_save, load=_load)
# Joint-SLT with and without glosses: one stage, two keys (the method is in the settings).
JOINT_SLT = Stage(name="joint_slt", needs=("prepare",), settings=_baseline_settings, run=run_keypoint_translator,
                  save=_save, load=_load)
CONSLT = Stage(name="conslt", needs=("prepare",), settings=_baseline_settings, run=run_keypoint_translator,
               save=_save, load=_load)
BACKTRANSLATOR = Stage(name="backtranslator", needs=("prepare",), settings=_settings("backtranslator"),
                       run=run_backtranslator, save=_save, load=_load, ready=_ready_backtranslator)
