"""Objectives, non-dominated (Pareto) sets, and the best configuration per group.

Directions are normalised once: every objective is turned into "lower is better" by negating
the maximised ones (optuna's `_multi_objective.py` does the same), and the rest is vectorised.
A point dominates another when it is no worse in every objective and better in one; equal
points do not dominate each other, so ties are all kept.  A point missing any objective (NaN)
is never on the front and dominates nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from slmray.analysis.table import config_label, ok

DIRECTIONS = ("max", "min")
_BLOCK = 512  # rows compared at once: memory stays O(_BLOCK x n x objectives)


class ObjectiveError(ValueError):
    """An objective that cannot be used; the message names it."""


@dataclass(frozen=True)
class Objective:
    column: str
    maximize: bool

    def __str__(self) -> str:
        return f"{'max' if self.maximize else 'min'}:{self.column}"


def parse_objective(text: str, columns: Sequence[str] | None = None) -> Objective:
    """`max:tokens_per_s` -> Objective; `columns`, if given, are the ones allowed."""
    direction, sep, column = text.partition(":")
    if not sep or direction not in DIRECTIONS or not column:
        raise ObjectiveError(f"objective {text!r}: expected max:COLUMN or min:COLUMN")
    if columns is not None and column not in columns:
        raise ObjectiveError(f"objective {text!r}: unknown column {column!r} (numeric columns: {', '.join(columns)})")
    return Objective(column, direction == "max")


def pareto_mask(values: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Which rows of `values` (n points x k objectives) are non-dominated."""
    v = np.asarray(values, dtype=float).reshape(len(values), len(maximize))
    v = np.where(np.asarray(maximize, dtype=bool), -v, v)  # all objectives now minimised
    complete = ~np.isnan(v).any(axis=1)
    mask = np.zeros(len(v), dtype=bool)
    pts = v[complete]
    keep = np.ones(len(pts), dtype=bool)
    for start in range(0, len(pts), _BLOCK):
        block = pts[start : start + _BLOCK]  # (b, k): is any point in pts dominating these?
        no_worse = (pts[:, None, :] <= block[None, :, :]).all(axis=2)
        better = (pts[:, None, :] < block[None, :, :]).any(axis=2)
        keep[start : start + _BLOCK] = ~(no_worse & better).any(axis=0)
    mask[np.flatnonzero(complete)] = keep
    return mask


def pareto_front(df: pd.DataFrame, objectives: Sequence[Objective], by: str | Sequence[str] | None = None) -> pd.Series:
    """True on the ok trials that are non-dominated within their `by` group (or overall)."""
    front = pd.Series(False, index=df.index)
    trials = ok(df)
    groups = [(None, trials)] if by is None else trials.groupby(by, sort=False, dropna=False)
    for _, part in groups:
        values = part[[o.column for o in objectives]].astype(float).to_numpy()
        front[part.index] = pareto_mask(values, [o.maximize for o in objectives])
    return front


def best_by_group(df: pd.DataFrame, objective: Objective, by: str | Sequence[str] = "model") -> pd.DataFrame:
    """The best configuration of each group under `objective`, its runner-up and the margin.

    Repeated trials of one configuration count once, at their best.  `margin` is how much
    better the best is than the runner-up, as a fraction of the runner-up's value (NaN when
    there is no runner-up).
    """
    by = [by] if isinstance(by, str) else list(by)
    trials = ok(df).dropna(subset=[objective.column])
    trials = trials.assign(configuration=config_label(trials))
    sign = 1.0 if objective.maximize else -1.0
    rows = []
    for key, part in trials.groupby(by, sort=False, dropna=False):
        ranked = part.assign(_score=sign * part[objective.column].astype(float)).sort_values("_score", ascending=False)
        ranked = ranked.drop_duplicates("configuration")
        best = ranked.iloc[0]
        second = ranked.iloc[1] if len(ranked) > 1 else None
        value = float(best[objective.column])
        runner = float(second[objective.column]) if second is not None else math.nan
        gap = sign * (value - runner)
        margin = gap / abs(runner) if runner else (math.inf if gap > 0 else 0.0)
        rows.append({
            **dict(zip(by, key if isinstance(key, tuple) else (key,))),
            "best": best["configuration"], objective.column: value,
            "runner_up": second["configuration"] if second is not None else None,
            "runner_up_value": runner, "margin": margin, "row": best.name,
        })
    return pd.DataFrame(rows, columns=[*by, "best", objective.column, "runner_up", "runner_up_value", "margin", "row"])
