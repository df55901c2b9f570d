"""What to pick, per model, for the report and the notebook: the measured decision first
(`choose`, `summary_table`, `summary_lines`), then the planner's (`decisions`, `summary`, `sections`).

The measured decision ranks the configurations the tables ran (each at its best trial) by the
objectives in the order given: the non-dominated ones first; among them the best on the first
objective, where others within the run-to-run spread of it count as tied and the next objective
breaks the tie.  Why: the measured ratio of each setting the pick chose over the alternative the
tables ran at otherwise equal settings (like for like), or, where no such alternative ran, the
ratio where one did.  How sure: measured, with the spread over the trial's repeats (or the
tables' repeated rows), a runner-up inside it marked as a tie.

For each model of a results frame (a preset the tables ran), the planner's full training run of
D = `tokens_per_param` x N tokens (default 20, Chinchilla's ratio) at the prices the frame
carries (as the report was given them): the cheapest and the fastest option, the ranked
options, and why the others are out.  The logic is `slmray.planning.run.plan_run`'s and the words
`slmray.planning.text`'s, as the command prints them; this module only lays them out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from slmray.analysis.table import config_label, model_order, ok
from slmray.core.objective import Objective
from slmray.core.pareto import pareto_mask
from slmray.catalog.gpus import CPU
from slmray.catalog.prices import PriceBook
from slmray.planning import alternative
from slmray.planning.assumptions import DEFAULT_TOKENS_PER_PARAM, PlanError, default_assumptions
from slmray.planning.options import model_configs
from slmray.planning.rank import DEFAULT_TOLERANCE, describe, from_columns
from slmray.planning.run import Decision, plan_run, recorded_prices
from slmray.planning.text import (
    alternative_text,
    answer,
    best_measured,
    correction_lines,
    critical_batch_line,
    excluded,
    excluded_counts,
    hours,
    interval,
    money,
    option_label,
    options_table,
    placed_label,
    rate,
)
from slmray.train.config import CONFIG_KEYS

TOP = 10
WHY_KEYS = tuple(k for k in CONFIG_KEYS if k not in ("model", "seq_len"))
"""The settings the "why" of a pick names a ratio for (the sequence length is the workload, not a choice)."""
BATCH_FREE = ("attention", "compile", "precision", "activation_checkpointing", "loss_kernel")
"""Settings compared each at its best batch (the findings' convention: part of what they buy is
the larger batch that then fits); the rest are compared at equal batch."""
SPREAD_SIGMAS = 2.0
"""A difference under this many run-to-run standard deviations (relative) reads "within the spread"."""
WORDS = {"attention": "", "compile": "compile", "precision": "", "activation_checkpointing": "AC", "gpu_type": "",
         "strategy": "", "num_gpus": "x", "per_device_batch": "b", "loss_kernel": "loss ", "backend": ""}


@dataclass(frozen=True)
class Pick:
    """One model's measured decision."""
    model: str
    row: int
    """Index in the frame of the picked configuration's best trial."""
    configuration: str
    values: dict[str, float]
    """Objective column -> the pick's value."""
    spread: float
    """Relative run-to-run standard deviation of the pick's tokens/s (NaN: unknown)."""
    spread_source: str
    why: list[str]
    runner_up: str | None
    runner_up_values: dict[str, float]
    tied: bool
    """The runner-up is within the spread of the pick on every objective."""
    tokens: float
    """Tokens of the stated run."""
    hours: float
    usd: float
    best_on: dict[str, str]
    """Objective column -> the configuration best on it, where that is not the pick."""
    ranked_by: tuple[Objective, ...]
    """The objectives with values for this model (one without, such as $ with no price, is skipped)."""
    unranked: str
    """The ok configurations left out for lacking an objective's value, in words ('' for none)."""


def _value_word(key: str, value) -> str:
    if key == "compile":
        return "compile" if bool(value) else "no compile"
    if key == "activation_checkpointing":
        return "+AC" if bool(value) else "no AC"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    return f"{WORDS.get(key, '')}{value}"


def table_spread(df: pd.DataFrame) -> float:
    """The median relative standard deviation of tokens/s over the tables' rows that repeated
    their measurement (NaN where none did)."""
    rows = ok(df)
    if "repeats" not in rows:
        return math.nan
    repeated = rows[(rows["repeats"].fillna(1) > 1) & (rows["tokens_per_s"] > 0)]
    rel = (repeated["tokens_per_s_std"].astype(float) / repeated["tokens_per_s"].astype(float)).dropna()
    return float(rel.median()) if len(rel) else math.nan


def _spread(df: pd.DataFrame, row: pd.Series, keys: list[str], fallback: float) -> tuple[float, str]:
    """The pick's relative spread: its repeats' sd, else the sd over its configuration's trials,
    else the tables' typical one."""
    if row.get("repeats", 1) and row.get("repeats", 1) > 1 and pd.notna(row.get("tokens_per_s_std")):
        return float(row["tokens_per_s_std"]) / float(row["tokens_per_s"]), f"sd over its {int(row['repeats'])} repeats"
    same = _same(ok(df), row, keys)
    if len(same) > 1:
        values = same["tokens_per_s"].astype(float)
        return float(values.std() / values.mean()), f"sd over its {len(same)} trials"
    if np.isfinite(fallback):
        return fallback, "the median sd of the tables' repeated rows"
    return math.nan, "unknown: no repeated measurement in these tables"


def _candidates(df: pd.DataFrame, objectives: Sequence[Objective], keys: list[str]) -> pd.DataFrame:
    """A model's ok trials with every objective's value, one per configuration (its best on the first)."""
    first = objectives[0]
    rows = ok(df).dropna(subset=[o.column for o in objectives])
    rows = rows[np.isfinite(rows[[o.column for o in objectives]].astype(float)).all(axis=1)]
    order = rows[first.column].astype(float) * (-1 if first.maximize else 1)
    rows = rows.assign(_order=order).sort_values("_order", kind="stable")
    return rows.drop_duplicates([k for k in keys if k in rows.columns]).drop(columns="_order")


def _rank(rows: pd.DataFrame, objectives: Sequence[Objective], tolerance: float, count: int = 2) -> list:
    """The first `count` indices of `rows` in the decision's order (module docstring)."""
    left, out = rows, []
    while len(left) and len(out) < count:
        values = left[[o.column for o in objectives]].astype(float).to_numpy()
        front = left[pareto_mask(values, [o.maximize for o in objectives])]
        tied = front
        for o in objectives:
            v = tied[o.column].astype(float)
            best = v.max() if o.maximize else v.min()
            slack = abs(best) * (tolerance if np.isfinite(tolerance) else 0.0)
            tied = tied[(v >= best - slack) if o.maximize else (v <= best + slack)]
            if len(tied) == 1:
                break
        chosen = tied.index[0]
        out.append(chosen)
        left = left.drop(index=chosen)
    return out


def _ratio_text(metric: Objective, mine: float, other: float) -> float:
    """How much better `mine` is than `other` under `metric`, as a factor (>1: better)."""
    if not (mine > 0 and other > 0):
        return math.nan
    return mine / other if metric.maximize else other / mine


def _factor(f: float, spread: float) -> str:
    text = f"x{f:.2f}"
    return text + " (within the spread)" if np.isfinite(spread) and abs(f - 1) < SPREAD_SIGMAS * spread else text


def _why(df: pd.DataFrame, pick: pd.Series, metric: Objective, keys: list[str], spread: float) -> list[str]:
    """Per setting the pick chose: its measured factor over the closest alternative at otherwise
    equal settings (`BATCH_FREE` ones each at its best batch); where none ran there, the range of
    that factor where the two ran at equal settings (not for the batch or GPU count, which other
    settings move)."""
    df = df.loc[df["model"] == pick["model"], [*keys, "status", metric.column]]  # narrow: many lookups follow
    rows = ok(df).dropna(subset=[metric.column])
    out = []
    tried = df[df["status"].isin(("ok", "oom"))]  # an alternative that ran out of memory is a reason too
    for key in [k for k in WHY_KEYS if k in keys and tried[k].nunique(dropna=True) > 1]:
        others = [k for k in keys if k != key and k in rows.columns
                  and not (key in BATCH_FREE and k == "per_device_batch")]
        mine = pick[key]
        same = _same(rows, pick, others)
        direct = {alt: _ratio_text(metric, float(pick[metric.column]), _best(part, metric))
                  for alt, part in same[same[key] != mine].groupby(key)}
        if direct:
            alt, f = min(direct.items(), key=lambda kv: kv[1])
            out.append(f"{_value_word(key, mine)} over {_value_word(key, alt)} {_factor(f, spread)}")
            continue
        failed = _same(df[df["status"] == "oom"], pick, others)
        failed = failed[failed[key] != mine]
        if len(failed):
            alts = ", ".join(sorted({_value_word(key, v) for v in failed[key].dropna().unique()}))
            out.append(f"{_value_word(key, mine)}: {alts} ran out of memory at these settings")
            continue
        if key in ("per_device_batch", "num_gpus"):
            continue
        for alt in sorted(v for v in rows[key].dropna().unique() if v != mine):
            name = f"{_value_word(key, mine)} over {_value_word(key, alt)}"
            factors = _paired(rows, key, mine, alt, others, metric)
            if not factors:
                out.append(f"{name}: never run at equal settings")
                continue
            lo, hi = f"x{min(factors):.2f}", f"x{max(factors):.2f}"
            span = lo if lo == hi else f"{lo}-{hi[1:]}"
            slack = SPREAD_SIGMAS * spread if np.isfinite(spread) else 0.0
            warn = (f" ({_value_word(key, alt)} was faster: measure it at these settings)"
                    if max(factors) < 1 - slack else "")
            out.append(f"{name}: {span} where both ran at equal settings, not at the pick's{warn}")
    return out


def _same(rows: pd.DataFrame, pick: pd.Series, keys: list[str]) -> pd.DataFrame:
    """The rows equal to `pick` in every one of `keys` (a null equal to a null)."""
    mask = np.ones(len(rows), dtype=bool)
    for k in keys:
        column = rows[k]
        mask &= (column.isna() if pd.isna(pick[k]) else column == pick[k]).to_numpy(dtype=bool)
    return rows[mask]


def _best(rows: pd.DataFrame, metric: Objective) -> float:
    v = rows[metric.column].astype(float)
    return float(v.max() if metric.maximize else v.min())


def _paired(rows: pd.DataFrame, key: str, mine, alt, others: list[str], metric: Objective) -> list[float]:
    """`mine` over `alt` in `key` for each group of otherwise equal settings that ran both."""
    out = []
    for _, part in rows.groupby(others, dropna=False):
        a, b = part[part[key] == mine], part[part[key] == alt]
        if len(a) and len(b):
            f = _ratio_text(metric, _best(a, metric), _best(b, metric))
            if np.isfinite(f):
                out.append(f)
    return out


def choose(df: pd.DataFrame, objectives: Sequence[Objective],
           tokens_per_param: float = DEFAULT_TOKENS_PER_PARAM) -> dict[str, Pick | str]:
    """Model -> its measured Pick, or the one-line reason there is none.  `df` has cost metrics
    (`slmray.analysis.costs.add_cost_metrics`); the run is tokens_per_param x N tokens."""
    keys = [k for k in CONFIG_KEYS if k in df.columns]
    fallback = table_spread(df)
    out: dict[str, Pick | str] = {}
    for model in model_order(df):
        part = df[df["model"] == model]
        usable = [o for o in objectives if np.isfinite(ok(part)[o.column].astype(float)).any()]
        rows = _candidates(part, usable, keys) if usable else part.iloc[0:0]
        if rows.empty:
            counts = ", ".join(f"{k} {v}" for k, v in part["status"].value_counts().items())
            missing = [o.column for o in objectives if not np.isfinite(ok(part)[o.column].astype(float)).any()]
            reason = f"no ok trial has {', '.join(missing)}" if missing else "no ok trial has every objective's value"
            out[model] = f"{reason} ({counts})"
            continue
        spread, source = _spread(part, rows.iloc[0], keys, fallback)
        ranked = _rank(rows, usable, SPREAD_SIGMAS * spread)
        pick = rows.loc[ranked[0]]
        second = rows.loc[ranked[1]] if len(ranked) > 1 else None
        values = {o.column: float(pick[o.column]) for o in objectives}
        runner = {o.column: float(second[o.column]) for o in objectives} if second is not None else {}
        tied = second is not None and np.isfinite(spread) and all(
            abs(_ratio_text(o, values[o.column], runner[o.column]) - 1) < SPREAD_SIGMAS * spread for o in usable)
        best_on = {}
        for o in usable[1:]:
            scores = rows[o.column].astype(float)
            top = rows.loc[scores.idxmax() if o.maximize else scores.idxmin()]
            if top.name != pick.name:
                best_on[o.column] = f"{config_label(top.to_frame().T).iloc[0]} ({_short(top[o.column])})"
        lacking = ok(part)[~np.isfinite(ok(part)[[o.column for o in usable]].astype(float)).all(axis=1)]
        unranked = ""
        if len(lacking):
            types = ", ".join(sorted(lacking["gpu_type"].dropna().astype(str).unique()))
            missing = [o.column for o in usable if lacking[o.column].isna().any()]
            unranked = (f"{len(lacking)} ok trial(s) on {types or 'unknown GPUs'} not ranked: no "
                        f"{' or '.join(missing)} (no price for the GPU in this profile?)")
        tokens = tokens_per_param * float(pick["n_params"])
        tps = float(pick["tokens_per_s"])
        usd = float(pick["usd_per_btok"]) * tokens / 1e9 if "usd_per_btok" in pick else math.nan
        out[model] = Pick(
            model=model, row=int(pick.name), configuration=config_label(pick.to_frame().T).iloc[0], values=values,
            spread=spread, spread_source=source, why=_why(part, pick, usable[0], keys, spread),
            ranked_by=tuple(usable), unranked=unranked,
            runner_up=config_label(second.to_frame().T).iloc[0] if second is not None else None,
            runner_up_values=runner, tied=bool(tied), tokens=tokens,
            hours=tokens / tps / 3600 if tps > 0 else math.nan, usd=usd, best_on=best_on)
    return out


def _short(value) -> str:
    v = float(value)
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def _sure(p: Pick) -> str:
    spread = (f"run-to-run sd {100 * p.spread:.1f}% ({p.spread_source})" if np.isfinite(p.spread)
              else f"run-to-run spread {p.spread_source}")
    if p.runner_up is None:
        return f"measured; {spread}; the only configuration with every objective's value"
    gaps = []
    for o in p.ranked_by:
        gap = _ratio_text(o, p.values[o.column], p.runner_up_values[o.column]) - 1
        if not np.isfinite(gap):
            gaps.append(_no_ratio(o, p.values[o.column], p.runner_up_values[o.column]))
            continue
        inside = np.isfinite(p.spread) and abs(gap) < SPREAD_SIGMAS * p.spread
        where = " (within the spread)" if inside else " (outside the spread)" if np.isfinite(p.spread) else ""
        gaps.append(f"{100 * abs(gap):.1f}% {'behind' if gap >= 0 else 'ahead'} on {o.column}{where}")
    verdict = ": a tie, either will do" if p.tied else ""
    return f"measured; {spread}; the runner-up is {', '.join(gaps)}{verdict}"


def _no_ratio(o: Objective, mine: float, other: float) -> str:
    """The runner-up's gap on `o` where no ratio exists (a value of 0, say a local machine's $0)."""
    if mine == other:
        return f"level on {o.column}"
    return f"not comparable on {o.column} ({_short(mine)} against {_short(other)})"


def _devices(row: pd.Series) -> str:
    """`2 GPU(s)`; `2 CPU worker(s)` for a row that ran on the CPU."""
    return f"{int(row['num_gpus'])} {'CPU worker(s)' if row['gpu_type'] == CPU else 'GPU(s)'}"


def _sure_short(p: Pick) -> str:
    """`_sure` in a table cell: the spread, and the runner-up's gap on the first objective."""
    spread = f"sd {100 * p.spread:.1f}%" if np.isfinite(p.spread) else "sd unknown"
    if p.runner_up is None:
        return f"measured, {spread}; no runner-up"
    first = p.ranked_by[0]
    gap = _ratio_text(first, p.values[first.column], p.runner_up_values[first.column]) - 1
    if not np.isfinite(gap):
        level = _no_ratio(first, p.values[first.column], p.runner_up_values[first.column])
        return f"measured, {spread}; runner-up {level}"
    if p.tied:
        return f"measured, {spread}; a tie with the runner-up"
    where = "" if not np.isfinite(p.spread) else (
        " (within the spread)" if abs(gap) < SPREAD_SIGMAS * p.spread else " (outside the spread)")
    return f"measured, {spread}; runner-up {100 * abs(gap):.1f}% {'behind' if gap >= 0 else 'ahead'}{where}"


def alternatives(df: pd.DataFrame, picks: dict[str, Pick | str], objectives: Sequence[Objective],
                 tokens_per_param: float = DEFAULT_TOKENS_PER_PARAM,
                 book: PriceBook | None = None) -> dict[str, alternative.Alternative | str]:
    """Model -> the priced alternative to its measured pick, or why there is none, for each pick
    without a price (`slmray.planning.alternative`): the planner's options at `book`'s prices (else
    those the frame carries), like for like, ranked by the planner's counterparts of `objectives`."""
    unpriced = {m: p for m, p in picks.items() if isinstance(p, Pick) and not np.isfinite(p.usd)}
    if not unpriced:
        return {}
    shapes = model_configs(unpriced)
    out: dict[str, alternative.Alternative | str] = {
        m: f"{m} is not a preset: its shape cannot be rebuilt to plan a run" for m in unpriced if m not in shapes}
    if len(out) == len(unpriced):
        return out
    book = book if book is not None else recorded_prices(df)
    assumptions = default_assumptions(df)
    for model, p in unpriced.items():
        if model not in shapes:
            continue
        out[model] = alternative.plan(df, model, df.loc[p.row], book, assumptions,
                                      tokens_per_param * shapes[model].num_params, from_columns(objectives),
                                      DEFAULT_TOLERANCE)
    return out


def _alternative_row(model: str, alt: alternative.Alternative | str) -> dict:
    """The decision table's row of a priced alternative: labelled, with its interval in "how sure"."""
    if isinstance(alt, str):
        return {"model": model, "pick": f"no priced alternative: {alt}"}
    o = alt.option
    sure = (f"predicted, {_short(o['tokens_per_s_low'])}-{_short(o['tokens_per_s_high'])} tokens/s, run "
            f"${_short(alt.usd_low)}-{_short(alt.usd_high)}; from {o['basis']}; measure it"
            if o["source"] == "predicted" else f"measured ({o['basis']})")
    differs = f"; differs in {', '.join(alt.differs)}" if alt.differs else ""
    return {"model": model, "pick": f"priced alternative ({o['source']}): {option_label(o)} on {o['rental']}{differs}",
            "tokens/s": float(o["tokens_per_s"]), "$ per B tokens": float(o["usd_per_btok"]), "run tokens": alt.tokens,
            "run GPU-hours": float(o["gpu_hours"]), "run $": float(o["usd"]), "how sure": sure}


def summary_table(df: pd.DataFrame, objectives: Sequence[Objective],
                  tokens_per_param: float = DEFAULT_TOKENS_PER_PARAM, picks: dict | None = None,
                  alternates: dict | None = None) -> pd.DataFrame:
    """One row per model: the pick, its tokens/s and $ per billion tokens, the run's hours and $,
    how sure, and the runner-up; below a pick without a price, its priced alternative
    (`alternatives`, computed here unless given)."""
    picks = picks if picks is not None else choose(df, objectives, tokens_per_param)
    alternates = alternates if alternates is not None else alternatives(df, picks, objectives, tokens_per_param)
    rows = []
    for model, p in picks.items():
        if isinstance(p, str):
            rows.append({"model": model, "pick": f"none: {p}"})
            continue
        row = df.loc[p.row]
        rows.append({
            "model": model, "pick": p.configuration, "tokens/s": float(row["tokens_per_s"]),
            "$ per B tokens": float(row["usd_per_btok"]), "run tokens": p.tokens, "run GPU-hours":
            p.hours * float(row["num_gpus"]), "run $": p.usd, "how sure": _sure_short(p),
            "runner-up": (f"{p.runner_up} ({_short(p.runner_up_values[p.ranked_by[0].column])} "
                          f"{p.ranked_by[0].column})" if p.runner_up else None),
        })
        if model in alternates:
            rows.append(_alternative_row(model, alternates[model]))
    return pd.DataFrame(rows)


def summary_lines(df: pd.DataFrame, objectives: Sequence[Objective],
                  tokens_per_param: float = DEFAULT_TOKENS_PER_PARAM, picks: dict | None = None,
                  alternates: dict | None = None) -> list[str]:
    """The decision in words, one paragraph per model (with the priced alternative to a pick
    without a price), then how it was made."""
    first = objectives[0]
    picks = picks if picks is not None else choose(df, objectives, tokens_per_param)
    alternates = alternates if alternates is not None else alternatives(df, picks, objectives, tokens_per_param)
    lines = []
    for model, p in picks.items():
        if isinstance(p, str):
            lines.append(f"{model}: no pick, {p}.")
            continue
        row = df.loc[p.row]
        priced = np.isfinite(p.usd)
        text = (f"{model}: pick {p.configuration}: {_short(row['tokens_per_s'])} tokens/s, "
                + (f"${_short(row['usd_per_btok'])} per billion tokens" if priced else "no price for its GPU")
                + f"; a run of {p.tokens:,.0f} tokens ({tokens_per_param:g} per parameter) takes {hours(p.hours)} "
                f"on {_devices(row)}" + (f" for ${_short(p.usd)}. " if priced else
                                                         f", dollars unknown (give --price {row['gpu_type']}=USD). "))
        metric = p.ranked_by[0].column
        text += f"Why ({metric}): {'; '.join(p.why)}. " if p.why else "Why: no alternative ran at comparable settings. "
        if p.best_on:
            text += "Best elsewhere: " + "; ".join(f"on {c}, {label}" for c, label in p.best_on.items()) + ". "
        if p.unranked:
            text += f"Not compared: {p.unranked}. "
        if len(p.ranked_by) < len(objectives):
            text += (f"Ranked without {', '.join(o.column for o in objectives if o not in p.ranked_by)}: "
                     "no trial of this model has it (no price?). ")
        text += f"How sure: {_sure(p)}."
        if p.runner_up:
            text += f" Runner-up: {p.runner_up}."
        if model in alternates:
            found = alternates[model]
            text += f" Its {alternative_text(found)}." if not isinstance(found, str) else f" It has {alternative_text(found)}."
        lines.append(text)
    order = ", then ".join(str(o) for o in objectives)
    lines.append(
        f"How: the configurations the tables ran, each at its best trial; ranked by {order}: among the non-dominated "
        f"ones, the best on {first}, those within {SPREAD_SIGMAS:g} run-to-run standard deviations of it tied and "
        "the next objective breaking the tie. The factors are the pick's measured "
        f"{first.column} over each alternative at otherwise equal settings (like for like); where the alternative "
        "never ran at the pick's settings, the range where both ran at equal settings. A run's hours and $ are the "
        f"measured rate held for {tokens_per_param:g} tokens per parameter (Chinchilla's ratio), start-up and "
        "checkpoints left out (the planner's sections count them).")
    return lines


def decisions(df: pd.DataFrame, tokens_per_param: float = DEFAULT_TOKENS_PER_PARAM, max_gpus: int = 8,
              book: PriceBook | None = None) -> dict[str, Decision | str]:
    """Model -> its Decision at `book`'s prices (None: those `df` recorded), or the one-line reason
    there is none (not a preset, no price...)."""
    book = book if book is not None else recorded_prices(df)
    assumptions = default_assumptions(df)
    out: dict[str, Decision | str] = {}
    shapes = model_configs(model_order(df))
    for model in model_order(df):
        if model not in shapes:
            out[model] = f"{model} is not a preset: its shape cannot be rebuilt to plan a run"
            continue
        try:
            out[model] = plan_run(df, model, tokens_per_param * shapes[model].num_params, book, assumptions,
                                  max_gpus=max_gpus)
        except PlanError as exc:
            out[model] = str(exc)
    return out


def planner_table(decided: dict[str, Decision | str]) -> pd.DataFrame:
    """One row per model: the planner's pick (`python -m slmray.recommend`'s first option: the
    cheapest run, then the fastest within its tolerance, on 1 to 8 GPUs), measured or predicted with
    its interval and, where predicted, the best measured run's dollars against it; or why there is none."""
    rows = []
    for model, d in decided.items():
        if isinstance(d, str) or d.eligible.empty:
            rows.append({"model": model, "planner's pick": d if isinstance(d, str) else "no option fits with a price"})
            continue
        o = d.eligible.iloc[0]
        found = best_measured(d, o, d.eligible)
        against = "-" if found is None else (
            f"{option_label(found.option)}: {money(found.option['usd'])}, {found.dollars} in $ "
            f"({'inside' if found.inside else 'outside'} the pick's interval)")
        rows.append({"model": model, "planner's pick": placed_label(o), "source": o["source"],
                     "tokens/s": rate(o["tokens_per_s"]), "interval": interval(o) or "-",
                     "$ per B tokens": money(o["usd_per_btok"]), "run hours": hours(o["hours"]), "run $": money(o["usd"]),
                     "best measured run": against})
    return pd.DataFrame(rows).fillna("-")


def sections(decided: dict[str, Decision | str], tokens_per_param: float = DEFAULT_TOKENS_PER_PARAM):
    """(title, paragraphs, [(caption, table)]) per model of `decisions`' answer, for
    `slmray.analysis.report`."""
    out = []
    for model, d in decided.items():
        title = f"Planning a run: {model}, {tokens_per_param:g} tokens per parameter"
        if isinstance(d, str):
            out.append((title, [f"No plan: {d}."], []))
            continue
        text = [
            f"Training {model} ({d.n_params:,} parameters) on {d.tokens:,.0f} tokens, at the prices of this report, "
            "as `python -m slmray.recommend` plans it: options are the configurations the tables ran, on each GPU type "
            "of the tables at 1 to 8 GPUs; `measured` takes the tables' tokens/s, `predicted` the estimator's "
            "corrected by the measurements.",
            *d.assumptions.lines(d.n_params), *d.notes, *correction_lines(d), *answer(d), critical_batch_line(d),
        ]
        text = [t.strip() for t in text]
        if len(excluded(d)):
            text.append(f"Excluded: {excluded_counts(d)}.")
        tables = [(f"{model}: options ranked by {describe(d.objectives, d.tolerance)} "
                   f"(top {min(TOP, len(d.eligible))} of {len(d.eligible)})",
                   options_table(d.eligible.head(TOP)))]
        out.append((title, text, tables))
    return out
