"""Isolated sign recognition on an unseen inventory (paper section 5, "Out-of-domain Results", table 3).

Two stages. `isolated`: the out-of-domain corpus (`recognition.source`: synth, harness/data/synth/isolated.py's
unseen glosses by unseen signers, recorded like the sentence corpus; or a user's keypoint source
with a label table, harness/data/labels.py), preprocessed as every source is (appendix B.1).
`recognition`: `recognition.model` signmae reads the frozen SignMAE encoder's z of each clip's
sliding windows (at embed.stride; a clip shorter than the window is padded with its last frame)
with the recognition head (a Transformer encoder configured like SignMAE's and one linear layer);
the baselines read the clip's normalized keypoints frame by frame (`gru`: GRU + normalization,
`transformer`: a Transformer encoder). Trained with cross-entropy on the train split; the epoch with
the best dev top-1 is kept; Top-1/5/10 on test.

The baselines need no SignMAE, but the stage's needs are one graph for every variant: their cache
key includes the pretraining's, so another pretraining retrains them (a few seconds at debug size).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from harness.builders import build_recognizer
from harness.config import ExperimentConfig
from harness.data.datasets import pad_windows
from harness.data.prepare import preprocess_corpus
from harness.data.readers.npz import read_npz, write_npz
from harness.data.record import Corpus, SignSequence
from harness.data.synth import generate_isolated
from harness.datasource import isolated_identity, prepare_isolated
from harness.encode import encode_clips
from harness.io import load_torch, save_torch
from harness.loop import StageRun, seed_everything, shard_order, steps_per_epoch, train_stage
from harness.probe import topk_accuracy
from harness.stages.base import Stage, StageContext, numerics

EVALUATIONS = 8  # dev evaluations over a stage
KS = (1, 5, 10)  # table 3


def isolated_params(cfg: ExperimentConfig) -> dict:
    """generate_isolated's arguments: recognition's sizes, data.synth's recording conditions."""
    r, s = cfg.recognition, cfg.data.synth
    return {"seed": r.seed, "glosses": r.glosses, "signers": r.signers, "train_per_gloss": r.train_per_gloss,
            "dev_per_gloss": r.dev_per_gloss, "test_per_gloss": r.test_per_gloss, "fps": s.fps,
            "noisy_frame_rate": s.noisy_frame_rate, "missing_point_rate": s.missing_point_rate, "jitter": s.jitter}


def _save_isolated(out: tuple[Corpus, dict], folder: Path) -> None:
    corpus, report = out
    write_npz(corpus, folder / "corpus.npz")
    (folder / "report.json").write_text(json.dumps(report))


def _isolated_settings(cfg: ExperimentConfig) -> dict:
    r = cfg.recognition
    if r.source == "synth":
        return {"isolated": isolated_params(cfg), "noise_threshold": cfg.data.noise_threshold}
    return {"source": isolated_identity(r.source, r.labels, cfg), "noise_threshold": cfg.data.noise_threshold}


def _isolated(ctx: StageContext) -> tuple[Corpus, dict]:
    cfg, r = ctx.cfg, ctx.cfg.recognition
    if r.source == "synth":
        return preprocess_corpus(generate_isolated(**isolated_params(cfg)), cfg.data.noise_threshold)
    return prepare_isolated(r.source, r.labels, cfg)


# Like prepare, run by the driver before any trial (a user's label table fails there, once), so
# not listed in a trial's stages: a trial would always find it cached.
ISOLATED = Stage(name="isolated", needs=(), settings=_isolated_settings, run=_isolated, save=_save_isolated,
                 load=lambda folder: read_npz(folder / "corpus.npz"), reload=True, reported=False)


def labels_of(corpus: Corpus) -> list[str]:
    """The class names: the train split's glosses, sorted (a class id is an index into this)."""
    return sorted({s.text for s in corpus["train"]})


def clip_z(ctx: StageContext, seqs: list[SignSequence]) -> list[torch.Tensor]:
    """[(N_i, D)]: z of each clip's windows at embed.stride (frozen encoder, zero-shot)."""
    return encode_clips(ctx.inputs["pretrain"].model, seqs, ctx.cfg.pretrain.window, ctx.cfg.embed.stride,
                        ctx.runtime.device)


def clip_frames(seqs: list[SignSequence]) -> list[torch.Tensor]:
    """[(T_i, V * C)]: the normalized keypoints (absent points 0) and, per point, whether it is present."""
    out = []
    for s in seqs:
        kp = torch.from_numpy(s.keypoints * s.mask[..., None]).flatten(1)  # (T, V * C)
        out.append(torch.cat([kp, torch.from_numpy(s.mask).float()], dim=1))  # (T, V * C + V)
    return out


def run_recognition(ctx: StageContext) -> dict:
    cfg, rt = ctx.cfg, ctx.runtime
    corpus = ctx.inputs["isolated"]
    classes = labels_of(corpus)
    index = {g: i for i, g in enumerate(classes)}
    splits = {split: [s for s in corpus[split] if s.text in index] for split in ("train", "dev", "test")}
    feats = {split: (clip_z(ctx, seqs) if cfg.recognition.model == "signmae" else clip_frames(seqs))
             for split, seqs in splits.items()}
    labels = {split: torch.tensor([index[s.text] for s in seqs]) for split, seqs in splits.items()}
    longest = max(f.shape[0] for fs in feats.values() for f in fs)
    seed_everything(cfg.seed, rt.rank)
    model = build_recognizer(cfg, feats["train"][0].shape[-1], len(classes), longest).to(rt.device)
    bs, n = cfg.optim.batch_size, len(feats["train"])

    def batch(split, idx):
        x, valid = pad_windows([feats[split][j] for j in idx])  # (B, N, D), (B, N)
        return x.to(rt.device), valid.to(rt.device)

    def batches(epoch):
        order = shard_order(n, cfg.seed, epoch, rt.rank, rt.world_size)
        for i in range(0, len(order), bs):
            idx = order[i:i + bs]
            yield batch("train", idx) + (labels["train"][idx].to(rt.device),)

    def logits(m, split):
        with torch.no_grad():
            return torch.cat([m.logits(*batch(split, list(range(i, min(i + bs, len(feats[split]))))))
                              for i in range(0, len(feats[split]), bs)]).float().cpu().numpy()  # (S, K)

    def evaluate(m, epoch):
        return {"recognition/dev_top1": topk_accuracy(logits(m, "dev"), labels["dev"].numpy(), (1,))["top1"]}

    epochs = cfg.recognition.epochs
    train_stage(StageRun("recognition", ctx.key, model, batches, epochs, steps_per_epoch(n, bs, rt.world_size),
                         evaluate, max(1, epochs // EVALUATIONS), keep_best="recognition/dev_top1"), cfg.optim, rt)
    model.eval()
    result = {}
    for split in ("dev", "test"):
        lg = logits(model, split)
        result[split] = {"metrics": topk_accuracy(lg, labels[split].numpy(), KS),
                         "hypotheses": [classes[i] for i in lg.argmax(axis=1)],
                         "references": [s.text for s in splits[split]]}
    return {"model": model.state_dict(), "result": result}


def _save(out: dict, folder: Path) -> None:
    save_torch({"model": out["model"]}, folder / "model.pt")
    (folder / "result.json").write_text(json.dumps(out["result"]))


def _load(folder: Path) -> dict:
    return {"model": load_torch(folder / "model.pt")["model"], "result": json.loads((folder / "result.json").read_text())}


def settings(cfg: ExperimentConfig) -> dict:
    r = cfg.recognition
    return {"recognition": dataclasses.asdict(r), "optim": dataclasses.asdict(cfg.optim), "seed": cfg.seed,
            "stride": cfg.embed.stride if r.model == "signmae" else None, **numerics(cfg)}


RECOGNITION = Stage(name="recognition", needs=("isolated", "pretrain"), settings=settings, run=run_recognition,
                    save=_save, load=_load)
