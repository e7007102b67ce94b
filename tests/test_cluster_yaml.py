"""cluster.yaml, checked offline the way `ray up` checks it, then the project's own invariants.

`ray up` runs ray.autoscaler._private.commands._bootstrap_config, whose first two steps are
prepare_config (shallow-merge with the provider's defaults.yaml, fold setup_commands into the head and
worker lists, fill each node type's min/max workers) and validate_config (ray-schema.json plus the
cross-field checks). Both are local in ray 2.60: the AWS calls come after them (instance-type
resource detection, bootstrap_aws: IAM, key pair, subnets, security groups), and this test does not
make those. The `offline` fixture turns any socket connection into a test failure while they run.
"""

import re
import shlex
import socket
import subprocess
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
HEAD = "head_cpu"


def _text() -> str:
    return CLUSTER_YAML.read_text()


def _raw() -> dict:
    return yaml.safe_load(_text())


@pytest.fixture
def offline(monkeypatch):
    """Refuse every outgoing connection and name lookup: validation must not need AWS."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access during offline validation: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def prepared(offline) -> dict:
    config = prepare_config(_raw())
    validate_config(config)
    return config


def _workers(config: dict) -> dict:
    return {k: v for k, v in config["available_node_types"].items() if k != config["head_node_type"]}


def test_ray_up_accepts_the_config(prepared):
    assert prepared["head_node_type"] == HEAD
    # Filled in by prepare_config: the head type launches no extra nodes of its kind.
    assert prepared["available_node_types"][HEAD]["max_workers"] == 0
    assert prepared["provider"]["type"] == "aws"
    # Every list the AWS defaults.yaml would otherwise contribute (an unpinned boto3 install,
    # a dashboard open to all addresses) is replaced by ours.
    assert not any("boto3>=" in c for c in prepared["head_setup_commands"])


def test_validation_rejects_a_fractional_resource(offline):
    config = _raw()
    config["available_node_types"]["gpu_1x_a10g"]["resources"]["CPU"] = 3.5
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(config))


def test_resources_are_ints_and_the_head_takes_no_work(prepared):
    for name, node_type in prepared["available_node_types"].items():
        for key, value in node_type["resources"].items():
            assert type(value) is int, f"{name}.resources.{key} = {value!r} is not an int"
    head = prepared["available_node_types"][HEAD]["resources"]
    assert head["CPU"] == 0 and head.get("GPU", 0) == 0


def test_worker_types_offer_one_gpu_and_several(prepared):
    gpus = {name: t["resources"].get("GPU", 0) for name, t in _workers(prepared).items()}
    assert 1 in gpus.values(), gpus
    assert any(n > 1 for n in gpus.values()), gpus
    for name, node_type in _workers(prepared).items():
        assert node_type["min_workers"] == 0, f"{name} keeps GPU nodes up while idle"
        assert 0 < node_type["max_workers"] <= prepared["max_workers"]


def test_no_address_is_open_to_everyone():
    text = _text()
    assert "0.0.0.0/0" not in text
    assert "0.0.0.0" not in text
    assert "::/0" not in text


def test_every_node_type_has_its_own_security_group_and_instance_profile(prepared):
    # Without SecurityGroupIds, Ray's AWS bootstrap creates a group whose SSH rule admits 0.0.0.0/0.
    for name, node_type in prepared["available_node_types"].items():
        node_config = node_type["node_config"]
        assert node_config.get("SecurityGroupIds"), f"{name} has no SecurityGroupIds"
        arn = node_config["IamInstanceProfile"]["Arn"]
        assert arn.startswith("arn:aws:iam::") and ":instance-profile/" in arn, arn
    head_arn = prepared["available_node_types"][HEAD]["node_config"]["IamInstanceProfile"]["Arn"]
    assert all(t["node_config"]["IamInstanceProfile"]["Arn"] != head_arn for t in _workers(prepared).values())


def test_no_credentials_in_the_file():
    text = _text()
    for pattern in (r"aws_access_key", r"aws_secret", r"secret_access_key", r"aws_session_token",
                    r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", r"BEGIN [A-Z ]*PRIVATE KEY"):
        assert not re.search(pattern, text, flags=re.IGNORECASE), pattern
    assert "ssh_private_key" not in _raw()["auth"]


def test_storage_uri_is_written_in_exactly_one_place(prepared):
    text = _text()
    literals = re.findall(r"(?:s3|gs)://[^\s'\"]+", text)
    assert len(literals) == 1, literals
    (defining,) = [c for c in prepared["setup_commands"] if literals[0] in c]
    assert re.fullmatch(r"echo 'UNIGLOR_STORAGE=s3://[^']+' > ~/uniglor\.env", defining), defining
    # Everything else refers to it through the variable.
    head_start = " ".join(prepared["head_start_ray_commands"])
    assert '--artifacts-destination "$UNIGLOR_STORAGE/' in head_start


def _option(command: str, name: str) -> str:
    """Value of `name VALUE` or `name=VALUE` in a shell command, without quotes."""
    match = re.search(rf"{re.escape(name)}[= ](\S+)", command)
    assert match, f"{name} missing in: {command}"
    return match.group(1).strip("'\"")


def test_dashboard_and_mlflow_bind_only_to_loopback_or_the_private_address(prepared):
    commands = prepared["head_start_ray_commands"]
    (ray_start,) = [c for c in commands if "ray start" in c]
    assert _option(ray_start, "--dashboard-host") == "127.0.0.1"
    (mlflow,) = [c for c in commands if "mlflow server" in c]
    assert _option(mlflow, "--host") in {"127.0.0.1", "$UNIGLOR_HEAD_IP"}
    assert "$UNIGLOR_HEAD_IP:5000" in _option(mlflow, "--allowed-hosts")
    # The private address comes from the instance itself, written before the server starts.
    joined = " ".join(commands)
    assert joined.index("HEAD_IP=$(hostname -I") < joined.index("mlflow server")
    (relay,) = [c for c in commands if "socat" in c]
    assert "TCP-LISTEN:5000,bind=127.0.0.1," in relay


def test_ray_start_commands(prepared):
    (head,) = [c for c in prepared["head_start_ray_commands"] if "ray start" in c]
    for flag in ("--head", "--port=6379", "--autoscaling-config=~/ray_bootstrap_config.yaml"):
        assert flag in head.split(), flag
    (worker,) = [c for c in prepared["worker_start_ray_commands"] if "ray start" in c]
    assert "--address=$RAY_HEAD_IP:6379" in worker.split()


def _pyproject_pin(package: str) -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in deps if re.match(rf"{package}(\[[^\]]*\])?==", d)]
    return pin.split("==")[1]


@pytest.mark.parametrize("role, index", [("head", r"/whl/cpu"), ("worker", r"/whl/cu\d+")])
def test_setup_installs_the_pinned_torch_build_then_the_project(prepared, role, index):
    commands = prepared[f"{role}_setup_commands"]  # setup_commands + the role's own, as `ray up` runs them
    torch_pin = f"torch=={_pyproject_pin('torch')}"
    assert torch_pin == "torch==2.13.0"
    (torch_at,) = [i for i, c in enumerate(commands) if torch_pin in c.split()]
    assert re.search(rf"--index-url https://download\.pytorch\.org{index}\b", commands[torch_at])
    (project_at,) = [i for i, c in enumerate(commands) if re.search(r"pip install .*-e ~/uniglor\b", c)]
    assert torch_at < project_at
    venv_at = next(i for i, c in enumerate(commands) if "python3 -m venv ~/venv" in c)
    assert venv_at < torch_at


def _pip_requirements(command: str) -> list[str]:
    """Requirement arguments of every `pip install` in a shell command (options and their values dropped)."""
    takes_value = {"--index-url", "-i", "--extra-index-url", "-c", "--constraint", "-r", "--requirement", "-e",
                   "--editable"}
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    segments, current = [], []
    for token in lexer:  # split at shell operators that are outside quotes
        if set(token) <= set("();<>|&"):
            segments.append(current)
            current = []
        else:
            current.append(token)
    segments.append(current)
    requirements = []
    for tokens in segments:
        if "pip" not in tokens or "install" not in tokens:
            continue
        args = tokens[tokens.index("install") + 1:]
        skip = False
        for token in args:
            if skip:
                skip = False
            elif token in takes_value:
                skip = True
            elif not token.startswith("-"):
                requirements.append(token)
    return requirements


def test_pip_requirement_parser_on_a_known_command():
    command = "python -m pip install -q -c lock.txt boto3==1.44.5 -e ~/uniglor && pip install x | grep -E 'a|b;c'"
    assert _pip_requirements(command) == ["boto3==1.44.5", "x"]


def test_every_pip_install_is_pinned_and_workers_follow_the_heads_lock(prepared):
    for role in ("head", "worker"):
        for command in prepared[f"{role}_setup_commands"]:
            for requirement in _pip_requirements(command):
                assert re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[\w.+]+", requirement), f"{role}: unpinned {requirement}"
    lock = "/home/ubuntu/uniglor-lock.txt"
    assert lock in prepared["cluster_synced_files"]
    assert any("pip freeze" in c and f"> {lock}" in c for c in prepared["head_setup_commands"])
    (project,) = [c for c in prepared["worker_setup_commands"] if "-e ~/uniglor" in c]
    assert f"-c {lock}" in project


def test_every_command_is_valid_bash(prepared):
    keys = ("initialization_commands", "head_setup_commands", "worker_setup_commands",
            "head_start_ray_commands", "worker_start_ray_commands")
    commands = [c for key in keys for c in prepared[key]]
    assert len(commands) > 10
    for command in commands:
        result = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
        assert result.returncode == 0, f"{command}\n{result.stderr}"


def test_the_checkout_is_mounted_without_ignored_files(prepared):
    assert prepared["file_mounts"] == {"~/uniglor": "."}
    assert ".gitignore" in prepared["rsync_filter"]
