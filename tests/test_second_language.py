"""The second synthetic sign language (harness/data/synth/second_language.py, source `synth2`):
How2Sign's stand-in for pretraining on two corpora (paper table 4d and the main rows)."""

from __future__ import annotations

import dataclasses
import inspect
from functools import lru_cache

import numpy as np
import pytest

from harness.cache import StageCache
from harness.config import ConfigError, SynthConfig, apply_overrides, load_profile
from harness.data.record import SPLITS, DataError
from harness.data.sources import Source, parse_source
from harness.data.synth import (
    INVENTORY_ORDER, MAX_GLOSSES, SECOND_ORDER, UNSEEN_NAMES, generate_corpus, generate_second_corpus, gloss_inventory,
    minimal_pairs, second_inventory, slot, slot2,
)
from harness.datasource import load_raw, source_identity, synth_params

DEBUG = dict(glosses=16, signers=3, train=64, dev=16, test=16, min_signs=2, max_signs=4, fps=25,
             noisy_frame_rate=0.01, missing_point_rate=0.01, jitter=0.01)


@lru_cache(maxsize=None)
def first(seed: int = 0, **overrides):
    return generate_corpus(seed=seed, **{**DEBUG, **overrides})


@lru_cache(maxsize=None)
def second(seed: int = 0, **overrides):
    return generate_second_corpus(seed=seed, **{**DEBUG, **overrides})


def glosses_of(corpus) -> set[str]:
    return {g for split in SPLITS for s in corpus[split] for g in s.gloss.split()}


def test_the_two_languages_share_no_gloss_name():
    assert not set(SECOND_ORDER) & set(INVENTORY_ORDER)  # the whole lexicons, not only the used prefixes
    assert not set(SECOND_ORDER) & set(UNSEEN_NAMES)  # the isolated signs stay unseen by both
    assert len(set(SECOND_ORDER)) == len(SECOND_ORDER) >= MAX_GLOSSES  # every accepted data.synth.glosses
    used = glosses_of(second(glosses=48, train=200))
    assert used and not used & glosses_of(first(glosses=48, train=200))


def _verb_object_order(corpus, is_verb, is_object) -> float:
    """Share of sentences with a verb and an object in which the verb comes first."""
    before = []
    for s in corpus["train"]:
        gl = s.gloss.split()
        verbs = [i for i, g in enumerate(gl) if is_verb(g)]
        objects = [i for i, g in enumerate(gl) if is_object(g)]
        if verbs and objects:
            before.append(verbs[0] < objects[0])
    assert len(before) >= 50, "too few sentences with a verb and an object to measure"
    return float(np.mean(before))


def test_their_gloss_orders_differ():
    """The first language is verb-final (object before verb); the second puts the verb first."""
    a = _verb_object_order(first(glosses=60, train=400),
                           lambda g: slot(g) == "verb_t", lambda g: slot(g).startswith("object:"))
    b = _verb_object_order(second(glosses=60, train=400),
                           lambda g: slot2(g) in ("verb", "place_verb"), lambda g: slot2(g).startswith("object:"))
    assert a == 0.0 and b == 1.0
    # sentence-final markers: QUESTION / NEVER / ALWAYS only ever close a sentence
    c = second(glosses=60, train=400)
    marked = [s.gloss.split() for s in c["train"] if {"QUESTION", "NEVER", "ALWAYS"} & set(s.gloss.split())]
    assert marked and all(gl[-1] in ("QUESTION", "NEVER", "ALWAYS") for gl in marked)
    questions = [s.text for s in c["train"] if s.gloss.endswith("QUESTION")]
    assert questions and all(t.endswith(" ?") for t in questions)


def test_its_signs_come_from_the_same_phonology_on_their_own_stream():
    from harness.data.synth import EXPRESSIONS, HANDSHAPES
    a, b = gloss_inventory(0, 48), second_inventory(0, 48)
    assert all(set(s.handshapes) <= set(HANDSHAPES) and s.face in EXPRESSIONS for s in b)
    assert {s.trajectory for s in a}.isdisjoint({s.trajectory for s in b})  # drawn independently
    pairs = minimal_pairs(b)
    assert all(pairs[k] for k in ("hand", "face", "hand+face"))
    same_slot = [slot2(x) == slot2(y) for k in pairs for x, y in pairs[k]]
    assert np.mean(same_slot) > 0.8  # minimal pairs fill one slot of its own grammar (ONION / GARLIC)


def test_it_is_deterministic_and_its_seed_matters():
    x, y = generate_second_corpus(seed=0, **{**DEBUG, "train": 8}), generate_second_corpus(seed=0, **{**DEBUG, "train": 8})
    for split in SPLITS:
        for s, t in zip(x[split], y[split], strict=True):
            assert (s.name, s.text, s.gloss, s.signer) == (t.name, t.text, t.gloss, t.signer)
            assert np.array_equal(s.keypoints, t.keypoints) and np.array_equal(s.mask, t.mask)
    z = generate_second_corpus(seed=1, **{**DEBUG, "train": 8})
    assert [s.gloss for s in z["train"]] != [s.gloss for s in x["train"]]
    assert x["train"][0].name == "synth2/train/0" and x["train"][0].meta["source"] == "synth2"


def test_its_signers_are_other_people():
    a, b = first(), second()
    names_a = {s.signer for split in SPLITS for s in a[split]}
    names_b = {s.signer for split in SPLITS for s in b[split]}
    assert names_b == {"signer_b1", "signer_b2", "signer_b3"} and not names_a & names_b
    # other bodies too: the shoulder width in pixels of each signer's first frame
    width = lambda c, n: np.linalg.norm(np.diff(next(s for s in c["train"] if s.signer == n).keypoints[0, :2], axis=0))  # noqa: E731
    assert {round(float(width(b, n)), 1) for n in names_b}.isdisjoint({round(float(width(a, n)), 1) for n in names_a})


@pytest.mark.parametrize("profile", ["debug", "demo", "default", "paper"])
def test_it_is_several_times_larger_at_the_same_profile(profile):
    cfg = load_profile(profile)
    one, two = synth_params(parse_source("synth"), cfg), synth_params(parse_source("synth2"), cfg)
    assert two["train"] >= 3 * one["train"] and two["train"] == round(4.4 * one["train"])
    assert {k: v for k, v in two.items() if k != "train"} == {k: v for k, v in one.items() if k != "train"}


def test_the_debug_corpus_is_generated_at_that_size():
    cfg = load_profile("debug")
    c1, c2 = load_raw("synth", cfg), load_raw("synth2", cfg)
    assert len(c2["train"]) >= 3 * len(c1["train"]) and len(c2["dev"]) == len(c1["dev"])


def test_the_generator_takes_exactly_the_config_fields():
    assert set(inspect.signature(generate_second_corpus).parameters) == {f.name for f in dataclasses.fields(SynthConfig)}


@pytest.mark.parametrize("edge", [
    {"glosses": 4, "max_signs": 3}, {"glosses": MAX_GLOSSES}, {"fps": 5}, {"signers": 1},
    {"noisy_frame_rate": 0.49, "missing_point_rate": 0.49, "jitter": 0.99}, {"min_signs": 1, "max_signs": 1},
])
def test_every_value_the_config_accepts_generates(edge):
    params = dataclasses.asdict(load_profile("debug", {f"data.synth.{k}": v for k, v in edge.items()}).data.synth)
    c = generate_second_corpus(**{**params, "train": 4, "dev": 1, "test": 1})
    assert [len(c[s]) for s in SPLITS] == [4, 1, 1] and all(s.num_frames > 0 for split in SPLITS for s in c[split])


def test_the_spec_parses_like_synth_and_is_a_cache_key_of_its_own():
    assert parse_source(" synth2 ") == Source("synth2")
    assert parse_source("synth2@7") == Source("synth2", seed=7)
    assert parse_source("synth2:debug") == Source("synth2", profile="debug")
    cfg = load_profile("debug")
    assert source_identity("synth2", cfg) != source_identity("synth", cfg)
    assert source_identity("synth2@7", cfg)["synth2"]["seed"] == 7
    assert source_identity("synth2:default", cfg)["synth2"]["train"] == round(300 * 4.4)
    assert source_identity("synth", cfg) == {"synth": dataclasses.asdict(cfg.data.synth)}  # the first's key unchanged
    scaled = apply_overrides(cfg, {"data.synth2.train_scale": 2.0})
    assert source_identity("synth2", scaled)["synth2"]["train"] == 64


@pytest.mark.parametrize("spec, message", [
    ("synth2@x", "source 'synth2@x': expected synth2@SEED with a non-negative integer seed, e.g. synth2@1000"),
    ("synth2@1:debug", "source 'synth2@1:debug': expected synth2, synth2@SEED or synth2:PROFILE (not both)"),
    ("synth2:", "source 'synth2:': synth2:PROFILE needs a profile name, e.g. synth2:debug"),
    ("synth3", "source 'synth3': unknown kind 'synth3'; expected one of synth, synth@SEED, synth:PROFILE, synth2,"),
])
def test_a_bad_spec_is_one_line(spec, message):
    with pytest.raises(DataError) as err:
        parse_source(spec)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_the_config_bounds_its_scale_and_refuses_a_synthetic_extra_beside_real_data():
    with pytest.raises(ConfigError, match="data.synth2.train_scale"):
        load_profile("debug", {"data.synth2.train_scale": 0})
    with pytest.raises(ConfigError, match="pretrain.extra_source is 'synth2', synthetic, but data.source is 'pt:/d'"):
        load_profile("paper", {"data.source": "pt:/d"})
    assert load_profile("paper", {"data.source": "pt:/d", "pretrain.extra_source": ""}).pretrain.extra_source == ""


def test_the_profiles_say_whether_they_pretrain_on_both():
    from harness.config import PROFILE_DIR
    for name in ("debug", "demo", "default", "paper"):
        header = "".join(line for line in (PROFILE_DIR / f"{name}.yaml").read_text().splitlines(True)
                         if line.startswith("#"))
        both = load_profile(name).pretrain.extra_source == "synth2"
        assert both == (name == "paper")
        assert ("Pretrains on two corpora" in header) if both else ("Pretrains on one corpus" in header)


def test_a_debug_prepare_with_extra_source_synth2_mixes_it(tmp_path):
    """The prepare stage reads synth2 as the extra corpus (its own cache entry) and pretraining gets
    its train split beside the main corpus's."""
    from harness.loop import local_runtime
    from harness.pipeline import _context, prepare_source
    from harness.stages import stage_keys
    from harness.stages.prepare import _ready
    from harness.stages.pretrain import training_sequences
    from types import SimpleNamespace
    cfg = load_profile("debug", {"pretrain.extra_source": "synth2", "data.synth.train": 10, "data.synth.dev": 4,
                                 "data.synth.test": 4})
    said: list[str] = []
    cache = StageCache(tmp_path / "cache")
    runtime = local_runtime(said.append)
    main = prepare_source("synth", cfg, cache, runtime)
    prepared = _ready(_context(cfg, runtime, "k", {}, cache), main)
    assert len(list((tmp_path / "cache" / "prepare").glob("*/DONE.json"))) == 2  # two corpora, two entries
    assert len(prepared.extra) >= 3 * len(prepared.corpus["train"])
    assert all(s.name.startswith("synth2/train/") and s.signer.startswith("signer_b") for s in prepared.extra)
    seqs = training_sequences(SimpleNamespace(cfg=cfg, inputs={"prepare": prepared}))
    assert {s.name.split("/")[0] for s in seqs} == {"synth", "synth2"}
    assert any("pretraining also on synth2: both 2D (x, y), nothing dropped" in line for line in said)
    # pretraining's key tells the second language from another seed of the first
    key = lambda extra: stage_keys(apply_overrides(cfg, {"pretrain.extra_source": extra}), ("sign2text",))["pretrain"]  # noqa: E731
    assert len({key("synth2"), key("synth@1000"), key("")}) == 3
