"""A results table as one pandas DataFrame, read once, and the labels analysis shows for it."""

from __future__ import annotations

import pandas as pd

from slmray.results.table import STATUSES, load_results, to_frame  # noqa: F401  (re-exported for analysis code)
from slmray.train import config


def ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"]


def model_order(df: pd.DataFrame) -> list[str]:
    """Models smallest first (by parameter count, then name)."""
    sizes = df.groupby("model", sort=False)["n_params"].max()
    return sorted(sizes.index, key=lambda m: (pd.isna(sizes[m]), sizes[m] if pd.notna(sizes[m]) else 0, m))


def sort_by_model(frame: pd.DataFrame, df: pd.DataFrame, *then: str) -> pd.DataFrame:
    """`frame`'s rows with `df`'s models smallest first, then by the columns `then`."""
    rank = frame["model"].map({m: i for i, m in enumerate(model_order(df))})
    ordered = frame.assign(_rank=rank).sort_values(["_rank", *then], kind="stable")
    return ordered.drop(columns="_rank").reset_index(drop=True)


def config_label(df: pd.DataFrame) -> pd.Series:
    """`H100-80GB x8 fsdp sdpa b16 compile fp8 +AC` for each row (`slmray.train.config.config_label`
    without the model: a results frame has a model column)."""
    if df.empty:
        return pd.Series([], index=df.index, dtype=object)
    return df.apply(lambda row: config.config_label(row, model=False), axis=1)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Trials per model and status, models smallest first, with the GPU types seen."""
    rows = []
    for model in model_order(df):
        part = df[df["model"] == model]
        counts = part["status"].value_counts()
        rows.append(
            {"model": model, "n_params": part["n_params"].max(), **{s: int(counts.get(s, 0)) for s in STATUSES},
             "gpu_types": ", ".join(sorted(part["gpu_type"].dropna().astype(str).unique()))}
        )
    return pd.DataFrame(rows, columns=["model", "n_params", *STATUSES, "gpu_types"])
