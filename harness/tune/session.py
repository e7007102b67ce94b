"""The Ray session of a study: connect to a cluster or start a local Ray, and size trials to it.

A local Ray is started on 127.0.0.1 with ports chosen here, so its address is known before it
starts and several Rays on one host (tests, two studies) never find each other. Every listener of
a local Ray (GCS, raylet, workers, dashboard and its agents) binds to loopback only: anyone who can
reach a Ray port can run code as the user. A cluster (--address) binds where its nodes were
started (`ray start` in cluster.yaml: the private address), as before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from typing import Any, Iterator

from harness.config import ComputeConfig, ConfigError


# What a trial's process pays for once (imports, the MLflow store) is paid when Ray starts the
# worker, before any trial's clock starts (harness/tune/worker_setup.py; a module path, so the
# driver need not import torch for it).
_WORKER_SETUP = {"worker_process_setup_hook": "harness.tune.worker_setup.setup_worker"}


def check_ray_address(address: str | None, timeout_s: float = 5.0) -> None:
    """Fail in seconds, with one line, when --address names a host:port nothing listens on
    (ray.init itself retries for minutes)."""
    if not address or address in ("local", "auto"):
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address must be HOST:PORT, ray://HOST:PORT or auto, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at --address {address}: {exc.strerror or exc}") from None


LOOPBACK = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))  # where the local Ray will bind it
        return s.getsockname()[1]


def init_ray(address: str | None, worker_env: dict[str, str] | None = None) -> bool:
    """Connect to `address` or start a local Ray; returns True when we started it (and must stop it).
    worker_env: extra environment variables of the study's worker processes."""
    import ray

    from harness import tracking
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    # Keep Ray's own console output out of the way: the live view reports progress instead.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    tracking.quiet_logging()
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR, "configure_logging": True}
    # Every process of the study gets RAY_ADDRESS = this cluster. Ray Train's placement-group
    # cleaner asks the state API with no address; on a host running several Ray instances (tests,
    # two studies) that lookup fails or finds another cluster, and a finished trial's placement
    # group is never removed: the next trial then waits for CPUs forever.
    if address:
        target = address.split("://", 1)[-1]
        if "://" not in address and target not in ("auto", "local"):
            kwargs["runtime_env"] = {"env_vars": {"RAY_ADDRESS": target, **(worker_env or {})}, **_WORKER_SETUP}
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot reach the Ray cluster at --address {address}: {str(exc).splitlines()[0]}") from None
        return False
    # A local Ray whose GCS port we choose, so its address is known before it starts, and a
    # dashboard on a free port: the state API behind that cleaner is the dashboard, and the
    # default port 8265 belongs to whichever Ray on this host took it first.
    # On loopback (inside `loopback_only()`, which ray_session enters): the node address 127.0.0.1
    # makes Ray bind the GCS, the raylet, the workers and the dashboard agent there; the dashboard
    # has its own host. Authentication stays at Ray's default (token auth for a new local Ray).
    kwargs.update(_node_ip_address=LOOPBACK, dashboard_host=LOOPBACK)
    previous = os.environ.get("RAY_GCS_SERVER_PORT")
    for attempt in (1, 2):
        port = _free_port()
        kwargs["dashboard_port"] = _free_port()
        kwargs["runtime_env"] = {"env_vars": {"RAY_ADDRESS": f"{LOOPBACK}:{port}", **(worker_env or {})},
                                 **_WORKER_SETUP}
        os.environ["RAY_GCS_SERVER_PORT"] = str(port)  # read by the head node as it starts
        try:
            # One extra CPU slot holds the trial drivers' 0.01-CPU reservations (a Tune function trial
            # cannot ask for 0 CPU), so on 2 cores two 1-CPU trial workers still run at once.
            # address="local": a new Ray of our own. Without it ray.init() joins whatever cluster the last
            # `ray start` (or a test's ray.cluster_utils.Cluster) recorded in /tmp/ray/ray_current_cluster,
            # even a dead one, and then refuses num_cpus.
            ray.init(address="local", num_cpus=(os.cpu_count() or 1) + 1, **kwargs)
            break
        except Exception as exc:  # Ray's own bare Exception when its node is not up within 30 s
            if "timed out during startup" not in str(exc):
                raise
            ray.shutdown()
            if attempt == 2:
                raise ConfigError("a local Ray did not start within Ray's 30 s, twice (is the machine overloaded?); "
                                  "try again, or pass --address of a running cluster") from None
        finally:
            if previous is None:
                os.environ.pop("RAY_GCS_SERVER_PORT", None)
            else:
                os.environ["RAY_GCS_SERVER_PORT"] = previous
    return True


# Ray's switch for "this host is not part of a cluster". Ray replaces a node address of 127.0.0.1
# by the host's routable address (services.resolve_ip_for_localhost) unless it is off, and then
# every gRPC server of the node listens on all interfaces; off, the node address is loopback.
_SINGLE_HOST_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """For the block, a Ray started in this process is a single node on 127.0.0.1: the switch is
    set in this process (Ray reads it at call time) and in the environment that every process of
    the node inherits (its workers look their node address up too). Restored afterwards, so a
    later --address session of the same process (tests) is a cluster client as before."""
    import ray._private.ray_constants as ray_constants
    saved = os.environ.get(_SINGLE_HOST_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_SINGLE_HOST_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if saved[0] is None:
            os.environ.pop(_SINGLE_HOST_ENV, None)
        else:
            os.environ[_SINGLE_HOST_ENV] = saved[0]
        ray_constants.ENABLE_RAY_CLUSTER = saved[1]


@contextlib.contextmanager
def ray_session(address: str | None, tracking_uri: str = "") -> Iterator[bool]:
    """A Ray for the block: `address`'s cluster, or a local one on loopback only that is shut down
    afterwards. Yields True when the Ray is ours (one CPU slot of it holds the trial drivers).
    tracking_uri: the study's MLflow store, which each worker opens as it starts (worker_setup)."""
    from harness.tune.worker_setup import TRACKING_ENV
    import ray
    local = address in (None, "", "local")
    with loopback_only() if local else contextlib.nullcontext():
        started = init_ray(None if local else address, {TRACKING_ENV: tracking_uri} if tracking_uri else None)
        try:
            yield started
        finally:
            if started:
                ray.shutdown()


def worker_resources(compute: ComputeConfig) -> dict[str, float]:
    """What one Ray Train worker of a trial asks for."""
    resources = {"CPU": float(compute.cpus_per_worker)}
    if compute.gpus_per_worker:
        resources["GPU"] = float(compute.gpus_per_worker)
    return resources


def describe(compute: ComputeConfig) -> str:
    gpu = f" + {compute.gpus_per_worker:g} GPU" if compute.gpus_per_worker else ""
    return f"{compute.workers_per_trial} worker(s) x {compute.cpus_per_worker:g} CPU{gpu} each"


def check_capacity(compute: ComputeConfig, started: bool, say) -> None:
    """A worker no node can hold (a GPU on a CPU-only machine) would wait forever, silently: on our
    own Ray that is one line now; on a cluster, a warning (its autoscaler may add such a node)."""
    import ray
    need = worker_resources(compute)
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if any(all(r.get(k, 0.0) >= v for k, v in need.items()) for r in nodes):
        return
    most = ", ".join(f"{max((r.get(k, 0.0) for r in nodes), default=0.0):g} {k}" for k in need)
    problem = (f"no Ray node can hold a trial worker ({' + '.join(f'{v:g} {k}' for k, v in need.items())}"
               f" each; the largest node has {most})")
    if started:
        raise ConfigError(f"{problem}: lower --cpus-per-worker / --gpus-per-worker, or pass --address "
                          f"of a cluster that has such nodes")
    say(f"warning: {problem}: the trials wait until the cluster's autoscaler adds such a node")


def concurrency(compute: ComputeConfig, started: bool, requested: int | None) -> int:
    """Trials at once: `requested`, else as many as the cluster's CPUs hold."""
    import ray
    per_trial = compute.workers_per_trial * compute.cpus_per_worker
    cpus = ray.cluster_resources().get("CPU", 1) - (1 if started else 0)  # minus the drivers' slot
    return requested or max(1, int(cpus // per_trial))
