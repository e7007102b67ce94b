"""The stages of one trial and their graph (paper sections 3.2-3.4, appendix B).

    prepare -> pretrain (SignMAE) -> probe (k-NN of z on the corpus's own glosses; every trial)
    isolated (the unseen isolated signs), pretrain -> figure5 (a t-SNE of z of unseen signs,
        zero-shot; section 5, figure 5; every trial)
    prepare -> pretrain -> embed (sliding windows, embed.stride) -> sign2text
    prepare -> backtranslator (the text-to-sign judge)
    pretrain -> embed_t2s (stride = window) -> text2sign (+ the frozen decoder and the judge)
    isolated (the unseen isolated signs), pretrain -> recognition (section 5, table 3)
    isolated, pretrain -> figure5 (a t-SNE of z of unseen signs, zero-shot; section 5, figure 5),
      and pretrain -> probe: both run by every trial that pretrains, whatever its tasks
    prepare -> joint_slt | conslt (the translation baselines of table 1, on keypoints)
    prepare -> backtranslator -> pt | nslp_g (the production baselines of table 2, the same judge)

A task's method (`sign2text.method`, `text2sign.method`) picks the stage that answers it; a trial of
a baseline runs only that baseline's task, and neither pretrains SignMAE nor probes it.

Each stage's output is cached under RESULTS/cache/<folder>/<key>, where the key hashes the stage's
settings and the keys of its direct upstream stages (`stage_keys`), so an ablation that varies
only the stride pretrains SignMAE once and every variant that keeps the data shares one
back-translator. The graph is the stages' `needs`, written once.
"""

from __future__ import annotations

from harness.cache import content_key
from harness.config import ExperimentConfig
from harness.stages.base import Stage, StageContext, cached_run
from harness.stages.embed import EMBED, EMBED_T2S
from harness.stages.figure5 import FIGURE5
from harness.stages.prepare import PREPARE
from harness.stages.pretrain import PRETRAIN
from harness.stages.probe import PROBE
from harness.stages.recognition import ISOLATED, RECOGNITION
from harness.stages.text2sign import NSLP_G, PT, TEXT2SIGN
from harness.stages.translate import BACKTRANSLATOR, CONSLT, JOINT_SLT, SIGN2TEXT

STAGES: dict[str, Stage] = {s.name: s for s in (PREPARE, PRETRAIN, PROBE, EMBED, SIGN2TEXT, BACKTRANSLATOR, EMBED_T2S,
                                                 TEXT2SIGN, ISOLATED, RECOGNITION, FIGURE5, JOINT_SLT, CONSLT, PT,
                                                 NSLP_G)}
# What each task of an ablation needs computed (UniGloR's methods): its own stage, and for
# text-to-sign its judge's results. The first stage's result is the task's.
TASK_STAGES = {"sign2text": ("sign2text",), "text2sign": ("text2sign", "backtranslator"),
               "recognition": ("recognition",)}
# The stage of each method of a task (tables 1 and 2; config `sign2text.method`, `text2sign.method`).
METHOD_STAGES = {"sign2text": {"uniglor": "sign2text", "joint_slt": "joint_slt", "joint_slt_gloss": "joint_slt",
                               "conslt": "conslt"},
                 "text2sign": {"uniglor": "text2sign", "pt": "pt", "nslp_g": "nslp_g"}}
METHODS = ("uniglor",) + tuple(m for t in METHOD_STAGES.values() for m in t if m != "uniglor")


def method_of(cfg: ExperimentConfig | None) -> str:
    """The method a trial of `cfg` measures: a baseline named by `sign2text.method` or
    `text2sign.method` (at most one, harness/config.py), or "uniglor"."""
    if cfg is None:
        return "uniglor"
    return next((getattr(cfg, t).method for t in METHOD_STAGES if getattr(cfg, t).method != "uniglor"), "uniglor")


def method_task(method: str) -> str | None:
    """The task a baseline answers; None for uniglor (every task)."""
    return next((t for t, methods in METHOD_STAGES.items() if method in methods and method != "uniglor"), None)


def trial_tasks(cfg: ExperimentConfig | None, tasks: tuple[str, ...]) -> tuple[str, ...]:
    """The tasks a trial of `cfg` runs of an ablation's `tasks`: all of them for UniGloR, only its
    own for a baseline (UniGloR's rows are UniGloR's trials)."""
    task = method_task(method_of(cfg))
    return tasks if task is None else tuple(t for t in tasks if t == task)


def task_stages(task: str, cfg: ExperimentConfig | None = None) -> tuple[str, ...]:
    """The stages a task needs under `cfg`'s method for it (UniGloR's without a cfg)."""
    stages = TASK_STAGES[task]
    if cfg is not None and task in METHOD_STAGES:
        stages = (METHOD_STAGES[task][getattr(cfg, task).method],) + stages[1:]
    return stages
# What every trial that pretrains SignMAE runs on its pretraining, whatever its tasks: the probe
# (metrics) and figure 5.
EVERY_TRIAL = ("probe", "figure5")
FIGURES = ("figure5",)  # the stages whose output is a figure (PNGs in their cache entry), not a result
CACHE_FOLDERS = tuple(dict.fromkeys(s.cache_folder for s in STAGES.values()))


def ancestors(name: str) -> set[str]:
    out: set[str] = set()
    for need in STAGES[name].needs:
        out |= {need} | ancestors(need)
    return out


def key_inputs(name: str) -> tuple[str, ...]:
    """The upstream stages a key hashes: its needs, less those another need already depends on
    (their keys are inside that need's key)."""
    needs = STAGES[name].needs
    return tuple(n for n in needs if not any(n in ancestors(m) for m in needs if m != n))


def run_order(tasks: tuple[str, ...], cfg: ExperimentConfig | None = None) -> list[str]:
    """The stages a trial of `tasks` runs under `cfg`'s methods, each after its needs (depth first, in
    `needs` order): SignMAE's pretraining and its probe first unless only baselines run."""
    order: list[str] = []

    def visit(name: str) -> None:
        for need in STAGES[name].needs:
            visit(need)
        if name not in order:
            order.append(name)

    tasks = trial_tasks(cfg, tasks)
    if method_of(cfg) == "uniglor":
        visit("pretrain")
        for name in EVERY_TRIAL:
            visit(name)
    visit("prepare")
    for task in tasks:
        for name in task_stages(task, cfg):
            visit(name)
    return order


def stage_keys(cfg: ExperimentConfig, tasks: tuple[str, ...]) -> dict[str, str]:
    """The content key of every stage a trial of `tasks` needs."""
    keys: dict[str, str] = {}
    for name in run_order(tasks, cfg):
        stage = STAGES[name]
        keys[name] = content_key(stage.cache_folder, stage.version, stage.settings(cfg),
                                 {STAGES[n].cache_folder: keys[n] for n in key_inputs(name)})
    return keys


__all__ = ["CACHE_FOLDERS", "EVERY_TRIAL", "FIGURES", "METHODS", "METHOD_STAGES", "STAGES", "TASK_STAGES", "Stage",
           "StageContext", "cached_run", "method_of", "method_task", "run_order", "stage_keys", "task_stages",
           "trial_tasks"]
