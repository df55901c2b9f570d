"""The interval around a tokens/s prediction: it holds the prediction, takes its width from the held-out
errors of comparable rows (`interval_widths.csv`), widens where the prediction extrapolates, and the
held-out benchmark measures its coverage without the rows' own fold."""

import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from slmray.predict.estimate import estimate
from slmray.predict.interval import (
    FEW_ROWS_WIDTH, HOST_BOUND, HOST_BOUND_SHARE, MIN_ROWS, WIDENING, Width, class_width, measured_gpu_types, row_class,
    row_width, tokens_per_s_interval, widths,
)
from slmray.train.config import TrainConfig
from slmray.train.presets import get_model as preset

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _ratio(e) -> float:
    return e.tokens_per_s_high / e.tokens_per_s_low


def cfg(**changes) -> TrainConfig:
    return TrainConfig(model=preset("llama-100m"), per_device_batch=16, seq_len=1024, attention="sdpa").replace(**changes)


def test_the_shipped_widths_cover_every_split_and_the_measured_gpu_types():
    table = widths()
    assert {s for s, _ in table} == {"gpu measured", "gpu unmeasured"}
    assert all(w.width > 1 and w.rows > 0 for w in table.values())
    assert {"H100-80GB", "H200"} <= measured_gpu_types()


def test_interval_holds_the_prediction_at_its_class_width():
    one = estimate(cfg(), "H100-80GB", 1)
    assert one.tokens_per_s_low < one.tokens_per_s < one.tokens_per_s_high
    assert math.sqrt(_ratio(one)) == pytest.approx(class_width("gpu measured", "regular").width)


def test_classes_of_comparable_rows():
    assert row_class(cfg()) == "regular"
    assert row_class(cfg(per_device_batch=8)) == "small step"
    assert row_class(cfg(precision="fp8", compile=True)) == "fp8"
    assert row_class(cfg(per_device_batch=8, compile=True)) == "small step, compiled"
    assert row_class(cfg(backend="transformers")) == "uncounted kernels"
    assert row_class(cfg(model=preset("qwen3-0.6b"))) == "uncounted kernels"
    assert row_class(cfg(model=preset("qwen3-0.6b"), compile=True)) == "regular"
    assert row_class(cfg(backend="transformers", compile=True)) == "regular"


def test_interval_widens_where_the_prediction_extrapolates():
    base = tokens_per_s_interval(1000.0, cfg(), "H100-80GB", profiled=True, num_gpus=1)
    # a GPU type without rows or profile: the leave-one-GPU-out width and the stated prior on top
    bare = tokens_per_s_interval(1000.0, cfg(), "A100-80GB", profiled=False, num_gpus=1)
    unmeasured = class_width("gpu unmeasured", "regular").width
    assert bare.width == pytest.approx(unmeasured * WIDENING["no_rows_no_profile"])
    assert "no GPU profile" in bare.reasons and bare.low < 1000.0 < bare.high
    many = tokens_per_s_interval(1000.0, cfg(strategy="ddp"), "H100-80GB", profiled=True, num_gpus=8)
    assert many.width == pytest.approx(base.width * WIDENING["multi_gpu"])
    tiny = tokens_per_s_interval(1000.0, cfg(per_device_batch=1, seq_len=512), "H100-80GB", profiled=True, num_gpus=1)
    small = class_width("gpu measured", "small step")
    assert tiny.width > small.width and any("outside the measured" in r for r in tiny.reasons)
    hf = tokens_per_s_interval(1000.0, cfg(backend="transformers"), "H100-80GB", profiled=True, num_gpus=1)
    assert hf.width > base.width
    # compiled small steps, measured on one H100 (benchmarks/results/small_batch): their own, wider width
    compiled_small = tokens_per_s_interval(1000.0, cfg(per_device_batch=8, compile=True), "H100-80GB", profiled=True, num_gpus=1)
    assert widths()[("gpu measured", "small step, compiled")].rows >= MIN_ROWS
    assert compiled_small.width == pytest.approx(class_width("gpu measured", "small step, compiled").width)
    assert compiled_small.width > max(base.width, small.width)  # the host sets them: wider than the other steps
    # a class too few rows measured: the widest of its split, and never under the stated prior
    sparse = {("gpu measured", "regular"): Width("gpu measured", "regular", 50, 1.7, 8192, 65536, ("H100-80GB",)),
              ("gpu measured", "small step, compiled"): Width("gpu measured", "small step, compiled", MIN_ROWS - 1, 1.01,
                                                              8192, 8192, ("H100-80GB",))}
    assert class_width("gpu measured", "small step, compiled", sparse).width == 1.7
    few = {("gpu measured", "regular"): Width("gpu measured", "regular", 50, 1.1, 8192, 65536, ("H100-80GB",))}
    assert class_width("gpu measured", "fp8", few).width == FEW_ROWS_WIDTH  # borrowed from a narrow class: the prior


def _heldout():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import heldout_accuracy
    finally:
        sys.path.remove(str(BENCHMARKS))
    return heldout_accuracy


def test_coverage_is_measured_with_widths_fitted_without_each_rows_fold():
    ho = _heldout()
    # two folds (models) of one class: each row's width comes from the other fold only
    rows = pd.DataFrame({
        "split": ["gpu measured"] * 10, "class": ["regular"] * 10, "fold": ["a"] * 5 + ["b"] * 5,
        "gpu_type": ["H100-80GB"] * 10, "tokens": [16384] * 10, "host_share": [0.0] * 10,
        "log_err": [0.01, 0.02, 0.03, 0.02, 0.01, 0.2, 0.3, 0.4, 0.3, 0.2],
    })
    rows["tokens_per_s"] = 100.0
    rows["predicted"] = 100.0 * pd.Series([math.exp(v) for v in rows["log_err"]])
    rows["err"] = rows["predicted"] / rows["tokens_per_s"] - 1
    rows["cv_width"] = ho.cross_validated_widths(rows)
    a, b = rows["fold"] == "a", rows["fold"] == "b"
    assert (rows.loc[a, "cv_width"] > 1.2).all()  # fold b's errors: wide, fold a sits inside
    assert (rows.loc[b, "cv_width"] < 1.04).all()  # fold a's errors: narrow, fold b falls outside
    stats = ho._stats(rows)
    assert stats["in 80% interval"] == "50%" and stats["n"] == 10
    table = ho.width_table(rows)
    assert table["width"].iloc[0] == pytest.approx(math.exp(pd.Series(rows["log_err"]).quantile(0.8)), rel=1e-3)


def test_the_shipped_constants_errors_widen_a_class_and_leave_each_fold_out():
    """The committed constants' own errors on rows they were not fitted on (a dry run's, its bias
    included) set a class's width where wider than the refits', from `MIN_ROWS` rows on; a row's
    held-out width leaves out its own model's rows of them too."""
    ho = _heldout()
    rows = pd.DataFrame({"split": ["gpu measured"] * 10, "class": ["regular"] * 10, "fold": ["a"] * 5 + ["b"] * 5,
                         "gpu_type": ["H100-80GB"] * 10, "tokens": [16384] * 10, "log_err": [0.02] * 10,
                         "host_share": [0.0] * 10})
    wide = pd.DataFrame({"class": ["regular"] * 6, "model": ["a"] * 6, "gpu_type": ["H200"] * 6, "tokens": [8192] * 6,
                         "log_err": [0.1] * 6, "host_share": [0.0] * 6})
    narrow = ho.width_table(rows)
    assert narrow["width"].iloc[0] == pytest.approx(math.exp(0.02), rel=1e-3)
    table = ho.width_table(rows, wide).iloc[0]
    assert table["width"] == pytest.approx(math.exp(0.1), rel=1e-3)
    assert (table["rows"], table["min_tokens"], table["gpu_types"]) == (6, 8192, "H200")  # those that set it
    assert ho.width_table(rows, wide.iloc[:MIN_ROWS - 1])["width"].iloc[0] == pytest.approx(math.exp(0.02), rel=1e-3)
    cv = ho.cross_validated_widths(rows, wide)
    assert list(cv[rows["fold"] == "a"]) == pytest.approx([math.exp(0.02)] * 5, rel=1e-3)  # model a's wide rows left out
    # model b's: the wide rows', widened as the interval is for its 16384 tokens, twice their 8192
    widened = math.exp(0.1 * (1 + WIDENING["outside_tokens_per_doubling"]))
    assert list(cv[rows["fold"] == "b"]) == pytest.approx([widened] * 5, rel=1e-3)


def test_a_host_bound_step_takes_the_host_bound_width_where_wider():
    """The host's share of a step varies by machine and by a process's age, so a step whose predicted
    host excess is at least `HOST_BOUND_SHARE` of it takes the held-out width of such steps (of every
    class) where that is wider than its class's; below the share, or where narrower, its class's."""
    shipped = widths()[("gpu measured", HOST_BOUND)]
    assert shipped.rows >= MIN_ROWS and shipped.width > class_width("gpu measured", "small step").width
    small = cfg(per_device_batch=4)
    plain = tokens_per_s_interval(1000.0, small, "H100-80GB", profiled=True, num_gpus=1, host_share=HOST_BOUND_SHARE / 2)
    bound = tokens_per_s_interval(1000.0, small, "H100-80GB", profiled=True, num_gpus=1, host_share=HOST_BOUND_SHARE)
    assert plain.width == pytest.approx(class_width("gpu measured", "small step").width)
    assert bound.width == pytest.approx(shipped.width) and any(r.startswith("host-bound") for r in bound.reasons)
    table = {("gpu measured", "small step"): Width("gpu measured", "small step", 30, 1.3, 4096, 8192, ("H100-80GB",)),
             ("gpu measured", HOST_BOUND): Width("gpu measured", HOST_BOUND, 8, 1.2, 4096, 8192, ("H100-80GB",))}
    assert row_width("gpu measured", "small step", 0.9, 4096, table)[0].width == 1.3  # the class is wider: its own
    # widened for a micro-step outside its rows' tokens, a class can outgrow the host-bound width:
    # then it keeps its own, so the host-bound line never narrows an interval
    table[("gpu measured", HOST_BOUND)] = Width("gpu measured", HOST_BOUND, 8, 1.35, 4096, 8192, ("H100-80GB",))
    w, log_width, host_bound = row_width("gpu measured", "small step", 0.9, 512, table)
    assert not host_bound and w.row_class == "small step" and log_width > math.log(1.35) > math.log(1.3)
    hf_tiny = cfg(backend="transformers", per_device_batch=1)
    assert (tokens_per_s_interval(1000.0, hf_tiny, "H100-80GB", profiled=True, num_gpus=1, host_share=0.5).width
            >= tokens_per_s_interval(1000.0, hf_tiny, "H100-80GB", profiled=True, num_gpus=1).width)
    # a class with too few rows borrows the widest class of its split, never the host-bound line
    table = {("gpu measured", "regular"): Width("gpu measured", "regular", 50, 1.1, 8192, 65536, ("H100-80GB",)),
             ("gpu measured", HOST_BOUND): Width("gpu measured", HOST_BOUND, 8, 1.6, 4096, 8192, ("H100-80GB",))}
    assert class_width("gpu measured", "fp8", table).width == FEW_ROWS_WIDTH
    # an estimate's interval follows its own host share: the uncompiled pythia-160m step at batch 6 is host-bound
    e = estimate(TrainConfig(model=preset("pythia-160m"), per_device_batch=6, seq_len=1024, attention="sdpa",
                             strategy="ddp"), "H100-80GB", 1)
    assert e.host_share >= HOST_BOUND_SHARE and _ratio(e) == pytest.approx(shipped.width ** 2)
    # the benchmark measures it over the host-bound rows of every class
    ho = _heldout()
    rows = pd.DataFrame({"split": ["gpu measured"] * 6, "class": ["small step", "small step, compiled"] * 3,
                         "fold": list("abcabc"), "gpu_type": ["H100-80GB"] * 6, "tokens": [4096] * 6,
                         "host_share": [0.5, 0.5, 0.5, 0.5, 0.5, 0.0], "log_err": [0.3, 0.3, 0.3, 0.3, 0.3, 0.01]})
    host_line = ho.width_table(rows).set_index("class").loc[HOST_BOUND]
    assert host_line["rows"] == 5 and host_line["width"] == pytest.approx(math.exp(0.3), rel=1e-3)
