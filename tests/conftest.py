"""Shared fixtures and helpers of the test suite.

- `tiny_cfg`: the debug profile made smaller still, so one in-process trial runs every stage in
  seconds (the unit tests of the pipeline and the loop use it);
- `fit`: a few hundred optimizer steps on one fixed batch, for the models' "it can learn" tests;
- `read_csv`, `mlflow_runs`: read what a study wrote (its table, its MLflow runs).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

TINY_OVERRIDES = {"data.synth.train": 12, "data.synth.dev": 4, "data.synth.test": 4, "pretrain.epochs": 2,
                  "sign2text.epochs": 2, "text2sign.epochs": 2, "backtranslator.epochs": 2}


@pytest.fixture(autouse=True, scope="session")
def _file_hash_store(tmp_path_factory):
    """Content hashes of data files (harness/file_hashes.py) go to a store of this test session,
    not the user's ~/.cache."""
    import os
    old = os.environ.get("UNIGLOR_HASH_CACHE")
    os.environ["UNIGLOR_HASH_CACHE"] = str(tmp_path_factory.mktemp("hashes") / "file-hashes.json")
    yield
    if old is None:
        os.environ.pop("UNIGLOR_HASH_CACHE", None)
    else:
        os.environ["UNIGLOR_HASH_CACHE"] = old


@pytest.fixture
def tiny_cfg():
    from harness.config import load_profile
    return load_profile("debug", TINY_OVERRIDES)


def fit(model: torch.nn.Module, loss_of: Callable[[], torch.Tensor], steps: int, lr: float,
        stop: float = 0.01) -> tuple[float, float]:
    """Adam on one fixed batch until the loss falls below `stop`: (first loss, last loss)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    first = last = None
    for _ in range(steps):
        loss = loss_of()
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
        last = loss.item()
        if last < stop:
            break
    return first, last


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def mlflow_runs(uri: str, experiment: str) -> list:
    """Every run of the MLflow experiment `experiment` in the store at `uri`."""
    from mlflow import MlflowClient
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=1000)
