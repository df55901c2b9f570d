"""Decisions as JSON for scripts (`python -m slmray.recommend --json`): per model the pick, the
runner-up and every option with its configuration (`CONFIG_KEYS`), placement, rental, speed,
hours, GPU-hours, dollars, source (measured or predicted) and the interval where predicted;
the levers where a limit is missed; where every measured option lacks a price, the best of them and
its priced alternative (`slmray.planning.alternative`).  Plain types only: NaN becomes null."""

from __future__ import annotations

import math

from slmray.planning.alternative import choose, unpriced_measured
from slmray.planning.run import Decision
from slmray.planning.text import best_measured, runner_up
from slmray.train.config import CONFIG_KEYS


def _plain(v):
    """numpy and pandas scalars as JSON's types; NaN and None as null."""
    if v is None:
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def option_record(d: Decision, o) -> dict:
    """One option: its configuration, where it runs, how it is billed, and the run's numbers."""
    predicted = o["source"] == "predicted"
    return {
        "config": {k: _plain(d.model if k == "model" else o[k]) for k in CONFIG_KEYS},
        "gpu_type": o["gpu_type"], "num_gpus": int(o["num_gpus"]), "strategy": o["strategy"],
        "instances": int(o["instances"]), "instance_type": o["instance_type"] or None,
        "gpus_billed": int(o["gpus_billed"]), "idle_gpus": int(o["idle_gpus"]), "rental": o["rental"] or None,
        "usd_per_hour": _plain(o["usd_per_hour"]),
        "tokens_per_s": _plain(o["tokens_per_s"]), "source": o["source"],
        "low": _plain(o["tokens_per_s_low"]) if predicted else None,
        "high": _plain(o["tokens_per_s_high"]) if predicted else None,
        "basis": o["basis"] or None, "one_gpu_tokens_per_s": _plain(o["one_gpu_tokens_per_s"]),
        "one_gpu_source": o["one_gpu_source"] or None, "scaling": _plain(o["scaling"]),
        "hours": _plain(o["hours"]), "gpu_hours": _plain(o["gpu_hours"]), "cost_usd": _plain(o["usd"]),
        # the run's dollars at the ends of the tokens/s interval: the fast end is the cheap one
        "cost_usd_low": _plain(d.usd_at(o, o["tokens_per_s_high"])) if predicted else None,
        "cost_usd_high": _plain(d.usd_at(o, o["tokens_per_s_low"])) if predicted else None,
        "usd_per_billion_tokens": _plain(o["usd_per_btok"]), "excluded": o["excluded"] or None,
    }


def unpriced_record(d: Decision) -> dict | None:
    """Where no measured option has a price: the best measured one and its priced alternative like for
    like (the option, what differs, the run's dollars at the ends of its interval), or why there is
    none; None where a measured option is priced."""
    measured = unpriced_measured(d)
    if measured is None:
        return None
    alt = choose(d, measured)
    if isinstance(alt, str):
        return {"measured": option_record(d, measured), "alternative": None, "no_alternative": alt}
    return {"measured": option_record(d, measured), "no_alternative": None,
            "alternative": {**option_record(d, alt.option), "differs": list(alt.differs),
                            "cost_usd_low": _plain(alt.usd_low), "cost_usd_high": _plain(alt.usd_high)}}


def best_measured_record(d: Decision, pick, ranked) -> dict | None:
    """Where a prediction is picked over measured options: the best measured one, its dollars over
    the pick's less one (0.041: 4.1% dearer) and whether they lie inside the pick's dollar interval
    (`text.best_measured`)."""
    found = best_measured(d, pick, ranked)
    if found is None:
        return None
    return {"option": option_record(d, found.option), "usd_over_pick": _plain(found.over),
            "inside_pick_interval": found.inside}


def decision_record(d: Decision) -> dict:
    ranked = d.eligible
    pick = ranked.iloc[0] if len(ranked) else None
    second = runner_up(ranked, pick) if pick is not None else None
    return {
        "model": d.model, "model_given": d.given or d.model, "n_params": d.n_params, "tokens": d.tokens,
        "predicted_only": d.predicted_only, "seq_len": d.seq_len, "deadline_hours": d.deadline_h,
        "budget_usd": d.budget_usd, "prices": d.profile, "per_gpu_pricing": d.per_gpu,
        "rank_by": list(d.objectives), "tolerance": d.tolerance,
        "pick": option_record(d, pick) if pick is not None else None,
        "runner_up": option_record(d, second) if second is not None else None,
        "best_measured": best_measured_record(d, pick, ranked) if pick is not None else None,
        "unpriced_measured": unpriced_record(d),
        "notes": list(d.notes), "assumptions": d.assumptions.lines(d.n_params),
        "levers": {k: [{key: _plain(v) for key, v in f.items()} for f in found] for k, found in d.levers.items()},
        "options": [option_record(d, o) for _, o in d.options.iterrows()],
    }


def as_json(decisions: list[Decision]) -> dict:
    """Every model's decision; options of each in rank order, the excluded ones with their reason."""
    return {"models": [decision_record(d) for d in decisions]}
