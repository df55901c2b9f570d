"""The seed paper's questions, each answered from a results frame as one small table.

Every cell is `costs.best_over`: the best ok trial for that cell over every parameter the table
does not show, a cell whose trials all ran out of memory scoring 0.  Models are listed
smallest first.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from slmray.analysis.costs import best_over
from slmray.analysis.table import sort_by_model

VANILLA_ATTENTION = ("eager", "sdpa-math")
"""Attention that materialises the T x T scores, the paper's "vanilla"; the rest are fused."""


def _by_model(table: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    return sort_by_model(table, df, *(c for c in ("gpu_type", "num_gpus") if c in table.columns))


def grid(df: pd.DataFrame, metric: str, rows: Sequence[str], column: str, maximize: bool = True) -> pd.DataFrame:
    """`metric` with `rows` down and the values of `column` across, best over the rest."""
    best = best_over(df, metric, [*rows, column], maximize)
    best[column] = best[column].astype(object).where(best[column].notna(), "unknown")
    table = best.pivot(index=list(rows), columns=column, values=metric)
    table = table[sorted(table.columns, key=lambda c: (isinstance(c, str), c))]
    table.columns = [str(c) for c in table.columns]
    return _by_model(table.reset_index(), df)


def attention_effect(df: pd.DataFrame, metric: str = "tokens_per_s") -> pd.DataFrame:
    """Per model: each attention backend, and the best fused backend over eager."""
    table = grid(df, metric, ["model"], "attention")
    fused = [c for c in table.columns if c not in ("model", *VANILLA_ATTENTION)]
    if "eager" in table.columns and fused:
        table["fused / eager"] = table[fused].max(axis=1) / table["eager"]
    return table


def strategy_effect(df: pd.DataFrame, metric: str = "tokens_per_s") -> pd.DataFrame:
    """Per model and GPU count: each parallelism strategy, and the best FSDP over DDP."""
    table = grid(df, metric, ["model", "num_gpus"], "strategy")
    fsdp = [c for c in table.columns if c.startswith("fsdp")]
    if "ddp" in table.columns and fsdp:
        table["fsdp / ddp"] = table[fsdp].max(axis=1) / table["ddp"]
    return table


def gpu_scaling(df: pd.DataFrame) -> pd.DataFrame:
    """Tokens/s and tokens/$ by GPU count, per model and GPU type, with the scaling efficiency.

    Efficiency at n GPUs: tokens/s over n times the per-GPU tokens/s at the smallest count run
    (1.0 is linear scaling).
    """
    keys = ["model", "gpu_type", "num_gpus"]
    speed = best_over(df, "tokens_per_s", keys).drop(columns="row")
    cost = best_over(df, "tokens_per_usd", keys).drop(columns="row")
    table = speed.merge(cost, on=keys)
    base = table.sort_values("num_gpus").drop_duplicates(["model", "gpu_type"])
    base = base.assign(per_gpu=base["tokens_per_s"] / base["num_gpus"])[["model", "gpu_type", "per_gpu"]]
    table = table.merge(base, on=["model", "gpu_type"], how="left")
    table["scaling_efficiency"] = table["tokens_per_s"] / (table["num_gpus"] * table.pop("per_gpu"))
    return _by_model(table, df)


def batch_effect(df: pd.DataFrame, metric: str = "tokens_per_usd") -> pd.DataFrame:
    """Per model: `metric` at each per-device batch size."""
    return grid(df, metric, ["model"], "per_device_batch")


def gpu_type_effect(df: pd.DataFrame, metric: str = "tokens_per_usd") -> pd.DataFrame:
    """Per model: `metric` on each GPU type (cost-efficiency by GPU type)."""
    return grid(df, metric, ["model"], "gpu_type")
