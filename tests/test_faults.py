"""Faults: what a study does when machines, the tracking server, the cache or
the disk misbehave. Each fault is injected for real where that is cheap enough for CI:

- a worker node killed mid-trial (ray.cluster_utils.Cluster.remove_node): the trial resumes from
  its last per-epoch checkpoint on the surviving node; the study completes, one FINISHED run;
- the driver killed with SIGKILL mid-study, then `--resume`: only the missing trial runs, the
  finished trial's result file is untouched, one run per trial, none left RUNNING;
- the MLflow server lost mid-run: training and checkpoints go on, what could not be logged waits
  in the trial's pending file, the driver ends with one warning line (no traceback), and
  `--resume` with the server back logs it all;
- a truncated cache entry or Train checkpoint: detected by its hash, recomputed, never loaded;
- a full disk during a cache commit, an unwritable results folder: a clear error, nothing
  half-written taken for complete.

(The tracking server unreachable at start is tests/test_ablation_cli.py's.)
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness.cache import StageCache
from harness.io import load_torch
from test_multinode import (ROOT, TINY, alive, driver_command, driver_env, local_cluster, read_csv, runs_of,
                            start_mlflow_server, stop_process_group, trial_results)


def sqlite_uri(results: Path) -> str:
    return f"sqlite:///{results / 'mlflow.db'}"


def wait_for(predicate, proc: subprocess.Popen, timeout_s: float = 600.0, poll_s: float = 0.2):
    """Poll predicate() until it returns something truthy (returned) or proc exits (None)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline and proc.poll() is None:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    return None


def read(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


# --------------------------------------------------------------------------------------------
# A worker node killed mid-trial
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_worker_node_killed_mid_trial_resumes_from_its_checkpoint(tmp_path):
    results = tmp_path / "results"
    log = results / "stride" / "trials" / "s7-seed0" / "worker0.log"
    # A head without CPUs (nothing of the study runs there, as on a real cluster) and two worker
    # nodes of 2 CPUs: after one is killed, the other still fits the trial's driver and worker.
    with local_cluster(head_cpus=0, worker_cpus=[2, 2]) as cluster:
        proc = subprocess.Popen(
            driver_command("stride", results, "--only", "s7", "--address", cluster.address, *TINY,
                           "--set", "pretrain.epochs=8"),
            cwd=ROOT, env=driver_env(), stdout=open(tmp_path / "driver.out", "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            # Once pretraining has passed an epoch, kill the node that runs rank 0, without grace.
            node_id = wait_for(lambda: re.search(r"pretrain epoch [2-6]/8", read(log))
                               and re.search(r"rank 0/1 on cpu, .* node ([0-9a-f]+)", read(log)).group(1), proc)
            assert node_id, f"the trial never reached pretrain epoch 2:\n{read(log)}\n{read(tmp_path / 'driver.out')[-3000:]}"
            victim = [n for n in cluster.worker_nodes if n.node_id == node_id]
            assert victim, "rank 0 ran on the head node"
            cluster.remove_node(victim[0], allow_graceful=False)
            rc = proc.wait(timeout=600)
        finally:
            stop_process_group(proc)
    text = read(log)
    assert rc == 0, f"{text}\n{read(tmp_path / 'driver.out')[-4000:]}"
    resumed = re.search(r"pretrain: resumed from the checkpoint of epoch (\d+)", text)
    assert resumed, text
    starts = re.findall(r"rank 0/1 on cpu, .* node ([0-9a-f]+)", text)
    assert starts[0] == node_id and starts[-1] != node_id  # restarted on the surviving node
    assert re.search(r"pretrain epoch 8/8", text.split(resumed.group(0))[1])  # and finished the stage
    rows = read_csv(results / "stride" / "table.csv")
    assert [(r["variant"], r["task"]) for r in rows] == [("s7", "sign2text")] and rows[0]["bleu4"] != ""
    parents, children = runs_of(sqlite_uri(results), "stride")
    assert [p.info.status for p in parents] == ["FINISHED"]
    assert [(c.data.tags["harness.trial_key"], c.info.status) for c in children] == [("s7-seed0", "FINISHED")]
    print(f"\nnode {node_id[:8]} killed; pretrain resumed from the checkpoint of epoch {resumed.group(1)}"
          f" on node {starts[-1][:8]}")


# --------------------------------------------------------------------------------------------
# The driver killed with SIGKILL, then --resume
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_driver_killed_then_resume_runs_only_what_was_missing(tmp_path):
    results = tmp_path / "results"
    trials_dir = results / "stride" / "trials"
    command = driver_command("stride", results, "--only", "s5", "--only", "s7", "--max-concurrent", "1", *TINY)
    proc = subprocess.Popen(command, cwd=ROOT, env=driver_env(), stdout=open(tmp_path / "first.out", "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        first = wait_for(lambda: next(iter(trials_dir.glob("*.json")), None), proc, poll_s=0.05)
        assert first is not None, read(tmp_path / "first.out")[-3000:]
        assert proc.poll() is None  # killed mid-study, not after it
    finally:
        # SIGKILL leaves the driver's local Ray (GCS, raylet, workers) running: kill them too, by PID.
        killed = stop_process_group(proc)
    assert len(killed) > 3 and not any(alive(pid) for pid in killed)  # driver, GCS, raylet, workers: all gone
    assert proc.returncode == -9
    finished_key = first.stem
    missing_key = ({"s5-seed0", "s7-seed0"} - {finished_key}).pop()
    assert not (trials_dir / f"{missing_key}.json").exists()
    before = (first.stat().st_mtime_ns, first.read_bytes())
    parent = json.loads((results / "stride" / "state.json").read_text())["parent_run_id"]

    out = subprocess.run(command + ["--resume"], cwd=ROOT, env=driver_env(), capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    assert f"resuming stride: MLflow run {parent}" in out.stdout
    assert "1 of 2 trials already finished; running 1" in out.stdout
    assert (first.stat().st_mtime_ns, first.read_bytes()) == before  # the finished trial was not rerun
    trials = trial_results(results, "stride")
    assert set(trials) == {"s5-seed0", "s7-seed0"}
    rows = read_csv(results / "stride" / "table.csv")
    assert [(r["variant"], r["task"]) for r in rows] == [("s5", "sign2text"), ("s7", "sign2text")]
    assert all(r["bleu4"] != "" for r in rows)
    parents, children = runs_of(sqlite_uri(results), "stride")
    assert [(p.info.run_id, p.info.status) for p in parents] == [(parent, "FINISHED")]
    assert sorted(c.data.tags["harness.trial_key"] for c in children) == ["s5-seed0", "s7-seed0"]  # no duplicate
    assert [c.info.status for c in children] == ["FINISHED", "FINISHED"]  # none left RUNNING


# --------------------------------------------------------------------------------------------
# The MLflow server lost mid-run
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_mlflow_server_lost_mid_run_training_goes_on_and_resume_logs_the_rest(tmp_path):
    from mlflow import MlflowClient
    results = tmp_path / "results"
    trial_dir = results / "stride" / "trials" / "s7-seed0"
    server, uri = start_mlflow_server(tmp_path / "mlflow")
    port = int(uri.rsplit(":", 1)[1])
    command = driver_command("stride", results, "--only", "s7", "--tracking-uri", uri, *TINY,
                             "--set", "pretrain.epochs=6")
    proc = subprocess.Popen(command, cwd=ROOT, env=driver_env(), stdout=open(tmp_path / "first.out", "w"),
                            stderr=open(tmp_path / "first.err", "w"), start_new_session=True)
    try:
        assert wait_for(lambda: "pretrain epoch 1/6" in read(trial_dir / "worker0.log"), proc), \
            read(tmp_path / "first.err")[-3000:]
        stop_process_group(server)  # the server dies while the trial trains
        rc = proc.wait(timeout=600)
    finally:
        stop_process_group(proc)
        stop_process_group(server)
    err, log = read(tmp_path / "first.err"), read(trial_dir / "worker0.log")
    # Training and checkpoints went on; the trial finished and its results are on disk.
    assert "pretrain epoch 6/6" in log and "sign2text epoch 2/2" in log, log
    assert list((results / "ray").rglob("state.pt")), "no Train checkpoint was written"
    assert (results / "stride" / "trials" / "s7-seed0.json").is_file()
    assert read_csv(results / "stride" / "table.csv")[0]["variant"] == "s7"
    # What was not logged waits on disk, in order, the run's end status included.
    assert re.search(r"MLflow: \d+ log entries could not be written", log), log
    pending = list((trial_dir / "pending").glob("pending-*.jsonl"))
    assert len(pending) == 1
    ops = [json.loads(line)["op"] for line in pending[0].read_text().splitlines()]
    assert "metrics" in ops and ops[-1] == "terminated", ops
    # The driver ends with one warning line and a non-zero exit, not a traceback.
    assert rc == 1, err[-3000:]
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and f"cannot reach the MLflow tracking server at {uri}" in warnings[0], err[-3000:]
    assert "the table files are written; rerun with --resume" in warnings[0]
    assert "Traceback" not in err

    # The server is back (same address, same store): --resume trains nothing and logs the rest.
    server, uri2 = start_mlflow_server(tmp_path / "mlflow", port=port)
    try:
        assert uri2 == uri
        out = subprocess.run(command + ["--resume"], cwd=ROOT, env=driver_env(), capture_output=True, text=True,
                             timeout=600)
        assert out.returncode == 0, f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        assert "1 of 1 trials already finished; running 0" in out.stdout
        assert not list((trial_dir / "pending").glob("pending-*.jsonl"))
        parents, children = runs_of(uri, "stride")
        client = MlflowClient(tracking_uri=uri)
        history = client.get_metric_history(children[0].info.run_id, "pretrain/train_loss")
        artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    finally:
        stop_process_group(server)
    assert [p.info.status for p in parents] == ["FINISHED"] and "table.json" in artifacts
    assert [c.info.status for c in children] == ["FINISHED"]
    assert "sign2text/test_bleu4" in children[0].data.metrics
    assert sorted(m.step for m in history) == list(range(6))  # every epoch, the offline ones replayed


# --------------------------------------------------------------------------------------------
# Corrupted cache entries and checkpoints
# --------------------------------------------------------------------------------------------

TRIAL = [sys.executable, "-m", "harness.trial", "stride", "s7", "--profile", "debug", "--threads", "1", "--json",
         *TINY]


@pytest.mark.slow
def test_truncated_cache_entry_is_recomputed_not_loaded(tmp_path):
    def trial():
        out = subprocess.run(TRIAL + ["--results", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                             timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout), out.stderr

    first, _ = trial()
    assert set(first["stages"].values()) == {"computed"}
    [model] = (tmp_path / "cache" / "sign2text").glob("*/model.pt")
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])  # a half-written checkpoint
    second, log = trial()
    assert second["stages"] == {"pretrain": "cached", "probe": "cached", "figure5": "cached", "embed": "cached",
                                "sign2text": "computed"}
    assert f"sign2text: cache entry {model.parent.name} failed verification; recomputing" in log
    assert second["metrics"] == first["metrics"]  # the same translator again (CPU, same seed)
    assert StageCache(tmp_path / "cache").is_complete("sign2text", model.parent.name)
    assert load_torch(model)["model"]  # the entry was rewritten whole


def test_damaged_train_checkpoint_is_detected_and_not_loaded(tmp_path):
    from harness.tune.worker import read_checkpoint, write_checkpoint
    state = {"stage": "pretrain", "key": "k", "epoch": 3, "model": {"w": torch.arange(1000.0)}}
    write_checkpoint(state, tmp_path)
    said: list[str] = []
    assert read_checkpoint(tmp_path, said.append)["epoch"] == 3 and said == []
    path = tmp_path / "state.pt"
    data = path.read_bytes()
    path.write_bytes(data[:-100])  # truncated
    assert read_checkpoint(tmp_path, said.append) is None
    assert "is damaged (its SHA-256 does not match state.sha256)" in said[-1]
    path.write_bytes(data[:-8] + b"\0" * 8)  # same size, altered
    assert read_checkpoint(tmp_path, said.append) is None
    (tmp_path / "state.sha256").unlink()  # no hash (an older checkpoint): still never loaded if unreadable
    path.write_bytes(data[: len(data) // 3])
    assert read_checkpoint(tmp_path, said.append) is None and len(said) == 3


# --------------------------------------------------------------------------------------------
# Disk full, unwritable results folder
# --------------------------------------------------------------------------------------------


def _tiny_cfg(epochs: int = 1):
    from harness.ablation import load_ablation, variant_config
    overrides = {key: int(value) for key, value in (item.split("=") for item in TINY[1::2])}
    overrides.update({"pretrain.epochs": epochs, "sign2text.epochs": epochs})
    return variant_config(load_ablation("stride"), "s7", "debug", overrides, 0)


def test_disk_full_during_a_cache_commit_leaves_nothing_complete(tmp_path, monkeypatch):
    import harness.stages.pretrain as pretrain
    from harness.loop import local_runtime
    from harness.pipeline import run_trial
    from harness.stages import stage_keys
    torch.set_num_threads(1)
    cfg = _tiny_cfg()
    key = stage_keys(cfg, ("sign2text",))["pretrain"]
    real_save = pretrain.save_torch

    def disk_full(obj, path):
        if path.name == "signmae.pt":
            path.write_bytes(b"\x80\x02half")  # the disk filled up in the middle of the file
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(obj, path)

    monkeypatch.setattr(pretrain, "save_torch", disk_full)
    cache = StageCache(tmp_path / "cache")
    with pytest.raises(OSError) as failure:
        run_trial(cfg, ("sign2text",), cache, local_runtime(lambda s: None))
    assert failure.value.errno == errno.ENOSPC
    assert cache.is_complete("prepare", stage_keys(cfg, ("sign2text",))["prepare"])  # written before
    assert not cache.is_complete("pretrain", key) and not cache.entry("pretrain", key).path.exists()
    assert not list((tmp_path / "cache" / "pretrain").glob(".tmp-*"))  # the half-written folder is gone

    monkeypatch.setattr(pretrain, "save_torch", real_save)  # space is back: the rerun computes it whole
    result, _ = run_trial(cfg, ("sign2text",), cache, local_runtime(lambda s: None))
    assert result.stages["pretrain"] == "computed" and cache.is_complete("pretrain", key)


def test_disk_full_in_the_driver_is_one_line(tmp_path, monkeypatch, capsys):
    from harness import run_ablation
    from harness.cli import run_cli
    from harness.tune import ablation

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "stride" / "state.json"))

    monkeypatch.setattr(ablation, "run", full)
    code = run_cli(run_ablation.main, ["stride", "--only", "s7", "--profile", "debug", "--results", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (f"error: cannot write {tmp_path / 'stride' / 'state.json'}: No space left on device; free "
                   f"space or fix permissions, then rerun with --resume\n")


@pytest.mark.parametrize("case", ["read-only folder", "path through a file"])
def test_unwritable_results_folder_is_one_line_before_anything_runs(tmp_path, case, request):
    if case == "read-only folder":
        results = tmp_path / "results"
        results.mkdir()
        if os.geteuid() != 0:
            results.chmod(0o555)
            request.addfinalizer(lambda: results.chmod(0o755))
            reason = "Permission denied"
        else:  # root ignores modes; an immutable folder (chattr +i) stops root too
            if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(results)]).returncode:
                pytest.skip("running as root without chattr +i: cannot make a folder unwritable")
            request.addfinalizer(lambda: subprocess.run(["chattr", "-i", str(results)]))
            reason = "Operation not permitted"
    else:
        (tmp_path / "file").write_text("")
        results = tmp_path / "file" / "results"
        reason = "Not a directory"
    out = subprocess.run([sys.executable, "harness/run_ablation.py", "stride", "--only", "s7", "--profile", "debug",
                          "--results", str(results)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr == f"error: cannot write to the results folder {results}: {reason}\n"
    assert not list(tmp_path.rglob("mlflow.db")) and not list(tmp_path.rglob("cache"))


@pytest.mark.slow
def test_a_worker_no_node_can_hold_is_one_line_not_a_silent_wait(tmp_path):
    out = subprocess.run(driver_command("stride", tmp_path, "--only", "s7", "--gpus-per-worker", "1", *TINY),
                         cwd=ROOT, env=driver_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert out.stderr.splitlines()[-1].startswith(
        "error: no Ray node can hold a trial worker (1 CPU + 1 GPU each; the largest node has ")
    assert "0 GPU): lower --cpus-per-worker / --gpus-per-worker" in out.stderr and "Traceback" not in out.stderr
    [parent] = runs_of(sqlite_uri(tmp_path), "stride")[0]
    assert parent.info.status == "FAILED"  # not left RUNNING
