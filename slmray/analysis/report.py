"""The analysis report: `report.md`, `report.html` (figures inline) and the PNGs, in one folder.

Both renderings come from the same list of sections, so they say the same thing.  It opens
with the decision per model (`slmray.analysis.decision`: what to pick, why, how sure, what a run
costs) and the loss a budget buys (`slmray.analysis.budget`), then the key findings and the
like-for-like tables behind them; where the table recorded `slmray.predict.estimate`'s
predictions, a section sets them against the measurements; the planner's runs close it.  A table
with no ok trials gives a report that says so, and no figures.
"""

from __future__ import annotations

import base64
import html
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from slmray.analysis import accuracy, budget, decision, findings, plots
from slmray.analysis.costs import PRICED_COLUMNS, money_metric
from slmray.analysis.pareto import Objective, pareto_front
from slmray.analysis.table import config_label, ok, sort_by_model, summary
from slmray.catalog.prices import PriceBook
from slmray.planning.assumptions import DEFAULT_TOKENS_PER_PARAM
from slmray.planning.rank import DEFAULT_OBJECTIVES as PLANNER_OBJECTIVES
from slmray.planning.rank import DEFAULT_TOLERANCE, describe
from slmray.planning.run import billed_gpu_shares

DEFINITIONS = (
    "tokens/s: global training tokens per second over the measured steps (warm-up excluded), from the trainer.",
    "Cost of a trial: the hourly price of the instances that hold its GPUs, idle ones included (slmray.catalog.rent); "
    "price per GPU-hour x GPUs used with --per-gpu-pricing, a price file or per-GPU prices such as the paper's; "
    "tokens per $ = tokens/s x 3600 / price per hour; $ per billion tokens = price per hour / (tokens/s x 3600) x 1e9.",
    "Loss you can buy: L(N, D) of a scaling law (slmray.core.scaling_law) at the tokens a budget buys at the "
    "model's measured tokens per $; it replaces the seed paper's loss per $ (Eq. 1), which within a model ranks "
    "as tokens per $ does.",
    "Each comparison holds everything but the compared factor fixed: a row per setting the table varies (GPU type "
    "and count, strategy, sequence length, backend, loss kernel, precision, activation checkpointing, attention, "
    "compile); each cell is the best ok trial over the per-device batch (the GPU-type tables: at equal batch). A "
    "row where only one side ran is left out. A cell whose trials all ran out of memory reads oom (a figure marks "
    "it x at 0, with no line down to it).",
    "Pareto front: ok trials no other trial beats on every objective at once, per model.",
    "MFU: tokens/s x training FLOPs per token (6N + 12LdT, N with embeddings; slmray.train.metrics) over the GPU's "
    "dense BF16 peak, FP8 runs too (their BF16-equivalent); the key findings give FP8 runs against the dense FP8 "
    "peak beside it, labelled.",
    "Where a table has trials with and without torch.compile, the per-model tables show each setting on its own "
    "row, and the key findings read the trials without it, so that compile does not mix into them.",
)


@dataclass
class Section:
    title: str
    text: list[str] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)


FIGURES = ("predictions.png", "pareto.png", "scaling.png", "batch.png", "attention.png", "ratios.png", "memory.png")
"""Every figure a report may draw (its file name); one it leaves out this time is removed from the folder."""


@dataclass(frozen=True)
class Report:
    markdown: Path
    html: Path
    figures: tuple[Path, ...]
    recommendations: pd.DataFrame
    """`decision.summary_table`: one row per model (empty without ok trials)."""


def cell(value: object) -> str:
    """A table value as text: thousands separators for big numbers, 3 significant digits else."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, (bool, np.bool_, str)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if abs(value) >= 1000 or (abs(value) >= 1 and value == int(value)):
            return f"{value:,.0f}"
        return f"{value:.3g}"
    return str(value)


def _text_frame(df: pd.DataFrame) -> pd.DataFrame:
    return df.astype(object).map(cell) if not df.empty else df


def _has_values(df: pd.DataFrame, column: str) -> bool:
    return bool(np.isfinite(ok(df)[column].astype(float)).any())


def _figure(section: Section, fig: Figure | plots.NotDrawn, out_dir: Path, name: str, caption: str) -> None:
    if isinstance(fig, plots.NotDrawn):
        section.text.append(f"Not drawn, {name}: {fig}.")
    else:
        section.figures.append((caption, plots.save(fig, out_dir / name)))


def _decision(df: pd.DataFrame, objectives: Sequence[Objective], tokens_per_param: float,
              book: PriceBook | None, decided: dict) -> tuple[list[Section], pd.DataFrame]:
    """The report's first sections: per model, what to pick and the planner's run beside it, then why
    and how sure (`slmray.analysis.decision`)."""
    picks = decision.choose(df, objectives, tokens_per_param)
    alternates = decision.alternatives(df, picks, objectives, tokens_per_param, book)
    table = decision.summary_table(df, objectives, tokens_per_param, picks, alternates)
    lead = (f"Per model, the measured configuration to pick under {', then '.join(map(str, objectives))}, and what a "
            f"run of {tokens_per_param:g} tokens per parameter costs on it; why and how sure in the next section.")
    if alternates:
        lead += (" Where the pick ran only on a GPU type these prices leave out, the row below it is the priced "
                 "alternative the planner finds at the pick's settings (batch and placement free), labelled "
                 "predicted with its interval: beside the measured pick, not in its place.")
    planner = (f"The planner's run (`python -m slmray.recommend`, as in 'Planning a run' below) answers another "
               f"question: the run of {tokens_per_param:g} tokens per parameter ranked by "
               f"{describe(PLANNER_OBJECTIVES, DEFAULT_TOLERANCE)}, on 1 to 8 GPUs at the prices of this report; "
               "`measured` where a table ran the option, else `predicted` "
               "with its 80% interval. Where it differs from the pick, read the two together: the pick is the best "
               "measured under the objectives, the planner's the best run for the money, possibly unmeasured.")
    if not (book is not None and book.per_gpu) and billed_gpu_shares(df):
        planner += (" The trials recorded the price of the GPUs they used, a share of an instance that holds more "
                    "(as on a machine one has); the planner rents whole instances, idle GPUs included, so the same "
                    "configuration can cost it several times the pick's run $ (with --prices PROFILE --per-gpu-pricing "
                    "both bill the GPUs used).")
    pick = Section("Decision: what to pick, per model", [lead, planner],
                   [("The pick per model, measured tokens/s held for the whole run", table),
                    ("The planner's run per model", decision.planner_table(decided))])
    why = Section("Why each pick, and how sure", decision.summary_lines(df, objectives, tokens_per_param, picks,
                                                                        alternates))
    return [pick, why], table


def _loss_you_can_buy(df: pd.DataFrame, tokens_per_param: float) -> Section:
    text, tables = budget.sections(df, tokens_per_param)
    return Section("Loss you can buy", text, tables)


def _key_findings(df: pd.DataFrame, money: str) -> Section:
    section = Section("Key findings")
    section.text.append(
        "Per model, smallest first (per GPU type where the table has several). fused / eager: fused-attention tokens/s "
        "over eager, each at its best batch, with everything else as where fused is fastest; best batch: the "
        f"per-device batch with the most {plots.label(money)}, saturates at: the smallest batch within 5% of it with "
        "everything else as at the best batch; eager / fused OOM from: the smallest batch at which every such trial "
        "ran out of memory (- where none did); best MFU: over the bf16 trials, against the BF16 peak (where the table "
        "has FP8 trials, the best FP8 one against the dense FP8 peak, and beside it the same run against the BF16 "
        "peak, its BF16-equivalent); compile on / off: fused tokens/s with torch.compile over without, with "
        "everything else as where compiled fused attention is fastest."
        + (" All but the last two columns read the trials without compile." if findings.mixes_compile(df) else ""))
    section.tables.append(("Key findings per model", findings.key_findings(df, money)))
    return section


def _findings(df: pd.DataFrame, money: str) -> Section:
    """The comparisons, each like for like: a row holds every configuration key but the compared
    one fixed (`findings.row_keys`), and a row with one side alone is not printed."""
    attention_rows = findings.row_keys(df, compared="attention")
    section = Section("Findings")
    section.text.append(
        "Like with like: each row holds every setting the table varies but the compared one equal (here: "
        f"{', '.join(findings.held_fixed(df, None)) or 'none'}); each cell is the best ok trial over the per-device "
        "batch, except in the GPU-type tables, which hold the batch equal too. Rows where only one side ran compare "
        "nothing and are left out.")
    by_gpu_type = findings.row_keys(df, "per_device_batch", compared="gpu_type")
    comparisons = [
        ("FlashAttention (fused) vs eager attention, tokens/s", "attention",
         findings.attention_effect(df, rows=attention_rows)),
        ("torch.compile off and on, tokens/s", "compile", findings.compile_effect(df)),
        ("bf16 vs FP8 (torchao.float8) at the same configuration: tokens/s, peak GiB", "precision",
         findings.precision_effect(df)),
        ("MFU (against the BF16 peak, FP8 runs too) by attention backend", "attention",
         findings.grid(df, "mfu", attention_rows, "attention")),
        ("DDP vs FSDP by model size and GPU count, tokens/s", "strategy",
         findings.strategy_effect(df, rows=findings.row_keys(df, "num_gpus", compared="strategy"))),
        ("Scaling with GPU count: tokens/s, tokens per $, efficiency", "num_gpus", findings.gpu_scaling(df)),
        (f"Per-device batch size, {plots.label(money)}", "per_device_batch",
         findings.batch_effect(df, money, findings.row_keys(df, compared="per_device_batch"))),
        ("Out-of-memory boundary: largest batch that ran, smallest that did not", "per_device_batch",
         findings.oom_boundary(df)),
        (f"GPU type at equal settings and batch, {plots.label(money)}", "gpu_type",
         findings.gpu_type_effect(df, money, by_gpu_type)),
    ]
    if money != "tokens_per_s" and not comparisons[-1][2].empty:  # without prices the table above is this one
        comparisons.append(("GPU type at equal settings and batch, tokens/s", "gpu_type",
                            findings.gpu_type_effect(df, "tokens_per_s", by_gpu_type)))
    for caption, compared, table in comparisons:
        if table.empty:
            section.text.append(f"{caption} (not shown: {findings.nothing_compared(df, compared)}).")
        else:
            section.tables.append((caption, table))
    return section


def _predictions(df: pd.DataFrame, out_dir: Path) -> Section:
    section = Section("Predicted vs measured")
    s = accuracy.summarise(df)
    right, memory, tokens = (accuracy.percent(100 * s["oom_accuracy"], 0), accuracy.percent(s["memory_mdape"], 2),
                             accuracy.percent(s["tokens_mdape"], 1))
    section.text.append(
        f"slmray.predict.estimate's predictions, recorded in the table before each trial ran, against the measurements: "
        f"{s['rows']} ok or out-of-memory trials, {s['ok']} ok. Out of memory predicted right for {right}; median "
        f"absolute error {memory} on peak memory and {tokens} on tokens/s (ok trials: an out-of-memory trial's peak "
        "is where it failed).")
    if (accuracy.judged(df)["gpu_type"] == "cpu").any():
        section.text.append("On the CPU the estimate is deliberately rough (slmray.predict.estimate) and the trainer "
                            "measures no peak memory.")
    section.tables += [("Prediction error per model", accuracy.accuracy_table(df)),
                       ("Out of memory, predicted against what happened (trials)", accuracy.oom_confusion(df))]
    _figure(section, plots.prediction_figure(df), out_dir, FIGURES[0],
            "predicted against measured peak memory and tokens/s (dashed: y = x)")
    return section


def _front(df: pd.DataFrame, objectives: Sequence[Objective], out_dir: Path, unpriced: bool = False) -> Section:
    """`unpriced`: an objective needs a price and no trial has one, so the plot would have no cost axis."""
    section = Section("Pareto front")
    if not objectives:
        section.text.append("No objective has values; no front.")
        return section
    front = pareto_front(df, objectives, by="model")
    rows = sort_by_model(df[front], df)
    table = rows.assign(configuration=config_label(rows))[["model", "configuration", *(o.column for o in objectives)]]
    section.text.append(f"Objectives: {', '.join(map(str, objectives))}; non-dominated ok trials per model.")
    section.tables.append(("Non-dominated trials", table))
    if unpriced:
        section.text.append("No trial has a price, so there is no cost axis to plot the front on (every trial would "
                            "sit at $0); re-price with --prices PROFILE for the plot.")
    elif len(objectives) >= 2:
        x, y, instead = plots.pareto_axes(df, objectives)
        fig = plots.pareto_figure(df, objectives, pareto_front(df, objectives[:2], by="model"))
        if instead and not isinstance(fig, plots.NotDrawn):
            section.text.append(f"The figure draws {x} against {y} {instead}.")
        _figure(section, fig, out_dir, FIGURES[1], f"Pareto front per model, {x} vs {y}")
    else:
        section.text.append("A Pareto plot needs two objectives with values.")
    return section


def _figures(df: pd.DataFrame, money: str, out_dir: Path) -> Section:
    section = Section("Figures")
    section.text.append(
        "Drawn the paper's way: a panel per model (and per setting the table varies that the figure does not "
        "compare), the per-device batch or GPU count on a log2 axis, a line per alternative at otherwise equal "
        "settings; x: every trial of a point ran out of memory; a gap: not run; error bars: the spread over repeats.")
    _figure(section, plots.scaling_figure(df), out_dir, FIGURES[2],
            "tokens/s by GPU count, a line per GPU type and strategy")
    _figure(section, plots.batch_figure(df, money), out_dir, FIGURES[3],
            f"{plots.label(money)} by per-device batch, a line per GPU type and attention backend")
    _figure(section, plots.attention_figure(df), out_dir, FIGURES[4],
            "tokens/s by per-device batch, a line per attention backend")
    _figure(section, plots.ratio_figure(df), out_dir, FIGURES[5],
            "fused / eager, GPU type, compile on / off and FP8 / bf16 as tokens/s ratios at equal settings")
    _figure(section, plots.memory_figure(df), out_dir, FIGURES[6],
            "peak memory by per-device batch, out-of-memory trials marked at the GPU's capacity")
    return section


def _analysis(
    df: pd.DataFrame, objectives: Sequence[Objective], out_dir: Path, notes: list[str], tokens_per_param: float,
    book: PriceBook | None = None,
) -> tuple[list[Section], pd.DataFrame]:
    """The sections of a table with ok trials; what had to be left out is added to `notes`."""
    usable = [o for o in objectives if _has_values(df, o.column)]
    notes += [f"Objective {o} has no values among the ok trials (no prices? re-price with --prices PROFILE); "
              "it is left out." for o in objectives if o not in usable]
    money = money_metric(df)
    if money == "tokens_per_s":
        notes.append("No trial has a price, so the cost tables and plots show tokens/s instead of tokens per $.")
    decided = decision.decisions(df, tokens_per_param, book=book)
    if usable:
        choice, best = _decision(df, objectives, tokens_per_param, book, decided)
    else:
        best = pd.DataFrame()
        choice = [Section("Decision: what to pick, per model", ["No pick: no objective has values among the ok trials."])]
    predictions = [_predictions(df, out_dir)] if accuracy.has_predictions(df) else []
    unpriced = money == "tokens_per_s" and any(o.column in PRICED_COLUMNS for o in objectives)
    sections = [*choice, _loss_you_can_buy(df, tokens_per_param), _key_findings(df, money), _findings(df, money),
                *predictions, _front(df, usable, out_dir, unpriced), _figures(df, money, out_dir),
                *(Section(*parts) for parts in decision.sections(decided, tokens_per_param)),
                Section("How the numbers are computed", list(DEFINITIONS))]
    return sections, best


def write_report(
    df: pd.DataFrame, out_dir: str | Path, objectives: Sequence[Objective], sources: Sequence[str] = (),
    notes: Sequence[str] = (), tokens_per_param: float = DEFAULT_TOKENS_PER_PARAM, book: PriceBook | None = None,
) -> Report:
    """Analyse `df` (a results frame with cost metrics added) and write the report into `out_dir`;
    `book`, the prices `df` was re-priced with (None: those it recorded), prices the alternative to
    a pick without a price.

    Whole or not at all: everything is written into a hidden folder beside `out_dir` and moved in
    only once the report is complete, so a failure leaves the folder as it was; an earlier report's
    figures this one does not draw are removed, so its text and figures never mix."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        report = _write(df, staging, objectives, sources, notes, tokens_per_param, book)
        out_dir.mkdir(exist_ok=True)
        written = {p.name for p in (report.markdown, report.html, *report.figures)}
        for name in set(FIGURES) - written:
            (out_dir / name).unlink(missing_ok=True)
        for path in (report.markdown, report.html, *report.figures):
            os.replace(path, out_dir / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    moved = tuple(out_dir / p.name for p in report.figures)
    return Report(out_dir / report.markdown.name, out_dir / report.html.name, moved, report.recommendations)


def _write(
    df: pd.DataFrame, out_dir: Path, objectives: Sequence[Objective], sources: Sequence[str], notes: Sequence[str],
    tokens_per_param: float, book: PriceBook | None = None,
) -> Report:
    notes = list(notes)
    head = Section("slmray analysis")
    head.text += [f"Results: {', '.join(sources) or '(in memory)'}.", f"Objectives: {', '.join(map(str, objectives))}."]
    if df.empty:
        sections, best = [Section("No trials", ["The results table is empty: there is nothing to analyse."])], pd.DataFrame()
    elif not (df["status"] == "ok").any():
        counts = ", ".join(f"{k} {v}" for k, v in sorted(df["status"].value_counts().items()))
        sections, best = [Section("No successful trials", [
            f"The table has {len(df)} trials and none finished ok ({counts}): there is nothing to compare.",
            "No pick: no successful trials.",
        ])], pd.DataFrame()
    else:
        sections, best = _analysis(df, objectives, out_dir, notes, tokens_per_param, book)
    head.text += notes
    if not df.empty:  # after the decision and what a budget buys, where there is one
        trials = Section("Trials", tables=[("Trials per model and status", summary(df))])
        at = next((i + 1 for i, s in enumerate(sections) if s.title == "Loss you can buy"), 0)
        sections = [*sections[:at], trials, *sections[at:]]
    sections = [head, *sections]
    md, page = out_dir / "report.md", out_dir / "report.html"
    md.write_text(render_markdown(sections))
    page.write_text(render_html(sections))
    figures = tuple(path for s in sections for _, path in s.figures)
    return Report(md, page, figures, best)


def _md_table(df: pd.DataFrame) -> str:
    text = _text_frame(df)
    rows = [[str(c) for c in text.columns], *text.astype(str).values.tolist()]
    rows = [[c.replace("|", "\\|") for c in r] for r in rows]
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join([lines[0], "|" + " --- |" * len(rows[0]), *lines[1:]])


def _render(sections: Sequence[Section], heading, paragraph, table, figure) -> list[str]:
    """Walk the sections once; the four callables write each part in the target format."""
    out = []
    for i, s in enumerate(sections):
        out.append(heading(1 if i == 0 else 2, s.title))
        out += [paragraph(t) for t in s.text]
        out += [table(caption, frame) for caption, frame in s.tables]
        out += [figure(caption, path) for caption, path in s.figures]
    return out


def render_markdown(sections: Sequence[Section]) -> str:
    return "\n".join(_render(
        sections,
        heading=lambda level, title: f"{'#' * level} {title}\n",
        paragraph=lambda text: f"{text}\n",
        table=lambda caption, frame: f"**{caption}**\n\n{_md_table(frame) if not frame.empty else '(no rows)'}\n",
        figure=lambda caption, path: f"![{caption}]({path.name})\n",
    ))


def _html_figure(caption: str, path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def render_html(sections: Sequence[Section]) -> str:
    body = _render(
        sections,
        heading=lambda level, title: f"<h{level}>{html.escape(title)}</h{level}>",
        paragraph=lambda text: f"<p>{html.escape(text)}</p>",
        table=lambda caption, frame: f"<h3>{html.escape(caption)}</h3>"
        + (_text_frame(frame).to_html(index=False) if not frame.empty else "<p>(no rows)</p>"),
        figure=_html_figure,
    )
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}")
    head = f"<meta charset='utf-8'><title>slmray analysis</title><style>{style}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{''.join(body)}</body></html>\n"
