"""`plan_run`: every option of training a model on D tokens from results tables, priced and timed
as a full run, kept or excluded with the reason, as a `Decision`.

A run is longer than a trial: its wall-clock is start-up (once), compile (once, where on),
D / tokens/s of training, and blocking checkpoint saves (`slmray.planning.assumptions`).
Dollars = the hourly price of the instances that hold the GPUs, idle ones included
(`slmray.catalog.rent`; per GPU with --per-gpu-pricing) x wall-clock hours (`slmray.core.costs`).  Prices: those the
tables recorded (`recorded_prices`), or a profile and overrides (`slmray.cli.price_book`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from slmray.catalog.gpus import GPUNameError, named_gpu
from slmray.catalog.prices import Price, PriceBook, PriceWarning, catalog
from slmray.core.costs import trial_cost_usd
from slmray.errors import ConfigError
from slmray.planning.assumptions import PlanError, RunAssumptions
from slmray.planning.levers import levers
from slmray.planning.options import CONFIG, candidates, fit_table_corrections, with_row_defaults, with_speeds
from slmray.planning.rank import DEFAULT_OBJECTIVES, DEFAULT_TOLERANCE, OBJECTIVES, ranked
from slmray.predict.calibration import Correction
from slmray.train.config import ModelConfig, config_label
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
    """One row per option, in rank order: configuration, rental (`options.RENTAL`), tokens_per_s
    and its interval, source (measured/predicted), basis, hours, gpu_hours, usd, usd_per_btok,
    excluded (reason or "")."""
    corrections: dict[str, Correction]
    assumptions: RunAssumptions
    deadline_h: float | None = None
    budget_usd: float | None = None
    notes: list[str] = field(default_factory=list)
    given: str = ""
    """The model as the user named it (a preset, a config.json path, a hub id)."""
    predicted_only: bool = False
    """No row of the model: every option is predicted."""
    seq_len: int | None = None
    per_gpu: bool = False
    """Billed per GPU (--per-gpu-pricing, or prices that name no instance), not by the instances
    that hold the GPUs."""
    profile: str = ""
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES
    tolerance: float = DEFAULT_TOLERANCE
    levers: dict[str, list[dict]] = field(default_factory=dict)
    """For each limit no option meets ("deadline", "budget"): what would help, with its effect
    (`slmray.planning.levers`)."""

    @property
    def eligible(self) -> pd.DataFrame:
        return self.options[self.options["excluded"] == ""]

    def usd_at(self, o, tokens_per_s: float) -> float:
        """The run's dollars were option `o` to train at `tokens_per_s` (an end of its interval)."""
        wall = float(self.assumptions.wall_s(self.tokens / tokens_per_s, bool(o["compile"]), self.n_params))
        return float(o["usd_per_hour"]) * wall / 3600


def _named_gpu(name: str) -> str:
    """`--gpu-types`' `name` as the catalog names it; a PlanError where it names none."""
    try:
        gpu = named_gpu(name)
    except GPUNameError as exc:
        raise PlanError(f"--gpu-types: {exc}") from None
    if gpu is None:
        raise PlanError(f"--gpu-types: {name!r} is not in gpus.csv")
    return gpu


def recorded_prices(df: pd.DataFrame) -> PriceBook:
    """The prices the tables recorded.  Where every recorded source is a catalog instance of one
    profile (the sweep's --prices), that profile: the planner rents instances as the sweep did.
    Otherwise per GPU-hour, per GPU type (where a type has several, the most common): a catalog
    instance's price per GPU where the source names one (rows record the whole instance since
    prices are rented, one GPU's share before), else price_per_hour_usd / num_gpus (prices given
    per GPU: a price file, an override)."""
    priced = df.dropna(subset=["price_per_hour_usd", "gpu_type"])
    sources = priced["price_source"] if "price_source" in priced else pd.Series([None] * len(priced), index=priced.index)
    entries = {e.price().source: e for e in catalog()}
    known = {entries[s].profile for s in sources.dropna() if s in entries}
    if len(priced) and sources.map(lambda s: s in entries).all() and len(known) == 1:
        return PriceBook.load(known.pop())
    prices = {}
    for gpu, part in priced.groupby("gpu_type"):
        per_gpu = [entries[s].usd_per_gpu_hour if s in entries else p / n
                   for s, p, n in zip(sources[part.index], part["price_per_hour_usd"].astype(float), part["num_gpus"].astype(float))]
        usd = float(pd.Series(per_gpu).round(6).mode().iloc[0])
        found = sources[part.index].dropna()
        prices[gpu] = Price(gpu, usd, str(found.mode().iloc[0]) if len(found) else "recorded in the results table")
    return PriceBook(RECORDED, prices)


def billed_gpu_shares(df: pd.DataFrame) -> bool:
    """Whether every priced row paid its GPUs' share of a catalog instance, some of them of an
    instance holding more GPUs than they used (a sweep on machines it was given, such as one lent
    GPU, bills the GPUs it uses), where `recorded_prices` plans whole instances: the same
    configuration then costs more in a plan."""
    priced = df.dropna(subset=["price_per_hour_usd", "gpu_type"])
    if not len(priced) or "price_source" not in priced:
        return False
    entries = {e.price().source: e for e in catalog()}
    rows = [(entries.get(s), p, n) for s, p, n in zip(priced["price_source"], priced["price_per_hour_usd"].astype(float),
                                                      priced["num_gpus"].astype(int))]
    return all(e is not None and math.isclose(p, e.usd_per_gpu_hour * n, rel_tol=1e-6) for e, p, n in rows) and any(
        e.gpus > n for e, _, n in rows)


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
    budget_usd: float | None = None, *, seq_len: int | None = None, objectives: Sequence[str] = DEFAULT_OBJECTIVES, tolerance: float = DEFAULT_TOLERANCE,
) -> Decision:
    """Every option of training `model` (a name, a config.json path or hub id, or its shape) on
    `tokens` tokens, from the results frame `df`, whose rows of the model carry its name; ranked by
    `objectives` (`slmray.planning.rank`).  `seq_len` keeps the configurations of that sequence
    length (or, where none ran, the model's at that length, predicted).  A model with no row is
    planned from the configurations the tables ran for the others, every option `predicted`.

    Raises PlanError for a model or GPU type it cannot plan, or no price for any option.
    """
    config = check_model(model)
    given = model if isinstance(model, str) else config.name
    model = config.name
    if not (isinstance(tokens, (int, float)) and math.isfinite(tokens) and tokens > 0):
        raise PlanError(f"--tokens: must be a positive number of tokens, got {tokens!r}")
    if max_gpus < 1:
        raise PlanError(f"--max-gpus: must be at least 1, got {max_gpus}")
    for name, value in (("--deadline-hours", deadline_h), ("--budget-usd", budget_usd)):
        if value is not None and not value > 0:
            raise PlanError(f"{name}: must be positive, got {value}")
    if seq_len is not None and not (isinstance(seq_len, int) and seq_len > 0):
        raise PlanError(f"--seq-len: must be a positive whole number of tokens, got {seq_len!r}")
    unknown = [o for o in objectives if o not in OBJECTIVES]
    if unknown or not objectives:
        raise PlanError(f"--rank-by: {', '.join(unknown) or 'nothing'} is not one of {', '.join(OBJECTIVES)}")
    if not (math.isfinite(tolerance) and 0 <= tolerance < 1):
        raise PlanError(f"--tolerance: must be at least 0 and below 1, got {tolerance}")
    df = with_row_defaults(df)
    rows = df[df["model"] == model]
    asked = gpu_types
    if gpu_types:
        gpu_types = [_named_gpu(g) for g in gpu_types]
    else:
        gpu_types = sorted(df["gpu_type"].dropna().unique())
    notes = []
    configs, note = plan_configs(df, rows, model, seq_len)
    notes += [note] if note else []
    n_params = config.num_params
    corrections = fit_table_corrections(df)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PriceWarning)  # a missing price is reported per option
        options = with_speeds(candidates(rows, configs, gpu_types, max_gpus), config, rows, corrections, book)
    if options.empty:
        raise PlanError(f"--gpu-types: no option to plan {model} on {', '.join(gpu_types) or 'no GPU type'} "
                        "(the tables' configurations of it neither ran there nor can be predicted there)")
    options = priced(options, book, gpu_types, tokens, n_params, assumptions)
    options = options.assign(excluded=exclusions(options, book, deadline_h, budget_usd))
    options = ranked(options.sort_values(["usd", "hours"], na_position="last", kind="stable"), objectives, tolerance)
    if (options["num_gpus"] > 1).any() and not (df["num_gpus"] > 1).any():
        notes.append("No table measures more than one GPU: every multi-GPU option is predicted, and its "
                     "communication term (slmray.predict.estimate) has met no multi-GPU measurement yet; "
                     "its speed per GPU is held at or below the one-GPU rate it stands on.")
    options = options.reset_index(drop=True)
    found = levers(options, config, float(tokens), assumptions, book, deadline_h, budget_usd)
    if found.get("deadline"):
        wider = more_gpus_lever(df, config, float(tokens), book, assumptions, asked, max_gpus, deadline_h,
                                seq_len=seq_len, objectives=objectives, tolerance=tolerance)
        if wider:
            nearest = found["deadline"][0]
            found["deadline"].insert(-1, {**wider, "option": nearest["option"], "option_index": nearest["option_index"],
                                          "meets": True})
    return Decision(model, n_params, float(tokens), options, corrections, assumptions,
                    deadline_h, budget_usd, notes, given=given, predicted_only=rows.empty, seq_len=seq_len,
                    per_gpu=book.per_gpu or not (options["instances"] > 0).any(), profile=book.profile, objectives=tuple(objectives), tolerance=tolerance,
                    levers=found)


MORE_GPUS_LEVER_LIMIT = 64
"""The most GPUs the deadline's `more GPUs` lever looks at (the seed paper's largest runs)."""


def more_gpus_lever(df: pd.DataFrame, config: ModelConfig, tokens: float, book: PriceBook, assumptions: RunAssumptions,
                    gpu_types: Sequence[str] | None, max_gpus: int, deadline_h: float, **plan) -> dict | None:
    """The deadline's lever beyond --max-gpus: the plan at twice, four times... the count (the last
    try at `MORE_GPUS_LEVER_LIMIT`), and in the first that has one, its best-ranked option on more
    than `max_gpus` GPUs that meets the deadline; None where none does.  `gpu_types` as the user
    gave them (None: the tables')."""
    n = max_gpus
    while n < MORE_GPUS_LEVER_LIMIT:
        n = min(2 * n, MORE_GPUS_LEVER_LIMIT)
        wider = plan_run(df, config, tokens, book, assumptions, gpu_types, n, **plan).eligible
        meets = wider[(wider["hours"] <= deadline_h) & (wider["num_gpus"] > max_gpus)]
        if len(meets):
            o = meets.iloc[0]
            return {"lever": "more GPUs", "change": f"--max-gpus {n}: {config_label(o, model=False)} ({o['rental'] or 'per GPU'})",
                    "tokens_per_s": float(o["tokens_per_s"]), "hours": float(o["hours"]), "usd": float(o["usd"]),
                    "tokens": tokens, "source": o["source"]}
    return None


def plan_configs(df: pd.DataFrame, rows: pd.DataFrame, model: str, seq_len: int | None) -> tuple[pd.DataFrame, str]:
    """The configurations (CONFIG columns) to plan `model` with, and a note where they are not the
    model's own at the sequence length asked: `rows` (the model's) or, without any, every model's
    of `df`; at `seq_len` where given (those that ran at it, else all of them set to it)."""
    source = rows if len(rows) else df
    if source.empty:
        raise PlanError(f"--model: {model} has no trial in the tables, and the tables have no configuration "
                        "to plan it with (no trials)")
    configs = source[list(CONFIG)].drop_duplicates()
    note = "" if len(rows) else (
        f"{model} has no trial in the tables: every option is predicted, with the configurations the tables ran "
        f"for {', '.join(sorted(df['model'].dropna().unique()))}, anchored on no measurement of {model}.")
    if seq_len is not None:
        at = configs[configs["seq_len"] == seq_len]
        if at.empty:
            ran = ", ".join(str(v) for v in sorted(configs["seq_len"].unique()))
            note = (note + " " if note else "") + (
                f"No trial of {model if len(rows) else 'these configurations'} ran at sequence length {seq_len} "
                f"(they ran {ran}): its configurations at {seq_len} are predicted.")
            at = configs.assign(seq_len=seq_len).drop_duplicates()
        configs = at
    return configs.reset_index(drop=True), note


def priced(options: pd.DataFrame, book: PriceBook, gpu_types: Sequence[str], tokens: float, n_params: int,
           assumptions: RunAssumptions) -> pd.DataFrame:
    """`options` (with their tokens/s and rentals) with usd_per_gpu_hour (the rental's, per billed
    GPU), hours, gpu_hours (the GPUs used), usd of the run (the whole rental, idle GPUs included)
    and usd_per_btok.  A PlanError where no option that fits has a price."""
    wall = assumptions.wall_s(tokens / options["tokens_per_s"].to_numpy(dtype=float), options["compile"].to_numpy(), n_params)
    per_hour = options["usd_per_hour"].to_numpy(dtype=float)
    usd = trial_cost_usd(per_hour, wall)
    options = options.assign(
        usd_per_gpu_hour=per_hour / np.maximum(options["gpus_billed"].to_numpy(dtype=float), 1),
        hours=wall / 3600, gpu_hours=wall / 3600 * options["num_gpus"], usd=usd, usd_per_btok=usd / tokens * 1e9,
    )
    fits = options["excluded"] == ""
    if fits.any() and not np.isfinite(options.loc[fits, "usd_per_gpu_hour"]).any():
        missing = ", ".join(g for g in gpu_types if not np.isfinite(options.loc[options["gpu_type"] == g, "usd_per_hour"]).any())
        others = [p.gpu for p in book.prices if p.gpu not in gpu_types and named_gpu(p.gpu) not in (None, "cpu")]
        plan_others = (f", or plan on GPU types they price (python -m slmray.recommend ... --gpu-types {' '.join(others)})"
                       if others else "")
        raise PlanError(f"prices: the {book.profile} prices have none for any option's GPU type ({missing}); "
                        f"give --prices PROFILE, --price GPU=USD or --price-file{plan_others}")
    return options


def exclusions(options: pd.DataFrame, book: PriceBook, deadline_h: float | None,
               budget_usd: float | None) -> pd.Series:
    """Why each priced option is out ("" where it is in): its memory or estimate (already in
    `excluded`), no price, over the deadline, over the budget."""
    reasons = options["excluded"].copy()
    no_price = (reasons == "") & ~np.isfinite(options["usd_per_hour"])
    reasons[no_price] = f"no {book.profile} price"
    ok = reasons == ""
    late = ok & (options["hours"] > deadline_h) if deadline_h is not None else ok & False
    dear = ok & (options["usd"] > budget_usd) if budget_usd is not None else ok & False
    for i in options.index[late | dear]:
        why = [f"over the deadline ({options.at[i, 'hours']:,.1f} h)"] if late[i] else []
        why += [f"over the budget (${options.at[i, 'usd']:,.0f})"] if dear[i] else []
        reasons[i] = ", ".join(why)
    return reasons
