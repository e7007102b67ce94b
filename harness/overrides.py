"""Dotted overrides as plain dicts: `--set a.b=c` parsed, nested, merged, and a config flattened back
to its dotted keys (the MLflow parameter names). harness/config.py builds and checks the result."""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from harness.user_input import ConfigError, parse_yaml


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """ExperimentConfig -> {"pretrain.mask_ratio": 0.25, ...} (the MLflow parameter names)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, key + "."))
        else:
            out[key] = value
    return out


def unflatten(overrides: dict[str, Any]) -> dict:
    nested: dict = {}
    for dotted, value in overrides.items():
        parts = str(dotted).split(".")
        node = nested
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{dotted}: {p} is a value, not a section")
        node[parts[-1]] = value
    return nested


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_set(items: list[str], source: str = "--set") -> dict[str, Any]:
    """`["pretrain.mask_ratio=0.5", ...]` -> {"pretrain.mask_ratio": 0.5}; values are YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"{source} expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        if not key.strip() or any(not part for part in key.split(".")):
            raise ConfigError(f"{source} expects key=value with a dotted key like pretrain.mask_ratio, got {item!r}")
        try:
            value = parse_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str):
            try:  # YAML 1.1 reads "1e-7" (no dot) as a string; a number is meant
                value = float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "infinity") else value
            except ValueError:
                pass
        out[key.strip()] = value
    return out
