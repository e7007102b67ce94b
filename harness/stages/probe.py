"""A representation probe of every pretraining (beyond the paper; the question of section 3.3):
does z alone tell glosses apart, and the minimal pairs that differ only in the hands or the face?

The synthetic corpus keeps each gloss's frames (SignSequence.boundaries, mapped through the dropped
frames by preprocessing). Each gloss occurrence is cut out as a clip, encoded by the frozen encoder
(windows at half the window's length, so the probe depends on the pretraining alone; a clip shorter
than the window padded with its last frame) and averaged to one z. Queries are the dev and test
clips, neighbours the train clips (cosine 1-NN): gloss accuracy over all glosses (`probe/knn_acc`),
and per minimal pair of the inventory (signs.minimal_pairs), with only the pair's two glosses as
neighbours, by the channel that tells them apart (`probe/pair_hand`, `probe/pair_face`,
`probe/pair_both`; chance 50%; `..._n`: the clips scored). A corpus without boundaries
(real data) or with no gloss inventory (not synthetic) gives no metric of what it lacks.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from harness.config import ExperimentConfig
from harness.data.record import SignSequence
from harness.data.sources import parse_source
from harness.data.synth import gloss_inventory, minimal_pairs
from harness.data.synth.second_language import second_inventory
from harness.datasource import synth_params
from harness.encode import encode_clips
from harness.probe import knn_predict
from harness.stages.base import Stage, StageContext

K = 1  # the nearest neighbour: a larger k favours the more frequent gloss of a pair (debug: 18% on pairs at k = 5)
CHANNELS = {"hand": "pair_hand", "face": "pair_face", "hand+face": "pair_both"}


def gloss_clips(seqs: list[SignSequence]) -> list[SignSequence]:
    """One clip per gloss occurrence with frames left (text: the gloss)."""
    out = []
    for seq in seqs:
        if not seq.boundaries or not seq.gloss:
            continue
        for gloss, (a, b) in zip(seq.gloss.split(), seq.boundaries):
            if b > a:
                out.append(dataclasses.replace(seq, name=f"{seq.name}/{gloss}", keypoints=seq.keypoints[a:b],
                                               mask=seq.mask[a:b], text=gloss, boundaries=None))
    return out


def probe_metrics(train: np.ndarray, train_labels: np.ndarray, query: np.ndarray, query_labels: np.ndarray,
                  pairs: dict[str, list[tuple[str, str]]] | None) -> dict[str, float]:
    """The probe's metrics (percent) from pooled z (module doc); pair metrics need `pairs`."""
    seen = np.isin(query_labels, train_labels)
    out: dict[str, float] = {}
    if seen.any():
        pred = knn_predict(train, train_labels, query[seen], min(K, len(train)))
        out["probe/knn_acc"] = float(100.0 * (pred == query_labels[seen]).mean())
    for channel, name in CHANNELS.items():
        hits = []
        for a, b in (pairs or {}).get(channel, []):
            nb, q = np.isin(train_labels, (a, b)), np.isin(query_labels, (a, b))
            if len(set(train_labels[nb])) < 2 or not q.any():
                continue  # the pair is not in train twice over: nothing to tell apart
            pred = knn_predict(train[nb], train_labels[nb], query[q], min(K, int(nb.sum())))
            hits += list(pred == query_labels[q])
        if hits:
            out[f"probe/{name}"], out[f"probe/{name}_n"] = float(100.0 * np.mean(hits)), float(len(hits))
    return out


def _pairs(cfg: ExperimentConfig) -> dict[str, list[tuple[str, str]]] | None:
    source = parse_source(cfg.data.source)
    if source.kind not in ("synth", "synth2"):
        return None
    params = synth_params(source, cfg)
    inventory = (gloss_inventory if source.kind == "synth" else second_inventory)(params["seed"], params["glosses"])
    return minimal_pairs(inventory)


def run(ctx: StageContext) -> dict:
    corpus = ctx.inputs["prepare"].corpus  # what pretraining saw (pretrain.parts applied)
    w, device = ctx.cfg.pretrain.window, ctx.runtime.device
    s = max(1, w // 2)
    encoder = ctx.inputs["pretrain"].model
    pooled = {}
    for split in ("train", "dev", "test"):
        clips = gloss_clips(corpus.get(split, []))
        z = [zi.mean(dim=0) for zi in encode_clips(encoder, clips, w, s, device)] if clips else []
        pooled[split] = (torch.stack(z).numpy() if z else np.zeros((0, 1)), np.array([c.text for c in clips]))
    train, train_labels = pooled["train"]
    query = np.concatenate([pooled["dev"][0], pooled["test"][0]]) if len(pooled["dev"][1]) + len(
        pooled["test"][1]) else np.zeros((0, 1))
    query_labels = np.concatenate([pooled["dev"][1], pooled["test"][1]])
    if not len(train_labels) or not len(query_labels):
        return {"metrics": {}}
    return {"metrics": probe_metrics(train, train_labels, query, query_labels, _pairs(ctx.cfg))}


def _save(out: dict, folder: Path) -> None:
    (folder / "metrics.json").write_text(json.dumps(out["metrics"]))


def _load(folder: Path) -> dict:
    return {"metrics": json.loads((folder / "metrics.json").read_text())}


PROBE = Stage(name="probe", needs=("prepare", "pretrain"), settings=lambda cfg: {"k": K},
              run=run, save=_save, load=_load)
