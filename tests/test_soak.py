"""Soak: three studies at once, each on its own results folder and its own local Ray, each with its
trial worker killed (SIGKILL, no grace) at a moment drawn at random among its epoch checkpoints.
Every study must end complete: its table whole (not partial), one MLflow run per trial (no
duplicate from the restart), none left RUNNING, and the killed stage resumed from its checkpoint.

The last study runs from another working folder with every path relative to it (`--results`,
`--dataset npz:...`, `--tracking-uri sqlite:///...`, `--storage`): the trial, which Ray runs in a
folder of its own, must still read that data file and log to that store (paths resolved once, on
the driver, before Ray starts).

Bounded: debug profile, one tiny trial per study, at most 10 minutes before it fails; the draw's
seed is in every failure message, so a failing draw can be replayed (SOAK_SEED=N).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_multinode import (ROOT, TINY, descendants, driver_command, driver_env, read_csv, runs_of,
                            stop_process_group)

STUDIES = 3
EPOCHS = {"pretrain": 3, "sign2text": 4}
# An epoch line is written after that epoch's checkpoint was reported; the last epoch of a stage
# has none (its cache entry is the result), so the kill moments are the epochs before it.
MOMENTS = [f"{stage} epoch {e}/{n}" for stage, n in EPOCHS.items() for e in range(1, n)]


def _read(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def _write_corpus(path: Path) -> Path:
    """The corpus TINY's synthetic source would be, as an npz file (a file-based source)."""
    from harness.config import load_profile
    from harness.data.readers.npz import write_npz
    from harness.datasource import load_raw
    path.parent.mkdir(parents=True)
    write_npz(load_raw("synth", load_profile("debug", {"data.synth.train": 24, "data.synth.dev": 8,
                                                       "data.synth.test": 8})), path)
    return path


def _trial_worker(driver_pid: int) -> int | None:
    """The pid of the Ray worker process running the trial (a one-worker CPU trial trains inside
    its Tune trial actor, `ray::ImplicitFunc`), among the driver's descendants."""
    for pid in descendants(driver_pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"ImplicitFunc" in f.read():
                    return pid
        except OSError:
            continue
    return None


@pytest.mark.slow
def test_three_studies_at_once_with_trial_workers_killed_at_random_all_end_complete(tmp_path):
    seed = int(os.environ.get("SOAK_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    moments = [rng.choice(MOMENTS) for _ in range(STUDIES)]
    about = f"(SOAK_SEED={seed}: kills after {moments})"
    sets = [a for stage, n in EPOCHS.items() for a in ("--set", f"{stage}.epochs={n}")]
    work = tmp_path / "work"  # the last study's working folder
    data = _write_corpus(work / "data" / "corpus.npz")
    folders = [tmp_path / f"results{i}" for i in range(STUDIES - 1)] + [work / "results"]
    stores = [f"sqlite:///{f / 'mlflow.db'}" for f in folders[:-1]] + [f"sqlite:///{work / 'db' / 'runs.db'}"]
    relative = ["--results", "results", "--dataset", "npz:data/corpus.npz", "--tracking-uri", "sqlite:///db/runs.db",
                "--storage", "store"]
    commands = [driver_command("stride", f, "--only", "s7", *TINY, *sets) for f in folders[:-1]]
    commands.append([sys.executable, str(ROOT / "harness" / "run_ablation.py"), "stride", "--profile", "debug",
                     "--only", "s7", *relative, *TINY, *sets])
    logs = [f / "stride" / "trials" / "s7-seed0" / "worker0.log" for f in folders]
    procs = [subprocess.Popen(command, cwd=ROOT if i < STUDIES - 1 else work, env=driver_env(),
                              stdout=open(tmp_path / f"driver{i}.out", "w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
             for i, command in enumerate(commands)]
    killed: dict[int, int] = {}
    deadline = time.time() + 600
    try:
        while time.time() < deadline and any(p.poll() is None for p in procs):
            for i, proc in enumerate(procs):
                if i not in killed and proc.poll() is None and moments[i] in _read(logs[i]):
                    worker = _trial_worker(proc.pid)
                    if worker is not None:
                        os.kill(worker, signal.SIGKILL)
                        killed[i] = worker
            time.sleep(0.05)
        codes = [p.poll() for p in procs]
    finally:
        for proc in procs:
            stop_process_group(proc)
    outs = [_read(tmp_path / f"driver{i}.out")[-3000:] for i in range(STUDIES)]
    assert None not in codes, f"a study did not end within 10 minutes {about}"
    assert sorted(killed) == list(range(STUDIES)), f"only studies {sorted(killed)} saw their kill {about}"
    for i, folder in enumerate(folders):
        log = _read(logs[i])
        assert codes[i] == 0, f"study {i} {about}:\n{outs[i]}\n{log}"
        stage = moments[i].split()[0]
        epoch = int(moments[i].split()[2].split("/")[0])
        # Restarted after the kill, and the killed stage continued from its checkpoint.
        assert len(re.findall(r"rank 0/1 on cpu", log)) == 2, f"study {i} {about}:\n{log}"
        assert f"{stage}: resumed from the checkpoint of epoch {epoch} " in log, f"study {i} {about}:\n{log}"
        rows = read_csv(folder / "stride" / "table.csv")
        assert [(r["variant"], r["task"]) for r in rows] == [("s7", "sign2text")] and rows[0]["bleu4"] != "", about
        assert "PARTIAL" not in _read(folder / "stride" / "table.md"), about
        parents, children = runs_of(stores[i], "stride")
        assert [p.info.status for p in parents] == ["FINISHED"], about
        assert [(c.data.tags["harness.trial_key"], c.info.status) for c in children] == [("s7-seed0", "FINISHED")], about
    # The relative study: its trial read the data file and logged to the store named from `work`,
    # mirrored to the storage folder named from there, and left no database where Ray ran it.
    assert children[0].data.params["data.source"] == f"npz:{data}"
    assert (work / "store" / "stride" / "trials" / "s7-seed0.json").is_file() and (work / "store" / "ray").is_dir()
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("runs.db")] == [Path("work/db/runs.db")]
