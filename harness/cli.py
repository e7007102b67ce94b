"""Shared command-line plumbing of run_ablation.py and run_search.py: the flags both take, the
checks before anything runs, and one-line errors for user mistakes (no tracebacks)."""

from __future__ import annotations

import argparse
import errno
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Callable

from harness.config import ConfigError
from harness.data.record import DataError

# A disk that filled up or a folder made read-only mid-run is the user's to fix, not a bug.
_USER_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


class Parser(argparse.ArgumentParser):
    """argparse whose own errors (a bad flag value, an unknown flag) are one line on stderr, exit 2,
    like every other user error: the usage block is behind --help."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def add_run_flags(p: argparse.ArgumentParser, storage_help: str) -> None:
    """The flags that say where a study runs, logs and stores, and how trials are sized."""
    p.add_argument("--results", default="results", help="results folder (default ./results); with --storage, "
                   "this node's working copy (the same path on every node)")
    p.add_argument("--storage", metavar="URI", help="shared storage for a cluster whose nodes share no file system "
                   f"(s3://BUCKET/PREFIX, or any pyarrow.fs URI): {storage_help}")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///RESULTS/mlflow.db)")
    p.add_argument("--address", help="Ray cluster address (default: a local Ray)")
    p.add_argument("--workers-per-trial", type=int)
    p.add_argument("--gpus-per-worker", type=float)
    p.add_argument("--cpus-per-worker", type=float)


def absolute_uri(uri: str | None, flag: str) -> str | None:
    """A local path in a --tracking-uri or --storage value made absolute (sqlite:///rel.db,
    file:rel, a bare path): Ray runs every trial in its own working folder, where a relative path
    names another file (and a relative sqlite store would be created there, empty)."""
    if not uri:
        return uri
    scheme, sep, rest = uri.partition(":")
    if not sep or "/" in scheme:  # a bare path ("results/x", "./x:y")
        path = os.path.abspath(Path(uri).expanduser())
        return Path(path).as_uri() if flag == "--storage" else path
    if scheme == "sqlite" and rest.startswith("///") and rest[3:] and not rest[3:].startswith(("/", ":memory:")):
        return f"sqlite:///{os.path.abspath(Path(rest[3:]).expanduser())}"
    if scheme == "file" and not rest.startswith("/"):
        return Path(os.path.abspath(rest)).as_uri()
    return uri


def absolute_paths(args: argparse.Namespace) -> argparse.Namespace:
    """The flags that name local paths, made absolute once, on the driver, before anything else
    reads them (and before Ray starts trials in folders of their own)."""
    return argparse.Namespace(**{**vars(args), "results": os.path.abspath(Path(args.results).expanduser()),
                                 "tracking_uri": absolute_uri(args.tracking_uri, "--tracking-uri"),
                                 "storage": absolute_uri(args.storage, "--storage")})


def compute_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """--workers-per-trial and friends as dotted overrides of `compute`."""
    return {f"compute.{k}": v for k, v in (("workers_per_trial", args.workers_per_trial),
                                           ("gpus_per_worker", args.gpus_per_worker),
                                           ("cpus_per_worker", args.cpus_per_worker)) if v is not None}


def check_results_folder(results: Path) -> None:
    """An unwritable results folder fails now, in one line, not after hours of training."""
    try:
        results.mkdir(parents=True, exist_ok=True)
        probe = results / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write to the results folder {results}: {exc.strerror or exc}") from None


def preflight(args: argparse.Namespace) -> tuple[Path, str]:
    """Before any training: the results folder is writable, the tracking store and the Ray cluster
    answer. Returns the absolute results folder and the tracking URI."""
    from harness import tracking
    from harness.tune.session import check_ray_address
    results = Path(args.results).resolve()
    check_results_folder(results)
    uri = args.tracking_uri or tracking.default_tracking_uri(results)
    tracking.check_reachable(uri)
    check_ray_address(args.address)
    return results, uri


def command_line(argv: list[str] | None) -> str:
    """The command as typed, for the parent run's tags."""
    return " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:]))


def writing(results: Path, run: Callable[[], Any]) -> Any:
    """`run()`, with a full disk or a read-only folder as one line: finished stages stay cached."""
    try:
        return run()
    except OSError as exc:
        if exc.errno not in _USER_ERRNOS:
            raise
        raise ConfigError(f"cannot write {exc.filename or results}: {exc.strerror}; free space or fix "
                          f"permissions, then rerun with --resume") from None


def mlflow_hint(uri: str, experiment_id: str = "") -> str:
    """How to look at a run's MLflow store: the UI from this environment (its `mlflow`, on 127.0.0.1)
    and the URL of the experiment's runs table, or that URL on a tracking server."""
    from harness.tracking import runs_view_url
    if uri.startswith(("http://", "https://")):
        return f"Compare in MLflow:  open {runs_view_url(uri, experiment_id) if experiment_id else uri}"
    mlflow = Path(sys.executable).parent / "mlflow"
    base = "http://127.0.0.1:5000"
    return (f"Compare in MLflow:  {shlex.quote(str(mlflow))} ui --backend-store-uri {shlex.quote(uri)} --host 127.0.0.1 "
            f"--port 5000  then open {runs_view_url(base, experiment_id) if experiment_id else base}")


def user_errors() -> tuple[type[BaseException], ...]:
    from harness.tracking import TrackingError
    return ConfigError, DataError, TrackingError


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run `main`; a user error prints `error: <one line>` on stderr and exits 2."""
    try:
        return main(argv)
    except user_errors() as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished stages are cached; rerun with --resume to continue", file=sys.stderr)
        return 130
