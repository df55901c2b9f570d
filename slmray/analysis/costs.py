"""Cost metrics, each defined once, and the seed paper's best-over-the-rest reduction.

A trial is charged for the GPUs it used: price_per_hour_usd = (price of one GPU-hour) x
num_gpus, from `slmray.prices`.  From that and the measured tokens/s:

    tokens_per_usd = tokens_per_s * 3600 / price_per_hour_usd
    usd_per_btok   = price_per_hour_usd / (tokens_per_s * 3600) * 1e9
    cost_usd       = price_per_hour_usd * wall_s / 3600          (the whole trial, start-up included)

A free machine (price 0) has usd_per_btok 0 and an undefined (NaN) tokens_per_usd and
loss_per_usd: they would be infinite, and would make every local trial "best".

Loss per dollar is the paper's Eq. 1 (Ashkboos et al. 2024):

    Loss/Dollar = Loss/Token x Token/Second / (Dollar/Second)

Loss/Token is the loss reduction bought by one more training token, -dL/dD, in loss units per
token (positive while loss falls); so Loss/Dollar is loss reduction per dollar, higher better.
It comes from one of two sources (`loss_source`):

    scaling   the Chinchilla law L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022,
              Approach 3: E 1.69, A 406.4, B 410.7, alpha 0.34, beta 0.28), differentiated at
              D = tokens_per_param x N (default 20, the compute-optimal ratio):
              -dL/dD = beta * B * D^-(beta + 1).  Depends on the model's size N only, so within
              a model it ranks configurations exactly as tokens per dollar does.
    measured  minus the least-squares slope of the trial's own per-step training loss
              (`losses`, warm-up steps included) against tokens seen
              (tokens_per_step = tokens_seen / len(losses)).  Short throughput runs give a
              noisy slope; NaN for fewer than two steps.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from slmray.prices import PriceBook

SECONDS_PER_HOUR = 3600.0
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
LOSS_SOURCES = ("scaling", "measured")
DERIVED_COLUMNS = ("usd_per_btok", "loss_per_token", "loss_per_usd")
"""Columns `add_cost_metrics` adds to a results frame."""
PRICED_COLUMNS = ("price_per_hour_usd", "cost_usd", "tokens_per_usd", "usd_per_btok", "loss_per_usd")
"""Columns that mean something only where a trial has a price."""


def _positive(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.nan)


def tokens_per_usd(tokens_per_s, usd_per_hour):
    """Tokens bought by one dollar; NaN where the price is 0 or unknown."""
    return np.asarray(tokens_per_s, dtype=float) * SECONDS_PER_HOUR / _positive(np.asarray(usd_per_hour, dtype=float))


def usd_per_btok(tokens_per_s, usd_per_hour):
    """Dollars per billion tokens; 0 on a free machine, NaN without a price or a throughput."""
    seconds_per_btok = 1e9 / _positive(np.asarray(tokens_per_s, dtype=float))
    return np.asarray(usd_per_hour, dtype=float) * seconds_per_btok / SECONDS_PER_HOUR


def trial_cost_usd(usd_per_hour, wall_s):
    return np.asarray(usd_per_hour, dtype=float) * np.asarray(wall_s, dtype=float) / SECONDS_PER_HOUR


def loss_per_usd(loss_per_token, tokens_per_s, usd_per_hour):
    """Eq. 1: Loss/Token x Token/Second / (Dollar/Second); NaN where the price is 0 or unknown."""
    usd_per_s = _positive(np.asarray(usd_per_hour, dtype=float)) / SECONDS_PER_HOUR
    return np.asarray(loss_per_token, dtype=float) * np.asarray(tokens_per_s, dtype=float) / usd_per_s


def chinchilla_loss_per_token(n_params, tokens_per_param: float = 20.0):
    """-dL/dD of the Chinchilla law at D = tokens_per_param x N tokens."""
    d = tokens_per_param * _positive(np.asarray(n_params, dtype=float))
    return CHINCHILLA["beta"] * CHINCHILLA["B"] * d ** -(CHINCHILLA["beta"] + 1.0)


def measured_loss_per_token(losses: Sequence[float] | None, tokens_per_step: float) -> float:
    """Minus the slope of a line fitted to (tokens seen, loss) over the recorded steps."""
    if not hasattr(losses, "__len__") or len(losses) < 2 or not tokens_per_step > 0:
        return math.nan
    y = np.asarray(losses, dtype=float)
    x = tokens_per_step * np.arange(1, len(y) + 1)
    return float(-np.polyfit(x, y, 1)[0])


def price_trials(df: pd.DataFrame, book: PriceBook) -> pd.DataFrame:
    """Re-price every trial with `book`: price_per_hour_usd, price_source, cost_usd, tokens_per_usd.

    A GPU the book has no price for gets empty (NaN) costs and one `PriceWarning`.
    """
    out = df.copy()
    prices = {gpu: book.lookup(gpu) for gpu in out["gpu_type"].dropna().unique()}
    per_gpu = out["gpu_type"].map(lambda g: prices[g].usd_per_gpu_hour if prices.get(g) else math.nan)
    out["price_per_hour_usd"] = per_gpu.astype(float) * out["num_gpus"].astype(float)
    out["price_source"] = out["gpu_type"].map(lambda g: prices[g].source if prices.get(g) else None)
    out["cost_usd"] = trial_cost_usd(out["price_per_hour_usd"], out["wall_s"])
    out["tokens_per_usd"] = tokens_per_usd(out["tokens_per_s"], out["price_per_hour_usd"])
    return out


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
