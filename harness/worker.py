"""Ray Train's `train_loop_per_worker`: one trial's whole pipeline on one worker of a worker group.

One TorchTrainer per trial runs every stage (a trainer start costs ~20-25 s on 2 cores, so a
stage must not pay it). Rank 0 writes the cache, the checkpoints and the MLflow logs; all ranks
train (DDP through `ray.train.torch.prepare_model`), draw their own shard of each epoch, and seed
with an offset by rank. A checkpoint is reported every epoch; when Ray Train restarts the worker
group after a failure (`ray.train.FailureConfig`), finished stages load from the cache and the
interrupted one resumes at the epoch after its last checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from harness.config import ExperimentConfig, _build
from harness.loop import Runtime
from harness.pipeline import Trial
from harness.stages import load_torch, save_torch


def config_from_dict(nested: dict) -> ExperimentConfig:
    return _build(ExperimentConfig, nested, "", "trial config")


def trial_result_path(results: Path, ablation: str, trial_key: str) -> Path:
    return Path(results) / ablation / "trials" / f"{trial_key}.json"


def write_result(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, default=str))
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_checkpoint(state: dict, folder: Path) -> None:
    """A Train checkpoint: state.pt and its SHA-256, so a truncated copy is detected on resume."""
    save_torch(state, folder / "state.pt")
    (folder / "state.sha256").write_text(_sha256(folder / "state.pt"))


def read_checkpoint(folder: Path, say=lambda text: None) -> dict | None:
    """The state in a Train checkpoint, or None (the stage restarts at its first epoch) when the
    file is missing, truncated or altered: a damaged checkpoint is never loaded."""
    path, digest = folder / "state.pt", folder / "state.sha256"
    try:
        if digest.is_file() and _sha256(path) != digest.read_text().strip():
            raise ValueError("its SHA-256 does not match state.sha256")
        return load_torch(path)
    except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        say(f"checkpoint {path} is damaged ({str(exc).splitlines()[0][:200]}); "
            f"not loading it: the stage restarts at its first epoch")
        return None


def final_metrics(result: dict) -> dict[str, float]:
    """Flat test metrics for Tune and MLflow: sign2text/test_bleu4, text2sign/test_mpjpe, ..."""
    flat: dict[str, float] = {}
    for task in ("sign2text", "text2sign", "backtranslator"):
        for split in ("dev", "test"):
            for k, v in result.get(task, {}).get(split, {}).get("metrics", {}).items():
                flat[f"{task}/{split}_{k}"] = float(v)
    return flat


def log_trial_artifacts(logger, result: dict, trial_dir: Path) -> None:
    """Sample translations and, for text-to-sign, a skeleton animation (generated vs ground truth)."""
    from models.layout import CANONICAL
    lines = []
    for task in ("sign2text", "text2sign"):
        test = result.get(task, {}).get("test")
        if test:
            for hyp, ref in list(zip(test["hypotheses"], test["references"]))[:20]:
                lines.append(f"[{task}] REF: {ref}\n[{task}] HYP: {hyp}\n")
    if lines:
        logger.log_text("\n".join(lines), "samples/translations.txt")
    sample = result.get("text2sign", {}).get("sample")
    if sample is not None:
        from harness.render import render_skeleton_gif
        gif = trial_dir / "text2sign_sample.gif"
        render_skeleton_gif(sample["generated"].numpy(), sample["ground_truth"].numpy(), sample["mask"].numpy(),
                            CANONICAL.edges, gif, title=sample["text"][:60])
        logger.log_artifact(gif, "samples")


def train_loop_per_worker(config: dict) -> None:
    import ray.train
    import ray.train.torch

    from harness.tracking import SafeLogger

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    cfg = config_from_dict(config["cfg"])
    threads = cfg.compute.torch_threads or max(1, int(cfg.compute.cpus_per_worker))
    torch.set_num_threads(threads)
    device = ray.train.torch.get_device()
    results = Path(config["results"])
    trial_key = config["trial_key"]
    trial_dir = results / config["ablation"] / "trials" / trial_key
    trial_dir.mkdir(parents=True, exist_ok=True)
    from harness import storage
    remote = storage.remote_of(config["storage_uri"])  # every rank: a rank on another node fetches cache entries
    if rank == 0:
        # An earlier attempt may have run on another node: continue its log and pending queue.
        storage.pull_trial_folder(remote, results, config["ablation"], trial_key)
    logger = SafeLogger(config["tracking_uri"], config["run_id"], trial_dir / "pending") if rank == 0 else None
    log_file = open(trial_dir / f"worker{rank}.log", "a", buffering=1) if rank == 0 else None

    def say(text: str) -> None:
        if log_file:
            log_file.write(f"{time.strftime('%H:%M:%S')} {text}\n")

    def report(metrics: dict, state: dict | None) -> None:
        checkpoint, folder = None, None
        if state is not None:
            folder = Path(tempfile.mkdtemp(prefix="uniglor-ckpt-"))
            write_checkpoint(state, folder)
            checkpoint = ray.train.Checkpoint.from_directory(str(folder))
        ray.train.report({k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}, checkpoint=checkpoint)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def latest() -> dict | None:
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            return read_checkpoint(Path(folder), say)

    def prepare_model(model: torch.nn.Module) -> torch.nn.Module:
        if world == 1:
            return model.to(device)
        # Frozen or unused branches (e.g. positional queries) must not stall DDP's reducer.
        return ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"find_unused_parameters": True})

    rt = Runtime(rank=rank, world_size=world, device=device, bf16=cfg.compute.bf16, prepare_model=prepare_model,
                 report=report, latest_checkpoint=latest, say=say,
                 log_metrics=(lambda m, step: logger.log_metrics(m, step)) if logger else (lambda m, step: None))
    # The node id says where a trial ran (multi-node debugging; the fault tests kill that node).
    say(f"trial {trial_key}: rank {rank}/{world} on {device}, {threads} torch threads, "
        f"node {ray.get_runtime_context().get_node_id()}")
    try:
        result = Trial(cfg, tuple(config["tasks"]), results, rt, remote).run()
    except BaseException:
        if rank == 0 and remote is not None:  # the log says why; its node may be gone by the time anyone looks
            with contextlib.suppress(*storage.REMOTE_ERRORS):
                storage.push_trial(remote, results, config["ablation"], trial_key, result=False)
        raise
    metrics = final_metrics(result)
    if rank == 0:
        log_trial_artifacts(logger, result, trial_dir)
        result.get("text2sign", {}).pop("sample", None)
        result.update({"variant": config["variant"], "seed": cfg.seed, "trial_key": trial_key,
                       "config_key": config["config_key"]})
        write_result(trial_result_path(results, config["ablation"], trial_key), result)
        logger.log_metrics(metrics, step=0)
        logger.log_dict({"stages": result["stages"], "stage_seconds": result["stage_seconds"]}, "stages.json")
        pending = logger.flush()
        if pending:
            say(f"MLflow: {pending} log entries could not be written (kept in {trial_dir / 'pending'})")
        say(f"trial {trial_key}: done in {result['seconds']:.1f} s; stages {result['stages']}")
        if remote is not None:
            # Before the report below: the trial driver (maybe on another node) reads this file
            # from the remote as soon as fit() returns.
            from harness import storage
            storage.push_trial(remote, results, config["ablation"], trial_key)
    # Not Tune's reserved "done" key: a result with done=1 makes Tune stop (kill) the trial actor
    # while fit() is still returning, so the trial's MLflow run was never closed (left RUNNING).
    ray.train.report({"stage": "done", **metrics})
    if log_file:
        log_file.close()
