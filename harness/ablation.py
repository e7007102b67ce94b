"""Ablation specs (`ablations/NAME.yaml`): a question, a base profile, named variants as overrides.

Paper section 6: each file reproduces one table or figure. Variants are only dotted overrides of
the base configuration; `baseline` names the row the others are compared to (paired bootstrap on
BLEU-4), `compare_to` (optional) names another row for some (table 5: each method's FPW and APW
rows against its own unweighted row); `curve` (optional) maps variants to an x value and draws a
figure (figure 3: stride). A variant that sets `sign2text.method` or `text2sign.method` to a
baseline is that method's row, in that task's table only (harness/stages: `trial_tasks`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import ConfigError, ExperimentConfig, apply_overrides, load_profile, read_mapping
from harness.user_input import check_name

ABLATION_DIR = Path(__file__).resolve().parents[1] / "ablations"
TASKS = ("sign2text", "text2sign", "recognition")
_KEYS = ("question", "reproduces", "profile", "tasks", "baseline", "variants", "curve", "overrides", "compare_to")


@dataclass(frozen=True)
class AblationSpec:
    name: str
    path: Path
    question: str
    reproduces: str
    profile: str
    tasks: tuple[str, ...]
    baseline: str
    variants: dict[str, dict[str, Any]]  # variant -> dotted overrides
    overrides: dict[str, Any] = field(default_factory=dict)  # applied to every variant
    curve: dict[str, Any] = field(default_factory=dict)  # {"x": {variant: number}, "xlabel": str}
    compare_to: dict[str, str] = field(default_factory=dict)  # variant -> the row its p-value is against
    methods: dict[str, str] = field(default_factory=dict)  # variant -> its method (uniglor or a baseline)

    def baseline_of(self, variant: str) -> str:
        return self.compare_to.get(variant, self.baseline)


def available() -> list[str]:
    return sorted(p.stem for p in ABLATION_DIR.glob("*.yaml"))


def load_ablation(name: str) -> AblationSpec:
    # The name becomes RESULTS/NAME/ and a path under ablations/: `../x` or `/abs` must not.
    check_name("ablation", name)
    path = ABLATION_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown ablation {name!r}; available: {', '.join(available())}")
    where = f"ablations/{name}.yaml"
    data = read_mapping(path, where, _KEYS, ("question", "reproduces", "profile", "tasks", "baseline", "variants"))
    tasks = data["tasks"]
    if not isinstance(tasks, list) or not tasks or any(t not in TASKS for t in tasks):
        raise ConfigError(f"tasks must be a non-empty list of {', '.join(TASKS)}, got {tasks!r} ({where})")
    variants = data["variants"]
    if not isinstance(variants, dict) or not variants:
        raise ConfigError(f"variants must be a mapping of name -> overrides ({where})")
    for vname, over in variants.items():
        check_name("variant", vname, where)  # trial keys and folders are VARIANT-seedN
        if over is None:
            variants[vname] = {}
        elif not isinstance(over, dict):
            raise ConfigError(f"variants.{vname} must be a mapping of dotted overrides ({where})")
    if not isinstance(data["baseline"], str) or data["baseline"] not in variants:
        raise ConfigError(f"baseline {data['baseline']!r} is not one of the variants ({where})")
    for key in ("question", "reproduces", "profile"):
        if not isinstance(data[key], str):
            raise ConfigError(f"{key} must be a string, got {data[key]!r} ({where})")
    if not isinstance(data.get("overrides") or {}, dict):
        raise ConfigError(f"overrides must be a mapping of dotted overrides, got {data['overrides']!r} ({where})")
    _check_curve(data.get("curve"), variants, where)
    compare = data.get("compare_to") or {}
    if not isinstance(compare, dict) or any(k not in variants or v not in variants for k, v in compare.items()):
        raise ConfigError(f"compare_to must map variants to variants, got {compare!r} ({where})")
    spec = AblationSpec(
        name=name, path=path, question=str(data["question"]).strip(), reproduces=str(data["reproduces"]),
        profile=str(data["profile"]), tasks=tuple(tasks), baseline=str(data["baseline"]),
        variants={str(k): dict(v or {}) for k, v in variants.items()},
        overrides=dict(data.get("overrides") or {}), curve=dict(data.get("curve") or {}),
        compare_to={str(k): str(v) for k, v in compare.items()})
    # Bind every variant now: a typo in any of them is an error before anything runs.
    from harness.stages import method_of, method_task
    base = load_profile(spec.profile)
    methods = {}
    for vname, over in spec.variants.items():
        methods[vname] = method = method_of(apply_overrides(base, {**spec.overrides, **over}, f"{where}, variant {vname}"))
        if method_task(method) not in (None, *spec.tasks):
            raise ConfigError(f"variants.{vname}: {method} answers {method_task(method)}, not one of this "
                              f"ablation's tasks ({', '.join(spec.tasks)}) ({where})")
    return dataclasses.replace(spec, methods=methods)


def _check_curve(curve: Any, variants: dict, where: str) -> None:
    """`curve: {x: {VARIANT: number, ...}, xlabel: text}`: one x per variant, numbers only."""
    if curve is None:
        return
    if not isinstance(curve, dict) or set(curve) - {"x", "xlabel"} or not isinstance(curve.get("x"), dict):
        raise ConfigError(f"curve must be a mapping {{x: {{VARIANT: number}}, xlabel: text}}, got {curve!r} ({where})")
    for vname, x in curve["x"].items():
        if vname not in variants:
            raise ConfigError(f"curve.x.{vname}: not one of the variants ({where})")
        if isinstance(x, bool) or not isinstance(x, (int, float)) or x != x or abs(x) == float("inf"):
            raise ConfigError(f"curve.x.{vname} must be a finite number, got {x!r} ({where})")
    if not isinstance(curve.get("xlabel", ""), str):
        raise ConfigError(f"curve.xlabel must be a string, got {curve['xlabel']!r} ({where})")


def variant_config(spec: AblationSpec, variant: str, profile: str | None, cli_overrides: dict[str, Any],
                   seed: int) -> ExperimentConfig:
    """Profile, then the ablation's common overrides, the variant's, the CLI's, and the seed."""
    base = load_profile(profile or spec.profile)
    cfg = apply_overrides(base, {**spec.overrides, **spec.variants[variant]}, f"ablations/{spec.name}.yaml")
    cfg = apply_overrides(cfg, cli_overrides, "--set")
    return apply_overrides(cfg, {"seed": seed}, "--seeds")
