"""The one-line errors every command shows: `UserError`, the base of every error a user can cause
(a bad flag, file, table, price or space), whose message starts with the field or file it is about;
`ConfigError` for a configuration value; `first_line` of any exception; and the one positive-integer
check.  A command prints a `UserError` as `error: <message>` and exits 2 (`slmray.cli.exits_2_on_user_error`)."""

from __future__ import annotations

from typing import Any


class UserError(ValueError):
    """Input a user can fix (a flag, a file, a table, a price, a search space); the message, one line,
    names it and says what is wrong.  A ValueError, as each of its subclasses was before it existed."""


class ConfigError(UserError):
    """A user error in a configuration value; the message names the field."""


def first_line(exc: BaseException) -> str:
    """An exception's message as one line (its first), for the one-line errors users see."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def check_positive_int(name: str, value: Any, *, zero_ok: bool = False) -> None:
    """A ConfigError naming `name` unless `value` is an int >= 1 (>= 0 with `zero_ok`; a bool is
    not an int here).  The one integer check: configs, search spaces, CLIs and the estimate."""
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if zero_ok else 1):
        raise ConfigError(f"{name}: must be a {'non-negative' if zero_ok else 'positive'} integer, got {value!r}")
