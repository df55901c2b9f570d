"""Pareto fronts against a brute-force definition, on random data with ties and NaNs."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slmray.analysis.pareto import best_by_group, pareto_front
from slmray.core.objective import Objective, ObjectiveError
from slmray.core.pareto import pareto_mask


def brute_force(values: list[list[float]], maximize: list[bool]) -> list[bool]:
    """Straight from the definition, one pair at a time."""

    def better_or_equal(a, b, up):
        return a >= b if up else a <= b

    def strictly_better(a, b, up):
        return a > b if up else a < b

    front = []
    for i, p in enumerate(values):
        if any(math.isnan(x) for x in p):
            front.append(False)
            continue
        dominated = False
        for j, q in enumerate(values):
            if i == j or any(math.isnan(x) for x in q):
                continue
            if all(better_or_equal(a, b, up) for a, b, up in zip(q, p, maximize)) and any(
                strictly_better(a, b, up) for a, b, up in zip(q, p, maximize)
            ):
                dominated = True
                break
        front.append(not dominated)
    return front


# few distinct values, so ties (equal points and equal coordinates) are common
coordinate = st.one_of(st.sampled_from([0.0, 1.0, 2.0, 3.0, -1.5]), st.just(math.nan), st.floats(-5, 5))


@st.composite
def points(draw):
    k = draw(st.integers(1, 4))
    n = draw(st.integers(0, 40))
    values = draw(st.lists(st.lists(coordinate, min_size=k, max_size=k), min_size=n, max_size=n))
    maximize = draw(st.lists(st.booleans(), min_size=k, max_size=k))
    return values, maximize


@settings(max_examples=300, deadline=None)
@given(points())
def test_mask_matches_brute_force(case):
    values, maximize = case
    got = pareto_mask(np.array(values, dtype=float).reshape(len(values), len(maximize)), maximize)
    assert got.tolist() == brute_force(values, maximize)


@settings(max_examples=100, deadline=None)
@given(points())
def test_front_is_never_empty_when_a_complete_point_exists_and_duplicates_agree(case):
    values, maximize = case
    arr = np.array(values, dtype=float).reshape(len(values), len(maximize))
    mask = pareto_mask(arr, maximize)
    complete = ~np.isnan(arr).any(axis=1)
    assert mask.any() == complete.any()
    for i in range(len(arr)):  # identical points are both on the front or both off it
        for j in range(len(arr)):
            if complete[i] and np.array_equal(arr[i], arr[j]):
                assert mask[i] == mask[j]


def test_blocks_agree_with_brute_force_beyond_one_block():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 30, size=(1100, 2)).astype(float)
    values[rng.random(1100) < 0.05, 1] = np.nan
    expected = brute_force(values.tolist(), [True, False])
    assert pareto_mask(values, [True, False]).tolist() == expected


def test_directions_by_hand():
    values = np.array([[10.0, 5.0], [8.0, 1.0], [10.0, 5.0], [7.0, 7.0], [10.0, 6.0]])
    # maximise the first, minimise the second: (7, 7) and (10, 6) are dominated; the tie stays
    assert pareto_mask(values, [True, False]).tolist() == [True, True, True, False, False]
    # minimise both: (7, 7) is not dominated by (8, 1) (7 < 8)
    assert pareto_mask(values, [False, False]).tolist() == [False, True, False, True, False]


def _frame(rows):
    return pd.DataFrame(rows, columns=["model", "gpu_type", "num_gpus", "strategy", "attention", "per_device_batch",
                                       "compile", "status", "tokens_per_s", "usd_per_btok"])


def test_front_per_group_uses_ok_trials_only():
    df = _frame([
        ("a", "H100-80GB", 1, "single", "sdpa", 8, False, "ok", 100.0, 2.0),
        ("a", "H100-80GB", 1, "single", "eager", 8, False, "ok", 90.0, 3.0),
        ("a", "H100-80GB", 1, "single", "sdpa", 64, False, "failed", 500.0, 0.1),
        ("b", "A100-40GB", 1, "single", "sdpa", 8, False, "ok", 10.0, 9.0),
        ("b", "A100-40GB", 2, "ddp", "sdpa", 8, False, "ok", 20.0, 9.5),
        ("b", "A100-40GB", 2, "ddp", "sdpa", 16, False, "oom", math.nan, math.nan),
    ])
    objectives = [Objective("tokens_per_s", True), Objective("usd_per_btok", False)]
    assert pareto_front(df, objectives, by="model").tolist() == [True, False, False, True, True, False]
    # overall, model a's fast trial dominates everything of b
    assert pareto_front(df, objectives).tolist() == [True, False, False, False, False, False]


def test_best_by_group_and_runner_up_margin():
    df = _frame([
        ("a", "H100-80GB", 1, "single", "sdpa", 8, False, "ok", 100.0, 2.0),
        ("a", "H100-80GB", 1, "single", "sdpa", 8, False, "ok", 96.0, 2.1),  # a repeat: not its own runner-up
        ("a", "H100-80GB", 1, "single", "eager", 8, False, "ok", 80.0, 3.0),
        ("b", "A100-40GB", 1, "single", "sdpa", 8, False, "ok", 10.0, 9.0),
    ])
    best = best_by_group(df, Objective("tokens_per_s", True), "model").set_index("model")
    assert best.loc["a", "best"] == "H100-80GB x1 single sdpa b8"
    assert best.loc["a", "runner_up"] == "H100-80GB x1 single eager b8"
    assert best.loc["a", "margin"] == pytest.approx(0.25)  # (100 - 80) / 80
    assert pd.isna(best.loc["b", "runner_up"]) and math.isnan(best.loc["b", "margin"])
    cheapest = best_by_group(df, Objective("usd_per_btok", False), "model").set_index("model")
    assert cheapest.loc["a", "usd_per_btok"] == 2.0
    assert cheapest.loc["a", "margin"] == pytest.approx(1 / 3)  # minimised: (runner-up - best) / runner-up = (3 - 2) / 3


def test_parse_objective():
    assert Objective.parse("max:tokens_per_s") == Objective("tokens_per_s", True)
    assert str(Objective.parse("min:usd_per_btok")) == "min:usd_per_btok"
    for bad in ("tokens_per_s", "up:tokens_per_s", "max:"):
        with pytest.raises(ObjectiveError, match="expected max:COLUMN or min:COLUMN"):
            Objective.parse(bad)
    with pytest.raises(ObjectiveError, match="unknown column 'speed'"):
        Objective.parse("max:speed", ["tokens_per_s"])
