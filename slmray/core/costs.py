"""Cost metrics, each defined once: for a trial's row, the plan, the analysis and the planner.

A trial is charged for the instances that hold its GPUs, idle ones included (`slmray.catalog.rent`:
"p5.48xlarge, 8 GPUs, 4 idle"), or for the GPUs it used where they are priced one by one (the
`local` and `paper` profiles, price files and overrides, --per-gpu-pricing): price_per_hour_usd.
From that and the measured tokens/s:

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
from typing import TYPE_CHECKING, Sequence

import numpy as np

from slmray.catalog.rent import rent

if TYPE_CHECKING:
    import pandas as pd

    from slmray.catalog.prices import PriceBook

SECONDS_PER_HOUR = 3600.0
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


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


def price_trials(df: "pd.DataFrame", book: "PriceBook") -> "pd.DataFrame":
    """Re-price every trial of a results frame with `book` (`slmray.catalog.rent.rent`, one a
    trial, at the fewest instances that hold its GPUs: the layout it ran on): price_per_hour_usd,
    price_source, cost_usd, tokens_per_usd.

    A GPU the book has no price for gets empty (NaN) costs and one `PriceWarning`.
    """
    out = df.copy()
    prices = [rent(book, g, int(n)) if isinstance(g, str) else None for g, n in zip(out["gpu_type"], out["num_gpus"])]
    out["price_per_hour_usd"] = [p.usd_per_hour if p else math.nan for p in prices]
    out["price_source"] = [p.source if p else None for p in prices]
    out["cost_usd"] = trial_cost_usd(out["price_per_hour_usd"], out["wall_s"])
    out["tokens_per_usd"] = tokens_per_usd(out["tokens_per_s"], out["price_per_hour_usd"])
    return out
