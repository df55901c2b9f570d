"""A results table as one pandas DataFrame, read once, and the labels analysis shows for it."""

from __future__ import annotations

from typing import Iterable

import pandas as pd
import pyarrow as pa

from slmray.results import STATUSES, read_tables

CONFIG_COLUMNS = (
    "model", "gpu_type", "num_gpus", "strategy", "attention", "per_device_batch", "seq_len", "compile", "precision",
    "activation_checkpointing",
)
"""What a trial chose; every other column is a measurement, a cost or bookkeeping."""


def to_frame(table: pa.Table) -> pd.DataFrame:
    """A table of `slmray.results.SCHEMA` as a DataFrame (the one conversion from Arrow)."""
    return table.to_pandas().reset_index(drop=True)


def load_results(uris: str | Iterable[str]) -> pd.DataFrame:
    """Read one or more results tables (local or s3://) into one DataFrame."""
    return to_frame(read_tables([uris] if isinstance(uris, str) else list(uris)))


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
    """`H100-80GB x8 fsdp sdpa b16 compile fp8 +AC` for each row: the configuration in one string
    (precision and checkpointing only where they leave bf16 and no checkpointing)."""

    def label(row: pd.Series) -> str:
        parts = [
            f"{row['gpu_type']} x{row['num_gpus']}", str(row["strategy"]), str(row["attention"]),
            f"b{row['per_device_batch']}",
        ]
        if pd.notna(row["compile"]) and bool(row["compile"]):
            parts.append("compile")
        if pd.notna(row.get("precision")) and row["precision"] != "bf16":  # null: a table from before FP8, bf16
            parts.append(str(row["precision"]))
        if pd.notna(row.get("activation_checkpointing")) and bool(row["activation_checkpointing"]):
            parts.append("+AC")
        return " ".join(parts)

    if df.empty:
        return pd.Series([], index=df.index, dtype=object)
    return df.apply(label, axis=1)


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
