"""The sweep's searchers, driven directly as Tune would (no Ray cluster needed): Optuna proposes
each configuration once, and starts from the estimate's predicted Pareto front."""

import pickle

import optuna
import pytest
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from slmray.catalog.prices import PriceBook
from slmray.private_apis import optuna_study
from slmray.sweep.capacity import capacity_from_yaml
from slmray.sweep.driver import _predicted_front
from slmray.sweep.plan import make_plan
from slmray.sweep.searchers import SAMPLERS, DistinctSearcher
from slmray.sweep.space import OPTUNA_SAMPLERS, SearchSpace

from analysis_fixtures import REPO

SPACE = {"batch": [2, 4], "attention": ["eager", "sdpa"]}


def _optuna(seed: int = 0) -> OptunaSearch:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = OptunaSearch(metric=["tokens_per_s", "usd"], mode=["max", "min"], sampler=optuna.samplers.TPESampler(seed=seed))
    search.set_search_properties(None, None, {k: tune.choice(v) for k, v in SPACE.items()})
    return search


def _drive(searcher, trials: int, start: int = 0) -> list[dict]:
    """Ask for `trials` trials one at a time, completing each as Tune would; the configurations launched."""
    launched = []
    for i in range(start, start + trials):
        config = searcher.suggest(f"t{i}")
        if config is None or config == DistinctSearcher.FINISHED:
            break
        launched.append(config)
        searcher.on_trial_complete(f"t{i}", {"tokens_per_s": 100.0 * config["batch"], "usd": 1.0, "config": config})
    return launched


def test_plain_optuna_repeats_configurations_and_the_wrapper_launches_each_once():
    repeats = _drive(_optuna(), 12)
    assert len(repeats) == 12 and len({tuple(sorted(c.items())) for c in repeats}) < 12  # what it fixes
    launched = _drive(DistinctSearcher(_optuna(), max_repeats=30), 12)
    assert sorted((c["batch"], c["attention"]) for c in launched) == [(2, "eager"), (2, "sdpa"), (4, "eager"), (4, "sdpa")]


def test_a_configuration_still_running_is_not_launched_twice():
    searcher = DistinctSearcher(_optuna(), max_repeats=30)
    running = [searcher.suggest(f"t{i}") for i in range(6)]  # none completes
    configs = [c for c in running if c not in (None, DistinctSearcher.FINISHED)]
    assert len(configs) == len({tuple(sorted(c.items())) for c in configs}) <= 4


def test_state_survives_tunes_checkpoint_and_restore(tmp_path):
    """As Tune's SearchGenerator does: a wrapper's own state by get_state, the wrapped searcher's by save."""
    first = DistinctSearcher(_optuna(), max_repeats=30)
    before = _drive(first, 2)
    state = first.get_state()
    first.save(str(tmp_path / "searcher.pkl"))
    again = DistinctSearcher(_optuna(seed=1), max_repeats=30)
    again.set_state(state)
    again.restore(str(tmp_path / "searcher.pkl"))
    after = _drive(again, 10, start=2)
    assert len(before) == 2 and len(after) == 2  # the restored one knows the first two were run
    assert {tuple(sorted(c.items())) for c in before}.isdisjoint({tuple(sorted(c.items())) for c in after})


def test_optuna_starts_from_the_predicted_front_of_each_model():
    space = SearchSpace(
        model=["llama-100m", "llama-1b"], per_device_batch=[8, 64], num_gpus=[1], attention=["eager", "sdpa"],
        strategy=["ddp"], gpu_type=["H100-80GB", "A100-40GB"], search="optuna", num_samples=20,
        objectives=["max:tokens_per_s", "max:tokens_per_usd"], prices="aws",
    )
    capacity = capacity_from_yaml(str(REPO / "cluster" / "mixed.yaml"))
    plan = make_plan(space, capacity, PriceBook.load("aws"), prune=True)
    front = _predicted_front(space, plan, limit=20)
    by_key = {tuple(sorted(p.trial.as_config().items())): p for p in plan}
    chosen = [by_key[tuple(sorted(c.items()))] for c in front]
    assert {p.trial.model for p in chosen} == {"llama-100m", "llama-1b"}
    assert not any(p.estimate.oom for p in chosen)
    for p in chosen:  # no feasible configuration of its model is predicted better on both objectives
        rivals = [q for q in plan if q.trial.model == p.trial.model and not q.estimate.oom]
        rate, per_usd = p.estimate.tokens_per_s, p.estimate.tokens_per_s / p.price_per_hour_usd
        assert not any(q.estimate.tokens_per_s > rate and q.estimate.tokens_per_s / q.price_per_hour_usd > per_usd
                       for q in rivals)
    assert _predicted_front(space, plan, limit=1) == front[:1]


def test_out_of_memory_is_told_as_the_worst_outcome_not_as_missing():
    inner = _optuna()
    searcher = DistinctSearcher(inner, max_repeats=30)
    for i in range(4):
        config = searcher.suggest(f"t{i}")
        oom = config["batch"] == 4
        searcher.on_trial_complete(f"t{i}", {
            "status": "oom" if oom else "ok", "tokens_per_s": float("nan") if oom else 100.0,
            "usd": float("nan") if oom else 1.0,
        })
    told = {t.params["batch"]: (t.state, t.values) for t in optuna_study(inner).trials}
    assert told[4] == (optuna.trial.TrialState.COMPLETE, [float("-inf"), float("inf")])
    assert told[2] == (optuna.trial.TrialState.COMPLETE, [100.0, 1.0])


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "random"])
def test_every_numeric_column_is_an_objective_of_every_sampler(sampler):
    """The sweep's own searcher (`slmray.sweep.driver.search_alg`) takes any numeric column as its
    objective, next to a second one, and Optuna learns exactly the value of the row it is told."""
    from slmray.sweep.capacity import local_capacity
    from slmray.sweep.driver import search_alg
    from slmray.sweep.space import OBJECTIVE_COLUMNS
    from slmray.sweep.trial import SweepSettings

    for i, column in enumerate(OBJECTIVE_COLUMNS):
        second = "final_loss" if column != "final_loss" else "tokens_per_s"
        space = SearchSpace(model=["tiny"], per_device_batch=[2, 4], num_gpus=[1], attention=["eager", "sdpa"],
                            strategy=["ddp"], seq_len=32, device="cpu", search="optuna", sampler=sampler,
                            num_samples=2, objectives=[f"max:{column}", f"min:{second}"])
        settings = SweepSettings(space=space, sweep_id="s", sweep_dir="/unused", capacity=local_capacity("cpu"),
                                 prices=PriceBook.load("local"), prune=True)
        plan = make_plan(space, settings.capacity, settings.prices, prune=True)
        alg = search_alg(settings, plan, runs=2, budget=None)
        alg.set_search_properties(None, None, {k: tune.choice(v) for k, v in space.choices().items()})
        config = alg.suggest(f"t{i}")
        assert config["model"] == "tiny" and config["correction"]["rows"] == 0  # nothing measured yet
        row = {"status": "ok", column: 1234.5 + i, second: 2.5}
        alg.on_trial_complete(f"t{i}", row)
        [told] = [t.values for t in optuna_study(alg.searcher.searcher).trials if t.values]
        assert told == [1234.5 + i, 2.5], column


def test_recalibrating_searcher_hands_each_trial_the_correction_fitted_so_far():
    """The grid through the sweep's searcher: no correction before two ok trials (leave-one-out needs
    two); once two measured 20% under their predictions, the next carries a correction toward that,
    and its plan uses it in its own regime, which the two span (batch 16 between 8 and 32)."""
    from slmray.predict.calibration import Correction, Regime
    from slmray.sweep.driver import PlannedCost, search_alg
    from slmray.sweep.plan import plan_trial
    from slmray.sweep.trial import SweepSettings

    space = SearchSpace(model=["llama-100m"], per_device_batch=[8, 32, 16], num_gpus=[1], gpu_type=["H100-80GB"],
                        attention=["sdpa"], strategy=["ddp"], prices="aws")
    settings = SweepSettings(space=space, sweep_id="s", sweep_dir="/unused",
                             capacity=capacity_from_yaml(str(REPO / "cluster" / "h100.yaml")),
                             prices=PriceBook.load("aws"), prune=True)
    plan = make_plan(space, settings.capacity, settings.prices, prune=True)
    alg = search_alg(settings, plan, runs=3, budget=1e9)
    for i in range(2):
        config = alg.suggest(f"t{i}")
        assert config["correction"]["rows"] == 0
        predicted = plan[i].estimate.tokens_per_s
        alg.on_trial_complete(f"t{i}", {**plan[i].row_columns(), "status": "ok", "tokens_per_s": 0.8 * predicted,
                                        "cost_usd": 1.0})
    third = alg.suggest("t2")
    correction = Correction(**third["correction"])
    resolved = space.resolve(third, settings.capacity.device)
    f = correction.multiplier(Regime.of(resolved.train))
    assert correction.rows == 2 and 0.8 <= f < 0.9
    corrected = plan_trial(resolved, settings.capacity, settings.prices, True, correction)
    assert corrected.estimate.tokens_per_s == pytest.approx(f * plan[2].estimate.tokens_per_s)
    assert corrected.prediction_columns()["predicted_tokens_per_s_uncorrected"] == pytest.approx(plan[2].estimate.tokens_per_s)
    assert corrected.prediction_columns()["correction_rows"] == 2
    # the budget prices the next trial with the correction: slower, so dearer than first planned
    assert PlannedCost(settings)(third) > plan[2].cost_usd


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_survives_the_pickling_tune_does_mid_search(name):
    """Tune pickles the searcher into its tuner file and its checkpoints (Optuna 5.1's NSGA-II holds
    a lock pickle refuses): a searcher restored halfway goes on without repeating a configuration."""
    assert set(SAMPLERS) == set(OPTUNA_SAMPLERS)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = OptunaSearch(metric=["tokens_per_s", "usd"], mode=["max", "min"], sampler=SAMPLERS[name](seed=3))
    search.set_search_properties(None, None, {k: tune.choice(v) for k, v in SPACE.items()})
    searcher = DistinctSearcher(search)
    first = _drive(searcher, 2)
    restored = pickle.loads(pickle.dumps(searcher))
    rest = _drive(restored, 4, start=2)
    assert len(first) == 2 and len(first + rest) == 4
    assert len({tuple(sorted(c.items())) for c in first + rest}) == 4


def test_a_resumed_grid_suggests_only_what_its_rows_lack_with_their_correction_and_spending():
    """The rows are the record: a grid resumed from them suggests each configuration they lack,
    once, in the plan's order; the correction and the dollars spent start from them."""
    from ray.tune.search import Searcher

    from slmray.sweep.driver import search_alg
    from slmray.sweep.space import Trial
    from slmray.sweep.trial import SweepSettings

    from slmray.sweep.capacity import local_capacity

    space = SearchSpace(model=["tiny"], per_device_batch=[8, 16, 32], num_gpus=[1], attention=["sdpa"],
                        strategy=["ddp"], seq_len=32, device="cpu")
    settings = SweepSettings(space=space, sweep_id="s", sweep_dir="/unused", capacity=local_capacity("cpu"),
                             prices=PriceBook.load("local"), prune=True)
    plan = make_plan(space, settings.capacity, settings.prices, prune=True)
    predicted = plan[1].estimate.tokens_per_s
    # the row of batch 16, as the sweep wrote it: its GPU type as planned and as the space asked
    row = {**plan[1].row_columns(), "status": "ok", "tokens_per_s": 0.5 * predicted,
           "predicted_tokens_per_s_uncorrected": predicted, "cost_usd": 7.0}
    assert Trial.from_row(row) == plan[1].trial
    alg = search_alg(settings, plan, runs=3, budget=10.0, recorded=[row])
    first, second = alg.suggest("t0"), alg.suggest("t1")
    assert [first["per_device_batch"], second["per_device_batch"]] == [8, 32]
    assert first["correction"]["observed"] == 1  # the recorded row is among what the correction is fitted on
    assert alg.spent_usd == 7.0
    assert alg.suggest("t2") == Searcher.FINISHED
