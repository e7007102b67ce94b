"""A user's isolated signs as the recognition corpus (harness/data/labels.py): .pose files written
here with pose-format plus a label table; read, labelled, split, keyed by content, and run through
a trial's recognition and figure 5. The bad tables are the hostile-input suite's (iso-* cases)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from harness.cache import StageCache
from harness.config import ConfigError, apply_overrides
from harness.data.labels import apply_labels, check_classes, read_label_table
from harness.data.readers.pose import write_pose
from harness.data.record import DataError, SignSequence
from harness.data.synth import generate_isolated
from harness.datasource import prepare_isolated
from harness.loop import local_runtime
from harness.pipeline import run_trial
from harness.stages import stage_keys


def _clips(glosses: int = 3):
    return generate_isolated(seed=5, glosses=glosses, signers=2, train_per_gloss=2, dev_per_gloss=1,
                             test_per_gloss=1, fps=25, noisy_frame_rate=0.0, missing_point_rate=0.0, jitter=0.01)


def write_folder(folder: Path, split_column: bool = True, glosses: int = 3) -> dict[str, tuple[str, str]]:
    """.pose files named sign<i> (in split subfolders when the table has no SPLIT) and labels.tsv
    beside them; returns name -> (label, split)."""
    truth, rows = {}, ["NAME\tLABEL" + ("\tSPLIT" if split_column else "")]
    i = 0
    for split, seqs in _clips(glosses).items():
        for seq in seqs:
            name = f"sign{i}"
            i += 1
            write_pose(seq, folder / (f"{name}.pose" if split_column else f"{split}/{name}.pose"))
            rows.append(f"{name}\t{seq.text}" + (f"\t{split}" if split_column else ""))
            truth[name] = (seq.text, split)
    (folder / "labels.tsv").write_text("\n".join(rows) + "\n")
    return truth


def _cfg(tiny_cfg, folder: Path, **extra):
    return apply_overrides(tiny_cfg, {"recognition.source": f"pose:{folder}",
                                      "recognition.labels": str(folder / "labels.tsv"), **extra})


@pytest.mark.parametrize("split_column", [True, False], ids=["SPLIT column", "split folders"])
def test_the_table_labels_and_splits_the_pose_files(tiny_cfg, tmp_path, split_column):
    truth = write_folder(tmp_path, split_column)
    cfg = _cfg(tiny_cfg, tmp_path)
    corpus, _ = prepare_isolated(cfg.recognition.source, cfg.recognition.labels, cfg)
    got = {s.name: (s.text, split) for split, seqs in corpus.items() for s in seqs}
    assert got == truth  # the labels.tsv beside the files is not read as a sentence table
    assert all(s.gloss == s.text for seqs in corpus.values() for s in seqs)


def test_the_key_follows_the_table_and_the_files(tiny_cfg, tmp_path):
    write_folder(tmp_path)
    cfg = _cfg(tiny_cfg, tmp_path)
    before = stage_keys(cfg, ())
    table = tmp_path / "labels.tsv"
    table.write_text(table.read_text().replace("\tBUS\t", "\tCOACH\t", 1))
    after = stage_keys(cfg, ())
    assert {n for n in before if before[n] != after[n]} == {"isolated", "figure5"}
    assert stage_keys(tiny_cfg, ())["isolated"] != before["isolated"]  # the synthetic corpus is another


def test_labels_and_source_go_together():
    from harness.config import load_profile
    with pytest.raises(ConfigError, match="recognition.labels is empty"):
        load_profile("debug", {"recognition.source": "pose:/x"})
    with pytest.raises(ConfigError, match="but recognition.source is synth"):
        load_profile("debug", {"recognition.labels": "/x.tsv"})


def test_the_class_checks_on_a_hand_made_corpus(tmp_path):
    table = tmp_path / "t.tsv"
    table.write_text("NAME\tLABEL\tSPLIT\na\tX\ttrain\nb\tY\ttrain\nc\tX\tdev\nd\tX\ttest\ne\tY\ttest\n")
    rows = read_label_table(table)
    assert rows["c"].split == "dev" and rows["e"].line == 6

    def seq(name):
        return SignSequence(name=name, keypoints=np.zeros((3, 73, 2), np.float32), mask=np.ones((3, 73), bool), text="")
    corpus = apply_labels({"train": [seq(n) for n in "abcde"], "dev": [], "test": []}, rows, table, "pose:D")
    assert {k: [s.name for s in v] for k, v in corpus.items()} == {"train": ["a", "b"], "dev": ["c"],
                                                                    "test": ["d", "e"]}
    check_classes(corpus, rows, table)  # passes
    corpus["test"] = corpus["test"][:1]  # as if preprocessing dropped e
    with pytest.raises(DataError, match=r"t.tsv, line 3: class 'Y' has no test example after preprocessing dropped"):
        check_classes(corpus, rows, table, " after preprocessing dropped 1 sequence(s)")


def test_a_trial_recognises_and_draws_the_users_signs(tiny_cfg, tmp_path):
    truth = write_folder(tmp_path / "data", glosses=4)
    cfg = _cfg(tiny_cfg, tmp_path / "data", **{"recognition.epochs": 2, "pretrain.epochs": 1})
    cache = StageCache(tmp_path / "cache")
    result, _ = run_trial(cfg, ("recognition",), cache, local_runtime(lambda s: None))
    test = result.tasks["recognition"].test
    assert sorted(test.references) == sorted(label for label, split in truth.values() if split == "test")
    assert 0.0 <= test.metrics["top1"] <= test.metrics["top5"] <= 100.0
    points = json.loads((cache.entry("figure5", stage_keys(cfg, ("recognition",))["figure5"]).path
                         / "points.json").read_text())
    assert Counter(p["gloss"] for p in points) == Counter(label for label, _ in truth.values())  # 4 glosses < 10


def test_a_recognition_table_names_the_users_signs():
    from harness.report import footer_text
    assert "test clips of the isolated signs of pose:/d (recognition.source)" in footer_text(
        "synth", "debug", [0], "abc", True, recognition=True, translation=False, isolated="pose:/d")
    assert "test clips of the unseen isolated signs (synthetic)" in footer_text(
        "synth", "debug", [0], "abc", True, recognition=True, translation=False)


def test_an_openpose_folder_is_labelled_by_its_table_not_read_as_sentences(tmp_path):
    from harness.data.readers.openpose import read_openpose
    from harness.data.record import ReadOptions
    person = {"pose_keypoints_2d": [1.0] * 75, "face_keypoints_2d": [1.0] * 210,
              "hand_left_keypoints_2d": [1.0] * 63, "hand_right_keypoints_2d": [1.0] * 63}
    for name in ("s1", "s2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}_000000000000_keypoints.json").write_text(json.dumps({"people": [person]}))
    (tmp_path / "labels.tsv").write_text("NAME\tLABEL\ns1\tBUS\ns2\tLEFT\n")  # beside the folders: no SENTENCE
    raw = read_openpose(tmp_path, [], ReadOptions(unlabelled=True, sentences=False))
    rows = read_label_table(tmp_path / "labels.tsv")
    corpus = apply_labels(raw, rows, tmp_path / "labels.tsv", f"openpose:{tmp_path}")
    assert {s.name: s.text for s in corpus["train"]} == {"s1": "BUS", "s2": "LEFT"}
    assert not any(s.meta.get("unlabelled") for s in corpus["train"])
    with pytest.raises(DataError, match="no SENTENCE_NAME column"):  # what the sentence reader would say
        read_openpose(tmp_path, [], ReadOptions(unlabelled=True))
