"""The one results-row builder: named values from each part of a trial -> a row of the schema.

A trial's row is assembled from what each stage knows of it: its identity, its configuration
(`TrainConfig.flat`), its plan (`PlannedTrial.row_columns`: the requested and planned GPU type
and the predictions), what the trainer measured (`TrainResult.to_dict`: the detected GPU type
among it) and how it ended.  Later parts win, so a detected GPU type replaces the planned one.
Every value whose name is a column of `slmray.core.schema.SCHEMA` is taken as it is, the rest
(`NOT_STORED`, a TrainConfig's `device`...) are left out; the columns computed from others are computed
here only: wall time and time to the first measured step from the trial's start and end, and
its price and costs from a price book (`slmray.catalog.rent`, `slmray.core.costs`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from slmray.catalog.rent import rent
from slmray.core.costs import tokens_per_usd, trial_cost_usd
from slmray.core.schema import COLUMNS

if TYPE_CHECKING:
    from slmray.catalog.prices import PriceBook

NOT_STORED = {
    "tokens_per_step": "tokens per optimizer step: the configuration's batch x sequence x accumulation x GPUs",
    "first_measured_at": "a wall-clock time, stored as time_to_first_step_s (from the trial's start)",
}
"""Fields of the trainer's result (`slmray.train.loop.TrainResult`) no column stores, and why;
every other field is a column (tests/test_identity.py), so a new measurement is not dropped unseen."""


def make_row(
    *parts: Mapping[str, Any] | None, started: float | None = None, ended: float | None = None,
    prices: PriceBook | None = None, node_gpus: int | None = None,
) -> dict[str, Any]:
    """A results row (for `slmray.results.table.to_table`) from `parts` (None: a part the trial does not
    have, a result where it never ran); times as epoch seconds.  `node_gpus`: the GPUs per node of
    the cluster the trial shared (`slmray.catalog.rent.cluster_share`); None: priced as rented alone."""
    merged: dict[str, Any] = {}
    for part in parts:
        merged.update(part or {})
    row = {k: v for k, v in merged.items() if k in COLUMNS}
    if started is not None and ended is not None:
        row.update(started_at=started, ended_at=ended, wall_s=ended - started)
    if started is not None and merged.get("first_measured_at") is not None:
        row["time_to_first_step_s"] = merged["first_measured_at"] - started
    num_gpus = row.get("num_gpus") or 0
    price = rent(prices, row.get("gpu_type"), num_gpus, node_gpus=node_gpus) if prices is not None and num_gpus >= 1 else None
    if price is not None:
        row["price_per_hour_usd"], row["price_source"] = price.usd_per_hour, price.source
        if row.get("wall_s") is not None:
            row["cost_usd"] = float(trial_cost_usd(price.usd_per_hour, row["wall_s"]))
        if row.get("tokens_per_s"):
            row["tokens_per_usd"] = float(tokens_per_usd(row["tokens_per_s"], price.usd_per_hour))  # NaN when free
    return row
