"""The options a results frame supports for one model, and each one's tokens/s.

Options are the configurations of the model that the tables ran (per-device batch, attention,
compile, precision, ...), on each GPU type of the tables (or those asked for), at 1, 2, 4, ...
`max_gpus` GPUs, with DDP or FSDP beyond one GPU.  An option a table measured (same GPU type,
count, strategy and configuration) takes the measured tokens/s and is `measured`; every other one
is `predicted`: `slmray.predict.estimate`, anchored on the measurements (`slmray.predict.calibration`):
times the measured-over-predicted factor of the same configuration on the same GPU type where a
table ran it, else the correction of the GPU type's rows in the option's regime, else of all rows
(each only where it beat no correction by leave-one-out).  An option the estimator (or a table)
finds out of memory is excluded.  Each function takes and returns frames; a row becomes a
`TrainConfig` only through `TrainConfig.from_row`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Sequence

import pandas as pd

from slmray.catalog.gpus import CPU, spec_for
from slmray.errors import ConfigError
from slmray.predict.calibration import POOLED, Correction, Regime, fit_anchor, fit_corrections
from slmray.predict.estimate import Estimate, estimate
from slmray.train.config import CONFIG_KEYS, ROW_DEFAULTS, ModelConfig, TrainConfig
from slmray.train.presets import get_model

MULTI_GPU_STRATEGIES = ("ddp", "fsdp")
PLACEMENT = ("gpu_type", "num_gpus", "strategy")
"""Where an option runs: what the planner varies beyond the configurations the tables ran."""
CONFIG = (*(k for k in CONFIG_KEYS if k not in ("model", *PLACEMENT)), "grad_accum")
"""What an option shares with the trial it is anchored on: the work of one device's step (the
configuration's identity less the model and the placement; grad_accum, not swept, too)."""
OPTION = (*PLACEMENT, *CONFIG)
SPEED = ("tokens_per_s", "source", "basis", "excluded")
"""What `speeds` adds to each option: tokens/s, measured or predicted, how it was obtained, and
why the option is excluded ("" where it is not)."""


def with_row_defaults(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with `ROW_DEFAULTS` in the nulls (or absent columns) of older tables and CONFIG's
    integer and flag columns as such, so that rows and options compare column by column."""
    out = df.copy()
    for name, value in ROW_DEFAULTS.items():
        out[name] = out[name].fillna(value) if name in out.columns else value
    return out.astype({"per_device_batch": int, "seq_len": int, "num_gpus": int, "grad_accum": int,
                       "compile": bool, "activation_checkpointing": bool})


def model_configs(names: Iterable[str]) -> dict[str, ModelConfig]:
    """Each name `slmray.train.presets.get_model` resolves, with its shape; the others are left out
    (a row of a model whose shape cannot be rebuilt can be neither predicted nor planned)."""
    out = {}
    for name in dict.fromkeys(names):
        try:
            out[name] = get_model(name)
        except ConfigError:
            continue
    return out


def estimate_row(model: ModelConfig, row, gpu_type: str, num_gpus: int) -> Estimate:
    """The estimator's prediction of a table row or an option on `num_gpus` GPUs of `gpu_type`.
    A ValueError (a ConfigError among them) where it cannot be configured or estimated."""
    return estimate(TrainConfig.from_row(row, model), gpu_type, num_gpus)


def fit_table_corrections(df: pd.DataFrame) -> dict[str, Correction]:
    """Per GPU type (and pooled), from every ok row of `df` on a GPU of gpus.csv whose model's
    shape is known: the estimator's uncorrected prediction recomputed now against the measurement,
    with the row's regime (the correction can bend with it).  Multi-GPU rows count like the others."""
    df = with_row_defaults(df)
    models = model_configs(df["model"].dropna())
    rows = df[(df["status"] == "ok") & df["model"].isin(list(models))
              & df["gpu_type"].map(lambda g: isinstance(g, str) and spec_for(g) is not None)]
    triples = []
    for _, r in rows.iterrows():
        try:
            predicted = estimate_row(models[r["model"]], r, r["gpu_type"], int(r["num_gpus"])).tokens_per_s
        except ValueError:  # a configuration the estimator does not model: it cannot be corrected either
            continue
        triples.append((r["gpu_type"], predicted, float(r["tokens_per_s"]), Regime.of(r)))
    return fit_corrections(triples)


def gpu_counts(max_gpus: int, measured: Sequence[int]) -> list[int]:
    """1, 2, 4, ... up to `max_gpus`, and every measured count within it."""
    counts = {1 << i for i in range(max_gpus.bit_length()) if 1 << i <= max_gpus}
    return sorted(counts | {n for n in measured if n <= max_gpus})


def candidates(rows: pd.DataFrame, gpu_types: Sequence[str], max_gpus: int) -> pd.DataFrame:
    """Every (GPU type, count, strategy, configuration) to consider, from `rows` (one model's,
    `with_row_defaults`), one per row with the OPTION columns."""
    configs = rows[list(CONFIG)].drop_duplicates()
    one_gpu = sorted(set(rows.loc[rows["num_gpus"] == 1, "strategy"])) or ["ddp"]
    multi = sorted((set(MULTI_GPU_STRATEGIES) | set(rows.loc[rows["num_gpus"] > 1, "strategy"])) - {"single"})
    out = []
    for gpu in gpu_types:
        measured = rows.loc[rows["gpu_type"] == gpu, "num_gpus"].tolist()
        # the CPU estimate is deliberately rough: offer only what was measured there
        counts = sorted(set(measured)) if gpu == CPU else gpu_counts(max_gpus, measured)
        for n in counts:
            for strategy in (one_gpu if n == 1 else multi):
                for c in configs.to_dict("records"):
                    out.append({"gpu_type": gpu, "num_gpus": n, "strategy": strategy, **c})
    return pd.DataFrame(out, columns=list(OPTION))


def anchor(model: ModelConfig, ok_rows: pd.DataFrame, gpu_type: str) -> Correction:
    """The correction from `ok_rows` (one configuration on one GPU type, any count or strategy)."""
    pairs = []
    for _, r in ok_rows.iterrows():
        try:
            pairs.append((estimate_row(model, r, gpu_type, int(r["num_gpus"])).tokens_per_s, float(r["tokens_per_s"])))
        except ValueError:
            continue
    return fit_anchor(gpu_type, pairs)


def speed(model: ModelConfig, o, rows: pd.DataFrame, corrections: dict[str, Correction]) -> tuple[float, str, str, str]:
    """(tokens/s, measured or predicted, how it was obtained, why excluded or "") of option `o`
    (a row of `candidates`), from `rows`, the model's rows of the tables (`with_row_defaults`)."""
    same_config = (rows[list(CONFIG)] == pd.Series({c: o[c] for c in CONFIG})).all(axis=1)
    on_gpu = rows["gpu_type"] == o["gpu_type"]
    exact = rows[same_config & on_gpu & (rows["num_gpus"] == o["num_gpus"]) & (rows["strategy"] == o["strategy"])]
    ok = exact[exact["status"] == "ok"]
    if len(ok):
        return float(ok["tokens_per_s"].median()), "measured", f"{len(ok)} trial{'s' * (len(ok) > 1)}", ""
    if (exact["status"] == "oom").any():
        return math.nan, "measured", "", "out of memory (measured)"
    if o["gpu_type"] == CPU:  # the CPU estimate is too rough to offer what was not measured
        return math.nan, "predicted", "", "not measured (no estimate on the CPU)"
    try:
        est = estimate_row(model, o, o["gpu_type"], int(o["num_gpus"]))
    except ValueError as exc:  # a configuration the estimator (or the GPU) cannot take
        return math.nan, "predicted", "", f"no estimate ({exc})"
    if est.oom:
        return math.nan, "predicted", "", f"out of memory (predicted {est.peak_mem_gb:.0f} of {est.capacity_gb:.0f} GiB)"
    anchor_rows = rows[same_config & on_gpu & (rows["status"] == "ok")]
    c = anchor(model, anchor_rows, o["gpu_type"]) if len(anchor_rows) else None
    regime = dataclasses.replace(Regime.of(o), model=model.name)
    if c is not None and c.rows:
        label = f"x{c.factor:.3f}, this configuration's {c.rows} trial{'s' * (c.rows > 1)}"
    elif o["gpu_type"] in corrections:  # the GPU type's own trials, corrected or (none beat none) not
        c = corrections[o["gpu_type"]]
        if not c.rows:
            return est.tokens_per_s, "predicted", f"uncorrected (no correction beat none on {c.observed} trials)", ""
        label = f"x{c.multiplier(regime):.3f} ({c.kind}), {o['gpu_type']}'s {c.rows} trials"
    elif POOLED in corrections and corrections[POOLED].rows:
        c = corrections[POOLED]
        label = f"x{c.multiplier(regime):.3f} ({c.kind}), all {c.rows} trials (no {o['gpu_type']} trial)"
    else:
        return est.tokens_per_s, "predicted", "uncorrected (no correction from the trials given)", ""
    return c.apply(est.tokens_per_s, regime), "predicted", label, ""


def with_speeds(options: pd.DataFrame, model: ModelConfig, rows: pd.DataFrame,
                corrections: dict[str, Correction]) -> pd.DataFrame:
    """`options` with the SPEED columns, one `speed` per option."""
    speeds = [speed(model, o, rows, corrections) for _, o in options.iterrows()]
    return options.assign(**{k: [sp[i] for sp in speeds] for i, k in enumerate(SPEED)})
