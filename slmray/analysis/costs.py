"""Cost metrics over a results frame (the formulas: `slmray.core.costs`), and the seed paper's
best-over-the-rest reduction.

A trial is charged for the instances that hold its GPUs (`slmray.catalog.rent`).  What loss the
tokens buy is `slmray.analysis.budget`'s, from tokens per dollar and a scaling law.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from slmray.core.costs import (  # noqa: F401  (the formulas, under the names analysis code uses)
    SECONDS_PER_HOUR,
    price_trials,
    tokens_per_usd,
    trial_cost_usd,
    usd_per_btok,
)

DERIVED_COLUMNS = ("usd_per_btok",)
"""Columns `add_cost_metrics` adds to a results frame."""
PRICED_COLUMNS = ("price_per_hour_usd", "cost_usd", "tokens_per_usd", "usd_per_btok")
"""Columns that mean something only where a trial has a price."""


def add_cost_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """Add usd_per_btok; recompute tokens_per_usd from the price."""
    out = df.copy()
    price = out["price_per_hour_usd"].astype(float)
    out["tokens_per_usd"] = tokens_per_usd(out["tokens_per_s"], price)
    out["usd_per_btok"] = usd_per_btok(out["tokens_per_s"], price)
    return out


def money_metric(df: pd.DataFrame) -> str:
    """The cost-efficiency column to show: tokens_per_usd where an ok trial has a price, else tokens_per_s."""
    priced = df.loc[df["status"] == "ok", "tokens_per_usd"].astype(float)
    return "tokens_per_usd" if np.isfinite(priced).any() else "tokens_per_s"


def best_over(df: pd.DataFrame, metric: str, by: str | Sequence[str], maximize: bool = True) -> pd.DataFrame:
    """The best `metric` of each `by` group over every other configuration parameter.

    The paper plots each point this way.  Only ok trials count; a group whose trials all ran
    out of memory scores 0 (the paper's "OOM as zero") when higher is better, and +inf when
    lower is better.  A group with no usable value (failed, pruned, or no price) is NaN.
    The `row` column is the index of the best trial, or None.
    """
    by = [by] if isinstance(by, str) else list(by)
    values = df[metric].astype(float)
    score = (values if maximize else -values).where(df["status"] == "ok")
    rows = []
    for key, part in df.groupby(by, sort=False, dropna=False):
        scores = score.loc[part.index].dropna()
        if len(scores):
            best = scores.idxmax()
            value, row = float(values[best]), best
        elif (part["status"] == "oom").any() and not (part["status"] == "ok").any():
            value, row = (0.0 if maximize else math.inf), None
        else:
            value, row = math.nan, None
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), metric: value, "row": row})
    return pd.DataFrame(rows, columns=[*by, metric, "row"])
