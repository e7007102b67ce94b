"""The stage graph: cache keys that follow from each stage's needs and settings, the run order,
and one whole trial in this process (computed, then loaded from the cache unchanged)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.cache import StageCache
from harness.config import apply_overrides
from harness.loop import local_runtime
from harness.pipeline import run_trial
from harness.results import sample_indices
from harness.stages import STAGES, key_inputs, run_order, stage_keys

BOTH = ("sign2text", "text2sign")


def test_the_graph_is_walked_after_each_stages_needs(tiny_cfg):
    assert run_order(("sign2text",)) == ["prepare", "pretrain", "probe", "isolated", "figure5", "embed", "sign2text"]
    assert run_order(BOTH) == ["prepare", "pretrain", "probe", "isolated", "figure5", "embed", "sign2text", "embed_t2s",
                               "backtranslator",
                               "text2sign"]
    walked = set()
    for over in ({}, {"sign2text.method": "joint_slt"}, {"sign2text.method": "conslt"}, {"text2sign.method": "pt"},
                 {"text2sign.method": "nslp_g"}):  # every method's stages (harness/stages METHOD_STAGES)
        order = run_order(BOTH + ("recognition",), apply_overrides(tiny_cfg, over))
        walked |= set(order)
        for name in order:
            assert all(order.index(n) < order.index(name) for n in STAGES[name].needs)
    assert walked == set(STAGES)


def test_a_key_hashes_only_its_direct_upstream_keys():
    assert key_inputs("sign2text") == ("embed",)  # prepare and pretrain are inside embed's key
    assert key_inputs("text2sign") == ("embed_t2s", "backtranslator")
    assert key_inputs("backtranslator") == ("prepare",)


def test_keys_are_shared_exactly_where_the_outputs_are(tiny_cfg):
    base = stage_keys(tiny_cfg, BOTH)
    stride = stage_keys(apply_overrides(tiny_cfg, {"embed.stride": 3}), BOTH)
    assert {n for n in base if base[n] != stride[n]} == {"embed", "sign2text"}  # one pretraining for all strides
    weighting = stage_keys(apply_overrides(tiny_cfg, {"pretrain.weighting": "fpw"}), BOTH)
    assert {n for n in base if base[n] != weighting[n]} == {"pretrain", "probe", "figure5", "embed", "sign2text",
                                                              "embed_t2s", "text2sign"}  # the back-translator is shared
    seed = stage_keys(apply_overrides(tiny_cfg, {"seed": 1}), BOTH)
    assert {n for n in base if base[n] == seed[n]} == {"prepare", "isolated"}
    compute = stage_keys(apply_overrides(tiny_cfg, {"compute.torch_threads": 2}), BOTH)
    assert compute == base  # how a trial runs is not what it computes
    bf16 = stage_keys(apply_overrides(tiny_cfg, {"compute.cpu_bf16": True}), BOTH)
    assert {n for n in base if base[n] == bf16[n]} == {"prepare", "isolated"}  # every training stage computes otherwise
    # Text-to-sign's embedding is an `embed` entry: at stride = window it is sign-to-text's own.
    same = stage_keys(apply_overrides(tiny_cfg, {"embed.stride": tiny_cfg.pretrain.window}), BOTH)
    assert same["embed"] == same["embed_t2s"]


def test_a_trial_computes_every_stage_once_then_loads_them(tiny_cfg, tmp_path):
    torch.set_num_threads(1)
    cache = StageCache(tmp_path / "cache")
    first, samples = run_trial(tiny_cfg, BOTH, cache, local_runtime(lambda s: None))
    assert first.stages == {name: "computed" for name in run_order(BOTH) if STAGES[name].reported}
    assert {n for n in STAGES if not STAGES[n].reported} == {"prepare", "isolated"}  # the driver's
    assert set(first.tasks) == {"sign2text", "text2sign", "backtranslator"}
    assert len(first.tasks["sign2text"].test.references) == tiny_cfg.data.synth.test
    # The side-by-side test sentences' keypoints (figure 4): generated (T, V, C) against ground truth (T', V, C).
    test = first.tasks["text2sign"].test
    assert [(s.index, s.text) for s in samples] == [(i, test.references[i]) for i in sample_indices(len(test.references))]
    assert all(s.generated.shape[1:] == s.ground_truth.shape[1:] and s.mask.shape == s.ground_truth.shape[:2]
               for s in samples)
    # The weights pretraining used (APW here, body = 1): eq. 1's statistics over the last epoch's segments.
    w = first.pretrain_metrics
    assert w["pretrain/w_face_q25"] <= w["pretrain/w_face_q50"] <= w["pretrain/w_face_q75"]
    assert 0.0 <= w["pretrain/w_floored"] <= 1.0 and w["pretrain/w_degenerate"] == 0.0  # the corpus has every part
    keys = stage_keys(tiny_cfg, BOTH)
    assert all(cache.is_complete(STAGES[n].cache_folder, k) for n, k in keys.items())
    again, cached_samples = run_trial(tiny_cfg, BOTH, cache, local_runtime(lambda s: None))
    assert set(again.stages.values()) == {"cached"}
    assert all(np.array_equal(a.generated, b.generated) for a, b in zip(cached_samples, samples, strict=True))

    def numbers(result):
        return {k: v for k, v in dataclasses.asdict(result).items() if k not in ("stages", "stage_seconds", "seconds")}
    assert numbers(again) == numbers(first)


def test_a_diverged_stage_is_never_cached(tiny_cfg, tmp_path):
    from harness.loop import Diverged
    torch.set_num_threads(1)
    cfg = apply_overrides(tiny_cfg, {"optim.lr": 1e30}, "--set")
    cache = StageCache(tmp_path / "cache")
    with pytest.raises(Diverged, match=r"^pretrain: the training (loss|gradient norm) became (nan|inf) in epoch \d/2;"):
        run_trial(cfg, ("sign2text",), cache, local_runtime(lambda s: None))
    keys = stage_keys(cfg, ("sign2text",))
    assert cache.is_complete("prepare", keys["prepare"])  # the stage before it is kept ...
    entry = cache.entry("pretrain", keys["pretrain"]).path
    assert not entry.exists() and not cache.has_files("pretrain", keys["pretrain"])  # ... the diverged one is not
    assert not (tmp_path / "cache" / "embed").exists()  # and nothing after it ran


def test_a_diverged_trial_is_one_line_on_the_command_line(tmp_path, capsys):
    from conftest import TINY_OVERRIDES
    from harness import trial
    from harness.cli import run_cli
    sets = [a for k, v in {**TINY_OVERRIDES, "optim.lr": 1e30}.items() for a in ("--set", f"{k}={v}")]
    rc = run_cli(trial.main, ["apw", "none", "--profile", "debug", "--results", str(tmp_path), *sets])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: pretrain: the training ") and err.count("\n") == 1, err
    assert "lower optim.lr (now 1e+30);" in err and "Traceback" not in err
    assert [p.name for p in (tmp_path / "cache" / "pretrain").iterdir() if p.suffix != ".lock"] == []  # no entry


def _concurrent_trial(overrides: dict, root: str, barrier, out) -> None:
    """One trial in its own process, started with the other at one moment (the barrier)."""
    from conftest import TINY_OVERRIDES
    from harness.config import load_profile
    torch.set_num_threads(1)
    cfg = load_profile("debug", {**TINY_OVERRIDES, **overrides})
    said: list[str] = []
    barrier.wait()
    started = time.time()
    result, _ = run_trial(cfg, ("sign2text",), StageCache(Path(root)), local_runtime(said.append))
    out.put({"started": started, "stages": result.stages, "said": said,
             "keys": stage_keys(cfg, ("sign2text",))})


def test_two_trials_that_need_one_entry_at_once_compute_it_once(tmp_path):
    """Through the pipeline, not only the lock: two trials (their sign-to-text differs, the rest is
    shared) start at the same moment on one cache; each shared stage is computed by one and loaded
    by the other, which waited for it."""
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_concurrent_trial, args=({"sign2text.beam_size": beam}, str(tmp_path), barrier, out))
             for beam in (1, 2)]
    for p in procs:
        p.start()
    runs = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    a, b = runs
    shared = [n for n in a["keys"] if a["keys"][n] == b["keys"][n] and STAGES[n].reported]  # not prepare, isolated
    assert shared == ["pretrain", "probe", "figure5", "embed"] and a["keys"]["sign2text"] != b["keys"]["sign2text"]
    for name in shared:
        assert sorted([a["stages"][name], b["stages"][name]]) == ["cached", "computed"], (name, a["stages"], b["stages"])
        folder = tmp_path / STAGES[name].cache_folder
        assert [p.name for p in folder.iterdir() if p.is_dir()] == [a["keys"][name]]  # one entry, no leftover
    assert a["stages"]["sign2text"] == b["stages"]["sign2text"] == "computed"
    said = a["said"] + b["said"]
    assert sum(line.startswith("pretrain: computing") for line in said) == 1
    # They overlapped: both had started before the shared pretraining was written (the later one
    # waited on the entry's lock, then loaded it).
    done = json.loads((tmp_path / "pretrain" / a["keys"]["pretrain"] / "DONE.json").read_text())
    assert max(a["started"], b["started"]) < done["created"]
