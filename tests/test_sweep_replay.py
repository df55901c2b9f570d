"""The offline sweep-cost replay (`benchmarks/sweep_cost_replay.py`) on a small synthetic grid."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def replay_module():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import sweep_cost_replay
    finally:
        sys.path.remove(str(BENCHMARKS))
    return sweep_cost_replay


@pytest.fixture(scope="module")
def grids(replay_module, tmp_path_factory):
    from slmray.results.table import write_table

    path = tmp_path_factory.mktemp("grid") / "grid.parquet"
    table = replay_module.synthetic_table(models=("llama-100m", "llama-2b"), batches=(8, 64), gpus=(1, 4), seed=1)
    write_table(table, str(path))
    loaded = replay_module.load_measured([str(path)])
    assert len(loaded) == 2 * 2 * 2 * 2 * 2 and set(loaded["status"]) == {"ok", "oom"}
    return replay_module.build_grids(loaded, "model")


def test_hypervolume_2d_by_hand(replay_module):
    hv = replay_module.hypervolume_2d
    assert hv(np.array([[0.0, 0.0]]), (1.0, 1.0)) == pytest.approx(1.0)
    assert hv(np.array([[0.0, 0.5], [0.5, 0.0]]), (1.0, 1.0)) == pytest.approx(0.75)
    # a dominated point and one beyond the reference add nothing
    assert hv(np.array([[0.0, 0.5], [0.5, 0.0], [0.6, 0.6], [1.5, -1.0]]), (1.0, 1.0)) == pytest.approx(0.75)
    assert hv(np.empty((0, 2)), (1.0, 1.0)) == 0.0
    assert list(replay_module.pareto_rank(np.array([[0, 1], [1, 0], [1, 1], [2, 2]]))) == [0, 0, 1, 2]


def test_grids_are_normalised_per_model(grids):
    assert [g.name for g in grids] == ["llama-100m", "llama-2b"]
    for g in grids:
        assert set(g.params) == {"attention", "strategy", "per_device_batch", "num_gpus"}
        ok = g.configs[g.configs["ok"]]
        assert ok[["obj0", "obj1"]].min().tolist() == [0.0, 0.0]
        assert ok[["obj0", "obj1"]].max().tolist() == [1.0, 1.0]
        assert (g.configs["gpu_hours"] > 0).all()


def test_every_method_replays_within_the_grids_budget(replay_module, grids):
    curves, runs = replay_module.replay(grids, seeds=1)
    assert set(runs["method"]) == set(replay_module.METHODS)
    for points in runs["points"]:
        assert points["hv_fraction"].is_monotonic_increasing
        assert points["hv_fraction"].between(0, 1 + 1e-9).all()
        assert points["gpu_hours_fraction"].is_monotonic_increasing
        assert (points["gpu_hours_fraction"].iloc[:-1] < 1).all()  # a trial starts only while budget is left
    for points in runs.loc[runs["method"] == "grid", "points"]:  # the whole grid, once
        assert points["hv_fraction"].iloc[-1] == pytest.approx(1.0)
        assert points["gpu_hours_fraction"].iloc[-1] == pytest.approx(1.0)


def test_no_configuration_runs_twice_and_estimate_guided_ones_skip_predicted_ooms(replay_module, grids):
    for grid in grids:
        predicted_oom = int(grid.configs["predicted_oom"].sum())
        for method in replay_module.METHODS:
            run = replay_module.search(method, grid, seed=0)
            assert len(set(run.order)) == len(run.order)
            if "estimate" in method:
                assert not grid.configs.loc[run.order, "predicted_oom"].any()
                assert run.pruned <= predicted_oom
        assert replay_module.search("estimate-ranked", grid, seed=0).pruned == predicted_oom


def test_summary_plot_and_files(replay_module, grids, tmp_path):
    curves, runs = replay_module.replay(grids, seeds=2, methods=("grid", "estimate-ranked"))
    summary = replay_module.summarise(runs, budget=1 / 3, target=0.9)
    assert list(summary["method"]) == ["grid", "estimate-ranked"]
    assert summary["hv_mean"].between(0, 1).all()
    replay_module.plot(curves, 1 / 3, 0.9, "test", str(tmp_path / "replay.png"))
    assert (tmp_path / "replay.png").stat().st_size > 1000


def test_cli_reads_the_trainer_csv(cli, tmp_path):
    done = cli(str(BENCHMARKS / "sweep_cost_replay.py"),
               str(BENCHMARKS / "results" / "trainer" / "trainer_throughput_h100.csv"), "--out", str(tmp_path), "--seeds", "1")
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "sweep_cost_replay.md").read_text()
    assert "estimate-ranked" in text and "| grid |" in text
    assert "Every front is one configuration" in text  # one GPU type at one price
    assert (tmp_path / "sweep_cost_replay.png").exists()


def test_cli_replays_the_committed_h100_and_h200_sweeps_as_one_grid(cli, tmp_path):
    done = cli(str(BENCHMARKS / "sweep_cost_replay.py"), str(BENCHMARKS / "results" / "sweeps" / "sweep_h100x1.parquet"),
               str(BENCHMARKS / "results" / "sweeps" / "sweep_h200x1.parquet"), "--out", str(tmp_path), "--seeds", "1")
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "sweep_cost_replay.md").read_text()
    assert "`sweep_h100x1.parquet + sweep_h200x1.parquet`: 39 configurations in 4 groups" in text
    # GPU type is a dimension: the H200 is faster, the H100 cheaper per token, so fronts have two points
    assert "llama-100m 2, llama-1b 2, llama-2b 1, llama-500m 2" in text and "Every front is one" not in text
    summary = pd.read_csv(tmp_path / "sweep_cost_replay.csv").set_index("method")
    assert summary.loc["estimate-ranked", "oom_trials"] == 0  # the 13 OOMs were all predicted


def _study(run):
    """The Optuna study inside the replayed run's searcher."""
    from ray.tune.search.optuna import OptunaSearch

    from slmray.sweep.searchers import DistinctSearcher

    assert isinstance(run.searcher, DistinctSearcher) and isinstance(run.searcher.searcher, OptunaSearch)
    from slmray.private_apis import optuna_study

    return optuna_study(run.searcher.searcher)


def test_tpe_drives_the_sweeps_searcher_each_configuration_once_an_oom_told_worst(replay_module, grids):
    """tpe is `DistinctSearcher(OptunaSearch(sampler=SAMPLERS['tpe']))` told rows as the sweep tells
    them: no configuration is charged twice, and an OOM reaches Optuna as the worst outcome of both
    objectives (DistinctSearcher's), not as a made-up constant with a constraint."""
    import optuna

    grid = next(g for g in grids if (~g.configs["ok"]).any())
    run = replay_module.search("tpe", grid, seed=0)
    assert len(run.order) == len(set(run.order)) > 0
    study = _study(run)
    assert isinstance(study.sampler, optuna.samplers.TPESampler)
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE] * 2
    by_key = {grid.key(t.params): t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
    ooms = [i for i in run.order if not grid.configs.at[i, "ok"]]
    oks = [i for i in run.order if grid.configs.at[i, "ok"]]
    assert ooms and oks
    for i in ooms:
        assert by_key[grid.key(grid.configs.loc[i])].values == [float("-inf"), float("-inf")]
        assert not any(t.system_attrs.get("constraints") for t in study.trials)
    for i in oks:  # the row's own values, not normalised ones
        assert by_key[grid.key(grid.configs.loc[i])].values == pytest.approx(
            [grid.configs.at[i, "tokens_per_s"], grid.configs.at[i, "tokens_per_usd"]])
    # repeats were proposed and answered from DistinctSearcher's cache, never charged
    assert len(run.searcher.results) == len(run.order)


def test_nsga2_and_tpe_estimate_are_the_sweeps_optuna_mode(replay_module, grids):
    import optuna

    for grid in grids:
        assert isinstance(_study(replay_module.search("nsga2", grid, seed=0)).sampler, optuna.samplers.NSGAIISampler)
        run = replay_module.search("tpe+estimate", grid, seed=0)
        front = replay_module.predicted_front(grid)
        index = {grid.key(r): i for i, r in zip(grid.configs.index, grid.configs.to_dict("records"))}
        first = [index[grid.key(c)] for c in front]
        assert front and not grid.configs.loc[first, "predicted_oom"].any()
        k = min(len(first), len(run.order))
        assert run.order[:k] == first[:k]  # Ray's points_to_evaluate: the predicted front first
        told = [t for t in _study(run).trials if t.state == optuna.trial.TrialState.COMPLETE]
        pruned = [t for t in told if grid.configs.at[index[grid.key(t.params)], "predicted_oom"]]
        assert len({grid.key(t.params) for t in pruned}) == run.pruned
        assert all(t.values == [float("-inf"), float("-inf")] for t in pruned)  # told as the sweep tells `pruned`


def test_a_configuration_the_table_lacks_is_told_failed_at_no_cost(replay_module, grids):
    """Completed as a trial that errored: Optuna marks it FAIL (not left RUNNING, as a NaN row
    would be), and no GPU-hours are charged for it."""
    import dataclasses

    import optuna

    grid = grids[0]
    codes = sum(grid.configs[p].rank(method="dense").astype(int) for p in grid.params)
    kept = grid.configs[codes % 2 == 0].reset_index(drop=True)  # a checkerboard: the columns' product holds the rest
    assert all(set(kept[p]) == set(grid.configs[p]) for p in grid.params)
    sparse = dataclasses.replace(grid, configs=kept)
    lacking = {grid.key(r) for r in grid.configs.to_dict("records")} - {sparse.key(r) for r in kept.to_dict("records")}
    failed, charged = set(), 0
    for seed in range(3):
        run = replay_module.search("tpe", sparse, seed=seed)
        assert all(0 <= i < len(kept) for i in run.order)
        charged += len(run.order)
        trials = _study(run).trials
        assert not any(t.state == optuna.trial.TrialState.RUNNING for t in trials)
        for t in trials:
            if sparse.key(t.params) in lacking:
                assert t.state == optuna.trial.TrialState.FAIL
                failed.add(sparse.key(t.params))
    assert failed and charged > 0


def test_a_trial_costs_what_a_warm_group_spends_unless_asked_for_what_its_sweep_spent(replay_module, tmp_path):
    from slmray.results.table import write_table
    from slmray.predict.overheads import TRIAL_OVERHEAD_S

    path = tmp_path / "grid.parquet"
    write_table(replay_module.synthetic_table(models=("llama-100m",), batches=(8, 64), gpus=(1,), seed=1), str(path))
    loaded = replay_module.load_measured([str(path)])
    keys = ["attention", "strategy", "per_device_batch"]
    assert not loaded.duplicated(keys).any()  # one row a configuration
    warm, = replay_module.build_grids(loaded, "model")
    spent, = replay_module.build_grids(loaded, "model", trial_cost="measured")
    rows = loaded.set_index(keys, drop=False)
    for (_, w), (_, m) in zip(warm.configs.iterrows(), spent.configs.iterrows()):
        row = rows.loc[tuple(w[k] for k in keys)]
        assert tuple(m[k] for k in keys) == tuple(w[k] for k in keys)
        step = row["per_device_batch"] * row["seq_len"] * row["grad_accum"] / row["tokens_per_s"]
        if w["ok"]:  # its steps and the plan's overhead, against the table's wall time
            assert w["gpu_hours"] * 3600 == pytest.approx(TRIAL_OVERHEAD_S + replay_module.TRIAL_STEPS * step)
        assert m["gpu_hours"] * 3600 == pytest.approx(row["wall_s"])
        assert w["gpu_hours"] < m["gpu_hours"]  # start-up was most of what the old sweeps spent



def test_a_bf16_and_an_fp8_run_of_one_configuration_stay_two_configurations(replay_module, tmp_path):
    # the replay tells configurations apart by the sweep's identity (CONFIG_KEYS), precision among them
    from slmray.results.table import to_table, write_table

    rows = replay_module.synthetic_table(models=("llama-100m",), batches=(8, 64), gpus=(1,), seed=1).to_pylist()
    fp8 = [{**row, "precision": "fp8", "trial_id": f"{row['trial_id']}-fp8"} for row in rows]
    write_table(to_table(rows + fp8), str(tmp_path / "both.parquet"))
    (grid,) = replay_module.build_grids(replay_module.load_measured([str(tmp_path / "both.parquet")]), "model")
    assert "precision" in grid.params
    assert len(grid.configs) == 2 * len(rows)
    assert sorted(grid.configs["precision"].unique()) == ["bf16", "fp8"]
