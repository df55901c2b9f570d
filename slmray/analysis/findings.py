"""The seed paper's questions, each answered from a results frame as one small table.

Every cell is `costs.best_over`: the best ok trial for that cell over the per-device batch (the
paper's convention: each setting at its best batch), a cell whose trials all ran out of memory
reading `oom`.  A comparison holds everything else fixed but the compared factor: `row_keys`
gives a row to each configuration the table varies (`CONDITIONS` and compile), so that an H100
figure is never divided by an H200 one, a compiled one by an uncompiled one, nor an FP8 one by a
bf16 one; a row where only one side ran compares nothing and is left out (`comparable`).
Models are listed smallest first.  `key_findings` reads the trials without compile, one line
per model and GPU type.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from slmray.analysis.costs import best_over
from slmray.analysis.table import model_order, sort_by_model
from slmray.train.config import CONFIG_KEYS, ROW_DEFAULTS, is_fp8

VANILLA_ATTENTION = ("eager", "sdpa-math")
"""Attention that materialises the T x T scores, the paper's "vanilla"; the rest are fused."""
OOM = "oom"
"""A cell whose trials all ran out of memory (a number there would read as a measurement)."""
_LEADING = ("gpu_type", "num_gpus", "strategy", "seq_len")
CONDITIONS = (*_LEADING, *(k for k in CONFIG_KEYS if k not in ("model", "per_device_batch", "compile", "attention",
                                                                *_LEADING)), "attention")
"""What a comparison holds fixed where the table varies it, besides compile (`row_keys`): every
configuration key (`CONFIG_KEYS`) but the model, the compared one and the per-device batch (each
cell at its best batch, the paper's convention).  A Transformers run is never divided by a native
one, an FP8 run by a bf16 one, sdpa at batch 16 by eager at 8 in a batch table."""
ROW_ORDER = (*CONDITIONS, "compile")
"""What a per-model table's rows sort by after the model, those of them it has."""


def _by_model(table: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    return sort_by_model(
        table, df, *(c for c in ROW_ORDER if c in table.columns)
    )


def mixes_compile(df: pd.DataFrame) -> bool:
    """Whether the table has trials with and without `torch.compile`."""
    return df["compile"].fillna(False).astype(bool).nunique() > 1


def mixes_gpu_types(df: pd.DataFrame) -> bool:
    """Whether the table has trials on more than one GPU type."""
    return df["gpu_type"].nunique() > 1


def varies_gpu_count(df: pd.DataFrame) -> bool:
    """Whether some configuration ran on more than one GPU count (else a scaling table has nothing to compare)."""
    keys = [k for k in row_keys(df, "gpu_type", compared="num_gpus") if k in df.columns]
    ran = df[df["status"].isin(("ok", "oom"))]
    return bool(len(ran)) and bool((ran.groupby(keys, dropna=False)["num_gpus"].nunique() > 1).any())


def nothing_compared(df: pd.DataFrame, compared: str) -> str:
    """Why a comparison of `compared` has no rows, in words a report or notebook shows in place of
    an empty table: the table has one value of it, or no two trials differ in it alone."""
    ran = df[df["status"].isin(("ok", "oom"))] if "status" in df.columns else df
    if not len(ran):
        return "no trial ran"
    if compared not in ran.columns:
        return f"the table has no {compared} column"
    values = ran[compared].dropna().unique()
    if not len(values) and compared in ROW_DEFAULTS:  # a table from before the column: its default
        values = [ROW_DEFAULTS[compared]]
    if len(values) == 1:
        value = values[0]
        if isinstance(value, (bool, np.bool_)):  # compile, activation checkpointing: as the tables write them
            value = "on" if value else "off"
        return f"every trial that ran has {compared} {value}"
    return f"no two trials differ in {compared} alone, at the settings a row holds fixed"


def shown(df: pd.DataFrame, compared: str, table: pd.DataFrame) -> pd.DataFrame | None:
    """A notebook cell's comparison: `table`, or where it has no rows the line saying why, printed."""
    if len(table):
        return table
    print(f"not shown: {nothing_compared(df, compared)}")
    return None


def _varies(df: pd.DataFrame, column: str) -> bool:
    """Whether some model's trials differ in `column` (the GPU type: whether the table has several)."""
    if column == "gpu_type":
        return mixes_gpu_types(df)
    if column not in df.columns or df.empty:
        return False
    return bool((df.groupby("model")[column].nunique() > 1).any())


def row_keys(df: pd.DataFrame, *keys: str, gpu_type: bool = True, compared: str | None = None) -> list[str]:
    """Row keys for a per-model table comparing `compared`: the model, each of `CONDITIONS` the
    table varies (the GPU type only with `gpu_type`), `keys`, and compile where the table mixes
    it.  A row each holds everything but `compared` and the per-device batch fixed, so that every
    ratio on a row is like for like."""
    skip = {compared, *([] if gpu_type else ["gpu_type"])}
    fixed = [c for c in CONDITIONS if c not in skip and (c in keys or _varies(df, c))]
    rest = [k for k in keys if k not in fixed]
    tail = ["compile"] if mixes_compile(df) and compared != "compile" and "compile" not in keys else []
    return ["model", *fixed, *rest, *tail]


def without_compile(df: pd.DataFrame) -> pd.DataFrame:
    """The trials without compile where the table mixes both; else all of them."""
    return df[~df["compile"].fillna(False).astype(bool)] if mixes_compile(df) else df


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """numerator / denominator, unknown where the denominator is 0 (every trial out of memory)."""
    return numerator.astype(float) / denominator.astype(float).where(denominator > 0)


def _grid(
    df: pd.DataFrame, metric: str, rows: Sequence[str], column: str, maximize: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`grid`'s numbers (out of memory as `best_over` scores it, 0 or inf) and a frame of the
    same shape, True where every trial of the cell ran out of memory."""
    best = best_over(df, metric, [*rows, column], maximize)
    best[column] = best[column].astype(object).where(best[column].notna(), "unknown")
    oom_value = 0.0 if maximize else math.inf
    best["_oom"] = best["row"].isna() & (best[metric] == oom_value)
    tables = []
    for values in (metric, "_oom"):
        table = best.pivot(index=list(rows), columns=column, values=values)
        table = table.reindex(columns=sorted(table.columns, key=lambda c: (isinstance(c, str), c)))  # labels, even bools
        table.columns = [str(c) for c in table.columns]
        tables.append(_by_model(table.reset_index(), df))
    values, oom = tables
    oom = oom.assign(**{c: False for c in rows}).fillna(False).astype(bool)
    return values, oom


def _mark_oom(values: pd.DataFrame, oom: pd.DataFrame) -> pd.DataFrame:
    """`values` with `OOM` in the cells `oom` flags (columns `oom` lacks, such as ratios, kept)."""
    out = values.copy()
    for c in oom.columns:
        if oom[c].any():
            out[c] = out[c].astype(object).where(~oom[c], OOM)
    return out


def grid(df: pd.DataFrame, metric: str, rows: Sequence[str], column: str, maximize: bool = True) -> pd.DataFrame:
    """`metric` with `rows` down and the values of `column` across, best over the rest; `OOM`
    where every trial of a cell ran out of memory."""
    return _mark_oom(*_grid(df, metric, rows, column, maximize))


def held_fixed(df: pd.DataFrame, compared: str | None) -> list[str]:
    """The configuration keys a comparison of `compared` holds equal where the table varies them
    (`row_keys` without the model; with None, all of them), for a report to say so."""
    return [k for k in row_keys(df, compared=compared) if k not in ("model", compared)]


def comparable(table: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The rows of a comparison table with a value (a number or `OOM`) in at least two of
    `columns`: a row with one side alone compares nothing, so it is not printed."""
    if len(columns) < 2:
        return table.iloc[0:0]
    present = table[list(columns)].notna().sum(axis=1) >= 2
    return table[present].reset_index(drop=True)


def attention_effect(df: pd.DataFrame, metric: str = "tokens_per_s", rows: Sequence[str] = ("model",)) -> pd.DataFrame:
    """Per model (or `rows`): each attention backend, and the best fused backend over eager."""
    table, oom = _grid(df, metric, rows, "attention")
    fused = [c for c in table.columns if c not in (*rows, *VANILLA_ATTENTION)]
    if "eager" in table.columns and fused:
        table["fused / eager"] = _ratio(table[fused].max(axis=1), table["eager"])
    return comparable(_mark_oom(table, oom), [c for c in table.columns if c not in (*rows, "fused / eager")])


def strategy_effect(
    df: pd.DataFrame, metric: str = "tokens_per_s", rows: Sequence[str] = ("model", "num_gpus")
) -> pd.DataFrame:
    """Per model and GPU count (or `rows`): each parallelism strategy, and the best FSDP over DDP."""
    table, oom = _grid(df, metric, rows, "strategy")
    fsdp = [c for c in table.columns if c.startswith("fsdp")]
    if "ddp" in table.columns and fsdp:
        table["fsdp / ddp"] = _ratio(table[fsdp].max(axis=1), table["ddp"])
    return comparable(_mark_oom(table, oom), [c for c in table.columns if c not in (*rows, "fsdp / ddp")])


def gpu_scaling(df: pd.DataFrame) -> pd.DataFrame:
    """Tokens/s and tokens/$ by GPU count, per model and GPU type (and strategy, sequence length
    and compile where the table varies them), with the scaling efficiency.

    Efficiency at n GPUs: tokens/s over n times the per-GPU tokens/s at the smallest count run
    with the same everything else (1.0 is linear scaling).  No rows where no configuration ran on
    two GPU counts: efficiencies of 1.0 would compare nothing.
    """
    if not varies_gpu_count(df):
        return pd.DataFrame()
    group = row_keys(df, "gpu_type", compared="num_gpus")
    keys = [*group, "num_gpus"]
    speed = best_over(df, "tokens_per_s", keys)
    every_oom = speed.pop("row").isna() & (speed["tokens_per_s"] == 0)
    cost = best_over(df, "tokens_per_usd", keys).drop(columns="row")
    table = speed.assign(_oom=every_oom).merge(cost, on=keys)
    base = table[~table["_oom"]].sort_values("num_gpus").drop_duplicates(group)
    base = base.assign(per_gpu=base["tokens_per_s"] / base["num_gpus"])[[*group, "per_gpu"]]
    table = table.merge(base, on=group, how="left")
    table["scaling_efficiency"] = table["tokens_per_s"] / (table["num_gpus"] * table.pop("per_gpu"))
    table["scaling_efficiency"] = table["scaling_efficiency"].where(~table["_oom"])
    oom = table.pop("_oom")
    for metric in ("tokens_per_s", "tokens_per_usd"):
        table[metric] = table[metric].astype(object).where(~oom, OOM)
    return _by_model(table, df)


def batch_effect(df: pd.DataFrame, metric: str = "tokens_per_usd", rows: Sequence[str] = ("model",)) -> pd.DataFrame:
    """Per model (or `rows`): `metric` at each per-device batch size."""
    return grid(df, metric, rows, "per_device_batch")


def gpu_type_effect(df: pd.DataFrame, metric: str = "tokens_per_usd", rows: Sequence[str] = ("model",)) -> pd.DataFrame:
    """Per model (or `rows`): `metric` on each GPU type, and which type is best; with more than
    one type, each type's value over the best (the paper's question: is the dearest GPU the most
    cost-efficient?)."""
    table, oom = _grid(df, metric, rows, "gpu_type")
    types = [c for c in table.columns if c not in rows]
    if len(types) > 1:
        values = table[types].astype(float)
        # a row with one type's value (oom counts) compares nothing; one where all ran out of memory has no best
        compared = (values.notna().sum(axis=1) > 1) & (values.max(axis=1) > 0)
        best = pd.Series(None, index=values.index, dtype=object)  # idxmax refuses a row with no value (no price)
        best[compared] = values[compared].idxmax(axis=1)
        table["best"] = best
        for t in types:  # out of memory has no ratio (the cell says oom), not 0
            table[f"{t} / best"] = (values[t] / values.max(axis=1)).where(compared & ~oom[t])
    return comparable(_mark_oom(table, oom), types)


def compile_effect(df: pd.DataFrame, metric: str = "tokens_per_s", rows: Sequence[str] | None = None) -> pd.DataFrame:
    """Per model and attention backend (and each of `row_keys`'s conditions the table varies, or
    `rows`): `metric` without and with `torch.compile`, and their ratio."""
    rows = list(rows) if rows is not None else row_keys(df, "attention", compared="compile")
    table, oom = _grid(df, metric, rows, "compile")
    table, oom = (t.rename(columns={"False": "off", "True": "on"}) for t in (table, oom))
    if {"off", "on"} <= set(table.columns):
        table["on / off"] = _ratio(table["on"], table["off"])
    return comparable(_mark_oom(table, oom), [c for c in ("off", "on") if c in table.columns])


def oom_boundary(df: pd.DataFrame) -> pd.DataFrame:
    """Where memory runs out: per model and every other choice the table varies (GPU type and
    count, strategy, backend, loss kernel, attention, compile, sequence length), the largest
    per-device batch that ran ok, its peak memory, and the smallest batch that ran out of memory."""
    # the sequence length last: the column the table gained last
    choices = [c for c in ROW_ORDER if c != "seq_len"] + ["seq_len"]
    keys = ["model", *(c for c in choices if c in df.columns and df[c].nunique(dropna=False) > 1)]
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


def _at_best(table: pd.DataFrame, columns: Sequence[str], ratio: str) -> pd.Series:
    """Per model, `ratio` on the row with the highest value in `columns` among those that have
    the ratio: a like-for-like ratio (one row holds everything else fixed) at the best setting."""
    if ratio not in table.columns or not len(columns):  # one side never ran: nothing to compare
        return pd.Series(dtype=float)
    best = table[list(columns)].apply(pd.to_numeric, errors="coerce").max(axis=1)
    rows = table.assign(_best=best)[table[ratio].notna() & best.notna()]
    return rows.sort_values("_best", ascending=False).drop_duplicates("model").set_index("model")[ratio]


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
    (`without_compile`), with compile's gain where the table has it.  Every ratio and every
    batch column is like for like (one row of `row_keys` each).

    fused / eager: fused over eager tokens/s, each at its best batch, with everything else as
    where fused is fastest.  best batch: the batch with the most `money`; saturates at: the
    smallest batch within `saturation` of that, at the best batch's configuration.  eager / fused
    OOM from: the smallest batch at which every trial of that kind of attention ran out of memory.
    best MFU: over the bf16 trials, against the BF16 peak; where the table has FP8 trials, the
    best FP8 one against the FP8 peak and, beside it, the same run against the BF16 peak.
    compile on / off: fused tokens/s with compile over without, at the configuration where
    compiled fused attention is fastest.
    """
    base = without_compile(df)
    vanilla = base["attention"].isin(VANILLA_ATTENTION)
    rows = row_keys(base, compared="attention")
    attention = attention_effect(base, rows=rows)
    fused_columns = [c for c in attention.columns if c not in (*rows, *VANILLA_ATTENTION, "fused / eager")]
    speedup = _at_best(attention, fused_columns, "fused / eager")
    batches = _grid(base, money, row_keys(base, compared="per_device_batch"), "per_device_batch")[0]
    oom = {name: _grid(part, "tokens_per_s", ["model"], "per_device_batch")[0].set_index("model").astype(float)
           for name, part in (("eager", base[vanilla]), ("fused", base[~vanilla])) if len(part)}
    fp8 = df["precision"].map(is_fp8) if "precision" in df.columns else pd.Series(False, index=df.index)
    mfu = best_over(df[~fp8], "mfu", "model").set_index("model")["mfu"]
    fp8_mfu = best_over(df[fp8], "mfu_fp8", "model").set_index("model") if fp8.any() else None
    gain = pd.Series(dtype=float)
    if mixes_compile(df):
        fused = compile_effect(df[~df["attention"].isin(VANILLA_ATTENTION)])
        if {"on", "off"} <= set(fused.columns):
            gain = _at_best(fused, ["on"], "on / off")
    out = []
    for model in model_order(df):
        values = _best_row_values(batches, model)
        top = values.max()
        row = {"model": model}
        if "fused / eager" in attention.columns:
            row["fused / eager"] = speedup.get(model)
        row["best batch"] = _smallest_batch(values, lambda v: v >= top) if top > 0 else None
        row["saturates at"] = _smallest_batch(values, lambda v: v >= saturation * top) if top > 0 else None
        for name, table in oom.items():
            row[f"{name} OOM from"] = _smallest_batch(table.loc[model], lambda v: v == 0) if model in table.index else None
        if fp8_mfu is None:
            row["best MFU"] = mfu.get(model)
        else:
            row["best MFU, bf16 (BF16 peak)"] = mfu.get(model)
            best = fp8_mfu.loc[model] if model in fp8_mfu.index else None
            row["best MFU, FP8 (FP8 peak)"] = best["mfu_fp8"] if best is not None else None
            at = best["row"] if best is not None else None
            row["that FP8 run, BF16-equivalent"] = df.at[at, "mfu"] if at is not None and pd.notna(at) else None
        if len(gain):
            row["compile on / off (fused)"] = gain.get(model)
        out.append(row)
    return pd.DataFrame(out)


def _best_row_values(table: pd.DataFrame, model: str) -> pd.Series:
    """A model's values by batch (columns as text) on the row of `table` that holds its best value:
    one configuration, so that a jump between batches is the batch's, not another setting's."""
    part = table[table["model"] == model]
    columns = [c for c in part.columns if c.isdigit()]
    if part.empty or not columns:
        return pd.Series(dtype=float)
    values = part[columns].apply(pd.to_numeric, errors="coerce")
    best = values.max(axis=1)
    if not best.notna().any():
        return values.iloc[0]
    return values.loc[best.idxmax()]


def precision_effect(df: pd.DataFrame) -> pd.DataFrame:
    """bf16 against FP8 like with like: per model, GPU type, batch, sequence length, attention,
    activation checkpointing and compile (those a row holds fixed), tokens/s in each precision,
    each FP8 recipe over bf16, and peak memory (GiB) in each.  No rows where the table has no FP8
    trial.  A table from before the `precision` column (null) ran in bf16."""
    if "precision" not in df.columns:
        return pd.DataFrame()
    df = df.assign(precision=df["precision"].fillna(ROW_DEFAULTS["precision"]))
    if not df["precision"].map(is_fp8).any():
        return pd.DataFrame()
    keys = [k for k in ("activation_checkpointing", "compile") if k in df.columns and df[k].nunique() > 1]
    rows = row_keys(df, "gpu_type", "per_device_batch", "seq_len", "attention", *keys, compared="precision")
    rows = list(dict.fromkeys(rows))
    speed, speed_oom = _grid(df, "tokens_per_s", rows, "precision")
    memory, _ = _grid(df, "peak_mem_gb", rows, "precision", maximize=False)
    recipes = [c for c in speed.columns if c not in rows and c != "bf16"]
    if "bf16" in speed.columns:
        for r in recipes:
            speed[f"{r} / bf16"] = _ratio(speed[r], speed["bf16"])
    speed = _mark_oom(speed, speed_oom)
    for c in [c for c in memory.columns if c not in rows]:
        speed[f"GiB {c}"] = memory[c].where(memory[c] < math.inf)
    tried = speed_oom[recipes].any(axis=1) | speed[recipes].apply(pd.to_numeric, errors="coerce").notna().any(axis=1)
    return speed[tried].reset_index(drop=True)  # configurations run in bf16 alone compare nothing here
