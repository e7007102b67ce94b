"""One writer per study folder, nothing finished ever deleted, `--resume` after the folder moved,
and a diverged trial that is not retried.

The lock and state tests run the real CLI (or the real Invocation against a real SQLite MLflow
store) and fail before Ray starts; the two end-to-end tests run real debug trials.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.config import ConfigError
from harness.folder_lock import hold
from harness.tracking import default_tracking_uri
from harness.tune.invocation import Invocation
from test_multinode import TINY, driver_env, runs_of

ROOT = Path(__file__).resolve().parents[1]
HOST = socket.gethostname()


def cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "harness/run_ablation.py", *args], cwd=ROOT, env=driver_env(),
                          capture_output=True, text=True, timeout=timeout)


def main_of(capsys, *args: str) -> tuple[int, str, str]:
    """run_ablation.py's main in this process (what the command prints, without an interpreter start)."""
    from harness import run_ablation
    from harness.cli import run_cli
    code = run_cli(run_ablation.main, list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# A quick failure after the lock is taken: a window longer than the corpus's shortest sequence is
# refused by the driver's data check, before any trial or MLflow run.
FAILS_AFTER_LOCK = ["--set", "pretrain.window=200", "--set", "data.synth.train=8", "--set", "data.synth.dev=4",
                    "--set", "data.synth.test=4"]


def test_a_second_invocation_on_a_folder_in_use_is_refused_naming_the_holder(tmp_path, capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from harness.folder_lock import hold\n"
         f"with hold(__import__('pathlib').Path({str(tmp_path / 'window')!r}), command='run_ablation.py window'):\n"
         "    print('held', flush=True); time.sleep(60)"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = main_of(capsys, "window", "--profile", "debug", "--results", str(tmp_path), *FAILS_AFTER_LOCK)
        assert code == 2, err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith(f"error: {tmp_path / 'window'} is in use by pid {holder.pid} on {HOST} since 20")
        assert "(run_ablation.py window)" in err and "pass another --results" in err
        assert not (tmp_path / "window" / "state.json").exists()  # nothing written by the second one
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_killed_driver_is_taken_over_and_released_on_error(tmp_path, capsys):
    folder = tmp_path / "window"
    folder.mkdir()
    pid = dead_pid()
    (folder / ".lock").write_text(json.dumps({"pid": pid, "host": HOST, "since": "2026-01-01T00:00:00Z"}))
    code, out, err = main_of(capsys, "window", "--profile", "debug", "--results", str(tmp_path), *FAILS_AFTER_LOCK)
    assert code == 2, out + err
    said = out + err
    assert (f"taking over the lock {folder / '.lock'} of pid {pid} on {HOST} since 2026-01-01T00:00:00Z: "
            f"that process is not running") in said
    assert "pretrain.window (200) is longer than the shortest" in err and "Traceback" not in err
    assert not (folder / ".lock").exists()  # released although the run failed


def test_a_lock_from_another_host_is_not_taken_over(tmp_path, capsys):
    folder = tmp_path / "window"
    folder.mkdir()
    (folder / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere", "since": "2026-01-01T00:00:00Z"}))
    code, _, err = main_of(capsys, "window", "--profile", "debug", "--results", str(tmp_path), *FAILS_AFTER_LOCK)
    assert code == 2 and err.count("\n") == 1, err
    assert "names pid 1 on elsewhere since 2026-01-01T00:00:00Z, which cannot be checked from" in err
    assert (folder / ".lock").exists()  # left for the user to judge


def test_the_lock_is_released_on_ctrl_c(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with hold(tmp_path, command="x"):
            assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
            raise KeyboardInterrupt
    assert not (tmp_path / ".lock").exists()
    with hold(tmp_path):  # and can be taken again at once
        pass


def _invocation(results: Path) -> Invocation:
    return Invocation("apw", "ablation-apw", results, default_tracking_uri(results), __import__(
        "harness.storage", fromlist=["NO_REMOTE"]).NO_REMOTE, say=lambda s: None)


def test_resume_matches_after_the_folder_moved_and_logs_inside_the_new_one(tmp_path):
    from mlflow import MlflowClient
    first = _invocation(tmp_path / "a")
    first.read_state()
    first.start(False, tags={})
    first.write_state(ablation="apw", command="run_ablation.py apw", trials=["x"], config_keys={"x": "k1"})
    state = json.loads(first.state_path.read_text())
    assert state["tracking_uri"] == "sqlite:///{results}/mlflow.db"  # relative to the folder

    shutil.move(tmp_path / "a", tmp_path / "b")
    moved = _invocation(tmp_path / "b")
    moved.read_state()
    moved.check_resumable("apw", {"x": "k1"})
    assert moved.start(True, tags={}) is True and moved.parent == first.parent
    run = MlflowClient(moved.tracking_uri).get_run(moved.parent)
    assert run.info.artifact_uri.removeprefix("file://").startswith(f"{tmp_path / 'b'}/mlartifacts/")
    from harness import tracking
    tracking.log_text(moved.tracking_uri, moved.parent, "x", "probe.txt")
    assert not (tmp_path / "a").exists()  # nothing was written at the old place

    with pytest.raises(ConfigError, match=r"with other settings \(trial x has other settings\); resume with "
                                          r"the same flags"):
        moved.check_resumable("apw", {"x": "k2"})
    with pytest.raises(ConfigError, match=r"with other settings \(trials x, y planned by one, not the other\)"):
        moved.check_resumable("apw", {"y": "k1"})
    other = Invocation("apw", "ablation-apw", tmp_path / "b", "sqlite:///" + str(tmp_path / "other.db"),
                       moved.remote, say=lambda s: None)
    other.read_state()
    with pytest.raises(ConfigError, match=r"logged to sqlite:///.*/b/mlflow.db, not sqlite:///.*other.db; pass "
                                          r"--tracking-uri"):
        other.check_resumable("apw", {"x": "k1"})


@pytest.mark.parametrize("state, message", [
    (None, "error: nothing to resume: {state} does not exist (run without --resume first)"),
    ("{not json", "error: {state}: not a readable state file (JSON written by run_ablation.py / run_search.py); "
                  "move it away to start afresh"),
    ('{"parent_run_id": "p", "ablation": "apw"}', "error: --resume: {state} is the state of ablation 'apw', not 'stride'"),
    ('{"parent_run_id": "p", "ablation": "stride", "tracking_uri": "x", "config_keys": {"s7-seed0": "0"}, '
     '"command": "run_ablation.py stride --seeds 1"}',
     "error: --resume: {state} was written by `run_ablation.py stride --seeds 1`, with other settings "
     "(trial s7-seed0 has other settings)"),
])
def test_resume_refuses_a_state_it_cannot_match(tmp_path, state, message, capsys):
    path = tmp_path / "stride" / "state.json"
    if state is not None:
        path.parent.mkdir()
        path.write_text(state)
    code, out, err = main_of(capsys, "stride", "--only", "s7", "--profile", "debug", "--results", str(tmp_path),
                             "--resume")
    assert code == 2, out + err
    assert err.startswith(message.format(state=path)), err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.slow
def test_finished_results_survive_a_move_a_resume_and_a_fresh_run(tmp_path):
    first_dir, moved = tmp_path / "first", tmp_path / "moved"
    args = ["stride", "--only", "s7", "--profile", "debug", *TINY]
    out = cli(*args, "--results", str(first_dir), timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = (first_dir / "stride" / "trials" / "s7-seed0.json").read_text()
    table = (first_dir / "stride" / "table.csv").read_text()
    shutil.move(first_dir, moved)

    out = cli(*args, "--results", str(moved), "--resume", timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "resuming stride" in out.stdout and "1 of 1 trials already finished; running 0" in out.stdout
    assert (moved / "stride" / "trials" / "s7-seed0.json").read_text() == result  # not rerun
    assert not first_dir.exists()  # nothing written at the old place
    parents, children = runs_of(f"sqlite:///{moved / 'mlflow.db'}", "stride")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and len(children) == 1

    out = cli(*args, "--results", str(moved), timeout=900)  # fresh, on the used folder
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    earlier = list((moved / "stride" / "earlier").iterdir())
    assert len(earlier) == 1 and f"kept the earlier invocation's 1 finished trial result(s) and table in {earlier[0]}" \
        in out.stdout
    assert (earlier[0] / "trials" / "s7-seed0.json").read_text() == result  # kept, byte for byte
    assert (earlier[0] / "table.csv").read_text() == table
    assert (moved / "stride" / "table.csv").read_text() == table  # recomputed from the cache: the same numbers
    assert not (moved / "stride" / ".lock").exists()


@pytest.mark.slow
def test_a_diverged_trial_is_not_retried_and_named_in_one_line(tmp_path):
    started = time.time()
    out = cli("stride", "--only", "s7", "--profile", "debug", "--results", str(tmp_path), *TINY,
              "--set", "optim.lr=1e30", timeout=900)
    assert out.returncode == 2, out.stdout[-3000:] + out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out.stderr
    assert errors[0].startswith("error: trial s7-seed0 stopped, not retried: pretrain: the training ")
    assert " in epoch 1/2; the learning rate is the likely cause: lower optim.lr (now 1e+30)" in errors[0]
    assert "Traceback" not in out.stderr
    assert "  trial s7-seed0 stopped, not retried: pretrain: the training " in out.stdout  # the live view
    log = (tmp_path / "stride" / "trials" / "s7-seed0" / "worker0.log").read_text()
    assert log.count("trial s7-seed0: rank 0/1") == 1, log  # one attempt: Tune did not retry it
    parents, children = runs_of(f"sqlite:///{tmp_path / 'mlflow.db'}", "stride")
    assert [r.info.status for r in parents] == ["FAILED"] and [r.info.status for r in children] == ["FAILED"]
    assert not (tmp_path / "stride" / "trials" / "s7-seed0.json").exists()
    assert time.time() - started < 600


def test_a_table_with_a_diverged_trial_is_labelled_partial_and_names_the_cause(tmp_path):
    """The driver's last step on real files and a real MLflow store: one trial finished, the other
    left the failure file a diverged worker writes (no result)."""
    from mlflow import MlflowClient

    from harness.ablation import load_ablation
    from harness.results import ResultsLayout, SplitResult, TaskResult, TrialResult, config_key
    from harness.tune import ablation as tune_ablation

    spec = load_ablation("stride")
    trials = tune_ablation.plan_trials(spec, "debug", 1, {}, {}, ["s1", "s7"])
    inv = _invocation(tmp_path)
    inv.name = "stride"
    inv.experiment = "ablation-stride"
    inv.read_state()
    inv.start(False, tags={})
    refs = ["der regen kommt", "im norden sonne"]
    split = SplitResult({"bleu1": 30.0, "bleu2": 20.0, "bleu3": 15.0, "bleu4": 10.0, "rouge": 25.0}, refs, refs)
    done = trials[0]
    TrialResult(tasks={"sign2text": TaskResult(split, split)}, pretrain_metrics={}, stages={}, stage_seconds={},
                seconds=1.0, key=done.key, variant=done.variant, seed=0, config_key=config_key(done.cfg)
                ).write(inv.layout.trial_result("stride", done.key))
    why = ("pretrain: the training loss became nan in epoch 1/2; the learning rate is the likely cause: lower "
           "optim.lr (now 1e+30); nothing of pretrain was cached")
    failure = ResultsLayout(tmp_path).trial_failure("stride", trials[1].key)
    failure.parent.mkdir(parents=True)
    failure.write_text(json.dumps({"trial": trials[1].key, "error": why}))

    table = tune_ablation._table(spec, trials, inv)
    assert table["missing"] == ["s7-seed0"] and table["failed"] == {"s7-seed0": why}
    md = (tmp_path / "stride" / "table.md").read_text()
    assert md.startswith("# stride: ") and "[PARTIAL: 1 of 2 trials missing]" in md.splitlines()[0]
    assert f"**Partial table: trial(s) s7-seed0 did not finish; s7-seed0: {why}.**" in md
    assert MlflowClient(inv.tracking_uri).get_run(inv.parent).info.status == "FAILED"


@pytest.mark.parametrize("invocation", ["20261202-063000", "../../outside", None])
def test_a_fresh_run_moves_finished_results_into_earlier_and_deletes_nothing(tmp_path, invocation):
    from harness.tune.ablation import _keep_earlier
    inv = _invocation(tmp_path / "results")
    folder = tmp_path / "results" / "apw"
    (folder / "trials").mkdir(parents=True)
    (folder / "trials" / "apw-seed0.json").write_text('{"done": 1}')
    (folder / "trials" / "other-seed0.json").write_text('{"done": 2}')  # not planned now: left where it is
    (folder / "table.md").write_text("# table")
    said = []
    inv.say = said.append
    _keep_earlier(inv, "apw", ["apw-seed0", "fpw-seed0"], {"invocation": invocation} if invocation else {})
    (earlier,) = (folder / "earlier").iterdir()
    if invocation == "20261202-063000":
        assert earlier.name == invocation
    else:  # a label that is not a plain name is not used as a path
        assert earlier.name[:2] == "20" and "outside" not in earlier.name
    assert (earlier / "trials" / "apw-seed0.json").read_text() == '{"done": 1}'
    assert (earlier / "table.md").read_text() == "# table"
    assert not (folder / "trials" / "apw-seed0.json").exists() and not (folder / "table.md").exists()
    assert (folder / "trials" / "other-seed0.json").read_text() == '{"done": 2}'
    assert not (tmp_path / "outside").exists()
    assert said == [f"kept the earlier invocation's 1 finished trial result(s) and table in {earlier}: this run "
                    f"recomputes them (cached stages load); `--resume` continues that invocation instead"]
