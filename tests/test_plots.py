"""The figures drawn the paper's way, checked on matplotlib's own objects: a point per
configuration (mean and spread of its trials), a gap where a batch never ran, the OOM marker where
every trial ran out of memory, a panel per model and setting, ratios at equal settings, and a
figure left out with its reason.  Small frames by hand: each test well under 0.1 s."""

import math

import numpy as np
import pandas as pd
import pytest

from slmray.analysis import plots
from slmray.core.objective import Objective

SETTINGS = dict(n_params=1e8, num_gpus=1, strategy="single", compile=False, seq_len=1024, precision="bf16",
                activation_checkpointing=False, loss_kernel="standard", backend="native", tokens_per_s_std=0.0,
                peak_mem_gb=10.0, price_per_hour_usd=2.0, price_source="test price (a source)")


def frame(rows, columns=("model", "gpu_type", "attention", "per_device_batch", "status", "tokens_per_s"), **fixed):
    df = pd.DataFrame(rows, columns=list(columns)).assign(**{**SETTINGS, **fixed})
    df["tokens_per_usd"] = df["tokens_per_s"] * 3600 / df["price_per_hour_usd"]
    return df


def lines(ax):
    """The axes' lines by label: what `plots._draw` drew for each alternative and its OOM marker."""
    return {line.get_label(): line for line in ax.get_lines()}


def test_a_batch_never_run_breaks_the_line_and_oom_has_its_own_marker():
    df = frame([
        ("a", "H100-80GB", "sdpa", 8, "ok", 100.0),
        ("a", "H100-80GB", "sdpa", 32, "ok", 120.0),  # 16 never ran
        ("a", "H100-80GB", "sdpa", 64, "oom", None),
        ("a", "H100-80GB", "eager", 8, "ok", 50.0),
        ("a", "H100-80GB", "eager", 16, "ok", 55.0),
    ])
    fig = plots.attention_figure(df)
    (ax,) = fig.axes
    drawn = lines(ax)
    sdpa = drawn["sdpa"]
    assert list(sdpa.get_xdata()) == [8, 16, 32, 64]
    y = np.asarray(sdpa.get_ydata(), dtype=float)
    assert y[0] == 100.0 and y[2] == 120.0
    assert math.isnan(y[1]) and math.isnan(y[3])  # no line across 16 (not run) nor down to 64 (out of memory)
    oom = drawn["sdpa oom"]
    assert oom.get_marker() == "x" and oom.get_linestyle() == "None" and list(oom.get_ydata()) == [0.0]
    assert oom.get_xdata()[0] == 64 and oom.get_marker() != sdpa.get_marker()
    assert "eager oom" not in drawn  # eager never ran out of memory: no marker
    assert ax.get_xscale() == "log" and ax.xaxis.get_transform().base == 2
    assert ax.get_ylabel() == "throughput (tokens/s, all GPUs)" and "log2" in ax.get_xlabel()


def test_a_panel_per_model_and_per_setting_held_equal():
    """Two GPU types: never on one axis as if alike; a panel each, per model, models smallest first."""
    df = frame([
        ("big", "H100-80GB", "sdpa", 8, "ok", 10.0), ("big", "H100-80GB", "eager", 8, "ok", 5.0),
        ("big", "H100-80GB", "sdpa", 16, "ok", 12.0),
        ("small", "H200", "sdpa", 8, "ok", 100.0), ("small", "H200", "eager", 16, "ok", 60.0),
    ]).assign(n_params=lambda d: d["model"].map({"big": 2e9, "small": 1e8}))
    fig = plots.attention_figure(df)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["small\nH200", "big\nH100-80GB"]


def test_repeats_give_the_mean_and_error_bars():
    df = frame([
        ("a", "H100-80GB", "sdpa", 8, "ok", 100.0), ("a", "H100-80GB", "sdpa", 8, "ok", 110.0),  # run twice
        ("a", "H100-80GB", "sdpa", 16, "ok", 200.0),
    ])
    df.loc[2, "tokens_per_s_std"] = 8.0  # one trial, three measured windows: its own spread
    pts = plots.points(df, "tokens_per_usd", "per_device_batch", []).set_index("per_device_batch")
    assert pts.loc[8, "value"] == pytest.approx(105.0 * 1800)
    assert pts.loc[8, "err"] == pytest.approx(np.std([100, 110], ddof=1) * 1800)  # their spread
    assert pts.loc[16, "err"] == pytest.approx(200.0 * 1800 * 8.0 / 200.0)  # the repeats' spread, in tokens per $
    eager = df.assign(attention="eager", tokens_per_usd=df["tokens_per_usd"] / 2)
    fig = plots.batch_figure(pd.concat([df, eager], ignore_index=True), "tokens_per_usd")
    (ax,) = fig.axes
    assert ax.containers and any(len(c.lines[2]) for c in ax.containers)  # error bars drawn
    title = " ".join(fig._suptitle.get_text().replace("\\$", "$").split())  # wrapped to the figure's width
    assert "price basis: H100-80GB $2.00 per GPU-hour (test price)" in title


def test_ratios_hold_everything_else_equal():
    df = frame([
        ("a", "H100-80GB", "sdpa", 8, "ok", 200.0), ("a", "H100-80GB", "eager", 8, "ok", 100.0),
        ("a", "H200", "sdpa", 8, "ok", 230.0), ("a", "H200", "eager", 8, "oom", None),
        ("a", "H200", "sdpa", 16, "ok", 260.0),  # no H100 at 16: no GPU ratio there
    ])
    table = plots.ratios(df).set_index(["ratio", "held", "per_device_batch"])
    assert table.loc[("sdpa / eager", "H100-80GB", 8), "value"] == pytest.approx(2.0)
    assert table.loc[("sdpa / eager", "H200", 8), "state"] == "oom"  # eager out of memory: marked, no ratio
    assert math.isnan(table.loc[("sdpa / eager", "H200", 8), "value"])
    assert table.loc[("H200 / H100-80GB", "sdpa", 8), "value"] == pytest.approx(1.15)
    assert ("H200 / H100-80GB", "sdpa", 16) not in table.index
    fig = plots.ratio_figure(df)
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["sdpa / eager\na", "H200 / H100-80GB\na"]


def test_figures_with_nothing_to_show_are_left_out_with_their_reason():
    one = frame([("a", "H100-80GB", "sdpa", 8, "ok", 100.0), ("a", "H100-80GB", "sdpa", 16, "ok", 150.0)])
    scaling = plots.scaling_figure(one)
    assert isinstance(scaling, plots.NotDrawn) and str(scaling) == "every trial ran on 1 GPU: no scaling to show"
    assert str(plots.attention_figure(one)) == "every trial used sdpa attention: nothing to compare"
    flat = one.assign(attention=["sdpa", "eager"])  # sdpa at 8 alone, eager at 16 alone
    assert "no configuration ran at two per-device batches" in str(plots.batch_figure(flat))
    assert "no ok trial has a value of tokens_per_usd (no prices)" in str(
        plots.batch_figure(one.assign(tokens_per_usd=math.nan)))


def test_pareto_on_one_price_draws_speed_against_memory_instead():
    """One GPU type at one price: $ per token is 1 / tokens/s, a one-point front; the figure draws
    tokens/s against peak memory, and is left out where that front is one point too."""
    df = frame([("a", "H100-80GB", "sdpa", 8, "ok", 100.0), ("a", "H100-80GB", "sdpa", 16, "ok", 150.0)])
    df["usd_per_btok"] = df["price_per_hour_usd"] / (df["tokens_per_s"] * 3600) * 1e9
    objectives = [Objective("tokens_per_s", True), Objective("usd_per_btok", False)]
    x, y, why = plots.pareto_axes(df, objectives)
    assert (x.column, y.column) == ("tokens_per_s", "peak_mem_gb") and "follows from tokens/s alone" in why
    left_out = plots.pareto_figure(df, objectives)  # peak memory 10 GiB for both: the faster dominates
    assert isinstance(left_out, plots.NotDrawn) and "is one configuration" in str(left_out)
    fig = plots.pareto_figure(df.assign(peak_mem_gb=[8.0, 12.0]), objectives)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:2] == ["1 a: H100-80GB x1 single sdpa b8 (100 tokens/s, 8.0 GiB)",
                          "2 a: H100-80GB x1 single sdpa b16 (150 tokens/s, 12.0 GiB)"]
