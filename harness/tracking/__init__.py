"""MLflow tracking for studies: restore-safe, idempotent, explicit run ids.

The only package of the harness that imports mlflow: callers get what they need from here.
  store.py        URIs, reachability checks, bounded HTTP retries, ERRORS, TrackingError, the client cache
  runs.py         experiments, parent and trial runs found by tag, close_dangling, run_status, log_* helpers
  safe_logger.py  SafeLogger (never-raising, disk-queued logging for rank 0) and replay_pending
"""

from harness.tracking.runs import (
    ATTEMPT_TAG,
    DESCRIPTION_TAG,
    PARENT_TAG,
    ROLE_TAG,
    STATUSES,
    TRIAL_KEY_TAG,
    close_dangling,
    ensure_experiment,
    find_trial_run,
    log_artifact,
    log_dict,
    log_metrics,
    log_params,
    log_table,
    log_text,
    resume_parent,
    run_status,
    runs_view_url,
    runs_views,
    set_runs_view,
    set_tags,
    set_terminated,
    start_parent,
    trial_run,
)
from harness.tracking.safe_logger import SafeLogger, replay_pending
from harness.tracking.store import (
    ERRORS,
    ParamConflictError,
    TrackingError,
    check_reachable,
    default_tracking_uri,
    limit_http_retries,
    moved_store,
    open_existing_store,
    quiet_logging,
)

__all__ = [
    "ERRORS", "TrackingError", "ParamConflictError", "SafeLogger", "replay_pending",
    "PARENT_TAG", "TRIAL_KEY_TAG", "DESCRIPTION_TAG", "ATTEMPT_TAG", "ROLE_TAG", "STATUSES",
    "default_tracking_uri", "limit_http_retries", "check_reachable", "quiet_logging", "moved_store", "open_existing_store",
    "ensure_experiment", "start_parent", "resume_parent", "find_trial_run", "trial_run", "close_dangling",
    "run_status", "log_params", "log_metrics", "set_tags", "set_terminated", "log_dict", "log_text",
    "log_artifact", "log_table", "runs_view_url", "runs_views", "set_runs_view",
]
