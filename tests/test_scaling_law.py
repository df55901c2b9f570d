"""The data-scaling law and the critical batch by hand, and the loss a budget buys from them
(`slmray.core.scaling_law`, `slmray.analysis.budget`)."""

import math

import numpy as np
import pandas as pd
import pytest

from slmray.analysis import budget
from slmray.core import scaling_law
from slmray.core.scaling_law import CHINCHILLA


def test_chinchilla_loss_by_hand():
    n, d = 1e9, 2e10
    c = CHINCHILLA
    assert scaling_law.loss(n, d) == pytest.approx(1.69 + 406.4 / n ** 0.34 + 410.7 / d ** 0.28)
    assert scaling_law.loss_floor(n) == pytest.approx(c["E"] + c["A"] / n ** c["alpha"])
    assert scaling_law.loss(n, 4 * d) < scaling_law.loss(n, d)  # more data, less loss
    assert math.isnan(scaling_law.loss(0, d)) and math.isnan(scaling_law.loss(n, 0))


def test_tokens_for_loss_inverts_the_law_and_refuses_the_floor():
    n = 5e8
    for d in (1e9, 1e10, 1e11):
        assert scaling_law.tokens_for_loss(n, scaling_law.loss(n, d)) == pytest.approx(d, rel=1e-9)
    assert scaling_law.tokens_for_loss(n, scaling_law.loss_floor(n)) == math.inf
    assert scaling_law.tokens_for_loss(n, 1.0) == math.inf  # below E: no model reaches it


def test_critical_batch_is_kaplans():
    assert scaling_law.critical_batch_tokens(1.0) == pytest.approx(2e8)
    assert scaling_law.critical_batch_tokens(3.0) == pytest.approx(2e8 / 3.0 ** (1 / 0.21))
    assert scaling_law.critical_batch_tokens(2.5) > scaling_law.critical_batch_tokens(3.0)  # grows as loss falls


def _priced():
    return pd.DataFrame({
        "model": ["small", "small", "big", "big"], "n_params": [1e8, 1e8, 1e9, 1e9],
        "status": ["ok", "ok", "ok", "oom"], "tokens_per_usd": [2e8, 3e8, 2e7, np.nan],
        "gpu_type": ["H100-80GB"] * 4, "num_gpus": [1, 1, 8, 8], "strategy": ["single", "single", "ddp", "ddp"],
        "attention": ["eager", "sdpa", "sdpa", "sdpa"], "per_device_batch": [16, 32, 8, 16], "seq_len": [1024] * 4,
        "grad_accum": [1, 1, 2, 1], "compile": [False] * 4,
    })


def test_budget_buys_the_laws_loss_at_the_cheapest_configuration():
    best = budget.cheapest(_priced())
    assert best["tokens_per_usd"].tolist() == [3e8, 2e7]  # small's sdpa row; big's one ok row
    assert best["tokens_per_step"].tolist() == [32 * 1024, 8 * 1024 * 8 * 2]  # batch x seq x GPUs x accumulation
    table = budget.loss_for_budget(best, [100.0]).set_index("model")
    assert table.loc["small", "$100"] == pytest.approx(scaling_law.loss(1e8, 100 * 3e8))
    cost = budget.cost_of_loss(best, [3.0, 2.2]).set_index("model")
    assert cost.loc["big", "loss 3.00"] == pytest.approx(scaling_law.tokens_for_loss(1e9, 3.0) / 2e7)
    assert cost.loc["small", "loss 2.20"] == "unreachable"  # below the 1e8 model's floor (2.42)


def test_budgets_and_targets_come_from_the_models_runs():
    best = budget.cheapest(_priced())
    runs = 20 * best["n_params"] / best["tokens_per_usd"]  # $6.67 and $1,000
    assert budget.budgets(best) == [1.0, 10.0, 100.0, 1000.0]
    assert runs.min() >= 1.0 and runs.max() <= 1000.0
    losses = {m: round(float(scaling_law.loss(n, 20 * n)), 2) for m, n in (("small", 1e8), ("big", 1e9))}
    assert budget.targets(best) == {losses["small"]: "small", losses["big"]: "big"}
    assert list(budget.targets(best)) == sorted(losses.values(), reverse=True)
    assert f"loss {losses['big']:.2f} (big's)" in budget.cost_of_loss(best, budget.targets(best)).columns


def test_critical_batch_warning_past_it():
    best = budget.cheapest(_priced())
    table = budget.loss_for_budget(best, [10.0]).set_index("model")
    at = scaling_law.loss(1e9, 20 * 1e9)
    assert table.loc["big", "critical batch"] == pytest.approx(scaling_law.critical_batch_tokens(at))
    assert budget.past_critical_batch(best) == []
    assert budget.past_critical_batch(best.assign(tokens_per_step=[1e4, 1e8])) == ["big"]
    text, _ = budget.sections(_priced().assign(seq_len=[1024, 1024, 2 ** 20, 1024]))  # big at 16M tokens a step
    assert any(t.startswith("Warning: past the critical batch") and t.endswith(": big.") for t in text)


def test_no_price_is_one_line_not_a_table():
    text, tables = budget.sections(_priced().assign(tokens_per_usd=np.nan))
    assert tables == [] and "no trial has a price" in text[0].lower()
