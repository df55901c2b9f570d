"""A `Decision` in words and tables: the sentences of the answer, the options as display text, the
estimator's corrections and the exclusions.  One module for `python -m slmray.recommend` (`render`)
and the report's planning sections (`slmray.analysis.decision`), so that both say the same thing."""

from __future__ import annotations

import math
from typing import NamedTuple

import pandas as pd

from slmray.catalog.prices import unit_note
from slmray.planning.alternative import Alternative, choose, unpriced_measured
from slmray.planning.options import CONFIG
from slmray.planning.rank import describe
from slmray.core import scaling_law
from slmray.planning.run import Decision
from slmray.predict.calibration import POOLED
from slmray.train.config import CONFIG_KEYS, TrainConfig, config_label

SHOWN_WHERE_SET = ("precision", "activation_checkpointing", "loss_kernel", "backend")
"""The configuration columns (precision, checkpointing, loss kernel, backend) shown only where the
options differ in them or leave TrainConfig's default, so no two rows read alike."""
_FIRST = ("gpu_type", "num_gpus")
SHOWN = (*_FIRST, *(k for k in CONFIG_KEYS if k not in ("model", *_FIRST, *SHOWN_WHERE_SET)))
"""Configuration columns every options table shows: the hardware first, then the rest of the
configuration's identity (`CONFIG_KEYS`) but the model and `SHOWN_WHERE_SET`."""
NUMBERS = ("tokens_per_s", "interval", "source", "hours", "gpu_hours", "usd", "usd_per_btok", "rental")
HEADERS = {"gpu_type": "gpu", "num_gpus": "gpus", "per_device_batch": "batch", "tokens_per_s": "tokens/s",
           "gpu_hours": "GPU-h", "usd": "$", "usd_per_btok": "$/B tokens", "seq_len": "seq",
           "activation_checkpointing": "AC", "loss_kernel": "loss", "rental": "rented as"}
LEFT = {"gpu", "attention", "strategy", "source", "tokens/s from", "why excluded", "compile", "precision", "AC",
        "loss", "backend", "rented as"}
"""Text columns of a printed table, left-aligned; the numbers are right-aligned."""


def option_label(o) -> str:
    """`H200 x8 fsdp sdpa b16` (+ compile, precision, checkpointing, sequence length where not the default)."""
    return config_label(o, model=False)


def placed_label(o) -> str:
    """`option_label` and how its GPUs are rented: `H200 x4 fsdp sdpa b16 on p5en.48xlarge, 8 GPUs, 4 idle`."""
    return f"{option_label(o)} on {o['rental']}" if o.get("rental") else option_label(o)


def rate(v: float) -> str:
    return "?" if not math.isfinite(v) else f"{v:,.0f}"


def compact(v: float) -> str:
    """`521k`, `1.2M`: a tokens/s figure in a narrow column."""
    return "?" if not math.isfinite(v) else f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.0f}k" if v >= 1e4 else f"{v:,.0f}"


def interval(o) -> str:
    """`402k-521k` for a predicted option, "" for a measured one."""
    low, high = o.get("tokens_per_s_low", math.nan), o.get("tokens_per_s_high", math.nan)
    return f"{compact(low)}-{compact(high)}" if math.isfinite(low) and math.isfinite(high) else ""


def money(usd: float) -> str:
    return "$?" if not math.isfinite(usd) else f"${usd:,.0f}" if usd >= 100 else f"${usd:,.2f}"


def hours(h: float) -> str:
    """`12.5 h`, `1.25 h`; a run under 0.1 h (a CPU smoke table's) in minutes or seconds, not `0.00 h`."""
    if not math.isfinite(h):
        return "?"
    if h >= 0.1:
        return f"{h:,.1f} h" if h >= 10 else f"{h:,.2f} h"
    return f"{h * 60:.1f} min" if h >= 1 / 60 else f"{h * 3600:.1f} s"


def summary(o) -> str:
    """One option in a line: its label, tokens/s and where from, hours, GPU-hours, dollars and rental."""
    rented = f" ({o['rental']})" if o.get("rental") else ""
    return (f"{option_label(o)}: {o['tokens_per_s']:,.0f} tokens/s ({o['source']}), {hours(o['hours'])}, "
            f"{o['gpu_hours']:,.1f} GPU-hours, {money(o['usd'])}{rented}")


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
    out = options.assign(interval="")[[*SHOWN, *set_, *NUMBERS]].copy()
    for c in ("compile", "activation_checkpointing"):
        if c in out:
            out[c] = out[c].map({True: "yes", False: "no"})
    out["tokens_per_s"] = out["tokens_per_s"].map(lambda v: "-" if not math.isfinite(v) else f"{v:,.0f}")
    for c in ("hours", "gpu_hours"):
        out[c] = out[c].map(lambda v: "-" if not math.isfinite(v) else f"{v:,.1f}" if v >= 10 else f"{v:,.2f}")
    out["usd"] = out["usd"].map(lambda v: "-" if not math.isfinite(v) else f"{v:,.0f}" if v >= 100 else f"{v:,.2f}")
    out["usd_per_btok"] = out["usd_per_btok"].map(lambda v: "-" if not math.isfinite(v) else f"{v:,.2f}")
    out["interval"] = [interval(o) for _, o in options.iterrows()]
    out["rental"] = options["rental"].replace("", "-")
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


def runner_up(ranked: pd.DataFrame, pick) -> pd.Series | None:
    """The best-ranked option of `ranked` on another GPU type or with another per-device
    configuration than `pick` (not the same one at another GPU count or strategy); else the next one."""
    other = ranked[(ranked["gpu_type"] != pick["gpu_type"])
                   | (ranked[list(CONFIG)] != pd.Series({c: pick[c] for c in CONFIG})).any(axis=1)]
    if len(other):
        return other.iloc[0]
    return ranked.iloc[1] if len(ranked) > 1 else None


def times(a: float, b: float) -> str:
    """`0.97x`, or `-` where the ratio is undefined (a free machine's $0 against $0)."""
    return f"{a / b:.2f}x" if b and math.isfinite(a) and math.isfinite(b) else "-"


def measured_gpu_ratio(options: pd.DataFrame, a: str, b: str) -> tuple[float, int]:
    """Median tokens/s ratio of GPU type `a` over `b` on one GPU, at equal settings (the
    configurations a table measured on both), and how many configurations; (NaN, 0) without any."""
    one = options[(options["source"] == "measured") & (options["num_gpus"] == 1) & (options["excluded"].isin(["", *_over(options)]))]
    rates = one.groupby(["gpu_type", *CONFIG])["tokens_per_s"].median()
    if a not in rates.index.get_level_values(0) or b not in rates.index.get_level_values(0):
        return math.nan, 0
    both = (rates.xs(a) / rates.xs(b)).dropna()
    return (float(both.median()), len(both)) if len(both) else (math.nan, 0)


def why(pick, second, options: pd.DataFrame | None = None) -> str:
    """The ratios that decide between the pick and the runner-up: dollars, then what makes them:
    tokens/s per GPU (the one-GPU rates they stand on, measured or predicted, and the predicted
    scaling) against the price per billed GPU-hour (idle GPUs included)."""
    per_gpu = pick["tokens_per_s"] / pick["num_gpus"], second["tokens_per_s"] / second["num_gpus"]
    billed = pick["usd_per_hour"] / pick["num_gpus"], second["usd_per_hour"] / second["num_gpus"]
    rates = pick["one_gpu_tokens_per_s"], second["one_gpu_tokens_per_s"]
    both = {pick["one_gpu_source"], second["one_gpu_source"]}
    kind = "measured" if both == {"measured"} else "predicted" if both == {"predicted"} else "one measured, one predicted"
    text = (f"{money(pick['usd'])} vs {money(second['usd'])} ({times(pick['usd'], second['usd'])}) and {hours(pick['hours'])} vs "
            f"{hours(second['hours'])} for the runner-up {placed_label(second)}: per GPU {rate(per_gpu[0])} vs "
            f"{rate(per_gpu[1])} tokens/s ({times(*per_gpu)}")
    if all(math.isfinite(r) for r in rates):
        text += f"; one-GPU rates {rate(rates[0])} vs {rate(rates[1])}, {times(*rates)} {kind}"
    scaling = [o["scaling"] for o in (pick, second) if o["num_gpus"] > 1 and math.isfinite(o["scaling"])]
    if scaling:
        text += f", scaling {' vs '.join(f'{x:.2f}' for x in (pick['scaling'], second['scaling']))} predicted"
    idle = ", idle GPUs of the instances included" if pick["instances"] or second["instances"] else ""
    text += f"), paying {money(billed[0])} vs {money(billed[1])} per GPU-hour used ({times(*billed)}{idle})"
    if options is not None and pick["gpu_type"] != second["gpu_type"]:
        ratio, n = measured_gpu_ratio(options, pick["gpu_type"], second["gpu_type"])
        if n:
            text += (f"; measured at equal settings on one GPU, {pick['gpu_type']} / {second['gpu_type']} tokens/s is "
                     f"{ratio:.2f}x (median of {n} configuration{'s' * (n > 1)})")
    return text


def how_sure(d: Decision, o) -> str:
    if o["source"] == "measured":
        return f"measured ({o['basis']})"
    low, high = o["tokens_per_s_low"], o["tokens_per_s_high"]
    return (f"predicted, {rate(low)}-{rate(high)} tokens/s ({money(d.usd_at(o, high))}-{money(d.usd_at(o, low))}); "
            f"tokens/s from {o['basis']}")


def decision_lines(d: Decision) -> list[str]:
    """The decision for one model, first thing printed: the option to pick with its tokens/s, $ per
    billion tokens and $ for the run, why (the ratios against the runner-up), how sure, and the
    runner-up; or, where no option meets the limits, the nearest and the levers."""
    ranked = d.eligible
    head = f"{d.model}{' (predicted only: no trial of it)' if d.predicted_only else ''}"
    if ranked.empty:
        lines = [f"{head}: no option meets {limits_text(d) or 'memory with a price'}."]
        for limit, found in d.levers.items():
            if found:
                lines.append(f"  Nearest for the {limit}: {summary(d.options.loc[found[0]['option_index']])}.")
        return lines + [f"  {line}" for line in lever_lines(d)]
    pick = ranked.iloc[0]
    second = runner_up(ranked, pick)
    lines = [f"{head}: {placed_label(pick)}: {rate(pick['tokens_per_s'])} tokens/s, {money(pick['usd_per_btok'])} per "
             f"billion tokens, {money(pick['usd'])} for the run ({hours(pick['hours'])}).",
             f"  How sure: {how_sure(d, pick)}."]
    if second is not None:
        lines.insert(1, f"  Why: {why(pick, second, d.options)}.")
        lines.append(f"  Runner-up: {summary(second)}, {money(second['usd_per_btok'])} per billion tokens.")
    return lines + best_measured_line(d, pick, ranked) + unpriced_lines(d)


class BestMeasured(NamedTuple):
    option: pd.Series
    dollars: str
    """Its dollars over the predicted pick's, as text (`+4.1%`)."""
    inside: bool
    """Whether they lie inside the pick's interval, in dollars (`interval`)."""
    interval: tuple[float, float]
    over: float | None
    """Its dollars over the pick's, less one (0.041: 4.1% dearer); None where the pick costs nothing."""


def best_measured(d: Decision, pick, ranked: pd.DataFrame) -> BestMeasured | None:
    """Where a prediction is picked over measured options: the best measured one against it; None
    where the pick is measured or nothing is."""
    measured = ranked[ranked["source"] == "measured"]
    if pick["source"] == "measured" or measured.empty:
        return None
    best = measured.iloc[0]  # `ranked` is in the decision's order
    over = best["usd"] / pick["usd"] - 1 if pick["usd"] > 0 else None
    dollars = (f"{over:+.1%}" if over is not None
               else f"{money(best['usd'] - pick['usd'])} more" if best["usd"] > 0 else "the same")
    low_usd, high_usd = d.usd_at(pick, pick["tokens_per_s_high"]), d.usd_at(pick, pick["tokens_per_s_low"])
    return BestMeasured(best, dollars, bool(low_usd <= best["usd"] <= high_usd), (low_usd, high_usd), over)


def best_measured_line(d: Decision, pick, ranked: pd.DataFrame) -> list[str]:
    """`best_measured` as a line: by how much the prediction beats the best measured option and
    whether that margin is inside the prediction's interval."""
    found = best_measured(d, pick, ranked)
    if found is None:
        return []
    best, dollars, inside, (low_usd, high_usd), _ = found
    verdict = " (on dollars the data cannot tell them apart)" if inside else ""
    return [f"  Best measured: {summary(best)}: against this predicted pick {dollars} in dollars, "
            f"{'inside' if inside else 'outside'} its {money(low_usd)}-{money(high_usd)} interval{verdict}, "
            f"and {best['hours'] / pick['hours'] - 1:+.1%} in hours."]


def alternative_text(alt: Alternative | str) -> str:
    """The priced alternative to a measured configuration without a price, in one sentence
    (`slmray.planning.alternative`): the option, its tokens/s, $ per billion tokens and $ for the
    run, each with its interval where predicted, what it stands on and what differs; or why there
    is none."""
    if isinstance(alt, str):
        return f"no priced alternative: {alt}"
    o = alt.option
    predicted = o["source"] == "predicted"

    def span(low: float, high: float) -> str:
        return f" ({money(low)}-{money(high)})" if predicted else ""

    text = (f"priced alternative, {o['source']}: {placed_label(o)}: {rate(o['tokens_per_s'])} tokens/s"
            + (f" ({rate(o['tokens_per_s_low'])}-{rate(o['tokens_per_s_high'])})" if predicted else "")
            + f", {money(o['usd_per_btok'])} per billion tokens"
            + span(alt.usd_low / alt.tokens * 1e9, alt.usd_high / alt.tokens * 1e9)
            + f", {money(o['usd'])} for the run{span(alt.usd_low, alt.usd_high)} ({hours(o['hours'])}); "
            f"tokens/s from {o['basis']}")
    if alt.differs:
        text += f"; differs from the measured pick in {', '.join(alt.differs)} (the rest equal)"
    text += f"; best by {describe(alt.objectives, alt.tolerance)} at {alt.profile} prices"
    return text + (" (predicted: measure it)" if predicted else "")


def unpriced_lines(d: Decision) -> list[str]:
    """Where every option a table measured lacks a price: the best of them, and its priced
    alternative like for like (`slmray.planning.alternative`), as the report's decision gives it."""
    measured = unpriced_measured(d)
    if measured is None:
        return []
    return [f"  Measured only where the {d.profile} prices have no price: {option_label(measured)}, "
            f"{rate(measured['tokens_per_s'])} tokens/s ({measured['basis']}); {alternative_text(choose(d, measured))}."]


def limits_text(d: Decision) -> str:
    limits = ([f"the deadline of {hours(d.deadline_h)}"] if d.deadline_h else []) + (
        [f"the budget of {money(d.budget_usd)}"] if d.budget_usd else [])
    return " and ".join(limits)


def lever_lines(d: Decision) -> list[str]:
    """Each missed limit's levers, one line each: what changes, its hours and dollars, measured or predicted."""
    lines = []
    for limit, found in d.levers.items():
        if not found:
            continue
        lines.append(f"Levers for the {limit}, on {found[0]['option']} (one at a time):")
        for f in found:
            effect = ("" if not math.isfinite(f["usd"]) else
                      f": {hours(f['hours'])}, {money(f['usd'])} ({f['source']})"
                      f"{', meets it' if f['meets'] else ', not enough alone'}")
            lines.append(f"  {f['lever']}: {f['change']}{effect}")
    return lines


def ranking_line(d: Decision) -> str:
    return (f"Ranked by {describe(d.objectives, d.tolerance)} (--rank-by, --tolerance); "
            f"{'per GPU-hour prices (--per-gpu-pricing)' if d.per_gpu else 'priced by the instances that hold the GPUs, idle ones included'}, "
            f"{d.profile} prices.{' ' + unit_note(d.profile) if unit_note(d.profile) else ''}")


def render_summary(decisions: list[Decision]) -> str:
    """The decision of every model planned, before any detail."""
    out = ["Decision" + (f" within {limits_text(decisions[0])}" if decisions and limits_text(decisions[0]) else "") + ":"]
    for d in decisions:
        out += decision_lines(d)
    if decisions:
        out.append(ranking_line(decisions[0]))
    return "\n".join(out)


def render(d: Decision, top: int = 15) -> str:
    """The detail behind one model's decision as `python -m slmray.recommend` prints it: the run,
    the assumptions, the corrections, the best `top` options, the answer, the levers where a limit
    is missed, and the nearest excluded options."""
    ranked = d.eligible
    out_of = excluded(d)
    tokens = f"{d.tokens:,.0f} tokens ({d.tokens / d.n_params:.3g} per parameter)"
    named = f" (--model {d.given})" if d.given and d.given != d.model else ""
    out = [f"{d.model}{named} ({d.n_params / 1e6:,.0f}M parameters) on {tokens}", ""]
    out += ["Assumptions:", *(f"  {line}" for line in d.assumptions.lines(d.n_params)), *(f"  {n}" for n in d.notes), ""]
    out += [*correction_lines(d), ""]
    limits = limits_text(d)
    head = f"Options{' within ' + limits if limits else ''}, ranked by {describe(d.objectives, d.tolerance)}"
    if len(ranked):
        shown = ranked.head(top)
        out += [f"{head} ({len(shown)} of {len(ranked)}; --top):", *text_table(options_table(shown)), ""]
    else:
        out += [f"{head}: none.", ""]
    out += [*answer(d), critical_batch_line(d)]
    levers = lever_lines(d)
    if levers:
        out += ["", *levers]
    if len(out_of):
        out += ["", f"Excluded: {excluded_counts(d)}; nearest first:"]
        order = out_of.assign(_oom=out_of["excluded"].str.startswith("out of memory"))
        order = order.sort_values(["_oom", "usd", "hours"], na_position="last", kind="stable").head(top)
        out += text_table(options_table(order, reason=True))
    return "\n".join(out)
