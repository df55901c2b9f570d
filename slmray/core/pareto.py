"""Non-dominated (Pareto) sets of points.

Directions are normalised once: every objective is turned into "lower is better" by negating
the maximised ones (optuna's `_multi_objective.py` does the same), and the rest is vectorised.
A point dominates another when it is no worse in every objective and better in one; equal
points do not dominate each other, so ties are all kept.  A point missing any objective (NaN)
is never on the front and dominates nothing.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

_BLOCK = 512  # rows compared at once: memory stays O(_BLOCK x n x objectives)


def pareto_mask(values: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Which rows of `values` (n points x k objectives) are non-dominated."""
    v = np.asarray(values, dtype=float).reshape(len(values), len(maximize))
    v = np.where(np.asarray(maximize, dtype=bool), -v, v)  # all objectives now minimised
    complete = ~np.isnan(v).any(axis=1)
    mask = np.zeros(len(v), dtype=bool)
    pts = v[complete]
    keep = np.ones(len(pts), dtype=bool)
    for start in range(0, len(pts), _BLOCK):
        block = pts[start : start + _BLOCK]  # (b, k): is any point in pts dominating these?
        no_worse = (pts[:, None, :] <= block[None, :, :]).all(axis=2)
        better = (pts[:, None, :] < block[None, :, :]).any(axis=2)
        keep[start : start + _BLOCK] = ~(no_worse & better).any(axis=0)
    mask[np.flatnonzero(complete)] = keep
    return mask
