"""Cost metrics by hand: tokens per dollar, dollars per billion tokens, loss per dollar (Eq. 1),
re-pricing a table, and the best-over-the-rest reduction with OOM as zero."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from slmray.analysis.costs import (
    CHINCHILLA,
    add_cost_metrics,
    best_over,
    chinchilla_loss_per_token,
    loss_per_usd,
    measured_loss_per_token,
    price_trials,
    tokens_per_usd,
    usd_per_btok,
)
from slmray.catalog.prices import PriceBook, PriceWarning


def test_tokens_per_dollar_and_dollars_per_billion_tokens():
    # 1,000 tokens/s for $3.60 an hour: 3.6M tokens an hour, so 1M tokens per dollar, $1,000 per 1B tokens
    assert tokens_per_usd(1000.0, 3.6) == pytest.approx(1e6)
    assert usd_per_btok(1000.0, 3.6) == pytest.approx(1000.0)
    # free machine: no tokens-per-dollar (infinite), zero dollars; unknown price or no throughput: NaN
    assert math.isnan(tokens_per_usd(1000.0, 0.0)) and usd_per_btok(1000.0, 0.0) == 0.0
    assert math.isnan(tokens_per_usd(1000.0, math.nan)) and math.isnan(usd_per_btok(0.0, 3.6))
    np.testing.assert_allclose(tokens_per_usd([1000.0, 2000.0], [3.6, 7.2]), [1e6, 1e6])


def test_loss_per_dollar_is_eq_1():
    # Loss/Token 2e-9, 1,000 tokens/s, $3.60/h = $0.001/s: 2e-9 * 1000 / 0.001 = 2e-3 loss per dollar
    assert loss_per_usd(2e-9, 1000.0, 3.6) == pytest.approx(2e-3)
    assert math.isnan(loss_per_usd(2e-9, 1000.0, 0.0))


def test_chinchilla_loss_per_token_is_the_slope_of_the_law():
    n = 1e8
    d = 20 * n
    c = CHINCHILLA
    expected = 0.28 * 410.7 / d ** 1.28
    assert chinchilla_loss_per_token(n) == pytest.approx(expected)

    def law(tokens):
        return c["E"] + c["A"] / n ** c["alpha"] + c["B"] / tokens ** c["beta"]

    h = d * 1e-6  # the law's own finite-difference slope agrees
    assert chinchilla_loss_per_token(n) == pytest.approx((law(d) - law(d + h)) / h, rel=1e-4)
    assert chinchilla_loss_per_token(n, tokens_per_param=40) < chinchilla_loss_per_token(n)


def test_measured_loss_per_token_is_minus_the_fitted_slope():
    assert measured_loss_per_token([3.0, 2.0, 1.0], tokens_per_step=10.0) == pytest.approx(0.1)
    assert measured_loss_per_token([1.0, 1.5, 2.0], tokens_per_step=5.0) == pytest.approx(-0.1)  # loss rose
    assert math.isnan(measured_loss_per_token([1.0], 10.0)) and math.isnan(measured_loss_per_token(None, 10.0))


def _trials():
    return pd.DataFrame({
        "model": ["m", "m", "m"], "n_params": [1e8, 1e8, 1e8], "gpu_type": ["H100-80GB", "cpu", "H100-80GB"],
        "num_gpus": [8, 1, 1], "status": ["ok", "ok", "oom"], "tokens_per_s": [8000.0, 100.0, math.nan],
        "wall_s": [360.0, 60.0, 30.0], "losses": [[4.0, 3.0, 2.0], [5.0, 5.0], None], "tokens_seen": [3000, 200, 0],
        "price_per_hour_usd": [math.nan] * 3,
    })


def test_price_trials_charges_the_instances_that_hold_the_gpus():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = price_trials(_trials(), PriceBook.load("aws"))
    assert [w.category for w in caught] == [PriceWarning]  # cpu has no AWS price, said once
    assert df["price_per_hour_usd"].iloc[0] == pytest.approx(55.04)  # one p5.48xlarge, as it ran
    assert df["cost_usd"].iloc[0] == pytest.approx(55.04 / 10)  # 360 s
    assert df["tokens_per_usd"].iloc[0] == pytest.approx(8000 * 3600 / 55.04)
    assert "p5.48xlarge" in df["price_source"].iloc[0]
    assert math.isnan(df["price_per_hour_usd"].iloc[1]) and pd.isna(df["price_source"].iloc[1])
    assert df["price_per_hour_usd"].iloc[2] == pytest.approx(6.88)  # a p5.4xlarge
    h200 = price_trials(_trials().assign(gpu_type="H200", num_gpus=1), PriceBook.load("aws"))
    assert h200["price_per_hour_usd"].iloc[0] == pytest.approx(63.296)  # sold on demand only as 8 (p5en.48xlarge)
    shared = price_trials(_trials().assign(gpu_type="H200", num_gpus=1), PriceBook.load("aws", per_gpu=True))
    assert shared["price_per_hour_usd"].iloc[0] == pytest.approx(63.296 / 8)


def test_paper_profile_reproduces_relative_token_per_dollar():
    df = price_trials(_trials().assign(gpu_type="H100-80GB", num_gpus=1), PriceBook.load("paper"))
    assert df["tokens_per_usd"].iloc[0] == pytest.approx(8000 * 3600 / 2.53)


def test_add_cost_metrics_from_both_loss_sources():
    priced = price_trials(_trials(), PriceBook.load("local", overrides={"H100-80GB": 2.0, "cpu": 0.36}))
    scaling = add_cost_metrics(priced)
    assert scaling["usd_per_btok"].iloc[1] == pytest.approx(0.36 / (100 * 3600) * 1e9)
    assert scaling["loss_per_token"].iloc[0] == pytest.approx(chinchilla_loss_per_token(1e8))
    assert scaling["loss_per_usd"].iloc[0] == pytest.approx(chinchilla_loss_per_token(1e8) * 8000 / (16.0 / 3600))
    measured = add_cost_metrics(priced, "measured")
    assert measured["loss_per_token"].iloc[0] == pytest.approx(1.0 / 1000)  # 1 loss per 1000-token step
    assert measured["loss_per_token"].iloc[1] == pytest.approx(0.0)
    assert math.isnan(measured["loss_per_token"].iloc[2])
    with pytest.raises(ValueError, match="loss_source: 'guess'"):
        add_cost_metrics(priced, "guess")


def test_best_over_counts_oom_as_zero():
    df = pd.DataFrame({
        "model": ["a", "a", "a", "b", "b", "c", "d"],
        "per_device_batch": [8, 8, 16, 8, 8, 8, 8],
        "status": ["ok", "ok", "oom", "oom", "failed", "failed", "ok"],
        "tokens_per_s": [10.0, 12.0, math.nan, math.nan, math.nan, math.nan, math.nan],
    })
    best = best_over(df, "tokens_per_s", ["model", "per_device_batch"]).set_index(["model", "per_device_batch"])
    assert best.loc[("a", 8), "tokens_per_s"] == 12.0 and best.loc[("a", 8), "row"] == 1
    assert best.loc[("a", 16), "tokens_per_s"] == 0.0  # every trial ran out of memory
    assert best.loc[("b", 8), "tokens_per_s"] == 0.0
    assert math.isnan(best.loc[("c", 8), "tokens_per_s"])  # failed is not OOM
    assert math.isnan(best.loc[("d", 8), "tokens_per_s"])  # ok but unmeasured is unknown, not 0
    cheapest = best_over(df.assign(cost=[3.0, 2.0, 9.0, 9.0, 9.0, 9.0, 9.0]), "cost", "model", maximize=False)
    assert cheapest.set_index("model")["cost"].to_dict()["a"] == 2.0
    assert cheapest.set_index("model")["cost"].to_dict()["b"] == math.inf  # lower is better: OOM is the worst
