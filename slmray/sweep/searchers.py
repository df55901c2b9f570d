"""Small Ray Tune searchers: the grid as a fixed plan, distinct configurations only, and a
dollar budget around any searcher.

Tune's own grid (`tune.grid_search`) runs under BasicVariantGenerator, which is not a
`Searcher` and so cannot be wrapped; the plan searcher makes the grid one, so that the same
budget wrapper stops the grid and Optuna alike.  All keep their state across
`Tuner.restore` (Tune checkpoints searchers with the experiment).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import pickle
import threading
from typing import Callable

import optuna
from ray.tune.search import Searcher


class PicklableNSGAII(optuna.samplers.NSGAIISampler):
    """NSGA-II as Tune can pickle it into its tuner and searcher state: Optuna 5.1's genetic
    samplers hold a `threading.Lock` (their generation cache's guard), which pickle refuses, so it
    is left out on the way out and made anew on the way in."""

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_thread_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()


SAMPLERS = {"tpe": optuna.samplers.TPESampler, "nsga2": PicklableNSGAII, "random": optuna.samplers.RandomSampler}
"""The space's `sampler` names; each is built with the space's seed."""


class PlanSearcher(Searcher):
    """Suggests the given configurations in order, then reports the search finished."""

    def __init__(self, configs: list[dict], metric: str | list[str] | None = None, mode: str | list[str] | None = None):
        super().__init__(metric=metric, mode=mode)
        self.configs = list(configs)
        self.next_index = 0

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # the plan is fixed; metric and mode do not change it

    def suggest(self, trial_id: str) -> dict | None:
        if self.next_index >= len(self.configs):
            return Searcher.FINISHED
        self.next_index += 1
        return dict(self.configs[self.next_index - 1])

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"configs": self.configs, "next_index": self.next_index}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        self.configs, self.next_index = state["configs"], state["next_index"]


class SearcherWrapper(Searcher):
    """A searcher around another, in Tune's wrapper protocol: `SearchGenerator` checkpoints the
    wrapper's own state by `get_state` and the wrapped searcher by `save`, and restores them alike."""

    unsaved: tuple[str, ...] = ("searcher",)
    """Attributes rebuilt by the driver on restore rather than checkpointed."""

    def __init__(self, searcher: Searcher):
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self.searcher = searcher

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searcher.on_trial_result(trial_id, result)

    def get_state(self) -> dict:
        return copy.deepcopy({k: v for k, v in self.__dict__.items() if k not in self.unsaved})

    def set_state(self, state: dict) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)


class BudgetLimiter(SearcherWrapper):
    """Stops launching trials once dollars spent plus those committed would pass `budget_usd`.

    A running trial counts at its estimated cost until it completes and reports its real
    `cost_usd`; a trial whose estimate would cross the budget is not started, and the search
    ends there (Tune lets running trials finish).
    """

    unsaved = ("searcher", "estimate_usd")

    def __init__(self, searcher: Searcher, budget_usd: float, estimate_usd: Callable[[dict], float],
                 spent_usd: float = 0.0):
        """`spent_usd`: what the sweep's recorded trials cost already (a resumed sweep)."""
        super().__init__(searcher)
        self.budget_usd = budget_usd
        self.estimate_usd = estimate_usd
        self.spent_usd = spent_usd
        self.committed: dict[str, float] = {}
        self.exhausted = False

    def suggest(self, trial_id: str) -> dict | None:
        if self.exhausted:
            return Searcher.FINISHED
        config = self.searcher.suggest(trial_id)
        if config is None or config == Searcher.FINISHED:
            return config
        cost = self.estimate_usd(config)
        committed = sum(self.committed.values())
        if self.spent_usd + committed + cost > self.budget_usd:
            self.exhausted = True
            print(
                f"budget: ${self.spent_usd:,.2f} spent + ${committed:,.2f} running + ${cost:,.2f} for the next trial "
                f"would pass ${self.budget_usd:,.2f}: no more trials start",
                flush=True,
            )
            self.searcher.on_trial_complete(trial_id, None, error=True)  # the inner searcher forgets it
            return Searcher.FINISHED
        self.committed[trial_id] = cost
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        estimated = self.committed.pop(trial_id, 0.0)
        actual = (result or {}).get("cost_usd")
        self.spent_usd += actual if actual is not None else estimated
        self.searcher.on_trial_complete(trial_id, result, error)


INFEASIBLE = ("oom", "pruned")
"""Statuses told to a sampler as the worst outcome: the configuration does not fit."""


class DistinctSearcher(SearcherWrapper):
    """Launches each configuration once: a proposal already run is answered with its recorded
    result, without a trial, and the inner searcher is asked again.

    Optuna's samplers re-propose configurations of small categorical spaces (a sweep's space
    is one), and each repeat would pay for a trial whose outcome is known.  One still running is
    told to the inner searcher as failed.  After `max_repeats` repeats in a row the sampler has
    nothing new to offer, and the search ends.  A trial that ran out of memory, or was pruned as
    predicted to, is told as the worst value of every objective (the paper counts it as 0), so
    the sampler learns to avoid it; told as missing, Optuna would drop it as failed.
    """

    def __init__(self, searcher: Searcher, max_repeats: int = 100):
        super().__init__(searcher)
        self.max_repeats = max_repeats
        self.results: dict[str, dict | None] = {}
        """Configuration key -> the objectives it reported (None while it runs or if it failed)."""
        self.keys: dict[str, str] = {}
        """Tune's trial id -> its configuration key."""
        self.inner_ids: dict[str, str] = {}
        """Tune's trial id -> the id the inner searcher knows it by."""
        self.asked = 0

    @staticmethod
    def key(config: dict) -> str:
        return json.dumps(config, sort_keys=True, default=str)

    def _objectives(self, result: dict) -> dict:
        """What the inner searcher is told of a finished trial."""
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        modes = self.mode if isinstance(self.mode, list) else [self.mode]
        if result.get("status") in INFEASIBLE:
            return {m: -math.inf if mode == "max" else math.inf for m, mode in zip(metrics, modes)}
        return {m: result.get(m) for m in metrics}

    def suggest(self, trial_id: str) -> dict | None:
        for _ in range(self.max_repeats):
            self.asked += 1
            inner_id = f"{trial_id}-ask{self.asked}"
            config = self.searcher.suggest(inner_id)
            if config is None or config == Searcher.FINISHED:
                return config
            key = self.key(config)
            if key not in self.results:
                self.results[key] = None
                self.keys[trial_id], self.inner_ids[trial_id] = key, inner_id
                return config
            known = self.results[key]
            self.searcher.on_trial_complete(inner_id, known, error=known is None)
        print(f"search: the last {self.max_repeats} proposals had all been run: no more trials start", flush=True)
        return Searcher.FINISHED

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searcher.on_trial_result(self.inner_ids.get(trial_id, trial_id), result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        key = self.keys.pop(trial_id, None)
        told = self._objectives(result) if result and not error else None
        if key is not None:
            self.results[key] = told
        self.searcher.on_trial_complete(self.inner_ids.pop(trial_id, trial_id), told, error or told is None)


class Recalibrating(SearcherWrapper):
    """Hands each suggested configuration the estimator's tokens/s correction of its GPU type as
    refitted on the sweep's finished trials (`slmray.predict.calibration.Recalibrator`), under the config
    key `correction`, so that the trial's plan (pruning, predicted time and cost) and its row's
    prediction use what the sweep has measured so far.  Its recalibrator checkpoints with it."""

    unsaved = ("searcher", "gpu_type_of")

    def __init__(self, searcher: Searcher, gpu_type_of: Callable[[dict], str]):
        from slmray.predict.calibration import Recalibrator

        super().__init__(searcher)
        self.gpu_type_of = gpu_type_of
        self.recalibrator = Recalibrator()

    def suggest(self, trial_id: str) -> dict | None:
        config = self.searcher.suggest(trial_id)
        if config is None or config == Searcher.FINISHED:
            return config
        correction = self.recalibrator.correction(self.gpu_type_of(config))
        return {**config, "correction": dataclasses.asdict(correction)}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if result and not error:
            self.recalibrator.observe(result)
        self.searcher.on_trial_complete(trial_id, result, error)
