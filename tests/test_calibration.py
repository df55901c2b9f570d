"""slmray.predict.calibration: the per-GPU-type tokens/s correction, its leave-one-out error, the online
Recalibrator the sweep refits as trials finish, and plan_trial applying it.  No devices, no Ray."""

import dataclasses
import json
import math
import pickle
import random

import pytest

from slmray.catalog.prices import PriceBook
from slmray.predict.calibration import NO_CORRECTION, POOLED, Correction, Recalibrator, fit_correction, fit_corrections
from slmray.results.table import to_table
from slmray.sweep.capacity import Capacity
from slmray.sweep.plan import make_plan, plan_trial
from slmray.sweep.space import SearchSpace


def test_a_constant_bias_is_corrected_exactly():
    pairs = [(100.0, 90.0), (200.0, 180.0), (50.0, 45.0)]
    c = fit_correction("H200", pairs)
    assert c.factor == pytest.approx(0.9) and c.rows == 3
    assert c.loo_error == pytest.approx(0.0, abs=1e-12)
    assert c.raw_error == pytest.approx(1 / 0.9 - 1)  # |predicted / measured - 1|
    assert c.apply(1000.0) == pytest.approx(900.0)


def test_leave_one_out_error_matches_refitting_without_each_row():
    rng = random.Random(0)
    pairs = [(p, p * rng.uniform(0.8, 1.05)) for p in (rng.uniform(1e4, 5e5) for _ in range(9))]
    c = fit_correction("H100-80GB", pairs)
    errors = []
    for i, (p, m) in enumerate(pairs):
        others = fit_correction("H100-80GB", pairs[:i] + pairs[i + 1:])
        errors.append(abs(others.apply(p) / m - 1))
    assert c.loo_error == pytest.approx(sorted(errors)[len(errors) // 2])
    assert c.factor == pytest.approx(math.exp(sum(math.log(m / p) for p, m in pairs) / len(pairs)))


def test_unusable_pairs_are_skipped_and_one_row_has_no_leave_one_out_error():
    c = fit_correction("H200", [(100.0, 80.0), (100.0, math.nan), (0.0, 50.0), (100.0, None)])
    assert c.rows == 1 and c.factor == pytest.approx(0.8) and math.isnan(c.loo_error)
    empty = fit_correction("H200", [])
    assert empty.rows == 0 and empty.factor == 1.0 and empty.apply(123.0) == 123.0
    assert "no correction" in empty.describe() and "needs 2 rows" in c.describe()


def test_fit_corrections_per_gpu_type_and_pooled():
    rows = [("H100-80GB", 100.0, 100.0), ("H100-80GB", 100.0, 100.0), ("H200", 100.0, 81.0), ("H200", 100.0, 81.0)]
    out = fit_corrections(rows)
    assert out["H100-80GB"].factor == pytest.approx(1.0) and out["H200"].factor == pytest.approx(0.81)
    assert out[POOLED].rows == 4 and out[POOLED].factor == pytest.approx(0.9)
    assert fit_corrections([]) == {}


def test_recalibrator_fits_on_uncorrected_predictions_of_ok_trials_only():
    r = Recalibrator()
    assert r.correction("H200").rows == 0
    assert not r.observe({"gpu_type": "H200", "status": "oom", "predicted_tokens_per_s": 100.0})
    # a row of a sweep that applied a correction: the uncorrected prediction is the one to fit on
    assert r.observe({"gpu_type": "H200", "status": "ok", "tokens_per_s": 90.0, "predicted_tokens_per_s": 95.0,
                      "predicted_tokens_per_s_uncorrected": 100.0})
    # an older table's row: predicted_tokens_per_s was the uncorrected one
    assert r.observe({"gpu_type": "H200", "status": "ok", "tokens_per_s": 180.0, "predicted_tokens_per_s": 200.0,
                      "predicted_tokens_per_s_uncorrected": None})
    assert r.correction("H200").factor == pytest.approx(0.9) and r.correction("H200").rows == 2
    assert r.correction("H100-80GB") == Correction("H100-80GB")  # another GPU type learns nothing
    strict = Recalibrator(min_rows=3, pairs={k: list(v) for k, v in r.pairs.items()})
    assert strict.correction("H200").rows == 0


def test_recalibrator_pickles_with_its_state():
    r = Recalibrator()
    r.observe_pair("H200", 100.0, 91.0)
    r.observe_pair("H200", 120.0, 110.0)
    copy = pickle.loads(pickle.dumps(r))
    assert copy.correction("H200") == r.correction("H200") and copy.corrections() == r.corrections()
    # a correction travels in a Tune config as plain values
    c = r.correction("H200")
    assert Correction(**json.loads(json.dumps(dataclasses.asdict(c)))) == c


SPACE = SearchSpace(model=["llama-1b"], per_device_batch=[16], num_gpus=[1], gpu_type=["H200"], attention=["sdpa"],
                    strategy=["ddp"], steps=10, warmup_steps=3)
CAPACITY = Capacity(use_gpu=True, gpus={"H200": 8}, gpus_per_node={"H200": 8})


def test_plan_trial_applies_a_correction_and_records_both_predictions():
    book = PriceBook.load("aws")
    trial = next(iter(SPACE.trials()))
    plain = plan_trial(SPACE.resolve(trial, CAPACITY.device), CAPACITY, book, prune=True)
    assert plain.correction_rows == 0 and plain.uncorrected_tokens_per_s == plain.estimate.tokens_per_s
    c = fit_correction("H200", [(100.0, 90.0), (100.0, 90.0)])
    fixed = plan_trial(SPACE.resolve(trial, CAPACITY.device), CAPACITY, book, prune=True, correction=c)
    assert fixed.estimate.tokens_per_s == pytest.approx(0.9 * plain.estimate.tokens_per_s)
    assert fixed.uncorrected_tokens_per_s == plain.estimate.tokens_per_s
    assert fixed.estimate.peak_mem_gb == plain.estimate.peak_mem_gb and fixed.estimate.oom == plain.estimate.oom
    # slower predicted steps: a longer trial and a dearer one, which the ETA and the budget see
    assert fixed.seconds > plain.seconds and fixed.cost_usd > plain.cost_usd
    assert fixed.estimate.step_time_s == pytest.approx(sum(fixed.estimate.time_s.values()))
    columns = fixed.prediction_columns()
    assert columns["correction_rows"] == 2
    assert columns["predicted_tokens_per_s"] == pytest.approx(0.9 * columns["predicted_tokens_per_s_uncorrected"])
    table = to_table([{"status": "ok", "gpu_type": "H200", **columns}])  # the schema has the columns
    assert table.column("correction_rows").to_pylist() == [2]
    assert plan_trial(SPACE.resolve(trial, CAPACITY.device), CAPACITY, book, prune=True, correction=NO_CORRECTION) == plain


def test_make_plan_looks_corrections_up_by_gpu_type():
    book = PriceBook.load("aws")
    r = Recalibrator()
    r.observe_pair("H200", 100.0, 80.0)
    plain, fixed = make_plan(SPACE, CAPACITY, book, True), make_plan(SPACE, CAPACITY, book, True, r.correction)
    assert fixed[0].estimate.tokens_per_s == pytest.approx(0.8 * plain[0].estimate.tokens_per_s)


def test_pooled_fallback_lends_other_gpu_types_trials_until_a_type_has_its_own():
    r = Recalibrator(pooled_fallback=True)
    assert r.correction("H200").rows == 0
    r.observe_pair("H100-80GB", 100.0, 95.0)
    assert r.correction("H200").gpu_type == POOLED and r.correction("H200").factor == pytest.approx(0.95)
    r.observe_pair("H200", 100.0, 90.0)
    assert r.correction("H200").gpu_type == "H200" and r.correction("H200").factor == pytest.approx(0.9)
    assert Recalibrator(pairs=dict(r.pairs)).correction("A100-80GB").rows == 0  # off by default


def test_the_replay_of_the_committed_sweeps_reproduces_its_committed_figures(tmp_path):
    import sys
    from pathlib import Path

    benchmarks = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(benchmarks))
    try:
        import recalibration_replay as rr
    finally:
        sys.path.remove(str(benchmarks))
    h200 = rr.replay(rr.load([str(benchmarks / "results" / "sweeps" / "sweep_h200x1.parquet")]), Recalibrator())
    # before each trial only earlier trials count: the first has no correction, the second one fitted on one trial
    assert list(h200["rows"][:3]) == [0, 1, 2] and h200["corrected"].iloc[0] == h200["uncorrected"].iloc[0]
    first = h200.iloc[0]
    assert h200["factor"].iloc[1] == pytest.approx(first["tokens_per_s"] / first["uncorrected"])
    assert rr.errors(h200, "corrected").median() < rr.errors(h200, "uncorrected").median()
    out = tmp_path / "replay.md"
    assert rr.main(["--out", str(out)]) == 0
    committed = benchmarks / "results" / "estimate" / "recalibration_replay.md"
    assert out.read_text() == committed.read_text()
