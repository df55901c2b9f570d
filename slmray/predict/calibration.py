"""Correcting the estimator's tokens/s with the measurements at hand, per GPU type, by regime.

`slmray.predict.estimate` predicts from a GPU's datasheet (or profile) and a few constants fitted
once; its misses are not one factor per GPU type.  Small steps are predicted too fast and large ones
too slow on the same GPU (issue 23: one H100, batch 8 +44% to +115%, batch 64 -5% to -20%), so a
single measured/predicted factor fitted on a mix of them moved the batch-64 predictions from -10% to
-38%.  The correction here is a residual in log space that can bend with the regime:

    log(measured / predicted) ~ b0 + b1 (log(tokens) - log(16384)) + b2 eager + b3 compiled + b4 hf_eager

                                                + (a term per model the rows have)

`tokens`: a device's micro-step (per-device batch x sequence length: what sets the kernels' sizes);
`eager`: attention that materialises the scores; `compiled`: torch.compile; `hf_eager`: Transformers'
own modules uncompiled (`backend="transformers"`), whose host-bound steps the estimator, counting the
native model's kernels, predicts up to 2x too fast (benchmarks/results/estimate/estimate_accuracy.md);
a model's own term keeps one model's miss (Qwen3-0.6B uncompiled) off the others, once it has
`MODEL_MIN_ROWS` rows.  Fitted by ridge
least squares (Huber's loss: `HUBER_SDS`) on the ok trials of one GPU type, with the prior stated in `PRIOR_SD` and `MODEL_SD`
(each coefficient ~ N(0, sd^2) around no correction, against a row's own noise `ROW_SD`): while rows
are few the fit stays near no correction; as they accumulate it follows them.

Four candidates are fitted on the same rows (`KINDS`): none, a factor (b0 alone), the regime (b0-b4)
and the regime with the model terms.  Each is scored by leave-one-out (each row predicted by the
candidate refitted on the others), and the one with the smallest mean |predicted / measured - 1| is
used, so a correction applies only where it beat the uncorrected predictions on the rows it has, by
`LOO_MARGIN`, and only inside the regimes those rows span (`Correction.covers`); leave-one-out
needs two rows, so before then nothing is applied.  It reaches a model its rows lack only where the
fit held across their models (leave-one-model-out beat no correction by the same margin): three
llama-100m steps 5-7% slow on an H100 moved the next trial, llama-1b, from +1.7% to +7.9%.

A step the host sets (`Regime.host_bound`) is neither fitted on nor corrected: its speed is the lent
host's, which moved one step by up to 21% between runs of one process on one H100 and by 1.7x
between two lent H100s (benchmarks/results/host_speed), so its residual says nothing of the
estimator's miss elsewhere; replayed on the committed tables, fitting on such rows made 14 later
predictions 5+ points worse, keeping them out 8 (`benchmarks/recalibration_replay.py`).

Used by the sweep, which refits as trials finish (`Recalibrator`, picklable, so it can travel to
Ray trials; a `Correction` travels in a Tune config as plain values), and by the planner
(`slmray.planning.options`), which fits on the tables it is given.  No torch, Ray or analysis here.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from slmray.core.defaults import ROW_DEFAULTS
from slmray.predict.estimate import FUSED_ATTENTION
from slmray.predict.interval import HOST_BOUND_SHARE

POOLED = "all GPU types"
"""`Correction.gpu_type` of a correction fitted on the rows of every GPU type at once."""
MIN_FIT_ROWS = 2
"""Usable ok trials a correction needs: leave-one-out predicts each from at least one other."""
CENTER_TOKENS = 16384
"""The regime where b0 alone is the correction: 16 x 1024 tokens, the sweeps' middle batch."""
ROW_SD = 0.05
"""A row's own spread around the model, in log tokens/s: run-to-run noise (0.5-3% between repeats of
one configuration in the committed tables) plus what no regime term captures."""
PRIOR_SD = {"intercept": 0.10, "log_tokens": 0.05, "eager": 0.05, "compiled": 0.05, "hf_eager": 0.05}
"""Prior standard deviation of each coefficient around 0 (no correction): a GPU type's bias of up to
about 10% (the H200 without rows: +9%), a bend of up to 5% per e-fold of tokens and 5% for eager
attention, compile or Transformers' modules.  The ridge penalty of each is ROW_SD^2 / sd^2 (0.25 of
a row for the intercept, 1 row for the others): one row moves the factor 80% of the way to its own
ratio."""
KINDS = ("none", "factor", "regime", "regime+model")


@dataclass(frozen=True)
class Regime:
    """What the correction bends with, for one configuration."""

    tokens: float
    """A device's micro-step: per-device batch x sequence length."""
    eager: bool
    """Attention that materialises the (T, T) scores (eager, sdpa-math)."""
    compiled: bool
    hf_eager: bool = False
    """Transformers' own modules (`backend="transformers"`), not compiled."""
    model: str = ""
    """The model's name: a model the GPU type's rows have gets its own term (`MODEL_SD`)."""
    host_bound: bool = False
    """The estimate puts the host's dispatch at `HOST_BOUND_SHARE` of the step or more: a correction
    neither fits on nor applies to it (the module's docstring says why)."""

    @classmethod
    def of(cls, row: Mapping[str, Any] | Any, host_share: float | None = None) -> Regime:
        """From a results row or an option (a dict or a pandas row), a TrainConfig or a row tuple: their
        per_device_batch, seq_len, attention, compile and backend (nulls: `ROW_DEFAULTS`).
        `host_share`: the estimate's (`Estimate.host_share`), else the row's `predicted_host_share`;
        unknown (a table written before that column, a resumed sweep's older rows among them): not
        host-bound.  The planner recomputes the estimate, so only such a resumed sweep fits on them."""
        get = row.get if hasattr(row, "get") else (lambda k, d=None: getattr(row, k, d))
        if host_share is None:
            host_share = _number(get("predicted_host_share", None))

        def value(name: str) -> Any:
            v = get(name, None)
            return ROW_DEFAULTS[name] if v is None or (isinstance(v, float) and math.isnan(v)) else v

        compiled = bool(value("compile"))
        model = get("model", "")
        name = getattr(model, "name", model)  # a TrainConfig's model is a ModelConfig
        return cls(float(get("per_device_batch")) * float(get("seq_len")), str(get("attention")) not in FUSED_ATTENTION,
                   compiled, value("backend") == "transformers" and not compiled, str(name or ""),
                   host_bound=bool(host_share >= HOST_BOUND_SHARE))

    def features(self) -> list[float]:
        return [1.0, math.log(self.tokens / CENTER_TOKENS), float(self.eager), float(self.compiled), float(self.hf_eager)]


@dataclass(frozen=True)
class Correction:
    """A multiplicative correction of predicted tokens/s: exp(coefficients . regime features)."""

    gpu_type: str
    """The GPU type it was fitted on (`POOLED` for all of them), or "" for no correction."""
    kind: str = "none"
    """Which candidate won leave-one-out: none, factor or regime (`KINDS`)."""
    rows: int = 0
    """Ok trials it was fitted on and applies with; 0: no correction applied."""
    observed: int = 0
    """Ok trials it saw, applied or not: the rows of the leave-one-out comparison and the host-bound ones."""
    intercept: float = 0.0
    """b0: log of the factor at `CENTER_TOKENS`, fused attention, not compiled."""
    log_tokens: float = 0.0
    """b1: per e-fold of a micro-step's tokens."""
    eager: float = 0.0
    compiled: float = 0.0
    hf_eager: float = 0.0
    models: dict[str, float] = field(default_factory=dict)
    """Each model's own term (log), for the models its rows have; 0 for the others."""
    loo_error: float = math.nan
    """Mean |predicted / measured - 1| of the leave-one-out predictions of the kind used (0.031 =
    3.1%); NaN with fewer than two rows."""
    raw_error: float = math.nan
    """The same of the uncorrected predictions of those rows."""
    min_tokens: float = 0.0
    max_tokens: float = math.inf
    """The micro-step tokens its rows span: it applies only within them (`covers`)."""
    seen_eager: bool = True
    seen_fused: bool = True
    seen_compiled: bool = True
    seen_uncompiled: bool = True
    """Whether its rows have eager attention, fused attention, compiled and uncompiled steps: it
    applies only to what they have (the defaults, every regime: a correction fitted without them)."""
    host_bound_rows: int = 0
    """Of those, steps the host sets (`Regime.host_bound`): seen, not fitted on."""
    seen_models: tuple[str, ...] = ()
    """The models its rows have (empty: fitted without model names, every model)."""
    transfers: bool = True
    """Whether it applies to a model its rows lack: its leave-one-model-out error (each model's rows
    predicted by the fit on the other models') beat the uncorrected predictions by `LOO_MARGIN`."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "seen_models", tuple(self.seen_models))  # a Tune config's JSON makes it a list

    def covers(self, regime: Regime | None) -> bool:
        """Whether `regime` lies inside what the rows measured (None: no regime to judge, yes).  A
        correction is not extrapolated: rows of one regime (a sweep's first, small host-bound steps)
        say nothing of another's miss: on the H200's held-out set a factor fitted on two batch-6 steps
        moved a batch-24 prediction from +1.9% to -16.3% (`benchmarks/recalibration_replay.py`).
        A host-bound step is covered by none."""
        if regime is None:
            return True
        return (not regime.host_bound and self.min_tokens <= regime.tokens <= self.max_tokens
                and (self.seen_eager if regime.eager else self.seen_fused)
                and (self.seen_compiled if regime.compiled else self.seen_uncompiled)
                and (self.transfers or not self.seen_models or regime.model in self.seen_models))

    @property
    def usable(self) -> int:
        """Ok trials it could fit on: those it saw, less the host-bound ones."""
        return self.observed - self.host_bound_rows

    @property
    def coefficients(self) -> list[float]:
        return [self.intercept, self.log_tokens, self.eager, self.compiled, self.hf_eager]

    @property
    def factor(self) -> float:
        """The multiplier at `CENTER_TOKENS`, fused attention, not compiled (the whole correction
        for kind factor)."""
        return math.exp(self.intercept)

    def multiplier(self, regime: Regime | None) -> float:
        """Measured over predicted tokens/s expected in `regime` (None: a factor's, for a
        correction fitted without regimes)."""
        if not self.rows or not self.covers(regime):
            return 1.0
        if regime is None:
            if self.kind.startswith("regime"):
                raise ValueError("a regime correction needs the configuration's regime to apply")
            return self.factor
        own = self.models.get(regime.model, 0.0)
        return math.exp(own + sum(b * x for b, x in zip(self.coefficients, regime.features())))

    def apply(self, predicted_tokens_per_s: float, regime: Regime | None = None) -> float:
        return predicted_tokens_per_s * self.multiplier(regime)

    def describe(self) -> str:
        """One line: `H200: regime x0.913 at 16k tokens, x0.97 per doubling, eager x1.02, compiled
        x0.99, from 10 ok trials, applied within 16k-64k tokens, leave-one-out error 3.1% (uncorrected 8.9%)`."""
        name = self.gpu_type or "no GPU type"
        if not self.observed:
            return f"{name}: no correction (no measured trial)"
        usable, host = self.usable, f" usable, {self.host_bound_rows} more host-bound (left out)" if self.host_bound_rows else ""
        trials = f"{usable} ok trial{'s' * (usable != 1)}{host}"
        if usable < MIN_FIT_ROWS:
            return f"{name}: no correction ({trials}; leave-one-out needs {MIN_FIT_ROWS})"
        if not self.rows and math.isnan(self.raw_error):
            return f"{name}: no correction yet ({trials}; not fitted before the sweep's minimum)"
        scored = f"leave-one-out error {100 * self.loo_error:.1f}% (uncorrected {100 * self.raw_error:.1f}%)"
        if not self.rows:
            return f"{name}: no correction: no fit beat the uncorrected predictions of {trials} by leave-one-out"
        terms = f"x{self.factor:.3f}"
        if self.kind.startswith("regime"):
            bends = [(f"x{math.exp(self.log_tokens * math.log(2)):.3f} per doubling", self.log_tokens),
                     (f"eager x{math.exp(self.eager):.3f}", self.eager), (f"compiled x{math.exp(self.compiled):.3f}", self.compiled),
                     (f"Transformers uncompiled x{math.exp(self.hf_eager):.3f}", self.hf_eager)]
            terms = ", ".join([f"{terms} at {CENTER_TOKENS // 1024}k tokens", *(t for t, b in bends if abs(b) >= 5e-4),
                               *([f"{len(self.models)} model terms"] if self.models else [])])
        span = f", applied within {self.min_tokens / 1024:g}k-{self.max_tokens / 1024:g}k tokens" if math.isfinite(self.max_tokens) else ""
        if not self.transfers:
            span += f" to {', '.join(self.seen_models)} only"
        return f"{name}: {self.kind} {terms}, from {trials}{span}, {scored}"


NO_CORRECTION = Correction("")


def _valid(predicted: Any, measured: Any) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in (predicted, measured))


HUBER_SDS = 3.0
"""A row whose residual exceeds this many `ROW_SD` weighs as if it were that far off (Huber's loss):
a regime the estimator does not model at all (compiled llama-100m at batch 4 on an H100, 3x slower
than predicted) is one row's evidence of a miss, not a lever that swings the fit for every other
regime (without this loss, and with that model's term gone (`MODEL_MIN_ROWS`), the next prediction,
at batch 16, still moved from +15% to -46%; with the term, in the sweep itself, to -56%)."""


def _ridge(x: np.ndarray, y: np.ndarray, penalty: np.ndarray, iterations: int = 20) -> np.ndarray:
    """Ridge least squares under Huber's loss (`HUBER_SDS`), by iteratively reweighting the rows."""
    weights = np.ones(len(y))
    for _ in range(iterations):
        beta = np.linalg.solve((x.T * weights) @ x + np.diag(penalty), (x.T * weights) @ y)
        residual = np.abs(y - x @ beta)
        new = np.minimum(1.0, HUBER_SDS * ROW_SD / np.maximum(residual, 1e-12))
        if np.allclose(new, weights, atol=1e-6):
            break
        weights = new
    return beta


PENALTY = np.array([(ROW_SD / sd) ** 2 for sd in PRIOR_SD.values()])
MODEL_SD = 0.15
"""Prior standard deviation of a model's own term: a model whose shape the estimator misses (qwen3-0.6b
uncompiled, native or not: up to 2x too fast) is corrected by its own rows, not by the GPU type's
intercept that every other model would share."""


MODEL_MIN_ROWS = 2
"""Rows a model needs for its own term.  Leave-one-out cannot test a term fitted on one row (the row
left out takes the term with it), so one row's miss would pass to that model's every other regime
untested: on one H100, compiled llama-100m at batch 4 ran 3x slower than predicted, and its term,
fitted on that row alone, moved the next prediction at batch 16 from +15% to -56%
(benchmarks/results/small_batch)."""


def _loo_error(x: np.ndarray, y: np.ndarray, penalty: np.ndarray, groups: Sequence[Any] | None = None) -> float:
    """Mean |exp(prediction of the fit without row i - y_i) - 1| over the rows; with `groups`, each
    row predicted by the fit without its whole group (NaN with fewer than two groups)."""
    labels = np.arange(len(y)) if groups is None else np.asarray(groups)
    if len(set(labels)) < 2:
        return math.nan
    errors = np.zeros(len(y))
    for g in set(labels):
        out = labels == g
        beta = _ridge(x[~out], y[~out], penalty)
        errors[out] = np.abs(np.exp(x[out] @ beta - y[out]) - 1)
    return float(np.mean(errors))


LOO_MARGIN = 0.2
"""A candidate applies only where its leave-one-out error is at least this share below the
uncorrected predictions' on the same rows.  Leave-one-out picks among four candidates on a handful
of rows, so a fit that merely follows the noise of an estimate already within a few percent wins by
a hair; such wins made the next predictions worse: the H100 bar set B from 3.7% to 6.0% at the
median.  Chosen on the replay of the committed sweeps (`benchmarks/recalibration_replay.py`, 358 ok
trials) against 0, 0.1 and 0.3 while host-bound rows were still fitted on (27 / - / 14 predictions
5+ points worse than uncorrected at 0 / 0.2).  With them kept out, margin 0 / 0.1 / 0.2 / 0.3 give a
median error of 2.6 / 2.7 / 2.8 / 2.9% (uncorrected 3.3%), 13 / 8 / 8 / 5 predictions 5+ points
worse, 6 / 4 / 5 / 3 tables worse than none; 0.3 would also drop the H200's and the pooled
corrections of README's planner example (21% and 30% better than none by leave-one-out).  Not
re-chosen on the same replay it is judged by."""


def fit_correction(gpu_type: str, pairs: Iterable[Sequence[Any]]) -> Correction:
    """The correction of `gpu_type` from (uncorrected predicted, measured, Regime) tokens/s triples,
    or (predicted, measured) pairs: without every row's regime only a factor can be fitted.

    Pairs without two positive finite numbers (an OOM trial, a failed one) are skipped; host-bound
    ones (`Regime.host_bound`) are counted, not fitted on.
    """
    valid = [(float(s[0]), float(s[1]), s[2] if len(s) > 2 else None) for s in pairs if _valid(s[0], s[1])]
    samples = [s for s in valid if _fits(s[2])]
    n, observed = len(samples), {"observed": len(valid), "host_bound_rows": len(valid) - len(samples)}
    if n < MIN_FIT_ROWS:
        return Correction(gpu_type, **observed)
    y = np.array([math.log(m / p) for p, m, _ in samples])
    raw = float(np.mean([abs(math.exp(-r) - 1) for r in y]))  # |p/m - 1|
    with_regime = all(r is not None for _, _, r in samples)
    seen = Counter(r.model for _, _, r in samples if r is not None and r.model) if with_regime else Counter()
    models = sorted(m for m, rows in seen.items() if rows >= MODEL_MIN_ROWS)
    x = np.array([(r.features() + [float(r.model == m) for m in models]) if with_regime else [1.0] + [0.0] * (len(PENALTY) - 1)
                  for _, _, r in samples])
    penalty = np.concatenate([PENALTY, np.full(len(models), (ROW_SD / MODEL_SD) ** 2)])
    candidates = {"factor": [0]}
    if with_regime:
        candidates["regime"] = list(range(len(PENALTY)))
        if models:
            candidates["regime+model"] = list(range(len(penalty)))
    span = _span([r for _, _, r in samples]) if with_regime else {}
    best = Correction(gpu_type, "none", 0, loo_error=raw, raw_error=raw, **observed, **span)
    for kind, used in candidates.items():
        loo = _loo_error(x[:, used], y, penalty[used])
        if loo < best.loo_error and loo < raw * (1 - LOO_MARGIN):
            beta = np.zeros(len(penalty))
            beta[used] = _ridge(x[:, used], y, penalty[used])
            own = {m: float(b) for m, b in zip(models, beta[len(PENALTY):])}
            best = Correction(gpu_type, kind, n, observed["observed"], *map(float, beta[:len(PENALTY)]), models=own, loo_error=loo,
                              raw_error=raw, host_bound_rows=observed["host_bound_rows"], **span)
    if best.rows and best.seen_models:
        used = candidates[best.kind]
        lomo = _loo_error(x[:, used], y, penalty[used], [r.model for _, _, r in samples])
        best = dataclasses.replace(best, transfers=bool(lomo < raw * (1 - LOO_MARGIN)))
    return best


def _span(regimes: list[Regime]) -> dict[str, Any]:
    """`Correction`'s coverage fields: what `regimes` span."""
    return {"min_tokens": min(r.tokens for r in regimes), "max_tokens": max(r.tokens for r in regimes),
            "seen_eager": any(r.eager for r in regimes), "seen_fused": any(not r.eager for r in regimes),
            "seen_compiled": any(r.compiled for r in regimes), "seen_uncompiled": any(not r.compiled for r in regimes),
            "seen_models": tuple(sorted({r.model for r in regimes if r.model}))}


def fit_anchor(gpu_type: str, pairs: Iterable[Sequence[float]]) -> Correction:
    """The measured factor of one configuration from its own (predicted, measured) trials (at
    other GPU counts or strategies): the geometric mean of measured / predicted, unshrunk and
    from one trial on.  The regime is the configuration's own, so there is nothing to bend with
    and no other rows to be worse on (the planner's anchor, `slmray.planning.options`)."""
    logs = [math.log(m / p) for p, m, *_ in pairs if _valid(p, m)]
    if not logs:
        return Correction(gpu_type)
    return Correction(gpu_type, "factor", len(logs), len(logs), sum(logs) / len(logs))


def fit_corrections(rows: Iterable[Sequence[Any]]) -> dict[str, Correction]:
    """Per GPU type, and pooled under `POOLED`, from (gpu_type, predicted, measured[, Regime]) tuples."""
    by_gpu: dict[str, list[tuple]] = {}
    for gpu, *sample in rows:
        if _valid(sample[0], sample[1]):
            by_gpu.setdefault(gpu, []).append(tuple(sample))
    out = {gpu: fit_correction(gpu, samples) for gpu, samples in sorted(by_gpu.items())}
    if by_gpu:
        out[POOLED] = fit_correction(POOLED, [s for samples in by_gpu.values() for s in samples])
    return out


def _fits(regime: Regime | None) -> bool:
    """Whether a sample of `regime` is one a correction fits on: not host-bound (no regime: a pair)."""
    return regime is None or not regime.host_bound


def _usable(samples: list[tuple[float, float, Regime]]) -> int:
    """Samples a correction can fit on."""
    return sum(_fits(r) for *_, r in samples)


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

    `observe` reads `gpu_type`, `status`, `tokens_per_s`, the regime's columns (`Regime.of`) and
    the prediction made before the trial: `predicted_tokens_per_s_uncorrected` where the row has
    it, else `predicted_tokens_per_s` (tables written before corrections existed recorded only the
    uncorrected one).  A correction always applies to uncorrected predictions, so fitting on a
    corrected one would compound.  Only ok trials count.  Plain data: it pickles, and two copies
    that observed the same rows give the same corrections.
    """

    min_rows: int = 2
    """Ok trials of a GPU type needed before its correction is fitted (leave-one-out needs `MIN_FIT_ROWS`)."""
    pooled_fallback: bool = False
    """Before then, fit on every GPU type's trials (if any) instead of applying none."""
    samples: dict[str, list[tuple[float, float, Regime]]] = field(default_factory=dict)
    """GPU type -> (uncorrected predicted, measured tokens/s, regime) of each ok trial observed, in order."""

    def observe(self, row: Mapping[str, Any]) -> bool:
        """Add a finished trial's row; True if it was used (an ok trial with both numbers)."""
        if row.get("status") != "ok" or not row.get("gpu_type"):
            return False
        predicted = _number(row.get("predicted_tokens_per_s_uncorrected"))
        if not math.isfinite(predicted):
            predicted = _number(row.get("predicted_tokens_per_s"))
        if not all(isinstance(row.get(k), (int, float)) for k in ("per_device_batch", "seq_len")):
            return False  # a row without its configuration has no regime to fit
        return self.observe_sample(str(row["gpu_type"]), predicted, _number(row.get("tokens_per_s")), Regime.of(row))

    def observe_sample(self, gpu_type: str, predicted: float, measured: float, regime: Regime) -> bool:
        if not _valid(predicted, measured):
            return False
        self.samples.setdefault(gpu_type, []).append((float(predicted), float(measured), regime))
        return True

    def correction(self, gpu_type: str) -> Correction:
        """The correction to apply to the next prediction on `gpu_type`: fitted on its ok trials
        once there are `min_rows`; before, none (or the pooled one, `pooled_fallback`)."""
        samples = self.samples.get(gpu_type, [])
        if _usable(samples) >= max(MIN_FIT_ROWS, self.min_rows):
            return fit_correction(gpu_type, samples)
        everything = [s for ss in self.samples.values() for s in ss]
        if self.pooled_fallback and _usable(everything) >= max(MIN_FIT_ROWS, self.min_rows):
            return fit_correction(POOLED, everything)
        return Correction(gpu_type, observed=len(samples), host_bound_rows=len(samples) - _usable(samples))

    def corrections(self) -> dict[str, Correction]:
        """Every GPU type's correction as of now, and the pooled one."""
        return fit_corrections((g, *s) for g, samples in self.samples.items() for s in samples)
