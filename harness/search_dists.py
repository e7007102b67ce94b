"""The distributions of a search space (`search_spaces/NAME.yaml`, key `space`): parsed and checked.

A distribution's bound may name an earlier key of the space (`embed.stride: {int: [1, pretrain.window]}`)
or a key of the base config; the space is checked at its corners (every key at each end, the others
at their low or high ends) so that no configuration Optuna can draw is invalid.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Iterator

from harness.config import ConfigError, ExperimentConfig, apply_overrides

KINDS = ("float", "int", "loguniform", "choice")


@dataclass(frozen=True)
class Dist:
    """One dimension of the space. A str bound names another dotted key (sampled earlier, or the
    base config's value)."""

    kind: str  # float | int | loguniform | choice
    low: Any = None
    high: Any = None
    step: Any = None
    choices: tuple = ()

    def bounds(self, values: dict[str, Any], fixed: dict[str, Any]) -> tuple[Any, Any]:
        def resolve(b):
            return (values[b] if b in values else fixed[b]) if isinstance(b, str) else b
        return resolve(self.low), resolve(self.high)



def number(value: Any, what: str, where: str, integer: bool = False) -> Any:
    # YAML 1.1 (PyYAML) reads 1e-4 as a string; accept it as the number it obviously is.
    if isinstance(value, str) and not integer:
        try:
            value = float(value)
        except ValueError:
            pass
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        raise ConfigError(f"{what} must be {'an integer' if integer else 'a number'}, got {value!r} ({where})")
    if not math.isfinite(value):  # NaN passes every comparison below; inf is no bound
        raise ConfigError(f"{what} must be a finite number, got {value!r} ({where})")
    return value


def parse_dist(key: str, raw: Any, where: str, earlier: dict[str, Dist], base_flat: dict[str, Any]) -> Dist:
    what = f"space.{key}"
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{what} must be a mapping like {{float: [0.1, 0.8]}} ({where})")
    kinds = [k for k in raw if k in KINDS]
    unknown = [k for k in raw if k not in KINDS and k != "step"]
    if unknown:
        raise ConfigError(f"{what}: unknown distribution {unknown[0]!r}; use one of {', '.join(KINDS)} ({where})")
    if len(kinds) != 1:
        raise ConfigError(f"{what} must name exactly one distribution of {', '.join(KINDS)}, got {list(raw)} ({where})")
    kind = kinds[0]
    args = raw[kind]
    if kind == "choice":
        if "step" in raw:
            raise ConfigError(f"{what}: step is only for float and int ({where})")
        if not isinstance(args, list) or not args:
            raise ConfigError(f"{what}: choice needs a non-empty list of values ({where})")
        for v in args:
            if not (v is None or isinstance(v, (bool, int, float, str))):
                raise ConfigError(f"{what}: choice values must be scalars, got {v!r} ({where})")
        if len({json.dumps(v) for v in args}) != len(args):
            raise ConfigError(f"{what}: choice values must be distinct, got {args} ({where})")
        return Dist("choice", choices=tuple(args))
    if not isinstance(args, list) or len(args) != 2:
        raise ConfigError(f"{what}: {kind} needs [low, high], got {args!r} ({where})")
    integer = kind == "int"
    bounds = []
    for b in args:
        if isinstance(b, str) and (integer or not is_float(b)):
            if b in earlier:
                ref = earlier[b]
                ok = ref.kind == "int" or (ref.kind == "choice" and all(isinstance(c, int) and not isinstance(c, bool)
                                                                           for c in ref.choices))
                ok = ok or (not integer and ref.kind in ("float", "loguniform"))
            elif b in base_flat:
                v = base_flat[b]
                ok = not isinstance(v, bool) and isinstance(v, int if integer else (int, float))
            else:
                raise ConfigError(f"{what}: bound {b!r} is neither an earlier key of the space nor a config key ({where})")
            if not ok:
                raise ConfigError(f"{what}: bound {b!r} must name an {'integer' if integer else 'numeric'} key ({where})")
            bounds.append(b)
        else:
            bounds.append(number(b, f"{what} bounds", where, integer))
    low, high = bounds
    if not isinstance(low, str) and not isinstance(high, str) and not low < high:
        raise ConfigError(f"{what}: low must be < high, got [{low}, {high}] ({where})")
    if kind == "loguniform" and not isinstance(low, str) and low <= 0:
        raise ConfigError(f"{what}: loguniform needs low > 0, got {low} ({where})")
    step = raw.get("step")
    if step is not None:
        if kind == "loguniform":
            raise ConfigError(f"{what}: step is only for float and int ({where})")
        step = number(step, f"{what}.step", where, integer)
        if step <= 0:
            raise ConfigError(f"{what}.step must be > 0, got {step} ({where})")
    return Dist(kind, low, high, step)


def is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def corners(space: dict[str, Dist], fixed: dict[str, Any]) -> Iterator[tuple[str, Any, str, dict[str, Any]]]:
    """Assignments that stress the space: every key at each end (or choice) with the others at
    their low ends, then at their high ends; later bounds follow earlier values (define-by-run)."""
    for side in ("low", "high"):
        for key, dist in space.items():
            for cand in dist.choices if dist.kind == "choice" else ("low", "high"):
                values: dict[str, Any] = {}
                for k, d in space.items():
                    pick = cand if k == key else side
                    if d.kind == "choice":
                        values[k] = pick if k == key else (d.choices[0] if pick == "low" else d.choices[-1])
                        continue
                    lo, hi = d.bounds(values, fixed)
                    v = lo if pick == "low" else hi
                    # what Optuna will return: floats from float/loguniform, so an int key says so
                    values[k] = int(v) if d.kind == "int" else float(v)
                yield key, values[key], side, values


def check_space(space: dict[str, Dist], base: ExperimentConfig, fixed: dict[str, Any], where: str) -> None:
    for key, value, side, values in corners(space, fixed):
        for k, d in space.items():
            if d.kind != "choice":
                lo, hi = d.bounds(values, fixed)
                if not lo < hi and not (lo == hi and d.kind == "int"):
                    raise ConfigError(f"space.{k}: empty range [{lo}, {hi}] when {key} = {value!r} ({where})")
                if d.kind == "loguniform" and lo <= 0:
                    raise ConfigError(f"space.{k}: loguniform needs low > 0, got {lo} when {key} = {value!r} ({where})")
        try:
            apply_overrides(base, values)
        except ConfigError as exc:
            raise ConfigError(f"space.{key} = {value!r} (other keys at their {side} ends) gives an invalid "
                              f"configuration: {exc} ({where})") from None




def check_point(point: Any, what: str, space: dict[str, Dist], fixed: dict[str, Any], base: ExperimentConfig,
                 where: str) -> None:
    if not isinstance(point, dict) or not point:
        raise ConfigError(f"{what} must be a non-empty mapping of searched keys ({where})")
    values: dict[str, Any] = {}
    for key, dist in space.items():
        if key not in point:
            continue
        v = point[key]
        values[key] = v
        if dist.kind == "choice":
            if v not in dist.choices:
                raise ConfigError(f"{what}.{key} must be one of {list(dist.choices)}, got {v!r} ({where})")
            continue
        refs = [b for b in (dist.low, dist.high) if isinstance(b, str)]
        if any(r in space and r not in point for r in refs):
            continue  # its range depends on a key this point leaves to the sampler
        lo, hi = dist.bounds(values, fixed)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise ConfigError(f"{what}.{key} must be in [{lo}, {hi}], got {v!r} ({where})")
    for key in point:
        if key not in space:
            raise ConfigError(f"{what}.{key} is not a key of the space ({where})")
    try:
        apply_overrides(base, point)
    except ConfigError as exc:
        raise ConfigError(f"{what} gives an invalid configuration: {exc} ({where})") from None
