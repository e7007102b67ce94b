"""Configuration: one frozen dataclass per concern, a strict YAML loader, dotted overrides.

Every default lives in exactly one place: the field defaults below (they are the `default`
profile). Profiles (`harness/profiles/*.yaml`), ablation variants, search spaces and the CLI's
`--set key=value` are all *dotted overrides* of these fields (`pretrain.mask_ratio: 0.5`), and
the same dotted keys are the MLflow parameter names.

Paper references: section 4.2 and appendix B.2 (window 15, mask 25%, stride 7 for sign-to-text
and 15 for text-to-sign, 128 queries, AdamW (0.9, 0.98), weight decay 1e-3, cosine schedule with
warmup, peak 1e-4, floor 5e-5, batch 64, beam 5).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.data.record import MIN_CONFIDENCE
from harness.data.synth import MAX_GLOSSES, MIN_GLOSSES
# Re-exported: the error type and the strict YAML readers live with the rest of the user-input rules.
from harness.user_input import ConfigError, parse_yaml, read_mapping, read_yaml  # noqa: F401
# Re-exported: the dict-level side of the dotted overrides.
from harness.overrides import deep_merge, flatten, parse_set, unflatten  # noqa: F401
from harness.typed_fields import build, ranged as _f, where as _where

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
PROFILES = ("debug", "demo", "default", "paper")
MAX_SEEDS = 1000  # seeds per ablation variant


FPW_CHOICES = ("dataset", "paper")


def _fpw_weights(value: Any, key: str, source: str) -> str | tuple[float, float, float]:
    """`dataset`, `paper`, or three positive finite numbers (body, face, hands)."""
    if isinstance(value, str) and value in FPW_CHOICES:
        return value
    if (isinstance(value, (list, tuple)) and len(value) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                    for v in value)):
        return tuple(float(v) for v in value)
    raise ConfigError(f"{key} must be 'dataset', 'paper' or three positive numbers [body, face, hands], "
                      f"got {value!r}{_where(source)}")


# ----------------------------------------------------------------------------- the concerns

@dataclass(frozen=True)
class SynthConfig:
    """The synthetic sign corpus (harness/data/synth): sizes and noise, generated deterministically.

    These ranges are the only ones: the generator does not check its arguments, and every value
    accepted here works there.
    """

    seed: int = _f(0, lo=0)
    glosses: int = _f(48, lo=MIN_GLOSSES, hi=MAX_GLOSSES, doc="gloss inventory size (the lexicon's first N)")
    signers: int = _f(6, lo=1)
    train: int = _f(300, lo=1, doc="sentences in the train split")
    dev: int = _f(50, lo=1)
    test: int = _f(50, lo=1)
    min_signs: int = _f(2, lo=1, doc="glosses per sentence, at least")
    max_signs: int = _f(5, lo=1)
    # Sign durations are designed at 25 fps and scaled by fps / 25; at 5 fps a sign lasts 2-4 frames.
    fps: int = _f(25, lo=5)
    # Under one half: noisy-frame removal anchors on clean frames, so they must be the majority.
    noisy_frame_rate: float = _f(0.01, lo=0.0, hi=0.5, hi_open=True)
    missing_point_rate: float = _f(0.01, lo=0.0, hi=0.5, hi_open=True)
    jitter: float = _f(0.01, lo=0.0, hi=1.0, hi_open=True, doc="std of per-frame jitter, in shoulder lengths")


@dataclass(frozen=True)
class Synth2Config:
    """The second synthetic sign language (source `synth2`, harness/data/synth/second_language.py):
    data.synth's settings (inventory size, signers, dev and test sizes, noise) with more train
    sentences. How2Sign, the paper's second pretraining corpus, has 31,128 to PHOENIX14T's 7,096."""

    train_scale: float = _f(4.4, lo=0.0, lo_open=True, hi=100.0,
                            doc="synth2's train sentences per train sentence of data.synth (at least 1)")


@dataclass(frozen=True)
class DataConfig:
    """Where sequences come from and how they are cleaned (appendix B.1)."""

    # synth | synth@SEED | synth:PROFILE | synth2[@SEED|:PROFILE] | pt:DIR | openpose:DIR | pose:FILE_OR_DIR | npz:FILE
    source: str = "synth"
    # Shoulder lengths, not the paper's 400 px: it applies after shoulder normalization (harness/data/preprocess.py).
    noise_threshold: float = _f(0.75, lo=0.0, lo_open=True,
                                doc="mean joint displacement between frames above which a frame is dropped")
    # Every source is resampled to this rate before windowing (harness/data/timeline.py): the
    # paper's 15-frame windows are 0.6 s at PHOENIX14T's 25 fps.
    fps: float = _f(25.0, lo=1.0, hi=1000.0, doc="frames per second every sequence is resampled to")
    # Frames a source lost (OpenPose frame numbers missing from a folder) stay masked in place, or
    # are interpolated point by point across gaps of at most max_gap frames.
    gaps: Literal["mask", "interpolate"] = "mask"
    max_gap: int = _f(5, lo=0, doc="longest gap (frames at the source rate) data.gaps=interpolate fills")
    # "source": PT's 3D and our own .pose layout keep z; MediaPipe's z (not in x/y's units) and 2D
    # sources give 2. 2 drops every z; 3 refuses a source whose z is absent or not in x/y's units.
    dims: Literal["source", 2, 3] = "source"
    # The paper gives none (confidence 0, NaN and all-zero points are missing at any value). 0.1 from
    # what extractors write (the real samples in ../shared/data/pose): OpenPose scores a hand it did
    # not find near 0 and still writes its 21 points (27% of the sample's hand detections score under
    # 0.03; the scores thin out until 0.1 and are flat above), while MediaPipe writes 1 for detected
    # hands and face and a body visibility that was never under 0.22 there. 0.1 drops that cluster
    # and a visibility of 0.001, and keeps every MediaPipe point and every shoulder of the samples;
    # it lies between OpenPose's own drawing thresholds for body (0.05) and hands (0.2). 0: keep all.
    min_confidence: float = _f(MIN_CONFIDENCE, lo=0.0, hi=1.0, doc="points with a lower detector confidence are missing")
    # Sequences without a sentence (no sentence table, or no row) are an error unless this keeps them,
    # unlabelled, for pretraining only.
    unlabelled: bool = False
    synth: SynthConfig = field(default_factory=SynthConfig)
    synth2: Synth2Config = field(default_factory=Synth2Config)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warmup and cosine decay (appendix B.2), shared by all training stages."""

    lr: float = _f(1e-3, lo=0.0, lo_open=True, doc="peak learning rate (paper: 1e-4 for 50 epochs on GPUs)")
    min_lr: float = _f(5e-5, lo=0.0)
    warmup_steps: int = _f(100, lo=0)
    # The warmup is at most this share of a stage's steps (at least one step): a 100-step warmup would
    # be most of a short stage. 1: warmup_steps as given unless the stage is shorter (then all of it).
    warmup_cap: float = _f(0.1, lo=0.0, hi=1.0, lo_open=True, doc="the warmup's largest share of a stage's steps")
    weight_decay: float = _f(1e-3, lo=0.0)
    beta1: float = _f(0.9, lo=0.0, hi=1.0, hi_open=True)
    beta2: float = _f(0.98, lo=0.0, hi=1.0, hi_open=True)
    batch_size: int = _f(32, lo=1, doc="paper: 64")
    grad_clip: float = _f(1.0, lo=0.0, doc="0 disables clipping")


@dataclass(frozen=True)
class PretrainConfig:
    """SignMAE (section 3.2) and its pose weighting (section 3.3)."""

    window: int = _f(15, lo=2, doc="segment length w in frames")
    mask_ratio: float = _f(0.25, lo=0.0, hi=1.0, hi_open=True)
    # Every keypoint loss's weighting, the baselines' too (harness/pose_weights.py; table 5).
    weighting: Literal["none", "fpw", "apw"] = "apw"
    # FPW's fixed weights: "dataset" (eq. 1 on the training set's group variances, pooled over one
    # window per sequence), "paper" (section 6, "Impact of APW": body 1.0, face 1.17, hands 1.18;
    # models/weighting.py PAPER_FPW) or [body, face, hands] used as given. A group the training data
    # lacks gets 0 in every case.
    fpw_weights: str | tuple[float, float, float] = _f("dataset", parse=_fpw_weights)
    # Eq. 1 can be zero or negative (w^b = (s_nf + s_rh - s_b) / S <= 0 whenever the body moves more
    # than face and hands together); a loss weight must be positive, so raw values are clamped to
    # this floor first. The paper says nothing about it; with weight_norm "body" every weight then lies in
    # [floor, 1 / floor], [0.05, 20] at 0.05.
    weight_floor: float = _f(0.05, lo=0.0, hi=1.0, lo_open=True, doc="eq. 1's weights are clamped to at least this")
    # Then normalised (the paper says nothing either): "body" rescales so the body weighs 1, which makes
    # the paper's FPW numbers directly comparable (1.0 / 1.17 / 1.18 come out of eq. 1 for variances
    # b : nf : rh = 1.35 : 1.18 : 1.17); "mean" so the three groups average 1 (the loss keeps eq. 2's
    # scale); "none": the floored values as printed, each in [floor, 1].
    weight_norm: Literal["body", "mean", "none"] = "body"
    decoder: Literal["nar", "ar"] = "nar"
    queries: Literal["learnable", "positional"] = "learnable"
    extractor_channels: int = _f(16, lo=1, doc="CTR-GC / MS-TCN feature width")
    dim: int = _f(128, lo=8)
    depth: int = _f(3, lo=1)
    heads: int = _f(4, lo=1)
    decoder_depth: int = _f(2, lo=1)
    dropout: float = _f(0.1, lo=0.0, hi=1.0, hi_open=True)
    segments_per_sequence: int = _f(2, lo=1, doc="random segments drawn per sequence per epoch")
    epochs: int = _f(10, lo=1)
    # Table 4d and the paper's main rows: a second corpus for pretraining only: "" none, a source spec
    # (synth2: the second synthetic sign language, How2Sign's stand-in).
    extra_source: str = ""
    part_relative: float = _f(1.0, lo=0.0, doc="weight of SignMAE's part-relative terms (models/signmae.py); 0: eq. 2")
    # The layout parts every stage but the back-translator sees; the rest are masked as absent (stages/prepare.py).
    parts: tuple[Literal["body", "face", "left_hand", "right_hand"], ...] = ("body", "face", "left_hand", "right_hand")


@dataclass(frozen=True)
class EmbedConfig:
    """Sliding windows through the frozen encoder (section 3.4): N = floor((T - w) / s) + 1."""

    stride: int = _f(7, lo=1, doc="sign-to-text stride (the paper's best: 7)")


@dataclass(frozen=True)
class Sign2TextConfig:
    """Sign-to-text mapping (section 3.4): Transformer encoder-decoder over Z; or a baseline of table 1
    on the prepared keypoints (harness/stages/translate.py), sized by the same keys."""

    # uniglor: over Z; joint_slt, joint_slt_gloss (+ CTC on the glosses), conslt: from keypoints.
    method: Literal["uniglor", "joint_slt", "joint_slt_gloss", "conslt"] = "uniglor"
    dim: int = _f(128, lo=8)
    layers: int = _f(2, lo=1)
    heads: int = _f(4, lo=1)
    dropout: float = _f(0.1, lo=0.0, hi=1.0, hi_open=True)
    # Neither is in the paper nor in Joint-SLT's configuration (the paper profile turns both off).
    label_smoothing: float = _f(0.1, lo=0.0, hi=1.0, hi_open=True)
    tie_embeddings: bool = True  # the output projection shares the target embedding's weights
    epochs: int = _f(40, lo=1)
    beam_size: int = _f(5, lo=1)
    length_penalty: float = _f(1.0, lo=0.0)
    max_output_len: int = _f(40, lo=1)


@dataclass(frozen=True)
class Text2SignConfig:
    """Text-to-sign mapping (section 3.4, B.2): queries, length regulator, frozen SignMAE decoder; or
    a baseline of table 2 (PT, NSLP-G: harness/stages/text2sign.py), sized by the same keys."""

    method: Literal["uniglor", "pt", "nslp_g"] = "uniglor"
    dim: int = _f(128, lo=8)
    layers: int = _f(2, lo=1)
    heads: int = _f(4, lo=1)
    dropout: float = _f(0.1, lo=0.0, hi=1.0, hi_open=True)
    num_queries: int = _f(0, lo=0, doc="0: the longest training sequence's segments (builders.text2sign_queries)")
    # "learned", or a local Hugging Face model directory (the paper: DistilBERT; needs the [hf] extra):
    # sentences then go through that model's own tokenizer, its [CLS] output feeds the length regulator.
    text_encoder: str = "learned"
    # The windows it learns to produce (section 4.2: 15, the window, so each decodes to frames that
    # do not overlap); 0: pretrain.window. Below the window, overlapping frames are averaged.
    stride: int = _f(0, lo=0, doc="0: pretrain.window")
    # Eq. 4-6 are sums per sentence (eq. 4 over its N segments, eq. 5 over the Q queries); "mean"
    # averages eq. 4 over valid segments and eq. 5 over queries, which weighs the length loss Q / N
    # times less against eq. 4 than the sums do (18x with 128 queries and N = 7: PHOENIX14T's 116-frame mean).
    loss_reduction: Literal["mean", "sum"] = "mean"
    # The epoch kept: "last", or the best back-translated dev BLEU-4 (appendix B.2's early stopping;
    # greedy, judged by the back-translator, at each dev evaluation).
    select_by: Literal["last", "dev_bt_bleu4"] = "last"
    epochs: int = _f(40, lo=1)


@dataclass(frozen=True)
class BacktranslatorConfig:
    """The SLP judge: a keypoint-to-text translator trained on ground-truth keypoints."""

    dim: int = _f(128, lo=8)
    layers: int = _f(2, lo=1)
    heads: int = _f(4, lo=1)
    dropout: float = _f(0.1, lo=0.0, hi=1.0, hi_open=True)
    epochs: int = _f(40, lo=1)
    beam_size: int = _f(5, lo=1)


@dataclass(frozen=True)
class RecognitionConfig:
    """Recognition of unseen isolated signs (section 5, table 3) and figure 5's corpus.

    `source`: "synth", the generated unseen corpus (synth/isolated.py; the sizes below), or a user's
    keypoint source (pt:DIR, openpose:DIR, pose:FILE_OR_DIR, npz:FILE; one sign per sequence) with
    `labels`, the path of its label table: tab separated, a header naming NAME and LABEL (and
    optionally SPLIT), then one row per sequence: NAME its name (a .pose file's stem, an OpenPose
    folder's name, ...), LABEL its gloss, SPLIT train | dev | test (empty or no column: the source's
    own split). Every sequence needs a row; train needs 2 classes or more, every class a train and
    a test example, dev an example (harness/data/labels.py; the README's "Your own isolated signs").
    """

    model: Literal["signmae", "gru", "transformer"] = "signmae"  # over frozen z; gru, transformer: raw keypoints
    source: str = "synth"
    labels: str = ""  # the label table of a source other than synth
    seed: int = _f(0, lo=0, doc="the unseen inventory's seed")
    glosses: int = _f(40, lo=2, doc="unseen glosses")
    signers: int = _f(4, lo=1, doc="unseen signers (none of the sentence corpus's)")
    train_per_gloss: int = _f(8, lo=1, doc="clips per gloss in train (scaled by the gloss's frequency, 0.5-1.5)")
    dev_per_gloss: int = _f(2, lo=1)
    test_per_gloss: int = _f(3, lo=1)
    dim: int = _f(0, lo=0, doc="0: pretrain.dim (the paper: a head configured like the SignMAE encoder)")
    depth: int = _f(0, lo=0, doc="0: pretrain.depth")
    heads: int = _f(0, lo=0, doc="0: pretrain.heads")
    dropout: float = _f(0.1, lo=0.0, hi=1.0, hi_open=True)
    epochs: int = _f(30, lo=1)


@dataclass(frozen=True)
class ComputeConfig:
    """How a trial is run: Ray Train scaling and checkpointing."""

    workers_per_trial: int = _f(1, lo=1)
    gpus_per_worker: float = _f(0.0, lo=0.0)
    cpus_per_worker: float = _f(1.0, lo=0.0, lo_open=True)
    torch_threads: int = _f(0, lo=0, doc="0: cpus_per_worker rounded")
    bf16: bool = True  # autocast to bf16 on GPU only
    cpu_bf16: bool = False  # bf16 autocast of training on CPU too (Runtime.autocast); off until shown within seed noise
    max_failures: int = _f(2, lo=0, doc="Ray Train worker-group restarts from the last checkpoint")
    checkpoint_every_s: float = _f(30.0, lo=0.0, doc="an epoch checkpoint at most this often; 0: every epoch")


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one trial depends on."""

    profile: str = "default"
    seed: int = _f(0, lo=0)
    # Seeds per variant of an ablation (run_ablation.py --seeds): trial i of a variant has seed i.
    # Bounded: a study plans (and --dry-run hashes) every trial up front.
    seeds: int = _f(3, lo=1, hi=MAX_SEEDS, doc="seeds per ablation variant")
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    sign2text: Sign2TextConfig = field(default_factory=Sign2TextConfig)
    text2sign: Text2SignConfig = field(default_factory=Text2SignConfig)
    backtranslator: BacktranslatorConfig = field(default_factory=BacktranslatorConfig)
    recognition: RecognitionConfig = field(default_factory=RecognitionConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)

    def __post_init__(self) -> None:
        check_consistency(self, source="")


# ----------------------------------------------------------------------------- strict loading

def config_from_dict(nested: dict, source: str) -> ExperimentConfig:
    """A config from its nested dict form (`dataclasses.asdict`), checked like a YAML file."""
    return build(ExperimentConfig, nested, "", source, finish=_experiment)


def _experiment(kwargs: dict, source: str) -> ExperimentConfig:
    # Build without __post_init__'s anonymous check, then check with the file named.
    cfg = object.__new__(ExperimentConfig)
    defaults = {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
                for f in dataclasses.fields(ExperimentConfig)}
    for k, v in {**defaults, **kwargs}.items():
        object.__setattr__(cfg, k, v)
    check_consistency(cfg, source)
    return cfg


def check_consistency(cfg: ExperimentConfig, source: str) -> None:
    """Rules that tie two fields together."""
    if cfg.embed.stride > cfg.pretrain.window:
        raise ConfigError(
            f"embed.stride must be <= pretrain.window ({cfg.pretrain.window}), got {cfg.embed.stride}{_where(source)}")
    if cfg.text2sign.stride > cfg.pretrain.window:
        raise ConfigError(f"text2sign.stride must be <= pretrain.window ({cfg.pretrain.window}), "
                          f"got {cfg.text2sign.stride}{_where(source)}")
    if cfg.data.synth.max_signs < cfg.data.synth.min_signs:
        raise ConfigError(f"data.synth.max_signs must be >= data.synth.min_signs ({cfg.data.synth.min_signs}), "
                          f"got {cfg.data.synth.max_signs}{_where(source)}")
    synthetic = lambda spec: spec.partition(":")[0].partition("@")[0].strip().lower() in ("synth", "synth2")  # noqa: E731
    if cfg.pretrain.extra_source and synthetic(cfg.pretrain.extra_source) and not synthetic(cfg.data.source):
        raise ConfigError(f"pretrain.extra_source is {cfg.pretrain.extra_source!r}, synthetic, but data.source is "
                          f"{cfg.data.source!r}; expected your second corpus (e.g. openpose:DIR) or '' with real "
                          f"data{_where(source)}")
    for section in ("pretrain", "sign2text", "text2sign", "backtranslator"):
        sub = getattr(cfg, section)
        if sub.dim % sub.heads:
            raise ConfigError(f"{section}.dim must be divisible by {section}.heads ({sub.heads}), "
                              f"got {sub.dim}{_where(source)}")
    dim, heads = cfg.recognition.dim or cfg.pretrain.dim, cfg.recognition.heads or cfg.pretrain.heads
    if dim % heads:
        raise ConfigError(f"recognition.dim must be divisible by recognition.heads (0: pretrain's), got {dim} "
                          f"and {heads}{_where(source)}")
    if cfg.sign2text.method != "uniglor" and cfg.text2sign.method != "uniglor":
        raise ConfigError(f"a trial measures one baseline: sign2text.method {cfg.sign2text.method!r} and text2sign.method "
                          f"{cfg.text2sign.method!r}; set the other to uniglor{_where(source)}")
    r = cfg.recognition
    if r.source != "synth" and not r.labels:
        raise ConfigError(f"recognition.labels is empty; expected the path of the label table of recognition.source "
                          f"{r.source!r} (tab separated: NAME, LABEL[, SPLIT]){_where(source)}")
    if r.source == "synth" and r.labels:
        raise ConfigError(f"recognition.labels is {r.labels!r} but recognition.source is synth (labelled by the "
                          f"generator); expected no labels, or a keypoint source as recognition.source{_where(source)}")
    if cfg.profile not in PROFILES:
        raise ConfigError(f"profile must be one of {', '.join(PROFILES)}, got {cfg.profile!r}{_where(source)}")


def apply_overrides(cfg: ExperimentConfig, overrides: dict[str, Any], source: str = "") -> ExperimentConfig:
    """Apply dotted overrides ({"pretrain.mask_ratio": 0.5}) strictly; returns a new config."""
    merged = deep_merge(dataclasses.asdict(cfg), unflatten(overrides))
    return build(ExperimentConfig, merged, "", source, finish=_experiment)


def load_profile(name: str, overrides: dict[str, Any] | None = None, source: str = "") -> ExperimentConfig:
    """The dataclass defaults, then the profile's YAML, then the dotted overrides."""
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    path = PROFILE_DIR / f"{name}.yaml"
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of config sections")
    cfg = build(ExperimentConfig, deep_merge(data, {"profile": name}), "", _rel(path), finish=_experiment)
    if overrides:
        cfg = apply_overrides(cfg, overrides, source)
    return cfg


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
