"""The run-planning decision of `python -m slmray.recommend`, per model, for the report and the notebook.

For each model of a results frame (a preset the tables ran), a full training run of
D = `tokens_per_param` x N tokens (default 20, Chinchilla's ratio) at the prices the frame
carries (as the report was given them): the cheapest and the fastest option, the ranked
options, and why the others are out.  The logic is `slmray.planning.run.plan_run`'s and the words
`slmray.planning.text`'s, as the command prints them; this module only lays them out.
"""

from __future__ import annotations

import pandas as pd

from slmray.analysis.table import model_order
from slmray.planning.assumptions import DEFAULT_TOKENS_PER_PARAM, PlanError, default_assumptions
from slmray.planning.options import model_configs
from slmray.planning.run import Decision, plan_run, recorded_prices
from slmray.planning.text import answer, correction_lines, excluded, excluded_counts, option_label, options_table

TOP = 10


def decisions(df: pd.DataFrame, tokens_per_param: float = DEFAULT_TOKENS_PER_PARAM,
              max_gpus: int = 8) -> dict[str, Decision | str]:
    """Model -> its Decision, or the one-line reason there is none (not a preset, no price...)."""
    book = recorded_prices(df)
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
        if len(excluded(d)):
            text.append(f"Excluded: {excluded_counts(d)}.")
        tables = [(f"{model}: options, cheapest first (top {min(TOP, len(d.eligible))} of {len(d.eligible)})",
                   options_table(d.eligible.head(TOP)))]
        out.append((title, text, tables))
    return out
