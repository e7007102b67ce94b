"""harness.tracking: restore-safe MLflow runs on a SQLite store, and SafeLogger against a dead server.

One SQLite database for the whole module (MLflow's migrations take seconds per new database).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from harness import tracking
from harness.tracking import (
    PARENT_TAG,
    TRIAL_KEY_TAG,
    ParamConflictError,
    SafeLogger,
    TrackingError,
    check_reachable,
    close_dangling,
    default_tracking_uri,
    ensure_experiment,
    start_parent,
    trial_run,
)
from harness.tracking.store import mlflow_client


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    uri = default_tracking_uri(results)
    exp = ensure_experiment(uri, "ablation apw", results / "mlartifacts")
    return uri, exp, results


@pytest.fixture
def client(store):
    return mlflow_client(store[0])


@pytest.fixture
def dead_uri(monkeypatch):
    """An http URI on 127.0.0.1 whose port nothing listens on, and MLflow told not to retry."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    return f"http://127.0.0.1:{port}"


def test_default_uri_is_absolute_sqlite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_tracking_uri("results") == f"sqlite:///{tmp_path.resolve()}/results/mlflow.db"
    assert default_tracking_uri("results").startswith("sqlite:////")


def test_check_reachable(tmp_path, dead_uri):
    check_reachable(f"sqlite:///{tmp_path}/new/folder/mlflow.db")  # creates the folder
    assert (tmp_path / "new" / "folder").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(TrackingError, match="cannot use the MLflow tracking store at sqlite"):
        check_reachable(f"sqlite:///{tmp_path}/file/mlflow.db")  # its "folder" is a file
    start = time.monotonic()
    with pytest.raises(TrackingError, match=f"cannot reach the MLflow tracking server at {dead_uri}: "):
        check_reachable(dead_uri, timeout_s=2)
    assert time.monotonic() - start < 2.5


def test_experiment_is_created_once_with_artifacts_beside_the_db(store, client):
    uri, exp, results = store
    assert ensure_experiment(uri, "ablation apw", results / "mlartifacts") == exp
    assert client.get_experiment(exp).artifact_location == str(results.resolve() / "mlartifacts" / "ablation_apw")


def test_trial_run_is_reused_by_trial_key(store, client):
    uri, exp, _ = store
    parent = start_parent(uri, exp, "apw-debug", {"study": "apw"})
    params = {f"group{i // 10}.key{i}": i for i in range(150)}  # > one batch of 100
    params["pretrain"] = {"mask_ratio": 0.25}  # nested dicts flatten with dots
    run = trial_run(uri, exp, parent, "t_00001", "apw seed 1", {"variant": "apw"}, params)
    info = client.get_run(run)
    assert info.data.tags[PARENT_TAG] == parent and info.data.tags[TRIAL_KEY_TAG] == "t_00001"
    assert len(info.data.params) == 151 and info.data.params["pretrain.mask_ratio"] == "0.25"
    client.set_terminated(run, "FAILED")  # the driver crashed; Tune restores the trial

    again = trial_run(uri, exp, parent, "t_00001", "apw seed 1", {"variant": "apw"}, params)
    assert again == run
    info = client.get_run(run)
    assert info.info.status == "RUNNING" and info.data.tags[tracking.ATTEMPT_TAG] == "2"
    other = trial_run(uri, exp, parent, "t_00002", "apw seed 2", {}, {"a": 1})
    assert other != run
    with pytest.raises(ParamConflictError, match="param group0.key3 is logged as '3', cannot log '4'"):
        trial_run(uri, exp, parent, "t_00001", "apw seed 1", {}, {**params, "group0.key3": 4})
    # A trial key belongs to its parent: a new invocation's parent gets a new run.
    parent2 = start_parent(uri, exp, "apw-debug-2", {})
    assert trial_run(uri, exp, parent2, "t_00001", "apw seed 1", {}, params) != run


def test_close_dangling_kills_running_children_except_kept(store, client):
    uri, exp, _ = store
    parent = start_parent(uri, exp, "dangling", {})
    a = trial_run(uri, exp, parent, "a", "a", {}, {})
    b = trial_run(uri, exp, parent, "b", "b", {}, {})
    c = trial_run(uri, exp, parent, "c", "c", {}, {})
    tracking.set_terminated(uri, c, "FINISHED")
    assert close_dangling(uri, exp, parent, keep={"b"}) == [a]
    assert [client.get_run(r).info.status for r in (a, b, c)] == ["KILLED", "RUNNING", "FINISHED"]


def test_metrics_and_tables(store, client, tmp_path):
    uri, exp, _ = store
    parent = start_parent(uri, exp, "artifacts", {})
    for step, loss in enumerate([3.0, 2.0, 1.5]):
        tracking.log_metrics(uri, parent, {"train.loss": loss}, step)
    assert [(m.step, m.value) for m in client.get_metric_history(parent, "train.loss")] == \
        [(0, 3.0), (1, 2.0), (2, 1.5)]
    (tmp_path / "table.md").write_text("| a |\n")
    (tmp_path / "table.csv").write_text("a\n")
    rows = [{"variant": "none", "bleu4": 10.0, "mpjpe": None}, {"variant": "apw", "bleu4": 12.5, "mpjpe": None}]
    tracking.log_table(uri, parent, rows, "table/ablation.json", files=[tmp_path / "table.md", tmp_path / "table.csv"])
    tracking.log_dict(uri, parent, {"k": 1}, "config.json")
    names = sorted(a.path for a in client.list_artifacts(parent, "table"))
    assert names == ["table/ablation.json", "table/table.csv", "table/table.md"]
    # (client.load_table would search through mlflow's global tracking URI, not this client's.)
    table = json.loads(Path(client.download_artifacts(parent, "table/ablation.json", str(tmp_path))).read_text())
    assert table["columns"] == ["variant", "bleu4", "mpjpe"]
    assert table["data"] == [["none", 10.0, None], ["apw", 12.5, None]]


def test_safe_logger_queues_while_the_server_is_dead_and_replays_later(store, client, dead_uri, tmp_path):
    uri, exp, _ = store
    run = trial_run(uri, exp, start_parent(uri, exp, "safe", {}), "k", "k", {}, {"lr": 0.1})
    (tmp_path / "gen.gif").write_bytes(b"GIF89a fake")
    pending = tmp_path / "pending"

    start = time.monotonic()
    dead = SafeLogger(dead_uri, run, pending, retry_interval_s=60)
    for step in range(20):
        dead.log_metrics({"loss": 1.0 / (step + 1)}, step)  # never raises
    dead.log_artifact(tmp_path / "gen.gif", "samples")
    dead.log_text("a sentence", "samples/translations.txt")
    dead.log_dict({"stages": ["pretrain"]}, "stages.json")
    dead.log_table([{"reference": "a b", "hypothesis": "a", "sentence_bleu4": 12.5}], "translations.json")
    dead.set_tags({"stage.pretrain.cached": "true"})
    dead.log_params({"pretrain.fpw.face": "1.17"})
    dead.set_terminated("FINISHED")
    assert time.monotonic() - start < 3  # one failed request, then queued without the network
    assert dead.flush() == 27 and dead.pending_count == 27
    lines = (pending / f"pending-{run}.jsonl").read_text().splitlines()
    assert len(lines) == 27 and json.loads(lines[0])["op"] == "metrics"
    (tmp_path / "gen.gif").unlink()  # the queue kept its own copy

    # The store answers again (here: the same run through SQLite); a new logger replays the queue.
    alive = SafeLogger(uri, run, pending)
    assert alive.pending_count == 27
    assert alive.flush() == 0
    assert not (pending / f"pending-{run}.jsonl").exists()
    assert list(pending.iterdir()) == []  # copies removed after the upload
    info = client.get_run(run)
    assert len(client.get_metric_history(run, "loss")) == 20
    assert info.info.status == "FINISHED"
    assert sorted(a.path for a in client.list_artifacts(run, "samples")) == ["samples/gen.gif",
                                                                             "samples/translations.txt"]
    assert {"stages.json", "translations.json"} <= {a.path for a in client.list_artifacts(run)}
    table = json.loads(Path(client.download_artifacts(run, "translations.json", str(tmp_path))).read_text())
    assert table == {"columns": ["reference", "hypothesis", "sentence_bleu4"], "data": [["a b", "a", 12.5]]}
    assert info.data.tags["stage.pretrain.cached"] == "true"
    assert info.data.params["pretrain.fpw.face"] == "1.17" and info.data.params["lr"] == "0.1"
    # log_table's tag: what the UI lists as the run's tables (to show them side by side)
    assert json.loads(info.data.tags["mlflow.loggedArtifacts"]) == [{"path": "translations.json", "type": "table"}]


def test_safe_logger_drops_what_the_store_rejects(store, tmp_path):
    uri, exp, _ = store
    run = trial_run(uri, exp, start_parent(uri, exp, "reject", {}), "k", "k", {}, {"lr": 0.1})
    logger = SafeLogger(uri, run, tmp_path)
    logger.set_terminated("DONE")  # not a status: rejected, not queued, no exception
    logger.log_metrics({"loss": "not a number"})
    logger.log_artifact(tmp_path / "missing.png")
    logger.log_metrics({"loss": 0.5}, 1)
    assert logger.pending_count == 0 and logger.rejected_count == 3
    assert logger.flush() == 3
    assert [m.value for m in mlflow_client(uri).get_metric_history(run, "loss")] == [0.5]


def test_logging_a_table_again_replaces_it(store, client, tmp_path):
    # A resumed study logs its table into the same parent run: the rows must not be listed twice.
    uri, exp, _ = store
    parent = start_parent(uri, exp, "table twice", {})
    tracking.log_table(uri, parent, [{"variant": "none", "bleu4": 1.0}], "table.json")
    tracking.log_table(uri, parent, [{"variant": "none", "bleu4": 2.0}, {"variant": "apw", "bleu4": 3.0}], "table.json")
    table = json.loads(Path(client.download_artifacts(parent, "table.json", str(tmp_path))).read_text())
    assert table["columns"] == ["variant", "bleu4"]
    assert table["data"] == [["none", 2.0], ["apw", 3.0]]


def test_run_status_and_errors(store):
    uri, exp, _ = store
    run = trial_run(uri, exp, start_parent(uri, exp, "status", {}), "k", "k")
    assert tracking.run_status(uri, run) == "RUNNING"
    tracking.set_terminated(uri, run, "KILLED")
    assert tracking.run_status(uri, run) == "KILLED"
    with pytest.raises(tracking.ERRORS):  # what callers catch for "the store failed"
        tracking.run_status(uri, "0" * 32)
    assert issubclass(ParamConflictError, tracking.ERRORS) and issubclass(PermissionError, tracking.ERRORS)


def test_replay_pending_logs_this_stores_queues_and_leaves_the_others(store, client, dead_uri, tmp_path):
    uri, exp, _ = store
    run = trial_run(uri, exp, start_parent(uri, exp, "replay", {}), "k", "k")
    queued = SafeLogger(dead_uri, run, tmp_path / "abl" / "trials" / "k" / "pending", retry_interval_s=60)
    for step in range(3):
        queued.log_metrics({"loss": float(step)}, step)
    queued.set_terminated("FINISHED")
    assert queued.pending_count == 4
    other = tmp_path / "abl" / "trials" / "j" / "pending" / f"pending-{'0' * 32}.jsonl"  # another store's run
    other.parent.mkdir(parents=True)
    other.write_text(json.dumps({"op": "terminated", "status": "FINISHED", "end_time_ms": 0}) + "\n")

    assert tracking.replay_pending(tmp_path, "abl", uri) == 0
    assert [m.value for m in client.get_metric_history(run, "loss")] == [0.0, 1.0, 2.0]
    assert tracking.run_status(uri, run) == "FINISHED"
    assert not queued.pending_path.exists() and other.exists()
    assert tracking.replay_pending(tmp_path, "nothing here", uri) == 0


def test_client_cache_and_pending_locks_are_per_key(monkeypatch, tmp_path):
    from harness.tracking.safe_logger import PendingLocks
    from harness.tracking.store import ClientCache

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    cache = ClientCache()
    first = cache.get("http://127.0.0.1:1")  # no request is made yet
    assert cache.get("http://127.0.0.1:1") is first and cache.get("http://127.0.0.1:2") is not first
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"  # bounded before the first call
    locks = PendingLocks()
    assert locks.for_path(tmp_path / "a") is locks.for_path(tmp_path / "a")
    assert locks.for_path(tmp_path / "a") is not locks.for_path(tmp_path / "b")
    # Two loggers of one pending file in one process share its lock.
    assert SafeLogger("sqlite://", "r", tmp_path)._lock is SafeLogger("sqlite://", "r", tmp_path)._lock


def test_an_experiment_opens_on_its_runs_and_carries_its_description(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    exp_id = tracking.ensure_experiment(uri, "ablation-apw", tmp_path / "artifacts", "**Does APW help?**")
    tags = mlflow_client(uri).get_experiment(exp_id).tags
    # MLflow 3's UI reads this tag to open on the runs table instead of the GenAI traces page.
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert tags[tracking.DESCRIPTION_TAG] == "**Does APW help?**"
    assert tracking.ensure_experiment(uri, "ablation-apw") == exp_id  # again, without a description: kept
    assert mlflow_client(uri).get_experiment(exp_id).tags[tracking.DESCRIPTION_TAG] == "**Does APW help?**"


def test_the_runs_view_url_names_the_workflow_and_the_harness_columns(tmp_path):
    from harness.cli import mlflow_hint
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    exp_id = tracking.ensure_experiment(uri, "ablation-apw", tmp_path / "artifacts")
    tag = "mlflow.sharedViewState.harness-runs"
    # The view exists from the start (an unknown share key is an error page in the UI), without extra columns.
    assert json.loads(mlflow_client(uri).get_experiment(exp_id).tags[tag])["selectedColumns"] == []
    tracking.set_runs_view(uri, exp_id, ["sign2text.test_bleu4.none.mean", "sign2text.test_bleu4.apw.mean"])
    view = json.loads(mlflow_client(uri).get_experiment(exp_id).tags[tag])
    cols = ["metrics.`sign2text.test_bleu4.none.mean`", "metrics.`sign2text.test_bleu4.apw.mean`"]
    assert view["selectedColumns"] == cols and view["columnOrder"][-2:] == cols
    assert view["columnWidths"] == {cols[0]: 30 + 6 * 30, cols[1]: 30 + 6 * 29}
    tracking.ensure_experiment(uri, "ablation-apw")  # again: the columns stay
    assert json.loads(mlflow_client(uri).get_experiment(exp_id).tags[tag]) == view
    runs = f"/#/experiments/{exp_id}/runs?workflowType=machine_learning&viewStateShareKey=harness-runs"
    assert tracking.runs_view_url("http://h:5000/", exp_id) == f"http://h:5000{runs}"
    assert mlflow_hint("http://h:5000", exp_id) == f"Compare in MLflow:  open http://h:5000{runs}"
    assert mlflow_hint(uri, exp_id).endswith(f"--host 127.0.0.1 --port 5000  then open http://127.0.0.1:5000{runs}")
    mlflow_client(uri).create_experiment("made elsewhere")  # no harness view: not listed
    assert tracking.runs_views(uri, "http://h:5000") == [f"ablation-apw:  http://h:5000{runs}"]


def test_a_worker_opens_the_studys_existing_store_as_it_starts_and_never_creates_one(tmp_path, monkeypatch):
    from harness.tune import worker_setup
    missing = tmp_path / "none.db"
    monkeypatch.setenv(worker_setup.TRACKING_ENV, f"sqlite:///{missing}")
    worker_setup.setup_worker()
    assert not missing.exists()  # the driver creates (and migrates) the store, not a worker
    db = tmp_path / "mlflow.db"
    tracking.ensure_experiment(f"sqlite:///{db}", "exp", str(tmp_path / "artifacts"), "a study")
    monkeypatch.setenv(worker_setup.TRACKING_ENV, f"sqlite:///{db}")
    worker_setup.setup_worker()
    import sys
    assert "torch._dynamo" in sys.modules  # what the first optimizer would import, imported up front
