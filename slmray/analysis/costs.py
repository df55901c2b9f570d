"""Cost metrics over a results frame (the formulas: `slmray.core.costs`), and the seed paper's
best-over-the-rest reduction.

A trial is charged for the instances that hold its GPUs (`slmray.catalog.rent`); `loss_source` picks where
loss per token comes from (scaling law or the trial's own losses), as `slmray.core.costs` says.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from slmray.core.costs import (  # noqa: F401  (the formulas, under the names analysis code uses)
    CHINCHILLA,
    SECONDS_PER_HOUR,
    chinchilla_loss_per_token,
    loss_per_usd,
    measured_loss_per_token,
    price_trials,
    tokens_per_usd,
    trial_cost_usd,
    usd_per_btok,
)

LOSS_SOURCES = ("scaling", "measured")
DERIVED_COLUMNS = ("usd_per_btok", "loss_per_token", "loss_per_usd")
"""Columns `add_cost_metrics` adds to a results frame."""
PRICED_COLUMNS = ("price_per_hour_usd", "cost_usd", "tokens_per_usd", "usd_per_btok", "loss_per_usd")
"""Columns that mean something only where a trial has a price."""


def add_cost_metrics(df: pd.DataFrame, loss_source: str = "scaling", tokens_per_param: float = 20.0) -> pd.DataFrame:
    """Add usd_per_btok, loss_per_token and loss_per_usd; recompute tokens_per_usd from the price."""
    if loss_source not in LOSS_SOURCES:
        raise ValueError(f"loss_source: {loss_source!r} is not one of {', '.join(LOSS_SOURCES)}")
    out = df.copy()
    price = out["price_per_hour_usd"].astype(float)
    out["tokens_per_usd"] = tokens_per_usd(out["tokens_per_s"], price)
    out["usd_per_btok"] = usd_per_btok(out["tokens_per_s"], price)
    if loss_source == "scaling":
        out["loss_per_token"] = chinchilla_loss_per_token(out["n_params"], tokens_per_param)
    else:
        steps = out["losses"].map(lambda ls: len(ls) if hasattr(ls, "__len__") else 0)
        per_step = out["tokens_seen"].astype(float) / steps.where(steps > 0).astype(float)
        out["loss_per_token"] = [measured_loss_per_token(ls, t) for ls, t in zip(out["losses"], per_step)]
    out["loss_per_usd"] = loss_per_usd(out["loss_per_token"], out["tokens_per_s"], price)
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
