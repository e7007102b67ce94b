"""Search specs, the define-by-run space, the PRUNED bookkeeping, and one real search (slow)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
import yaml

from harness import search_space as S
from harness.tune import search_results as R
from harness.config import ConfigError, apply_overrides, load_profile, parse_set

ROOT = Path(__file__).resolve().parents[1]

BASE = """\
question: test
profile: debug
metric: sign2text/dev_bleu4
mode: max
trials: 3
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def spec_of(tmp_path: Path, extra: str, **kw):
    return S.load_search(write(tmp_path, BASE + textwrap.dedent(extra)), **kw)


# ---------------------------------------------------------------------------------- loading


@pytest.mark.parametrize("name", S.available())
@pytest.mark.parametrize("profile", ["debug", "default", "paper"])
def test_shipped_search_spaces_load_for_every_profile(name, profile):
    spec, base = S.load_search(name, profile)
    assert spec.metrics[0] == "sign2text/dev_bleu4" and spec.modes[0] == "max"
    assert base.profile == profile
    text = spec.path.read_text()
    assert text.startswith("# Question:") and f"run_search.py {name}" in text
    for point in spec.enqueue:  # the paper's setting, tried first
        assert point["pretrain.window"] == 15 and point["pretrain.mask_ratio"] == 0.25


def test_shipped_files_are_what_the_task_asks():
    s2t, _ = S.load_search("sign2text")
    assert set(s2t.space) >= {"pretrain.mask_ratio", "pretrain.window", "embed.stride", "pretrain.weighting", "optim.lr"}
    assert s2t.scheduler.type == "asha" and s2t.scheduler.metric == "sign2text/dev_bleu4_greedy"
    assert s2t.scheduler.grace_period == 10 and s2t.scheduler.max_t == 40  # a quarter of 40 epochs (default)
    assert s2t.space["embed.stride"] == S.Dist("int", 1, "pretrain.window")
    pareto, _ = S.load_search("pareto")
    assert pareto.metrics == ("sign2text/dev_bleu4", "text2sign/dev_mpjpe") and pareto.modes == ("max", "min")
    assert pareto.tasks == ("sign2text", "text2sign") and pareto.multi and pareto.scheduler.type == "fifo"


def test_parses_distributions_and_yaml_1_1_exponents(tmp_path):
    spec, base = spec_of(tmp_path, """
        space:
          pretrain.window: {choice: [8, 12]}
          embed.stride: {int: [1, pretrain.window], step: 1}
          pretrain.mask_ratio: {float: [0.1, 0.8], step: 0.05}
          optim.lr: {loguniform: [1e-4, 3e-3]}
        """)
    assert spec.space == {
        "pretrain.window": S.Dist("choice", choices=(8, 12)),
        "embed.stride": S.Dist("int", 1, "pretrain.window", 1),
        "pretrain.mask_ratio": S.Dist("float", 0.1, 0.8, 0.05),
        "optim.lr": S.Dist("loguniform", 1e-4, 3e-3),  # PyYAML reads 1e-4 as a string
    }
    assert spec.scheduler.type == "fifo" and spec.startup_trials == 10 and spec.tasks == ("sign2text",)


@pytest.mark.parametrize("space, needle", [
    ("pretrain.mask_ratio: {uniform: [0.1, 0.8]}", "space.pretrain.mask_ratio: unknown distribution 'uniform'"),
    ("pretrain.mask_ratio: {float: [0.8, 0.1]}", "space.pretrain.mask_ratio: low must be < high"),
    ("pretrain.mask_ratio: {float: [0.1]}", "space.pretrain.mask_ratio: float needs [low, high]"),
    ("pretrain.mask_ratio: [0.1, 0.8]", "space.pretrain.mask_ratio must be a mapping"),
    ("pretrain.mask_ratios: {float: [0.1, 0.8]}", "space.pretrain.mask_ratios: unknown config key"),
    ("pretrain.window: {float: [8, 20]}", "pretrain.window must be an integer"),
    ("pretrain.weighting: {choice: [none, fpw, cpw]}", "pretrain.weighting must be one of"),
    ("pretrain.mask_ratio: {float: [0.1, 1.5]}", "pretrain.mask_ratio must be in [0, 1)"),
    ("optim.lr: {loguniform: [0, 0.1]}", "loguniform needs low > 0"),
    ("optim.lr: {loguniform: [1e-4, .inf]}", "space.optim.lr bounds must be a finite number, got inf"),
    ("pretrain.mask_ratio: {float: [.nan, 0.5]}", "space.pretrain.mask_ratio bounds must be a finite number, got nan"),
    ("compute.workers_per_trial: {int: [1, 2]}", "compute settings cannot be searched"),
    ("embed.stride: {int: [1, pretrain.windw]}", "bound 'pretrain.windw' is neither"),
    ("pretrain.window: {choice: [8, 12, 15, 20]}\n  embed.stride: {int: [1, 15]}",
     "space.embed.stride = 15 (other keys at their low ends) gives an invalid configuration: "
     "embed.stride must be <= pretrain.window (8), got 15"),
])
def test_bad_spaces_name_the_file_and_the_key(tmp_path, space, needle):
    path = write(tmp_path, BASE + f"space:\n  {space}\n")
    with pytest.raises(ConfigError) as err:
        S.load_search(path)
    msg = str(err.value)
    assert needle in msg and path in msg and "\n" not in msg


@pytest.mark.parametrize("extra, needle", [
    ("metric: sign2text/test_bleu4\n", "optimize a dev metric (e.g. sign2text/dev_bleu4), never the test set"),
    ("mode: min\n", "metric sign2text/dev_bleu4 is better when higher: mode must be max"),
    ("metric: [sign2text/dev_bleu4, text2sign/dev_mpjpe]\nmode: [max]\n", "mode needs one entry per metric"),
    ("scheduler: {type: hyperband}\n", "scheduler.type must be asha or fifo"),
    ("scheduler: {type: asha, reduction_factor: .nan}\n", "scheduler.reduction_factor must be a finite number, got nan"),
    ("scheduler: {type: asha, time_attr: time_total_s}\n", "scheduler.time_attr must be epoch"),
    ("scheduler: {type: asha, grace_period: 50}\n", "scheduler.grace_period (50) exceeds sign2text.epochs"),
    ("scheduler: {type: asha, metric: text2sign/train_loss}\n", "belongs to the text2sign stage"),
    ("enqueue: [{pretrain.window: 9}]\n", "enqueue[0].pretrain.window must be one of [8, 12]"),
    ("enqueue: [{pretrain.window: 8, embed.stride: 9}]\n", "enqueue[0].embed.stride must be in [1, 8], got 9"),
    ("enqueue: [{pretrain.depth: 2}]\n", "enqueue[0].pretrain.depth is not a key of the space"),
    ("colour: red\n", "unknown key colour"),
])
def test_bad_specs_are_one_line_errors(tmp_path, extra, needle):
    text = BASE + extra + "space:\n  pretrain.window: {choice: [8, 12]}\n  embed.stride: {int: [1, pretrain.window]}\n"
    lines = {}
    for line in text.splitlines():  # later keys replace earlier ones (metric, mode)
        lines[line.split(":")[0]] = line
    path = write(tmp_path, "\n".join(lines.values()) + "\n")
    with pytest.raises(ConfigError) as err:
        S.load_search(path)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_cli_overrides_apply_to_the_base_but_may_not_touch_searched_keys(tmp_path):
    extra = "overrides: {sign2text.epochs: 5}\nspace:\n  pretrain.mask_ratio: {float: [0.1, 0.8]}\n"
    spec, base = spec_of(tmp_path, extra, cli_overrides={"pretrain.epochs": 2})
    assert (base.sign2text.epochs, base.pretrain.epochs) == (5, 2)
    with pytest.raises(ConfigError, match="--set pretrain.mask_ratio: the key is searched by"):
        spec_of(tmp_path, extra, cli_overrides={"pretrain.mask_ratio": 0.3})


def test_grace_period_fraction_follows_the_profile(tmp_path):
    extra = "scheduler: {type: asha, grace_period: 0.25}\nspace:\n  pretrain.mask_ratio: {float: [0.1, 0.8]}\n"
    spec, _ = spec_of(tmp_path, extra, cli_overrides={"sign2text.epochs": 12})
    assert (spec.scheduler.grace_period, spec.scheduler.max_t, spec.scheduler.mode) == (3, 12, "max")


def test_asha_rungs_skip_the_last_epoch():
    from harness.tune.optuna_adapter import make_scheduler

    s2t, _ = S.load_search("sign2text")  # 40 epochs, grace 10, factor 2: compare at 10 and 20, not at 40
    asha = make_scheduler(s2t.scheduler)
    assert [m for m, _ in asha._brackets[0]._rungs] == [20, 10]
    assert (asha._time_attr, asha._metric, asha._mode) == (S.EPOCH_KEY, S.VALUE_KEY, "max")
    assert type(make_scheduler(S.SchedulerSpec("fifo"))).__name__ == "FIFOScheduler"


# ---------------------------------------------------------------------------------- the space in Optuna


def test_define_by_run_keeps_stride_within_window_and_uses_enqueued_points(tmp_path):
    spec, base = spec_of(tmp_path, """
        space:
          pretrain.window: {choice: [8, 12, 15, 20]}
          embed.stride: {int: [1, pretrain.window]}
          pretrain.weighting: {choice: [none, fpw, apw]}
          optim.lr: {loguniform: [1.0e-4, 3.0e-3]}
        """)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"pretrain.window": 15, "embed.stride": 7, "pretrain.weighting": "apw", "optim.lr": 1e-3})
    space = S.DefineByRun(spec.space, spec.fixed)
    strides = []
    for i in range(40):
        trial = study.ask()
        out = space(trial)
        assert out == {"trial": {"number": i, "key": f"trial{i:04d}"}}
        assert trial.user_attrs[S.KEY_ATTR] == f"trial{i:04d}"
        p = trial.params
        assert list(p) == list(spec.space) and 1 <= p["embed.stride"] <= p["pretrain.window"]
        apply_overrides(base, p)  # every sample is a valid config
        strides.append(p["embed.stride"])
        study.tell(trial, 0.0)
    assert study.trials[0].params == {"pretrain.window": 15, "embed.stride": 7, "pretrain.weighting": "apw",
                                      "optim.lr": 1e-3}
    assert max(strides) > 8  # the range follows the window, not the smallest window


def test_tune_fields_carry_objectives_and_the_scheduler_metric_in_every_report():
    nan_keys = lambda d: sorted(k for k, v in d.items() if isinstance(v, float) and math.isnan(v))  # noqa: E731
    metrics, epoch_metric = ("sign2text/dev_bleu4",), "sign2text/dev_bleu4_greedy"
    pre = S.tune_fields({"stage": "pretrain", "epoch": 1, "pretrain/train_loss": 0.5}, metrics, epoch_metric)
    assert nan_keys(pre) == ["objective/sign2text/dev_bleu4", "search/value"] and S.EPOCH_KEY not in pre
    no_eval = S.tune_fields({"stage": "sign2text", "epoch": 3, "sign2text/train_loss": 2.0}, metrics, epoch_metric)
    assert S.EPOCH_KEY not in no_eval and math.isnan(no_eval[S.VALUE_KEY])
    ev = S.tune_fields({"stage": "sign2text", "epoch": 5, "sign2text/dev_bleu4_greedy": 3.5}, metrics, epoch_metric)
    assert ev[S.VALUE_KEY] == 3.5 and ev[S.EPOCH_KEY] == 5 and math.isnan(ev["objective/sign2text/dev_bleu4"])
    final = S.tune_fields({"stage": "done", "done": 1, "sign2text/dev_bleu4": 4.25, "sign2text/test_bleu4": 9.0},
                          metrics, epoch_metric)
    assert final["objective/sign2text/dev_bleu4"] == 4.25 and S.EPOCH_KEY not in final
    both = S.tune_fields({"stage": "done", "sign2text/dev_bleu4": 1.0}, ("sign2text/dev_bleu4", "text2sign/dev_mpjpe"), "")
    assert both["objective/sign2text/dev_bleu4"] == 1.0 and math.isnan(both["objective/text2sign/dev_mpjpe"])


def test_stopped_trials_are_pruned_in_the_study(tmp_path):
    """The installed OptunaSearch tells COMPLETE for a trial the scheduler stopped; ours tells PRUNED,
    keeps intermediate values per epoch of the scheduler's stage, and FAILs errors."""
    from ray.tune.search.optuna import OptunaSearch

    from harness.tune.optuna_adapter import PruneAwareOptunaSearch, counted, recover_interrupted

    spec, _ = spec_of(tmp_path, "space:\n  pretrain.mask_ratio: {float: [0.1, 0.8]}\n")
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")

    def searcher(cls, name, **kw):
        return cls(space=S.DefineByRun(spec.space, spec.fixed), metric="objective/sign2text/dev_bleu4", mode="max",
                   sampler=optuna.samplers.RandomSampler(seed=0), study_name=name, storage=storage, **kw)

    stopped = {"stage": "sign2text", "epoch": 2, "done": True, "objective/sign2text/dev_bleu4": 1.5}
    ray_own = searcher(OptunaSearch, "ray")
    ray_own.suggest("x")
    ray_own.on_trial_complete("x", result=stopped)
    assert optuna.load_study(study_name="ray", storage=storage).trials[0].state.name == "COMPLETE"  # what we fix

    ours = searcher(PruneAwareOptunaSearch, "ours")
    for tid in "abcd":
        assert ours.suggest(tid)["trial"]["key"] == f"trial{'abcd'.index(tid):04d}"
    ours.on_trial_result("a", {"stage": "pretrain", S.VALUE_KEY: float("nan"), "training_iteration": 1})
    ours.on_trial_result("a", {"stage": "sign2text", S.EPOCH_KEY: 1, S.VALUE_KEY: 0.5, "training_iteration": 2})
    ours.on_trial_result("a", {"stage": "sign2text", S.EPOCH_KEY: 2, S.VALUE_KEY: 1.5, "training_iteration": 3})
    ours.on_trial_complete("a", result=stopped)
    ours.on_trial_complete("b", result={"stage": "done", "done": True, "objective/sign2text/dev_bleu4": 7.0})
    ours.on_trial_complete("c", error=True)
    ours.on_trial_complete("d", result={"stage": "pretrain", "epoch": 1})  # experiment ended under it
    study = optuna.load_study(study_name="ours", storage=storage)
    a, b, c, d = study.trials
    assert (a.state.name, a.intermediate_values, a.value) == ("PRUNED", {1: 0.5, 2: 1.5}, 1.5)
    assert (b.state.name, b.value) == ("COMPLETE", 7.0)
    assert c.state.name == "FAIL" and d.state.name == "RUNNING"
    assert [t.number for t in counted(study)] == [0, 1, 2]

    assert recover_interrupted(study) == ["trial0003"]  # FAIL (interrupted) + its parameters again
    assert study.trials[3].state.name == "FAIL" and study.trials[3].user_attrs[S.INTERRUPTED_ATTR]
    assert [t.number for t in counted(study)] == [0, 1, 2]
    again = searcher(PruneAwareOptunaSearch, "ours")
    config = again.suggest("e")
    assert config["trial"] == {"number": 4, "key": "trial0003"}  # same key: its MLflow run and checkpoint
    assert config["pretrain.mask_ratio"] == d.params["pretrain.mask_ratio"]


def test_study_is_persistent_and_refuses_other_settings(tmp_path):
    from harness.folder_lock import hold
    from harness.tune.optuna_adapter import open_study

    extra = "enqueue: [{pretrain.window: 8}]\nspace:\n  pretrain.window: {choice: [8, 12]}\n"
    spec, base = spec_of(tmp_path, extra)
    folder = tmp_path / "search"
    study = open_study(spec, folder, S.fingerprint(spec, base))
    assert [t.state.name for t in study.trials] == ["WAITING"] and study.metric_names == ["sign2text/dev_bleu4"]
    again = open_study(spec, folder, S.fingerprint(spec, base))
    assert len(again.trials) == 1  # the enqueued point is not enqueued twice
    other, other_base = spec_of(tmp_path, extra, cli_overrides={"seed": 7})
    with pytest.raises(ConfigError, match="holds study search-s made with other settings"):
        open_study(other, folder, S.fingerprint(other, other_base))
    with hold(folder, command="run_search.py s"):
        with pytest.raises(ConfigError, match=rf"{folder} is in use by pid {os.getpid()} on .* since .*run_search.py s"):
            with hold(folder):
                pass
    assert not (folder / ".lock").exists()  # released


def test_pareto_front_files_and_trial_runs(tmp_path):
    """finalize() on a hand-made two-objective study: best.yaml is an ablation's variants (the
    Pareto-optimal trials only), the plots exist, a pruned trial's MLflow run ends KILLED."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from harness import tracking
    from harness.tune.optuna_adapter import open_study
    from harness.tune.search_results import finalize

    spec, base = S.load_search(write(tmp_path, """\
        question: test
        profile: debug
        metric: [sign2text/dev_bleu4, text2sign/dev_mpjpe]
        mode: [max, min]
        trials: 4
        space:
          pretrain.window: {choice: [8, 12]}
          pretrain.mask_ratio: {float: [0.1, 0.8]}
        """))
    folder = tmp_path / "search"
    study = open_study(spec, folder, S.fingerprint(spec, base))
    dists = {"pretrain.window": CategoricalDistribution([8, 12]), "pretrain.mask_ratio": FloatDistribution(0.1, 0.8)}
    for i, (w, m, values, state) in enumerate([(8, 0.2, [3.0, 0.5], "COMPLETE"), (12, 0.3, [2.0, 0.4], "COMPLETE"),
                                               (8, 0.5, [1.0, 0.6], "COMPLETE"), (12, 0.7, None, "PRUNED")]):
        study.add_trial(optuna.trial.create_trial(
            params={"pretrain.window": w, "pretrain.mask_ratio": m}, distributions=dists, values=values,
            state=getattr(optuna.trial.TrialState, state), user_attrs={S.KEY_ATTR: S.trial_key(i)}))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exp = tracking.ensure_experiment(uri, "search-s", str(tmp_path / "art"))
    parent = tracking.start_parent(uri, exp, "p")
    pruned_run = tracking.trial_run(uri, exp, parent, "trial0003", "trial0003")
    summary = finalize(spec, base, study, folder, uri, exp, parent, say=lambda s: None)
    assert (summary["complete"], summary["pruned"]) == (3, 1)
    assert [p["trial"] for p in summary["pareto"]] == ["trial0000", "trial0001"]  # trial 2 is dominated
    front = yaml.safe_load((folder / "best.yaml").read_text())
    assert front == {"trial0000": {"pretrain.window": 8, "pretrain.mask_ratio": 0.2},
                     "trial0001": {"pretrain.window": 12, "pretrain.mask_ratio": 0.3}}
    for name in ("pareto_front.png", "history_sign2text_dev_bleu4.png", "importances_text2sign_dev_mpjpe.png",
                 "trials.csv"):
        assert (folder / name).stat().st_size > 100
    from mlflow import MlflowClient
    run = MlflowClient(tracking_uri=uri).get_run(pruned_run)
    assert run.info.status == "KILLED" and run.data.tags["optuna.state"] == "PRUNED"


def test_best_overrides_round_trip_through_set_and_yaml(tmp_path):
    epochs = load_profile("debug").pretrain.epochs + 1
    spec, base = spec_of(tmp_path, "space:\n  optim.lr: {loguniform: [1.0e-6, 3.0e-3]}\n  pretrain.window: {choice: [8, 12]}\n",
                         cli_overrides={"pretrain.epochs": epochs, "sign2text.epochs": load_profile("debug").sign2text.epochs})
    over = R.best_overrides({"optim.lr": 1e-5, "pretrain.window": 8}, base)
    # sampled keys first, then what the search fixed; nothing that equals the profile
    assert over == {"optim.lr": 1e-5, "pretrain.window": 8, "pretrain.epochs": epochs}
    assert R.yaml_scalar(1e-5) == "1.0e-05" and R.yaml_scalar("none") == "none"
    args = R.set_args(over)
    assert args == f"--set optim.lr=1.0e-05 --set pretrain.window=8 --set pretrain.epochs={epochs}"
    assert parse_set([a for a in args.split() if a != "--set"]) == over
    R.write_best_yaml(tmp_path / "best.yaml", ["header"], over)
    assert yaml.safe_load((tmp_path / "best.yaml").read_text()) == over
    R.write_best_yaml(tmp_path / "front.yaml", ["front"], [("trial0001", "a = 1", over), ("trial0002", "a = 2", {})])
    assert yaml.safe_load((tmp_path / "front.yaml").read_text()) == {"trial0001": over, "trial0002": None}


def test_cli_errors_are_one_line(tmp_path, capsys):
    from harness.cli import run_cli
    from harness.run_search import main

    assert run_cli(main, ["nosuch", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown search 'nosuch'; available: pareto, sign2text") and err.count("\n") == 1
    bad = write(tmp_path, BASE + "space:\n  pretrain.mask_ratio: {float: [0.1, 0.8]}\n")
    assert run_cli(main, [bad, "--set", "pretrain.mask_ratio=0.3", "--dry-run"]) == 2
    assert capsys.readouterr().err.startswith("error: --set pretrain.mask_ratio: the key is searched by")
    assert run_cli(main, [bad, "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["space"]["pretrain.mask_ratio"]["low"] == 0.1


# ---------------------------------------------------------------------------------- a real search

SLOW_SPEC = """\
# A tiny search for tests/test_search.py: two learning rates that learn, one that cannot (1e-7),
# tried first; ASHA prunes on the sign-to-text train loss (BLEU-4 of a two-minute model is 0 for all).
question: does the harness prune the trial that cannot learn?
profile: debug
metric: sign2text/dev_bleu4
mode: max
trials: 3
max_concurrent: 2
scheduler: {type: asha, metric: sign2text/train_loss, grace_period: 1, reduction_factor: 2}
enqueue:
  - {optim.lr: 3.0e-3, pretrain.window: 8}
  - {optim.lr: 2.0e-3, pretrain.window: 8}
  - {optim.lr: 1.0e-7, pretrain.window: 8}
space:
  pretrain.window: {choice: [8, 10]}
  embed.stride: {int: [2, pretrain.window]}
  optim.lr: {loguniform: [1.0e-7, 3.0e-3]}
"""


@pytest.mark.slow
@pytest.mark.timeout(1000)  # about 3 min on 2 free cores; far longer when other jobs share them
def test_a_real_search_prunes_records_and_reuses(tmp_path, capsys):
    """3 trials, 2 at a time: the two that learn start together, the one that cannot follows and is
    compared with them at sign2text epoch 1 (ASHA rungs at epochs 1 and 2 of 4)."""
    from mlflow import MlflowClient

    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(SLOW_SPEC)
    results = tmp_path / "results"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "harness" / "run_search.py"), str(spec_file), "--results", str(results),
           "--set", "pretrain.epochs=1", "--set", "sign2text.epochs=4", "--set", "compute.torch_threads=1",
           "--json"]
    t0 = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    seconds = time.time() - t0
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    with capsys.disabled():
        print(f"\nsearch of 3 trials: {seconds:.0f} s; {summary['complete']} complete, {summary['pruned']} pruned")

    folder = results / "search" / "tiny"
    study = optuna.load_study(study_name="search-tiny", storage=f"sqlite:///{folder / 'optuna.db'}")
    trials = study.get_trials()
    assert len(trials) == 3 and {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    by_lr = {t.params["optim.lr"]: t for t in trials}
    assert by_lr[1e-7].state.name == "PRUNED"  # it cannot learn: ASHA stopped it, Optuna knows
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert complete and summary["complete"] == len(complete) and summary["pruned"] == 3 - len(complete)
    for t in complete:  # the objective is the final beam-search dev BLEU-4 the trial wrote
        result = json.loads((folder / "trials" / f"{t.user_attrs[S.KEY_ATTR]}.json").read_text())
        assert t.value == pytest.approx(result["sign2text"]["dev"]["metrics"]["bleu4"])

    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert best["optim.lr"] == study.best_trial.params["optim.lr"]
    assert best.get("pretrain.epochs", load_profile("debug").pretrain.epochs) == 1  # the --set is kept
    apply_overrides(load_profile("debug"), best)  # valid overrides of the profile
    assert summary["command"].startswith("python harness/run_ablation.py ") and "--profile debug" in summary["command"]
    assert (folder / "history.png").stat().st_size > 1000

    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    exp = client.get_experiment_by_name("search-tiny")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("harness.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 3
    state_of = {t.user_attrs[S.KEY_ATTR]: t.state.name for t in trials}
    assert {r.data.tags["harness.trial_key"]: r.data.tags["optuna.state"] for r in children} == state_of
    for r in children:
        assert r.info.status == {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}[r.data.tags["optuna.state"]]
        assert r.data.params["optim.lr"] == str(by_lr[float(r.data.params["optim.lr"])].params["optim.lr"])
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"best.yaml", "history.png", "trials.json"} <= artifacts

    # --resume with nothing left (in this process: it starts no Ray): the same parent, no new runs.
    from harness.cli import run_cli
    from harness.run_search import main
    capsys.readouterr()
    assert run_cli(main, cmd[2:] + ["--resume"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["parent_run_id"] == parents[0].info.run_id
    assert len(client.search_runs([exp.experiment_id], max_results=100)) == len(runs)
    assert len(optuna.load_study(study_name="search-tiny", storage=f"sqlite:///{folder / 'optuna.db'}").trials) == 3
