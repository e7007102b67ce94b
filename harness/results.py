"""What crosses a process boundary, as typed records, and where it lives under the results folder.

A Tune trial, the Ray Train workers it starts and the driver that reads its outcome run in
different processes (often on different nodes). They exchange exactly two records:

- `TrialSpec`: what a trial needs (its config, tasks, identity, where to log and to store);
- `TrialResult`: what it returns (per task and split: metrics, hypotheses, references; which
  stages were cached; timings), written by rank 0 as RESULTS/<folder>/trials/<key>.json;
- with text-to-sign, `PoseSample`s: a handful of test sentences' generated and ground-truth
  keypoints (the same sentences in every trial, `sample_indices`), for the study's side-by-side
  skeletons (figure 4), written by rank 0 as RESULTS/<folder>/trials/<key>/pose_samples.npz.

Ray Tune and Train pass plain dicts (`param_space`, `train_loop_config`): `TrialSpec.to_tune` and
`TrialSpec.from_tune` are the one place where a spec becomes a dict and back.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import ExperimentConfig, apply_overrides, config_from_dict, flatten
from harness.io import atomic_write, digest

TASKS = ("sign2text", "text2sign", "recognition")
# Tasks whose dev/test results a trial returns: the two of the paper plus text-to-sign's judge.
RESULT_TASKS = ("sign2text", "text2sign", "backtranslator", "recognition")
SPLITS = ("dev", "test")
SIDE_BY_SIDE = 5  # test sentences shown side by side (translations.md, skeletons.png: tables 6, 8, figure 4)


def sample_indices(n: int, k: int = SIDE_BY_SIDE) -> list[int]:
    """k test sentences of n, evenly spaced from the first to the last (all of them when n <= k):
    chosen from the split's size alone, so every trial of a study shows the same sentences."""
    if n <= k:
        return list(range(n))
    return [i * (n - 1) // (k - 1) for i in range(k)] if k > 1 else [0]


def metric_key(task: str, split: str, metric: str) -> str:
    """The flat name of a final metric in Tune results and MLflow: `sign2text/test_bleu4`."""
    return f"{task}/{split}_{metric}"


def config_key(cfg: ExperimentConfig) -> str:
    """What a finished trial result was computed from: a result of another config is not reused."""
    return digest(dataclasses.asdict(cfg))


# --------------------------------------------------------------------------------------------
# What a trial needs
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrialSpec:
    cfg: ExperimentConfig
    tasks: tuple[str, ...]
    key: str  # "apw-seed0", "trial0003": the trial's folder, its MLflow tag, its Train run name
    variant: str  # the ablation's row; a search trial's key
    folder: str  # RESULTS/<folder>/trials/<key>: "apw" or "search/sign2text"
    results: str  # the absolute results folder (the same path on every node)
    tracking_uri: str = ""
    experiment_id: str = ""
    parent_run_id: str = ""
    run_id: str = ""  # the trial's own MLflow run, created by its driver before the workers start
    run_prefix: str = ""  # Train run name = <run_prefix>-<key>: deterministic, so a rerun resumes
    ray_storage: str = ""  # Ray Train's storage_path
    storage_uri: str | None = None  # --storage
    tags: dict[str, str] = field(default_factory=dict)  # extra MLflow tags of the trial run
    # A search's objective and scheduler fields, added to every report Tune sees (empty: an ablation)
    objectives: tuple[str, ...] = ()
    epoch_metric: str = ""

    @property
    def config_key(self) -> str:
        return config_key(self.cfg)

    @property
    def train_run(self) -> str:
        return f"{self.run_prefix}-{self.key}"

    @property
    def params(self) -> dict[str, str]:
        """The dotted config as MLflow parameters: the same keys as `--set`."""
        return {k: str(v) for k, v in flatten(self.cfg).items()}

    @property
    def trial_dir(self) -> Path:
        return ResultsLayout(Path(self.results)).trial_dir(self.folder, self.key)

    @property
    def result_path(self) -> Path:
        return ResultsLayout(Path(self.results)).trial_result(self.folder, self.key)

    @property
    def failure_path(self) -> Path:
        return ResultsLayout(Path(self.results)).trial_failure(self.folder, self.key)

    @property
    def pose_samples_path(self) -> Path:
        return ResultsLayout(Path(self.results)).pose_samples(self.folder, self.key)

    def to_tune(self) -> dict[str, Any]:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["cfg"] = dataclasses.asdict(self.cfg)
        fields["tasks"] = list(self.tasks)
        fields["objectives"] = list(self.objectives)
        return {"spec": fields}

    @classmethod
    def from_tune(cls, config: dict[str, Any]) -> TrialSpec:
        """The spec in a Tune or Train config. A search's config also holds what Optuna sampled
        (dotted keys, applied to the base config) and `trial` (the Optuna trial's number and key)."""
        raw = dict(config["spec"])
        cfg = config_from_dict(raw.pop("cfg"), "trial config")
        sampled = {k: v for k, v in config.items() if k not in ("spec", "trial")}
        spec = cls(cfg=cfg, **{**raw, "tasks": tuple(raw["tasks"]), "objectives": tuple(raw["objectives"])})
        if sampled:
            spec = dataclasses.replace(spec, cfg=apply_overrides(cfg, sampled, f"trial {config['trial']['key']}"))
        if "trial" in config:
            key = config["trial"]["key"]
            spec = dataclasses.replace(spec, key=key, variant=key,
                                       tags={**spec.tags, "optuna.number": str(config["trial"]["number"])})
        return spec


# --------------------------------------------------------------------------------------------
# What a trial returns
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SplitResult:
    metrics: dict[str, float]
    hypotheses: list[str]
    references: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "hypotheses": self.hypotheses, "references": self.references}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SplitResult:
        return cls(dict(data["metrics"]), list(data["hypotheses"]), list(data["references"]))


@dataclass(frozen=True)
class TaskResult:
    dev: SplitResult
    test: SplitResult

    def to_json(self) -> dict[str, Any]:
        return {"dev": self.dev.to_json(), "test": self.test.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskResult:
        return cls(SplitResult.from_json(data["dev"]), SplitResult.from_json(data["test"]))


@dataclass(frozen=True)
class TrialResult:
    tasks: dict[str, TaskResult]  # sign2text, text2sign, backtranslator: those the trial ran
    pretrain_metrics: dict[str, float]
    stages: dict[str, str]  # stage -> "cached" | "computed"
    stage_seconds: dict[str, float]
    seconds: float  # the stages' time inside the worker
    key: str = ""
    variant: str = ""
    seed: int = 0
    config_key: str = ""
    trial_wall_s: float | None = None  # the trial's time through Tune and Train (set by its driver)

    def final_metrics(self) -> dict[str, float]:
        """Flat dev and test metrics for Tune and MLflow: sign2text/test_bleu4, text2sign/dev_mpjpe, ...,
        and the representation probe's (probe/knn_acc, ...)."""
        # NaN is a score that does not exist (a row not applicable to the source): not logged.
        return {**{metric_key(task, split, k): float(v) for task in RESULT_TASKS if task in self.tasks
                   for split in SPLITS for k, v in getattr(self.tasks[task], split).metrics.items() if v == v},
                **{k: float(v) for k, v in self.pretrain_metrics.items() if k.startswith("probe/")}}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {task: self.tasks[task].to_json() for task in RESULT_TASKS if task in self.tasks}
        out.update({"pretrain": {"metrics": self.pretrain_metrics}, "stages": self.stages,
                    "stage_seconds": self.stage_seconds, "seconds": self.seconds, "variant": self.variant,
                    "seed": self.seed, "trial_key": self.key, "config_key": self.config_key})
        if self.trial_wall_s is not None:
            out["trial_wall_s"] = self.trial_wall_s
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialResult:
        return cls(tasks={t: TaskResult.from_json(data[t]) for t in RESULT_TASKS if t in data},
                   pretrain_metrics=dict(data["pretrain"]["metrics"]), stages=dict(data["stages"]),
                   stage_seconds=dict(data["stage_seconds"]), seconds=float(data["seconds"]),
                   key=data.get("trial_key", ""), variant=data.get("variant", ""), seed=int(data.get("seed", 0)),
                   config_key=data.get("config_key", ""), trial_wall_s=data.get("trial_wall_s"))

    def write(self, path: Path) -> None:
        atomic_write(path, json.dumps(self.to_json(), default=str))

    @classmethod
    def read(cls, path: Path) -> TrialResult | None:
        """The result in `path`, or None when it is missing or unreadable (the trial reruns)."""
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class PoseSample:
    """One test sentence's production: what the strip of figure 4 draws for a row."""

    index: int  # in the test split
    text: str  # the reference sentence
    generated: np.ndarray  # (T, V, C)
    ground_truth: np.ndarray  # (T', V, C)
    mask: np.ndarray  # (T', V) bool: the ground-truth points present


def write_pose_samples(samples: list[PoseSample], path: Path) -> None:
    """The samples as one compressed npz (sequences of different lengths: one array each)."""
    arrays: dict[str, np.ndarray] = {"index": np.asarray([s.index for s in samples], dtype=np.int64),
                                     "text": np.asarray([s.text for s in samples], dtype=str)}
    for i, s in enumerate(samples):
        arrays[f"generated{i}"] = np.asarray(s.generated, dtype=np.float32)
        arrays[f"ground_truth{i}"] = np.asarray(s.ground_truth, dtype=np.float32)
        arrays[f"mask{i}"] = np.asarray(s.mask, dtype=bool)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write(path, buf.getvalue())


def read_pose_samples(path: Path) -> list[PoseSample] | None:
    """The samples in `path`, or None when it is missing or unreadable (the strip shows no row)."""
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            return [PoseSample(int(index), str(text), data[f"generated{i}"], data[f"ground_truth{i}"],
                               data[f"mask{i}"].astype(bool))
                    for i, (index, text) in enumerate(zip(data["index"], data["text"]))]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


# --------------------------------------------------------------------------------------------
# Where things live
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ResultsLayout:
    """Every path under RESULTS/: the stage cache, and per ablation or search (`folder`: "apw",
    "search/sign2text") its invocation state, its trials' result files and folders."""

    root: Path

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def folder(self, name: str) -> Path:
        return self.root / name

    def state(self, name: str) -> Path:
        return self.root / name / "state.json"

    def trial_dir(self, name: str, key: str) -> Path:
        return self.root / name / "trials" / key

    def trial_result(self, name: str, key: str) -> Path:
        return self.root / name / "trials" / f"{key}.json"

    def pose_samples(self, name: str, key: str) -> Path:
        """The trial's PoseSamples (text-to-sign trials only)."""
        return self.root / name / "trials" / key / "pose_samples.npz"

    def trial_failure(self, name: str, key: str) -> Path:
        """Why a trial ended without a result and must not be retried (a diverged stage)."""
        return self.root / name / "trials" / key / "failed.json"

    def failure(self, name: str, key: str) -> str | None:
        """The one-line reason in trial_failure, or None."""
        try:
            return str(json.loads(self.trial_failure(name, key).read_text())["error"]).splitlines()[0]
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return None
