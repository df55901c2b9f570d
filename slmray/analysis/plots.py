"""The report's figures as matplotlib `Figure`s, drawn the seed paper's way and without pyplot
(no global state, no display needed).

Like with like: a point is one configuration (the mean of its ok trials; its error bar their
spread, or a single trial's spread over its repeats); a line varies one thing along x (the
per-device batch or the GPU count, on a log2 axis); every other setting the table varies is a
line of its own or a panel of its own, never folded into a best-of.  A point whose trials all ran
out of memory is an OOM marker at the foot of its panel (no line down to it); a point never run is
a gap (no line across it).  Where the finding is a ratio (fused / eager, one GPU type over another,
compile on / off, FP8 / bf16), `ratio_figure` draws the ratio at equal settings.  A figure with
nothing to show is `NotDrawn`, with the one-line reason the report prints.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, NullLocator

from slmray.analysis.accuracy import judged
from slmray.analysis.findings import VANILLA_ATTENTION
from slmray.analysis.pareto import Objective, pareto_front
from slmray.analysis.table import config_label, model_order, ok
from slmray.catalog.gpus import spec_for
from slmray.train.config import CONFIG_KEYS, ROW_DEFAULTS

LABELS = {
    "tokens_per_s": "tokens/s", "tokens_per_usd": "tokens per $", "usd_per_btok": "$ per billion tokens",
    "loss_per_usd": "loss reduction per $", "mfu": "MFU", "peak_mem_gb": "peak memory (GiB)",
}
"""Short names, for table captions."""
AXES = {
    "tokens_per_s": "throughput (tokens/s, all GPUs)", "tokens_per_usd": "tokens per US$",
    "usd_per_btok": "US$ per billion tokens", "loss_per_usd": "loss reduction per US$",
    "mfu": "MFU (fraction of the BF16 peak)", "peak_mem_gb": "peak memory (GiB)",
    "per_device_batch": "per-device batch (sequences, log2 scale)", "num_gpus": "GPUs (log2 scale)",
}
"""Axis labels in words, with units."""
PRICED = ("tokens_per_usd", "usd_per_btok", "loss_per_usd")
SPEED = ("tokens_per_s", "tokens_per_s_per_gpu", "mfu", *PRICED)
"""Metrics proportional (or inversely) to tokens/s at a fixed configuration and price: a trial's
spread over its repeats (`tokens_per_s_std`) carries over to them in proportion."""
OK, OOM = "ok", "oom"
MAX_COLUMNS = 4
"""Panels side by side at most: wider, and a report page shrinks the text past reading."""
OOM_MARKER = dict(marker="x", markersize=8, markeredgewidth=2, linestyle="")


@dataclass(frozen=True)
class NotDrawn:
    """A figure left out, and why (one line)."""

    reason: str

    def __str__(self) -> str:
        return self.reason

    def _repr_markdown_(self) -> str:  # how a notebook shows it
        return f"*Not drawn:* {self.reason}"


def label(column: str) -> str:
    return LABELS.get(column, column)


def _finite(df: pd.DataFrame, column: str) -> pd.DataFrame:
    return df[np.isfinite(df[column].astype(float))]


def _panels(n: int, width: float = 4.0) -> tuple[Figure, list[Axes]]:
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(width * cols, 3.2 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _trials(df: pd.DataFrame) -> pd.DataFrame:
    """The ok and out-of-memory trials, an older table's nulls read as the defaults of their day."""
    trials = df[df["status"].isin((OK, OOM))]
    return trials.fillna({k: v for k, v in ROW_DEFAULTS.items() if k in trials.columns})


def varying(df: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """The configuration columns (`CONFIG_KEYS`, the model and `exclude` aside) whose values differ
    among the table's ok and out-of-memory trials."""
    trials = _trials(df)
    return [k for k in CONFIG_KEYS if k != "model" and k not in exclude and k in trials.columns
            and trials[k].nunique(dropna=False) > 1]


def points(df: pd.DataFrame, metric: str, x: str, keys: Sequence[str], best_of: Sequence[str] = (),
           maximize: bool = True) -> pd.DataFrame:
    """One row per model, `keys` and `x`: `value` (the mean of the ok trials), `err` (their spread,
    or one trial's over its repeats) and `state` (ok, or oom where every trial ran out of memory).

    The trials of a row share every configuration column the table varies unless `best_of` names
    it: then the row is the best of those configurations (the paper's convention, said where drawn).
    A configuration never run, or with no value (no price), has no row."""
    trials = _trials(df)
    ident = ["model", *keys, x]
    configs = []
    for key, part in trials.groupby([*ident, *best_of], sort=False, dropna=False):
        good = part[(part["status"] == OK) & np.isfinite(part[metric].astype(float))]
        if len(good):
            value = float(good[metric].astype(float).mean())
            if len(good) > 1:
                err = float(good[metric].astype(float).std())
            elif metric in SPEED and "tokens_per_s_std" in good and good["tokens_per_s"].iloc[0] > 0:
                first = good.iloc[0]
                err = abs(value) * float(np.nan_to_num(first["tokens_per_s_std"])) / float(first["tokens_per_s"])
            else:
                err = 0.0
            state = OK
        elif (part["status"] == OOM).any() and not (part["status"] == OK).any():
            value, err, state = math.nan, 0.0, OOM
        else:
            continue
        configs.append({**dict(zip([*ident, *best_of], key)), "value": value, "err": err, "state": state})
    frame = pd.DataFrame(configs, columns=[*ident, *best_of, "value", "err", "state"])
    if not best_of or frame.empty:
        return frame.reset_index(drop=True)
    ranked = frame.assign(_rank=np.where(frame["state"] == OK, frame["value"] * (1 if maximize else -1), -np.inf))
    return ranked.sort_values("_rank", ascending=False, kind="stable").drop_duplicates(ident).drop(
        columns=["_rank", *best_of]).reset_index(drop=True)


def _words(keys: Sequence[str], values: Sequence[object]) -> str:
    """A setting in words (`H200 ddp compile seq 2048`), each of `keys` shown: they are the ones that vary."""
    out = []
    for k, v in zip(keys, values):
        if k == "compile":
            out.append("compile" if v else "no compile")
        elif k == "activation_checkpointing":
            out.append("+AC" if v else "no AC")
        elif k == "num_gpus":
            out.append(f"x{int(v)}")
        elif k == "per_device_batch":
            out.append(f"b{int(v)}")
        elif k == "seq_len":
            out.append(f"seq {int(v)}")
        elif k == "loss_kernel":
            out.append(f"loss {v}")
        else:
            out.append(str(v))
    return " ".join(out)


def _price_basis(df: pd.DataFrame) -> str:
    """What the $ of a cost axis are: each GPU type's price per GPU-hour and where it is from."""
    priced = ok(df)[np.isfinite(ok(df)["price_per_hour_usd"].astype(float))]
    parts = []
    for gpu, part in priced.groupby("gpu_type"):
        row = part.iloc[0]
        source = str(row.get("price_source") or "").split(" (")[0]
        per_gpu = float(row["price_per_hour_usd"]) / float(row["num_gpus"])
        parts.append(f"{gpu} ${per_gpu:,.2f} per GPU-hour" + (f" ({source})" if source else ""))
    return "price basis: " + "; ".join(parts) if parts else ""


def _log2_axis(ax: Axes, values: Sequence[float]) -> None:
    values = sorted(set(values))
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(values))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 8, 16, 32 rather than 2^3
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(values[0] / 1.4, values[-1] * 1.4)



def _short_number(value: float, _position=None) -> str:
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def _draw(pts: pd.DataFrame, x: str, rows: Sequence[str], row_key: str, col_keys: Sequence[str],
          line_keys: Sequence[str], ylabel: str, title: str, ratio: bool = False,
          oom_at: dict | None = None, col_order: Sequence[str] | None = None) -> Figure:
    """A panel per `row_key` value (in `rows`' order) and combination of `col_keys`; in each, a
    line per combination of `line_keys`, one colour and marker per line across the panels and one
    legend below them all (it can hide no point); the panels of one `row_key` value share a y scale.
    Out of memory: `OOM_MARKER` at the panel's foot (0), or at `oom_at[(row, column)]` (a memory
    capacity, dashed); not run: no point and a gap in the line.  Columns sort by their words, or by
    `col_order`."""
    pts = pts.copy()
    pts["_line"] = [_words(line_keys, v) for v in pts[list(line_keys)].itertuples(index=False)] if line_keys else ""
    pts["_col"] = [_words(col_keys, v) for v in pts[list(col_keys)].itertuples(index=False)] if col_keys else ""
    cols = sorted(pts["_col"].unique(), key=lambda c: (list(col_order).index(c), c) if col_order else (0, c))
    cells = [(r, c) for r in rows for c in cols if ((pts[row_key] == r) & (pts["_col"] == c)).any()]
    per_row = [[cell for cell in cells if cell[0] == r] for r in rows]
    width = max(len(p) for p in per_row)
    if width == 1:  # one panel per `row_key` value: wrapped, three to a row
        fig, axes = _panels(len(cells), width=3.6)
    else:  # each `row_key` value starts a row of its own, up to four panels wide (a page's width)
        width = min(width, MAX_COLUMNS)
        layout = [p[i:i + width] for p in per_row for i in range(0, len(p), width)]
        fig = Figure(figsize=(3.4 * width, 2.8 * len(layout)), layout="constrained")
        grid = fig.subplots(len(layout), width, squeeze=False)
        axes = []
        for i, line in enumerate(layout):
            axes += grid[i][:len(line)].tolist()
            for ax in grid[i][len(line):]:
                ax.set_visible(False)
        cells = [cell for line in layout for cell in line]
    names = sorted(pts["_line"].unique())
    colours = {n: f"C{i % 10}" for i, n in enumerate(names)}
    markers = {n: "os^Dv<>p"[i % 8] for i, n in enumerate(names)}
    ceilings: dict = {}
    for ax, (r, c) in zip(axes, cells):
        panel = pts[(pts[row_key] == r) & (pts["_col"] == c)]
        xs = sorted(panel[x].unique())
        top, stacked = 0.0, {}
        for name in names:
            line = panel[panel["_line"] == name]
            if line.empty:
                continue
            s = line.set_index(x).reindex(xs)  # a gap (NaN) where this line never ran
            y = s["value"].where(s["state"] == OK).astype(float)
            ax.plot(xs, y, marker=markers[name], color=colours[name], fillstyle="none", markersize=6, label=name)
            if (s["err"].fillna(0) > 0).any():
                ax.errorbar(xs, y, yerr=s["err"].where(y.notna()).astype(float), fmt="none", ecolor=colours[name],
                            capsize=3, linewidth=1)
            top = max(top, float(np.nanmax((y + s["err"].fillna(0)).to_numpy(dtype=float), initial=0.0)))
            oom = [v for v, st in zip(xs, s["state"]) if st == OOM]
            if oom:
                if (r, c) in (oom_at or {}):
                    ax.plot(oom, [oom_at[(r, c)]] * len(oom), color=colours[name], label=f"{name} {OOM}", **OOM_MARKER)
                else:  # at the foot, side by side: two lines out of memory at one batch stay told apart
                    beside = [v * 2 ** (0.15 * stacked.get(v, 0)) for v in oom]
                    stacked.update({v: stacked.get(v, 0) + 1 for v in oom})
                    ax.plot(beside, [0.0] * len(oom), color=colours[name], clip_on=False, label=f"{name} {OOM}",
                            **OOM_MARKER)
        _log2_axis(ax, xs)
        if (r, c) in (oom_at or {}):
            ax.axhline(oom_at[(r, c)], color="grey", linestyle="--", linewidth=1)
        if ratio:
            ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
        ceilings[r] = max(top, 1.0 if ratio else 0.0, (oom_at or {}).get((r, c), 0.0), ceilings.get(r, 0.0))
        ax.yaxis.set_major_formatter(FuncFormatter(_short_number))
        ax.set_title(f"{r}\n{c}" if c else str(r), fontsize=9)
        ax.set_xlabel(AXES.get(x, x), fontsize=8)
        ax.set_ylabel(_plain(ylabel), fontsize=8)
        ax.tick_params(labelsize=8)
    for ax, (r, _) in zip(axes, cells):  # from 0, where OOM is marked, to the top of every panel of `r`: one scale
        ax.set_ylim(0, 1.1 * ceilings[r] if ceilings[r] > 0 else 1.0)
    handles = [Line2D([], [], color=colours[n], marker=markers[n], fillstyle="none", label=n) for n in names if n]
    handles += [Line2D([], [], color="black", label="out of memory (every trial of the point)", **OOM_MARKER),
                Line2D([], [], linestyle="", label="no point, line broken: not run")]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), fontsize=8)
    fig.suptitle(_plain(textwrap.fill(title, int(11 * fig.get_figwidth()))), fontsize=10)  # to the figure's width
    return fig


def _plain(text: str) -> str:
    """`text` as matplotlib should print it: a pair of $ would start mathtext."""
    return text.replace("$", r"\$")


def _flat(pts: pd.DataFrame, x: str, keys: Sequence[str]) -> NotDrawn | None:
    """Where no line has two points along `x` (every setting ran at one batch), a figure along x
    would be a column of lone markers: the tables say it better."""
    runs = pts[pts["state"] == OK].groupby(["model", *keys], dropna=False)[x].nunique()
    if runs.empty or runs.max() < 2:
        return NotDrawn(f"no configuration ran at two {'per-device batches' if x == 'per_device_batch' else x}, so "
                        "there is nothing to draw along x (the tables above hold the values)")
    return None


def _models(pts: pd.DataFrame, df: pd.DataFrame) -> list[str]:
    return [m for m in model_order(df) if m in set(pts["model"])]


def _title(what: str, df: pd.DataFrame, metric: str) -> str:
    basis = _price_basis(df) if metric in PRICED else ""
    return f"{what}. {basis}" if basis else what


def _unvalued(df: pd.DataFrame, metric: str) -> NotDrawn | None:
    if not np.isfinite(ok(df)[metric].astype(float)).any():
        return NotDrawn(f"no ok trial has a value of {metric}" + (" (no prices)" if metric in PRICED else ""))
    return None


def scaling_figure(df: pd.DataFrame, metric: str = "tokens_per_s") -> Figure | NotDrawn:
    """`metric` against the GPU count, a panel per model (and per setting the table varies besides
    the GPU type, strategy and batch), a line per GPU type and strategy, each point at its best
    per-device batch (the paper's convention)."""
    counts = sorted(_trials(df)["num_gpus"].dropna().unique())
    if len(counts) < 2:
        return NotDrawn(f"every trial ran on {int(counts[0]) if counts else 'no'} GPU{'s' if counts != [1] else ''}: "
                        "no scaling to show")
    if (missing := _unvalued(df, metric)) is not None:
        return missing
    lines = [k for k in ("gpu_type", "strategy") if k in varying(df)]
    panels = varying(df, exclude=("num_gpus", "per_device_batch", *lines))
    pts = points(df, metric, "num_gpus", [*panels, *lines], best_of=["per_device_batch"])
    return _draw(pts, "num_gpus", _models(pts, df), "model", panels, lines, AXES.get(metric, metric),
                 _title(f"{label(metric)} by GPU count, each point at its best per-device batch", df, metric))


def batch_figure(df: pd.DataFrame, metric: str = "tokens_per_usd") -> Figure | NotDrawn:
    """`metric` against the per-device batch, a panel per model (and per setting the table varies
    besides the GPU type and attention), a line per GPU type and attention backend."""
    batches = sorted(_trials(df)["per_device_batch"].dropna().unique())
    if len(batches) < 2:
        return NotDrawn(f"every trial ran at per-device batch {', '.join(str(int(b)) for b in batches) or 'none'}")
    if (missing := _unvalued(df, metric)) is not None:
        return missing
    lines = [k for k in ("gpu_type", "attention") if k in varying(df)]
    panels = varying(df, exclude=("per_device_batch", *lines))
    pts = points(df, metric, "per_device_batch", [*panels, *lines])
    if (flat := _flat(pts, "per_device_batch", [*panels, *lines])) is not None:
        return flat
    return _draw(pts, "per_device_batch", _models(pts, df), "model", panels, lines, AXES.get(metric, metric),
                 _title(f"{label(metric)} by per-device batch", df, metric))


def attention_figure(df: pd.DataFrame, metric: str = "tokens_per_s") -> Figure | NotDrawn:
    """`metric` against the per-device batch, a line per attention backend, a panel per model and
    per combination of every other setting the table varies (GPU type, strategy, compile, loss
    kernel, backend, ...): the backends side by side at equal settings."""
    backends = sorted(_trials(df)["attention"].dropna().unique())
    if len(backends) < 2:
        return NotDrawn(f"every trial used {', '.join(backends) or 'no'} attention: nothing to compare")
    if (missing := _unvalued(df, metric)) is not None:
        return missing
    panels = varying(df, exclude=("per_device_batch", "attention"))
    pts = points(df, metric, "per_device_batch", [*panels, "attention"])
    if (flat := _flat(pts, "per_device_batch", [*panels, "attention"])) is not None:
        return flat
    return _draw(pts, "per_device_batch", _models(pts, df), "model", panels, ["attention"], AXES.get(metric, metric),
                 f"{label(metric)}: attention backends at equal settings, by per-device batch")


def memory_figure(df: pd.DataFrame) -> Figure | NotDrawn:
    """Peak memory against the per-device batch, a line per attention backend, a panel per model
    and setting; out of memory marked at the GPU's capacity (dashed), or the foot where unknown."""
    if not np.isfinite(ok(df)["peak_mem_gb"].astype(float)).any():
        return NotDrawn("no ok trial measured its peak memory (the CPU trainer measures none)")
    lines = [k for k in ("attention",) if k in varying(df)]
    panels = varying(df, exclude=("per_device_batch", *lines))
    pts = points(df, "peak_mem_gb", "per_device_batch", [*panels, *lines])
    if (flat := _flat(pts, "per_device_batch", [*panels, *lines])) is not None:
        return flat
    trials = _trials(df)
    columns = [_words(panels, v) for v in pts[panels].itertuples(index=False)] if panels else [""] * len(pts)
    capacity = {}
    for (model, col), part in pts.assign(_col=columns).groupby(["model", "_col"]):
        gpus = set(part["gpu_type"]) if "gpu_type" in panels else set(trials.loc[trials["model"] == model, "gpu_type"])
        specs = [spec_for(g) for g in gpus if isinstance(g, str)]
        if len(specs) == 1 and specs[0]:
            capacity[(model, col)] = float(specs[0].memory_gb)
    return _draw(pts, "per_device_batch", _models(pts, df), "model", panels, lines, AXES["peak_mem_gb"],
                 "peak memory by per-device batch (out of memory: at the GPU's capacity, dashed)", oom_at=capacity)


RATIOS = ("attention", "gpu_type", "compile", "precision")
"""The settings whose effect the report states as a ratio: fused over eager attention, one GPU
type over another, compile on over off, each FP8 recipe over bf16."""


def ratios(df: pd.DataFrame, metric: str = "tokens_per_s") -> pd.DataFrame:
    """Every ratio of `metric` between two configurations that differ in one of `RATIOS` alone:
    model, the ratio's name, the settings it holds fixed (`varying`, in words), per-device batch,
    `value`, `err` (the two spreads, combined) and `state` (oom where either side ran out of memory)."""
    trials = _trials(df)
    out = []
    for compared in RATIOS:
        values = sorted(trials[compared].dropna().unique(), key=str)
        if len(values) < 2:
            continue
        if compared == "attention":
            fused = [v for v in values if v not in VANILLA_ATTENTION]
            pairs = [(v, "eager", f"{v} / eager") for v in fused] if "eager" in values else []
        elif compared == "compile":
            pairs = [(True, False, "compile on / off")]
        elif compared == "precision":
            pairs = [(v, "bf16", f"{v} / bf16") for v in values if v != "bf16"] if "bf16" in values else []
        else:
            pairs = [(v, values[0], f"{v} / {values[0]}") for v in values[1:]]
        fixed = varying(df, exclude=(compared, "per_device_batch"))
        pts = points(df, metric, "per_device_batch", [*fixed, compared])
        keys = ["model", *fixed, "per_device_batch"]
        for num, den, name in pairs:
            both = pts[pts[compared] == num].merge(pts[pts[compared] == den], on=keys, suffixes=("", "_d"))
            if both.empty:
                continue
            value = both["value"] / both["value_d"]
            err = value * np.hypot(both["err"] / both["value"], both["err_d"] / both["value_d"])
            oom = (both["state"] == OOM) | (both["state_d"] == OOM)
            held = [_words(fixed, v) for v in both[fixed].itertuples(index=False)] if fixed else ""
            out.append(both[keys].assign(ratio=name, held=held, value=value.where(~oom), err=err.where(~oom).fillna(0),
                                         state=np.where(oom, OOM, OK)))
    columns = ["model", "ratio", "held", "per_device_batch", "value", "err", "state"]
    return pd.concat(out, ignore_index=True)[columns] if out else pd.DataFrame(columns=columns)


def ratio_figure(df: pd.DataFrame, metric: str = "tokens_per_s") -> Figure | NotDrawn:
    """`ratios` against the per-device batch: a row of panels per ratio, a panel per model, a line
    per setting held fixed; the dashed line at 1 is no difference."""
    table = ratios(df, metric)
    if table.empty:
        return NotDrawn("no two configurations differ in attention (against eager), GPU type, compile or precision "
                        "(against bf16) alone")
    names = list(dict.fromkeys(table["ratio"]))
    return _draw(table, "per_device_batch", names, "ratio", ["model"], ["held"], f"{label(metric)} ratio",
                 f"{label(metric)} ratios at equal settings, by per-device batch (1: no difference; "
                 "out of memory: either side ran out)", ratio=True, col_order=model_order(df))


MEMORY_FRONT = (Objective("tokens_per_s", True), Objective("peak_mem_gb", False))
"""What the Pareto figure draws where the objectives given have nothing to show: speed against the
memory it takes."""


def _front_configurations(df: pd.DataFrame, objectives: Sequence[Objective],
                          front: pd.Series | None = None) -> pd.DataFrame:
    """The ok trials on each model's front (`front`, or computed), a row per configuration."""
    trials = ok(df)
    for o in objectives:
        trials = _finite(trials, o.column)
    front = pareto_front(df, objectives, by="model") if front is None else front
    on = trials[front.reindex(trials.index, fill_value=False)]
    return on.assign(configuration=config_label(on)).drop_duplicates(["model", "configuration"])


def pareto_axes(df: pd.DataFrame, objectives: Sequence[Objective]) -> tuple[Objective, Objective, str]:
    """The two objectives the Pareto figure draws, and why where they are not the first two given.

    On one price per model, tokens per $ (or $ per token) is tokens/s times a constant: the two are
    exact inverses and each model's front is its fastest trial.  There, and wherever every model's
    front is one configuration, tokens/s against peak memory is drawn instead: what the extra
    speed costs in memory."""
    x, y = objectives[0], objectives[1]
    pair = {x.column, y.column}
    reason = ""
    if pair <= set(SPEED) and pair & set(PRICED) and "tokens_per_s" in pair and \
            (ok(df).groupby("model")["price_per_hour_usd"].nunique() <= 1).all():
        reason = (f"at one price per model, {label(y.column)} follows from {label(x.column)} alone (exact inverses or "
                  "multiples), so each front is one point")
    elif [x, y] != list(MEMORY_FRONT) and _front_configurations(df, [x, y]).groupby("model").size().max() < 2:
        reason = "each model's front on them is one configuration (the table above)"
    if reason and [x, y] != list(MEMORY_FRONT):
        return (*MEMORY_FRONT, f"instead of {x} against {y}: {reason}")
    return x, y, ""


def pareto_figure(df: pd.DataFrame, objectives: Sequence[Objective],
                  front: pd.Series | None = None) -> Figure | NotDrawn:
    """A panel per model: its ok trials on two objectives (`pareto_axes`), its front (`front`, or
    computed) numbered and joined; the numbers' configurations listed below the panels, where no
    label can fall on another."""
    if len(objectives) < 2:
        return NotDrawn("a Pareto plot needs two objectives")
    xo, yo, instead = pareto_axes(df, objectives)
    x, y = xo.column, yo.column
    trials = _finite(_finite(ok(df), x), y)
    if trials.empty:
        return NotDrawn(f"no ok trial has both {x} and {y}" + (f", drawn {instead}" if instead else ""))
    on = _front_configurations(df, [xo, yo], None if instead else front)
    if on.groupby("model").size().max() < 2:
        return NotDrawn(f"each model's front on {xo} and {yo} is one configuration (the table above)"
                        + (f", drawn {instead}" if instead else ""))
    models = [m for m in model_order(df) if m in set(trials["model"])]
    gpus = sorted(trials["gpu_type"].dropna().unique())
    fig, axes = _panels(len(models), width=4.4)
    fig.set_figheight(fig.get_figheight() + 0.17 * math.ceil((len(on) + len(gpus)) / 2) + 0.6)  # room for the list
    colours = {g: f"C{i % 10}" for i, g in enumerate(gpus)}
    handles, number = [], 0
    for ax, model in zip(axes, models):
        part, best = trials[trials["model"] == model], on[on["model"] == model].sort_values(x)
        for gpu, points_ in part.groupby("gpu_type"):
            ax.scatter(points_[x], points_[y], s=14, color=colours[gpu], alpha=0.5)
        ax.plot(best[x], best[y], color="black", linewidth=0.8, linestyle="--")
        for _, row in best.iterrows():
            number += 1
            ax.scatter([row[x]], [row[y]], s=120, facecolor="white", edgecolor="black", zorder=3)
            ax.annotate(str(number), (row[x], row[y]), ha="center", va="center", fontsize=6, zorder=4)
            handles.append(Line2D([], [], linestyle="", label=_plain(f"{number} {model}: {row['configuration']} "
                                  f"({_value_text(x, row[x])}, {_value_text(y, row[y])})")))
        ax.margins(0.12)  # a numbered marker at the edge stays whole
        ax.set_title(model, fontsize=9)
        ax.set_xlabel(_plain(f"{AXES.get(x, x)}, {'higher' if xo.maximize else 'lower'} is better"), fontsize=8)
        ax.set_ylabel(_plain(f"{AXES.get(y, y)}\n{'higher' if yo.maximize else 'lower'} is better"), fontsize=8)
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(FuncFormatter(_short_number))
        ax.tick_params(labelsize=8)
    handles += [Line2D([], [], linestyle="", marker="o", color=colours[g], alpha=0.5, label=f"a trial on {g}")
                for g in gpus]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=7)
    title = f"Pareto front per model on {xo} and {yo} (numbered, dashed; each number's configuration listed below)"
    title += f", {instead}" if instead else ""
    basis = _price_basis(df) if {x, y} & set(PRICED) else ""
    title += f". {basis}" if basis else ""
    fig.suptitle(_plain(textwrap.fill(title, int(11 * fig.get_figwidth()))), fontsize=10)
    return fig


def _value_text(column: str, value: float) -> str:
    """A value for a label, three significant digits, with its unit."""
    if column == "peak_mem_gb":
        return f"{value:.1f} GiB"
    if column == "usd_per_btok":
        return f"${value:,.3g} per billion tokens"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix} {label(column)}"
    return f"{value:.3g} {label(column)}"


def prediction_figure(df: pd.DataFrame) -> Figure | NotDrawn:
    """Predicted against measured peak memory and tokens/s (log scales, the line y = x), a colour
    per model; out-of-memory trials marked at the peak where they failed (a lower bound)."""
    trials = judged(df)
    panels = [(m, p) for m, p in (("peak_mem_gb", "predicted_peak_mem_gb"), ("tokens_per_s", "predicted_tokens_per_s"))
              if len(_finite(_finite(trials, m), p))]
    if not panels:
        return NotDrawn("no trial recorded both a prediction and its measurement")
    fig, axes = _panels(len(panels), width=4.6)
    models = model_order(trials)
    for ax, (measured, predicted) in zip(axes, panels):
        points = _finite(_finite(trials, measured), predicted)
        for i, model in enumerate(models):
            part = points[(points["model"] == model) & (points["status"] == "ok")]
            ax.scatter(part[measured], part[predicted], s=18, color=f"C{i % 10}", label=model)
        oom = points[points["status"] == "oom"]
        if len(oom):
            ax.scatter(oom[measured], oom[predicted], marker="x", s=40, color="tab:red", label="out of memory")
        lo, hi = points[[measured, predicted]].min().min() / 1.2, points[[measured, predicted]].max().max() * 1.2
        ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1, label="y = x")
        ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), title=label(measured),
               xlabel=f"measured {label(measured)}", ylabel=f"predicted {label(measured)}")
        for axis in (ax.xaxis, ax.yaxis):  # 1-2-5 ticks, 50k not 5 x 10^4; minor labels would collide
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(_short_number))
            axis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=7)
    # wrapped to the figure's width: one panel (a CPU table has no peak memory) is half as wide
    title = "slmray.predict.estimate's predictions, recorded before each trial, against the measurements"
    fig.suptitle(textwrap.fill(title, 44 * len(panels)))
    return fig


def save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path
