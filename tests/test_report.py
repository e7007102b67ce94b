"""harness.report: the ablation table (mean ± std over seeds, paired bootstrap p) and figure 3."""

from __future__ import annotations

import csv
import math

import pytest
from PIL import Image

from harness import report
from harness.figures import plot_curve
from harness.report import CSV_COLUMNS, SYNTHETIC_LINE, build_table, footer_text, write_table

REFS = ["der regen kommt", "morgen wird es kalt", "im norden sonne"]


def _result(variant, seed, task, bleu4, hyps=None, **extra):
    metrics = {"bleu1": bleu4 + 20, "bleu2": bleu4 + 10, "bleu3": bleu4 + 5, "bleu4": bleu4, "rouge": bleu4 + 15}
    if task == "text2sign":
        metrics.update(mpjpe=0.5 + bleu4 / 100, dtw_mje=0.25)
    metrics.update(extra)
    return {"variant": variant, "seed": seed, "task": task, "metrics": metrics,
            "hypotheses": list(hyps or REFS), "references": list(REFS)}


@pytest.fixture
def fake_bootstrap(monkeypatch):
    calls = []

    def fake(hyps_baseline, hyps_system, refs, n_samples, seed):
        calls.append((list(hyps_baseline), list(hyps_system), list(refs), n_samples, seed))
        return 0.0123

    monkeypatch.setattr(report._metrics, "paired_bootstrap_bleu4", fake)
    return calls


def test_rows_aggregate_seeds_with_sample_std(fake_bootstrap):
    results = [
        _result("apw", 2, "sign2text", 12.0, hyps=["a", "b", "c"]),
        _result("none", 1, "sign2text", 10.0, hyps=["x", "y", "z"]),
        _result("apw", 1, "sign2text", 10.0, hyps=["d", "e", "f"]),
        _result("none", 2, "sign2text", 10.0, hyps=["u", "v", "w"]),
        _result("none", 1, "text2sign", 3.0),
    ]
    rows = build_table(results, ["none", "fpw", "apw"], baseline="none", n_bootstrap=50)
    assert [(r["variant"], r["task"]) for r in rows] == [
        ("none", "sign2text"), ("apw", "sign2text"), ("none", "text2sign")]  # fpw has no results
    none_s2t, apw, none_t2s = rows
    assert apw["bleu4"] == 11.0 and apw["bleu4_std"] == pytest.approx(math.sqrt(2))  # ddof = 1
    assert apw["bleu1"] == 31.0 and apw["rouge"] == 26.0
    assert none_s2t["bleu4_std"] == 0.0 and none_s2t["seeds"] == 2
    assert apw["mpjpe"] is None and apw["dtw_mje_std"] is None  # not a sign-to-text metric
    assert none_t2s["mpjpe"] == pytest.approx(0.53) and none_t2s["mpjpe_std"] == 0.0  # one seed
    assert none_t2s["seeds"] == 1
    assert none_s2t["p_bleu4"] is None and none_t2s["p_bleu4"] is None  # baseline rows
    assert apw["p_bleu4"] == 0.0123
    # One bootstrap call: seeds paired and concatenated in seed order, over repeated references.
    assert fake_bootstrap == [(["x", "y", "z", "u", "v", "w"], ["d", "e", "f", "a", "b", "c"], REFS + REFS, 50,
                               report.BOOTSTRAP_SEED)]


def test_p_value_uses_only_seeds_both_rows_have(fake_bootstrap):
    results = [_result("base", 1, "sign2text", 5.0), _result("v", 1, "sign2text", 6.0, hyps=["q", "r", "s"]),
               _result("v", 3, "sign2text", 7.0)]
    rows = build_table(results, ["base", "v"], baseline="base")
    assert rows[1]["seeds"] == 2 and rows[1]["p_bleu4"] == 0.0123
    assert fake_bootstrap[0][1] == ["q", "r", "s"]  # seed 3 has no baseline partner
    rows = build_table([_result("base", 1, "sign2text", 5.0), _result("v", 2, "sign2text", 6.0)],
                       ["base", "v"], baseline="base")
    assert rows[1]["p_bleu4"] is None  # no shared seed: no paired test


def test_real_bootstrap_separates_a_better_system():
    refs = [f"satz nummer {i} heute regen im norden" for i in range(40)]
    good = list(refs)
    bad = [f"satz {i} morgen sonne" for i in range(40)]
    results = [
        {"variant": "base", "seed": 1, "task": "sign2text", "metrics": _result("b", 1, "sign2text", 1.0)["metrics"],
         "hypotheses": bad, "references": refs},
        {"variant": "same", "seed": 1, "task": "sign2text", "metrics": _result("s", 1, "sign2text", 1.0)["metrics"],
         "hypotheses": bad, "references": refs},
        {"variant": "good", "seed": 1, "task": "sign2text", "metrics": _result("g", 1, "sign2text", 9.0)["metrics"],
         "hypotheses": good, "references": refs},
    ]
    rows = {r["variant"]: r for r in build_table(results, ["base", "same", "good"], "base", n_bootstrap=200)}
    assert rows["same"]["p_bleu4"] == 1.0  # identical outputs: no evidence of a difference
    assert rows["good"]["p_bleu4"] < 0.05


def test_bad_results_are_rejected():
    with pytest.raises(ValueError, match="variant 'typo' is not in"):
        build_table([_result("typo", 1, "sign2text", 1.0)], ["a"], baseline="a")
    with pytest.raises(ValueError, match="a second result for \\(a, sign2text, seed 1\\)"):
        build_table([_result("a", 1, "sign2text", 1.0)] * 2, ["a"], baseline="a")
    bad = _result("a", 1, "text2sign", 1.0)
    del bad["metrics"]["dtw_mje"]
    with pytest.raises(ValueError, match="metrics lack \\['dtw_mje'\\]"):
        build_table([bad], ["a"], baseline="a")
    with pytest.raises(ValueError, match="baseline 'b' is not one of"):
        build_table([], ["a"], baseline="b")
    other_refs = _result("b", 1, "sign2text", 1.0)
    other_refs["references"] = ["x", "y", "z"]
    with pytest.raises(ValueError, match="different references"):
        build_table([_result("a", 1, "sign2text", 1.0), other_refs], ["a", "b"], baseline="a")


def test_write_table_writes_markdown_and_csv(tmp_path, fake_bootstrap):
    results = [_result("none", s, "sign2text", 10.0 + s) for s in (1, 2)]
    results += [_result("apw", s, "sign2text", 12.0 + 2 * s) for s in (1, 2)]
    results += [_result("none", 1, "text2sign", 3.0), _result("apw", 1, "text2sign", 4.0)]
    rows = build_table(results, ["none", "apw"], baseline="none")
    footer = footer_text("synth (seed 0)", "debug", [1, 2], "abc1234", synthetic=True, baseline="none")
    md = write_table(rows, tmp_path / "out", "Table 5: APW", footer, baseline="none")
    assert (tmp_path / "out" / "table.md").read_text(encoding="utf-8") == md
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["table.csv", "table.md"]  # no temp files
    lines = md.splitlines()
    assert lines[0] == "# Table 5: APW"
    assert "| Variant | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | ROUGE-L | p (BLEU-4) |" in lines
    assert "| Variant | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | ROUGE-L | MPJPE | DTW-MJE | p (BLEU-4) |" in lines
    # apw BLEU-4 over seeds: 14, 16 -> 15.00 ± 1.41; BLEU-1 = BLEU-4 + 20
    assert ("| apw | 35.00 ± 1.41 | 25.00 ± 1.41 | 20.00 ± 1.41 | 15.00 ± 1.41 | 30.00 ± 1.41 | 0.012 |"
            in lines)
    assert "| none | 23.00 ± 0.00 | 13.00 ± 0.00 | 8.00 ± 0.00 | 3.00 ± 0.00 | 18.00 ± 0.00 | 0.530 ± 0.000 " \
           "| 0.250 ± 0.000 | (baseline) |" in lines
    assert "Rows with fewer than 2 seeds: none (text2sign): 1; apw (text2sign): 1." in md
    assert md.rstrip().endswith(f"**{SYNTHETIC_LINE}**")

    with open(tmp_path / "out" / "table.csv", newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert tuple(table[0]) == CSV_COLUMNS
    assert CSV_COLUMNS == ("variant", "task", "bleu1", "bleu2", "bleu3", "bleu4", "rouge", "mpjpe", "dtw_mje",
                           "bleu1_std", "bleu2_std", "bleu3_std", "bleu4_std", "rouge_std", "mpjpe_std",
                           "dtw_mje_std", "seeds", "p_bleu4", "top1", "top5", "top10", "top1_std", "top5_std",
                           "top10_std", "p_top1", "probe_knn_acc", "probe_knn_acc_std", "probe_pair_hand",
                           "probe_pair_hand_std", "probe_pair_face", "probe_pair_face_std", "probe_pair_both",
                           "probe_pair_both_std")
    first = dict(zip(table[0], table[1]))
    assert first["variant"] == "none" and first["task"] == "sign2text" and first["p_bleu4"] == ""
    assert first["mpjpe"] == "" and float(first["bleu4"]) == 11.5 and first["seeds"] == "2"
    assert float(first["bleu4_std"]) == pytest.approx(math.sqrt(0.5))
    assert len(table) == 1 + 4


def test_footer_names_everything_and_marks_synthetic_data():
    text = footer_text("PHOENIX14T", "paper", [1, 2, 3], "deadbeef", synthetic=False)
    assert "Corpus: PHOENIX14T." in text and "Profile: paper." in text and "Seeds: 1, 2, 3" in text
    assert "Commit: deadbeef." in text
    for convention in ("cumulative BLEU-n", "whitespace tokens", "lowercased", "no smoothing", "beta 1.2",
                       "shoulder-length units", "paired bootstrap on BLEU-4"):
        assert convention in text
    assert "Synthetic corpus" not in text
    assert SYNTHETIC_LINE in footer_text("synth", "debug", [0], "x", synthetic=True)


def test_footer_names_each_variants_data_rate_and_mixing():
    from harness.reading import data_lines
    one = "pt:/d: recorded at 25 fps = data.fps 25 (not resampled)."
    two = one + " Pretraining also on the train split of openpose:/h: 1 sequence(s) with no recorded rate; mixed: z dropped."
    assert data_lines([("a", one), ("a", one), ("b", one)]) == [f"Data (frame rate, as windowed): {one}"]
    lines = data_lines([("one", one), ("two", two), ("one", one), ("two", two)])
    assert lines == [f"Data of one (frame rate, as windowed): {one}", f"Data of two (frame rate, as windowed): {two}"]
    text = footer_text("pt:/d", "paper", [0], "x", synthetic=False, data=lines)
    assert text.split("\n")[:5] == [text.split("\n")[0], "", lines[0], lines[1], ""]  # right after the corpus line
    assert lines[0] in footer_text("pt:/d", "paper", [0], "x", False, recognition=True, translation=False, data=lines)


def test_plot_curve_writes_a_png(tmp_path, fake_bootstrap):
    results = [_result(f"s{k}", seed, "sign2text", 10.0 - abs(k - 7) + seed / 10) for k in (1, 4, 7, 10) for seed in (1, 2)]
    rows = build_table(results, ["s1", "s4", "s7", "s10"], baseline="s7")
    out = plot_curve(rows, {"s1": 1, "s4": 4, "s7": 7, "s10": 10}, path=tmp_path / "fig3.png", title="Figure 3")
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size[0] > 300
    with pytest.raises(ValueError, match="no text2sign row"):
        plot_curve(rows, {"s1": 1}, "bleu4", "text2sign", tmp_path / "x.png", "t")


def _outputs(variant, task, hyps):
    return {"variant": variant, "seed": 0, "task": task, "metrics": {}, "hypotheses": hyps,
            "references": ["a b"] * len(hyps)}


def test_degenerate_outputs_are_named_in_words():
    from harness.report import degenerate_outputs
    results = [_outputs("none", "sign2text", ["", ""]), _outputs("apw", "sign2text", ["", "x"]),
               _outputs("none", "text2sign", ["a a", "a a"]), _outputs("apw", "text2sign", ["a b", "b a"])]
    lines = degenerate_outputs(results, ["none", "apw"])
    assert lines == [
        "Sign-to-text produced empty hypotheses for 2 of 2 test sentences (every row): its models have not "
        "learned to translate at this profile, and its scores do not separate the rows.",
        "Text-to-sign's back-translation produced one and the same hypothesis for all 2 test sentences "
        "(rows none): its models have not learned to translate at this profile, and its scores do not "
        "separate the rows."]
    assert degenerate_outputs([_outputs("none", "sign2text", ["a", "b"])], ["none"]) == []
    footer = footer_text("synth", "debug", [0], "x", synthetic=True, degenerate=lines)
    assert f"**{lines[0]}**" in footer and footer.rstrip().endswith(f"**{SYNTHETIC_LINE}**")


def test_reading_says_which_differences_are_significant():
    rows = [{"variant": "none", "task": "sign2text", "bleu4": 49.21, "p_bleu4": None},
            {"variant": "fpw", "task": "sign2text", "bleu4": 49.59, "p_bleu4": 0.309},
            {"variant": "apw", "task": "sign2text", "bleu4": 36.47, "p_bleu4": 0.0004},
            {"variant": "none", "task": "text2sign", "bleu4": 14.0, "p_bleu4": None},
            {"variant": "apw", "task": "text2sign", "bleu4": 14.1, "p_bleu4": 0.5}]
    from harness import reading
    lines = reading.reading(rows, "none")
    assert lines[0] == ("Reading, sign-to-text BLEU-4 against none: fpw +0.38 (p = 0.309, not significant); "
                        "apw -12.74 (p < 0.001, significant): apw differs from none at p < 0.05.")
    assert lines[1].endswith("apw +0.10 (p = 0.500, not significant): no variant differs from none at p < 0.05.")
    assert reading.reading(rows[:1], "none") == []  # nothing to compare against
    assert lines[0] in footer_text("synth", "demo", [0, 1], "abc", True, baseline="none", readings=lines)


def test_live_view_prints_a_trials_end_once():
    import io
    from types import SimpleNamespace

    from harness.tune.live_view import LiveView

    out = io.StringIO()
    view = LiveView(1, ("sign2text",), stream=out)
    trial = SimpleNamespace(config={"spec": {"key": "apw-seed0"}})
    view.on_trial_result(0, [], trial, {"stage": "sign2text", "epoch": 1, "epochs": 2})
    view.on_trial_result(0, [], trial, {"stage": "done"})
    view.on_trial_complete(0, [], trial)
    assert out.getvalue().count("apw-seed0: finished") == 1
    assert "1/1 trials done" in out.getvalue().splitlines()[-1]


def test_weights_text_names_each_variants_weights_and_equal_ones():
    from harness.reading import weights_text

    ones = {"pretrain/w_face_q25": 1.0, "pretrain/w_face_q50": 1.0, "pretrain/w_face_q75": 1.0,
            "pretrain/w_hands_q25": 1.0, "pretrain/w_hands_q50": 1.0, "pretrain/w_hands_q75": 1.0,
            "pretrain/w_floored": 0.0, "pretrain/w_degenerate": 0.0}
    apw = {**ones, "pretrain/w_face_q25": 2.0, "pretrain/w_face_q50": 3.5, "pretrain/w_face_q75": 5.0,
           "pretrain/w_floored": 0.94}
    lines = weights_text({"none": [ones, ones], "fpw": [ones], "apw": [apw], "old": [{"pretrain/loss": 1.0}]})
    assert lines[0].startswith("Pose weights of the SignMAE loss")
    assert "none: face 1.00, hands 1.00;" in lines[0]
    assert "apw: face 3.50 [2.00, 5.00], hands 1.00, eq. 1 floored in 94% of segments" in lines[0]
    assert "old" not in lines[0]  # a result from before the weights were logged says nothing
    assert lines[1] == ("**none and fpw trained with the same weights on this data: their rows differ only by "
                        "nondeterminism.**")
    assert weights_text({"none": [{}]}) == []
    assert "(body = 1; median" in lines[0]


def test_weights_text_names_the_body_where_it_does_not_weigh_one():
    """pretrain.weight_norm other than body, or three given FPW numbers: the body is named too, and
    variants equal in face and hands but not in body are not called equal."""
    from harness.reading import weights_text

    ones = {f"pretrain/w_{g}_{q}": 1.0 for g in ("face", "hands") for q in ("q25", "q50", "q75")}
    heavy_body = {**ones, **{f"pretrain/w_body_{q}": 2.0 for q in ("q25", "q50", "q75")}}
    lines = weights_text({"none": [ones], "fpw_given": [heavy_body]})
    assert "(body = 1 unless stated; median" in lines[0]
    assert "fpw_given: body 2.00, face 1.00, hands 1.00" in lines[0] and "none: face 1.00, hands 1.00" in lines[0]
    assert len(lines) == 1  # not the same weights


def test_headline_metrics_name_task_split_variant_and_direction():
    rows = [{"variant": "apw", "task": "sign2text", "bleu4": 51.1, "bleu4_std": 1.6, "rouge": 73.6, "rouge_std": 0.3,
             "mpjpe": None, "dtw_mje": None},
            {"variant": "apw", "task": "text2sign", "bleu4": 14.2, "bleu4_std": 0.1, "rouge": 42.3, "rouge_std": 0.4,
             "mpjpe": 0.264, "mpjpe_std": 0.002, "dtw_mje": 0.22, "dtw_mje_std": 0.0}]
    m = report.headline_metrics(rows)
    assert m["sign2text.test_bleu4.apw.mean"] == 51.1 and m["sign2text.test_bleu4.apw.std"] == 1.6
    assert m["text2sign.test_mpjpe_lower_better.apw.mean"] == 0.264
    assert "sign2text.test_mpjpe_lower_better.apw.mean" not in m and len(m) == 2 * 2 + 4 * 2


def test_live_view_shows_every_running_trial():
    import io
    from types import SimpleNamespace

    from harness.tune.live_view import LiveView

    out = io.StringIO()
    view = LiveView(2, ("sign2text",), stream=out)
    a, b = (SimpleNamespace(config={"spec": {"key": k}}) for k in ("none-seed0", "apw-seed0"))
    view.on_trial_result(0, [], a, {"stage": "pretrain", "epoch": 3, "epochs": 10, "pretrain/train_loss": 1.5})
    view.last_print = 0.0
    view.on_trial_result(0, [], b, {"stage": "sign2text", "epoch": 1, "epochs": 40})
    last = out.getvalue().splitlines()[-1]
    assert "apw-seed0: sign2text epoch 1/40" in last and "none-seed0: pretrain epoch 3/10 train_loss=1.5" in last
    view.on_trial_complete(0, [], a)
    last = out.getvalue().splitlines()[-1]
    assert "none-seed0: finished" in last and "apw-seed0: sign2text epoch 1/40" in last


GLOSSES = ["BUS", "TRAIN", "LEFT", "RIGHT"]


def _rec(variant, seed, top1, hyps):
    return {"variant": variant, "seed": seed, "task": "recognition",
            "metrics": {"top1": top1, "top5": top1 + 10, "top10": 100.0}, "hypotheses": hyps,
            "references": list(GLOSSES)}


def test_recognition_rows_table_3_layout_and_a_paired_test_on_top1(tmp_path):
    results = [_rec("ours", 0, 100.0, GLOSSES), _rec("ours", 1, 75.0, ["BUS", "TRAIN", "LEFT", "LEFT"]),
               _rec("gru", 0, 25.0, ["BUS", "BUS", "BUS", "BUS"]), _rec("gru", 1, 25.0, ["BUS", "BUS", "BUS", "BUS"])]
    rows = build_table(results, ["ours", "gru"], baseline="ours", n_bootstrap=200)
    ours, gru = rows
    assert ours["top1"] == 87.5 and ours["top1_std"] == pytest.approx(math.sqrt(2 * 12.5 ** 2))
    assert gru["top5"] == 35.0 and gru["bleu4"] is None and gru["mpjpe"] is None
    assert ours["p_top1"] is None and gru["p_bleu4"] is None
    # 8 paired clips: ours right on 7, gru on 2 (both right on 2): a large, certain difference.
    assert 0 < gru["p_top1"] < 0.05
    md = write_table(rows, tmp_path, "recognition", footer_text("synth", "debug", [0, 1], "abc", True,
                                                                baseline="ours", recognition=True), baseline="ours")
    assert "## Recognition of unseen isolated signs (Top-k accuracy, %)" in md
    assert "| Variant | Top-1 | Top-5 | Top-10 | p (Top-1) |" in md
    assert "| ours | 87.50 ± 17.68 | 97.50 ± 17.68 | 100.00 ± 0.00 | (baseline) |" in md
    assert "Top-1/5/10: percent of test clips" in md and "BLEU-1..4" in md
    alone = footer_text("synth", "debug", [0], "abc", True, recognition=True, translation=False)
    assert "BLEU-1..4" not in alone and "Top-1/5/10" in alone and alone.startswith("Corpus: synth.")
    from harness import reading
    line, = reading.reading(rows, "ours")
    assert line.startswith("Reading, recognition Top-1 against ours: gru -62.50 (")
    assert report.headline_metrics(rows)["recognition.test_top1.gru.mean"] == 25.0


def test_paired_bootstrap_accuracy():
    from harness.probe import paired_bootstrap_accuracy
    same = [True, False, True, True]
    assert paired_bootstrap_accuracy(same, same) == 1.0  # no difference is no evidence
    a = [True] * 40 + [False] * 40
    assert paired_bootstrap_accuracy(a, [True] * 80, 500) < 0.01
    near = paired_bootstrap_accuracy(a, [True] * 41 + [False] * 39, 500)
    assert near > 0.2  # one item of 80
    with pytest.raises(ValueError, match="equal"):
        paired_bootstrap_accuracy([True], [True, False])


def test_probe_columns_and_their_footer_table(tmp_path, fake_bootstrap):
    from harness import reading
    metrics = {"none": [{"probe/knn_acc": 60.0, "probe/pair_hand": 50.0, "pretrain/w_face_q50": 1.0},
                        {"probe/knn_acc": 70.0, "probe/pair_hand": 60.0}],
               "apw": [{"probe/knn_acc": 80.0}, {"probe/knn_acc": 80.0, "probe/pair_face": 90.0}],
               "fpw": [{}]}
    cols = reading.probe_columns(metrics)
    assert cols["none"] == {"probe_knn_acc": 65.0, "probe_knn_acc_std": pytest.approx(math.sqrt(50)),
                            "probe_pair_hand": 55.0, "probe_pair_hand_std": pytest.approx(math.sqrt(50))}
    assert cols["apw"] == {"probe_knn_acc": 80.0, "probe_knn_acc_std": 0.0}  # a seed lacks pair_face
    assert "fpw" not in cols
    lines = reading.probe_text(cols)
    assert "| Variant | k-NN gloss acc. | hand pairs |" in lines
    assert "| none | 65.0 ± 7.1 | 55.0 ± 7.1 |" in lines and "| apw | 80.0 ± 0.0 | – |" in lines
    rows = build_table([_result("none", 0, "sign2text", 10.0), _result("apw", 0, "sign2text", 12.0)], ["none", "apw"],
                       "none", n_bootstrap=10)
    rows = [{**r, **cols.get(r["variant"], {})} for r in rows]
    md = write_table(rows, tmp_path, "t", footer_text("synth", "debug", [0, 1], "abc", True, probe=lines))
    assert "Representation probe of each variant's pretraining" in md
    table = {r["variant"]: r for r in csv.DictReader(open(tmp_path / "table.csv"))}
    assert float(table["none"]["probe_knn_acc"]) == 65.0 and table["apw"]["probe_pair_hand"] == ""
    assert report.headline_metrics(rows)["probe.knn_acc.apw.mean"] == 80.0
