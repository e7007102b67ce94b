"""What a user writes, read one way: the error type of a wrong input and the YAML readers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A user's configuration is wrong: one line naming the dotted key, the value and the file."""


def read_yaml(path: Path) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None


def read_mapping(path: Path, where: str, keys: tuple[str, ...], required: tuple[str, ...]) -> dict:
    """A spec file's top-level mapping (ablations/, search_spaces/): unknown or missing keys are one line."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping with keys {', '.join(keys)}")
    for key in data:
        if key not in keys:
            raise ConfigError(f"unknown key {key} ({where}); valid keys: {', '.join(keys)}")
    for key in required:
        if key not in data:
            raise ConfigError(f"missing key {key} ({where})")
    return data
