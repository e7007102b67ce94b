"""What a user writes, read one way: the error type of a wrong input, YAML read strictly, safe names.

Profiles, ablation files, search spaces and `--set` values all go through `parse_yaml`: a
`yaml.SafeLoader` (no Python tags, nothing evaluated) that also refuses what a hand-written spec
never needs and a hostile one uses:
- anchors and aliases: an alias bomb (`&a [*b, *b, ...]` nested a few levels) expands to billions
  of nodes from a kilobyte, and the kernel kills the process;
- duplicate keys in one mapping: YAML keeps the last silently, so a variant or an override written
  twice would run with a value the reader of the file does not see;
- nesting deeper than MAX_DEPTH (the composer recurses: Python's stack would end it in a traceback)
  and files over MAX_BYTES.
Names that become folder names, MLflow names and trial keys (ablations, variants, searches) are
checked by `check_name` before anything is written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1 << 20  # a spec file; the largest shipped one is under 4 KiB
MAX_DEPTH = 32  # nested mappings/lists; the shipped files use 3
NAME_RULE = "letters, digits, _, - and . (not first), at most 64 characters"
SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")  # a folder name that stays a folder name


class ConfigError(ValueError):
    """A user's configuration is wrong: one line naming the dotted key, the value and the file."""


class Refused(yaml.MarkedYAMLError):
    """Valid YAML that a spec file must not contain (an anchor, an alias, a duplicate key, depth)."""


class _StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader without anchors and aliases, duplicate keys or deep nesting."""

    _depth = 0  # nodes being composed, outermost first

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            sign = "*" if isinstance(event, yaml.AliasEvent) else "&"
            raise Refused(problem=f"YAML anchors and aliases are not accepted ({sign}{event.anchor}); "
                                  f"write the values out", problem_mark=event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise Refused(problem=f"nested deeper than {MAX_DEPTH} levels", problem_mark=event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: SafeLoader's own error says so
                continue
            if duplicate:
                raise Refused(problem=f"duplicate key {key!r}; each key once per mapping",
                              problem_mark=key_node.start_mark)
        return super().construct_mapping(node, deep)


def parse_yaml(text: str) -> Any:
    """`text` as YAML, strictly (see the module's docstring); raises yaml.YAMLError."""
    loader = _StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml(path: Path) -> Any:
    """A user's YAML file, or one line naming the file (and line) and what is wrong."""
    try:
        if Path(path).stat().st_size > MAX_BYTES:
            raise ConfigError(f"{path}: over {MAX_BYTES // 1024} KiB; a spec file is a few KiB of YAML")
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; expected a YAML file") from None
    try:
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        if isinstance(exc, Refused):
            raise ConfigError(f"{path}{where}: {exc.problem}") from None
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


def check_name(what: str, name: Any, where: str = "") -> str:
    """`name` if it is safe as a folder name, an MLflow name and part of a trial key; else one line.
    No separators, no `..`, no leading dot, nothing a shell or a path would read differently."""
    text = str(name)
    if not SAFE_NAME.fullmatch(text):
        raise ConfigError(f"{what} {text!r}: use {NAME_RULE}{f' ({where})' if where else ''}")
    return text
