"""Ablation specs, the dry-run plan, and every user mistake of run_ablation.py as one clear line."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness.ablation import available, load_ablation
from harness.tune.ablation import plan_stages, plan_trials

ROOT = Path(__file__).resolve().parents[1]
PAPER_ABLATIONS = {"apw", "window", "stride", "decoding", "query", "dataset", "mask_ratio"}


def test_every_paper_ablation_ships_and_binds():
    assert PAPER_ABLATIONS <= set(available())
    for name in available():
        spec = load_ablation(name)  # binds every variant's overrides to the config schema
        assert spec.baseline in spec.variants
        text = spec.path.read_text()
        assert text.startswith("# Question:") and "# Run:" in text and "# Reproduces:" in text


def test_variants_differ_only_in_their_overrides():
    spec = load_ablation("apw")
    trials = plan_trials(spec, "debug", 1, {}, {})
    # Table 5: each method without weighting, w/ FPW, w/ APW; UniGloR's own rows last, with FPW
    # twice: eq. 1 on this corpus's statistics and the paper's constants.
    assert [t.cfg.pretrain.weighting for t in trials] == ["none", "fpw", "apw"] * 4 + ["none", "fpw", "fpw", "apw"]
    assert [t.variant for t in trials][-4:] == ["none", "fpw", "fpw_paper", "apw"]
    assert [t.cfg.pretrain.fpw_weights for t in trials][-4:] == ["dataset", "dataset", "paper", "dataset"]
    assert len({t.cfg.data for t in trials}) == 1


def test_stride_ablation_needs_one_pretraining_per_seed(tmp_path):
    spec = load_ablation("stride")
    plan = plan_stages(plan_trials(spec, "debug", 1, {}, {}), spec.tasks, tmp_path)
    assert plan["pretrain"] == {"distinct": 1, "cached": 0}
    assert plan["embed"]["distinct"] == 15 and plan["sign2text"]["distinct"] == 15
    plan = plan_stages(plan_trials(spec, "debug", 2, {}, {}), spec.tasks, tmp_path)
    assert plan["pretrain"]["distinct"] == 2


def test_apw_shares_one_backtranslator(tmp_path):
    spec = load_ablation("apw")
    plan = plan_stages(plan_trials(spec, "debug", 3, {}, {}), spec.tasks, tmp_path)
    assert plan["pretrain"]["distinct"] == 12  # UniGloR's four rows x 3 seeds; the baselines do not pretrain
    assert plan["backtranslator"]["distinct"] == 3  # one per seed, shared by every row
    assert plan["prepare"]["distinct"] == 1


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "harness/run_ablation.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_dry_run_json(tmp_path):
    out = run_cli("stride", "--profile", "debug", "--dry-run", "--json", "--results", str(tmp_path))
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["trials"] == 15
    assert plan["stages"]["pretrain"] == {"distinct": 1, "cached": 0}


def test_fpw_weights_paper_is_accepted_on_the_command_line(tmp_path):
    out = run_cli("apw", "--profile", "debug", "--dry-run", "--json", "--results", str(tmp_path),
                  "--set", "pretrain.fpw_weights=paper")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["trials"] == 16  # all of table 5, and fpw_paper


def test_dry_run_lists_every_method(tmp_path):
    """Tables 1 and 2 (main) and all of table 5 (apw): every method, each baseline in its own task only."""
    plans = {}
    for name in ("main", "apw"):
        out = run_cli(name, "--profile", "debug", "--dry-run", "--json", "--results", str(tmp_path))
        assert out.returncode == 0, out.stderr
        plans[name] = json.loads(out.stdout)
    assert plans["main"]["methods"] == ["joint_slt", "joint_slt_gloss", "conslt", "pt", "nslp_g", "uniglor"]
    assert plans["apw"]["methods"] == ["joint_slt", "conslt", "pt", "nslp_g", "uniglor"]
    tasks = {v: p["tasks"] for v, p in plans["main"]["variants"].items()}
    assert tasks == {"joint_slt": ["sign2text"], "joint_slt_gloss": ["sign2text"], "conslt": ["sign2text"],
                     "pt": ["text2sign"], "nslp_g": ["text2sign"], "uniglor": ["sign2text", "text2sign"]}
    # One SignMAE for the whole of main (only UniGloR's row pretrains); PT and NSLP-G share its judge.
    assert plans["main"]["stages"]["pretrain"]["distinct"] == 1
    assert plans["main"]["stages"]["backtranslator"]["distinct"] == 1
    assert plans["main"]["stages"]["joint_slt"]["distinct"] == 2  # with and without glosses
    assert plans["apw"]["trials"] == 16 and plans["apw"]["stages"]["pt"]["distinct"] == 3
    ours = run_cli("apw", "--profile", "demo", "--dry-run", "--json", "--only", "uniglor", "--results", str(tmp_path))
    assert json.loads(ours.stdout)["methods"] == ["uniglor"]
    assert set(json.loads(ours.stdout)["variants"]) == {"none", "fpw", "fpw_paper", "apw"}
    demo = run_cli("apw", "--profile", "demo", "--dry-run", "--json", "--only", "none,fpw,apw", "--results",
                   str(tmp_path))  # make demo: UniGloR's three rows of table 5
    assert set(json.loads(demo.stdout)["variants"]) == {"none", "fpw", "apw"}


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("args, message", [
    (["nosuch"], "unknown ablation 'nosuch'; available: apw,"),
    (["apw", "--set", "pretrain.nope=1"], "unknown key pretrain.nope"),
    (["apw", "--set", "pretrain.window=abc"], "pretrain.window must be an integer, got 'abc'"),
    (["apw", "--set", "pretrain.mask_ratio=1.5"], "pretrain.mask_ratio must be in [0, 1), got 1.5"),
    (["apw", "--set", "embed.stride=20"], "embed.stride must be <= pretrain.window (15), got 20"),
    (["apw", "--set", "pretrain.mask_ratio"], "--set expects key=value"),
    (["apw", "--dataset", "kinect:/x"], "unknown kind 'kinect'; expected one of synth"),
    (["apw", "--seeds", "0"], "--seeds must be >= 1"),
    (["apw", "--seeds", "1000000", "--dry-run"], "--seeds must be <= 1000, got 1000000"),
    (["apw", "--set", "optim.lr=.inf"], "optim.lr must be a finite number, got inf (--set)"),
    (["apw", "--set", "data.noise_threshold=.nan"], "data.noise_threshold must be a finite number, got nan (--set)"),
    (["apw", "--set", "pretrain.fpw_weights=banana"],
     "pretrain.fpw_weights must be 'dataset', 'paper' or three positive numbers [body, face, hands], got 'banana'"),
    (["apw", "--set", "pretrain.fpw_weights=[1, -1.17, 1.18]"],
     "pretrain.fpw_weights must be 'dataset', 'paper' or three positive numbers [body, face, hands], "
     "got [1, -1.17, 1.18]"),
    (["apw", "--set", "pretrain.fpw_weights=[1, 1.17, 1.18, 1]"],
     "pretrain.fpw_weights must be 'dataset', 'paper' or three positive numbers [body, face, hands], "
     "got [1, 1.17, 1.18, 1]"),
    (["apw", "--set", "text2sign.text_encoder=/nonexistent/distilbert"],
     "text2sign.text_encoder '/nonexistent/distilbert' is not a folder; expected 'learned' or a local Hugging Face"),
    (["apw", "--set", "text2sign.text_encoder=tests"],
     "text2sign.text_encoder 'tests' is not a local Hugging Face model folder with a tokenizer"),
    (["/tmp/apw"], "ablation '/tmp/apw': use letters, digits, _, - and . (not first), at most 64 characters"),
])
def test_bad_input_is_one_line(args, message, tmp_path):
    out = run_cli(*args, "--profile", "debug", "--results", str(tmp_path))
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith("error: ") and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1


def test_window_longer_than_the_shortest_sequence(tmp_path):
    out = run_cli("window", "--profile", "debug", "--results", str(tmp_path), "--set", "pretrain.window=200",
                  "--set", "data.synth.train=8", "--set", "data.synth.dev=4", "--set", "data.synth.test=4")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "pretrain.window (200) is longer than the shortest" in out.stderr and "Traceback" not in out.stderr


def test_unreachable_tracking_server_fails_before_training(tmp_path):
    port = _closed_port()
    out = run_cli("apw", "--profile", "debug", "--results", str(tmp_path), "--tracking-uri", f"http://127.0.0.1:{port}")
    assert out.returncode == 2
    assert "cannot reach the MLflow tracking server" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "cache").exists()  # nothing was computed


def test_unreachable_ray_address_fails_fast(tmp_path):
    port = _closed_port()
    out = run_cli("apw", "--profile", "debug", "--results", str(tmp_path), "--address", f"127.0.0.1:{port}", timeout=60)
    assert out.returncode == 2
    assert f"cannot reach the Ray cluster at --address 127.0.0.1:{port}" in out.stderr
    assert "Traceback" not in out.stderr
