"""Experiments, the parent run of a study invocation, its trial runs found again by tag, and the
log_* helpers that write to a run by id.

Layout in MLflow: one experiment per ablation or search; a parent run per invocation (created by the
driver before Tune's fit, holding the table and figures); one nested run per trial (tag
mlflow.parentRunId), with the flattened dotted config as params, per-epoch curves and artifacts.

Why not Ray's MLflowLoggerCallback: after Tuner.restore it gives every resumed trial a second run
and leaves the first RUNNING forever. Here a trial's run is found again by its trial key (tag
harness.trial_key under its parent) and reused, params already logged with the same value are
skipped, and runs a crashed driver left RUNNING are closed by close_dangling unless the caller is
about to resume them.

Everything goes through MlflowClient with explicit run ids: no global active run, so threads and
processes can log to several runs at once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from harness.tracking.store import ParamConflictError, TrackingError, mlflow_client

log = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
TRIAL_KEY_TAG = "harness.trial_key"
ATTEMPT_TAG = "harness.attempt"  # 1 when a trial run is created, +1 each time it is reused
ROLE_TAG = "harness.role"  # "parent" or "trial"
STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
_PARAMS_PER_BATCH = 100  # mlflow.utils.validation.MAX_PARAMS_TAGS_PER_BATCH
_METRICS_PER_BATCH = 1000  # mlflow.utils.validation.MAX_METRICS_PER_BATCH


# ----------------------------------------------------------------------------- experiments, runs


# MLflow 3.17's UI opens an experiment on its GenAI overview unless the URL says otherwise: its
# GenAI / Model training switch reads `?workflowType=` from the URL, else the browser's last choice
# (localStorage "mlflow.workflowType", GenAI at first), and ignores the experiment's kind tag. The tag
# is still set for the UIs that read it; the harness prints runs_view_url, which names the workflow.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
DESCRIPTION_TAG = "mlflow.note.content"  # what the UI shows as an experiment's or a run's description
# A "shared view" of the runs table (what the UI's Share button stores: an experiment tag holding the
# view's JSON, opened by ?viewStateShareKey=): the harness's choice of columns, the headline metrics.
RUNS_VIEW_KEY = "harness-runs"
RUNS_VIEW_TAG = f"mlflow.sharedViewState.{RUNS_VIEW_KEY}"


def runs_view_url(base: str, experiment_id: str) -> str:
    """The URL of the experiment's runs table in the UI at base, with the harness's columns."""
    return (f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs"
            f"?workflowType=machine_learning&viewStateShareKey={RUNS_VIEW_KEY}")


def runs_views(uri: str, base: str) -> list[str]:
    """One line per experiment of the store that has the harness's runs view: its name and the URL
    of its runs table in the UI at base (what `make mlflow` prints)."""
    experiments = mlflow_client(uri).search_experiments(max_results=1000)
    return [f"{e.name}:  {runs_view_url(base, e.experiment_id)}" for e in experiments if RUNS_VIEW_TAG in e.tags]


def set_runs_view(uri: str, experiment_id: str, metrics: Iterable[str]) -> None:
    """Make the runs table of runs_view_url show these metric columns, in this order, each wide
    enough for its whole name (the UI cuts a header at about 100 px otherwise)."""
    columns = [f"metrics.`{m}`" for m in metrics]
    view = {"selectedColumns": columns,
            # widths apply to the columns the order names only; these are the UI's own column ids
            "columnOrder": ["attributes.`Run Name`", "runDateAndNestInfo", "duration", *columns],
            "columnWidths": {f"metrics.`{m}`": 30 + 6 * len(m) for m in metrics}}
    mlflow_client(uri).set_experiment_tag(experiment_id, RUNS_VIEW_TAG, json.dumps(view))


def ensure_experiment(uri: str, name: str, artifact_root: str | os.PathLike | None = None,
                      description: str = "") -> str:
    """The id of experiment `name`, created if missing (restored if deleted), marked as model
    development, given `description` when one is passed, and given the runs view of runs_view_url
    (no extra columns until set_runs_view names some) when it has none.

    A new experiment's artifact_location is artifact_root/<name> (a local folder is made absolute;
    None lets the store decide, as an `mlflow server --artifacts-destination` should).
    """
    experiment_id = _ensure_experiment(uri, name, artifact_root)
    client = mlflow_client(uri)
    for key, value in {**EXPERIMENT_KIND, **({DESCRIPTION_TAG: description} if description else {})}.items():
        client.set_experiment_tag(experiment_id, key, value)
    if RUNS_VIEW_TAG not in client.get_experiment(experiment_id).tags:
        set_runs_view(uri, experiment_id, [])
    return experiment_id


def _ensure_experiment(uri: str, name: str, artifact_root: str | os.PathLike | None) -> str:
    client = mlflow_client(uri)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        location = None
        if artifact_root is not None:
            root = os.fspath(artifact_root)
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
            if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", root) and not re.match(r"^[A-Za-z]:[\\/]", root):
                location = f"{root.rstrip('/')}/{safe}"  # a URI (s3://, mlflow-artifacts:/, file://)
            else:
                location = str(Path(root).resolve() / safe)
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":  # else another process just created it
                raise
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        log.warning("MLflow experiment %r (id %s) was deleted; restoring it", name, exp.experiment_id)
        client.restore_experiment(exp.experiment_id)
    return exp.experiment_id


def _str_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (tags or {}).items()}


def start_parent(uri: str, experiment_id: str, run_name: str, tags: Mapping[str, Any] | None = None) -> str:
    """Create the parent run of one study invocation; returns its run id (keep it to resume)."""
    run = mlflow_client(uri).create_run(
        experiment_id, run_name=run_name, tags={**_str_tags(tags), ROLE_TAG: "parent"}
    )
    return run.info.run_id


def resume_parent(uri: str, run_id: str) -> None:
    """Mark a parent run RUNNING again (a restored study); raises TrackingError when it is gone."""
    client = mlflow_client(uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as e:
        raise TrackingError(f"cannot resume parent run {run_id} at {uri}: {e.message}") from None
    if run.info.lifecycle_stage == "deleted":
        raise TrackingError(f"cannot resume parent run {run_id} at {uri}: it was deleted")
    client.update_run(run_id, status="RUNNING")


def run_status(uri: str, run_id: str) -> str:
    """The run's status: one of STATUSES. Raises MlflowException when the store has no such run."""
    return mlflow_client(uri).get_run(run_id).info.status


def _check_key(trial_key: str) -> str:
    if not trial_key or "'" in trial_key or '"' in trial_key or "\\" in trial_key:
        raise ValueError(f"trial_key must be a non-empty string without quotes or backslashes, got {trial_key!r}")
    return trial_key


def _search_all(client: MlflowClient, experiment_id: str, filter_string: str) -> list:
    runs: list = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string=filter_string, max_results=1000,
            order_by=["attributes.start_time ASC"], page_token=token,
        )
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _children_filter(parent_run_id: str) -> str:
    _check_key(parent_run_id)
    return f"tags.`{PARENT_TAG}` = '{parent_run_id}'"


def find_trial_run(uri: str, experiment_id: str, parent_run_id: str, trial_key: str) -> str | None:
    """The run id of the child of parent_run_id tagged with trial_key (the oldest if several)."""
    runs = _search_all(
        mlflow_client(uri), experiment_id,
        f"{_children_filter(parent_run_id)} and tags.`{TRIAL_KEY_TAG}` = '{_check_key(trial_key)}'",
    )
    if len(runs) > 1:
        log.warning("%d MLflow runs carry trial key %r under parent %s; reusing the oldest, %s",
                    len(runs), trial_key, parent_run_id, runs[0].info.run_id)
    return runs[0].info.run_id if runs else None


def trial_run(
    uri: str,
    experiment_id: str,
    parent_run_id: str,
    trial_key: str,
    run_name: str,
    tags: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> str:
    """The nested run of one trial: reused (status RUNNING again) when a child of parent_run_id
    already carries trial_key, else created. params (the flattened dotted config; nested dicts are
    flattened with dots) are logged idempotently: see log_params."""
    client = mlflow_client(uri)
    run_id = find_trial_run(uri, experiment_id, parent_run_id, trial_key)
    if run_id is None:
        run = client.create_run(
            experiment_id,
            run_name=run_name,
            tags={**_str_tags(tags), PARENT_TAG: parent_run_id, TRIAL_KEY_TAG: trial_key,
                  ROLE_TAG: "trial", ATTEMPT_TAG: "1"},
        )
        run_id = run.info.run_id
    else:
        attempt = client.get_run(run_id).data.tags.get(ATTEMPT_TAG, "1")
        client.update_run(run_id, status="RUNNING")
        set_tags(uri, run_id, {**_str_tags(tags), ATTEMPT_TAG: int(attempt) + 1 if attempt.isdigit() else 2})
    if params:
        log_params(uri, run_id, params)
    return run_id


def close_dangling(
    uri: str, experiment_id: str, parent_run_id: str, keep: Iterable[str] = frozenset()
) -> list[str]:
    """Mark the children of parent_run_id still RUNNING (left so by a crashed driver) as KILLED,
    except those whose trial key is in keep (the caller is about to resume them). Returns the
    killed run ids."""
    keep = set(keep)
    client = mlflow_client(uri)
    killed = []
    for run in _search_all(client, experiment_id,
                           f"{_children_filter(parent_run_id)} and attributes.status = 'RUNNING'"):
        if run.data.tags.get(TRIAL_KEY_TAG) in keep:
            continue
        client.set_terminated(run.info.run_id, status="KILLED")
        killed.append(run.info.run_id)
    return killed


# ----------------------------------------------------------------------------- logging


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)  # MLflow stores str(value); compare the same way
    return out


def log_params(uri: str, run_id: str, params: Mapping[str, Any]) -> None:
    """Log params in batches of 100; a param already logged with the same value is skipped, one
    logged with another value raises ParamConflictError naming it (MLflow params are write-once)."""
    client = mlflow_client(uri)
    flat = _flatten(params)
    existing = client.get_run(run_id).data.params
    conflicts = [k for k, v in flat.items() if k in existing and existing[k] != v]
    if conflicts:
        k = conflicts[0]
        raise ParamConflictError(
            f"run {run_id}: param {k} is logged as {existing[k]!r}, cannot log {flat[k]!r}"
            + (f" ({len(conflicts) - 1} more conflicting params)" if len(conflicts) > 1 else "")
        )
    todo = [Param(k, v) for k, v in flat.items() if k not in existing]
    for i in range(0, len(todo), _PARAMS_PER_BATCH):
        client.log_batch(run_id, params=todo[i:i + _PARAMS_PER_BATCH])


def log_metrics(
    uri: str, run_id: str, metrics: Mapping[str, float], step: int | None = None,
    timestamp_ms: int | None = None,
) -> None:
    """Log metrics (one step) in batches of 1000; timestamp_ms defaults to now."""
    ts = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
    log_history(uri, run_id, [{"metrics": metrics, "step": int(step or 0), "timestamp_ms": ts}])


def log_history(uri: str, run_id: str, rows: list[Mapping[str, Any]]) -> None:
    """Log several steps at once ({"metrics", "step", "timestamp_ms"} each): one request per 1000
    values instead of one per step, which is what per-epoch curves cost otherwise."""
    entries = [Metric(str(k), float(v), int(row["timestamp_ms"]), int(row["step"]))
               for row in rows for k, v in row["metrics"].items()]
    client = mlflow_client(uri)
    for i in range(0, len(entries), _METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=entries[i:i + _METRICS_PER_BATCH])


def set_tags(uri: str, run_id: str, tags: Mapping[str, Any]) -> None:
    entries = [RunTag(k, v) for k, v in _str_tags(tags).items()]
    client = mlflow_client(uri)
    for i in range(0, len(entries), _PARAMS_PER_BATCH):
        client.log_batch(run_id, tags=entries[i:i + _PARAMS_PER_BATCH])


def set_terminated(uri: str, run_id: str, status: str = "FINISHED", end_time_ms: int | None = None) -> None:
    """End a run with status FINISHED, FAILED or KILLED (end time: now unless given)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    mlflow_client(uri).set_terminated(run_id, status=status, end_time=end_time_ms)


def log_dict(uri: str, run_id: str, dictionary: Mapping[str, Any], artifact_file: str) -> None:
    mlflow_client(uri).log_dict(run_id, dict(dictionary), artifact_file)


def log_text(uri: str, run_id: str, text: str, artifact_file: str) -> None:
    mlflow_client(uri).log_text(run_id, text, artifact_file)


def log_artifact(uri: str, run_id: str, local_path: str | os.PathLike, artifact_path: str | None = None) -> None:
    """Upload one file (or a folder's contents) under artifact_path."""
    client = mlflow_client(uri)
    if Path(local_path).is_dir():
        client.log_artifacts(run_id, os.fspath(local_path), artifact_path)
    else:
        client.log_artifact(run_id, os.fspath(local_path), artifact_path)


def jsonable(value: Any) -> Any:
    """A numpy scalar as its Python value (json.dumps' default= hook); anything else unchanged."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def log_table(
    uri: str, run_id: str, rows: Sequence[Mapping[str, Any]], artifact_file: str,
    files: Iterable[str | os.PathLike] = (),
) -> None:
    """Log rows (list of dicts, e.g. report.build_table's) with MLflow's log_table (artifact_file
    must end in .json; the UI shows it as a table), plus files (table.md, table.csv) beside it."""
    columns: list[str] = []
    for row in rows:
        columns += [str(k) for k in row if str(k) not in columns]
    data = {c: [jsonable(row.get(c)) for row in rows] for c in columns}
    client = mlflow_client(uri)
    folder_name = os.path.dirname(artifact_file) or None
    if any(a.path == artifact_file for a in client.list_artifacts(run_id, folder_name)):
        # MLflow's log_table appends to an existing table (a resumed study would list its rows
        # twice): overwrite it in the same "split" JSON layout log_table writes.
        client.log_dict(run_id, {"columns": columns, "data": [[data[c][i] for c in columns]
                                                              for i in range(len(rows))]}, artifact_file)
    else:
        client.log_table(run_id, data=data, artifact_file=artifact_file)
    folder = os.path.dirname(artifact_file) or None
    for f in files:
        client.log_artifact(run_id, os.fspath(f), folder)
