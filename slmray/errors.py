"""The one-line errors every command shows: a `ConfigError` whose message starts with the field or
file it is about, `first_line` of any exception, and the one positive-integer check."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A user error in a configuration value; the message names the field."""


def first_line(exc: BaseException) -> str:
    """An exception's message as one line (its first), for the one-line errors users see."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def check_positive_int(name: str, value: Any, *, zero_ok: bool = False) -> None:
    """A ConfigError naming `name` unless `value` is an int >= 1 (>= 0 with `zero_ok`; a bool is
    not an int here).  The one integer check: configs, search spaces, CLIs and the estimate."""
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if zero_ok else 1):
        raise ConfigError(f"{name}: must be a {'non-negative' if zero_ok else 'positive'} integer, got {value!r}")
