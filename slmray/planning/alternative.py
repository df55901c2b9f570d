"""The priced alternative to a measured configuration the price profile cannot price.

Where a model's best measured configuration ran only on a GPU type the prices leave out (the
paper's and Lambda's profiles have no H200), its dollars are unknown; this names the best option
the planner can price instead, never in its place: the same per-device work as the measured one
(`LIKE_FOR_LIKE` equal) but for the per-device batch, on a priced GPU type at any count and
strategy the planner offers, predicted to fit in memory, ranked by the planner's rank
(`slmray.planning.rank`).  One place for the report's decision (`slmray.analysis.decision`), the
notebook and `python -m slmray.recommend`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import pandas as pd

from slmray.catalog.gpus import CPU, spec_for
from slmray.catalog.prices import PriceBook, PriceWarning
from slmray.planning.assumptions import PlanError, RunAssumptions
from slmray.planning.options import CONFIG, with_row_defaults
from slmray.planning.rank import ranked
from slmray.planning.run import Decision, plan_run

LIKE_FOR_LIKE = tuple(c for c in CONFIG if c != "per_device_batch")
"""What the alternative holds equal to the measured configuration: sequence length, attention,
compile, precision, checkpointing, loss kernel, backend and accumulation.  The per-device batch may
differ (what fits on another GPU type differs), and so may where it runs (GPU type, count, strategy)."""
PLACE = ("gpu_type", "num_gpus", "strategy", "per_device_batch")
"""What the alternative may change, in the order `differences` names them."""


@dataclass(frozen=True)
class Alternative:
    """A priced option standing beside a measured configuration that has no price."""

    option: pd.Series
    """The planner's option row (`slmray.planning.run.Decision.options`)."""
    differs: tuple[str, ...]
    """What differs from the measured configuration, in words (`H100-80GB not H200`)."""
    usd_low: float
    usd_high: float
    """The run's dollars at the top and the bottom of the option's tokens/s interval (NaN where measured)."""
    tokens: float
    objectives: tuple[str, ...]
    tolerance: float
    profile: str


def differences(option: Mapping, measured: Mapping) -> tuple[str, ...]:
    """`PLACE` columns where `option` differs from `measured`, as `new not old`."""
    words = {"gpu_type": "{}", "num_gpus": "x{}", "strategy": "{}", "per_device_batch": "b{}"}
    return tuple(f"{words[c].format(option[c])} not {words[c].format(measured[c])}"
                 for c in PLACE if option[c] != measured[c])


def choose(d: Decision, measured: Mapping) -> Alternative | str:
    """The best of `d`'s options that fits in memory, has a price (and meets its limits) and matches
    `measured` (a row with CONFIG and PLACE columns, `with_row_defaults`) in `LIKE_FOR_LIKE`, in the
    planner's rank by `d`'s objectives; or one line saying why there is none."""
    options = d.options
    like = pd.Series(True, index=options.index)
    for c in LIKE_FOR_LIKE:
        like &= options[c] == measured[c]
    same = options[like]
    if same.empty:
        return "the planner has no option at its settings"
    priced = same[same["excluded"] == ""]
    if priced.empty:
        types = ", ".join(sorted(same.loc[same["usd_per_hour"].map(math.isfinite), "gpu_type"].unique()))
        if not types:
            return f"the {d.profile} prices price none of the GPU types it was planned on"
        if same["excluded"].str.startswith("over the").any():
            return f"no option at its settings on {types} meets the deadline or the budget"
        return (f"it fits in memory at its settings on no GPU type the {d.profile} prices name ({types}; "
                f"predicted, up to {int(same['num_gpus'].max())} GPUs)")
    best = ranked(priced, d.objectives, d.tolerance).iloc[0]
    predicted = best["source"] == "predicted"
    low, high = ((d.usd_at(best, best["tokens_per_s_high"]), d.usd_at(best, best["tokens_per_s_low"])) if predicted
                 else (math.nan, math.nan))
    return Alternative(best, differences(best, measured), low, high, d.tokens, d.objectives, d.tolerance, d.profile)


def unpriced_measured(d: Decision) -> pd.Series | None:
    """Where no option a table measured (that fits) has a price: the best of those, by `d`'s
    objectives but cost (which they lack); None where a measured option is priced or none fits."""
    measured = d.options[(d.options["source"] == "measured")
                         & ~d.options["excluded"].str.startswith(("out of memory", "no estimate"))]
    if measured.empty or measured["usd_per_hour"].map(math.isfinite).any():
        return None
    by = [o for o in d.objectives if o != "cost"] or ["time"]
    return ranked(measured, by, d.tolerance).iloc[0]


def priced_types(book: PriceBook, gpu_types: Sequence[str]) -> list[str]:
    """Those of `gpu_types` `book` prices."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PriceWarning)  # no price is the answer, not a warning
        return [g for g in gpu_types if book.lookup(g) is not None]


def plan(df: pd.DataFrame, model: str, measured: Mapping, book: PriceBook, assumptions: RunAssumptions,
         tokens: float, objectives: Sequence[str], tolerance: float, max_gpus: int = 8) -> Alternative | str:
    """The priced alternative to `measured` (a row of `df`, the model's unpriced configuration) for a
    run of `tokens` tokens: planned on the tables' GPU types that `book` prices, or where it prices
    none of them, on the GPU types it prices (predicted from the other GPU types' trials); one line
    why where there is none."""
    measured = with_row_defaults(pd.DataFrame([dict(measured)])).iloc[0]
    ran = sorted(df["gpu_type"].dropna().unique())
    types = priced_types(book, ran)
    if not types:
        types = [p.gpu for p in book.prices if p.gpu != CPU and spec_for(p.gpu) is not None]
        if not types:
            return f"the {book.profile} prices price no GPU type"
    try:
        d = plan_run(df, model, tokens, book, assumptions, types, max_gpus, objectives=objectives, tolerance=tolerance)
    except PlanError as exc:
        return str(exc)
    return choose(d, measured)
