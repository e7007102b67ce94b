"""`--storage URI` (harness/storage.py; docs/cluster.md "Storage"): the remote mirror of the stage
cache and the trial results, on file:// URIs, on an S3 API (a moto server on loopback), and end to
end through run_ablation.py on two results folders that share one storage URI ("two nodes")."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.config import ConfigError
from harness.cache import StageCache
from harness.io import load_torch, save_torch
from harness.loop import local_runtime
from harness.stages import Stage, cached_run
from harness.storage import NO_REMOTE, Remote, open_storage, pull_trial_folder, push_trial

ROOT = Path(__file__).resolve().parents[1]


def _write(folder: Path) -> None:
    save_torch({"x": list(range(100))}, folder / "model.pt")
    (folder / "metrics.json").write_text('{"bleu4": 1.0}')
    (folder / "sub").mkdir()
    (folder / "sub" / "notes.txt").write_text("nested files travel too")


class RecordingRemote(Remote):
    """A file:// remote that records the order of its uploads and deletions."""

    def __init__(self, uri: str):
        super().__init__(uri)
        self.calls: list[tuple[str, str]] = []

    def upload_file(self, local, rel):
        self.calls.append(("upload", rel))
        super().upload_file(local, rel)

    def delete_file(self, rel):
        self.calls.append(("delete", rel))
        super().delete_file(rel)


# --------------------------------------------------------------------------------------------
# harness/storage.py
# --------------------------------------------------------------------------------------------

def test_remote_files_and_folders(tmp_path):
    remote = Remote((tmp_path / "bucket" / "prefix").as_uri())
    assert remote.list_files() == [] and not remote.exists("a.txt") and remote.read_bytes("a.txt") is None
    remote.write_bytes("x/a.txt", b"alpha")
    assert remote.exists("x/a.txt") and remote.read_bytes("x/a.txt") == b"alpha"
    assert (tmp_path / "bucket" / "prefix" / "x" / "a.txt").read_bytes() == b"alpha"  # where file:// puts it
    assert not remote.exists("x")  # a folder is not a file

    src = tmp_path / "src"
    (src / "deep").mkdir(parents=True)
    (src / "one.bin").write_bytes(bytes(range(256)) * 5000)  # > 1 MiB: several copy chunks
    (src / "deep" / "two.txt").write_text("two")
    assert remote.upload_folder(src, "folder") == ["deep/two.txt", "one.bin"]
    assert remote.list_files("folder") == ["deep/two.txt", "one.bin"]
    assert remote.download_file("folder/one.bin", tmp_path / "dst" / "one.bin")
    assert (tmp_path / "dst" / "one.bin").read_bytes() == (src / "one.bin").read_bytes()
    assert not remote.download_file("folder/nope", tmp_path / "dst" / "nope")
    assert not (tmp_path / "dst" / "nope").exists() and os.listdir(tmp_path / "dst") == ["one.bin"]  # no temp left

    (src / "one.bin").unlink()  # mirror: what is gone here goes remotely too
    remote.upload_folder(src, "folder", mirror=True)
    assert remote.list_files("folder") == ["deep/two.txt"]
    remote.delete_file("folder/deep/two.txt")
    remote.delete_file("folder/deep/two.txt")  # deleting what is not there is not an error
    assert remote.list_files("folder") == []


def test_child_uri_keeps_the_query_last(tmp_path):
    assert Remote(tmp_path.as_uri()).child_uri("ray") == f"{tmp_path.as_uri()}/ray"
    remote = Remote.__new__(Remote)
    remote.uri = "s3://bucket/prefix/?endpoint_override=127.0.0.1:9000&scheme=http"
    assert remote.child_uri("/ray/") == "s3://bucket/prefix/ray?endpoint_override=127.0.0.1:9000&scheme=http"


def test_remote_pickles_as_its_uri(tmp_path):
    import pickle
    remote = Remote(tmp_path.as_uri())
    remote.write_bytes("k", b"v")
    again = pickle.loads(pickle.dumps(remote))
    assert again.uri == remote.uri and again.read_bytes("k") == b"v"


def test_download_missing_merges_pending_queues(tmp_path):
    remote = Remote((tmp_path / "remote").as_uri())
    node_a, node_b = tmp_path / "a", tmp_path / "b"
    (node_a / "pending").mkdir(parents=True)
    (node_a / "pending" / "pending-r1.jsonl").write_text('{"op": 1}\n{"op": 2}\n')
    (node_a / "worker0.log").write_text("attempt 1 on node a\n")
    remote.upload_folder(node_a, "t")
    (node_b / "pending").mkdir(parents=True)
    (node_b / "pending" / "pending-r1.jsonl").write_text('{"op": 2}\n{"op": 3}\n')
    assert sorted(remote.download_missing("t", node_b)) == ["pending/pending-r1.jsonl", "worker0.log"]
    assert (node_b / "worker0.log").read_text() == "attempt 1 on node a\n"
    assert (node_b / "pending" / "pending-r1.jsonl").read_text() == '{"op": 2}\n{"op": 3}\n{"op": 1}\n'
    assert remote.download_missing("t", node_b) == []  # nothing new the second time


def test_trial_outputs_round_trip_and_replayed_queues_disappear(tmp_path):
    remote = Remote((tmp_path / "remote").as_uri())
    node_a, head = tmp_path / "a", tmp_path / "head"
    trial = node_a / "abl" / "trials" / "v-seed0"
    (trial / "pending").mkdir(parents=True)
    (trial / "pending" / "pending-r1.jsonl").write_text('{"op": 1}\n')
    (trial / "worker0.log").write_text("log\n")
    (node_a / "abl" / "trials" / "v-seed0.json").write_text('{"config_key": "c"}')
    push_trial(remote, node_a, "abl", "v-seed0")
    assert remote.list_files("abl/trials") == ["v-seed0.json", "v-seed0/pending/pending-r1.jsonl",
                                               "v-seed0/worker0.log"]
    pull_trial_folder(remote, head, "abl", "v-seed0")
    local = head / "abl" / "trials" / "v-seed0"
    assert (local / "worker0.log").read_text() == "log\n"
    (local / "pending" / "pending-r1.jsonl").unlink()  # replayed into MLflow on the head
    push_trial(remote, head, "abl", "v-seed0", result=False)
    assert remote.list_files("abl/trials") == ["v-seed0.json", "v-seed0/worker0.log"]
    push_trial(NO_REMOTE, head, "abl", "v-seed0")  # no --storage: nothing to do
    pull_trial_folder(NO_REMOTE, head, "abl", "v-seed0")
    assert remote.list_files("abl/trials") == ["v-seed0.json", "v-seed0/worker0.log"]


def test_result_file_is_uploaded_after_the_trial_folder(tmp_path):
    remote = RecordingRemote((tmp_path / "remote").as_uri())
    (tmp_path / "abl" / "trials" / "k").mkdir(parents=True)
    (tmp_path / "abl" / "trials" / "k" / "worker0.log").write_text("x")
    (tmp_path / "abl" / "trials" / "k.json").write_text("{}")
    push_trial(remote, tmp_path, "abl", "k")
    assert [rel for op, rel in remote.calls if op == "upload"] == ["abl/trials/k/worker0.log", "abl/trials/k.json"]


@pytest.mark.parametrize("uri, reason", [
    ("gs2://bucket/x", "Unrecognized filesystem type in URI"),
    ("s3://", "it names no bucket or folder"),
    ("relative/folder", "URI has empty scheme"),
])
def test_bad_storage_uri_is_a_config_error(uri, reason):
    with pytest.raises(ConfigError) as err:
        open_storage(uri)
    assert str(err.value).startswith(f"cannot use --storage {uri}: ") and reason in str(err.value)
    assert "\n" not in str(err.value)


def test_unwritable_storage_is_a_config_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ConfigError, match=r"cannot use --storage file://.*/file/sub: "):
        open_storage((tmp_path / "file" / "sub").as_uri())
    assert open_storage(None) is NO_REMOTE and not open_storage(None)
    remote = open_storage((tmp_path / "new" / "folder").as_uri())  # a missing local folder is created
    assert remote.list_files() == []  # and the write probe is gone


# --------------------------------------------------------------------------------------------
# The stage cache with a remote
# --------------------------------------------------------------------------------------------

def test_commit_uploads_files_first_and_done_json_last(tmp_path):
    remote = RecordingRemote((tmp_path / "remote").as_uri())
    cache = StageCache(tmp_path / "node_a", remote)
    cache.commit("pretrain", "k", _write, {"seconds": 1.0})
    assert remote.calls[0] == ("delete", "cache/pretrain/k/DONE.json")  # an old marker goes before its files
    uploads = [rel for op, rel in remote.calls if op == "upload"]
    assert uploads[-1] == "cache/pretrain/k/DONE.json"
    assert sorted(uploads[:-1]) == ["cache/pretrain/k/metrics.json", "cache/pretrain/k/model.pt",
                                    "cache/pretrain/k/sub/notes.txt"]
    assert remote.read_bytes("cache/pretrain/k/DONE.json") == (cache.entry("pretrain", "k").file("DONE.json")
                                                               .read_bytes())
    assert cache.is_complete("pretrain", "k")


def test_a_failed_upload_leaves_no_local_entry(tmp_path):
    class Broken(Remote):
        def upload_file(self, local, rel):
            raise OSError("connection reset")
    cache = StageCache(tmp_path / "node", Broken((tmp_path / "remote").as_uri()))
    with pytest.raises(OSError, match="connection reset"):
        cache.commit("pretrain", "k", _write)
    # A retry must recompute and upload, not find a local-only entry.
    assert not cache.entry("pretrain", "k").path.exists() and os.listdir(tmp_path / "node" / "pretrain") == []


def test_two_nodes_share_one_remote(tmp_path):
    remote_uri = (tmp_path / "remote").as_uri()
    node_a = StageCache(tmp_path / "node_a", Remote(remote_uri))
    node_b = StageCache(tmp_path / "node_b", Remote(remote_uri))
    node_a.commit("pretrain", "k", _write, {"seconds": 2.5})
    assert not node_b.is_complete("pretrain", "k")  # nothing local on node b yet
    assert node_b.has_files("pretrain", "k")  # but the plan counts it as cached
    assert node_b.lookup("pretrain", "k")  # miss -> download -> verify -> rename
    assert node_b.is_complete("pretrain", "k")
    assert load_torch(node_b.entry("pretrain", "k").file("model.pt")) == {"x": list(range(100))}
    assert node_b.entry("pretrain", "k").file("sub/notes.txt").read_text() == "nested files travel too"
    assert json.loads(node_b.entry("pretrain", "k").file("DONE.json").read_text())["meta"] == {"seconds": 2.5}
    assert [p.name for p in (tmp_path / "node_b" / "pretrain").iterdir()] == ["k"]  # no temp folder left
    assert not node_b.lookup("pretrain", "other") and not node_b.has_files("pretrain", "other")
    assert not StageCache(tmp_path / "node_c").has_files("pretrain", "k")  # no remote: local only


def _tamper(remote_root: Path) -> None:
    model = remote_root / "cache" / "pretrain" / "k" / "model.pt"
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF  # same size, other content: only the hash can tell
    model.write_bytes(bytes(data))


def test_tampered_remote_entry_is_not_loaded(tmp_path):
    remote_uri = (tmp_path / "remote").as_uri()
    StageCache(tmp_path / "node_a", Remote(remote_uri)).commit("pretrain", "k", _write)
    _tamper(tmp_path / "remote")
    node_b = StageCache(tmp_path / "node_b", Remote(remote_uri))
    assert not node_b.lookup("pretrain", "k")
    assert not node_b.entry("pretrain", "k").path.exists()
    assert os.listdir(tmp_path / "node_b" / "pretrain") == []  # the download is gone too


def test_remote_manifest_naming_a_missing_or_unsafe_file_is_not_loaded(tmp_path):
    remote = Remote((tmp_path / "remote").as_uri())
    StageCache(tmp_path / "node_a", remote).commit("pretrain", "k", _write)
    (tmp_path / "remote" / "cache" / "pretrain" / "k" / "metrics.json").unlink()
    assert not StageCache(tmp_path / "node_b", remote).lookup("pretrain", "k")
    manifest = json.loads(remote.read_bytes("cache/pretrain/k/DONE.json"))
    manifest["files"] = {"../../escape.txt": {"size": 1, "sha256": "0"}}
    remote.write_bytes("cache/pretrain/k/DONE.json", json.dumps(manifest).encode())
    assert not StageCache(tmp_path / "node_c", remote).lookup("pretrain", "k")
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "node_c" / "escape.txt").exists()


PRETRAIN_LIKE = Stage(name="pretrain", needs=(), settings=lambda cfg: {}, run=lambda ctx: None,
                      save=lambda out, folder: save_torch(out, folder / "model.pt"),
                      load=lambda folder: load_torch(folder / "model.pt"))


class _Node:
    """One node's view for `cached_run`: its cache (mirrored to the remote) and a local runtime."""

    def __init__(self, root: Path, remote_uri: str, said: list[str]):
        self.cache = StageCache(root, Remote(remote_uri))
        self.runtime = local_runtime(said.append)
        self.status: dict[str, str] = {}


def _trial(root: Path, remote_uri: str, said: list[str]) -> _Node:
    return _Node(root, remote_uri, said)


def _cached(node: _Node, value: dict, produced: list[int]):
    def produce():
        produced.append(1)
        return value
    out, node.status["pretrain"] = cached_run(PRETRAIN_LIKE, "k", node.cache, node.runtime, produce)
    return out


def test_trial_loads_what_another_node_computed(tmp_path):
    remote_uri = (tmp_path / "remote").as_uri()
    said, produced = [], []
    first = _trial(tmp_path / "node_a", remote_uri, said)
    assert _cached(first, {"w": 1}, produced) == {"w": 1} and first.status == {"pretrain": "computed"}
    second = _trial(tmp_path / "node_b", remote_uri, said)
    assert _cached(second, {"w": 2}, produced) == {"w": 1}  # node a's, not recomputed
    assert second.status == {"pretrain": "cached"} and produced == [1]
    assert not any("failed verification" in s for s in said)


def test_trial_recomputes_a_remote_entry_that_fails_verification(tmp_path):
    remote_uri = (tmp_path / "remote").as_uri()
    said, produced = [], []
    StageCache(tmp_path / "node_a", Remote(remote_uri)).commit("pretrain", "k", _write)
    _tamper(tmp_path / "remote")
    trial = _trial(tmp_path / "node_b", remote_uri, said)
    assert _cached(trial, {"w": 2}, produced) == {"w": 2}
    assert trial.status == {"pretrain": "computed"} and produced == [1]
    assert "pretrain: cache entry k failed verification; recomputing" in said
    # The recomputed entry replaced the bad one remotely: a third node loads it.
    third = _trial(tmp_path / "node_c", remote_uri, said)
    assert _cached(third, {"w": 3}, produced) == {"w": 2} and third.status == {"pretrain": "cached"}


# --------------------------------------------------------------------------------------------
# A real S3 API: a moto server on loopback
# --------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    """`moto_server` on 127.0.0.1 in its own process group; yields its http://host:port."""
    moto = Path(sys.executable).with_name("moto_server")
    if not moto.exists():
        pytest.fail("moto_server is missing: install the test extra (pip install -e '.[test]')")
    port = _free_port()
    proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"moto_server did not start (exit {proc.poll()})")
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # its own group: only what this fixture started
        proc.wait(timeout=30)


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch):
    """The AWS SDK in pyarrow reads the endpoint from AWS_ENDPOINT_URL (so a plain s3:// URI works,
    as on the cluster); fake credentials, and no EC2 metadata lookups."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    import pyarrow.fs as pafs
    bucket = f"uniglor-{os.getpid()}-{time.time_ns()}"
    pafs.S3FileSystem(endpoint_override=s3_endpoint, scheme="http", access_key="test", secret_key="test",
                      region="us-east-1", allow_bucket_creation=True).create_dir(bucket)
    return bucket


def test_stage_cache_round_trip_through_s3(tmp_path, s3_env):
    uri = f"s3://{s3_env}/uniglor"
    remote = open_storage(uri)
    assert type(remote.fs).__name__ == "S3FileSystem"
    node_a = StageCache(tmp_path / "node_a", remote)
    node_a.commit("pretrain", "k", _write, {"seconds": 1.0})
    assert remote.list_files("cache/pretrain/k") == ["DONE.json", "metrics.json", "model.pt", "sub/notes.txt"]
    node_b = StageCache(tmp_path / "node_b", open_storage(uri))
    assert node_b.has_files("pretrain", "k") and node_b.lookup("pretrain", "k")
    assert load_torch(node_b.entry("pretrain", "k").file("model.pt")) == {"x": list(range(100))}
    # Tampered in the bucket: not loaded.
    model = remote.read_bytes("cache/pretrain/k/model.pt")
    remote.write_bytes("cache/pretrain/k/model.pt", model[:-1] + bytes([model[-1] ^ 0xFF]))
    node_c = StageCache(tmp_path / "node_c", open_storage(uri))
    assert not node_c.lookup("pretrain", "k") and not node_c.entry("pretrain", "k").path.exists()
    # The same endpoint given in the URI's query instead of the environment.
    endpoint = os.environ.pop("AWS_ENDPOINT_URL").split("://", 1)[1]
    try:
        by_query = open_storage(f"s3://{s3_env}/uniglor?endpoint_override={endpoint}&scheme=http")
        assert by_query.list_files("cache/pretrain/k/sub") == ["notes.txt"]
    finally:
        os.environ["AWS_ENDPOINT_URL"] = f"http://{endpoint}"


def test_missing_bucket_is_one_line(s3_env):
    with pytest.raises(ConfigError) as err:
        open_storage(f"s3://{s3_env}-nosuch/uniglor")
    assert str(err.value).startswith(f"cannot use --storage s3://{s3_env}-nosuch/uniglor: ")
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------

def _run(script: str, *args: str, timeout: int = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, f"harness/{script}", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "RAY_AUTH_MODE": "disabled", **(env or {})})


def _cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return _run("run_ablation.py", *args, **kwargs)


def test_unreachable_storage_is_one_line_before_anything_runs(tmp_path):
    port = _free_port()  # nothing listens there
    uri = f"s3://bucket/uniglor?endpoint_override=127.0.0.1:{port}&scheme=http"
    out = _cli("stride", "--profile", "debug", "--results", str(tmp_path), "--storage", uri,
               env={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_EC2_METADATA_DISABLED": "true"})
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith(f"error: cannot use --storage {uri}: ") and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1
    assert not (tmp_path / "cache").exists() and not (tmp_path / "mlflow.db").exists()  # nothing ran


def test_dry_run_counts_remote_entries_as_cached(tmp_path):
    from harness.ablation import load_ablation
    from harness.stages import stage_keys
    from harness.tune.ablation import plan_trials
    spec = load_ablation("stride")
    trial = plan_trials(spec, "debug", 1, {}, {}, ["s7"])[0]
    key = stage_keys(trial.cfg, spec.tasks)["pretrain"]
    StageCache(tmp_path / "node_a" / "cache", Remote((tmp_path / "remote").as_uri())).commit("pretrain", key, _write)
    out = _cli("stride", "--profile", "debug", "--only", "s7", "--dry-run", "--json",
               "--results", str(tmp_path / "node_b"), "--storage", (tmp_path / "remote").as_uri())
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["stages"]["pretrain"] == {"distinct": 1, "cached": 1}


# --------------------------------------------------------------------------------------------
# End to end: two results folders ("nodes") sharing one --storage
# --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_second_node_loads_every_stage_from_the_storage(tmp_path):
    from test_multinode import TINY
    storage = tmp_path / "B"
    args = ["stride", "--only", "s7", "--profile", "debug", "--storage", storage.as_uri(), *TINY]
    first = _cli(*args, "--results", str(tmp_path / "A"), timeout=900)
    assert first.returncode == 0, f"{first.stdout[-3000:]}\n{first.stderr[-3000:]}"
    result_a = json.loads((tmp_path / "A" / "stride" / "trials" / "s7-seed0.json").read_text())
    assert set(result_a["stages"].values()) == {"computed"}
    manifests = {p.relative_to(storage): p.read_bytes() for p in (storage / "cache").rglob("DONE.json")}
    assert {p.parts[1] for p in manifests} == {"prepare", "pretrain", "probe", "isolated", "figure5", "embed",
                                               "sign2text"}
    assert (storage / "stride" / "trials" / "s7-seed0.json").is_file()
    assert (storage / "stride" / "trials" / "s7-seed0" / "worker0.log").is_file()
    assert (storage / "ray").is_dir() and not (tmp_path / "A" / "ray").exists()  # Ray's run storage moved too

    second = _cli(*args, "--results", str(tmp_path / "C"), timeout=900)
    assert second.returncode == 0, f"{second.stdout[-3000:]}\n{second.stderr[-3000:]}"
    result_c = json.loads((tmp_path / "C" / "stride" / "trials" / "s7-seed0.json").read_text())
    assert result_c["stages"] == {name: "cached" for name in result_a["stages"]}
    assert result_c["sign2text"]["test"]["metrics"] == result_a["sign2text"]["test"]["metrics"]
    # Loaded, not recomputed: every entry here and in the storage is byte for byte node A's.
    for rel, manifest in manifests.items():
        assert (storage / rel).read_bytes() == manifest
        assert (tmp_path / "C" / rel).read_bytes() == manifest
    table = (storage / "stride" / "table.md").read_text()
    assert table == (tmp_path / "C" / "stride" / "table.md").read_text() and "| s7 |" in table
    assert (storage / "stride" / "table.csv").is_file() and (storage / "stride" / "state.json").is_file()
    assert (storage / "stride" / "translations.md").read_text() == (tmp_path / "C" / "stride" / "translations.md"
                                                                    ).read_text()  # side by side, published too


# --------------------------------------------------------------------------------------------
# run_search.py --storage: the same pieces (Ray storage, stage cache, trial folders, final files)
# --------------------------------------------------------------------------------------------

def _search_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return _run("run_search.py", *args, **kwargs)


def test_search_with_unreachable_storage_is_one_line_before_anything_runs(tmp_path):
    port = _free_port()  # nothing listens there
    uri = f"s3://bucket/uniglor?endpoint_override=127.0.0.1:{port}&scheme=http"
    out = _search_cli("sign2text", "--profile", "debug", "--trials", "1", "--results", str(tmp_path),
                      "--storage", uri, env={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                                             "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"})
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith(f"error: cannot use --storage {uri}: ") and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1
    assert os.listdir(tmp_path) == []  # nothing ran: no cache, no study, no mlflow.db


# Two trials, one after the other, that differ only in the sign-to-text beam: the second loads the
# first one's prepare, pretrain and embed entries.
TINY_SEARCH = """\
question: does run_search.py --storage keep everything shared on the storage?
profile: debug
metric: sign2text/dev_bleu4
mode: max
trials: 2
max_concurrent: 1
scheduler: {type: fifo}
enqueue:
  - {sign2text.beam_size: 1}
  - {sign2text.beam_size: 2}
space:
  sign2text.beam_size: {choice: [1, 2]}
"""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_search_keeps_ray_cache_trials_and_best_on_the_storage(tmp_path):
    from test_multinode import TINY
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(TINY_SEARCH)
    storage, results = tmp_path / "B", tmp_path / "A"
    out = _search_cli(str(spec_file), "--results", str(results), "--storage", storage.as_uri(), *TINY,
                      "--set", "pretrain.epochs=1", "--set", "sign2text.epochs=1", "--set", "compute.torch_threads=1",
                      "--json", timeout=800)
    assert out.returncode == 0, f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["trials"] == 2 and summary["complete"] == 2, summary
    remote = storage / "search" / "tiny"
    assert (remote / "ray").is_dir() and any((remote / "ray").iterdir())  # Ray Tune/Train run storage
    assert not (results / "search" / "tiny" / "ray").exists() and not (results / "ray").exists()
    assert list((storage / "cache" / "pretrain").glob("*/DONE.json"))
    assert {p.parent.parent.name for p in (storage / "cache").glob("*/*/DONE.json")} == {
        "prepare", "pretrain", "probe", "isolated", "figure5", "embed", "sign2text"}
    best = remote / "best.yaml"
    assert best.is_file() and best.read_bytes() == (results / "search" / "tiny" / "best.yaml").read_bytes()
    assert (remote / "trials.csv").is_file() and (remote / "history.png").is_file()
    keys = {row["trial"] for row in summary["rows"]}
    assert len(keys) == 2
    for key in keys:  # rank 0 pushed its result and log; the replayed MLflow queues are gone there too
        assert (remote / "trials" / f"{key}.json").is_file()
        assert (remote / "trials" / key / "worker0.log").is_file()
        assert not list((remote / "trials" / key).glob("pending/*.jsonl"))
    assert (results / "search" / "tiny" / "optuna.db").is_file() and not (remote / "optuna.db").exists()


@pytest.mark.slow
def test_a_whole_run_through_s3_and_a_second_node_that_loads_it(tmp_path, s3_env):
    """The cluster's setting against a real S3 API: a plain s3:// URI (the endpoint from
    AWS_ENDPOINT_URL, as an instance profile's region/credentials would come from the node), Ray
    Tune's state and Train's per-epoch checkpoints written by Ray itself to S3, the stage cache, the
    trial files and the table; then a second results folder ("another node") loads every stage."""
    from test_multinode import TINY
    uri = f"s3://{s3_env}/uniglor"
    args = ["stride", "--only", "s7", "--profile", "debug", "--storage", uri, *TINY]
    first = _cli(*args, "--results", str(tmp_path / "A"), timeout=900)
    assert first.returncode == 0, f"{first.stdout[-3000:]}\n{first.stderr[-3000:]}"
    remote = open_storage(uri)
    files = remote.list_files()
    ray_files = [f for f in files if f.startswith("ray/")]
    assert any(f.endswith("/state.pt") for f in ray_files), ray_files  # Train checkpoints, on S3
    assert any(f.endswith("tuner.pkl") for f in ray_files), ray_files  # Tune's experiment state
    assert not (tmp_path / "A" / "ray").exists()
    manifests = {f: remote.read_bytes(f) for f in files if f.startswith("cache/") and f.endswith("/DONE.json")}
    assert {f.split("/")[1] for f in manifests} == {"prepare", "pretrain", "probe", "isolated", "figure5", "embed",
                                                    "sign2text"}
    assert {"stride/trials/s7-seed0.json", "stride/trials/s7-seed0/worker0.log", "stride/table.md",
            "stride/table.csv", "stride/state.json"} <= set(files)

    second = _cli(*args, "--results", str(tmp_path / "C"), timeout=900)
    assert second.returncode == 0, f"{second.stdout[-3000:]}\n{second.stderr[-3000:]}"
    result_c = json.loads((tmp_path / "C" / "stride" / "trials" / "s7-seed0.json").read_text())
    assert set(result_c["stages"].values()) == {"cached"}, result_c["stages"]
    for rel, manifest in manifests.items():  # loaded from S3 byte for byte, not recomputed
        assert (tmp_path / "C" / rel).read_bytes() == manifest == remote.read_bytes(rel)
