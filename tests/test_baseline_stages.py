"""The baselines of tables 1, 2 and 5 as stages: which stages a baseline's trial runs, what their
keys hash, their CTC targets and pose weights, one in-process trial of each (results under the
task's name, scored like UniGloR's rows), the method filter of an ablation and the table's n/a rows."""

from __future__ import annotations

import math

import pytest
import torch

from harness.ablation import load_ablation
from harness.cache import StageCache
from harness.config import ConfigError, apply_overrides
from harness.data.record import SignSequence
from harness.loop import local_runtime
from harness.pipeline import run_trial
from harness.stages import method_of, run_order, stage_keys, trial_tasks
from harness.tune.ablation import plan_trials

BOTH = ("sign2text", "text2sign")


def _with(cfg, **over):
    return apply_overrides(cfg, over)


def test_a_baseline_trial_runs_its_own_stage_and_no_signmae(tiny_cfg):
    for method, order in [("joint_slt", ["prepare", "joint_slt"]), ("joint_slt_gloss", ["prepare", "joint_slt"]),
                          ("conslt", ["prepare", "conslt"])]:
        cfg = _with(tiny_cfg, **{"sign2text.method": method})
        assert run_order(BOTH, cfg) == order and trial_tasks(cfg, BOTH) == ("sign2text",)
        assert method_of(cfg) == method
    for method in ("pt", "nslp_g"):
        cfg = _with(tiny_cfg, **{"text2sign.method": method})
        assert run_order(BOTH, cfg) == ["prepare", "backtranslator", method]
        assert trial_tasks(cfg, BOTH) == ("text2sign",) and trial_tasks(cfg, ("sign2text",)) == ()
    # UniGloR's trial is what it was before there were baselines.
    assert run_order(BOTH, tiny_cfg) == run_order(BOTH)
    assert method_of(tiny_cfg) == "uniglor" and trial_tasks(tiny_cfg, BOTH) == BOTH


def test_one_baseline_per_trial(tiny_cfg):
    with pytest.raises(ConfigError, match="a trial measures one baseline: sign2text.method 'conslt' and "
                                          "text2sign.method 'pt'; set the other to uniglor"):
        _with(tiny_cfg, **{"sign2text.method": "conslt", "text2sign.method": "pt"})


def test_baseline_keys(tiny_cfg):
    plain = stage_keys(_with(tiny_cfg, **{"sign2text.method": "joint_slt"}), BOTH)
    gloss = stage_keys(_with(tiny_cfg, **{"sign2text.method": "joint_slt_gloss"}), BOTH)
    assert plain["joint_slt"] != gloss["joint_slt"]  # one stage, a key per method
    # SignMAE's settings are not a baseline's, its weighting is (table 5); the judge is UniGloR's own.
    pt = _with(tiny_cfg, **{"text2sign.method": "pt"})
    assert stage_keys(_with(pt, **{"pretrain.mask_ratio": 0.5}), BOTH) == stage_keys(pt, BOTH)
    fpw = stage_keys(_with(pt, **{"pretrain.weighting": "fpw"}), BOTH)
    assert fpw["pt"] != stage_keys(pt, BOTH)["pt"]
    assert fpw["backtranslator"] == stage_keys(tiny_cfg, BOTH)["backtranslator"]
    # The method is not in UniGloR's keys (the stage is the method), so they are what they were.
    from harness.stages.text2sign import TEXT2SIGN
    from harness.stages.translate import SIGN2TEXT
    assert "method" not in SIGN2TEXT.settings(tiny_cfg)["sign2text"]
    assert "method" not in TEXT2SIGN.settings(tiny_cfg)["text2sign"]


def _seq(gloss):
    return SignSequence(name="s", keypoints=torch.zeros(4, 73, 2).numpy(), mask=torch.ones(4, 73, dtype=torch.bool).numpy(),
                        text="a b", gloss=gloss)


def test_ctc_targets_from_the_glosses():
    from harness.stages.translate import gloss_targets
    targets, size = gloss_targets({"train": [_seq("RAIN TOMORROW"), _seq("SUN RAIN")]})
    # ids 1.. by sorted name (RAIN 1, SUN 2, TOMORROW 3); 0 is the CTC blank, so the head has 4 outputs
    assert targets == [[1, 3], [2, 1]] and size == 4
    assert gloss_targets({"train": [_seq("RAIN"), _seq(None)]}) is None  # not applicable
    assert gloss_targets({"train": [_seq("")]}) is None


def test_sequence_weights_window_by_window(tiny_cfg):
    from harness.pose_weights import loss_weights, sequence_weights
    from harness.stages.prepare import PREPARE
    from harness.stages.base import StageContext
    rt = local_runtime(lambda s: None)
    corpus, _ = PREPARE.run(StageContext(tiny_cfg, rt, "k", {}, lambda spec: None))
    s = corpus["train"][0]
    x, m = torch.from_numpy(s.keypoints).float(), torch.from_numpy(s.mask).bool()
    w = tiny_cfg.pretrain.window
    none = sequence_weights(_with(tiny_cfg, **{"pretrain.weighting": "none"}), x, m, None)
    assert none.shape == m.shape and bool((none == 1).all())
    apw = sequence_weights(tiny_cfg, x, m, None)  # tiny_cfg: APW
    assert apw.shape == m.shape
    second = loss_weights(tiny_cfg, x[w:2 * w][None], m[w:2 * w][None], None).points[0]
    assert torch.equal(apw[w], second) and torch.equal(apw[2 * w - 1], second)
    assert not torch.equal(apw[0], apw[w])  # each window its own weights
    fixed = {"body": 1.0, "face": 2.0, "hands": 3.0}
    fpw = sequence_weights(_with(tiny_cfg, **{"pretrain.weighting": "fpw"}), x, m, fixed)
    assert sorted(set(fpw[0].tolist())) == [1.0, 2.0, 3.0] and torch.equal(fpw[0], fpw[-1])


@pytest.mark.parametrize("over,task", [({"sign2text.method": "joint_slt_gloss"}, "sign2text"),
                                       ({"sign2text.method": "conslt", "pretrain.weighting": "apw"}, "sign2text"),
                                       ({"text2sign.method": "pt", "pretrain.weighting": "fpw"}, "text2sign"),
                                       ({"text2sign.method": "nslp_g"}, "text2sign")])
def test_a_baseline_trial_in_process(tiny_cfg, tmp_path, over, task):
    torch.set_num_threads(1)
    cfg = _with(tiny_cfg, **over)
    result, samples = run_trial(cfg, BOTH, StageCache(tmp_path / "cache"), local_runtime(lambda s: None))
    assert set(result.tasks) == ({task} if task == "sign2text" else {task, "backtranslator"})
    test = result.tasks[task].test
    assert len(test.hypotheses) == len(test.references) == cfg.data.synth.test
    assert set(test.metrics) >= {"bleu1", "bleu4", "rouge"} and result.pretrain_metrics == {}
    assert all(math.isfinite(v) for v in test.metrics.values())
    if task == "text2sign":  # the side-by-side samples, as UniGloR's rows keep them
        assert len(samples) > 1 and all(s.generated.shape[1:] == s.ground_truth.shape[1:] for s in samples)
        assert test.metrics["mpjpe"] > 0 and test.metrics["dtw_mje"] > 0
        if over["text2sign.method"] == "nslp_g":  # a fixed length: the longest training sequence
            assert len({len(s.generated) for s in samples}) == 1
    else:
        assert samples == []
    again, _ = run_trial(cfg, BOTH, StageCache(tmp_path / "cache"), local_runtime(lambda s: None))
    assert set(again.stages.values()) == {"cached"} and again.tasks[task].test == test


def test_without_glosses_the_gloss_row_is_not_applicable(tiny_cfg, tmp_path, monkeypatch):
    from harness.stages import translate
    monkeypatch.setattr(translate, "gloss_targets", lambda corpus: None)  # a source without .gloss files
    cfg = _with(tiny_cfg, **{"sign2text.method": "joint_slt_gloss"})
    result, _ = run_trial(cfg, BOTH, StageCache(tmp_path / "cache"), local_runtime(lambda s: None))
    test = result.tasks["sign2text"].test
    assert test.hypotheses == [] and all(math.isnan(v) for v in test.metrics.values())
    assert "sign2text/test_bleu4" not in result.final_metrics()  # NaN is not logged
    from harness import reading, report
    rows_in = [{"variant": v, "seed": 0, "task": "sign2text", "metrics": m, "hypotheses": h, "references": r}
               for v, m, h, r in [("joint_slt_gloss", test.metrics, [], []),
                                  ("uniglor", {k: 10.0 for k in report.TEXT_METRICS}, ["a b"], ["a b"])]]
    rows = report.build_table(rows_in, ["joint_slt_gloss", "uniglor"], "uniglor")
    assert report.not_applicable(rows[0]) and rows[0]["p_bleu4"] is None and not report.not_applicable(rows[1])
    footer = "\n\n".join(reading.methods_text(rows, {"joint_slt_gloss": "joint_slt_gloss"}))
    md = report.write_table(rows, tmp_path, "t", footer)
    assert "| joint_slt_gloss | n/a | n/a | n/a | n/a | n/a | n/a |" in md
    assert "n/a: joint_slt_gloss (sign-to-text): not applicable" in md and "weight their INPUT" in md


def test_compare_to_pairs_each_row_with_its_own_baseline(tmp_path):
    from harness import report
    def row(v, hyps):
        return {"variant": v, "seed": 0, "task": "sign2text", "metrics": {k: 1.0 for k in report.TEXT_METRICS},
                "hypotheses": hyps, "references": ["a b c d e"] * 3}
    good, bad = ["a b c d e"] * 3, ["x y z w v"] * 3
    rows = report.build_table([row("pt-none", bad), row("pt-apw", good), row("none", good), row("apw", good)],
                              ["pt-none", "pt-apw", "none", "apw"], "none", n_bootstrap=200,
                              compare_to={"pt-apw": "pt-none"})
    p = {r["variant"]: r["p_bleu4"] for r in rows}
    assert p["pt-none"] is not None and p["none"] is None and p["pt-apw"] is not None
    assert p["apw"] == pytest.approx(1.0, abs=0.51)  # the same outputs as its baseline: no difference
    assert p["pt-apw"] < 0.05  # against its own unweighted row, which it beats everywhere
    # pt-none is itself compared to UniGloR's unweighted row (its p shows); only "none" says baseline.
    md = report.write_table(rows, tmp_path, "t", "f", baseline="none", baselines={"pt-none"})
    assert md.count("(baseline)") == 1 and "| none |" in md


def test_ablation_methods_and_only():
    main = load_ablation("main")
    assert list(main.variants) == ["joint_slt", "joint_slt_gloss", "conslt", "pt", "nslp_g", "uniglor"]
    assert main.methods == {v: v for v in main.variants}
    apw = load_ablation("apw")
    assert [t.variant for t in plan_trials(apw, "debug", 1, {}, {}, ["uniglor"])] == ["none", "fpw", "fpw_paper", "apw"]
    assert [t.variant for t in plan_trials(apw, "debug", 1, {}, {}, ["pt,nslp_g-apw"])] == \
        ["pt-none", "pt-fpw", "pt-apw", "nslp_g-apw"]
    everything = plan_trials(apw, "debug", 1, {}, {})
    assert len(everything) == 16 and {t.cfg.pretrain.weighting for t in everything} == {"none", "fpw", "apw"}
    assert all(apw.baseline_of(v).endswith("none") for v in apw.variants)
    with pytest.raises(ConfigError, match="--only nosuch: not a variant of apw .* nor a method of it "
                                          r"\(one of joint_slt, conslt, pt, nslp_g, uniglor\)"):
        plan_trials(apw, "debug", 1, {}, {}, ["nosuch"])


def test_the_paper_profile_sizes_the_baselines_as_joint_slt():
    """B.2's Joint-SLT configuration (512 wide, 3 layers, 8 heads) through the same profile keys, and
    the shapes at those sizes."""
    from harness.builders import build_keypoint_translator, build_production_baseline
    from harness.config import load_profile
    from harness.data.datasets import Vocabulary
    vocab = Vocabulary.build(["a b c", "b c d"])
    cfg = load_profile("paper")
    for over in ({"sign2text.method": "joint_slt_gloss"}, {"sign2text.method": "conslt"}):
        model = build_keypoint_translator(_with(cfg, **over), 3, vocab, 5 if "gloss" in str(over) else None)
        layer = model.translator.encoder.layers[0]
        assert layer.self_attn.embed_dim == 512 and layer.self_attn.num_heads == 8
        assert len(model.translator.encoder.layers) == 3 and len(model.translator.decoder.layers) == 3
        x, pm, fm = torch.randn(2, 9, 73, 3), torch.ones(2, 9, 73, dtype=torch.bool), torch.ones(2, 9, dtype=torch.bool)
        memory, _ = model.encode(x, pm, fm)
        assert memory.shape == (2, 9, 512)
    for method in ("pt", "nslp_g"):
        model = build_production_baseline(_with(cfg, **{"text2sign.method": method}), 3, vocab, longest=20)
        assert model.decoder.layers[0].self_attn.embed_dim == 512 and len(model.decoder.layers) == 3
        tokens = torch.tensor([[4, 5, 6], [5, 6, 0]])
        out = model.generate(tokens) if method == "nslp_g" else model.generate(tokens, max_frames=3)
        assert all(g.shape[1:] == (73, 3) for g in out) and (method == "pt" or out[0].shape[0] == 20)


def test_the_live_view_counts_a_baseline_trials_own_stages():
    from harness.tune.live_view import progress
    assert progress("pt", 1, 2, BOTH) == 0.75  # the judge, then half of PT's epochs
    assert progress("joint_slt", 1, 4, BOTH) == 0.25
    assert progress("backtranslator", 0, 4, BOTH) == 0.5  # in UniGloR's order: pretrain, sign2text, judge, text2sign


def test_the_stages_hand_the_models_their_glosses_and_weights(tiny_cfg, tmp_path, monkeypatch):
    """The wiring a wrong number would hide: the CTC head's size and targets come from the corpus's
    glosses, and PT's loss gets FPW's per-part constants (not ones) when weighting is fpw."""
    from harness.stages import translate
    from models.progressive_transformer import ProgressiveTransformer
    seen = {}
    build = translate.build_keypoint_translator

    def spy_build(cfg, coords, vocab, num_glosses):
        seen["glosses"] = num_glosses
        return build(cfg, coords, vocab, num_glosses)
    monkeypatch.setattr(translate, "build_keypoint_translator", spy_build)
    forward = ProgressiveTransformer.forward

    def spy(self, tokens, x, pm, fm, weights):
        seen.setdefault("weights", weights.detach().clone())
        return forward(self, tokens, x, pm, fm, weights)
    monkeypatch.setattr(ProgressiveTransformer, "forward", spy)
    rt = local_runtime(lambda s: None)
    run_trial(_with(tiny_cfg, **{"sign2text.method": "joint_slt_gloss"}), BOTH, StageCache(tmp_path / "a"), rt)
    cfg = _with(tiny_cfg, **{"text2sign.method": "pt", "pretrain.weighting": "fpw",
                             "pretrain.fpw_weights": [1.0, 2.0, 3.0]})
    run_trial(cfg, BOTH, StageCache(tmp_path / "b"), rt)
    from harness.stages.prepare import PREPARE
    from harness.stages.base import StageContext
    corpus, _ = PREPARE.run(StageContext(tiny_cfg, rt, "k", {}, lambda spec: None))
    assert seen["glosses"] == len({g for s in corpus["train"] for g in s.gloss.split()}) + 1 > 2
    w = seen["weights"]  # (B, T, V): the present parts' constants, 0 on padded frames
    assert w.dim() == 3 and set(w[0, 0].unique().tolist()) <= {0.0, 1.0, 2.0, 3.0} and 3.0 in w[0, 0].tolist()
