"""A `Decision` in words and tables: the sentences of the answer, the options as display text, the
estimator's corrections and the exclusions.  One module for `python -m slmray.recommend` (`render`)
and the report's planning sections (`slmray.analysis.decision`), so that both say the same thing."""

from __future__ import annotations

import math

import pandas as pd

from slmray.core import scaling_law
from slmray.planning.run import Decision
from slmray.predict.calibration import POOLED
from slmray.train.config import CONFIG_KEYS, TrainConfig, config_label

SHOWN = ("gpu_type", "num_gpus", "per_device_batch", "attention", "strategy", "compile")
"""Configuration columns every options table shows."""
SHOWN_WHERE_SET = tuple(k for k in CONFIG_KEYS if k not in ("model", *SHOWN))
"""The other configuration columns (precision, sequence, checkpointing, loss kernel, backend): shown
where the options differ in them or leave TrainConfig's default, so no two rows read alike."""
NUMBERS = ("tokens_per_s", "source", "hours", "gpu_hours", "usd")
HEADERS = {"gpu_type": "gpu", "num_gpus": "gpus", "per_device_batch": "batch", "tokens_per_s": "tokens/s",
           "gpu_hours": "GPU-h", "usd": "$", "seq_len": "seq", "activation_checkpointing": "AC", "loss_kernel": "loss"}
LEFT = {"gpu", "attention", "strategy", "source", "tokens/s from", "why excluded", "compile", "precision", "AC",
        "loss", "backend"}
"""Text columns of a printed table, left-aligned; the numbers are right-aligned."""


def option_label(o) -> str:
    """`H200 x8 fsdp sdpa b16` (+ compile, precision, checkpointing, sequence length where not the default)."""
    return config_label(o, model=False)


def money(usd: float) -> str:
    return "$?" if not math.isfinite(usd) else f"${usd:,.0f}" if usd >= 100 else f"${usd:,.2f}"


def hours(h: float) -> str:
    return "?" if not math.isfinite(h) else f"{h:,.1f} h" if h >= 10 else f"{h:,.2f} h"


def summary(o) -> str:
    """One option in a line: its label, tokens/s and where from, hours, GPU-hours and dollars."""
    return (f"{option_label(o)}: {o['tokens_per_s']:,.0f} tokens/s ({o['source']}), {hours(o['hours'])}, "
            f"{o['gpu_hours']:,.1f} GPU-hours, {money(o['usd'])}")


def answer(d: Decision) -> list[str]:
    """The decision in sentences: the cheapest within the deadline, the fastest within the
    budget, or, where nothing meets them, the nearest options and what they would need."""
    priced = d.options[d.options["excluded"].isin(["", *_over(d.options)])]
    priced = priced[priced["usd_per_gpu_hour"].notna()]
    lines = []
    if priced.empty:
        return ["No option fits in memory with a price: nothing to recommend."]
    deadline, budget = d.deadline_h, d.budget_usd
    in_time = priced if deadline is None else priced[priced["hours"] <= deadline]
    in_budget = priced if budget is None else priced[priced["usd"] <= budget]
    both = in_time.loc[in_time.index.intersection(in_budget.index)]
    if deadline is None and budget is None:
        lines.append(f"Cheapest: {summary(priced.sort_values(['usd', 'hours']).iloc[0])}.")
        lines.append(f"Fastest: {summary(priced.sort_values(['hours', 'usd']).iloc[0])}.")
        return lines + measured_only(priced)
    if deadline is not None:
        if len(in_time):
            pick = (both if len(both) else in_time).sort_values(["usd", "hours"]).iloc[0]
            within = " and the budget" if budget is not None and len(both) else ""
            lines.append(f"Cheapest within the deadline of {hours(deadline)}{within}: {summary(pick)}.")
        else:
            fastest = priced.sort_values(["hours", "usd"]).head(3)
            lines.append(f"No option finishes within {hours(deadline)}. Nearest (fastest):")
            lines += [f"  {summary(o)}: needs a deadline of {hours(o['hours'])} "
                      f"({o['hours'] / deadline:.2f}x)" for _, o in fastest.iterrows()]
            lines.append("  or more GPUs than --max-gpus allows, or fewer tokens.")
    if budget is not None:
        if len(in_budget):
            pick = (both if len(both) else in_budget).sort_values(["hours", "usd"]).iloc[0]
            within = " and the deadline" if deadline is not None and len(both) else ""
            lines.append(f"Fastest within the budget of {money(budget)}{within}: {summary(pick)}.")
        else:
            cheapest = priced.sort_values(["usd", "hours"]).head(3)
            lines.append(f"No option costs {money(budget)} or less. Nearest (cheapest):")
            lines += [f"  {summary(o)}: needs a budget of {money(o['usd'])} (+{money(o['usd'] - budget)})"
                      for _, o in cheapest.iterrows()]
    if deadline is not None and budget is not None and len(in_time) and len(in_budget) and not len(both):
        t = in_time.sort_values(["usd", "hours"]).iloc[0]
        b = in_budget.sort_values(["hours", "usd"]).iloc[0]
        lines.append(f"No option meets both: within the deadline the cheapest costs {money(t['usd'])} "
                     f"({money(t['usd'] - budget)} over the budget); within the budget the fastest takes "
                     f"{hours(b['hours'])} ({hours(b['hours'] - deadline)} over the deadline).")
    return lines + (measured_only(both) if len(both) else [])


def measured_only(options: pd.DataFrame) -> list[str]:
    """Where the picks are predicted: the best of the options a table measured, which rest on no estimate."""
    measured = options[options["source"] == "measured"]
    if measured.empty or (options["source"] == "measured").all():
        return []
    cheapest = measured.sort_values(["usd", "hours"]).iloc[0]
    fastest = measured.sort_values(["hours", "usd"]).iloc[0]
    if cheapest.name == fastest.name:
        return [f"Measured only (no estimate involved): {summary(cheapest)}."]
    return [f"Measured only (no estimate involved): cheapest {summary(cheapest)}; fastest {summary(fastest)}."]


def _over(options: pd.DataFrame) -> list[str]:
    """The exclusion reasons that are the deadline's or the budget's (such options are priced)."""
    return [r for r in options["excluded"].unique() if r.startswith("over the")]


def options_table(options: pd.DataFrame, reason: bool = False) -> pd.DataFrame:
    """Options as display text: `SHOWN`, those of `SHOWN_WHERE_SET` the options set, `NUMBERS`."""
    set_ = [c for c in SHOWN_WHERE_SET
            if c in options and (options[c].nunique() > 1 or (options[c] != getattr(TrainConfig, c)).any())]
    out = options[[*SHOWN, *set_, *NUMBERS]].copy()
    for c in ("compile", "activation_checkpointing"):
        if c in out:
            out[c] = out[c].map({True: "yes", False: "no"})
    out["tokens_per_s"] = out["tokens_per_s"].map(lambda v: "-" if not math.isfinite(v) else f"{v:,.0f}")
    for c in ("hours", "gpu_hours"):
        out[c] = out[c].map(lambda v: "-" if not math.isfinite(v) else f"{v:,.1f}" if v >= 10 else f"{v:,.2f}")
    out["usd"] = out["usd"].map(lambda v: "-" if not math.isfinite(v) else f"{v:,.0f}" if v >= 100 else f"{v:,.2f}")
    out.insert(len(SHOWN) + len(set_), "tokens/step", tokens_per_step(options).map(lambda v: f"{v:,.0f}"))
    if reason:
        out["why excluded"] = options["excluded"]
    else:
        out["tokens/s from"] = options["basis"]
    return out.rename(columns=HEADERS).astype(str)


def tokens_per_step(options: pd.DataFrame) -> pd.Series:
    """The global batch of each option: per-device batch x sequence x GPUs x accumulation."""
    return options["per_device_batch"] * options["seq_len"] * options["num_gpus"] * options["grad_accum"]


def critical_batch_line(d: Decision) -> str:
    """The largest global batch among the ranked options against Kaplan's critical batch at the
    run's Chinchilla loss (`slmray.core.scaling_law`): past it, tokens buy less loss each."""
    if d.eligible.empty:
        return ""
    at = float(scaling_law.loss(d.n_params, d.tokens))
    critical = float(scaling_law.critical_batch_tokens(at))
    largest = float(tokens_per_step(d.eligible).max())
    verdict = ("WARNING: options past it buy less loss per token than their tokens suggest"
               if largest > critical else "every option is below it")
    return (f"Global batch: up to {largest:,.0f} tokens per step (tokens/step); the critical batch at this run's "
            f"loss {at:.2f} (Chinchilla law; Kaplan et al. 2020, Eq. 5.3) is about {critical:,.0f}: {verdict}.")


def text_table(frame: pd.DataFrame) -> list[str]:
    """A display frame (`options_table`) as aligned lines of text."""
    widths = [max(len(str(c)), *(len(v) for v in frame[c])) for c in frame.columns]

    def line(values):
        return "  ".join(v.ljust(w) if c in LEFT else v.rjust(w) for c, v, w in zip(frame.columns, values, widths)).rstrip()

    return [line([str(c) for c in frame.columns]), *(line(r) for r in frame.itertuples(index=False))]


def correction_lines(d: Decision) -> list[str]:
    lines = ["Estimator correction, measured / predicted tokens/s refitted on the ok trials given "
             "(leave-one-out: each trial predicted from the others):"]
    if not d.corrections:
        return [lines[0][:-1] + ": none, no ok trial on a GPU of gpus.csv."]
    lines += [f"  {c.describe()}" for g, c in d.corrections.items() if g != POOLED]
    if POOLED in d.corrections:
        lines.append(f"  {d.corrections[POOLED].describe()} (for GPU types without trials)")
    return lines


def excluded(d: Decision) -> pd.DataFrame:
    return d.options[d.options["excluded"] != ""]


def excluded_counts(d: Decision) -> str:
    """`12 out of memory, 3 over the deadline`: each reason (details dropped) and how many options it excludes."""
    reasons = excluded(d)["excluded"].str.split(", ").explode().str.replace(r" \(.*", "", regex=True)
    return ", ".join(f"{n} {r}" for r, n in reasons.value_counts().items())


def render(d: Decision, top: int = 15) -> str:
    """The whole answer as `python -m slmray.recommend` prints it: the run, the assumptions, the
    corrections, the best `top` options, the answer, and the nearest excluded options."""
    ranked = d.eligible
    out_of = excluded(d)
    tokens = f"{d.tokens:,.0f} tokens ({d.tokens / d.n_params:.3g} per parameter)"
    out = [f"{d.model} ({d.n_params / 1e6:,.0f}M parameters) on {tokens}", ""]
    out += ["Assumptions:", *(f"  {line}" for line in d.assumptions.lines(d.n_params)), *(f"  {n}" for n in d.notes), ""]
    out += [*correction_lines(d), ""]
    limits = ([f"the deadline of {hours(d.deadline_h)}"] if d.deadline_h else []) + (
        [f"the budget of {money(d.budget_usd)}"] if d.budget_usd else [])
    head = f"Options{' within ' + ' and '.join(limits) if limits else ''}, cheapest first"
    if len(ranked):
        shown = ranked.head(top)
        out += [f"{head} ({len(shown)} of {len(ranked)}; --top):", *text_table(options_table(shown)), ""]
    else:
        out += [f"{head}: none.", ""]
    out += [*answer(d), critical_batch_line(d)]
    if len(out_of):
        out += ["", f"Excluded: {excluded_counts(d)}; nearest first:"]
        order = out_of.assign(_oom=out_of["excluded"].str.startswith("out of memory"))
        order = order.sort_values(["_oom", "usd", "hours"], na_position="last", kind="stable").head(top)
        out += text_table(options_table(order, reason=True))
    return "\n".join(out)
