"""The stages of one trial and their graph (paper sections 3.2-3.4, appendix B).

    prepare -> pretrain (SignMAE) -> probe (k-NN of z on the corpus's own glosses; every trial)
    isolated (the unseen isolated signs), pretrain -> figure5 (a t-SNE of z of unseen signs,
        zero-shot; section 5, figure 5; every trial)
    prepare -> pretrain -> embed (sliding windows, embed.stride) -> sign2text
    prepare -> backtranslator (the text-to-sign judge)
    pretrain -> embed_t2s (stride = window) -> text2sign (+ the frozen decoder and the judge)
    isolated, pretrain -> recognition (section 5, table 3)

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
from harness.stages.text2sign import TEXT2SIGN
from harness.stages.translate import BACKTRANSLATOR, SIGN2TEXT

STAGES: dict[str, Stage] = {s.name: s for s in (PREPARE, PRETRAIN, PROBE, EMBED, SIGN2TEXT, BACKTRANSLATOR, EMBED_T2S,
                                                 TEXT2SIGN, ISOLATED, RECOGNITION, FIGURE5)}
# What each task of an ablation needs computed: its own stage, and for text-to-sign its judge's results.
TASK_STAGES = {"sign2text": ("sign2text",), "text2sign": ("text2sign", "backtranslator"),
               "recognition": ("recognition",)}
# What every trial runs on its pretraining, whatever its tasks: the probe (metrics) and figure 5.
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


def run_order(tasks: tuple[str, ...]) -> list[str]:
    """The stages a trial of `tasks` runs, each after its needs (depth first, in `needs` order)."""
    order: list[str] = []

    def visit(name: str) -> None:
        for need in STAGES[name].needs:
            visit(need)
        if name not in order:
            order.append(name)

    visit("pretrain")
    for name in EVERY_TRIAL:
        visit(name)
    for task in tasks:
        for name in TASK_STAGES[task]:
            visit(name)
    return order


def stage_keys(cfg: ExperimentConfig, tasks: tuple[str, ...]) -> dict[str, str]:
    """The content key of every stage a trial of `tasks` needs."""
    keys: dict[str, str] = {}
    for name in run_order(tasks):
        stage = STAGES[name]
        keys[name] = content_key(stage.cache_folder, stage.version, stage.settings(cfg),
                                 {STAGES[n].cache_folder: keys[n] for n in key_inputs(name)})
    return keys


__all__ = ["CACHE_FOLDERS", "EVERY_TRIAL", "FIGURES", "STAGES", "TASK_STAGES", "Stage", "StageContext", "cached_run",
           "run_order", "stage_keys"]
