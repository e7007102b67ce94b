"""The stages of one trial (DESIGN.md "The pipeline"; paper sections 3.2-3.4, appendix B).

prepare -> pretrain (SignMAE) -> embed (sliding windows through the frozen encoder) -> sign2text;
prepare -> backtranslator (the SLP judge); pretrain -> embed(stride = window) -> text2sign.

Every stage's output is cached under `<results>/cache` by a content key of exactly what it depends
on (`stage_keys`), so an ablation that varies only the stride pretrains SignMAE once, and the
back-translator is shared by every variant that keeps the data. All stages train with the one loop
in `harness.loop`; this module only says what each stage trains on and what it keeps.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from harness.config import ConfigError, ExperimentConfig
from harness.data.datasets import SegmentDataset, Vocabulary, pad_windows, sliding_windows
from harness.data.record import Corpus, DataError, SignSequence
from harness.loop import Runtime, StageRun, seed_everything, shard_order, train_stage
from harness.stages import StageCache, content_key, load_torch, save_torch
from models.layout import CANONICAL
from models.transformer import pad_batch, teacher_forcing_pair

if TYPE_CHECKING:
    from harness.storage import Remote

# --------------------------------------------------------------------------------------------
# Stage keys
# --------------------------------------------------------------------------------------------


def source_identity(spec: str, cfg: ExperimentConfig) -> dict:
    """What a data source's content depends on: synth parameters, or the files' sizes and times."""
    if spec == "synth" or spec.startswith("synth@"):
        params = asdict(cfg.data.synth)
        if spec.startswith("synth@"):
            params["seed"] = _synth_seed(spec)
        return {"synth": params}
    if spec.startswith("synth:"):
        from harness.data.sources import synth_params
        return {"synth": synth_params(spec.split(":", 1)[1])}
    from harness.data.sources import source_files
    files = []
    for path in source_files(spec):
        st = path.stat()
        files.append((str(path.resolve()), st.st_size, int(st.st_mtime)))
    return {"spec": spec, "files": sorted(files)}


def _synth_seed(spec: str) -> int:
    try:
        return int(spec.split("@", 1)[1])
    except ValueError:
        raise ConfigError(f"pretrain.extra_source: expected synth@SEED with an integer seed, got {spec!r}") from None


def stage_keys(cfg: ExperimentConfig, tasks: tuple[str, ...]) -> dict[str, str]:
    """The content key of every stage this trial needs (`embed` for sign-to-text, `embed_t2s` for
    text-to-sign's stride = window embedding)."""
    optim = asdict(cfg.optim)
    prepare = content_key("prepare", {"source": source_identity(cfg.data.source, cfg),
                                      "noise_threshold": cfg.data.noise_threshold})
    extra = cfg.pretrain.extra_source
    pretrain = content_key("pretrain", {
        "pretrain": asdict(cfg.pretrain), "optim": optim, "seed": cfg.seed,
        "extra": source_identity(extra, cfg) if extra else None,
        "extra_noise_threshold": cfg.data.noise_threshold if extra else None,
    }, {"prepare": prepare})
    keys = {"prepare": prepare, "pretrain": pretrain}
    if "sign2text" in tasks:
        keys["embed"] = content_key("embed", {"stride": cfg.embed.stride}, {"pretrain": pretrain})
        keys["sign2text"] = content_key("sign2text", {"sign2text": asdict(cfg.sign2text), "optim": optim,
                                                      "seed": cfg.seed}, {"embed": keys["embed"]})
    if "text2sign" in tasks:
        keys["backtranslator"] = content_key("backtranslator", {
            "backtranslator": asdict(cfg.backtranslator), "optim": optim, "seed": cfg.seed}, {"prepare": prepare})
        keys["embed_t2s"] = content_key("embed", {"stride": cfg.pretrain.window}, {"pretrain": pretrain})
        keys["text2sign"] = content_key("text2sign", {
            "text2sign": asdict(cfg.text2sign), "optim": optim, "seed": cfg.seed},
            {"embed": keys["embed_t2s"], "backtranslator": keys["backtranslator"]})
    return keys


def stage_of(name: str) -> str:
    return "embed" if name == "embed_t2s" else name


# --------------------------------------------------------------------------------------------
# Data (the prepare stage)
# --------------------------------------------------------------------------------------------


def load_raw(spec: str, cfg: ExperimentConfig) -> Corpus:
    if spec == "synth" or spec.startswith("synth@"):
        from harness.data.synth import generate_corpus
        params = asdict(cfg.data.synth)
        if spec.startswith("synth@"):
            params["seed"] = _synth_seed(spec)
        return generate_corpus(**params)
    from harness.data.sources import load_source
    return load_source(spec)


def preprocess_corpus(raw: Corpus, noise_threshold: float) -> tuple[Corpus, dict]:
    """Appendix B.1 per split; sequences that cannot be normalized are skipped and counted."""
    from harness.data.prepare import harmonize_coords, prepare_split
    problems: list[str] = []
    raw = harmonize_coords(raw, problems)
    out: Corpus = {}
    report: dict = {"problems": problems}
    for split, seqs in raw.items():
        out[split], report[split] = prepare_split(seqs, noise_threshold=noise_threshold, min_frames=1)
    for split in ("train", "dev", "test"):
        if not out.get(split):
            raise DataError(f"the {split} split has no usable sequences after preprocessing "
                            f"(run `python -m harness.data inspect SOURCE` to see why)")
    return out, report


def prepare(spec: str, cfg: ExperimentConfig, cache: StageCache, key: str, say: Callable[[str], None] = print
            ) -> Corpus:
    """Load and preprocess a source once; later calls (any trial, any node) read the cached copy."""
    from harness.data.readers_npz import read_npz, write_npz
    with cache.lock("prepare", key):
        if cache.lookup("prepare", key):
            return read_npz(cache.entry("prepare", key).file("corpus.npz"))
        if cache.has_files("prepare", key):
            say(f"prepare: cache entry {key} is corrupted; recomputing")
        t0 = time.perf_counter()
        corpus, report = preprocess_corpus(load_raw(spec, cfg), cfg.data.noise_threshold)

        def write(folder: Path) -> None:
            write_npz(corpus, folder / "corpus.npz")
            (folder / "report.json").write_text(json.dumps(report))

        cache.commit("prepare", key, write, {"source": spec, "seconds": time.perf_counter() - t0})
        # Read back what was written so a trial always sees exactly the cached arrays.
        return read_npz(cache.entry("prepare", key).file("corpus.npz"))


def check_window(corpus: Corpus, window: int, source: str) -> None:
    """A window longer than the shortest sequence is a user error, named with the sequence."""
    for split, seqs in corpus.items():
        if not seqs:
            continue
        shortest = min(seqs, key=lambda s: s.num_frames)
        if shortest.num_frames < window:
            raise ConfigError(
                f"pretrain.window ({window}) is longer than the shortest {split} sequence of {source} "
                f"({shortest.name}: {shortest.num_frames} frames after preprocessing); use a smaller window")


def present_points(seqs: list[SignSequence]) -> np.ndarray:
    """(V,) bool: points present in at least half the frames of a split (e.g. no face in PHOENIX14T)."""
    masks = np.concatenate([s.mask for s in seqs], axis=0)  # (sum T, V)
    return masks.mean(axis=0) >= 0.5


# --------------------------------------------------------------------------------------------
# Model builders: config -> flat constructor arguments (models/ never sees the config)
# --------------------------------------------------------------------------------------------


def build_signmae(cfg: ExperimentConfig, in_channels: int, mean_pose: torch.Tensor | None = None):
    """mean_pose (V, C): the decoder's reference pose from the training segments (a saved buffer,
    so a loaded model needs none)."""
    from models.graph import adjacency_subsets
    from models.signmae import SignMAE
    p = cfg.pretrain
    adjacency = adjacency_subsets(CANONICAL.num_points, CANONICAL.edges, CANONICAL.index("body.neck"))
    return SignMAE(
        num_points=CANONICAL.num_points, in_channels=in_channels, window=p.window, adjacency=adjacency,
        extractor_channels=p.extractor_channels, dim=p.dim, depth=p.depth, heads=p.heads,
        decoder_depth=p.decoder_depth, decoder_heads=p.heads, mask_ratio=p.mask_ratio,
        decoder_type=p.decoder, query_type=p.queries, dropout=p.dropout, mean_pose=mean_pose)


def build_sign2text(cfg: ExperimentConfig, d_in: int, vocab: Vocabulary):
    from models.sign2text import SignToText
    s = cfg.sign2text
    return SignToText(d_in=d_in, vocab_size=len(vocab), d_model=s.dim, num_heads=s.heads,
                      num_encoder_layers=s.layers, num_decoder_layers=s.layers, dim_feedforward=4 * s.dim,
                      dropout=s.dropout, label_smoothing=s.label_smoothing, pad_id=vocab.pad_id,
                      bos_id=vocab.bos_id, eos_id=vocab.eos_id)


def build_backtranslator(cfg: ExperimentConfig, num_coords: int, vocab: Vocabulary):
    from models.backtranslator import BackTranslator
    b = cfg.backtranslator
    return BackTranslator(num_points=CANONICAL.num_points, num_coords=num_coords, vocab_size=len(vocab),
                          d_model=b.dim, downsample=4, num_heads=b.heads, num_encoder_layers=b.layers,
                          num_decoder_layers=b.layers, dim_feedforward=4 * b.dim, dropout=b.dropout,
                          label_smoothing=0.1, pad_id=vocab.pad_id, bos_id=vocab.bos_id, eos_id=vocab.eos_id)


def build_text2sign(cfg: ExperimentConfig, d_z: int, vocab: Vocabulary):
    from models.text2sign import TextToSign
    t = cfg.text2sign
    return TextToSign(vocab_size=len(vocab), d_z=d_z, d_model=t.dim, num_heads=t.heads,
                      num_encoder_layers=t.layers, num_decoder_layers=t.layers, dim_feedforward=4 * t.dim,
                      dropout=t.dropout, num_queries=t.num_queries, text_encoder=t.text_encoder,
                      pad_id=vocab.pad_id)


# --------------------------------------------------------------------------------------------
# The trial
# --------------------------------------------------------------------------------------------


def _batches(n: int, batch_size: int) -> int:
    return max(1, -(-n // batch_size))


class Trial:
    """One trial: its config, tasks, cache and runtime; `run()` returns its test-set results."""

    def __init__(self, cfg: ExperimentConfig, tasks: tuple[str, ...], results: Path, rt: Runtime,
                 remote: Remote | None = None):
        self.cfg, self.tasks, self.rt = cfg, tuple(tasks), rt
        self.cache = StageCache(Path(results) / "cache", remote)
        self.keys = stage_keys(cfg, self.tasks)
        self.status: dict[str, str] = {}  # stage name -> "cached" | "computed"
        self.seconds: dict[str, float] = {}

    # ---- the cache protocol, DDP-aware ------------------------------------------------------

    def cached(self, name: str, produce: Callable[[], Any], save: Callable[[Any, Path], None],
               load: Callable[[Path], Any]) -> Any:
        """Load stage `name` if its entry is complete (here, or fetched from the remote); otherwise
        compute it on every rank (DDP) while rank 0 holds the entry's lock, and let rank 0 write it."""
        stage, key = stage_of(name), self.keys[name]
        lock = None
        hit = None
        if self.rt.is_main:
            lock = self.cache.lock(stage, key)
            lock.__enter__()
            try:
                # Under the lock, so a trial that waited here loads what the holder just wrote (or,
                # with a remote, what another node uploaded meanwhile) instead of computing it again.
                hit = self.cache.lookup(stage, key)
                if not hit and self.cache.has_files(stage, key):
                    self.rt.say(f"{name}: cache entry {key} failed verification; recomputing")
            except BaseException:
                lock.__exit__(None, None, None)
                raise
        hit = self.rt.broadcast(hit)
        t0 = time.perf_counter()
        try:
            if hit and not self.rt.is_main and self.cache.remote is not None:
                # A rank on another node than rank 0 has no local copy: it fetches its own (without
                # the lock, which rank 0 holds; a fetch places a verified copy or nothing).
                if not self.cache.lookup(stage, key):
                    raise RuntimeError(f"{name}: cache entry {key} vanished from {self.cache.remote.uri}")
            if hit:
                result = load(self.cache.entry(stage, key).path)
                self.status[name] = "cached"
            else:
                self.rt.say(f"{name}: computing ({key})")
                result = produce()
                if self.rt.is_main:
                    self.cache.commit(stage, key, lambda folder: save(result, folder),
                                      {"seconds": time.perf_counter() - t0})
                self.rt.barrier()
                self.status[name] = "computed"
        finally:
            if lock is not None:
                lock.__exit__(None, None, None)
        self.seconds[name] = time.perf_counter() - t0
        return result

    # ---- stages ----------------------------------------------------------------------------

    def corpus(self) -> Corpus:
        if not hasattr(self, "_corpus"):
            key = self.keys["prepare"]
            if self.rt.is_main:
                corpus = prepare(self.cfg.data.source, self.cfg, self.cache, key, self.rt.say)
            self.rt.barrier()
            if not self.rt.is_main:
                corpus = prepare(self.cfg.data.source, self.cfg, self.cache, key, self.rt.say)
            check_window(corpus, self.cfg.pretrain.window, self.cfg.data.source)
            self._corpus = corpus
            self.num_coords = int(corpus["train"][0].keypoints.shape[-1])
            self.vocab = Vocabulary.build([s.text for s in corpus["train"]])
        return self._corpus

    def pretrain_sequences(self) -> list[SignSequence]:
        seqs = list(self.corpus()["train"])
        extra = self.cfg.pretrain.extra_source
        if extra:
            ekey = content_key("prepare", {"source": source_identity(extra, self.cfg),
                                           "noise_threshold": self.cfg.data.noise_threshold})
            extra_corpus = prepare(extra, self.cfg, self.cache, ekey, self.rt.say)
            check_window(extra_corpus, self.cfg.pretrain.window, extra)
            c = int(extra_corpus["train"][0].keypoints.shape[-1])
            if c != self.num_coords:
                raise DataError(f"pretrain.extra_source {extra} has {c} coordinates per point, "
                                f"the main corpus has {self.num_coords}")
            seqs += extra_corpus["train"]
        return seqs

    def signmae(self):
        if hasattr(self, "_signmae"):
            return self._signmae
        from models import weighting
        cfg, rt = self.cfg, self.rt
        seqs = self.pretrain_sequences()
        parts = CANONICAL.parts
        hands = (CANONICAL.left_wrist, CANONICAL.right_wrist)

        def produce():
            from models.signmae import mean_pose
            seed_everything(cfg.seed, rt.rank)
            dataset = SegmentDataset(seqs, cfg.pretrain.window, cfg.pretrain.segments_per_sequence, cfg.seed)
            # One segment per training sequence: the statistics FPW and the decoder's reference pose use.
            stats = SegmentDataset(seqs, cfg.pretrain.window, 1, cfg.seed + 1)
            segs = torch.stack([stats[i][0] for i in range(len(stats))])  # (S, w, V, C)
            masks = torch.stack([stats[i][1] for i in range(len(stats))])  # (S, w, V)
            model = build_signmae(cfg, self.num_coords, mean_pose([(segs, masks)]))
            fixed = None
            if cfg.pretrain.weighting == "fpw":
                # FPW: eq. 1 applied once to training-set statistics (a fixed weight per part).
                part_w = weighting.fpw_part_weights([(segs, masks)], parts, *hands)
                fixed = weighting.fpw_weights(part_w, parts, CANONICAL.num_points)
                rt.say(f"pretrain: FPW part weights {json.dumps({k: round(float(v), 3) for k, v in part_w.items()})}")
            bs = cfg.optim.batch_size

            def batches(epoch):
                dataset.set_epoch(epoch)
                order = shard_order(len(dataset), cfg.seed, epoch, rt.rank, rt.world_size)
                for i in range(0, len(order), bs):
                    items = [dataset[j] for j in order[i:i + bs]]
                    yield (torch.stack([a for a, _ in items]).to(rt.device),
                           torch.stack([b for _, b in items]).to(rt.device))

            def loss(model, batch):
                seg, pmask = batch  # (B, w, V, C), (B, w, V)
                w = weighting.loss_weights(cfg.pretrain.weighting, seg, pmask, parts, *hands, fixed)  # (B, V)
                return model(seg, pmask, w)[0]

            dev = SegmentDataset(self.corpus()["dev"], cfg.pretrain.window, 1, 12345)
            dev_seg = torch.stack([dev[i][0] for i in range(len(dev))]).to(rt.device)
            dev_mask = torch.stack([dev[i][1] for i in range(len(dev))]).to(rt.device)

            def evaluate(model, epoch):
                # Reconstruction error of whole dev segments from z alone (no masking): MPJPE.
                rec = model.decode(model.encode(dev_seg, dev_mask))
                err = torch.linalg.vector_norm(rec - dev_seg, dim=-1)[dev_mask].mean()
                return {"pretrain/dev_recon_mpjpe": float(err)}

            steps = _batches(-(-len(dataset) // rt.world_size), bs)
            metrics = train_stage(StageRun("pretrain", self.keys["pretrain"], model, batches, loss,
                                           cfg.pretrain.epochs, steps, evaluate,
                                           max(1, cfg.pretrain.epochs // 4)), cfg.optim, rt)
            return {"model": model.state_dict(), "in_channels": self.num_coords, "metrics": metrics}

        def save(out, folder):
            save_torch({"model": out["model"], "in_channels": out["in_channels"]}, folder / "signmae.pt")
            (folder / "metrics.json").write_text(json.dumps(out["metrics"]))

        def load(folder):
            state = load_torch(folder / "signmae.pt")
            metrics = json.loads((folder / "metrics.json").read_text())
            return {"model": state["model"], "in_channels": state["in_channels"], "metrics": metrics}

        out = self.cached("pretrain", produce, save, load)
        model = build_signmae(cfg, out["in_channels"])
        model.load_state_dict(out["model"])
        model.to(rt.device).eval()
        for p in model.parameters():
            p.requires_grad_(False)  # frozen from here on (section 3.4)
        self.pretrain_metrics = out["metrics"]
        self._signmae = model
        return model

    def embeddings(self, name: str, stride: int) -> dict[str, list[torch.Tensor]]:
        """Z for every sequence of every split: sliding windows through the frozen encoder."""
        window = self.cfg.pretrain.window

        def produce():
            encoder = self.signmae()
            out: dict[str, list[torch.Tensor]] = {}
            with torch.no_grad():
                for split, seqs in self.corpus().items():
                    windows, masks, counts = [], [], []
                    for seq in seqs:
                        win, wmask = sliding_windows(torch.from_numpy(seq.keypoints), torch.from_numpy(seq.mask),
                                                     window, stride)  # (N, w, V, C), (N, w, V)
                        windows.append(win)
                        masks.append(wmask)
                        counts.append(win.shape[0])
                    # All windows of a split through the encoder in large chunks: one call per window
                    # would cost far more in overhead than in arithmetic.
                    flat, flat_mask = torch.cat(windows), torch.cat(masks)  # (sum N, w, V, C), (sum N, w, V)
                    z = torch.cat([encoder.encode(flat[i:i + 512].to(self.rt.device),
                                                  flat_mask[i:i + 512].to(self.rt.device)).cpu()
                                   for i in range(0, flat.shape[0], 512)])  # (sum N, D)
                    out[split] = list(torch.split(z, counts))
            return out

        return self.cached(name, produce, lambda out, folder: save_torch(out, folder / "z.pt"),
                           lambda folder: load_torch(folder / "z.pt"))

    def _translate_stage(self, name: str, model, inputs: dict[str, list], batch_of: Callable, epochs: int,
                         beam_size: int, length_penalty: float, max_len: int, translate: Callable):
        """Shared by sign2text and the back-translator: teacher-forced cross-entropy (eq. 3), best dev
        BLEU-4 (greedy) kept as the paper's early stopping, then beam search on dev and test."""
        from harness.metrics import text_metrics
        cfg, rt, vocab = self.cfg, self.rt, self.vocab
        corpus = self.corpus()
        targets = [vocab.encode(s.text) for s in corpus["train"]]
        bs = cfg.optim.batch_size
        n = len(targets)

        def batches(epoch):
            order = shard_order(n, cfg.seed, epoch, rt.rank, rt.world_size)
            for i in range(0, len(order), bs):
                idx = order[i:i + bs]
                tgt_in, tgt_out = teacher_forcing_pair([targets[j] for j in idx], vocab.pad_id, vocab.bos_id,
                                                       vocab.eos_id, device=rt.device)
                yield batch_of("train", idx) + (tgt_in, tgt_out)

        def loss(m, batch):
            return m(*batch)

        best = {"bleu4": -1.0, "state": None}
        dev_refs = [s.text for s in corpus["dev"]]

        def decode_split(m, split, beam):
            hyps = []
            for i in range(0, len(inputs[split]), bs):
                idx = list(range(i, min(i + bs, len(inputs[split]))))
                hyps += [vocab.decode(ids) for ids in translate(m, batch_of(split, idx), beam, length_penalty, max_len)]
            return hyps

        def evaluate(m, epoch):
            score = text_metrics(decode_split(m, "dev", 1), dev_refs)["bleu4"]
            if score > best["bleu4"]:
                best["bleu4"], best["state"] = score, copy.deepcopy(m.state_dict())
            return {f"{name}/dev_bleu4_greedy": score}

        seed_everything(cfg.seed, rt.rank)
        train_stage(StageRun(name, self.keys[name], model, batches, loss, epochs,
                             _batches(-(-n // rt.world_size), bs), evaluate, max(1, epochs // 8)), cfg.optim, rt)
        if best["state"] is not None:
            model.load_state_dict(best["state"])
        model.eval()
        result = {}
        with torch.no_grad():
            for split in ("dev", "test"):
                hyps = decode_split(model, split, beam_size)
                refs = [s.text for s in corpus[split]]
                result[split] = {"metrics": text_metrics(hyps, refs), "hypotheses": hyps, "references": refs}
        return {"model": model.state_dict(), "result": result}

    def sign2text(self) -> dict:
        cfg = self.cfg
        z = self.embeddings("embed", cfg.embed.stride)

        def batch_of(split, idx):
            padded, pad = pad_windows([z[split][j] for j in idx])  # (B, N, D), (B, N) True = padding
            return (padded.to(self.rt.device), (~pad).to(self.rt.device))

        def translate(m, batch, beam, alpha, max_len):
            zz, zmask = batch
            return m.greedy(zz, zmask, max_len) if beam == 1 else m.beam_search(zz, zmask, beam, alpha, max_len)

        def produce():
            seed_everything(cfg.seed, self.rt.rank)
            model = build_sign2text(cfg, z["train"][0].shape[-1], self.vocab).to(self.rt.device)
            s = cfg.sign2text
            return self._translate_stage("sign2text", model, z, batch_of, s.epochs, s.beam_size, s.length_penalty,
                                         s.max_output_len, translate)

        out = self.cached("sign2text", produce, _save_translator, _load_translator)
        return out["result"]

    def backtranslator(self):
        cfg, rt = self.cfg, self.rt
        corpus = self.corpus()
        frames = {split: [torch.from_numpy(s.keypoints) for s in seqs] for split, seqs in corpus.items()}
        masks = {split: [torch.from_numpy(s.mask) for s in seqs] for split, seqs in corpus.items()}

        def batch_of(split, idx):
            x, fmask = pad_batch([frames[split][j] for j in idx])  # (B, T, V, C), (B, T)
            pm, _ = pad_batch([masks[split][j] for j in idx], pad_value=False)  # (B, T, V)
            return (x.to(rt.device), pm.bool().to(rt.device), fmask.to(rt.device))

        def translate(m, batch, beam, alpha, max_len):
            x, pm, fm = batch
            return m.greedy(x, pm, fm, max_len) if beam == 1 else m.beam_search(x, pm, fm, beam, alpha, max_len)

        def produce():
            seed_everything(cfg.seed, rt.rank)
            model = build_backtranslator(cfg, self.num_coords, self.vocab).to(rt.device)
            b = cfg.backtranslator
            return self._translate_stage("backtranslator", model, frames, batch_of, b.epochs, b.beam_size, 1.0,
                                         cfg.sign2text.max_output_len, translate)

        out = self.cached("backtranslator", produce, _save_translator, _load_translator)
        model = build_backtranslator(cfg, self.num_coords, self.vocab)
        model.load_state_dict(out["model"])
        model.to(rt.device).eval()
        self.backtranslator_result = out["result"]
        return model

    def text2sign(self) -> dict:
        from harness.metrics import dtw_mje, mpjpe, text_metrics
        cfg, rt, vocab = self.cfg, self.rt, self.vocab
        corpus = self.corpus()
        z = self.embeddings("embed_t2s", cfg.pretrain.window)  # stride = window (section 4.2)
        judge = self.backtranslator()
        signmae = self.signmae()
        t = cfg.text2sign
        longest = max(len(zz) for zz in z["train"])
        if longest > t.num_queries:
            raise ConfigError(f"text2sign.num_queries ({t.num_queries}) is smaller than the longest training "
                              f"sequence's {longest} segments of {cfg.pretrain.window} frames; raise it")
        tokens = {split: [vocab.encode(s.text) or [vocab.unk_id] for s in seqs] for split, seqs in corpus.items()}
        bs = cfg.optim.batch_size
        n = len(tokens["train"])
        from harness.data.datasets import pad_sequences

        def token_batch(split, idx):
            ids, _ = pad_sequences([tokens[split][j] for j in idx], vocab.pad_id)
            return ids.to(rt.device)

        def batches(epoch):
            order = shard_order(n, cfg.seed, epoch, rt.rank, rt.world_size)
            for i in range(0, len(order), bs):
                idx = order[i:i + bs]
                target, pad = pad_windows([z["train"][j] for j in idx])  # (B, N, D), (B, N)
                yield token_batch("train", idx), target.to(rt.device), (~pad).to(rt.device)

        def loss(m, batch):
            return m(*batch).total

        true_len = {split: torch.tensor([len(zz) for zz in z[split]]) for split in ("dev",)}

        def evaluate(m, epoch):
            pred = torch.cat([m.predicted_lengths(token_batch("dev", list(range(i, min(i + bs, len(tokens["dev"]))))))
                              .cpu() for i in range(0, len(tokens["dev"]), bs)])
            return {"text2sign/dev_length_accuracy": float((pred == true_len["dev"]).float().mean())}

        def produce():
            seed_everything(cfg.seed, rt.rank)
            model = build_text2sign(cfg, z["train"][0].shape[-1], vocab).to(rt.device)
            train_stage(StageRun("text2sign", self.keys["text2sign"], model, batches, loss, t.epochs,
                                 _batches(-(-n // rt.world_size), bs), evaluate, max(1, t.epochs // 4)), cfg.optim, rt)
            model.eval()
            keep = torch.from_numpy(present_points(corpus["train"]))  # (V,)
            result = {}
            with torch.no_grad():
                for split in ("dev", "test"):
                    generated: list[torch.Tensor] = []
                    for i in range(0, len(tokens[split]), bs):
                        idx = list(range(i, min(i + bs, len(tokens[split]))))
                        generated += [g.cpu() for g in model.generate(token_batch(split, idx), signmae.decode)]
                    pmasks = [keep.expand(g.shape[0], -1) for g in generated]
                    hyps = []
                    for i in range(0, len(generated), bs):
                        ids = judge.translate([g.to(rt.device) for g in generated[i:i + bs]],
                                              [m.to(rt.device) for m in pmasks[i:i + bs]],
                                              cfg.backtranslator.beam_size, 1.0, cfg.sign2text.max_output_len)
                        hyps += [vocab.decode(x) for x in ids]
                    refs = [s.text for s in corpus[split]]
                    metrics = text_metrics(hyps, refs)
                    gts = corpus[split]
                    metrics["mpjpe"] = float(np.mean([mpjpe(g.numpy(), s.keypoints, s.mask) for g, s in zip(generated, gts)]))
                    metrics["dtw_mje"] = float(np.mean([dtw_mje(g.numpy(), s.keypoints, s.mask) for g, s in zip(generated, gts)]))
                    result[split] = {"metrics": metrics, "hypotheses": hyps, "references": refs}
                    if split == "test":
                        result["sample"] = {"generated": generated[0], "ground_truth": torch.from_numpy(gts[0].keypoints),
                                            "mask": torch.from_numpy(gts[0].mask), "text": refs[0]}
            return {"model": model.state_dict(), "result": result}

        out = self.cached("text2sign", produce, _save_text2sign, _load_text2sign)
        return out["result"]

    def run(self) -> dict:
        """Every stage this trial needs, in order; the test-set results per task."""
        t0 = time.perf_counter()
        self.corpus()
        out: dict[str, Any] = {}
        if "sign2text" in self.tasks:
            out["sign2text"] = self.sign2text()
        if "text2sign" in self.tasks:
            out["text2sign"] = self.text2sign()
            out["backtranslator"] = self.backtranslator_result
        self.signmae()
        out["pretrain"] = {"metrics": self.pretrain_metrics}
        out["stages"] = dict(self.status)
        out["stage_seconds"] = dict(self.seconds)
        out["seconds"] = time.perf_counter() - t0
        return out


def _save_translator(out, folder: Path) -> None:
    save_torch({"model": out["model"]}, folder / "model.pt")
    (folder / "result.json").write_text(json.dumps(out["result"]))


def _load_translator(folder: Path) -> dict:
    return {"model": load_torch(folder / "model.pt")["model"], "result": json.loads((folder / "result.json").read_text())}


def _save_text2sign(out, folder: Path) -> None:
    result = dict(out["result"])
    sample = result.pop("sample")
    save_torch({"model": out["model"], "sample": sample}, folder / "model.pt")
    (folder / "result.json").write_text(json.dumps(result))


def _load_text2sign(folder: Path) -> dict:
    state = load_torch(folder / "model.pt")
    result = json.loads((folder / "result.json").read_text())
    result["sample"] = state["sample"]
    return {"model": state["model"], "result": result}
