"""The loss you can buy: per model, the loss a budget buys and the dollars a target loss costs,
from the measured tokens per dollar (the model's cheapest configuration per token) and the
data-scaling law of `slmray.core.scaling_law`, whose source and caveats the report prints.

It replaces the seed paper's loss per dollar (Eq. 1), which within a model ranks exactly as
tokens per dollar does and across models compares slopes, not losses.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from slmray.analysis.table import config_label, model_order, ok
from slmray.core import scaling_law
from slmray.planning.assumptions import DEFAULT_TOKENS_PER_PARAM

MAX_BUDGETS = 5


def cheapest(df: pd.DataFrame) -> pd.DataFrame:
    """Per model, the ok trial with the most tokens per $ (those with a price): model, n_params,
    configuration, tokens_per_usd, its global batch in tokens per step."""
    rows = ok(df)
    rows = rows[np.isfinite(rows["tokens_per_usd"].astype(float))]
    out = []
    for model in model_order(df):
        part = rows[rows["model"] == model]
        if part.empty:
            continue
        best = part.loc[part["tokens_per_usd"].astype(float).idxmax()]
        accum = best.get("grad_accum", 1)
        step = best["per_device_batch"] * best["seq_len"] * best["num_gpus"] * (accum if pd.notna(accum) else 1)
        out.append({"model": model, "n_params": float(best["n_params"]),
                    "configuration": config_label(best.to_frame().T).iloc[0],
                    "tokens_per_usd": float(best["tokens_per_usd"]), "tokens_per_step": float(step)})
    return pd.DataFrame(out, columns=["model", "n_params", "configuration", "tokens_per_usd", "tokens_per_step"])


def budgets(best: pd.DataFrame, tokens_per_param: float = DEFAULT_TOKENS_PER_PARAM) -> list[float]:
    """Powers of ten spanning the models' runs of tokens_per_param x N tokens (at most `MAX_BUDGETS`)."""
    cost = tokens_per_param * best["n_params"] / best["tokens_per_usd"]
    cost = cost[np.isfinite(cost) & (cost > 0)]
    if cost.empty:
        return []
    lo, hi = math.floor(math.log10(cost.min())), math.ceil(math.log10(cost.max()))
    return [10.0 ** k for k in range(lo, hi + 1)][:MAX_BUDGETS]


def targets(best: pd.DataFrame, tokens_per_param: float = DEFAULT_TOKENS_PER_PARAM) -> dict[float, str]:
    """Each model's loss at tokens_per_param x N tokens, to two decimals, highest first -> the
    model's name: the losses a reader asks "which model reaches this, for how much?" about."""
    losses = scaling_law.loss(best["n_params"], tokens_per_param * best["n_params"])
    out: dict[float, str] = {}
    for model, value in sorted(zip(best["model"], losses), key=lambda mv: -mv[1]):
        if np.isfinite(value):
            out.setdefault(round(float(value), 2), model)
    return out


def loss_for_budget(best: pd.DataFrame, amounts: list[float],
                    tokens_per_param: float = DEFAULT_TOKENS_PER_PARAM) -> pd.DataFrame:
    """Per model: its cheapest configuration, tokens per $, its global batch against the critical
    batch at the loss of a tokens_per_param run, the loss floor, and the loss each budget buys."""
    table = best[["model", "configuration", "tokens_per_usd"]].copy()
    table["tokens/step"] = best["tokens_per_step"]
    at = scaling_law.loss(best["n_params"], tokens_per_param * best["n_params"])
    table["critical batch"] = scaling_law.critical_batch_tokens(at)
    table["loss floor"] = scaling_law.loss_floor(best["n_params"])
    for usd in amounts:
        table[f"${usd:,.0f}"] = scaling_law.loss(best["n_params"], usd * best["tokens_per_usd"])
    return table


def cost_of_loss(best: pd.DataFrame, losses: dict[float, str] | list[float]) -> pd.DataFrame:
    """Per model: the dollars to reach each target loss (a column each, named by the model whose
    target it is, where given); `unreachable` at or below the model's floor."""
    table = best[["model"]].copy()
    for target in losses:
        usd = scaling_law.tokens_for_loss(best["n_params"], target) / best["tokens_per_usd"].to_numpy()
        whose = f" ({losses[target]}'s)" if isinstance(losses, dict) else ""
        table[f"loss {target:.2f}{whose}"] = [v if np.isfinite(v) else "unreachable" for v in usd]
    return table


def past_critical_batch(best: pd.DataFrame, tokens_per_param: float = DEFAULT_TOKENS_PER_PARAM) -> list[str]:
    """The models whose cheapest configuration's global batch is past the critical batch at the
    loss of a tokens_per_param run: there each token buys less loss than the law's rate says."""
    at = scaling_law.loss(best["n_params"], tokens_per_param * best["n_params"])
    past = best["tokens_per_step"].to_numpy() > scaling_law.critical_batch_tokens(at)
    return best.loc[past, "model"].tolist()


def sections(df: pd.DataFrame, tokens_per_param: float = DEFAULT_TOKENS_PER_PARAM):
    """(text, [(caption, table)]) for the report's "loss you can buy" section; text alone where no
    trial has a price."""
    best = cheapest(df)
    if best.empty:
        return (["No trial has a price, so no budget can be turned into tokens; re-price with --prices PROFILE."], [])
    amounts, losses = budgets(best, tokens_per_param), targets(best, tokens_per_param)
    text = [
        f"What a budget buys and what a loss costs, per model, from its measured tokens per $ (its cheapest "
        f"configuration per token) and {scaling_law.SOURCE}. Targets: each model's loss at {tokens_per_param:g} "
        "tokens per parameter (each column names whose); unreachable: at or below the model's loss floor (its loss "
        "with unlimited data). Dollars for the training tokens alone: start-up, checkpoints and evaluation are not "
        "in them.",
        *scaling_law.CAVEATS,
    ]
    past = past_critical_batch(best, tokens_per_param)
    text.append(f"Warning: past the critical batch (tokens/step above it), so the losses below are optimistic: "
                f"{', '.join(past)}." if past else
                f"Every model's cheapest configuration trains below the critical batch at its {tokens_per_param:g} "
                "tokens-per-parameter loss (tokens/step against critical batch below).")
    tables = [("Loss (nats per token, on the law's data) a budget buys",
               loss_for_budget(best, amounts, tokens_per_param)),
              ("$ a target loss costs", cost_of_loss(best, losses))]
    return text, tables
