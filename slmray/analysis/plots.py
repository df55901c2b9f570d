"""The report's figures as matplotlib `Figure`s, built without pyplot (no global state, no
display needed); each returns None when the table has nothing to draw.

Points are `costs.best_over` values like the paper's: the best trial over every parameter the
figure does not show, with configurations that ran out of memory at 0.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, ScalarFormatter

from slmray.analysis.accuracy import judged
from slmray.analysis.costs import best_over
from slmray.analysis.findings import mixes_compile, mixes_gpu_types
from slmray.analysis.pareto import Objective
from slmray.analysis.table import config_label, model_order, ok
from slmray.catalog.gpus import spec_for

LABELS = {
    "tokens_per_s": "tokens/s", "tokens_per_usd": "tokens per $", "usd_per_btok": "$ per billion tokens",
    "loss_per_usd": "loss reduction per $", "mfu": "MFU", "peak_mem_gb": "peak memory (GiB)",
}


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


def _by_batch(df: pd.DataFrame, points: pd.DataFrame, y: str, **style) -> tuple[Figure, Axes]:
    """A figure of `y` against per-device batch (log scale), one series per model."""
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.subplots()
    for model in model_order(df):
        part = points[points["model"] == model].sort_values("per_device_batch")
        if not part.empty:
            ax.plot(part["per_device_batch"], part[y], marker="o", label=model, **style)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(points["per_device_batch"].dropna().unique()))
    ax.xaxis.set_major_formatter(ScalarFormatter())  # 8, 16, 32 rather than 2^3, 2^4, 2^5
    return fig, ax


def scaling_figure(df: pd.DataFrame, metric: str = "tokens_per_s") -> Figure | None:
    """`metric` against GPU count, one panel per model, a line per GPU type and strategy (and
    compile setting, where the table has both), one colour per line across the panels and one
    legend below them, where it can hide no point."""
    compiled = df["compile"].fillna(False).astype(bool)
    line_label = df["gpu_type"].astype(str) + " " + df["strategy"].astype(str)
    if mixes_compile(df):
        line_label = line_label + np.where(compiled, " compile", "")
    best = _finite(best_over(df.assign(line=line_label), metric, ["model", "line", "num_gpus"]), metric)
    if best.empty:
        return None
    models = [m for m in model_order(df) if m in set(best["model"])]
    names = sorted(best["line"].unique())
    colours = {name: f"C{i % 10}" for i, name in enumerate(names)}
    markers = {name: "osD^v<>"[i % 7] for i, name in enumerate(names)}  # lines on the same values stay told apart
    fig, axes = _panels(len(models))
    for ax, model in zip(axes, models):
        part = best[best["model"] == model]
        for name, line in part.groupby("line"):
            line = line.sort_values("num_gpus")
            ax.plot(line["num_gpus"], line[metric], marker=markers[name], color=colours[name], label=name,
                    fillstyle="none", markersize=7)
        ax.set_xticks(sorted(part["num_gpus"].unique()))
        top = part[metric].max()  # 0 where every trial ran out of memory
        ax.set_ylim(0, 1.08 * top if top > 0 else 1.0)  # headroom: a marker at the top is not cut in half
        ax.yaxis.set_major_formatter(FuncFormatter(_short_number))
        ax.set(title=model, xlabel="GPUs", ylabel=label(metric))
    handles = [Line2D([], [], color=colours[n], marker=markers[n], fillstyle="none", label=n) for n in names]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4), fontsize=8)
    fig.suptitle(f"{label(metric)} by GPU count")
    return fig


def batch_figure(df: pd.DataFrame, metric: str = "tokens_per_usd") -> Figure | None:
    """`metric` against per-device batch, a line per model (out of memory at 0), and per GPU type
    where the table has several (dashed, the second): a batch's best on one GPU is not the other's."""
    by_gpu = mixes_gpu_types(df)
    best = _finite(best_over(df, metric, ["model", *(["gpu_type"] if by_gpu else []), "per_device_batch"]), metric)
    if best.empty or not best[metric].astype(float).any():
        return None
    if not by_gpu:
        fig, ax = _by_batch(df, best, metric)
    else:
        fig, ax = _by_batch(df, best.iloc[:0], metric)  # the axes alone; a line per model and GPU type below
        ax.set_xticks(sorted(best["per_device_batch"].dropna().unique()))
        gpus = sorted(best["gpu_type"].dropna().unique())
        for i, model in enumerate(m for m in model_order(df) if m in set(best["model"])):
            for j, gpu in enumerate(gpus):
                part = best[(best["model"] == model) & (best["gpu_type"] == gpu)].sort_values("per_device_batch")
                if not part.empty:
                    ax.plot(part["per_device_batch"], part[metric], marker="os^D"[j % 4], color=f"C{i % 10}",
                            linestyle=("-", "--", ":", "-.")[j % 4], label=f"{model} {gpu}")
    ax.set_ylim(bottom=0)
    ax.set(title=f"{label(metric)} by per-device batch", xlabel="per-device batch", ylabel=label(metric))
    ax.yaxis.set_major_formatter(FuncFormatter(_short_number))
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))  # beside the axes, over no point
    return fig


def attention_figure(df: pd.DataFrame, metric: str = "tokens_per_s") -> Figure | None:
    """`metric` per model, a bar per attention backend (and per compile setting and GPU type,
    where the table has several)."""
    backend = df["attention"].astype(str)
    if mixes_compile(df):
        backend = backend + np.where(df["compile"].fillna(False).astype(bool), " + compile", "")
    if mixes_gpu_types(df):  # a bar per GPU type too: an H100 bar is not set beside an H200 one as if alike
        backend = df["gpu_type"].astype(str) + " " + backend
    best = _finite(best_over(df.assign(attention=backend), metric, ["model", "attention"]), metric)
    if best.empty:
        return None
    models = [m for m in model_order(df) if m in set(best["model"])]
    backends = sorted(best["attention"].dropna().unique())
    width = 0.8 / max(len(backends), 1)
    fig = Figure(figsize=(max(6.0, 1.2 * len(models) + 2), 4), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(models))
    for i, backend in enumerate(backends):
        part = best[best["attention"] == backend].set_index("model").reindex(models)
        ax.bar(x + i * width - 0.4 + width / 2, part[metric].fillna(0), width, label=backend)
    ax.set_xticks(x, models, rotation=20)
    ax.set(title=f"{label(metric)}: attention backends", ylabel=label(metric))
    ax.yaxis.set_major_formatter(FuncFormatter(_short_number))
    ax.legend(fontsize=7)
    return fig


def pareto_figure(df: pd.DataFrame, objectives: Sequence[Objective], front: pd.Series) -> Figure | None:
    """Ok trials on the first two objectives, coloured by model; `front` (True on the
    non-dominated trials, e.g. per model) highlighted and labelled."""
    x, y = objectives[0].column, objectives[1].column
    trials = _finite(_finite(ok(df), x), y)
    if trials.empty:
        return None
    on_front = trials[front.reindex(trials.index, fill_value=False)]
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.subplots()
    for i, model in enumerate(m for m in model_order(df) if m in set(trials["model"])):
        color = f"C{i % 10}"
        part, best = trials[trials["model"] == model], on_front[on_front["model"] == model]
        ax.scatter(part[x], part[y], s=16, color=color, alpha=0.45, label=model)
        ax.scatter(best[x], best[y], s=60, color=color, edgecolors="black", linewidths=1.2)
    for (_, row), text in zip(on_front.iterrows(), config_label(on_front)):
        ax.annotate(f"{row['model']} {text}", (row[x], row[y]), fontsize=6, xytext=(4, 4), textcoords="offset points")
    ax.set(xlabel=f"{label(x)} ({objectives[0]})", ylabel=f"{label(y)} ({objectives[1]})",
           title="Pareto front per model (outlined, labelled)")
    ax.legend(fontsize=7)
    return fig


def memory_figure(df: pd.DataFrame) -> Figure | None:
    """Peak memory against per-device batch per model; out-of-memory trials marked at the
    GPU's capacity (or their own peak where the GPU is unknown)."""
    trials = _finite(ok(df), "peak_mem_gb")
    oom = df[df["status"] == "oom"].copy()
    capacity = oom["gpu_type"].map(lambda g: spec_for(g).memory_gb if isinstance(g, str) and spec_for(g) else math.nan)
    oom["y"] = capacity.astype(float).fillna(oom["peak_mem_gb"].astype(float))
    oom = oom[np.isfinite(oom["y"])]
    if trials.empty and oom.empty:
        return None
    fig, ax = _by_batch(df, trials, "peak_mem_gb", linestyle="")
    if not oom.empty:
        ax.scatter(oom["per_device_batch"], oom["y"], marker="x", s=60, color="tab:red", label="out of memory")
    ax.set(title="peak memory by per-device batch", xlabel="per-device batch", ylabel=label("peak_mem_gb"))
    ax.legend(fontsize=7)
    return fig


def _short_number(value: float, _position=None) -> str:
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def prediction_figure(df: pd.DataFrame) -> Figure | None:
    """Predicted against measured peak memory and tokens/s (log scales, the line y = x), a colour
    per model; out-of-memory trials marked at the peak where they failed (a lower bound)."""
    trials = judged(df)
    panels = [(m, p) for m, p in (("peak_mem_gb", "predicted_peak_mem_gb"), ("tokens_per_s", "predicted_tokens_per_s"))
              if len(_finite(_finite(trials, m), p))]
    if not panels:
        return None
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
