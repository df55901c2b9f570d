"""Correcting the estimator's tokens/s with the measurements at hand, per GPU type.

`slmray.predict.estimate` predicts from a GPU's datasheet and a few constants fitted once on one H100
table; on a GPU no calibration row ran on it is biased (9.2% too fast, median, on the H200,
`benchmarks/results/estimate/estimate_accuracy.md`).  Such a miss is mostly one factor per GPU type (its
achievable matrix rate and bandwidth), so a correction is one number per GPU type:

    factor = geometric mean over the rows of (measured tokens/s / predicted tokens/s)
    corrected prediction = factor x uncorrected prediction

fitted on (uncorrected prediction, measurement) pairs of ok trials.  The geometric mean is the
least-squares fit of log ratios, so over- and under-predictions of the same size weigh alike.
Its leave-one-out error (each row predicted by the factor of the others) says how well it
predicts a row it has not seen; it needs two rows.

Used by both the sweep, which refits as trials finish (`Recalibrator`, picklable, so it can
travel to Ray trials), and `python -m slmray.recommend`, which fits on the tables it is given.
Nothing here imports torch, Ray or the analysis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

POOLED = "all GPU types"
"""`Correction.gpu_type` of a correction fitted on the rows of every GPU type at once."""


@dataclass(frozen=True)
class Correction:
    """A multiplicative correction of predicted tokens/s, fitted on `rows` measured trials."""

    gpu_type: str
    """The GPU type it was fitted on (`POOLED` for all of them), or "" for no correction."""
    factor: float = 1.0
    """Measured over predicted tokens/s, geometric mean; 1 without rows."""
    rows: int = 0
    """Ok trials it was fitted on; 0: no correction."""
    loo_error: float = math.nan
    """Median absolute relative error of the leave-one-out corrected predictions (0.031 = 3.1%);
    NaN with fewer than two rows."""
    raw_error: float = math.nan
    """The same of the uncorrected predictions of those rows, for comparison."""

    def apply(self, predicted_tokens_per_s: float) -> float:
        return predicted_tokens_per_s * self.factor

    def describe(self) -> str:
        """One line: `H200: x0.913 from 10 ok trials, leave-one-out error 3.1% (uncorrected 8.9%)`."""
        if not self.rows:
            return f"{self.gpu_type or 'no GPU type'}: no correction (no measured trial)"
        loo = "needs 2 rows" if math.isnan(self.loo_error) else f"{100 * self.loo_error:.1f}%"
        return (f"{self.gpu_type}: x{self.factor:.3f} from {self.rows} ok trial{'s' * (self.rows != 1)}, "
                f"leave-one-out error {loo} (uncorrected {100 * self.raw_error:.1f}%)")


NO_CORRECTION = Correction("")


def _valid(predicted: float, measured: float) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in (predicted, measured))


def fit_correction(gpu_type: str, pairs: Iterable[tuple[float, float]]) -> Correction:
    """The correction of `gpu_type` from (uncorrected predicted, measured) tokens/s pairs.

    Pairs without two positive finite numbers (an OOM trial, a failed one) are skipped.
    """
    logs = [math.log(m / p) for p, m in pairs if _valid(p, m)]
    n = len(logs)
    if not n:
        return Correction(gpu_type)
    total = sum(logs)
    raw = _median([abs(math.exp(-r) - 1) for r in logs])  # |p/m - 1|
    loo = math.nan
    if n >= 2:
        # row i predicted by the others' factor: |exp(mean of the others) * p/m - 1|
        loo = _median([abs(math.exp((total - r) / (n - 1) - r) - 1) for r in logs])
    return Correction(gpu_type, math.exp(total / n), n, loo, raw)


def fit_corrections(rows: Iterable[tuple[str, float, float]]) -> dict[str, Correction]:
    """Per GPU type, and pooled under `POOLED`, from (gpu_type, predicted, measured) triples."""
    by_gpu: dict[str, list[tuple[float, float]]] = {}
    for gpu, p, m in rows:
        if _valid(p, m):
            by_gpu.setdefault(gpu, []).append((p, m))
    out = {gpu: fit_correction(gpu, pairs) for gpu, pairs in sorted(by_gpu.items())}
    if by_gpu:
        out[POOLED] = fit_correction(POOLED, [pair for pairs in by_gpu.values() for pair in pairs])
    return out


def _median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    if not n:
        return math.nan
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _number(value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return x


@dataclass
class Recalibrator:
    """The per-GPU-type corrections of a running sweep, refitted as each trial finishes.

        recal = Recalibrator()
        correction = recal.correction("H200")     # before planning a trial: pass to plan_trial
        ...                                       # the trial runs; its row is written
        recal.observe(row)                        # a results row (dict of slmray.results.table.SCHEMA)

    `observe` reads `gpu_type`, `status`, `tokens_per_s` and the prediction made before the
    trial: `predicted_tokens_per_s_uncorrected` where the row has it, else
    `predicted_tokens_per_s` (tables written before corrections existed recorded only the
    uncorrected one).  A correction always applies to uncorrected predictions, so fitting on a
    corrected one would compound.  Only ok trials count.  Plain data: it pickles, and two
    copies that observed the same rows give the same corrections.
    """

    min_rows: int = 1
    """Ok trials of a GPU type needed before its correction is applied."""
    pooled_fallback: bool = False
    """Before then, apply the correction fitted on every GPU type's trials (if any) instead of none."""
    pairs: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """GPU type -> (uncorrected predicted, measured) tokens/s of each ok trial observed, in order."""

    def observe(self, row: Mapping[str, Any]) -> bool:
        """Add a finished trial's row; True if it was used (an ok trial with both numbers)."""
        if row.get("status") != "ok" or not row.get("gpu_type"):
            return False
        predicted = _number(row.get("predicted_tokens_per_s_uncorrected"))
        if not math.isfinite(predicted):
            predicted = _number(row.get("predicted_tokens_per_s"))
        return self.observe_pair(str(row["gpu_type"]), predicted, _number(row.get("tokens_per_s")))

    def observe_pair(self, gpu_type: str, predicted: float, measured: float) -> bool:
        if not _valid(predicted, measured):
            return False
        self.pairs.setdefault(gpu_type, []).append((float(predicted), float(measured)))
        return True

    def correction(self, gpu_type: str) -> Correction:
        """The correction to apply to the next prediction on `gpu_type`: fitted on its ok trials
        once there are `min_rows`; before, none (or the pooled one, `pooled_fallback`)."""
        pairs = self.pairs.get(gpu_type, [])
        if len(pairs) >= max(1, self.min_rows):
            return fit_correction(gpu_type, pairs)
        everything = [pair for ps in self.pairs.values() for pair in ps]
        if self.pooled_fallback and len(everything) >= max(1, self.min_rows):
            return fit_correction(POOLED, everything)
        return Correction(gpu_type)

    def corrections(self) -> dict[str, Correction]:
        """Every GPU type's correction as of now, and the pooled one."""
        return fit_corrections((g, p, m) for g, pairs in self.pairs.items() for p, m in pairs)
