"""`plan_run`: every option of training a model on D tokens from results tables, priced and timed
as a full run, kept or excluded with the reason, as a `Decision`.

A run is longer than a trial: its wall-clock is start-up (once), compile (once, where on),
D / tokens/s of training, and blocking checkpoint saves (`slmray.planning.assumptions`).
Dollars = price per GPU-hour x GPUs x wall-clock hours (`slmray.core.costs`).  Prices: those the
tables recorded (`recorded_prices`), or a profile and overrides (`slmray.cli.price_book`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from slmray.catalog.gpus import CPU, spec_for
from slmray.catalog.prices import Price, PriceBook, PriceWarning
from slmray.core.costs import trial_cost_usd
from slmray.errors import ConfigError
from slmray.planning.assumptions import PlanError, RunAssumptions
from slmray.planning.options import candidates, fit_table_corrections, with_row_defaults, with_speeds
from slmray.predict.calibration import Correction
from slmray.train.config import ModelConfig
from slmray.train.presets import get_model

RECORDED = "recorded"
"""Price profile name of the prices the tables recorded (the sweep's --prices)."""


@dataclass
class Decision:
    """What `plan_run` found: every option, and how its tokens/s was obtained."""

    model: str
    n_params: int
    tokens: float
    options: pd.DataFrame
    """One row per option: configuration, tokens_per_s, source (measured/predicted), basis,
    hours, gpu_hours, usd, excluded (reason or "")."""
    corrections: dict[str, Correction]
    assumptions: RunAssumptions
    deadline_h: float | None = None
    budget_usd: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def eligible(self) -> pd.DataFrame:
        return self.options[self.options["excluded"] == ""]


def recorded_prices(df: pd.DataFrame) -> PriceBook:
    """The per-GPU-hour prices the tables recorded (price_per_hour_usd / num_gpus), per GPU type;
    where a type has several, the most common."""
    priced = df.dropna(subset=["price_per_hour_usd", "gpu_type"])
    prices = {}
    for gpu, part in priced.groupby("gpu_type"):
        per_gpu = (part["price_per_hour_usd"].astype(float) / part["num_gpus"].astype(float)).round(6)
        usd = float(per_gpu.mode().iloc[0])
        sources = part["price_source"].dropna() if "price_source" in part else []
        source = str(sources.mode().iloc[0]) if len(sources) else "recorded in the results table"
        prices[gpu] = Price(gpu, usd, source)
    return PriceBook(RECORDED, prices)


def check_model(model: str | ModelConfig) -> ModelConfig:
    """`model`'s shape: a ModelConfig as it is, a name through `slmray.train.presets.get_model`;
    a PlanError naming --model where it resolves to none."""
    if isinstance(model, ModelConfig):
        return model
    try:
        return get_model(model)
    except ConfigError as exc:
        raise PlanError(f"--model: {str(exc).removeprefix('model: ')}") from None


def plan_run(
    df: pd.DataFrame, model: str | ModelConfig, tokens: float, book: PriceBook, assumptions: RunAssumptions,
    gpu_types: Sequence[str] | None = None, max_gpus: int = 8, deadline_h: float | None = None,
    budget_usd: float | None = None,
) -> Decision:
    """Every option of training `model` (a name, or its shape) on `tokens` tokens, from the results
    frame `df`, whose rows of the model carry its name.

    Raises PlanError for a model or GPU type it cannot plan, or no price for any option.
    """
    config = check_model(model)
    model = config.name
    if not (isinstance(tokens, (int, float)) and math.isfinite(tokens) and tokens > 0):
        raise PlanError(f"--tokens: must be a positive number of tokens, got {tokens!r}")
    if max_gpus < 1:
        raise PlanError(f"--max-gpus: must be at least 1, got {max_gpus}")
    for name, value in (("--deadline-hours", deadline_h), ("--budget-usd", budget_usd)):
        if value is not None and not value > 0:
            raise PlanError(f"{name}: must be positive, got {value}")
    df = with_row_defaults(df)
    rows = df[df["model"] == model]
    if rows.empty:
        raise PlanError(f"--model: {model} has no trial in the tables (they have: "
                        f"{', '.join(sorted(df['model'].dropna().unique())) or 'no trials'})")
    if gpu_types:
        for g in gpu_types:
            if g != CPU and spec_for(g) is None:
                raise PlanError(f"--gpu-types: {g!r} is not in gpus.csv")
        gpu_types = [g if g == CPU else spec_for(g).gpu for g in gpu_types]
    else:
        gpu_types = sorted(df["gpu_type"].dropna().unique())
    n_params = config.num_params
    corrections = fit_table_corrections(df)
    options = with_speeds(candidates(rows, gpu_types, max_gpus), config, rows, corrections)
    if options.empty:
        raise PlanError(f"--gpu-types: no option to plan {model} on {', '.join(gpu_types) or 'no GPU type'} "
                        "(the tables' configurations of it neither ran there nor can be predicted there)")
    options = priced(options, book, gpu_types, tokens, n_params, assumptions)
    options = options.assign(excluded=exclusions(options, book, deadline_h, budget_usd))
    options = options.sort_values(["usd", "hours"], na_position="last", kind="stable")
    notes = []
    if (options["num_gpus"] > 1).any() and not (df["num_gpus"] > 1).any():
        notes.append("No table measures more than one GPU: every multi-GPU option is predicted, and its "
                     "communication term (slmray.predict.estimate) has met no multi-GPU measurement yet.")
    return Decision(model, n_params, float(tokens), options.reset_index(drop=True), corrections, assumptions,
                    deadline_h, budget_usd, notes)


def priced(options: pd.DataFrame, book: PriceBook, gpu_types: Sequence[str], tokens: float, n_params: int,
           assumptions: RunAssumptions) -> pd.DataFrame:
    """`options` (with their tokens/s) with usd_per_gpu_hour, hours, gpu_hours and usd of the run.
    A PlanError where no option that fits has a price."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PriceWarning)  # a missing price is reported per option
        prices = {g: book.lookup(g) for g in gpu_types}
    per_gpu_hour = options["gpu_type"].map(lambda g: prices[g].usd_per_gpu_hour if prices[g] else math.nan)
    wall = assumptions.wall_s(tokens / options["tokens_per_s"].to_numpy(dtype=float), options["compile"].to_numpy(), n_params)
    options = options.assign(
        usd_per_gpu_hour=per_gpu_hour, hours=wall / 3600, gpu_hours=wall / 3600 * options["num_gpus"],
        usd=trial_cost_usd(per_gpu_hour * options["num_gpus"], wall),
    )
    fits = options["excluded"] == ""
    if fits.any() and not np.isfinite(options.loc[fits, "usd_per_gpu_hour"]).any():
        missing = ", ".join(g for g in gpu_types if prices[g] is None)
        raise PlanError(f"prices: the {book.profile} prices have none for any option's GPU type ({missing}); "
                        "give --prices PROFILE, --price GPU=USD or --price-file")
    return options


def exclusions(options: pd.DataFrame, book: PriceBook, deadline_h: float | None,
               budget_usd: float | None) -> pd.Series:
    """Why each priced option is out ("" where it is in): its memory or estimate (already in
    `excluded`), no price, over the deadline, over the budget."""
    reasons = options["excluded"].copy()
    no_price = (reasons == "") & ~np.isfinite(options["usd_per_gpu_hour"])
    reasons[no_price] = f"no {book.profile} price"
    ok = reasons == ""
    late = ok & (options["hours"] > deadline_h) if deadline_h is not None else ok & False
    dear = ok & (options["usd"] > budget_usd) if budget_usd is not None else ok & False
    for i in options.index[late | dear]:
        why = [f"over the deadline ({options.at[i, 'hours']:,.1f} h)"] if late[i] else []
        why += [f"over the budget (${options.at[i, 'usd']:,.0f})"] if dear[i] else []
        reasons[i] = ", ".join(why)
    return reasons
