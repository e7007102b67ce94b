"""Every ablation of the paper end to end with the debug profile: local Ray, Tune, Train, a real
MLflow store; the table files, the MLflow runs, the stage cache and reproducibility."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import mlflow_runs as runs_in
from conftest import read_csv
from harness.ablation import available, load_ablation
from harness.figures import strip_size
from harness.results import sample_indices

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run_ablation(name: str, results: Path, *extra: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    out = subprocess.run([sys.executable, "harness/run_ablation.py", name, "--profile", "debug",
                          "--results", str(results), *extra], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def mlflow_runs(results: Path, name: str):
    return runs_in(f"sqlite:///{results / 'mlflow.db'}", f"ablation-{name}")


def check_ablation(name: str, results: Path, out: subprocess.CompletedProcess,
                   variants: list[str] | None = None) -> list[dict]:
    from harness.stages import method_task
    spec = load_ablation(name)
    variants = variants or list(spec.variants)
    rows = read_csv(results / name / "table.csv")
    # A baseline's rows are in its own task's table only (the paper's tables 1 and 2), in the file's order.
    assert [(r["variant"], r["task"]) for r in rows] == [
        (v, t) for t in spec.tasks for v in variants if method_task(spec.methods[v]) in (None, t)]
    for r in rows:
        if r["task"] == "recognition":  # table 3: Top-1 <= Top-5 <= Top-10, a paired test on Top-1
            assert 0.0 <= float(r["top1"]) <= float(r["top5"]) <= float(r["top10"]) <= 100.0 and r["bleu4"] == ""
            assert r["p_top1"] == "" if r["variant"] == spec.baseline_of(r["variant"]) else 0.0 < float(r["p_top1"]) <= 1.0
            continue
        for metric in ("bleu1", "bleu2", "bleu3", "bleu4", "rouge"):
            assert 0.0 <= float(r[metric]) <= 100.0
        if r["task"] == "text2sign":
            assert math.isfinite(float(r["mpjpe"])) and float(r["mpjpe"]) > 0
            assert math.isfinite(float(r["dtw_mje"])) and float(r["dtw_mje"]) > 0
        assert r["p_bleu4"] == "" if r["variant"] == spec.baseline_of(r["variant"]) else 0.0 < float(r["p_bleu4"]) <= 1.0
    md = (results / name / "table.md").read_text()
    assert "Synthetic corpus" in md and "Profile: debug" in md
    assert "(frame rate, as windowed): synth: recorded at 25 fps = data.fps 25 (not resampled)." in md
    assert "mlflow ui --backend-store-uri sqlite:///" in out.stdout and "--host 127.0.0.1" in out.stdout
    assert "then open http://127.0.0.1:5000/#/experiments/" in out.stdout  # the experiment's runs view
    runs = mlflow_runs(results, name)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    # Side by side (tables 6, 8, figure 4): translations with a translation task, skeletons with production.
    translates = any(t in ("sign2text", "text2sign") for t in spec.tasks)
    assert (results / name / "translations.md").is_file() == translates
    assert (results / name / "skeletons.png").is_file() == ("text2sign" in spec.tasks)
    logged = {a.path for a in _artifacts(results, parents[0].info.run_id)}
    assert "table.json" in logged and ("translations.md" in logged) == translates
    assert sorted(r.data.tags["variant"] for r in children) == sorted(variants)
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert child.data.params["pretrain.window"] and "seed" in child.data.tags and "task" in child.data.tags
        assert any(k.split("/")[0] in spec.tasks for k in child.data.metrics)
    return rows


def _artifacts(results, run_id):
    return _artifacts_in(results, run_id, None)


def _artifacts_in(results, run_id, path):
    from mlflow.tracking import MlflowClient
    return MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}").list_artifacts(run_id, path)


# UniGloR's three rows of table 5 (as `make demo` runs them); the baselines' rows of apw share their
# stages with main's (test_every_other_ablation) and are planned by tests/test_ablation_cli.py.
OURS = ["none", "fpw", "apw"]


@pytest.fixture(scope="module")
def apw_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("apw")
    return results, run_ablation("apw", results, "--only", "none,fpw,apw")


def test_apw_table_and_mlflow(apw_run):
    results, out = apw_run
    rows = check_ablation("apw", results, out, OURS)
    assert {r["task"] for r in rows} == {"sign2text", "text2sign"}
    trial = json.loads((results / "apw" / "trials" / "apw-seed0.json").read_text())
    assert trial["stages"]["pretrain"] == "computed"
    # the text-to-sign trial logged a skeleton animation
    runs = [r for r in mlflow_runs(results, "apw") if r.data.tags.get("variant") == "apw"]
    assert {"samples", "translations.json"} <= {a.path for a in _artifacts(results, runs[0].info.run_id)}
    assert runs[0].data.tags["stage.pretrain.cached"] == "false"  # this trial trained it
    # The weights each pretraining trained with: FPW's as parameters, APW's distribution as metrics.
    fpw_run = next(r for r in mlflow_runs(results, "apw") if r.data.tags.get("variant") == "fpw")
    fpw = {g: float(fpw_run.data.params[f"pretrain.fpw.{g}"]) for g in ("body", "face", "hands")}
    assert all(w >= 0 for w in fpw.values()) and fpw["face"] > 0, fpw
    assert "pretrain.fpw.face" not in runs[0].data.params  # APW's weights change per segment
    m = runs[0].data.metrics
    assert m["pretrain/w_face_q25"] <= m["pretrain/w_face_q50"] <= m["pretrain/w_face_q75"]
    assert 0 <= m["pretrain/w_floored"] <= 1 and "pretrain/w_hands_mean" in m
    # the sample translations: an MLflow table, both tasks, each sentence's BLEU-4
    from mlflow.tracking import MlflowClient
    path = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}").download_artifacts(
        runs[0].info.run_id, "translations.json", str(results))
    table = json.loads(Path(path).read_text())
    assert table["columns"] == ["task", "reference", "hypothesis", "sentence_bleu4"]
    assert {row[0] for row in table["data"]} == {"sign2text", "text2sign"}
    assert all(0.0 <= row[3] <= 100.0 and row[1] for row in table["data"])
    # The representation probe of every pretraining: trial metrics, the table's extra columns, its footer table.
    assert 0 <= runs[0].data.metrics["probe/knn_acc"] <= 100 and "probe/pair_hand" in runs[0].data.metrics
    assert trial["pretrain"]["metrics"]["probe/knn_acc"] == runs[0].data.metrics["probe/knn_acc"]
    assert all(0 <= float(r["probe_knn_acc"]) <= 100 for r in rows)
    table_md = (results / "apw" / "table.md").read_text()
    assert "Representation probe of each variant's pretraining" in table_md
    weights = next(line for line in table_md.splitlines() if line.startswith("Pose weights of the SignMAE loss"))
    assert "none: face 1.00, hands 1.00" in weights
    footer_face = float(re.search(r"fpw: face ([0-9.]+)", weights).group(1))  # body = 1 there
    assert footer_face == pytest.approx(fpw["face"] / fpw["body"], abs=0.01), (weights, fpw)
    assert "apw: face " in weights
    # Side by side (tables 6, 8, figure 4): every row on the same test sentences, beside the table,
    # logged to the parent run and among the files the command says it wrote.
    md = (results / "apw" / "translations.md").read_text()
    assert "**Synthetic corpus" in md and "Seed 0 of every row (trials none-seed0, fpw-seed0, apw-seed0)" in md
    test = trial["sign2text"]["test"]
    for i in sample_indices(len(test["references"])):
        assert md.count(f"### Test sentence {i + 1} of {len(test['references'])}\n") == 2  # sign-to-text, back-translation
    assert md.count("| apw | ") == 2 * len(sample_indices(len(test["references"])))
    from PIL import Image
    with Image.open(results / "apw" / "skeletons.png") as png:  # per sentence: ground truth, none, fpw, apw
        assert png.size == strip_size([4] * len(sample_indices(len(test["references"]))))
    parent = [r for r in mlflow_runs(results, "apw") if "mlflow.parentRunId" not in r.data.tags][0]
    assert {"translations.md", "skeletons.png"} <= {a.path for a in _artifacts(results, parent.info.run_id)}
    written = next(line for line in out.stdout.splitlines() if line.startswith("Written: "))
    assert str(results / "apw" / "translations.md") in written and str(results / "apw" / "skeletons.png") in written
    # Figure 5 of every pretraining, though apw has no recognition task.
    assert {a.path for a in _artifacts_in(results, runs[0].info.run_id, "figures")} == {"figures/tsne.png"}


def test_second_identical_run_trains_nothing(apw_run):
    results, _ = apw_run
    out = subprocess.run([sys.executable, "harness/run_ablation.py", "apw", "--profile", "debug", "--results",
                          str(results), "--dry-run", "--json", "--only", "none,fpw,apw"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    plan = json.loads(out.stdout)
    assert all(s["distinct"] == s["cached"] for s in plan["stages"].values()), plan
    first = (results / "apw" / "table.csv").read_text()
    run_ablation("apw", results, "--only", "none,fpw,apw")
    for path in (results / "apw" / "trials").glob("*.json"):
        stages = json.loads(path.read_text())["stages"]
        assert set(stages.values()) == {"cached"}, (path.name, stages)
    assert (results / "apw" / "table.csv").read_text() == first
    runs = mlflow_runs(results, "apw")
    parents = sorted((r for r in runs if "mlflow.parentRunId" not in r.data.tags), key=lambda r: r.info.start_time)
    assert len(parents) == 2  # one parent per invocation
    # the second invocation's trials say that every stage came from the cache (their curves are the first's)
    again = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[1].info.run_id]
    assert len(again) == 3
    for run in again:
        stage_tags = {k: v for k, v in run.data.tags.items() if k.startswith("stage.")}
        assert "stage.pretrain.cached" in stage_tags and set(stage_tags.values()) == {"true"}, stage_tags


def test_same_seeds_give_identical_tables(apw_run, tmp_path):
    """The apw variant again, into a fresh results folder (nothing cached): identical numbers on CPU."""
    results, _ = apw_run
    run_ablation("apw", tmp_path, "--only", "apw")
    columns = [c for c in read_csv(results / "apw" / "table.csv")[0] if c != "p_bleu4"]
    again = {(r["variant"], r["task"]): [r[c] for c in columns] for r in read_csv(tmp_path / "apw" / "table.csv")}
    first = {(r["variant"], r["task"]): [r[c] for c in columns] for r in read_csv(results / "apw" / "table.csv")}
    assert set(again) == {("apw", "sign2text"), ("apw", "text2sign")}
    for key, row in again.items():
        assert row == first[key], key


# Stride runs 4 of its 15 variants (the ends, the paper's peak and one between): every code path of
# the full curve, at a quarter of the suite time (15 debug trials took 7 min of a 30 min budget).
SUBSET = {"stride": ["s1", "s4", "s7", "s15"]}
# main (tables 1 and 2): all six rows, but every stage at its smallest (one epoch, a smaller corpus),
# so its six trials stay within about a minute; the rows, their order and the runs are what it checks.
SMALLEST = {"main": ["pretrain.epochs=1", "sign2text.epochs=1", "text2sign.epochs=1", "backtranslator.epochs=1",
                     "data.synth.train=16", "data.synth.dev=4", "data.synth.test=4"]}


@pytest.mark.parametrize("name", [n for n in available() if n != "apw"])  # apw: the tests above
def test_every_other_ablation(name, tmp_path):
    only = [flag for v in SUBSET.get(name, []) for flag in ("--only", v)]
    small = [flag for kv in SMALLEST.get(name, []) for flag in ("--set", kv)]
    out = run_ablation(name, tmp_path, *only, *small)
    rows = check_ablation(name, tmp_path, out, SUBSET.get(name))
    if name == "main":  # tables 1 and 2 in the paper's row order, a run per trial, one SignMAE for all
        assert [(r["variant"], r["task"]) for r in rows] == [
            ("joint_slt", "sign2text"), ("joint_slt_gloss", "sign2text"), ("conslt", "sign2text"),
            ("uniglor", "sign2text"), ("pt", "text2sign"), ("nslp_g", "text2sign"), ("uniglor", "text2sign")]
        trials = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "main" / "trials").glob("*.json")}
        assert set(trials["joint_slt_gloss-seed0"]["stages"]) == {"joint_slt"}  # no SignMAE for a baseline
        assert set(trials["pt-seed0"]["stages"]) == {"backtranslator", "pt"}
        assert sum(t["stages"].get("backtranslator") == "computed" for t in trials.values()) == 1  # one judge
        children = {r.data.tags["variant"]: r for r in mlflow_runs(tmp_path, "main")
                    if "mlflow.parentRunId" in r.data.tags}
        for variant in ("joint_slt", "conslt", "pt", "nslp_g"):  # recorded as UniGloR's rows are
            assert "translations.json" in {a.path for a in _artifacts(tmp_path, children[variant].info.run_id)}
        assert {"samples", "translations.json"} <= {a.path for a in _artifacts(tmp_path, children["pt"].info.run_id)}
        md = (tmp_path / "main" / "table.md").read_text()
        assert "weight their INPUT" in md and "the same back-translator as every text-to-sign row" in md
    if name == "stride":
        assert (tmp_path / "stride" / "curve.png").stat().st_size > 1000
        trials = [json.loads(p.read_text()) for p in (tmp_path / "stride" / "trials").glob("*.json")]
        assert len(trials) == 4
        assert sum(t["stages"]["pretrain"] == "computed" for t in trials) == 1  # one pretraining for all strides
    if name == "dataset":  # table 4d: the second corpus's rate and how it was mixed, for its variant only
        md = (tmp_path / "dataset" / "table.md").read_text()
        assert "Data of one (frame rate, as windowed): synth: recorded at 25 fps" in md
        assert ("Data of two (frame rate, as windowed): synth: recorded at 25 fps = data.fps 25 (not resampled). "
                "Pretraining also on the train split of synth2: recorded at 25 fps = data.fps 25 (not "
                "resampled); mixed: both 2D (x, y), nothing dropped; layout: both read into the canonical 73-point "
                "layout, the same parts shown") in md
    if name == "recognition":  # table 3 with its two baselines, on one pretraining and one isolated corpus
        trials = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "recognition" / "trials").glob("*.json")}
        assert sorted(trials) == ["gru-seed0", "ours-seed0", "transformer-seed0"]
        assert sum(t["stages"]["pretrain"] == "computed" for t in trials.values()) == 1
        assert len(list((tmp_path / "cache" / "isolated").glob("*/DONE.json"))) == 1  # the driver's, before them
        md = (tmp_path / "recognition" / "table.md").read_text()
        assert "| Variant | Top-1 | Top-5 | Top-10 | p (Top-1) |" in md and "BLEU-1..4" not in md
        assert "Pose weights" not in md  # the rows share one pretraining: its weights tell them nothing
        children = [r for r in mlflow_runs(tmp_path, "recognition") if "mlflow.parentRunId" in r.data.tags]
        assert all(0 <= c.data.metrics["recognition/test_top1"] <= 100 for c in children)
        for child in children:  # figure 5 of the trial's pretraining
            figures = {a.path for a in _artifacts_in(tmp_path, child.info.run_id, "figures")}
            assert figures == {"figures/tsne.png"}, figures
        assert {c.data.params["recognition.model"] for c in children} == {"signmae", "gru", "transformer"}
