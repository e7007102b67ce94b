"""Strict config loading, dotted overrides, profiles."""

import pytest

from harness.config import (PROFILES, ConfigError, apply_overrides, flatten,
                            load_profile, parse_set)


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_loads(name):
    cfg = load_profile(name)
    assert cfg.profile == name


def test_default_profile_is_the_dataclass_defaults():
    cfg = load_profile("default")
    assert cfg.pretrain.window == 15 and cfg.pretrain.mask_ratio == 0.25 and cfg.embed.stride == 7


def test_paper_profile_has_the_papers_settings():
    cfg = load_profile("paper")
    assert (cfg.optim.lr, cfg.optim.min_lr, cfg.optim.weight_decay, cfg.optim.batch_size) == (1e-4, 5e-5, 1e-3, 64)
    assert (cfg.optim.beta1, cfg.optim.beta2) == (0.9, 0.98)
    assert cfg.text2sign.num_queries == 128 and cfg.sign2text.beam_size == 5 and cfg.pretrain.epochs == 50


def test_the_new_keys_keep_the_small_profiles_and_give_the_paper_its_choices():
    for name in ("debug", "demo", "default"):
        cfg = load_profile(name)
        assert (cfg.pretrain.fpw_weights, cfg.pretrain.weight_floor, cfg.pretrain.weight_norm) == ("dataset", 0.05, "body")
        assert cfg.optim.warmup_cap == 0.1
        assert (cfg.sign2text.label_smoothing, cfg.sign2text.tie_embeddings) == (0.1, True)
        assert (cfg.text2sign.stride, cfg.text2sign.loss_reduction, cfg.text2sign.select_by) == (0, "mean", "last")
    paper = load_profile("paper")
    assert paper.pretrain.fpw_weights == "paper"
    assert (paper.optim.warmup_steps, paper.optim.warmup_cap) == (10000, 1.0)  # the 10K steps, not capped
    # Neither label smoothing nor tied embeddings is in the paper or Joint-SLT's configuration.
    assert (paper.sign2text.label_smoothing, paper.sign2text.tie_embeddings) == (0.0, False)
    from harness.builders import text2sign_stride
    assert text2sign_stride(paper) == 15 == paper.pretrain.window  # section 4.2: the window
    assert text2sign_stride(apply_overrides(paper, {"text2sign.stride": 5})) == 5
    assert (paper.text2sign.loss_reduction, paper.text2sign.select_by) == ("sum", "dev_bt_bleu4")  # eq. 4-6, B.2


def test_fpw_weights_accept_the_choices_and_three_numbers():
    base = load_profile("debug")
    assert apply_overrides(base, {"pretrain.fpw_weights": "paper"}).pretrain.fpw_weights == "paper"
    cfg = apply_overrides(base, parse_set(["pretrain.fpw_weights=[1, 1.17, 1.18]"]))
    assert cfg.pretrain.fpw_weights == (1.0, 1.17, 1.18)
    assert apply_overrides(cfg, {}) == cfg  # the round trip through the nested dict form


def test_override_changes_only_that_key():
    base = load_profile("debug")
    cfg = apply_overrides(base, {"pretrain.mask_ratio": 0.5})
    assert cfg.pretrain.mask_ratio == 0.5
    diff = {k for k, v in flatten(cfg).items() if flatten(base)[k] != v}
    assert diff == {"pretrain.mask_ratio"}


def test_int_is_accepted_for_float():
    cfg = apply_overrides(load_profile("debug"), {"optim.lr": 1})
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)


@pytest.mark.parametrize("overrides, message", [
    ({"pretrain.mask_ratio": 1.5}, "pretrain.mask_ratio must be in [0, 1), got 1.5 (ablations/apw.yaml)"),
    ({"pretrain.mask_ratio": -0.1}, "pretrain.mask_ratio must be in [0, 1), got -0.1 (ablations/apw.yaml)"),
    ({"pretrain.nope": 1}, "unknown key pretrain.nope"),
    ({"nope.x": 1}, "unknown key nope"),
    ({"pretrain.window": "15"}, "pretrain.window must be an integer, got '15'"),
    ({"pretrain.window": True}, "pretrain.window must be an integer"),
    ({"pretrain.weighting": "both"}, "pretrain.weighting must be one of 'none' | 'fpw' | 'apw', got 'both'"),
    ({"embed.stride": 16}, "embed.stride must be <= pretrain.window (15), got 16"),
    ({"embed.stride": 0}, "embed.stride must be >= 1, got 0"),
    ({"pretrain": 3}, "pretrain must be a mapping"),
    ({"pretrain.dim": 30}, "pretrain.dim must be divisible by pretrain.heads"),
    ({"pretrain.fpw_weights": "banana"}, "pretrain.fpw_weights must be 'dataset', 'paper' or three positive "
                                         "numbers [body, face, hands], got 'banana' (ablations/apw.yaml)"),
    ({"pretrain.fpw_weights": [1, 0, 1]}, "pretrain.fpw_weights must be 'dataset', 'paper' or three positive"),
    ({"pretrain.fpw_weights": [1, True, 1]}, "pretrain.fpw_weights must be"),
    ({"pretrain.weight_floor": 0}, "pretrain.weight_floor must be in (0, 1], got 0"),
    ({"pretrain.weight_norm": "max"}, "pretrain.weight_norm must be one of 'body' | 'mean' | 'none', got 'max'"),
    ({"optim.warmup_cap": 0}, "optim.warmup_cap must be in (0, 1], got 0"),
    ({"text2sign.stride": 16}, "text2sign.stride must be <= pretrain.window (15), got 16"),
    ({"text2sign.loss_reduction": "max"}, "text2sign.loss_reduction must be one of 'mean' | 'sum'"),
    ({"text2sign.select_by": "dev_loss"}, "text2sign.select_by must be one of 'last' | 'dev_bt_bleu4'"),
])
def test_bad_values_name_the_key_and_file(overrides, message):
    with pytest.raises(ConfigError) as err:
        apply_overrides(load_profile("default"), overrides, "ablations/apw.yaml")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_parse_set_reads_yaml_scalars():
    assert parse_set(["pretrain.mask_ratio=0.5", "pretrain.weighting=fpw", "compute.bf16=false"]) == {
        "pretrain.mask_ratio": 0.5, "pretrain.weighting": "fpw", "compute.bf16": False}
    with pytest.raises(ConfigError, match="expects key=value"):
        parse_set(["pretrain.mask_ratio"])


def test_unknown_profile():
    with pytest.raises(ConfigError, match="unknown profile 'huge'"):
        load_profile("huge")


def test_parse_set_reads_exponent_numbers():
    # PyYAML (YAML 1.1) reads 1e-7 as a string; on the command line a number is meant.
    assert parse_set(["optim.lr=1e-7"]) == {"optim.lr": 1e-7}
    assert parse_set(["data.source=pt:/data/p14t"]) == {"data.source": "pt:/data/p14t"}


FLOAT_KEYS = [k for k, v in flatten(load_profile("default")).items() if isinstance(v, float)]


def test_the_float_keys_are_found():
    assert {"optim.lr", "data.noise_threshold", "pretrain.mask_ratio", "compute.gpus_per_worker"} <= set(FLOAT_KEYS)


@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_every_float_key_refuses_nan_and_infinities(key):
    # NaN passes every range check (each comparison is False); keys without an upper bound took inf.
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ConfigError) as err:
            apply_overrides(load_profile("debug"), {key: bad}, "ablations/apw.yaml")
        assert str(err.value) == f"{key} must be a finite number, got {bad!r} (ablations/apw.yaml)"


@pytest.mark.parametrize("item, message", [
    ("optim.lr=.inf", "optim.lr must be a finite number, got inf (--set)"),
    ("data.noise_threshold=.nan", "data.noise_threshold must be a finite number, got nan (--set)"),
    ("optim.grad_clip=-.inf", "optim.grad_clip must be a finite number, got -inf (--set)"),
    ("optim.lr=+inf", "optim.lr must be a finite number, got inf (--set)"),  # read by float(), not YAML
    ("optim.lr=nan", "optim.lr must be a number, got 'nan' (--set)"),
])
def test_set_refuses_non_finite_numbers_in_one_line(item, message):
    with pytest.raises(ConfigError) as err:
        load_profile("debug", parse_set([item]), "--set")
    assert str(err.value) == message


def test_a_profile_with_nan_names_its_file(tmp_path, monkeypatch):
    import harness.config as config
    (tmp_path / "debug.yaml").write_text("data:\n  noise_threshold: .nan\n")
    monkeypatch.setattr(config, "PROFILE_DIR", tmp_path)
    with pytest.raises(ConfigError) as err:
        load_profile("debug")
    assert str(err.value).startswith("data.noise_threshold must be a finite number, got nan (")
    assert str(err.value).endswith("debug.yaml)")


def test_seeds_have_an_upper_bound():
    assert apply_overrides(load_profile("debug"), {"seeds": 1000}).seeds == 1000
    with pytest.raises(ConfigError, match=r"^seeds must be in \[1, 1000\], got 1001 \(--set\)$"):
        load_profile("debug", {"seeds": 1001}, "--set")


def test_recognition_head_width_must_split_into_its_heads():
    from harness.config import ConfigError, apply_overrides, load_profile
    cfg = load_profile("debug")
    assert apply_overrides(cfg, {"recognition.dim": 48, "recognition.heads": 3}).recognition.dim == 48
    with pytest.raises(ConfigError, match=r"recognition.dim must be divisible by recognition.heads \(0: pretrain's\), "
                                          r"got 33 and 2 \(--set\)"):
        apply_overrides(cfg, {"recognition.dim": 33}, "--set")  # debug pretrain.heads: 2
    with pytest.raises(ConfigError, match="recognition.model must be one of"):
        apply_overrides(cfg, {"recognition.model": "lstm"})
