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
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from harness.data.synth import MAX_GLOSSES, MIN_GLOSSES
# Re-exported: the error type and the strict YAML readers live with the rest of the user-input rules.
from harness.user_input import ConfigError, parse_yaml, read_mapping, read_yaml  # noqa: F401

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
PROFILES = ("debug", "demo", "default", "paper")
MAX_SEEDS = 1000  # seeds per ablation variant


def _f(default: Any, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
       hi_open: bool = False, doc: str = "") -> Any:
    """A field with an allowed range; the range is checked by the loader and in __post_init__."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open, "doc": doc})


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
class DataConfig:
    """Where sequences come from and how they are cleaned (appendix B.1)."""

    # synth | synth@SEED | synth:PROFILE | pt:DIR | openpose:DIR | pose:FILE_OR_DIR | npz:FILE
    source: str = "synth"
    # Shoulder lengths, not the paper's 400 px: it applies after shoulder normalization (harness/data/preprocess.py).
    noise_threshold: float = _f(0.75, lo=0.0, lo_open=True,
                                doc="mean joint displacement between frames above which a frame is dropped")
    synth: SynthConfig = field(default_factory=SynthConfig)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warmup and cosine decay (appendix B.2), shared by all training stages."""

    lr: float = _f(1e-3, lo=0.0, lo_open=True, doc="peak learning rate (paper: 1e-4 for 50 epochs on GPUs)")
    min_lr: float = _f(5e-5, lo=0.0)
    warmup_steps: int = _f(100, lo=0)
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
    weighting: Literal["none", "fpw", "apw"] = "apw"
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
    # Table 4d: a second corpus for pretraining only: "" none, a source spec, or "synth@SEED".
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
    """Sign-to-text mapping (section 3.4): Transformer encoder-decoder over Z."""

    dim: int = _f(128, lo=8)
    layers: int = _f(2, lo=1)
    heads: int = _f(4, lo=1)
    dropout: float = _f(0.1, lo=0.0, hi=1.0, hi_open=True)
    label_smoothing: float = _f(0.1, lo=0.0, hi=1.0, hi_open=True)
    epochs: int = _f(40, lo=1)
    beam_size: int = _f(5, lo=1)
    length_penalty: float = _f(1.0, lo=0.0)
    max_output_len: int = _f(40, lo=1)


@dataclass(frozen=True)
class Text2SignConfig:
    """Text-to-sign mapping (section 3.4, B.2): queries, length regulator, frozen SignMAE decoder."""

    dim: int = _f(128, lo=8)
    layers: int = _f(2, lo=1)
    heads: int = _f(4, lo=1)
    dropout: float = _f(0.1, lo=0.0, hi=1.0, hi_open=True)
    num_queries: int = _f(0, lo=0, doc="0: the longest training sequence's segments (builders.text2sign_queries)")
    text_encoder: str = "learned"  # "learned", or a local Hugging Face model directory
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
    """Recognition of unseen isolated signs (section 5, table 3); their corpus is synth/isolated.py's."""

    model: Literal["signmae", "gru", "transformer"] = "signmae"  # over frozen z; gru, transformer: raw keypoints
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

def _where(source: str) -> str:
    return f" ({source})" if source else ""


# A field's scalar type -> the values it accepts, its name in messages; `true` is never a number (nor 1 a bool).
_SCALARS = {bool: (bool, "true or false"), int: (int, "an integer"), float: ((int, float), "a number"),
            str: (str, "a string")}


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check `value` against the annotation `tp`; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if origin is tuple:  # tuple[Literal[...], ...]: a non-empty subset of the names, kept in their order
        names = typing.get_args(typing.get_args(tp)[0])
        if not isinstance(value, (list, tuple)) or not value or any(v not in names or value.count(v) > 1 for v in value):
            raise ConfigError(f"{key} must be a non-empty list of distinct names of {', '.join(names)}, got {value!r}"
                              f"{_where(source)}")
        return tuple(n for n in names if n in value)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key} must be one of {' | '.join(map(repr, typing.get_args(tp)))}, got {value!r}{_where(source)}")
        return value
    if tp in _SCALARS:
        accepts, what = _SCALARS[tp]
        if isinstance(value, bool) is not (tp is bool) or not isinstance(value, accepts):
            raise ConfigError(f"{key} must be {what}, got {value!r}{_where(source)}")
        # NaN passes every range check (each comparison is False) and inf overflows what it sizes.
        if tp is float and not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value!r}{_where(source)}")
        return float(value) if tp is float else value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping of {tp.__name__} fields, got {value!r}{_where(source)}")
        return _build(tp, value, key, source)
    raise ConfigError(f"{key}: unsupported annotation {tp}")  # pragma: no cover


def _check_range(cls: type, name: str, value: Any, key: str, source: str) -> None:
    meta = {f.name: f.metadata for f in dataclasses.fields(cls)}[name]
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is None and hi is None or isinstance(value, (str, bool)):
        return
    below = lo is not None and (value <= lo if meta["lo_open"] else value < lo)
    above = hi is not None and (value >= hi if meta["hi_open"] else value > hi)
    if below or above:
        if lo is not None and hi is not None:
            rng = f"in {'(' if meta['lo_open'] else '['}{lo:g}, {hi:g}{')' if meta['hi_open'] else ']'}"
        elif lo is not None:
            rng = f"{'>' if meta['lo_open'] else '>='} {lo:g}"
        else:
            rng = f"{'<' if meta['hi_open'] else '<='} {hi:g}"
        raise ConfigError(f"{key} must be {rng}, got {value!r}{_where(source)}")


def _build(cls: type, mapping: dict, prefix: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for name, value in mapping.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if name not in names:
            raise ConfigError(f"unknown key {key}; valid keys here: {', '.join(names)}{_where(source)}")
        kwargs[name] = _coerce(value, hints[name], key, source)
        _check_range(cls, name, kwargs[name], key, source)
    return cls(**kwargs) if cls is not ExperimentConfig else _experiment(kwargs, source)


def config_from_dict(nested: dict, source: str) -> ExperimentConfig:
    """A config from its nested dict form (`dataclasses.asdict`), checked like a YAML file."""
    return _build(ExperimentConfig, nested, "", source)


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
    if cfg.data.synth.max_signs < cfg.data.synth.min_signs:
        raise ConfigError(f"data.synth.max_signs must be >= data.synth.min_signs ({cfg.data.synth.min_signs}), "
                          f"got {cfg.data.synth.max_signs}{_where(source)}")
    for section in ("pretrain", "sign2text", "text2sign", "backtranslator"):
        sub = getattr(cfg, section)
        if sub.dim % sub.heads:
            raise ConfigError(f"{section}.dim must be divisible by {section}.heads ({sub.heads}), "
                              f"got {sub.dim}{_where(source)}")
    dim, heads = cfg.recognition.dim or cfg.pretrain.dim, cfg.recognition.heads or cfg.pretrain.heads
    if dim % heads:
        raise ConfigError(f"recognition.dim must be divisible by recognition.heads (0: pretrain's), got {dim} "
                          f"and {heads}{_where(source)}")
    if cfg.profile not in PROFILES:
        raise ConfigError(f"profile must be one of {', '.join(PROFILES)}, got {cfg.profile!r}{_where(source)}")


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """ExperimentConfig -> {"pretrain.mask_ratio": 0.25, ...} (the MLflow parameter names)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, key + "."))
        else:
            out[key] = value
    return out


def _unflatten(overrides: dict[str, Any]) -> dict:
    nested: dict = {}
    for dotted, value in overrides.items():
        parts = str(dotted).split(".")
        node = nested
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{dotted}: {p} is a value, not a section")
        node[parts[-1]] = value
    return nested


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def apply_overrides(cfg: ExperimentConfig, overrides: dict[str, Any], source: str = "") -> ExperimentConfig:
    """Apply dotted overrides ({"pretrain.mask_ratio": 0.5}) strictly; returns a new config."""
    merged = _deep_merge(dataclasses.asdict(cfg), _unflatten(overrides))
    return _build(ExperimentConfig, merged, "", source)


def parse_set(items: list[str], source: str = "--set") -> dict[str, Any]:
    """`["pretrain.mask_ratio=0.5", ...]` -> {"pretrain.mask_ratio": 0.5}; values are YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"{source} expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = parse_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str):
            try:  # YAML 1.1 reads "1e-7" (no dot) as a string; a number is meant
                value = float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "infinity") else value
            except ValueError:
                pass
        out[key.strip()] = value
    return out


def load_profile(name: str, overrides: dict[str, Any] | None = None, source: str = "") -> ExperimentConfig:
    """The dataclass defaults, then the profile's YAML, then the dotted overrides."""
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    path = PROFILE_DIR / f"{name}.yaml"
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of config sections")
    cfg = _build(ExperimentConfig, _deep_merge(data, {"profile": name}), "", _rel(path))
    if overrides:
        cfg = apply_overrides(cfg, overrides, source)
    return cfg


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
