"""Cost metrics, each defined once: for a trial's row, the plan, the analysis and the planner.

A trial is charged for the instances that hold its GPUs, idle ones included (`slmray.catalog.rent`:
"p5.48xlarge, 8 GPUs, 4 idle"), or for the GPUs it used where they are priced one by one (the
`local` and `paper` profiles, price files and overrides, --per-gpu-pricing): price_per_hour_usd.
From that and the measured tokens/s:

    tokens_per_usd = tokens_per_s * 3600 / price_per_hour_usd
    usd_per_btok   = price_per_hour_usd / (tokens_per_s * 3600) * 1e9
    cost_usd       = price_per_hour_usd * wall_s / 3600          (the whole trial, start-up included)

A free machine (price 0) has usd_per_btok 0 and an undefined (NaN) tokens_per_usd: it would be
infinite, and would make every local trial "best".  What loss those tokens buy is
`slmray.core.scaling_law`'s (the seed paper's loss per dollar, Eq. 1, was tokens per dollar
times a per-model constant, and a 10-step loss slope says nothing about a full run).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Collection

import numpy as np

from slmray.catalog.rent import rent

if TYPE_CHECKING:
    import pandas as pd

    from slmray.catalog.prices import PriceBook

SECONDS_PER_HOUR = 3600.0


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


def price_trials(df: "pd.DataFrame", book: "PriceBook", gpu_types: "Collection[str] | None" = None) -> "pd.DataFrame":
    """Re-price the trials of a results frame with `book` (`slmray.catalog.rent.rent`, one a
    trial, at the fewest instances that hold its GPUs: the layout it ran on): price_per_hour_usd,
    price_source, cost_usd, tokens_per_usd.  With `gpu_types` (canonical names) only the trials on
    those, the others as they were.

    A GPU the book has no price for gets empty (NaN) costs and one `PriceWarning`.
    """
    from slmray.catalog.prices import gpu_key

    out = df.copy()
    at = out.index[[isinstance(g, str) and (gpu_types is None or gpu_key(g) in gpu_types) for g in out["gpu_type"]]]
    prices = [rent(book, g, int(n)) for g, n in zip(out.loc[at, "gpu_type"], out.loc[at, "num_gpus"])]
    if gpu_types is None:  # every trial: one without a GPU type has no price either
        out["price_per_hour_usd"], out["price_source"] = math.nan, None
    out.loc[at, "price_per_hour_usd"] = [p.usd_per_hour if p else math.nan for p in prices]
    out.loc[at, "price_source"] = [p.source if p else None for p in prices]
    out["cost_usd"] = trial_cost_usd(out["price_per_hour_usd"], out["wall_s"])
    out["tokens_per_usd"] = tokens_per_usd(out["tokens_per_s"], out["price_per_hour_usd"])
    return out
