"""slmray.predict.calibration: the per-GPU-type tokens/s correction, its leave-one-out error, the online
Recalibrator the sweep refits as trials finish, and plan_trial applying it.  No devices, no Ray."""

import dataclasses
import json
import math
import os
import pickle
import random

import pytest

from slmray.catalog.prices import PriceBook
from slmray.predict.calibration import (
    NO_CORRECTION,
    POOLED,
    PRIOR_SD,
    ROW_SD,
    Correction,
    Recalibrator,
    Regime,
    fit_anchor,
    fit_correction,
    fit_corrections,
)
from slmray.results.table import to_table
from slmray.sweep.capacity import Capacity
from slmray.sweep.plan import make_plan, plan_trial
from slmray.sweep.space import SearchSpace


FUSED = Regime(16384, eager=False, compiled=False)


def _regime(batch: int, seq: int = 1024, eager: bool = False, compiled: bool = True, model: str = "") -> Regime:
    return Regime(batch * seq, eager, compiled, model=model)


def test_a_constant_bias_is_corrected_once_there_are_rows_and_shrunk_toward_none():
    pairs = [(100.0, 90.0), (200.0, 180.0), (50.0, 45.0)]
    c = fit_correction("H200", pairs)
    assert c.kind == "factor" and c.rows == 3 and c.observed == 3
    # ridge toward no correction: 3 rows against a prior worth 0.25 of a row
    shrink = 3 / (3 + (ROW_SD / PRIOR_SD["intercept"]) ** 2)
    assert c.factor == pytest.approx(0.9 ** shrink) and 0.9 < c.factor < 1.0
    assert c.raw_error == pytest.approx(1 / 0.9 - 1)  # |predicted / measured - 1|
    assert c.loo_error < c.raw_error
    assert c.apply(1000.0) == pytest.approx(1000.0 * c.factor)
    many = fit_correction("H200", pairs * 10)
    assert abs(math.log(many.factor / 0.9)) < abs(math.log(c.factor / 0.9))  # more rows, less shrinkage


def test_fewer_than_two_rows_apply_nothing_and_bad_pairs_are_skipped():
    c = fit_correction("H200", [(100.0, 80.0), (100.0, math.nan), (0.0, 50.0), (100.0, None)])
    assert c.rows == 0 and c.observed == 1 and c.apply(123.0) == 123.0 and "leave-one-out needs 2" in c.describe()
    empty = fit_correction("H200", [])
    assert empty.rows == 0 and empty.factor == 1.0 and "no correction" in empty.describe()


def test_never_worse_than_none_on_its_own_rows_by_leave_one_out():
    rng = random.Random(0)
    for trial in range(20):
        n = rng.randint(2, 9)
        samples = [(p, p * rng.uniform(0.7, 1.3), _regime(rng.choice([4, 8, 16, 32, 64]), eager=rng.random() < 0.5,
                                                         compiled=rng.random() < 0.5)) for p in (rng.uniform(1e4, 5e5) for _ in range(n))]
        c = fit_correction("H100-80GB", samples)
        assert c.loo_error <= c.raw_error
        if c.rows:
            assert c.loo_error < c.raw_error
        else:  # no fit beat no correction: nothing applied
            assert all(c.apply(p, r) == p for p, _, r in samples)


def test_leave_one_out_error_matches_refitting_without_each_row():
    rng = random.Random(1)
    # a clear bias: every refit without one row is a factor too, so the refits are the leave-one-out fits
    pairs = [(p, p * rng.uniform(0.75, 0.85)) for p in (rng.uniform(1e4, 5e5) for _ in range(7))]
    c = fit_correction("H100-80GB", pairs)
    assert c.kind == "factor" and c.rows == 7
    errors = []
    for i, (p, m) in enumerate(pairs):
        others = fit_correction("H100-80GB", pairs[:i] + pairs[i + 1:])
        assert others.kind == "factor"
        errors.append(abs(others.apply(p) / m - 1))
    assert c.loo_error == pytest.approx(sum(errors) / len(errors))
    assert c.raw_error == pytest.approx(sum(abs(p / m - 1) for p, m in pairs) / len(pairs))


def test_a_regime_correction_bends_where_a_single_factor_makes_large_batches_worse():
    # issue 23's pattern on one H100: batch 8 predicted 44-115% too fast, batch 64 5-20% too slow
    ratios = {8: (1.44, 1.8, 2.15), 64: (0.95, 0.9, 0.8)}
    samples = [(100.0 * r, 100.0, _regime(b)) for b, rs in ratios.items() for r in rs]
    c = fit_correction("H100-80GB", samples)
    assert c.kind.startswith("regime") and c.log_tokens > 0
    factor = math.exp(sum(math.log(m / p) for p, m, _ in samples) / len(samples))  # the old correction
    batch64 = _regime(64)
    assert abs(90 * factor / 100 - 1) > 0.25  # the old one: -10% became -28%
    assert abs(c.apply(90.0, batch64) / 100 - 1) < 0.1  # bent: batch 64 stays within 10%
    assert c.multiplier(_regime(8)) < 0.8 < c.multiplier(batch64)
    with pytest.raises(ValueError, match="regime"):
        c.apply(100.0)


def test_a_model_term_keeps_one_models_miss_off_the_others():
    samples = [(100.0 * r, 100.0, _regime(16, compiled=False, model=m)) for m, r in
               (("qwen3-0.6b", 1.6), ("qwen3-0.6b", 1.7), ("qwen3-0.6b", 1.65), ("llama-1b", 1.0), ("llama-1b", 1.01),
                ("llama-1b", 0.99), ("qwen3-0.6b", 1.62), ("llama-1b", 1.0))]
    c = fit_correction("H100-80GB", samples)
    assert c.kind == "regime+model"
    assert c.multiplier(_regime(16, compiled=False, model="qwen3-0.6b")) < 0.8
    assert abs(c.multiplier(_regime(16, compiled=False, model="llama-1b")) - 1) < 0.1


def test_a_model_with_one_row_gets_no_term_of_its_own():
    """Leave-one-out cannot test a term fitted on one row: compiled llama-100m at batch 4 ran 3x
    slower than predicted on an H100, and a term fitted on that row alone moved its batch-16
    prediction from +15% to -56%.  Its second row brings its term, tested on each of the two."""
    llama_1b = [(100.0 * r, 100.0, _regime(b, model="llama-1b")) for b, r in ((4, 1.33), (16, 1.13), (8, 1.11), (32, 1.15))]
    small = (300.0, 100.0, _regime(4, model="llama-100m"))
    c = fit_correction("H100-80GB", [*llama_1b, small])
    assert "llama-100m" not in c.models
    shared = dataclasses.replace(c, transfers=True)  # what a model without a term of its own gets
    assert c.multiplier(_regime(16, model="llama-100m")) == pytest.approx(shared.multiplier(_regime(16, model="other")))
    two = fit_correction("H100-80GB", [*llama_1b, small, (290.0, 100.0, _regime(8, model="llama-100m"))])
    assert two.kind == "regime+model" and two.models["llama-100m"] < -0.3


def test_one_far_row_does_not_swing_the_correction_of_the_others(monkeypatch):
    """Huber's loss: a row 3x off (a regime the estimator does not model) pulls the fit as a row
    `HUBER_SDS` row-noises off would, so the others' 10% bias is still what is corrected; plain
    least squares lets it drag every regime."""
    from slmray.predict import calibration

    bulk = [(100.0, 90.0 * f, _regime(b, model="m")) for b, f in ((8, 1.0), (16, 1.01), (32, 0.99), (64, 1.0), (16, 1.0),
                                                                  (32, 1.01), (64, 0.99))]
    far = (300.0, 100.0, _regime(4, model="other"))
    assert 0.85 < fit_correction("H100-80GB", [*bulk, far]).multiplier(_regime(4, model="m")) < 0.95
    monkeypatch.setattr(calibration, "HUBER_SDS", 1e9)
    monkeypatch.setattr(calibration, "LOO_MARGIN", 0.0)  # the dragged fit, applied (the margin would refuse it)
    assert fit_correction("H100-80GB", [*bulk, far]).multiplier(_regime(4, model="m")) < 0.8


def test_regime_of_a_row_and_of_a_config():
    row = {"per_device_batch": 8, "seq_len": 1024, "attention": "eager", "compile": None, "backend": "transformers",
           "model": "qwen3-0.6b"}
    r = Regime.of(row)
    assert r == Regime(8192, eager=True, compiled=False, hf_eager=True, model="qwen3-0.6b")
    cfg = SPACE.resolve(next(iter(SPACE.trials())), CAPACITY.device).train
    assert Regime.of(cfg) == Regime(16 * cfg.seq_len, eager=False, compiled=False, hf_eager=False, model="llama-1b")


def test_a_host_bound_regime_is_read_from_the_estimate_or_the_row():
    row = {"per_device_batch": 6, "seq_len": 1024, "attention": "sdpa", "compile": False, "model": "pythia-160m"}
    assert not Regime.of(row).host_bound  # a table written before the column: not host-bound
    assert Regime.of({**row, "predicted_host_share": 0.35}).host_bound
    assert not Regime.of({**row, "predicted_host_share": 0.05}).host_bound
    assert not Regime.of({**row, "predicted_host_share": math.nan}).host_bound
    assert Regime.of({**row, "predicted_host_share": 0.05}, host_share=0.5).host_bound  # the estimate's wins


def test_host_bound_rows_are_counted_but_neither_fitted_on_nor_corrected():
    device = [(100.0, 90.0, _regime(b)) for b in (8, 16, 32, 64)]
    host = [(100.0, 50.0, dataclasses.replace(_regime(b), host_bound=True)) for b in (4, 6, 8)]
    mixed, alone = fit_correction("H200", device + host), fit_correction("H200", device)
    assert mixed.rows == 4 and mixed.observed == 7 and mixed.host_bound_rows == 3
    assert mixed.coefficients == pytest.approx(alone.coefficients)  # the host-bound rows moved nothing
    assert mixed.multiplier(_regime(16)) < 0.95
    assert mixed.multiplier(dataclasses.replace(_regime(16), host_bound=True)) == 1.0  # and correct nothing
    assert "from 4 ok trials usable, 3 more host-bound (left out)" in mixed.describe()
    only = fit_correction("H200", host)
    assert only.rows == 0 and only.observed == 3
    assert only.describe() == "H200: no correction (0 ok trials usable, 3 more host-bound (left out); leave-one-out needs 2)"


def test_the_recalibrator_leaves_a_rows_host_bound_trial_out():
    r = Recalibrator()
    base = {"gpu_type": "H200", "per_device_batch": 16, "seq_len": 1024, "attention": "sdpa", "compile": False, "status": "ok"}
    for measured in (90.0, 91.0):
        assert r.observe({**base, "tokens_per_s": measured, "predicted_tokens_per_s": 100.0, "predicted_host_share": 0.01})
    assert r.observe({**base, "per_device_batch": 4, "tokens_per_s": 40.0, "predicted_tokens_per_s": 100.0,
                      "predicted_host_share": 0.4})
    c = r.correction("H200")
    assert c.rows == 2 and c.host_bound_rows == 1 and c.factor > 0.85
    # a GPU type whose trials are all host-bound has none to fit: the pooled fallback lends the others'
    pooled = Recalibrator(pooled_fallback=True, samples={"H200": list(r.samples["H200"])})
    for _ in range(2):
        pooled.observe({**base, "gpu_type": "H100-80GB", "per_device_batch": 4, "tokens_per_s": 40.0,
                        "predicted_tokens_per_s": 100.0, "predicted_host_share": 0.4})
    assert pooled.correction("H100-80GB").gpu_type == POOLED and pooled.correction("H100-80GB").rows == 2
    strict = Recalibrator(min_rows=3, samples=dict(pooled.samples))
    assert strict.correction("H200").rows == 0 and "no correction yet (2 ok trials usable, 1 more host-bound" in strict.correction("H200").describe()


def test_fit_corrections_per_gpu_type_and_pooled():
    rows = [("H100-80GB", 100.0, 100.0), ("H100-80GB", 100.0, 100.0), ("H200", 100.0, 81.0), ("H200", 100.0, 81.0),
            ("H200", 100.0, 81.0)]
    out = fit_corrections(rows)
    assert out["H100-80GB"].rows == 0  # nothing to correct: no fit beats none
    assert out["H200"].kind == "factor" and out["H200"].factor == pytest.approx(0.81, rel=0.05)
    assert out[POOLED].observed == 5
    assert fit_corrections([]) == {}


def test_fit_anchor_is_one_configurations_measured_factor():
    a = fit_anchor("H200", [(100.0, 90.0)])
    assert a.rows == 1 and a.factor == pytest.approx(0.9) and a.apply(200.0) == pytest.approx(180.0)
    assert fit_anchor("H200", [(100.0, math.nan)]).rows == 0


def test_recalibrator_fits_on_uncorrected_predictions_of_ok_trials_only():
    r = Recalibrator()
    assert r.correction("H200").rows == 0
    base = {"gpu_type": "H200", "per_device_batch": 16, "seq_len": 1024, "attention": "sdpa", "compile": False}
    assert not r.observe({**base, "status": "oom", "predicted_tokens_per_s": 100.0})
    # a row of a sweep that applied a correction: the uncorrected prediction is the one to fit on
    assert r.observe({**base, "status": "ok", "tokens_per_s": 90.0, "predicted_tokens_per_s": 95.0,
                      "predicted_tokens_per_s_uncorrected": 100.0})
    assert r.correction("H200").rows == 0 and r.correction("H200").observed == 1  # leave-one-out needs two
    # an older table's row: predicted_tokens_per_s was the uncorrected one
    assert r.observe({**base, "status": "ok", "tokens_per_s": 180.0, "predicted_tokens_per_s": 200.0,
                      "predicted_tokens_per_s_uncorrected": None})
    assert r.observe({**base, "status": "ok", "tokens_per_s": 45.0, "predicted_tokens_per_s": 50.0})
    c = r.correction("H200")
    assert c.rows == 3 and c.apply(100.0, FUSED) < 100.0
    assert r.correction("H100-80GB") == Correction("H100-80GB")  # another GPU type learns nothing
    strict = Recalibrator(min_rows=4, samples={k: list(v) for k, v in r.samples.items()})
    assert strict.correction("H200").rows == 0


def test_recalibrator_pickles_with_its_state():
    r = Recalibrator()
    for p, m in ((100.0, 91.0), (120.0, 110.0), (90.0, 80.0)):
        r.observe_sample("H200", p, m, FUSED)
    copy = pickle.loads(pickle.dumps(r))
    assert copy.correction("H200") == r.correction("H200") and copy.corrections() == r.corrections()
    # a correction travels in a Tune config as plain values
    c = r.correction("H200")
    assert c.rows == 3 and Correction(**json.loads(json.dumps(dataclasses.asdict(c)))) == c


SPACE = SearchSpace(model=["llama-1b"], per_device_batch=[16], num_gpus=[1], gpu_type=["H200"], attention=["sdpa"],
                    strategy=["ddp"], steps=10, warmup_steps=3)
CAPACITY = Capacity(use_gpu=True, gpus={"H200": 8}, gpus_per_node={"H200": 8})


def test_plan_trial_applies_a_correction_and_records_both_predictions():
    book = PriceBook.load("aws")
    trial = next(iter(SPACE.trials()))
    resolved = SPACE.resolve(trial, CAPACITY.device)
    plain = plan_trial(resolved, CAPACITY, book, prune=True)
    assert plain.correction_rows == 0 and plain.uncorrected_tokens_per_s == plain.estimate.tokens_per_s
    c = fit_correction("H200", [(100.0, 90.0), (100.0, 90.0)])
    f = c.multiplier(Regime.of(resolved.train))
    assert c.rows == 2 and 0.9 < f < 1.0
    fixed = plan_trial(resolved, CAPACITY, book, prune=True, correction=c)
    assert fixed.estimate.tokens_per_s == pytest.approx(f * plain.estimate.tokens_per_s)
    assert fixed.estimate.tokens_per_s_low == pytest.approx(f * plain.estimate.tokens_per_s_low)
    assert fixed.uncorrected_tokens_per_s == plain.estimate.tokens_per_s
    assert fixed.estimate.peak_mem_gb == plain.estimate.peak_mem_gb and fixed.estimate.oom == plain.estimate.oom
    # slower predicted steps: a longer trial and a dearer one, which the ETA and the budget see
    assert fixed.seconds > plain.seconds and fixed.cost_usd > plain.cost_usd
    assert fixed.estimate.step_time_s == pytest.approx(sum(fixed.estimate.time_s.values()))
    columns = fixed.prediction_columns()
    assert columns["correction_rows"] == 2
    assert columns["predicted_tokens_per_s"] == pytest.approx(f * columns["predicted_tokens_per_s_uncorrected"])
    assert columns["predicted_host_share"] == pytest.approx(plain.estimate.host_share) and columns["predicted_host_share"] < 0.2
    table = to_table([{"status": "ok", "gpu_type": "H200", **columns}])  # the schema has the columns
    assert table.column("correction_rows").to_pylist() == [2]
    assert table.column("predicted_host_share").to_pylist() == [pytest.approx(columns["predicted_host_share"])]
    assert plan_trial(resolved, CAPACITY, book, prune=True, correction=NO_CORRECTION) == plain
    # trials observed but no fit beat none: nothing applied, correction_rows 0
    flat = fit_correction("H200", [(100.0, 90.0), (100.0, 110.0)])
    assert flat.rows == 0 and plan_trial(resolved, CAPACITY, book, prune=True, correction=flat) == plain


def test_plan_trial_leaves_a_host_bound_trial_uncorrected():
    book = PriceBook.load("aws")
    small = dataclasses.replace(SPACE, model=["pythia-160m"], per_device_batch=[4])
    resolved = small.resolve(next(iter(small.trials())), CAPACITY.device)
    plain = plan_trial(resolved, CAPACITY, book, prune=True)
    assert plain.prediction_columns()["predicted_host_share"] >= 0.2  # the host sets this step
    c = fit_correction("H200", [(100.0, 80.0, _regime(16, compiled=False)), (100.0, 80.0, _regime(2, compiled=False))])
    assert c.rows == 2 and c.multiplier(Regime.of(resolved.train)) < 0.9  # its regime, were it not host-bound
    assert plan_trial(resolved, CAPACITY, book, prune=True, correction=c) == plain


def test_make_plan_looks_corrections_up_by_gpu_type():
    book = PriceBook.load("aws")
    r = Recalibrator()
    r.observe_sample("H200", 100.0, 80.0, FUSED)
    r.observe_sample("H200", 100.0, 80.0, FUSED)
    plain, fixed = make_plan(SPACE, CAPACITY, book, True), make_plan(SPACE, CAPACITY, book, True, r.correction)
    f = r.correction("H200").multiplier(Regime.of(plain[0].train))
    assert f < 0.9 and fixed[0].estimate.tokens_per_s == pytest.approx(f * plain[0].estimate.tokens_per_s)


def test_pooled_fallback_lends_other_gpu_types_trials_until_a_type_has_its_own():
    r = Recalibrator(pooled_fallback=True)
    assert r.correction("H200").rows == 0
    r.observe_sample("H100-80GB", 100.0, 80.0, FUSED)
    r.observe_sample("H100-80GB", 100.0, 80.0, FUSED)
    assert r.correction("H200").gpu_type == POOLED and r.correction("H200").factor < 0.85
    r.observe_sample("H200", 100.0, 100.0, FUSED)
    r.observe_sample("H200", 100.0, 100.0, FUSED)
    assert r.correction("H200").gpu_type == "H200" and r.correction("H200").rows == 0  # its own: nothing to correct
    assert Recalibrator(samples=dict(r.samples)).correction("A100-80GB").rows == 0  # off by default


@pytest.mark.subprocess
def test_the_replay_and_the_held_out_benchmark_regenerate_their_committed_files(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    replay = tmp_path / "replay.md"
    subprocess.run([sys.executable, "benchmarks/recalibration_replay.py", "--out", str(replay)], cwd=root, env=env,
                   check=True, capture_output=True)
    assert replay.read_text() == (root / "benchmarks/results/estimate/recalibration_replay.md").read_text()
    held, widths = tmp_path / "held.md", tmp_path / "widths.csv"
    subprocess.run([sys.executable, "benchmarks/heldout_accuracy.py", "--out", str(held), "--widths", str(widths)],
                   cwd=root, env=env, check=True, capture_output=True)
    assert held.read_text() == (root / "benchmarks/results/estimate/heldout_accuracy.md").read_text()
    assert widths.read_text() == (root / "slmray/predict/interval_widths.csv").read_text()


def test_the_replay_never_lets_the_correction_do_worse_than_none_on_the_committed_sweeps():
    import sys
    from pathlib import Path

    benchmarks = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(benchmarks))
    try:
        import recalibration_replay as rr
    finally:
        sys.path.remove(str(benchmarks))
    for table in rr.load([str(benchmarks / "results" / "sweeps" / "sweep_h200x1.parquet")]):
        r = rr.replay(table)
        # before each trial only earlier trials count: nothing before two ok trials
        assert list(r["rows"][:2]) == [0, 0] and r["regime"].iloc[0] == r["uncorrected"].iloc[0]
        now, raw = rr.errors(r, "regime"), rr.errors(r, "uncorrected")
        assert now.median() < raw.median()
        # the H200's rate is fitted on this table, so its uncorrected worst is 4.3%: the correction's
        # may tie it within half a point, and no trial is made `WORSE` (5 points) by it
        assert now.max() <= raw.max() + 0.005 and not (now > raw + rr.WORSE).any()


def test_a_correction_applies_only_inside_the_regimes_its_rows_span():
    """Rows of small uncompiled SDPA steps say nothing of a large, compiled or eager step's miss: there the
    correction is 1 and the sweep's plan keeps the uncorrected estimate."""
    rows = [(100.0, 80.0, _regime(b, compiled=False)) for b in (4, 4, 6, 6, 8)]
    c = fit_correction("H100-80GB", rows)
    assert c.rows == 5 and (c.min_tokens, c.max_tokens) == (4096, 8192)
    assert c.multiplier(_regime(6, compiled=False)) == pytest.approx(0.8, rel=0.05)
    assert c.multiplier(_regime(16, compiled=False)) == 1.0  # beyond the tokens measured
    assert c.multiplier(_regime(6, compiled=True)) == 1.0 and c.multiplier(_regime(6, eager=True, compiled=False)) == 1.0
    assert c.multiplier(None) == pytest.approx(c.factor)  # no regime to judge: a factor applies
    assert Correction("H100-80GB", "factor", 2, 2, -0.1).covers(_regime(64))  # fitted without regimes: every regime


def test_a_fit_that_barely_beats_no_correction_is_not_applied(monkeypatch):
    """`LOO_MARGIN`: a 4% bias inside +-4% noise gives a factor a leave-one-out win by a hair (3.4%
    against 3.8%); that is no evidence, so nothing is applied; a clear bias is."""
    from slmray.predict import calibration

    rows = [(100.0, 100.0 * (1.04 + x), _regime(16)) for x in (0.03, -0.03, 0.02, -0.02, 0.04, -0.04)]
    refused = fit_correction("H100-80GB", rows)
    assert refused.rows == 0 and refused.observed == 6
    monkeypatch.setattr(calibration, "LOO_MARGIN", 0.0)
    hair = fit_correction("H100-80GB", rows)
    assert hair.kind == "factor" and refused.raw_error * 0.8 < hair.loo_error < refused.raw_error
    monkeypatch.undo()
    clear = [(100.0, 80.0 * (1 + x), _regime(16)) for x in (0.03, -0.03, 0.02, -0.02, 0.04, -0.04)]
    assert fit_correction("H100-80GB", clear).multiplier(_regime(16)) == pytest.approx(0.8, rel=0.03)


def test_a_correction_reaches_a_model_its_rows_lack_only_where_it_held_across_their_models():
    """Three llama-100m steps predicted 5-7% slow on an H100 fitted a correction that beat none by
    leave-one-out, and moved the next trial, llama-1b, from +1.7% to +7.9%: one model's miss is not
    the GPU type's.  Leave-one-model-out decides whether a correction reaches another model."""
    one_model = [(100.0, 100.0 * r, _regime(b, model="llama-100m")) for b, r in ((64, 1.068), (32, 1.075), (16, 1.052))]
    c = fit_correction("H100-80GB", one_model)
    assert c.rows == 3 and c.seen_models == ("llama-100m",) and not c.transfers
    assert c.multiplier(_regime(32, model="llama-100m")) > 1.04
    assert c.multiplier(_regime(32, model="llama-1b")) == 1.0
    assert "to llama-100m only" in c.describe()
    shared = [*one_model, *((100.0, 100.0 * r, _regime(b, model="llama-1b")) for b, r in ((64, 1.07), (32, 1.06), (16, 1.065)))]
    both = fit_correction("H100-80GB", shared)
    assert both.transfers and both.multiplier(_regime(32, model="pythia-410m")) > 1.04  # a bias every model shares
    apart = [*one_model, *((100.0, 100.0 * r, _regime(b, model="llama-1b")) for b, r in ((64, 0.99), (32, 1.0), (16, 1.01)))]
    own = fit_correction("H100-80GB", apart)
    assert own.rows and not own.transfers and own.multiplier(_regime(32, model="pythia-410m")) == 1.0
    roundtrip = Correction(**json.loads(json.dumps(dataclasses.asdict(c))))  # as it travels in a Tune config
    assert roundtrip.multiplier(_regime(32, model="llama-1b")) == 1.0 and roundtrip.multiplier(_regime(32, model="llama-100m")) > 1.04
