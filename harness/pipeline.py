"""One trial: every stage its tasks need, in dependency order, each loaded from the cache or computed.

`run_trial` is the same in a Ray Train worker, in `python -m harness.trial` and in the tests; the
stages themselves (`harness.stages`) know nothing of each other: this walk hands each one the ready
outputs of its needs.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from harness.cache import StageCache
from harness.config import ExperimentConfig
from harness.data.record import Corpus
from harness.loop import Runtime
from harness.results import PoseSample, TaskResult, TrialResult, config_key
from harness.stages import (FIGURES, STAGES, StageContext, cached_run, run_order, stage_keys, task_stages,
                            trial_tasks)
from harness.stages.prepare import PREPARE


def prepare_source(spec: str, cfg: ExperimentConfig, cache: StageCache, runtime: Runtime) -> Corpus:
    """The prepared corpus of source `spec` (with `cfg`'s preprocessing), cached like any stage."""
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, source=spec))
    key = stage_keys(cfg, ())["prepare"]
    corpus, _ = cached_run(PREPARE, key, cache, runtime, lambda: PREPARE.run(_context(cfg, runtime, key, {}, cache)))
    return corpus


def isolated_corpus(cfg: ExperimentConfig, cache: StageCache, runtime: Runtime) -> Corpus:
    """The isolated-sign corpus of `cfg` (recognition.source), through the cache as a trial loads it."""
    stage, key = STAGES["isolated"], stage_keys(cfg, ())["isolated"]
    corpus, _ = cached_run(stage, key, cache, runtime, lambda: stage.run(_context(cfg, runtime, key, {}, cache)))
    return corpus


def _context(cfg: ExperimentConfig, runtime: Runtime, key: str, inputs: dict[str, Any], cache: StageCache
             ) -> StageContext:
    return StageContext(cfg=cfg, runtime=runtime, key=key, inputs=inputs,
                        prepare_source=lambda spec: prepare_source(spec, cfg, cache, runtime))


def run_trial(cfg: ExperimentConfig, tasks: tuple[str, ...], cache: StageCache, runtime: Runtime
              ) -> tuple[TrialResult, list[PoseSample]]:
    """Every stage the tasks need (a baseline's trial: its own task only, `trial_tasks`); the trial's
    result and, with text-to-sign, the side-by-side test sentences' generated and ground-truth
    keypoints (the skeleton animation and figure 4's strip). A task's result is its method's stage's,
    under the task's name."""
    tasks = trial_tasks(cfg, tasks)
    t0 = time.perf_counter()
    keys = stage_keys(cfg, tasks)
    ready: dict[str, Any] = {}
    status: dict[str, str] = {}
    seconds: dict[str, float] = {}
    stored: dict[str, Any] = {}
    waited = runtime.waited_s
    for name in run_order(tasks, cfg):
        stage = STAGES[name]
        ctx = _context(cfg, runtime, keys[name], {n: ready[n] for n in stage.needs}, cache)
        started, waited_before = time.perf_counter(), runtime.waited_s
        stored[name], how = cached_run(stage, keys[name], cache, runtime, lambda: stage.run(ctx))
        ready[name] = stage.ready(ctx, stored[name])
        if stage.reported:
            # The stage's own work: not the time its epochs waited on Ray's reports and MLflow.
            status[name] = how
            seconds[name] = time.perf_counter() - started - (runtime.waited_s - waited_before)
    results = {(task if i == 0 else name): TaskResult.from_json(stored[name]["result"])
               for task in tasks for i, name in enumerate(task_stages(task, cfg))}
    production = stored[task_stages("text2sign", cfg)[0]]["result"] if "text2sign" in tasks else {}
    samples = [PoseSample(int(s["index"]), s["text"], s["generated"].numpy(), s["ground_truth"].numpy(),
                          s["mask"].numpy().astype(bool)) for s in production.get("samples", [])]
    # The probe measures the pretraining's z: its metrics are the pretraining's (probe/*); a
    # baseline's trial has neither.
    pretrained = {**ready["pretrain"].metrics, **stored["probe"]["metrics"]} if "pretrain" in ready else {}
    result = TrialResult(tasks=results, pretrain_metrics=pretrained,
                         stages=status,
                         stage_seconds=seconds, seconds=time.perf_counter() - t0 - (runtime.waited_s - waited),
                         seed=cfg.seed,
                         config_key=config_key(cfg))
    return result, samples

def figure_files(cfg: ExperimentConfig, tasks: tuple[str, ...], cache: StageCache) -> list[Path]:
    """The PNGs of the figure stages a trial ran (figure 5, of every trial that pretrains), in their
    cache entries."""
    names = [n for n in FIGURES if n in run_order(tasks, cfg)]
    keys = stage_keys(cfg, tasks)
    return [png for n in names for png in sorted(cache.entry(STAGES[n].cache_folder, keys[n]).path.glob("*.png"))]
