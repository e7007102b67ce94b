"""The text2sign stage (section 3.4, B.2): text -> gloss-level representations -> keypoints.

The mapping is trained to produce the frozen encoder's Z at `text2sign.stride` (by default the
window, eq. 4) and which of its queries are valid (eq. 5); the frozen SignMAE decoder renders each
valid representation into `window` frames. The epoch kept is the last, or with `text2sign.select_by:
dev_bt_bleu4` the one with the best greedy back-translated dev BLEU-4 (B.2). Generated keypoints
are scored against the ground truth (MPJPE, DTW-MJE) and by back-translation (BLEU, ROUGE-L of the
judge's translations). Sentences are the vocabulary's tokens, or with a Hugging Face
`text2sign.text_encoder` that model's own tokenizer's ([CLS] first).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from harness.builders import build_text2sign, text2sign_stride
from harness.config import ConfigError
from harness.data.datasets import pad_sequences, pad_windows
from harness.io import load_torch, save_torch
from harness.loop import StageRun, seed_everything, shard_order, steps_per_epoch, train_stage
from harness.results import sample_indices
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
    from harness.metrics import dtw_mje, mpjpe, text_metrics
    cfg, rt = ctx.cfg, ctx.runtime
    prepared = ctx.inputs["prepare"]
    corpus, vocab = prepared.corpus, prepared.vocab
    z = ctx.inputs["embed_t2s"]
    judge = ctx.inputs["backtranslator"]["model"]
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

    keep = torch.from_numpy(present_points(corpus["train"]))  # (V,)

    def produce(m, split):
        generated: list[torch.Tensor] = []  # [(T_i, V, C)]
        for i in range(0, len(tokens[split]), bs):
            idx = list(range(i, min(i + bs, len(tokens[split]))))
            generated += [g.cpu() for g in m.generate(token_batch(split, idx), signmae.decode, stride=stride)]
        return generated

    def back_translate(generated, beam):
        hyps = []
        pmasks = [keep.expand(g.shape[0], -1) for g in generated]  # [(T_i, V)]
        for i in range(0, len(generated), bs):
            ids = judge.translate([g.to(rt.device) for g in generated[i:i + bs]],
                                  [m.to(rt.device) for m in pmasks[i:i + bs]], beam, 1.0, cfg.sign2text.max_output_len)
            hyps += [vocab.decode(x) for x in ids]
        return hyps

    true_len = torch.tensor([len(zz) for zz in z["dev"]])  # (dev,)
    dev_refs = [s.text for s in corpus["dev"]]

    def evaluate(m, epoch):
        pred = torch.cat([m.predicted_lengths(token_batch("dev", list(range(i, min(i + bs, len(tokens["dev"]))))))
                          .cpu() for i in range(0, len(tokens["dev"]), bs)])
        out = {"text2sign/dev_length_accuracy": float((pred == true_len).float().mean())}
        if t.select_by == "dev_bt_bleu4":  # B.2's early stopping: greedy back-translation of dev, as sign-to-text
            out["text2sign/dev_bt_bleu4_greedy"] = text_metrics(back_translate(produce(m, "dev"), 1), dev_refs)["bleu4"]
        return out

    seed_everything(cfg.seed, rt.rank)
    model = build_text2sign(cfg, z["train"][0].shape[-1], vocab, longest, pad_id).to(rt.device)
    selected = "text2sign/dev_bt_bleu4_greedy" if t.select_by == "dev_bt_bleu4" else None  # else the last epoch
    train_stage(StageRun("text2sign", ctx.key, model, batches, t.epochs, steps_per_epoch(n, bs, rt.world_size),
                         evaluate, max(1, t.epochs // EVALUATIONS), keep_best=selected), cfg.optim, rt)
    model.eval()
    result = {}
    with torch.no_grad():
        for split in ("dev", "test"):
            generated = produce(model, split)
            hyps = back_translate(generated, cfg.backtranslator.beam_size)
            refs = [s.text for s in corpus[split]]
            metrics = text_metrics(hyps, refs)
            gts = corpus[split]
            metrics["mpjpe"] = float(np.mean([mpjpe(g.numpy(), s.keypoints, s.mask) for g, s in zip(generated, gts)]))
            metrics["dtw_mje"] = float(np.mean([dtw_mje(g.numpy(), s.keypoints, s.mask) for g, s in zip(generated, gts)]))
            result[split] = {"metrics": metrics, "hypotheses": hyps, "references": refs}
            if split == "test":  # the sentences every trial of a study shows side by side (figure 4)
                result["samples"] = [{"index": i, "generated": generated[i], "text": refs[i],
                                      "ground_truth": torch.from_numpy(gts[i].keypoints),
                                      "mask": torch.from_numpy(gts[i].mask)} for i in sample_indices(len(gts))]
    return {"model": model.state_dict(), "result": result}


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
    # The stride as used: 0 and the window are one computation, one cache entry.
    return {"text2sign": {**dataclasses.asdict(cfg.text2sign), "stride": text2sign_stride(cfg)},
            "optim": dataclasses.asdict(cfg.optim), "seed": cfg.seed,
            **numerics(cfg)}


TEXT2SIGN = Stage(name="text2sign", needs=("prepare", "pretrain", "embed_t2s", "backtranslator"), settings=settings,
                  run=run, save=_save, load=_load,
                  version=2)  # 2: keeps the side-by-side test sentences' keypoints (results.sample_indices), not one
