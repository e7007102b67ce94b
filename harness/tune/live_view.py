"""The terminal view of a running study: one line per change, with each trial's stage and ETA."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ray.tune import Callback

# The stages a trial reports epochs of, in the order it runs them (for the progress fraction).
_PROGRESS_ORDER = ("pretrain", "sign2text", "backtranslator", "text2sign", "recognition")


# A baseline's trial runs only its own stage (after the judge, for production).
_BASELINE_ORDER = {"joint_slt": ("joint_slt",), "conslt": ("conslt",), "pt": ("backtranslator", "pt"),
                   "nslp_g": ("backtranslator", "nslp_g")}


def progress(stage: str, epoch: int, epochs: int, tasks: tuple[str, ...]) -> float:
    order = [s for s in _PROGRESS_ORDER
             if s == "pretrain" or s in tasks or (s == "backtranslator" and "text2sign" in tasks)]
    order = list(_BASELINE_ORDER.get(stage, order))
    if stage == "done":
        return 1.0
    if stage not in order:
        return 0.0
    return (order.index(stage) + (epoch / max(epochs, 1))) / len(order)


def trial_key(config: dict) -> str:
    """The key of a Tune trial's config: Optuna's for a search trial, the spec's for an ablation's."""
    return config["trial"]["key"] if "trial" in config else config["spec"]["key"]


def trial_failure(config: dict) -> str | None:
    """Why a trial ended without a result on purpose (a diverged stage), from its failure file."""
    from harness.results import ResultsLayout
    spec = config.get("spec", {})
    if not spec.get("results") or not spec.get("folder"):
        return None
    return ResultsLayout(Path(spec["results"])).failure(spec["folder"], trial_key(config))


class LiveView(Callback):
    """One line per change: each trial's stage, epoch and latest metric, trials done, ETA."""

    def __init__(self, total: int, tasks: tuple[str, ...], stream=None):
        self.total, self.tasks, self.stream = total, tuple(tasks), stream or sys.stdout
        self.start = time.time()
        self.state: dict[str, dict] = {}
        self.done = 0
        self.last_print = 0.0

    def on_trial_result(self, iteration, trials, trial, result, **info):
        stage = str(result.get("stage", "?"))
        epoch, epochs = int(result.get("epoch", 0) or 0), int(result.get("epochs", 0) or 0)
        metric = next(((k, v) for k, v in result.items() if isinstance(k, str) and k.startswith(stage + "/")
                       and ("dev_" in k or "loss" in k) and isinstance(v, (int, float))), None)
        key = trial_key(trial.config)
        self.state[key] = {"stage": stage, "epoch": epoch, "epochs": epochs, "metric": metric}
        now = time.time()
        # A trial's end is printed once, by on_trial_complete.
        if stage != "done" and now - self.last_print >= 2.0:
            self.last_print = now
            self._print(key)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        key = trial_key(trial.config)
        self.state[key] = {"stage": "done", "epoch": 0, "epochs": 0, "metric": None}
        failure = trial_failure(trial.config)
        if failure:  # ended, but without a result: say so rather than "finished"
            self.stream.write(f"  trial {key} stopped, not retried: {failure}\n")
            self.stream.flush()
            return
        self._print(key)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.stream.write(f"  trial {trial_key(trial.config)} FAILED; see its log under the results folder\n")
        self.stream.flush()

    @staticmethod
    def _what(s: dict) -> str:
        if s["stage"] == "done":
            return "finished"
        metric = f" {s['metric'][0].split('/')[-1]}={s['metric'][1]:.4g}" if s["metric"] else ""
        return f"{s['stage']} epoch {s['epoch']}/{s['epochs']}{metric}"

    def _print(self, key: str) -> None:
        fractions = [progress(v["stage"], v["epoch"], v["epochs"], self.tasks) for v in self.state.values()]
        done = sum(fractions) / max(self.total, 1)
        elapsed = time.time() - self.start
        eta = f"ETA {elapsed * (1 - done) / done / 60:.1f} min" if done > 0.02 else "ETA ?"
        # The trial that changed first (its end, or its epoch), then every other running trial, so a
        # concurrent trial's progress is never hidden behind the one that reported last.
        shown = [key] + [k for k, v in self.state.items() if k != key and v["stage"] != "done"]
        parts = " | ".join(f"{k}: {self._what(self.state[k])}" for k in shown)
        self.stream.write(f"[{elapsed / 60:5.1f} min] {self.done}/{self.total} trials done | {parts} | {eta}\n")
        self.stream.flush()
