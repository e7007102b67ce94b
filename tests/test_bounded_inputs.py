"""Bounded inputs: YAML without anchors, aliases, duplicate keys or deep nesting; safe names for
ablations, variants and searches; an upper bound on seeds. Each refusal is one line naming the
file (or flag) and what is expected, and comes before anything is written."""

from __future__ import annotations

import time

import pytest
import yaml

import harness.ablation as ablation
import harness.config as config
from harness.cli import run_cli
from harness.config import ConfigError, load_profile, parse_set
from harness.search_space import load_search
from harness.user_input import MAX_BYTES, MAX_DEPTH, check_name, parse_yaml, read_yaml

ABLATION = """question: q
reproduces: r
profile: debug
tasks: [sign2text]
baseline: a
variants:
{variants}
"""

# Nine levels of nine aliases each: 9**9 (387 million) leaves from 700 bytes.
BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg and msg
    return msg


def test_an_alias_bomb_is_refused_at_its_first_anchor(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        read_yaml(path)
    assert time.perf_counter() - t0 < 1.0  # nothing was expanded
    assert one_line(err) == f"{path} line 1: YAML anchors and aliases are not accepted (&a0); write the values out"


@pytest.mark.parametrize("text, line, problem", [
    ("a: 1\nb: *x\n", 2, "YAML anchors and aliases are not accepted (*x); write the values out"),
    ("base: &b {x: 1}\nv: {<<: *b}\n", 1, "YAML anchors and aliases are not accepted (&b); write the values out"),
    ("a: 1\nb: 2\na: 3\n", 3, "duplicate key 'a'; each key once per mapping"),
    ("variants:\n  x: {pretrain.window: 8}\n  x: {pretrain.window: 9}\n", 3, "duplicate key 'x'; each key once per mapping"),
    ("v: {pretrain.window: 8, pretrain.window: 9}\n", 1, "duplicate key 'pretrain.window'; each key once per mapping"),
    ("a: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n", 1, f"nested deeper than {MAX_DEPTH} levels"),
])
def test_refused_yaml_names_the_file_and_line(tmp_path, text, line, problem):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        read_yaml(path)
    assert one_line(err) == f"{path} line {line}: {problem}"


def test_plain_yaml_still_reads_as_safe_load_reads_it():
    text = "a: 1\nb: [1, 2, {c: 3}]\nd: {e: 1e-4, f: .5, g: null, h: true}\n'1': x\n1: y\n"
    assert parse_yaml(text) == yaml.safe_load(text)
    deep = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)  # the mapping is a level too
    assert parse_yaml(deep) == yaml.safe_load(deep)


def test_python_tags_stay_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "spec.yaml"
    path.write_text(f"a: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match=r"line 1: not valid YAML \(could not determine a constructor"):
        read_yaml(path)
    assert not marker.exists()


def test_an_oversized_or_binary_file_is_one_line(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("a: 1\n" + "#" * MAX_BYTES)
    with pytest.raises(ConfigError) as err:
        read_yaml(big)
    assert one_line(err) == f"{big}: over 1024 KiB; a spec file is a few KiB of YAML"
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00a")
    with pytest.raises(ConfigError, match="not UTF-8 text; expected a YAML file"):
        read_yaml(binary)


def test_profiles_ablations_and_searches_all_read_strictly(tmp_path, monkeypatch):
    (tmp_path / "debug.yaml").write_text("optim:\n  lr: 1.0e-3\n  lr: 1.0e-2\n")
    monkeypatch.setattr(config, "PROFILE_DIR", tmp_path)
    with pytest.raises(ConfigError, match=r"debug.yaml line 3: duplicate key 'lr'"):
        load_profile("debug")
    monkeypatch.undo()
    monkeypatch.setattr(ablation, "ABLATION_DIR", tmp_path)
    (tmp_path / "dup.yaml").write_text(ABLATION.format(variants="  a: {}\n  a: {pretrain.window: 8}"))
    with pytest.raises(ConfigError, match=r"dup.yaml line 8: duplicate key 'a'"):
        ablation.load_ablation("dup")
    search = tmp_path / "space.yaml"
    search.write_text("question: q\nprofile: debug\nmetric: sign2text/dev_bleu4\nmode: max\ntrials: 2\n"
                      "space: &s {optim.lr: {loguniform: [1.0e-4, 1.0e-3]}}\n")
    with pytest.raises(ConfigError, match=r"space.yaml line 6: YAML anchors and aliases are not accepted \(&s\)"):
        load_search(str(search))


def test_set_values_read_strictly_too():
    # An anchor on the command line is not YAML the harness reads: the raw text, refused by its type.
    with pytest.raises(ConfigError, match=r"^seed must be an integer, got '&a 3' \(--set\)$"):
        load_profile("debug", parse_set(["seed=&a 3"]), "--set")


@pytest.mark.parametrize("name", ["apw", "mask_ratio", "s7", "a-b.c", "A" * 64, "15"])
def test_safe_names_pass(name):
    assert check_name("variant", name) == name


@pytest.mark.parametrize("name", ["../x", "/tmp/x", "a/b", ".hidden", "..", "", "a b", "it's", 'q"', "A" * 65,
                                  "x\n", "tab\t", "ü"])
def test_unsafe_names_are_one_line(name):
    with pytest.raises(ConfigError) as err:
        check_name("variant", name, "ablations/x.yaml")
    assert one_line(err) == (f"variant {name!r}: use letters, digits, _, - and . (not first), at most 64 "
                             f"characters (ablations/x.yaml)")


@pytest.mark.parametrize("name", ["/tmp/evil", "../evil", "../../etc/passwd"])
def test_an_ablation_name_that_is_a_path_is_refused_before_any_file_is_read(name, tmp_path, monkeypatch):
    monkeypatch.setattr(ablation, "ABLATION_DIR", tmp_path / "ablations")
    (tmp_path / "evil.yaml").write_text(ABLATION.format(variants="  a: {}"))  # there, but never read
    with pytest.raises(ConfigError) as err:
        ablation.load_ablation(name)
    assert one_line(err).startswith(f"ablation {name!r}: use letters, digits")


def _main(*args: str) -> int:
    from harness import run_ablation
    return run_cli(run_ablation.main, list(args))


@pytest.mark.parametrize("variant", ["../x", "/tmp/x", "it's", ".x"])
def test_an_unsafe_variant_is_refused_before_anything_is_written(variant, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ablation, "ABLATION_DIR", tmp_path)
    (tmp_path / "mine.yaml").write_text(ABLATION.format(variants=f"  a: {{}}\n  {yaml.safe_dump(variant).split(chr(10))[0]}: {{}}"))
    results = tmp_path / "results"
    assert _main("mine", "--results", str(results)) == 2
    err = capsys.readouterr().err
    assert err == (f"error: variant {variant!r}: use letters, digits, _, - and . (not first), at most 64 characters "
                   f"(ablations/mine.yaml)\n")
    assert not results.exists() and not (tmp_path / "x").exists()


def test_a_search_file_with_an_unsafe_name_is_refused(tmp_path):
    path = tmp_path / "my space.yaml"
    path.write_text("question: q\n")
    with pytest.raises(ConfigError) as err:
        load_search(str(path))
    assert one_line(err) == (f"search 'my space': use letters, digits, _, - and . (not first), at most 64 "
                             f"characters (the name of {path})")


def test_seeds_are_bounded_before_any_trial_is_planned(tmp_path, capsys):
    t0 = time.perf_counter()
    assert _main("apw", "--dry-run", "--seeds", "1000000", "--results", str(tmp_path / "r")) == 2
    assert time.perf_counter() - t0 < 30  # before: planned 3 million trials for hours
    assert capsys.readouterr().err == "error: --seeds must be <= 1000, got 1000000\n"
    assert _main("apw", "--dry-run", "--set", "seeds=5000", "--results", str(tmp_path / "r")) == 2
    assert capsys.readouterr().err == "error: seeds must be in [1, 1000], got 5000 (--set)\n"
    assert not (tmp_path / "r").exists()
