"""Pareto fronts and the best configuration per group, over a results frame (the mask itself
and the objective type: `slmray.core`)."""

from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

from slmray.analysis.table import config_label, ok
from slmray.core.objective import Objective
from slmray.core.pareto import pareto_mask


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
