"""The seed paper's questions, each answered from a results frame as one small table.

Every cell is `costs.best_over`: the best ok trial for that cell over every parameter the table
does not show, a cell whose trials all ran out of memory scoring 0.  Models are listed
smallest first.  `torch.compile` changes tokens/s and memory more than most choices, so where a
table has trials with and without it, the tables that take `rows` split by it (`row_keys`, which splits by GPU type too)
and `key_findings` reads the trials without it.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from slmray.analysis.costs import best_over
from slmray.analysis.table import model_order, sort_by_model

VANILLA_ATTENTION = ("eager", "sdpa-math")
"""Attention that materialises the T x T scores, the paper's "vanilla"; the rest are fused."""


def _by_model(table: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    return sort_by_model(table, df, *(c for c in ("gpu_type", "num_gpus", "attention", "compile") if c in table.columns))


def mixes_compile(df: pd.DataFrame) -> bool:
    """Whether the table has trials with and without `torch.compile`."""
    return df["compile"].fillna(False).astype(bool).nunique() > 1


def mixes_gpu_types(df: pd.DataFrame) -> bool:
    """Whether the table has trials on more than one GPU type."""
    return df["gpu_type"].nunique() > 1


def row_keys(df: pd.DataFrame, *keys: str, gpu_type: bool = True) -> list[str]:
    """Row keys for a per-model table: the model, the GPU type where the table has several (and
    `gpu_type`), `keys`, and compile where the table mixes it: tokens/s and memory differ by GPU
    and by compile more than by most choices, so a row each keeps them apart."""
    gpu = ["gpu_type"] if gpu_type and mixes_gpu_types(df) else []
    return ["model", *gpu, *keys, *(["compile"] if mixes_compile(df) else [])]


def without_compile(df: pd.DataFrame) -> pd.DataFrame:
    """The trials without compile where the table mixes both; else all of them."""
    return df[~df["compile"].fillna(False).astype(bool)] if mixes_compile(df) else df


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """numerator / denominator, unknown where the denominator is 0 (every trial out of memory)."""
    return numerator.astype(float) / denominator.astype(float).where(denominator > 0)


def grid(df: pd.DataFrame, metric: str, rows: Sequence[str], column: str, maximize: bool = True) -> pd.DataFrame:
    """`metric` with `rows` down and the values of `column` across, best over the rest."""
    best = best_over(df, metric, [*rows, column], maximize)
    best[column] = best[column].astype(object).where(best[column].notna(), "unknown")
    table = best.pivot(index=list(rows), columns=column, values=metric)
    table = table.reindex(columns=sorted(table.columns, key=lambda c: (isinstance(c, str), c)))  # labels, even bools
    table.columns = [str(c) for c in table.columns]
    return _by_model(table.reset_index(), df)


def attention_effect(df: pd.DataFrame, metric: str = "tokens_per_s", rows: Sequence[str] = ("model",)) -> pd.DataFrame:
    """Per model (or `rows`): each attention backend, and the best fused backend over eager."""
    table = grid(df, metric, rows, "attention")
    fused = [c for c in table.columns if c not in (*rows, *VANILLA_ATTENTION)]
    if "eager" in table.columns and fused:
        table["fused / eager"] = _ratio(table[fused].max(axis=1), table["eager"])
    return table


def strategy_effect(
    df: pd.DataFrame, metric: str = "tokens_per_s", rows: Sequence[str] = ("model", "num_gpus")
) -> pd.DataFrame:
    """Per model and GPU count (or `rows`): each parallelism strategy, and the best FSDP over DDP."""
    table = grid(df, metric, rows, "strategy")
    fsdp = [c for c in table.columns if c.startswith("fsdp")]
    if "ddp" in table.columns and fsdp:
        table["fsdp / ddp"] = _ratio(table[fsdp].max(axis=1), table["ddp"])
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


def batch_effect(df: pd.DataFrame, metric: str = "tokens_per_usd", rows: Sequence[str] = ("model",)) -> pd.DataFrame:
    """Per model (or `rows`): `metric` at each per-device batch size."""
    return grid(df, metric, rows, "per_device_batch")


def gpu_type_effect(df: pd.DataFrame, metric: str = "tokens_per_usd", rows: Sequence[str] = ("model",)) -> pd.DataFrame:
    """Per model (or `rows`): `metric` on each GPU type, and which type is best; with more than
    one type, each type's value over the best (the paper's question: is the dearest GPU the most
    cost-efficient?)."""
    table = grid(df, metric, rows, "gpu_type")
    types = [c for c in table.columns if c not in rows]
    if len(types) > 1:
        values = table[types].astype(float)
        table["best"] = values.idxmax(axis=1).where(values.max(axis=1) > 0)
        for t in types:
            table[f"{t} / best"] = values[t] / values.max(axis=1)
    return table


def compile_effect(df: pd.DataFrame, metric: str = "tokens_per_s") -> pd.DataFrame:
    """Per model and attention backend: `metric` without and with `torch.compile`, and their ratio."""
    table = grid(df, metric, ["model", "attention"], "compile").rename(columns={"False": "off", "True": "on"})
    if {"off", "on"} <= set(table.columns):
        table["on / off"] = _ratio(table["on"], table["off"])
    return table


def oom_boundary(df: pd.DataFrame) -> pd.DataFrame:
    """Where memory runs out: per model and every other choice the table varies (GPU type and
    count, strategy, attention, compile, sequence length), the largest per-device batch that ran
    ok, its peak memory, and the smallest batch that ran out of memory."""
    keys = ["model", *(c for c in ("gpu_type", "num_gpus", "strategy", "attention", "compile", "seq_len")
                       if df[c].nunique(dropna=False) > 1)]
    trials = df[df["status"].isin(("ok", "oom"))]
    rows = []
    for key, part in trials.groupby(keys, sort=False, dropna=False):
        ok = part[part["status"] == "ok"]
        largest = ok.loc[ok["per_device_batch"].idxmax()] if len(ok) else None
        oom = part.loc[part["status"] == "oom", "per_device_batch"]
        rows.append({
            **dict(zip(keys, key)), "largest ok batch": largest["per_device_batch"] if largest is not None else None,
            "its peak GiB": largest["peak_mem_gb"] if largest is not None else None,
            "smallest OOM batch": oom.min() if len(oom) else None,
        })
    table = pd.DataFrame(rows, columns=[*keys, "largest ok batch", "its peak GiB", "smallest OOM batch"])
    return sort_by_model(table, df, *keys[1:])


def _smallest_batch(values: pd.Series, test) -> int | None:
    """The smallest batch (`values` indexed by batch, as text) whose value passes `test`."""
    return next((int(b) for b in sorted(values.index, key=int) if test(values[b])), None)


def key_findings(df: pd.DataFrame, money: str = "tokens_per_usd", saturation: float = 0.95) -> pd.DataFrame:
    """One line per model, and per GPU type where the table has several (a batch that runs out of
    memory on one GPU fits on a larger one, so mixing them would blur every column); see
    `_key_findings_one_gpu` for the columns."""
    if not mixes_gpu_types(df):
        return _key_findings_one_gpu(df, money, saturation)
    parts = [_key_findings_one_gpu(part, money, saturation).assign(gpu_type=t) for t, part in df.groupby("gpu_type")]
    table = pd.concat(parts, ignore_index=True)
    table = table[["model", "gpu_type", *(c for c in table.columns if c not in ("model", "gpu_type"))]]
    return sort_by_model(table, df, "gpu_type")


def _key_findings_one_gpu(df: pd.DataFrame, money: str, saturation: float) -> pd.DataFrame:
    """One line per model: the paper's questions in numbers, from the trials without compile
    (`without_compile`), with compile's gain where the table has it.

    fused / eager: best fused over best eager tokens/s.  best batch: the batch with the most
    `money`; saturates at: the smallest batch within `saturation` of that.  eager / fused OOM
    from: the smallest batch at which every trial of that kind of attention ran out of memory.
    best MFU: over all trials.  compile on / off: best fused tokens/s with compile over without.
    """
    base = without_compile(df)
    vanilla = base["attention"].isin(VANILLA_ATTENTION)
    attention = attention_effect(base).set_index("model")
    by_batch = batch_effect(base, money).set_index("model").astype(float)
    oom = {name: batch_effect(part, "tokens_per_s").set_index("model").astype(float)
           for name, part in (("eager", base[vanilla]), ("fused", base[~vanilla])) if len(part)}
    mfu = best_over(df, "mfu", "model").set_index("model")["mfu"]
    gain = pd.Series(dtype=float)
    if mixes_compile(df):
        fused = compile_effect(df[~df["attention"].isin(VANILLA_ATTENTION)])
        if {"on", "off"} <= set(fused.columns):
            best = fused.groupby("model")[["on", "off"]].max()
            gain = _ratio(best["on"], best["off"])
    rows = []
    for model in model_order(df):
        values = by_batch.loc[model] if model in by_batch.index else pd.Series(dtype=float)
        top = values.max()
        row = {"model": model}
        if "fused / eager" in attention.columns:
            row["fused / eager"] = attention["fused / eager"].get(model)
        row["best batch"] = _smallest_batch(values, lambda v: v >= top) if top > 0 else None
        row["saturates at"] = _smallest_batch(values, lambda v: v >= saturation * top) if top > 0 else None
        for name, table in oom.items():
            row[f"{name} OOM from"] = _smallest_batch(table.loc[model], lambda v: v == 0) if model in table.index else None
        row["best MFU"] = mfu.get(model)
        if len(gain):
            row["compile on / off (fused)"] = gain.get(model)
        rows.append(row)
    return pd.DataFrame(rows)
