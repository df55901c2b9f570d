"""The cross-architecture prior (architectures.csv's `step_rate_scale`): read and validated, applied
to the device time of a GPU type outside the calibrated architecture only, and fitted by
`benchmarks/multi_gpu_anchors.py` to the value the catalog ships."""

import csv
import io
import sys
from pathlib import Path

import pytest

from slmray.catalog.gpus import arch_specs, read_arch_specs, spec_for
from slmray.catalog.tables import CsvError
from slmray.predict.estimate import CALIBRATED_ARCH, compute_time_s, estimate, step_rate_scale, step_work
from slmray.train.config import TrainConfig
from slmray.train.presets import get_model

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = (ROOT / "slmray" / "catalog" / "architectures.csv").read_text()


def llama_1b(**kw) -> TrainConfig:
    return TrainConfig(model=get_model("llama-1b"), attention="sdpa", per_device_batch=16, seq_len=1024, **kw)


def edited(tmp_path: Path, arch: str, value: str | None) -> Path:
    """A copy of the shipped architectures.csv with `arch`'s step_rate_scale set to `value` (None: the column dropped)."""
    rows = list(csv.DictReader(io.StringIO(SHIPPED)))
    for row in rows:
        if value is None:
            del row["step_rate_scale"]
        elif row["arch"] == arch:
            row["step_rate_scale"] = value
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = tmp_path / "architectures.csv"
    path.write_text(buf.getvalue())
    return path


def test_the_column_is_read_and_the_calibrated_architecture_is_one():
    specs = arch_specs()
    assert specs[CALIBRATED_ARCH].step_rate_scale == 1.0
    assert specs["ampere"].step_rate_scale > 1  # the A100 runs faster than the Hopper-fitted path predicts
    for arch in ("ada", "ga102"):  # no published same-code pair: no adjustment, and the source says so
        assert specs[arch].step_rate_scale == 1.0 and "no published same-code pair" in specs[arch].source
    assert "multi_gpu_anchors.py --fit" in specs["ampere"].source


@pytest.mark.parametrize(("value", "message"), [
    ("", "architectures.csv: step_rate_scale: row 2: empty, needs a number"),
    ("-1.1", "architectures.csv: step_rate_scale: row 2: -1.1 is not a positive number"),
    ("0", "architectures.csv: step_rate_scale: row 2: 0.0 is not a positive number"),
    ("nan", "architectures.csv: step_rate_scale: row 2: nan is not a positive number"),
    ("fast", "architectures.csv: step_rate_scale: row 2: 'fast' is not a number"),
])
def test_a_missing_or_non_positive_value_is_one_line_naming_the_file(tmp_path, value, message):
    with pytest.raises(CsvError) as info:
        read_arch_specs(edited(tmp_path, "ampere", value))
    assert str(info.value) == message


def test_a_missing_column_is_one_line_naming_the_file(tmp_path):
    with pytest.raises(CsvError, match=r"^architectures.csv: step_rate_scale: no such column \(the header has"):
        read_arch_specs(edited(tmp_path, "ampere", None))


def test_an_edited_value_is_read(tmp_path):
    assert read_arch_specs(edited(tmp_path, "ampere", "1.25"))["ampere"].step_rate_scale == 1.25


@pytest.mark.parametrize("gpu", ["H100-80GB", "H200", "H100-PCIe"])
@pytest.mark.parametrize("strategy, num_gpus", [("single", 1), ("fsdp", 8), ("ddp", 4)])
def test_hopper_predictions_are_exactly_those_without_the_prior(gpu, strategy, num_gpus):
    assert step_rate_scale(spec_for(gpu)) == 1.0
    c = llama_1b(strategy=strategy)
    with_prior, without = estimate(c, gpu, num_gpus), estimate(c, gpu, num_gpus, step_rate=1.0)
    assert with_prior == without  # every field, bit for bit


@pytest.mark.parametrize("gpu", ["A100-80GB", "A100-40GB"])
def test_an_ampere_gpus_tokens_per_s_scale_by_the_prior(gpu):
    scale = arch_specs()["ampere"].step_rate_scale
    c = llama_1b()
    with_prior, without = estimate(c, gpu, 1), estimate(c, gpu, 1, step_rate=1.0)
    assert with_prior.time_s["host"] == without.time_s["host"] == 0  # the device bounds this step
    assert with_prior.tokens_per_s == pytest.approx(scale * without.tokens_per_s, rel=1e-12)
    assert with_prior.peak_mem_gb == without.peak_mem_gb  # a speed prior: memory untouched
    # the device's terms are divided, each of them
    work, spec = step_work(c, 1), spec_for(gpu)
    a, b = compute_time_s(work, spec, profile=None), compute_time_s(work, spec, profile=None, step_rate=1.0)
    assert {k: a[k] * scale for k in a if k != "host"} == pytest.approx({k: b[k] for k in b if k != "host"}, rel=1e-12)


def test_the_prior_leaves_the_host_alone_where_the_host_bounds_the_step():
    # a tiny uncompiled step: the host's dispatch outlasts the device's work, and a faster device
    # does not make the CPU queue kernels faster
    c = TrainConfig(model=get_model("llama-100m"), attention="eager", per_device_batch=1, seq_len=128)
    with_prior, without = estimate(c, "A100-80GB", 1), estimate(c, "A100-80GB", 1, step_rate=1.0)
    assert without.time_s["host"] > 0
    assert with_prior.step_time_s == pytest.approx(without.step_time_s, rel=1e-12)


def test_a_bad_step_rate_is_named():
    with pytest.raises(ValueError, match="^step_rate: must be a positive number, got 0"):
        estimate(llama_1b(), "A100-80GB", 1, step_rate=0)


def _anchors():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import multi_gpu_anchors
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return multi_gpu_anchors


def test_the_benchmarks_fit_reproduces_the_committed_value():
    anchors = _anchors()
    rows = list(csv.DictReader(anchors.ANCHORS.open()))
    fitted = anchors.fit_step_rate(rows)
    assert round(fitted, anchors.FIT_DIGITS) == arch_specs()[anchors.FIT_ARCH].step_rate_scale
    # the prior at 1 gives the published ratios' geometric-mean excess; with the fit their errors straddle zero
    errors = [anchors.predicted_ratio(rows, n) / anchors.published_ratio(rows, n) for n in anchors.FIT_PAIRS]
    assert min(errors) < 1 < max(errors)


def test_the_fit_rewrites_only_its_own_value(tmp_path):
    anchors = _anchors()
    path = tmp_path / "architectures.csv"
    path.write_text(SHIPPED)
    anchors.write_fit(1.23456, path)
    assert read_arch_specs(path)["ampere"].step_rate_scale == 1.235
    assert path.read_text() == SHIPPED.replace(f"ampere,0.869,0.615,{arch_specs()['ampere'].step_rate_scale:.3f},", "ampere,0.869,0.615,1.235,")


def test_the_committed_anchor_comparison_regenerates():
    anchors = _anchors()
    assert anchors.render() == anchors.OUT.read_text()  # python benchmarks/multi_gpu_anchors.py writes it
