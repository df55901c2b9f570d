"""What would bring a missed deadline or budget within reach, each lever with its effect on the
nearest option and where that effect comes from (measured or predicted):

    compile      the same option with torch.compile on: the tables' compiled twin where there is
                 one (measured, or predicted on measured anchors), else the estimator's ratio of
                 compiled over eager for the option (predicted).
    spot         the same GPUs at the profile's spot price (`<profile>-spot`), where it has one,
                 and each other GPU type's cheapest option at its spot price; dollars only, and
                 without the interruptions spot capacity brings.
    GPU type     the best option on each other GPU type of the plan (its own source).
    more GPUs    (a deadline) the best-ranked option on more GPUs than --max-gpus that meets it, in
                 the plan at twice, four times... the count, up to 64 (`slmray.planning.run.more_gpus_lever`:
                 it plans again).
    fewer tokens the tokens the nearest option trains within the limit.

Levers apply one at a time to the nearest option: the fastest for a deadline, the cheapest for a
budget (within the other limit where one is met).
"""

from __future__ import annotations

import math
import warnings

import pandas as pd

from slmray.catalog.prices import PriceBook, PriceWarning, profiles
from slmray.catalog.rent import rent
from slmray.planning.assumptions import RunAssumptions
from slmray.planning.options import CONFIG, estimate_row
from slmray.train.config import ModelConfig, config_label

KEY = ("gpu_type", "num_gpus", "strategy", "instance_type", "instances", *(c for c in CONFIG if c != "compile"))
"""What a compiled twin shares with its option: everything but compile."""


def tokens_within(o, limit_s: float, tokens_per_s: float, a: RunAssumptions, n_params: int) -> float:
    """Tokens a run at `tokens_per_s` trains in `limit_s` of wall-clock (start-up, compile and checkpoint
    saves counted as `RunAssumptions.wall_s` counts them); 0 where the fixed costs alone exceed it."""
    fixed = a.startup_s + (a.compile_s if o["compile"] else 0.0)
    per_train_s = 1 + (a.checkpoint_s(n_params) / (a.checkpoint_every_h * 3600) if a.checkpoint_every_h > 0 else 0.0)
    return max(0.0, (limit_s - fixed) / per_train_s) * tokens_per_s


def _run(o, tokens_per_s: float, tokens: float, a: RunAssumptions, n_params: int, usd_per_hour: float) -> tuple[float, float]:
    """(hours, usd) of option `o` at `tokens_per_s`, billed `usd_per_hour`."""
    wall = float(a.wall_s(tokens / tokens_per_s, bool(o["compile"]), n_params))
    return wall / 3600, usd_per_hour * wall / 3600


def compile_lever(o, options: pd.DataFrame, model: ModelConfig, tokens: float, a: RunAssumptions, n_params: int) -> dict | None:
    if o["compile"]:
        return None
    twin = options[(options["compile"]) & (options["excluded"].isin(["", *_limits(options)]))]
    twin = twin[(twin[list(KEY)] == pd.Series({k: o[k] for k in KEY})).all(axis=1)]
    if len(twin):
        t = twin.iloc[0]
        return {"lever": "compile", "change": "torch.compile on (a configuration the tables ran compiled)",
                "tokens_per_s": float(t["tokens_per_s"]), "hours": float(t["hours"]), "usd": float(t["usd"]),
                "tokens": tokens, "source": t["source"]}
    try:
        eager = estimate_row(model, o, o["gpu_type"], int(o["num_gpus"])).tokens_per_s
        compiled = estimate_row(model, pd.Series({**o, "compile": True}), o["gpu_type"], int(o["num_gpus"])).tokens_per_s
    except ValueError:
        return None
    rate = float(o["tokens_per_s"]) * compiled / eager
    h, usd = _run(pd.Series({**o, "compile": True}), rate, tokens, a, n_params, float(o["usd_per_hour"]))
    return {"lever": "compile", "change": f"torch.compile on (estimator: x{compiled / eager:.2f} tokens/s; no compiled trial "
            "of this configuration)", "tokens_per_s": rate, "hours": h, "usd": usd, "tokens": tokens, "source": "predicted"}


def spot_lever(o, book: PriceBook, other: bool = False) -> dict | None:
    """Option `o` at the profile's spot price; None where the profile has no spot prices (or,
    for an `other` GPU type's option, none for its type)."""
    spot = f"{book.profile}-spot"
    if spot not in profiles():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PriceWarning)
        r = rent(PriceBook.load(spot, per_gpu=book.per_gpu), o["gpu_type"], int(o["num_gpus"]))
    if r is None:
        return None if other else {"lever": "spot", "change": f"no {spot} price for {o['gpu_type']}",
                                   "tokens_per_s": math.nan, "hours": math.nan, "usd": math.nan, "tokens": math.nan,
                                   "source": ""}
    what = f"{config_label(o, model=False)} at {spot}" if other else spot
    return {"lever": "spot", "change": f"{what}: {r.description} at ${r.usd_per_hour:,.2f}/h (interruptions not counted)",
            "tokens_per_s": float(o["tokens_per_s"]), "hours": float(o["hours"]),
            "usd": float(o["usd"]) * r.usd_per_hour / float(o["usd_per_hour"]), "tokens": math.nan,
            "source": o["source"]}


def best_per_other_gpu(o, priced: pd.DataFrame, column: str) -> list:
    """The best option by `column` of each GPU type other than `o`'s."""
    return [part.sort_values([column, "usd" if column == "hours" else "hours"]).iloc[0]
            for _, part in priced[priced["gpu_type"] != o["gpu_type"]].groupby("gpu_type", sort=True)]


def gpu_type_levers(o, priced: pd.DataFrame, column: str) -> list[dict]:
    out = []
    for b in best_per_other_gpu(o, priced, column):
        gpu = b["gpu_type"]
        out.append({"lever": "GPU type", "change": f"{gpu} x{int(b['num_gpus'])} ({b['rental'] or 'per GPU'})",
                    "tokens_per_s": float(b["tokens_per_s"]), "hours": float(b["hours"]), "usd": float(b["usd"]),
                    "tokens": math.nan, "source": b["source"]})
    return out


def _limits(options: pd.DataFrame) -> list[str]:
    return [r for r in options["excluded"].unique() if r.startswith("over the")]


def levers(options: pd.DataFrame, model: ModelConfig, tokens: float, a: RunAssumptions, book: PriceBook,
           deadline_h: float | None, budget_usd: float | None) -> dict[str, list[dict]]:
    """{"deadline": [...], "budget": [...]}: for each limit no option meets, the levers on its
    nearest option, each a dict (lever, change, tokens_per_s, hours, usd, tokens, source, meets,
    and the nearest option's label and index in `options`)."""
    priced = options[options["excluded"].isin(["", *_limits(options)]) & options["usd"].notna()]
    out: dict[str, list[dict]] = {}
    if priced.empty:
        return out
    n_params = model.num_params
    for limit, value, column in (("deadline", deadline_h, "hours"), ("budget", budget_usd, "usd")):
        if value is None or (priced[column] <= value).any():
            continue
        other, other_col = (budget_usd, "usd") if limit == "deadline" else (deadline_h, "hours")
        pool = priced[priced[other_col] <= other] if other is not None and (priced[other_col] <= other).any() else priced
        o = pool.sort_values([column, "usd" if column == "hours" else "hours"]).iloc[0]
        found = [compile_lever(o, options, model, tokens, a, n_params)]
        if limit == "budget":  # spot: on the nearest option, and on each other GPU type's cheapest where priced
            found += [spot_lever(o, book), *(spot_lever(b, book, other=True) for b in best_per_other_gpu(o, priced, column))]
        found += gpu_type_levers(o, priced, column)
        limit_s = value * 3600 if limit == "deadline" else value / float(o["usd_per_hour"]) * 3600
        fewer = tokens_within(o, limit_s, float(o["tokens_per_s"]), a, n_params)
        h, usd = _run(o, float(o["tokens_per_s"]), fewer, a, n_params, float(o["usd_per_hour"])) if fewer else (math.nan,) * 2
        found.append({"lever": "fewer tokens", "change": f"{fewer:,.0f} tokens ({fewer / n_params:.3g} per parameter, "
                      f"{fewer / tokens:.0%} of the run)", "tokens_per_s": float(o["tokens_per_s"]), "hours": h,
                      "usd": usd, "tokens": fewer, "source": o["source"]})
        out[limit] = [{**f, "option": config_label(o, model=False), "option_index": int(o.name),
                       "meets": bool(f[column] <= value * (1 + 1e-9)) if math.isfinite(f[column]) else False}
                      for f in found if f is not None]
    return out
