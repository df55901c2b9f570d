"""Ranking options by every objective the user gave: lexicographic with a tolerance.

The first objective decides unless options come within `tolerance` of its best; among those,
the next objective decides, and so on; the last is taken exactly.  `cost, time` with 3%: the
fastest of the options within 3% of the cheapest.  Why a tolerance: two options a few percent
apart on cost are not told apart by the data (run-to-run spread of repeated trials and the
corrections' leave-one-out errors are 1-3% on the committed tables), while the next objective
may differ by a factor.  Why not a Pareto front: on one GPU type tokens/s and dollars per token
are exact inverses, so the front is mostly one point, and a front is not a pick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the command's --help reads the names here without pandas
    import pandas as pd

OBJECTIVES = {"cost": "usd", "time": "hours", "gpu-hours": "gpu_hours"}
"""Objective names of `--rank-by` -> the option column it minimises."""
DEFAULT_OBJECTIVES = ("cost", "time")
DEFAULT_TOLERANCE = 0.03


def add_rank_arguments(p) -> None:
    """--rank-by and --tolerance of `python -m slmray.recommend`."""
    p.add_argument("--rank-by", nargs="+", default=list(DEFAULT_OBJECTIVES), choices=list(OBJECTIVES),
                   help="objectives, most important first: lexicographic, the next deciding among options within "
                        f"--tolerance of the best (default: {' '.join(DEFAULT_OBJECTIVES)})")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help=f"relative tie on an objective before the next decides (default: {DEFAULT_TOLERANCE:g})")


def describe(objectives, tolerance: float) -> str:
    """`cost, then time among options within 3% of the best cost`."""
    if len(objectives) == 1:
        return objectives[0]
    return (f"{objectives[0]}, then {', then '.join(objectives[1:])} among options within "
            f"{100 * tolerance:g}% of the best {objectives[0]}" + (" (and so on)" if len(objectives) > 2 else ""))


def best(values: np.ndarray, tolerance: float) -> int:
    """Index of the lexicographic-with-tolerance best row of `values` (rows x objectives, minimised)
    among the rows with every value; -1 where none has."""
    alive = np.isfinite(values).all(axis=1)
    if not alive.any():
        return -1
    for j in range(values.shape[1]):
        column = np.where(alive, values[:, j], np.inf)
        low = column.min()
        limit = low + tolerance * abs(low) if j < values.shape[1] - 1 else low
        alive &= column <= limit
    return int(np.flatnonzero(alive)[0])


def ranked(options: "pd.DataFrame", objectives=DEFAULT_OBJECTIVES, tolerance: float = DEFAULT_TOLERANCE) -> "pd.DataFrame":
    """`options` in rank order (best first), options without a value of some objective last, in
    their order.  Ties keep `options`' order."""
    values = options[[OBJECTIVES[o] for o in objectives]].to_numpy(dtype=float)
    left = list(range(len(options)))
    order = []
    while left:
        i = best(values[left], tolerance)
        if i < 0:
            break
        order.append(left.pop(i))
    return options.iloc[order + left]


COLUMNS = {("tokens_per_s", True): "time", ("usd_per_btok", False): "cost", ("tokens_per_usd", True): "cost",
           ("cost_usd", False): "cost"}
"""(results column, maximise) of an objective of the analysis (`max:tokens_per_s`) -> the planner's
objective that orders a run's options the same way (for a fixed number of tokens, more tokens/s
is fewer hours, fewer $ per token fewer dollars)."""


def from_columns(objectives) -> tuple[str, ...]:
    """The planner's objectives for the analysis' (`slmray.core.objective.Objective`s), in their
    order, each once; those with no planner counterpart (MFU, memory) are left out, and where none
    has one, `DEFAULT_OBJECTIVES`."""
    found = tuple(dict.fromkeys(COLUMNS[o.column, o.maximize] for o in objectives if (o.column, o.maximize) in COLUMNS))
    return found or DEFAULT_OBJECTIVES
