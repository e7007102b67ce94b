"""The text2sign stage (section 3.4, B.2): text -> gloss-level representations -> keypoints.

The mapping is trained to produce the frozen encoder's Z at `text2sign.stride` (by default the
window, eq. 4) and which of its queries are valid (eq. 5); the frozen SignMAE decoder renders each
valid representation into `window` frames. The epoch kept is the last, or with `text2sign.select_by:
dev_bt_bleu4` the one with the best greedy back-translated dev BLEU-4 (B.2). Generated keypoints
are scored against the ground truth (MPJPE, DTW-MJE) and by back-translation (BLEU, ROUGE-L of the
judge's translations). Sentences are the vocabulary's tokens, or with a Hugging Face
`text2sign.text_encoder` that model's own tokenizer's ([CLS] first).

The production baselines of tables 2 and 5 (section 4.3), PT and NSLP-G, are stages here too:
text to the prepared keypoints directly, their pose losses weighted by eq. 2's none / FPW / APW
(`pretrain.weighting`, window by window), selected and scored exactly as the rows above (the same
judge, the same metrics, the same sample for the skeleton animation).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from harness.builders import build_production_baseline, build_text2sign, text2sign_stride
from harness.config import ConfigError
from harness.data.datasets import pad_sequences, pad_windows
from models.transformer import pad_batch
from harness.io import load_torch, save_torch
from harness.loop import StageRun, seed_everything, shard_order, steps_per_epoch, train_stage
from harness.results import sample_indices
from harness.pose_weights import sequence_weights, training_fpw, weighting_settings
from harness.stages.base import Stage, StageContext, numerics
from harness.datasource import present_points

EVALUATIONS = 4  # dev length-accuracy (and, with select_by dev_bt_bleu4, back-translation) evaluations


def text_tokenizer(path: str):
    """The tokenizer of a local Hugging Face model folder, checked for what the stage needs ([CLS],
    padding) and that the model's config is there too; ConfigError otherwise. Nothing is downloaded."""
    if not Path(path).is_dir():
        raise ConfigError(f"text2sign.text_encoder {path!r} is not a folder; expected 'learned' or a local "
                          "Hugging Face model folder (saved with save_pretrained)")
    try:
        from transformers import AutoConfig, AutoTokenizer
    except ImportError:
        raise ConfigError(f"text2sign.text_encoder {path!r} needs the `transformers` package (pip install "
                          "'uniglor-harness[hf]'), or text2sign.text_encoder: learned") from None
    try:
        AutoConfig.from_pretrained(path, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"text2sign.text_encoder {path!r} is not a local Hugging Face model folder with a "
                          f"tokenizer ({first})") from None
    if tokenizer.cls_token_id is None or tokenizer.pad_token_id is None:
        raise ConfigError(f"text2sign.text_encoder {path!r}: its tokenizer has no [CLS] or no padding token; "
                          "the length regulator reads the [CLS] output (section 3.4)")
    return tokenizer


def sentence_tokens(cfg, corpus: dict, vocab) -> tuple[dict[str, list[list[int]]], int]:
    """Every split's sentences as token ids, and the padding id: the vocabulary's for the learned
    encoder; with a Hugging Face `text2sign.text_encoder`, that model's own tokenizer ([CLS] first)."""
    path = cfg.text2sign.text_encoder
    if path == "learned":
        return {split: [vocab.encode(s.text) or [vocab.unk_id] for s in seqs] for split, seqs in corpus.items()}, \
            vocab.pad_id
    tokenizer = text_tokenizer(path)
    tokens = {split: [tokenizer(s.text)["input_ids"] for s in seqs] for split, seqs in corpus.items()}
    if any(ids[:1] != [tokenizer.cls_token_id] for split in tokens.values() for ids in split):
        raise ConfigError(f"text2sign.text_encoder {path!r}: its tokenizer does not put [CLS] first")
    return tokens, int(tokenizer.pad_token_id)


def run(ctx: StageContext) -> dict:
    cfg, rt = ctx.cfg, ctx.runtime
    prepared = ctx.inputs["prepare"]
    corpus, vocab = prepared.corpus, prepared.vocab
    z = ctx.inputs["embed_t2s"]
    signmae = ctx.inputs["pretrain"].model
    t = cfg.text2sign
    stride = text2sign_stride(cfg)
    longest = max(len(zz) for zz in z["train"])
    if t.num_queries and longest > t.num_queries:  # 0: as many queries as the longest needs
        raise ConfigError(f"text2sign.num_queries ({t.num_queries}) is smaller than the longest training "
                          f"sequence's {longest} segments of {cfg.pretrain.window} frames at stride {stride}; raise it")
    tokens, pad_id = sentence_tokens(cfg, corpus, vocab)
    bs = cfg.optim.batch_size
    n = len(tokens["train"])

    def token_batch(split, idx):
        ids, _ = pad_sequences([tokens[split][j] for j in idx], pad_id)  # (B, L)
        return ids.to(rt.device)

    def batches(epoch):
        order = shard_order(n, cfg.seed, epoch, rt.rank, rt.world_size)
        for i in range(0, len(order), bs):
            idx = order[i:i + bs]
            target, valid = pad_windows([z["train"][j] for j in idx])  # (B, N, D), (B, N)
            yield token_batch("train", idx), target.to(rt.device), valid.to(rt.device)

    def produce(m, split):
        generated: list[torch.Tensor] = []  # [(T_i, V, C)]
        for i in range(0, len(tokens[split]), bs):
            idx = list(range(i, min(i + bs, len(tokens[split]))))
            generated += [g.cpu() for g in m.generate(token_batch(split, idx), signmae.decode, stride=stride)]
        return generated

    true_len = torch.tensor([len(zz) for zz in z["dev"]])  # (dev,)
    keep_best, select = _selection(ctx, "text2sign")

    def evaluate(m, epoch):
        pred = torch.cat([m.predicted_lengths(token_batch("dev", list(range(i, min(i + bs, len(tokens["dev"]))))))
                          .cpu() for i in range(0, len(tokens["dev"]), bs)])
        out = {"text2sign/dev_length_accuracy": float((pred == true_len).float().mean())}
        return {**out, **select(m, lambda: produce(m, "dev"))}

    seed_everything(cfg.seed, rt.rank)
    model = build_text2sign(cfg, z["train"][0].shape[-1], vocab, longest, pad_id).to(rt.device)
    train_stage(StageRun("text2sign", ctx.key, model, batches, t.epochs, steps_per_epoch(n, bs, rt.world_size),
                         evaluate, max(1, t.epochs // EVALUATIONS), keep_best=keep_best), cfg.optim, rt)
    return {"model": model.state_dict(), "result": _judged(ctx, model, lambda split: produce(model, split))}


def _back_translate(ctx: StageContext, generated: list[torch.Tensor], beam: int) -> list[str]:
    """The judge's translations of generated (T_i, V, C) sequences, told the points the training
    data has (the same for every method, so every production row is scored by the same judge)."""
    cfg, rt = ctx.cfg, ctx.runtime
    judge, vocab, bs = ctx.inputs["backtranslator"]["model"], ctx.inputs["prepare"].vocab, cfg.optim.batch_size
    keep = torch.from_numpy(present_points(ctx.inputs["prepare"].corpus["train"]))  # (V,)
    pmasks = [keep.expand(g.shape[0], -1) for g in generated]  # [(T_i, V)]
    hyps = []
    for i in range(0, len(generated), bs):
        ids = judge.translate([g.to(rt.device) for g in generated[i:i + bs]],
                              [m.to(rt.device) for m in pmasks[i:i + bs]], beam, 1.0, cfg.sign2text.max_output_len)
        hyps += [vocab.decode(x) for x in ids]
    return hyps


def _selection(ctx: StageContext, name: str):
    """The dev metric the loop keeps the best epoch by, and the dev evaluation that computes it: with
    `text2sign.select_by: dev_bt_bleu4`, B.2's early stopping (greedy back-translation of dev, as
    sign-to-text); with "last" (None, no evaluation) the last epoch is the result. The loop holds the
    best epoch's weights in its checkpoint, so a resumed stage keeps the same one."""
    from harness.metrics import text_metrics
    refs = [s.text for s in ctx.inputs["prepare"].corpus["dev"]]
    metric = f"{name}/dev_bt_bleu4_greedy"

    def select(m, dev_generated) -> dict:
        if ctx.cfg.text2sign.select_by != "dev_bt_bleu4":
            return {}
        return {metric: text_metrics(_back_translate(ctx, dev_generated(), 1), refs)["bleu4"]}
    return (metric if ctx.cfg.text2sign.select_by == "dev_bt_bleu4" else None), select


def _judged(ctx: StageContext, model, produce) -> dict:
    """Dev and test scored as every production row is (section 5): back-translation BLEU / ROUGE-L by
    the judge, MPJPE and DTW-MJE against the ground truth; the side-by-side test sentences' keypoints
    kept (results.sample_indices: figure 4's strip, the skeleton animation). produce(split) ->
    [(T_i, V, C)] generated by `model` (the kept epoch's, which the loop loaded)."""
    from harness.metrics import dtw_mje, mpjpe, text_metrics
    corpus = ctx.inputs["prepare"].corpus
    model.eval()
    result = {}
    with torch.no_grad():
        for split in ("dev", "test"):
            generated = produce(split)
            hyps = _back_translate(ctx, generated, ctx.cfg.backtranslator.beam_size)
            gts = corpus[split]
            refs = [s.text for s in gts]
            metrics = text_metrics(hyps, refs)
            metrics["mpjpe"] = float(np.mean([mpjpe(g.numpy(), s.keypoints, s.mask) for g, s in zip(generated, gts)]))
            metrics["dtw_mje"] = float(np.mean([dtw_mje(g.numpy(), s.keypoints, s.mask) for g, s in zip(generated, gts)]))
            result[split] = {"metrics": metrics, "hypotheses": hyps, "references": refs}
            if split == "test":  # the sentences every trial of a study shows side by side (figure 4)
                result["samples"] = [{"index": i, "generated": generated[i], "text": refs[i],
                                      "ground_truth": torch.from_numpy(gts[i].keypoints),
                                      "mask": torch.from_numpy(gts[i].mask)} for i in sample_indices(len(gts))]
    return result


def run_production(ctx: StageContext) -> dict:
    """PT or NSLP-G (`text2sign.method`), trained by the one loop on the prepared keypoints with
    eq. 2's none / FPW / APW weights (harness/pose_weights.py), sized by the text2sign keys, and
    scored exactly as the UniGloR text-to-sign rows (`_judged`)."""
    cfg, rt = ctx.cfg, ctx.runtime
    t = cfg.text2sign
    corpus, vocab = ctx.inputs["prepare"].corpus, ctx.inputs["prepare"].vocab
    tokens = {split: [vocab.encode(s.text) or [vocab.unk_id] for s in seqs] for split, seqs in corpus.items()}
    frames = [torch.from_numpy(s.keypoints).float() for s in corpus["train"]]  # [(T_i, V, C)]
    masks = [torch.from_numpy(s.mask).bool() for s in corpus["train"]]  # [(T_i, V)]
    fixed = training_fpw(cfg, list(zip(frames, masks)))
    weights = [sequence_weights(cfg, x, m, fixed) for x, m in zip(frames, masks)]  # [(T_i, V)]
    longest = max(len(x) for x in frames)
    bs, n = cfg.optim.batch_size, len(frames)

    def token_batch(split, idx):
        return pad_sequences([tokens[split][j] for j in idx], vocab.pad_id)[0].to(rt.device)  # (B, L)

    def batches(epoch):
        order = shard_order(n, cfg.seed, epoch, rt.rank, rt.world_size)
        for i in range(0, len(order), bs):
            idx = order[i:i + bs]
            x, fmask = pad_batch([frames[j] for j in idx])  # (B, T, V, C), (B, T)
            pm, _ = pad_batch([masks[j] for j in idx], pad_value=False)  # (B, T, V)
            w, _ = pad_batch([weights[j] for j in idx])  # (B, T, V)
            yield (token_batch("train", idx), x.to(rt.device), pm.bool().to(rt.device), fmask.to(rt.device),
                   w.to(rt.device))

    # PT stops when its counter reaches 1; a regressed counter may land just short, so anything above
    # the longest training sequence's last-but-one counter (1 - 1 / T) counts. At most 1.5 x that length.
    max_frames, stop_at = (3 * longest + 1) // 2, 1.0 - 0.5 / longest

    def produce(m, split):
        out: list[torch.Tensor] = []  # [(T_i, V, C)]
        for i in range(0, len(tokens[split]), bs):
            ids = token_batch(split, list(range(i, min(i + bs, len(tokens[split])))))
            seqs = m.generate(ids) if t.method == "nslp_g" else m.generate(ids, max_frames, stop_at)
            out += [g.float().cpu() for g in seqs]
        return out

    keep_best, select = _selection(ctx, t.method)
    seed_everything(cfg.seed, rt.rank)
    model = build_production_baseline(cfg, ctx.inputs["prepare"].num_coords, vocab, longest).to(rt.device)
    train_stage(StageRun(t.method, ctx.key, model, batches, t.epochs, steps_per_epoch(n, bs, rt.world_size),
                         lambda m, epoch: select(m, lambda: produce(m, "dev")), max(1, t.epochs // EVALUATIONS),
                         keep_best=keep_best), cfg.optim, rt)
    return {"model": model.state_dict(), "result": _judged(ctx, model, lambda split: produce(model, split))}


def _save(out: dict, folder: Path) -> None:
    result = dict(out["result"])
    samples = result.pop("samples")
    save_torch({"model": out["model"], "samples": samples}, folder / "model.pt")
    (folder / "result.json").write_text(json.dumps(result))


def _load(folder: Path) -> dict:
    state = load_torch(folder / "model.pt")
    result = json.loads((folder / "result.json").read_text())
    result["samples"] = state["samples"]
    return {"model": state["model"], "result": result}


def settings(cfg) -> dict:
    # The stride as used: 0 and the window are one computation, one cache entry. Not the method:
    # the stage is the method (and the key stays what it was before there were baselines).
    section = {k: v for k, v in dataclasses.asdict(cfg.text2sign).items() if k != "method"}
    return {"text2sign": {**section, "stride": text2sign_stride(cfg)},
            "optim": dataclasses.asdict(cfg.optim), "seed": cfg.seed,
            **numerics(cfg)}


TEXT2SIGN = Stage(name="text2sign", needs=("prepare", "pretrain", "embed_t2s", "backtranslator"), settings=settings,
                  run=run, save=_save, load=_load,
                  version=2)  # 2: keeps the side-by-side test sentences' keypoints (results.sample_indices), not one


def production_settings(cfg) -> dict:
    """A production baseline's key: its method and text2sign sizes, eq. 2's weighting, the parts it sees."""
    return {"text2sign": dataclasses.asdict(cfg.text2sign), "optim": dataclasses.asdict(cfg.optim), "seed": cfg.seed,
            "weighting": weighting_settings(cfg), "parts": list(cfg.pretrain.parts), **numerics(cfg)}


# The production baselines of table 2: judged by the same back-translator as text-to-sign.
PT = Stage(name="pt", needs=("prepare", "backtranslator"), settings=production_settings, run=run_production,
           save=_save, load=_load)
NSLP_G = Stage(name="nslp_g", needs=("prepare", "backtranslator"), settings=production_settings, run=run_production,
               save=_save, load=_load)
