"""Multi-node on one machine.

A local Ray cluster of three nodes (`ray.cluster_utils.Cluster`: a head and two worker nodes, one
CPU each), an `mlflow server` process on loopback, and the driver run as a user runs it:
`run_ablation.py stride --only s5 --only s7 --workers-per-trial 2 --address HEAD --tracking-uri
http://127.0.0.1:PORT`. No node has two free CPUs, so each trial's two DDP workers (gloo on CPU)
sit on two different nodes. Checked: the table files, one FINISHED parent run and one FINISHED
nested run per trial on the server, DDP with world size 2, and the stage cache shared across
nodes (the strides share one SignMAE pretraining: computed by one trial, loaded by the other).

The helpers here (free_port, mlflow_server, local_cluster, TINY) are also used by
tests/test_faults.py and scripts/bench_scale.py. Never `ray stop`: only what a test started is
shut down.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import read_csv

ROOT = Path(__file__).resolve().parents[1]

# The smallest run that still trains every stage: a few sequences, one or two epochs each.
TINY = ["--set", "data.synth.train=24", "--set", "data.synth.dev=8", "--set", "data.synth.test=8",
        "--set", "pretrain.epochs=2", "--set", "sign2text.epochs=2", "--set", "text2sign.epochs=2",
        "--set", "backtranslator.epochs=2",
        # a checkpoint every epoch: the fault tests resume from one, and these epochs are short
        "--set", "compute.checkpoint_every_s=0"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_server(folder: Path, port: int | None = None, timeout_s: float = 300.0):
    """An `mlflow server` process on 127.0.0.1 (its own process group); returns (process, uri)."""
    folder.mkdir(parents=True, exist_ok=True)
    db = f"sqlite:///{folder / 'mlflow.db'}"
    # Create the schema first: the server's own first start races with itself on an empty SQLite
    # file ("table ... already exists", mlflow issue 19943) when the machine is busy.
    from mlflow import MlflowClient
    MlflowClient(tracking_uri=db).search_experiments()
    port = port or free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runner: 8 fewer processes
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", db, "--artifacts-destination", str(folder / "artifacts")],
        stdout=open(folder / "server.log", "ab"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited {proc.returncode}: {(folder / 'server.log').read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(uri + "/health", timeout=2) as r:
                if r.status == 200:
                    return proc, uri
        time.sleep(0.5)
    stop_process_group(proc)
    raise RuntimeError(f"mlflow server did not answer on {uri} within {timeout_s:.0f} s")


def descendants(pid: int) -> list[int]:
    """pid and every process below it (from /proc: no psutil in the environment)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_process_group(proc: subprocess.Popen, timeout_s: float = 30.0) -> list[int]:
    """SIGKILL a process started with start_new_session=True, everything in its process group and
    every descendant seen before the kill (mlflow server -> uvicorn; a driver -> its raylet, GCS,
    dashboard and Ray workers); wait until they are gone. Returns the PIDs that were killed."""
    family = descendants(proc.pid) if proc.poll() is None else []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout_s)
    deadline = time.time() + timeout_s
    while time.time() < deadline and any(alive(pid) for pid in family):
        time.sleep(0.2)
    return family


def _start_cluster(head_cpus: int, worker_cpus: list[int]):
    from ray._common.utils import get_ray_address_file
    from ray.cluster_utils import Cluster
    # A free dashboard port: Ray Train's placement-group cleaner needs the state API (the
    # dashboard), and 8265 may belong to another Ray on this host.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": head_cpus, "dashboard_port": free_port()})
    # Cluster records its address where a bare ray.init() of any other process would join it;
    # remove that record (only if it is ours).
    with contextlib.suppress(OSError):
        address_file = Path(get_ray_address_file(None))
        if address_file.read_text().strip() == cluster.address:
            address_file.unlink()
    try:
        for cpus in worker_cpus:
            cluster.add_node(num_cpus=cpus)
        cluster.wait_for_nodes()
    except BaseException:
        cluster.shutdown()
        raise
    return cluster


@contextlib.contextmanager
def local_cluster(head_cpus: int, worker_cpus: list[int]):
    """A Ray cluster of this machine's processes: a head and one worker node per entry."""
    os.environ["RAY_AUTH_MODE"] = "disabled"  # inherited by the nodes and by the drivers we start
    try:
        cluster = _start_cluster(head_cpus, worker_cpus)
    except Exception as exc:  # Ray gives a node 30 s to come up: once more on a busy machine
        if "timed out during startup" not in str(exc):
            raise
        cluster = _start_cluster(head_cpus, worker_cpus)
    try:
        yield cluster
    finally:
        cluster.shutdown()


def driver_command(name: str, results: Path, *extra: str) -> list[str]:
    return [sys.executable, "harness/run_ablation.py", name, "--profile", "debug", "--results", str(results), *extra]


def driver_env() -> dict:
    return {**os.environ, "RAY_AUTH_MODE": "disabled"}


def runs_of(uri: str, ablation: str) -> tuple[list, list]:
    """(parent runs, nested trial runs) of ablation-NAME in the store at uri."""
    from mlflow import MlflowClient
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(f"ablation-{ablation}")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return ([r for r in runs if "mlflow.parentRunId" not in r.data.tags],
            [r for r in runs if "mlflow.parentRunId" in r.data.tags])


def trial_results(results: Path, ablation: str) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((results / ablation / "trials").glob("*.json"))}


@pytest.mark.slow
def test_ddp_trials_on_a_three_node_cluster_with_an_mlflow_server(tmp_path):
    t0 = time.time()
    results = tmp_path / "results"
    server, uri = start_mlflow_server(tmp_path / "mlflow")
    try:
        with local_cluster(head_cpus=1, worker_cpus=[1, 1]) as cluster:
            assert len(cluster.list_all_nodes()) == 3
            t1 = time.time()
            out = subprocess.run(
                driver_command("stride", results, "--only", "s5", "--only", "s7", "--workers-per-trial", "2",
                               "--address", cluster.address, "--tracking-uri", uri, *TINY),
                cwd=ROOT, env=driver_env(), capture_output=True, text=True, timeout=900)
            driver_s = time.time() - t1
        assert out.returncode == 0, f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        parents, children = runs_of(uri, "stride")
    finally:
        stop_process_group(server)

    # The table, as on one machine.
    rows = read_csv(results / "stride" / "table.csv")
    assert [(r["variant"], r["task"]) for r in rows] == [("s5", "sign2text"), ("s7", "sign2text")]
    assert all(0.0 <= float(r["bleu4"]) <= 100.0 for r in rows)
    assert (results / "stride" / "curve.png").stat().st_size > 1000
    assert f"Compare in MLflow:  open {uri}/#/experiments/" in out.stdout  # the server, at the experiment

    # 2-worker DDP: rank 0 of a world of 2 in both trials.
    for key in ("s5-seed0", "s7-seed0"):
        log = (results / "stride" / "trials" / key / "worker0.log").read_text()
        assert f"trial {key}: rank 0/2 on cpu" in log, log

    # The cache is shared: the one SignMAE pretraining both strides need was computed once.
    trials = trial_results(results, "stride")
    assert sorted(t["stages"]["pretrain"] for t in trials.values()) == ["cached", "computed"], trials
    assert all(t["stages"]["embed"] == "computed" and t["stages"]["sign2text"] == "computed" for t in trials.values())
    assert len(list((results / "cache" / "pretrain").glob("*/DONE.json"))) == 1

    # The server holds one parent and one finished nested run per trial, none left RUNNING.
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(c.data.tags["harness.trial_key"] for c in children) == ["s5-seed0", "s7-seed0"]
    assert all(c.info.status == "FINISHED" and c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
               for c in children)
    assert all(c.data.params["compute.workers_per_trial"] == "2" for c in children)
    assert all("sign2text/test_bleu4" in c.data.metrics for c in children)
    print(f"\nmulti-node: cluster + server + driver {time.time() - t0:.0f} s, driver alone {driver_s:.0f} s")
