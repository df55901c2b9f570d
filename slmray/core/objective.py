"""An objective: a results column to maximise or minimise, written `max:tokens_per_s`.

One type for the sweep (what Tune's searchers are told, `slmray.sweep.space`) and the analysis (Pareto
fronts, best configurations, `slmray.analysis`); each says which columns it allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from slmray.errors import ConfigError

DIRECTIONS = ("max", "min")


class ObjectiveError(ConfigError):
    """An objective that cannot be used; the message names it."""


@dataclass(frozen=True)
class Objective:
    column: str
    maximize: bool

    @property
    def mode(self) -> str:
        """Tune's word for the direction: max or min."""
        return "max" if self.maximize else "min"

    def __str__(self) -> str:
        return f"{self.mode}:{self.column}"

    @classmethod
    def parse(cls, text: str, columns: Sequence[str] | None = None) -> Objective:
        """`max:tokens_per_s` -> Objective; `columns`, if given, are the ones allowed."""
        direction, sep, column = str(text).partition(":")
        if not sep or direction not in DIRECTIONS or not column:
            raise ObjectiveError(f"objective {text!r}: expected max:COLUMN or min:COLUMN")
        if columns is not None and column not in columns:
            raise ObjectiveError(f"objective {text!r}: unknown column {column!r} (numeric columns: {', '.join(columns)})")
        return cls(column, direction == "max")
