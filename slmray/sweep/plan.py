"""The sweep plan: each trial with its predicted memory, speed, time and cost, known before
anything starts.  `python -m slmray.tune --dry-run` prints it; the budget and the pruning
of predicted out-of-memory trials use it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from slmray.catalog.prices import PriceBook
from slmray.predict.calibration import Correction, Regime
from slmray.predict.estimate import Estimate, estimate
from slmray.predict.overheads import COMPILE_S, GROUP_START_S, ISOLATED_TRIAL_OVERHEAD_S, TRIAL_OVERHEAD_S
from slmray.sweep.capacity import Capacity
from slmray.sweep.space import ResolvedTrial, SearchSpace, Trial
from slmray.train.config import TrainConfig, config_variant


@dataclass(frozen=True)
class PlannedTrial:
    resolved: ResolvedTrial
    """The trial and the TrainConfig it runs, as its space resolved them."""
    gpu_type: str | None
    """What it will run on: the GPU type asked for, the cluster's only one, or cpu; None for any
    of a cluster's several GPU types (known once it runs)."""
    estimate: Estimate | None
    price_per_hour_usd: float | None
    """For all of the trial's GPUs; None where the GPU has no price."""
    seconds: float | None
    pruned: bool
    """Predicted out of memory, and pruning is on: recorded, not run."""
    uncorrected_tokens_per_s: float | None = None
    """The estimator's own tokens/s; `estimate.tokens_per_s` (and the time and cost) carry the
    correction when one was given (`slmray.predict.calibration`), else the two are the same."""
    correction_rows: int = 0
    """Ok trials the applied tokens/s correction was fitted on; 0: none applied."""

    @property
    def trial(self) -> Trial:
        return self.resolved.trial

    @property
    def train(self) -> TrainConfig:
        return self.resolved.train

    def prediction_columns(self) -> dict[str, float | bool | int | None]:
        """The results row's `predicted_*` and `correction_rows` columns (slmray.results.table)."""
        e = self.estimate
        return {
            "predicted_peak_mem_gb": e and e.peak_mem_gb, "predicted_oom": e and e.oom,
            "predicted_tokens_per_s": e and e.tokens_per_s,
            "predicted_tokens_per_s_low": e and e.tokens_per_s_low,
            "predicted_tokens_per_s_high": e and e.tokens_per_s_high,
            "predicted_tokens_per_s_uncorrected": self.uncorrected_tokens_per_s if e else None,
            "correction_rows": self.correction_rows,
        }

    def row_columns(self) -> dict[str, Any]:
        """What the results row records of the plan: the swept values, the GPU type asked for
        and the one planned (the row's `gpu_type` until the trial reports what it ran on), and
        the predictions."""
        return {**self.trial.as_config(), "requested_gpu_type": self.trial.gpu_type, "gpu_type": self.gpu_type,
                **self.prediction_columns()}

    @property
    def gpu_hours(self) -> float | None:
        return None if self.seconds is None or self.pruned else self.seconds / 3600 * self.trial.num_gpus

    @property
    def cost_usd(self) -> float | None:
        if self.pruned:
            return 0.0
        if self.seconds is None or self.price_per_hour_usd is None:
            return None
        return self.seconds / 3600 * self.price_per_hour_usd


def corrected(est: Estimate, correction: Correction | None, regime: Regime) -> Estimate:
    """`est` with its tokens/s (and its interval) multiplied by the correction's multiplier in
    `regime`, the configuration's, and its step time divided by it (each part of the step time
    alike); memory is not corrected."""
    if correction is None or not correction.rows or est.rough:
        return est
    f = correction.multiplier(regime)
    return dataclasses.replace(
        est, tokens_per_s=est.tokens_per_s * f, step_time_s=est.step_time_s / f,
        tokens_per_s_low=est.tokens_per_s_low and est.tokens_per_s_low * f,
        tokens_per_s_high=est.tokens_per_s_high and est.tokens_per_s_high * f,
        time_s={k: v / f for k, v in est.time_s.items()},
    )


def plan_trial(
    resolved: ResolvedTrial, capacity: Capacity, prices: PriceBook, prune: bool,
    correction: Correction | None = None, isolate: bool = False,
) -> PlannedTrial:
    """A resolved trial (`SearchSpace.resolve`) planned on `capacity`.  `correction`: the tokens/s
    correction of the trial's GPU type (`Recalibrator.correction`); None or one fitted on no rows
    leaves the estimate as it is.  `isolate`: the trial runs on a
    worker group of its own (`--isolate-trials`), not on a warm one; a warm group's own start is
    counted once per group (`group_starts`), not here."""
    cfg, num_gpus = resolved.train, resolved.num_gpus
    gpu_type = capacity.device_type(resolved.gpu_type)
    try:
        raw = estimate(cfg, gpu_type, num_gpus, gpus_per_node=capacity.gpus_per_node.get(gpu_type, 8)) if gpu_type else None
    except ValueError:  # a GPU the estimator has no specs for (a new model)
        raw = None
    est = None if raw is None else corrected(raw, correction, Regime.of(cfg))
    price = prices.trial_price(gpu_type, num_gpus)
    seconds = None
    if est is not None:
        overhead = ISOLATED_TRIAL_OVERHEAD_S if isolate else TRIAL_OVERHEAD_S
        seconds = overhead + (COMPILE_S[cfg.precision] if cfg.compile else 0.0) + resolved.steps_run * est.step_time_s
    return PlannedTrial(
        resolved=resolved, gpu_type=gpu_type, estimate=est,
        price_per_hour_usd=None if price is None else price.usd_per_hour,
        seconds=seconds, pruned=prune and est is not None and est.oom,
        uncorrected_tokens_per_s=None if raw is None else raw.tokens_per_s,
        correction_rows=0 if est is raw else correction.rows,
    )


def make_plan(
    space: SearchSpace, capacity: Capacity, prices: PriceBook, prune: bool,
    corrections: Callable[[str], Correction | None] | None = None, isolate: bool = False,
) -> list[PlannedTrial]:
    """Every grid point, planned; Optuna samples among these.  `corrections`: GPU type ->
    correction (`Recalibrator.correction`), looked up by the trial's GPU type as planned."""
    def correction(t: Trial) -> Correction | None:
        return corrections(capacity.device_type(t.gpu_type)) if corrections else None

    return [plan_trial(space.resolve(t, capacity.device), capacity, prices, prune, correction(t), isolate)
            for t in space.trials()]


def group_starts(plan: list[PlannedTrial]) -> list[PlannedTrial]:
    """One trial per warm group the plan's run trials need (the first of each shape: number of
    GPUs and GPU type), each standing for that group's start (`GROUP_START_S`)."""
    firsts: dict[tuple, PlannedTrial] = {}
    for p in plan:
        if not p.pruned:
            firsts.setdefault((p.trial.num_gpus, p.gpu_type), p)
    return list(firsts.values())


def _fmt(value: float | None, spec: str) -> str:
    return "?" if value is None else format(value, spec)


def format_plan(plan: list[PlannedTrial], space: SearchSpace, runs: int, budget_usd: float | None,
                isolate: bool = False) -> str:
    """The table `--dry-run` prints: each trial, then what the sweep of `runs` trials should cost.

    A grid runs its first `runs` points in plan order (`--max-trials` cuts it), so only those
    are listed and totalled.  Optuna samples `runs` trials among all the configurations, so all
    are listed and the totals are `runs` trials at the average configuration.
    """
    grid = space.search == "grid"
    listed = plan[:runs] if grid else plan
    header = (
        f"{'#':>4}  {'model':<12} {'batch':>5} {'gpus':>4} {'gpu':<10} {'attention':<10} {'strategy':<13} "
        f"{'pred mem GiB':>12} {'OOM?':<12} {'pred tok/s':>11} {'est min':>7} {'est $':>8}"
    )
    lines = [header]
    ran = [p for p in listed if not p.pruned]
    starts = [] if isolate else group_starts(ran)
    start_hours = sum(GROUP_START_S / 3600 * p.trial.num_gpus for p in starts)
    start_cost = sum(GROUP_START_S / 3600 * (p.price_per_hour_usd or 0.0) for p in starts)
    spent = start_cost if grid else 0.0
    budget_note = None
    for i, p in enumerate(listed, 1):
        e = p.estimate
        cost = p.cost_usd
        if grid and budget_usd is not None and budget_note is None and cost is not None and spent + cost > budget_usd:
            budget_note = f"budget ${budget_usd:,.2f} is reached before trial {i}: no trial from there on starts"
        spent += cost or 0.0
        lines.append(
            f"{i:>4}  {p.trial.model:<12} {p.trial.per_device_batch:>5} {p.trial.num_gpus:>4} {p.gpu_type or 'any GPU':<10} "
            f"{p.trial.attention:<10} {' '.join([p.trial.strategy, *config_variant(p.train.flat())]):<13} "
            f"{_fmt(e and e.peak_mem_gb, '12.1f')} {('yes' if e and e.oom else 'no' if e else '?') + (' (pruned)' if p.pruned else ''):<12} "
            f"{_fmt(e and e.tokens_per_s, '11,.0f')} {_fmt(p.seconds and p.seconds / 60, '7.1f')} {_fmt(cost, '8.2f')}"
        )
    hours = [p.gpu_hours for p in ran]
    costs = [p.cost_usd for p in ran]
    known_hours = sum(h for h in hours if h is not None)
    known_cost = sum(c for c in costs if c is not None)
    unknown = sum(c is None for c in costs)
    lines.append("")
    pruned = len(listed) - len(ran)
    if grid:
        lines.append(f"grid: {runs} trials ({pruned} predicted out of memory and pruned: recorded, not run)")
        if runs < len(plan):
            lines.append(f"--max-trials: the first {runs} of the grid's {len(plan)} points; the rest are neither listed nor counted")
        lines.append(f"estimate: {known_hours + start_hours:,.2f} GPU-hours, ${known_cost + start_cost:,.2f}")
    else:
        mean_h = known_hours / max(1, len(ran) - sum(h is None for h in hours))
        mean_c = known_cost / max(1, len(ran) - unknown)
        lines.append(f"optuna ({space.sampler}): {runs} trials sampled from these {len(plan)} configurations "
                     f"({pruned} predicted out of memory)")
        lines.append(f"estimate at the average configuration: {runs * mean_h + start_hours:,.2f} GPU-hours, "
                     f"${runs * mean_c + start_cost:,.2f}")
        if budget_usd is not None and runs * mean_c + start_cost > budget_usd:
            # which configurations Optuna picks is not known in advance: only the average can be compared
            budget_note = (
                f"budget ${budget_usd:,.2f} is reached after about {int(budget_usd // mean_c)} of the {runs} trials "
                f"at the average configuration"
            )
    if starts:
        lines.append(f"counted: {len(starts)} warm worker-group start{'s' if len(starts) > 1 else ''} "
                     f"({GROUP_START_S:.0f} s each), {TRIAL_OVERHEAD_S} s a trial outside its steps "
                     f"(--isolate-trials: {ISOLATED_TRIAL_OVERHEAD_S:.0f} s a trial)")
    elif isolate:
        lines.append(f"counted: {ISOLATED_TRIAL_OVERHEAD_S:.0f} s a trial outside its steps (--isolate-trials)")
    if unknown:
        lines.append(f"{unknown} trials have no price or no estimate: their cost is not counted")
    approximate = sorted({p.trial.model for p in listed if p.estimate is not None and p.estimate.approximate})
    if approximate:
        lines.append(f"approximate: {', '.join(approximate)} (an architecture only Transformers builds) is estimated "
                     f"with the llama-family formulas from its exact parameter count")
    if budget_note:
        lines.append(budget_note)
    return "\n".join(lines)
