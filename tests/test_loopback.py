"""A local Ray listens on loopback only; a cluster (--address) is joined as before.

- fast: what `init_ray` hands `ray.init` for a local Ray and for a cluster, and that
  `loopback_only()` puts Ray's single-host switch back;
- slow: a tiny debug ablation through `run_ablation.py` (local Ray, Tune, a trial, the dashboard),
  with the listening sockets of every process it started polled while it runs: any address other
  than loopback fails. Authentication is left at Ray's default (token auth, its token written in a
  scratch HOME), so the run also shows that the harness works with it.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ray  # noqa: F401  (before psutil: a plain install has psutil, and Ray ships the same version)
import psutil

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "pretrain.epochs=1", "--set", "sign2text.epochs=1", "--set", "text2sign.epochs=1",
        "--set", "backtranslator.epochs=1", "--set", "data.synth.train=12", "--set", "data.synth.dev=4",
        "--set", "data.synth.test=4"]


def is_loopback(ip: str) -> bool:
    """127.0.0.1, ::1, or 127.0.0.1 as an IPv4-mapped IPv6 address (gRPC's dual-stack sockets)."""
    addr = ipaddress.ip_address(ip)
    mapped = getattr(addr, "ipv4_mapped", None)
    return str(mapped or addr) in ("127.0.0.1", "::1")


def test_is_loopback_refuses_every_interface():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.1")
    assert not any(is_loopback(ip) for ip in ("0.0.0.0", "::", "192.0.2.2", "::ffff:192.0.2.2", "10.0.0.1"))


def _init_kwargs(monkeypatch, address: str | None) -> dict:
    """What init_ray(address) passes to ray.init (nothing is started), and Ray's single-host
    switch at that moment."""
    import ray._private.ray_constants as ray_constants

    from harness.tune import session
    seen: dict = {}

    def fake_init(**kwargs):
        seen.update(kwargs, single_host=not ray_constants.ENABLE_RAY_CLUSTER,
                    env=os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"), auth=os.environ.get("RAY_AUTH_MODE"))

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setattr(ray, "init", fake_init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    with session.ray_session(address):
        pass
    return seen


def test_a_local_ray_is_asked_for_loopback_and_keeps_rays_default_authentication(monkeypatch):
    import ray._private.ray_constants as ray_constants
    before = ray_constants.ENABLE_RAY_CLUSTER, os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    kw = _init_kwargs(monkeypatch, None)
    assert kw["address"] == "local" and kw["_node_ip_address"] == "127.0.0.1" and kw["dashboard_host"] == "127.0.0.1"
    assert kw["runtime_env"]["env_vars"]["RAY_ADDRESS"].startswith("127.0.0.1:")
    # Without the switch Ray turns 127.0.0.1 back into the routable address (and binds everywhere).
    assert kw["single_host"] and kw["env"] == "0"
    assert kw["auth"] is None  # not disabled by the harness
    # Put back afterwards: a later --address session of this process is a cluster client.
    assert (ray_constants.ENABLE_RAY_CLUSTER, os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")) == before


def test_a_cluster_is_joined_at_its_own_address(monkeypatch):
    kw = _init_kwargs(monkeypatch, "10.0.0.5:6379")
    assert kw["address"] == "10.0.0.5:6379" and kw["runtime_env"]["env_vars"]["RAY_ADDRESS"] == "10.0.0.5:6379"
    assert "_node_ip_address" not in kw and "dashboard_host" not in kw
    assert not kw["single_host"] and kw["env"] is None


def _listeners(root: psutil.Process) -> set[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP socket of `root` and its descendants."""
    out = set()
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return out
    for p in procs:
        try:
            name = p.name()
            out |= {(name, c.laddr.ip, c.laddr.port) for c in p.net_connections(kind="tcp")
                    if c.status == psutil.CONN_LISTEN}
        except psutil.Error:  # a worker that ended between the listing and the look
            pass
    return out


@pytest.mark.slow
def test_a_debug_ablation_listens_on_loopback_only(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "harness/run_ablation.py", "apw", "--profile", "debug", "--only", "none",
           "--results", str(tmp_path / "results"), *TINY]
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        seen: set[tuple[str, str, int]] = set()
        deadline = time.time() + 600
        try:
            root = psutil.Process(proc.pid)
            while proc.poll() is None and time.time() < deadline:
                seen |= _listeners(root)
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                proc.kill()
            rc = proc.wait()
    assert rc == 0, log.read_text()[-3000:]
    names = {name for name, _, _ in seen}
    # The run was watched while Ray was up: its GCS, raylet, dashboard agent and a trial worker.
    assert {"gcs_server", "raylet", "ray::DashboardAgent"} <= names, sorted(seen)
    assert any(n.startswith("ray::") and "Agent" not in n for n in names), sorted(seen)
    outside = sorted(s for s in seen if not is_loopback(s[1]))
    assert not outside, f"listening beyond loopback: {outside}"
    assert (home / ".ray" / "auth_token").is_file()  # Ray's default: token authentication
