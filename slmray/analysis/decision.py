"""The run-planning decision of `python -m slmray.recommend`, per model, for the report and the notebook.

For each model of a results frame (a preset the tables ran), a full training run of
D = `tokens_per_param` x N tokens (default 20, Chinchilla's ratio) at the prices the frame
carries (as the report was given them): the cheapest and the fastest option, the ranked
options, and why the others are out.  The logic is `slmray.recommend.plan_run`'s; this module
only lays it out.
"""

from __future__ import annotations

import pandas as pd

from slmray.analysis.table import model_order
from slmray.recommend import (
    DEFAULT_TOKENS_PER_PARAM,
    Decision,
    RecommendError,
    answer,
    correction_lines,
    default_assumptions,
    option_label,
    options_table,
    plan_run,
    recorded_prices,
)
from slmray.train.presets import PRESETS

TOP = 10


def decisions(df: pd.DataFrame, tokens_per_param: float = DEFAULT_TOKENS_PER_PARAM,
              max_gpus: int = 8) -> dict[str, Decision | str]:
    """Model -> its Decision, or the one-line reason there is none (not a preset, no price...)."""
    book = recorded_prices(df)
    assumptions = default_assumptions(df)
    out: dict[str, Decision | str] = {}
    for model in model_order(df):
        if model not in PRESETS:
            out[model] = f"{model} is not a preset: its shape cannot be rebuilt to plan a run"
            continue
        try:
            out[model] = plan_run(df, model, tokens_per_param * PRESETS[model].num_params, book, assumptions,
                                  max_gpus=max_gpus)
        except RecommendError as exc:
            out[model] = str(exc)
    return out


def summary(df: pd.DataFrame, tokens_per_param: float = DEFAULT_TOKENS_PER_PARAM) -> pd.DataFrame:
    """One row per model: the cheapest and the fastest option of a run of tokens_per_param x N tokens."""
    rows = []
    for model, d in decisions(df, tokens_per_param).items():
        if isinstance(d, str):
            rows.append({"model": model, "tokens": None, "cheapest": d})
            continue
        ok = d.eligible.dropna(subset=["usd"])
        row = {"model": model, "tokens": d.tokens}
        for name, order in (("cheapest", ["usd", "hours"]), ("fastest", ["hours", "usd"])):
            if len(ok):
                o = ok.sort_values(order).iloc[0]
                row |= {name: option_label(o), f"{name} source": o["source"], f"{name} hours": o["hours"],
                        f"{name} $": o["usd"]}
        rows.append(row)
    return pd.DataFrame(rows)


def sections(df: pd.DataFrame, tokens_per_param: float = DEFAULT_TOKENS_PER_PARAM):
    """(title, paragraphs, [(caption, table)]) per model, for `slmray.analysis.report`."""
    out = []
    for model, d in decisions(df, tokens_per_param).items():
        title = f"Planning a run: {model}, {tokens_per_param:g} tokens per parameter"
        if isinstance(d, str):
            out.append((title, [f"No plan: {d}."], []))
            continue
        text = [
            f"Training {model} ({d.n_params:,} parameters) on {d.tokens:,.0f} tokens, at the prices of this report, "
            "as `python -m slmray.recommend` plans it: options are the configurations the tables ran, on each GPU type "
            "of the tables at 1 to 8 GPUs; `measured` takes the tables' tokens/s, `predicted` the estimator's "
            "corrected by the measurements.",
            *d.assumptions.lines(d.n_params), *d.notes, *correction_lines(d), *answer(d),
        ]
        text = [t.strip() for t in text]
        excluded = d.options[d.options["excluded"] != ""]
        if len(excluded):
            counts = excluded["excluded"].str.split(", ").explode().str.replace(r" \(.*", "", regex=True).value_counts()
            text.append("Excluded: " + ", ".join(f"{n} {r}" for r, n in counts.items()) + ".")
        tables = [(f"{model}: options, cheapest first (top {min(TOP, len(d.eligible))} of {len(d.eligible)})",
                   options_table(d.eligible.head(TOP)))]
        out.append((title, text, tables))
    return out
