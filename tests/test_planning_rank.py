"""The planner's ranking by several objectives (slmray.planning.rank): lexicographic with a tolerance."""

import math

import numpy as np
import pandas as pd

from slmray.planning.rank import best, describe, ranked


def test_ranking_is_lexicographic_with_a_tolerance():
    options = pd.DataFrame({"usd": [100.0, 102.0, 110.0, math.nan], "hours": [10.0, 5.0, 1.0, 0.5],
                            "gpu_hours": [1.0, 1.0, 1.0, 1.0]})
    assert list(ranked(options, ("cost", "time"), 0.03).index) == [1, 0, 2, 3]  # 102 is within 3% of 100: faster wins
    assert list(ranked(options, ("cost", "time"), 0.0).index) == [0, 1, 2, 3]
    assert list(ranked(options, ("time", "cost"), 0.03).index) == [2, 1, 0, 3]  # no cost: last, whatever its time
    assert best(np.array([[math.nan, 1.0]]), 0.03) == -1
    assert list(ranked(options, ("cost",), 0.5).index) == [0, 1, 2, 3]  # the last objective is taken exactly
    assert describe(("cost", "time"), 0.03) == "cost, then time among options within 3% of the best cost"


def test_the_best_row_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(200):
        values = rng.integers(1, 6, size=(7, 2)).astype(float)
        tol = float(rng.choice([0.0, 0.25, 0.5]))
        i = best(values, tol)
        near = values[:, 0] <= values[:, 0].min() * (1 + tol)
        assert near[i] and values[i, 1] == values[near, 1].min()
