"""Keypoint sources: the one grammar of `KIND:ARG` spec strings and the dispatch to the readers
(paper section 4.2 "Keypoint Processing"). Every reader maps its layout into the canonical
73-point layout (harness.data.canonical, models/layout.py).

Spec strings (the `data.source` and `pretrain.extra_source` config values, the CLI's SOURCE):

    synth              the synthetic corpus with the experiment config's own data.synth settings
    synth@SEED         the same settings with another seed (e.g. a second corpus for pretraining)
    synth:PROFILE      the synthetic corpus with profile PROFILE's data.synth settings
    synth2             the second synthetic sign language (synth/second_language.py: its own glosses,
                       grammar and signers, the same phonology; How2Sign's stand-in for pretraining),
                       data.synth's settings with data.synth2.train_scale times the train sentences
    synth2@SEED        the same with another seed
    synth2:PROFILE     the same with profile PROFILE's data.synth and data.synth2 settings
    pt:DIR             Progressive Transformers PHOENIX14T skeletons (<split>.skels/.text/.gloss/.files)
    openpose:DIR       How2Sign-style OpenPose JSON: one folder of per-frame JSON per sentence + a TSV
    pose:FILE_OR_DIR   pose-format `.pose` files (OpenPose 137 or MediaPipe Holistic layouts)
    npz:FILE           our NumPy archive (schema in harness/data/readers/npz.py)

Every source is read into a Corpus with all three SPLITS as keys (possibly empty lists).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.data.canonical import complete_splits
from harness.data.readers.npz import read_npz
from harness.data.readers.openpose import read_openpose
from harness.data.readers.pose import read_pose
from harness.data.readers.pt import read_pt
from harness.data.record import Corpus, DataError, ReadOptions
from harness.data.synth import generate_corpus
from harness.data.synth.second_language import generate_second_corpus

SYNTH_KINDS = ("synth", "synth2")  # generated, not read: identified by their generator's parameters
KINDS = SYNTH_KINDS + ("pt", "openpose", "pose", "npz")
_GRAMMAR = ("synth, synth@SEED, synth:PROFILE, synth2, synth2@SEED, synth2:PROFILE, pt:DIR, openpose:DIR, "
            "pose:FILE_OR_DIR, npz:FILE")
_GENERATORS = {"synth": generate_corpus, "synth2": generate_second_corpus}


@dataclass(frozen=True)
class Source:
    """A parsed source spec.

    kind: one of KINDS. path: the file or folder of a file-based kind (None for synth and synth2).
    profile: the PROFILE of `synth:PROFILE` (`synth2:PROFILE`); seed: the SEED of `synth@SEED`
    (`synth2@SEED`); None otherwise.
    spec: the string it was parsed from, for messages.

    Synthetic sources carry only the profile and seed, not the generator parameters: the harness
    resolves those from the config and passes them to load_source (the config's own data.synth for
    `synth`, profile PROFILE's for `synth:PROFILE`, the seed replaced for `synth@SEED`; the same for
    `synth2`, its train sentences scaled by data.synth2.train_scale). The data
    layer must not import the config: the config imports the data layer (for its defaults and
    bounds), and readers must stay usable without the experiment machinery.
    """

    kind: str
    path: Path | None = None
    profile: str | None = None
    seed: int | None = None
    spec: str = field(default="", compare=False)


def parse_source(spec: str) -> Source:
    """Parse a source spec (see the module docstring); a malformed one raises DataError."""
    text = spec.strip()
    head, _, arg = text.partition(":")
    kind, arg = head.strip().lower(), arg.strip()
    name = kind.partition("@")[0].strip()
    if name in SYNTH_KINDS:
        return _parse_synth(text, name, kind, arg, has_colon=":" in text)
    if kind not in KINDS:
        raise DataError(f"source {text!r}: unknown kind {kind!r}; expected one of {_GRAMMAR}")
    if not arg:
        raise DataError(f"source {text!r}: {kind} needs a path, e.g. {kind}:/path/to/data")
    return Source(kind, path=Path(arg).expanduser(), spec=text)


def _parse_synth(text: str, name: str, head: str, arg: str, has_colon: bool) -> Source:
    _, at, seed = head.partition("@")
    if (at and has_colon) or "@" in arg:
        raise DataError(f"source {text!r}: expected {name}, {name}@SEED or {name}:PROFILE (not both)")
    if at:
        seed = seed.strip()
        if not (seed.isascii() and seed.isdigit()):
            raise DataError(f"source {text!r}: expected {name}@SEED with a non-negative integer seed, "
                            f"e.g. {name}@1000")
        return Source(name, seed=int(seed), spec=text)
    if has_colon:
        if not arg:
            raise DataError(f"source {text!r}: {name}:PROFILE needs a profile name, e.g. {name}:debug")
        return Source(name, profile=arg, spec=text)
    return Source(name, spec=text)


def load_source(source: Source, synth_params: dict | None = None, problems: list[str] | None = None,
                options: ReadOptions = ReadOptions()) -> Corpus:
    """Read a source into a Corpus (split -> sequences) in the canonical layout.

    synth_params: for a synth (synth2) source, the generate_corpus(**kwargs)
    (generate_second_corpus) arguments the harness resolved (see Source); None for every other kind.
    problems: when given, readers append one line per non-fatal problem (a sentence without
    keypoints, an unreadable optional column, ...). Malformed data raises DataError.
    options: the readers' settings (minimum confidence, unlabelled sequences).
    """
    problems = problems if problems is not None else []
    if source.kind in SYNTH_KINDS:
        if synth_params is None:
            raise ValueError(f"source {source.spec!r}: a synth source needs synth_params, resolved by the harness")
        return complete_splits(_GENERATORS[source.kind](**synth_params))
    if synth_params is not None:
        raise ValueError(f"source {source.spec!r}: synth_params are only for synth sources")
    path = source.path
    if not path.exists():
        raise DataError(f"{path}: does not exist (source {source.spec!r})")
    if source.kind == "pt":
        return read_pt(path, problems)
    if source.kind == "openpose":
        return read_openpose(path, problems, options)
    if source.kind == "pose":
        return read_pose(path, problems, options)
    return read_npz(path)


def source_files(source: Source) -> list[Path]:
    """The files a file-based source reads, for the harness's cache keys. A synth source has none:
    the harness identifies it by its generator parameters."""
    if source.kind in SYNTH_KINDS:
        raise ValueError(f"source {source.spec!r}: a synth source has no files; identify it by its synth_params")
    path = source.path
    if path.is_file():
        # a single .pose file takes its text from a sentence table beside it
        tables = [p for p in path.parent.iterdir() if p.is_file() and p.suffix.lower() in (".tsv", ".csv")]
        return [path] + sorted(tables) if source.kind == "pose" else [path]
    if not path.exists():
        raise DataError(f"{path}: does not exist (source {source.spec!r})")
    return sorted(p for p in path.rglob("*") if p.is_file())
