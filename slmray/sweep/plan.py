"""The sweep plan: each trial with its predicted memory, speed, time and cost, known before
anything starts.  `python -m slmray.tune --dry-run` prints it (`slmray.sweep.dry_run`); the
budget and the pruning of predicted out-of-memory trials use it.
"""

from __future__ import annotations

import dataclasses
import heapq
from dataclasses import dataclass
from typing import Any, Callable

from slmray.catalog.prices import PriceBook
from slmray.catalog.rent import Rental, rent
from slmray.errors import UserError
from slmray.predict.calibration import Correction, Regime
from slmray.predict.estimate import Estimate, estimate
from slmray.predict.overheads import COMPILE_S, GROUP_START_S, ISOLATED_TRIAL_OVERHEAD_S, TRIAL_OVERHEAD_S
from slmray.sweep.capacity import Capacity
from slmray.sweep.space import ResolvedTrial, SearchSpace, Trial
from slmray.sweep.warm_scheduler import IDLE_S
from slmray.train.config import TrainConfig


@dataclass(frozen=True)
class PlannedTrial:
    resolved: ResolvedTrial
    """The trial and the TrainConfig it runs, as its space resolved them."""
    gpu_type: str | None
    """What it will run on: the GPU type asked for, the cluster's only one, or cpu; None for any
    of a cluster's several GPU types (known once it runs)."""
    estimate: Estimate | None
    price_per_hour_usd: float | None
    """For all of the trial's GPUs, idle ones of its instances included (`rental`); None where
    the GPU has no price."""
    seconds: float | None
    pruned: bool
    """Predicted out of memory, and pruning is on: recorded, not run."""
    uncorrected_tokens_per_s: float | None = None
    """The estimator's own tokens/s; `estimate.tokens_per_s` (and the time and cost) carry the
    correction when one was given (`slmray.predict.calibration`), else the two are the same."""
    correction_rows: int = 0
    """Ok trials the applied tokens/s correction was fitted on; 0: none applied."""
    rental: Rental | None = None
    """The instances the trial is priced at (`slmray.catalog.rent`); its estimate assumes their link."""

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
            "predicted_host_share": e and e.host_share,
            "correction_rows": self.correction_rows,
        }

    def row_columns(self) -> dict[str, Any]:
        """What the results row records of the plan: the swept values, the GPU type asked for
        and the one planned (the row's `gpu_type` until the trial reports what it ran on), and
        the predictions."""
        return {**self.trial.as_config(), "requested_gpu_type": self.trial.gpu_type, "gpu_type": self.gpu_type,
                **self.prediction_columns()}

    @property
    def minutes(self) -> float | None:
        """Minutes the trial runs: 0 where pruned (recorded, not run), None where not estimated."""
        if self.pruned:
            return 0.0
        return None if self.seconds is None else self.seconds / 60

    @property
    def gpu_hours(self) -> float | None:
        if self.pruned:
            return 0.0
        return None if self.seconds is None else self.seconds / 3600 * self.trial.num_gpus

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
    alike); memory is not corrected.  `est` itself where the correction does not cover the regime."""
    if correction is None or not correction.rows or est.rough or not correction.covers(regime):
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
    node_gpus = capacity.gpus_per_node.get(gpu_type, 8) if gpu_type else 8
    estimates: dict[tuple, Estimate | None] = {}

    def predicted(gpus_per_node: int, inter_node_gbps: float | None, fabric: str | None) -> Estimate | None:
        link = (gpus_per_node, inter_node_gbps, fabric)
        if gpu_type and link not in estimates:
            try:
                estimates[link] = estimate(cfg, gpu_type, num_gpus, gpus_per_node=gpus_per_node,
                                           inter_node_gbps=inter_node_gbps, fabric=fabric)
            except UserError:  # input only the user can mend (a package the estimate needs, a model config
                raise            # transformers cannot build): the dry run stops on its line, not a "?"
            except ValueError:  # a GPU the estimator has no specs for (a new model)
                estimates[link] = None
        return estimates.get(link)

    rental = rent(prices, gpu_type, num_gpus, speed=lambda *link: (e := predicted(*link)) and e.tokens_per_s,
                  node_gpus=node_gpus if capacity.nodes_given else None)
    raw = predicted(*((node_gpus, None, None) if rental is None or rental.per_gpu else rental.link))
    est = None if raw is None else corrected(raw, correction, Regime.of(cfg, raw.host_share))
    seconds = None
    if est is not None:
        overhead = ISOLATED_TRIAL_OVERHEAD_S if isolate else TRIAL_OVERHEAD_S
        seconds = overhead + (COMPILE_S[cfg.precision] if cfg.compile else 0.0) + resolved.steps_run * est.step_time_s
    return PlannedTrial(
        resolved=resolved, gpu_type=gpu_type, estimate=est,
        price_per_hour_usd=None if rental is None else rental.usd_per_hour,
        seconds=seconds, pruned=prune and est is not None and est.oom,
        uncorrected_tokens_per_s=None if raw is None else raw.tokens_per_s,
        correction_rows=0 if est is raw else correction.rows, rental=rental,
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


def group_starts(plan: list[PlannedTrial], concurrency: int = 1, gpus: int | None = None,
                 idle_s: float = IDLE_S) -> list[PlannedTrial]:
    """The warm groups the run trials start, each as the trial it was started for (standing for that
    group's start, `GROUP_START_S`): the pool replayed in plan order, at most `concurrency` trials
    and `gpus` GPUs (None: no limit) at once, each trial taking its predicted seconds; a trial takes
    an idle group of its shape (number of GPUs and GPU type) that has waited at most `idle_s`
    (`warm_scheduler.IDLE_S`), else starts one.  An estimate: the pool also ends idle groups whose
    GPUs another shape needs, and Optuna picks its own order."""
    running: list[tuple[float, int, tuple]] = []  # (end, tiebreak, shape)
    idle: dict[tuple, list[float]] = {}  # shape -> when each idle group's last trial ended
    starts, now, used = [], 0.0, 0
    for i, p in enumerate(q for q in plan if not q.pruned):
        shape = (p.trial.num_gpus, p.gpu_type)
        while running and (len(running) >= concurrency or (gpus is not None and used + shape[0] > gpus)):
            now = max(now, running[0][0])
            while running and running[0][0] <= now:  # every trial done by now leaves its group idle
                end, _, done = heapq.heappop(running)
                idle.setdefault(done, []).append(end)
                used -= done[0]
        waiting = [since for since in idle.get(shape, []) if now - since <= idle_s]
        begin = now if waiting else now + GROUP_START_S
        if waiting:
            waiting.pop()
        else:
            starts.append(p)
        idle[shape] = waiting
        used += shape[0]
        heapq.heappush(running, (begin + (p.seconds or 0.0), i, shape))
    return starts
