"""Shared command-line plumbing: one-line errors for user mistakes, no tracebacks."""

from __future__ import annotations

import sys
from typing import Callable

from harness.config import ConfigError
from harness.data.record import DataError


def user_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ConfigError, DataError]
    try:
        from harness.tracking import TrackingError
        errors.append(TrackingError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run `main`; a user error prints `error: <one line>` on stderr and exits 2."""
    try:
        return main(argv)
    except user_errors() as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished stages are cached; rerun with --resume to continue", file=sys.stderr)
        return 130
