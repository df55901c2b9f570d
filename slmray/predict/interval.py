"""How far a tokens/s prediction may be off: an interval around `estimate.Estimate.tokens_per_s`.

The interval is multiplicative (the estimator's errors are ratios): `[t / w, t * w]` for a
width `w >= 1` that grows with what the prediction extrapolates over.  `PRIOR_WIDTH` and the
`WIDENING` factors are stated priors, not fits; the fitted, leave-one-out version replaces them
(issue: predictions you can bet money on).
"""

from __future__ import annotations

from dataclasses import dataclass

PRIOR_WIDTH = 1.35
"""A profiled GPU type, one GPU, a regime the calibration rows cover: +-35% on tokens/s."""
WIDENING = {"no_profile": 1.5, "multi_gpu": 1.3}
"""Extra width, multiplied in, where the prediction rests on a datasheet alone or on the
communication terms no committed row has measured."""


@dataclass(frozen=True)
class Interval:
    """Tokens/s bounds (global, all GPUs) and the reasons the interval is as wide as it is."""

    low: float
    high: float
    reasons: tuple[str, ...] = ()


def tokens_per_s_interval(tokens_per_s: float, *, profiled: bool, num_gpus: int) -> Interval:
    """The interval around `tokens_per_s` for a prediction made with (or without) a GPU profile
    on `num_gpus` GPUs."""
    width, reasons = PRIOR_WIDTH, []
    if not profiled:
        width *= WIDENING["no_profile"]
        reasons.append("no GPU profile")
    if num_gpus > 1:
        width *= WIDENING["multi_gpu"]
        reasons.append(f"{num_gpus} GPUs, communication unmeasured")
    return Interval(tokens_per_s / width, tokens_per_s * width, tuple(reasons))
