"""The positive control's plumbing (ablations/parts.yaml): `pretrain.parts` is a strict config key,
its parts are masked as absent in what every stage but the back-translator receives, and it is
hashed into exactly the keys of the stages that see it."""

from __future__ import annotations

import typing

import numpy as np
import pytest

from harness.ablation import load_ablation, variant_config
from harness.config import ConfigError, PretrainConfig, apply_overrides, load_profile, parse_set
from harness.data.parts import drop_parts, kept_points
from harness.data.synth import generate_corpus
from harness.stages import STAGES, StageContext, stage_keys
from harness.stages.translate import _frames
from models.layout import CANONICAL

BOTH = ("sign2text", "text2sign")
HANDS = list(CANONICAL.parts["left_hand"] + CANONICAL.parts["right_hand"])
FACE = list(CANONICAL.parts["face"])
BODY = list(CANONICAL.parts["body"])


def small_corpus():
    return generate_corpus(seed=0, glosses=16, signers=2, train=4, dev=2, test=2, min_signs=2, max_signs=3, fps=25,
                           noisy_frame_rate=0.0, missing_point_rate=0.01, jitter=0.01)


def test_the_config_key_names_the_layouts_parts():
    (literal,) = typing.get_args(typing.get_type_hints(PretrainConfig)["parts"])[:1]
    assert typing.get_args(literal) == tuple(CANONICAL.parts) == PretrainConfig().parts


def test_parts_are_a_non_empty_subset_stored_in_the_layouts_order():
    cfg = apply_overrides(load_profile("debug"), {"pretrain.parts": ["right_hand", "body"]})
    assert cfg.pretrain.parts == ("body", "right_hand")
    assert apply_overrides(load_profile("debug"), parse_set(["pretrain.parts=[face, body]"])).pretrain.parts == (
        "body", "face")


@pytest.mark.parametrize("value", [[], ["body", "body"], "body", ["hands"], [1], None, {"body": 1}])
def test_a_bad_parts_value_is_one_line_naming_the_key(value):
    with pytest.raises(ConfigError) as err:
        apply_overrides(load_profile("debug"), {"pretrain.parts": value}, "ablations/parts.yaml")
    msg = str(err.value)
    assert msg.startswith("pretrain.parts must be a non-empty list of distinct names of body, face, left_hand, "
                          "right_hand, got ") and msg.endswith("(ablations/parts.yaml)") and "\n" not in msg


def test_drop_parts_masks_exactly_the_dropped_points_as_absent():
    corpus = small_corpus()
    before = {id(s): (s.keypoints.copy(), s.mask.copy()) for split in corpus.values() for s in split}
    assert drop_parts(corpus, tuple(CANONICAL.parts)) is corpus
    out = drop_parts(corpus, ("body", "face"))
    for split, seqs in corpus.items():
        for s, d in zip(seqs, out[split]):
            assert not d.mask[:, HANDS].any() and (d.keypoints[:, HANDS] == 0).all()
            keep = BODY + FACE
            np.testing.assert_array_equal(d.mask[:, keep], s.mask[:, keep])
            np.testing.assert_array_equal(d.keypoints[:, keep], s.keypoints[:, keep])
            assert d.keypoints.dtype == s.keypoints.dtype and (d.text, d.gloss, d.boundaries) == (
                s.text, s.gloss, s.boundaries)
    for split in corpus.values():  # the input is untouched
        for s in split:
            k, m = before[id(s)]
            np.testing.assert_array_equal(s.keypoints, k)
            np.testing.assert_array_equal(s.mask, m)
    assert kept_points(("body",)).sum() == len(BODY)
    with pytest.raises(ValueError):
        kept_points(("hands",))


def test_parts_are_in_the_keys_of_every_stage_that_sees_them_but_not_the_judges(tiny_cfg):
    base = stage_keys(tiny_cfg, BOTH)
    body = stage_keys(apply_overrides(tiny_cfg, {"pretrain.parts": ["body"]}), BOTH)
    assert {n for n in base if base[n] != body[n]} == {"pretrain", "probe", "figure5", "embed", "sign2text",
                                                       "embed_t2s", "text2sign"}
    assert body["backtranslator"] == base["backtranslator"] and body["prepare"] == base["prepare"]


def test_stages_receive_the_view_and_the_back_translator_the_full_corpus(tiny_cfg):
    cfg = apply_overrides(tiny_cfg, {"pretrain.parts": ["body"]})
    corpus = small_corpus()
    ctx = StageContext(cfg=cfg, runtime=None, key="k", inputs={}, prepare_source=None)
    prepared = STAGES["prepare"].ready(ctx, corpus)
    assert prepared.full is corpus
    for seqs in prepared.corpus.values():
        for s in seqs:
            assert not s.mask[:, HANDS + FACE].any() and s.mask[:, BODY].any()
    frames, masks = _frames(StageContext(cfg=cfg, runtime=None, key="k", inputs={"prepare": prepared},
                                         prepare_source=None))
    assert all(m[:, HANDS + FACE].any() for m in masks["train"])  # the judge sees every part
    assert prepared.vocab.encode(corpus["train"][0].text) == STAGES["prepare"].ready(
        StageContext(cfg=tiny_cfg, runtime=None, key="k", inputs={}, prepare_source=None), corpus
    ).vocab.encode(corpus["train"][0].text)


def test_the_parts_ablation():
    spec = load_ablation("parts")
    assert spec.profile == "default" and spec.tasks == BOTH and spec.baseline == "all"
    parts = {v: variant_config(spec, v, None, {}, 0).pretrain.parts for v in spec.variants}
    assert parts == {"all": tuple(CANONICAL.parts), "no_hands": ("body", "face"),
                     "no_face": ("body", "left_hand", "right_hand"), "body_only": ("body",)}
    assert load_profile("default").seeds == 3


def test_the_probe_of_z_sees_the_hands_only_when_pretraining_does(tmp_path):
    """The positive control of the representation probe (harness/stages/probe.py): z of a SignMAE
    pretrained without hands and face cannot tell hand minimal pairs apart (chance 50%); with them
    it can. Measured at the debug profile, seed 0: 90.9% against 45.5% (22 clips each)."""
    from harness.cache import StageCache
    from harness.loop import local_runtime
    from harness.pipeline import run_trial
    probe = {}
    for name, parts in (("all", ["body", "face", "left_hand", "right_hand"]), ("body", ["body"])):
        cfg = apply_overrides(load_profile("debug"), {"pretrain.parts": parts, "sign2text.epochs": 1})
        result, _ = run_trial(cfg, ("sign2text",), StageCache(tmp_path / "cache"), local_runtime(lambda s: None))
        probe[name] = result.pretrain_metrics
    assert probe["all"]["probe/pair_hand_n"] == probe["body"]["probe/pair_hand_n"] >= 10
    assert probe["all"]["probe/pair_hand"] >= 75.0 and probe["body"]["probe/pair_hand"] <= 65.0, probe
    assert probe["all"]["probe/knn_acc"] > probe["body"]["probe/knn_acc"] + 10.0, probe
