"""Replay a measured grid offline: how much of its Pareto front do cheaper searches recover?

    python benchmarks/sweep_cost_replay.py TABLE... --out DIR     # results Parquet files or trainer CSVs
    python benchmarks/sweep_cost_replay.py --synthetic --out DIR  # a made-up grid, for a dry run

Every configuration of the tables is a point of the grid (several tables make one grid: the
one-GPU sweeps of two GPU types make GPU type a dimension); "running" a trial looks its measured
outcome up and charges its GPU-hours as a sweep now runs it, on a warm worker group
(`--trial-cost warm`, the default): `TRIAL_STEPS` steps at the measured step time plus the plan's
`TRIAL_OVERHEAD_S` (and `COMPILE_S` for a compiled one), an OOM trial the overhead and one step;
each group's start (`GROUP_START_S`, once per shape) is left out, since every method that runs a
shape pays it alike.  `--trial-cost measured` charges what the tables' sweeps spent, one worker
group per trial: wall_s x num_gpus, or, where a table has no wall_s, start-up plus `TRIAL_STEPS`
steps (an OOM trial its start-up and one predicted step).  Methods, each stopped when it has spent the grid's GPU-hours (a searcher
also once every configuration of the table has run or been pruned, or when DistinctSearcher ends
the search):

- grid: every configuration, in a random order;
- tpe, nsga2: the sweep's own searcher, driven as Tune drives it (`suggest` / `on_trial_complete`,
  no cluster): `slmray.sweep.searchers.DistinctSearcher` around Ray's `OptunaSearch` with the sampler
  `slmray.sweep.searchers.SAMPLERS[name](seed=seed)` (Optuna's defaults, as `python -m slmray.tune`
  builds it in `slmray.sweep.driver.search_alg`), over `tune.choice` of each column that varies in the
  group, told the sweep's objectives `max:tokens_per_s max:tokens_per_usd` (tokens per GPU-hour
  where the table has no prices).  Each suggested configuration is looked up in the table and
  completed with a result shaped like the sweep's row (`slmray.sweep.trial._report`): its status,
  tokens/s and tokens/$, NaN where not measured (an OOM), and its `config`; so an OOM is told as
  the worst outcome and a repeated proposal answered from the cache, by DistinctSearcher, as in
  a sweep.  A configuration the table lacks (the columns' product holds combinations no table
  row ran) is completed as a trial that errored (`error=True`, no result: Optuna marks it FAIL
  and learns nothing from it), at no GPU cost; a row with NaN objectives would not do, since
  Optuna refuses NaN and Ray only logs that, leaving the trial RUNNING;
- tpe+estimate: tpe as `python -m slmray.tune` runs it in Optuna mode with pruning on: Ray's
  `points_to_evaluate` is the estimate's predicted Pareto front (`slmray.sweep.driver._predicted_front`,
  given the group's configurations with their estimates and prices), and a proposal the estimate
  predicts to OOM is completed as `pruned` (told as the worst outcome) at no GPU cost;
- estimate-ranked: no sampler; predicted-OOM configurations skipped, the rest run in the order
  of their predicted Pareto rank.

Score: hypervolume of the Pareto front found so far (maximise tokens/s, minimise cost per token:
USD where the table has prices, else GPU-hours), as a fraction of the whole grid's, against the
fraction of the grid's GPU-hours spent.  Objectives are normalised per group (default: per
model, since a sweep asks which configuration is best for a model), averaged over groups and
seeds.  Writes `sweep_cost_replay.png`, `.md` and `.csv` (and the curves) under `--out`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass

import numpy as np
import optuna
import pandas as pd
from ray import tune
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from slmray.predict.estimate import Estimate, estimate
from slmray.predict.overheads import COMPILE_S, TRIAL_OVERHEAD_S
from slmray.sweep.driver import _predicted_front
from slmray.sweep.searchers import SAMPLERS, DistinctSearcher
from slmray.train.config import CONFIG_KEYS, ROW_DEFAULTS

from calibrate_estimate import load_measured, trial_config
from estimate_accuracy import markdown_table

TRIAL_STEPS = 33
"""Warm-up plus measured steps of a trial (3 + 3 x 10, the trainer's final protocol)."""
CONFIG_COLUMNS = (*CONFIG_KEYS, "grad_accum")
"""What tells two configurations of a replayed table apart: a sweep configuration's identity, and
the accumulation a trainer table's rows may differ in.  A grid takes them in the order of the
table's columns (`load_measured`'s): its configurations' order and a searcher's parameters follow it."""
REFERENCE = 1.1
"""Hypervolume reference point on normalised objectives (0 best, 1 worst of the grid)."""
METRICS = ("tokens_per_s", "tokens_per_usd")
"""What a replayed searcher is told of a trial, both maximised (the sweep's objectives
`max:tokens_per_s max:tokens_per_usd`); tokens/$ is tokens per GPU-hour where the table has no prices."""
METHODS = ("grid", "tpe", "nsga2", "tpe+estimate", "estimate-ranked")


def hypervolume_2d(points: np.ndarray, reference: tuple[float, float] = (REFERENCE, REFERENCE)) -> float:
    """Area dominated by `points` (minimised in both columns) and bounded by `reference`.

    Optuna computes hypervolumes only in a private module (`optuna._hypervolume`), so two
    dimensions are done here: sweep the points by the first objective, add each step's rectangle.
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    pts = pts[(pts < reference).all(axis=1)]
    area, best_y = 0.0, reference[1]
    for x, y in pts[np.lexsort((pts[:, 1], pts[:, 0]))]:
        if y < best_y:
            area += (reference[0] - x) * (best_y - y)
            best_y = y
    return area


def pareto_rank(points: np.ndarray) -> np.ndarray:
    """Non-dominated sorting rank of each row (0: the front), minimising every column."""
    pts = np.asarray(points, dtype=float)
    rank = np.full(len(pts), -1)
    level = 0
    while (rank < 0).any():
        left = np.flatnonzero(rank < 0)
        sub = pts[left]
        dominated = ((sub[None, :, :] <= sub[:, None, :]).all(-1) & (sub[None, :, :] < sub[:, None, :]).any(-1)).any(1)
        rank[left[~dominated]] = level
        level += 1
    return rank


# ---------------------------------------------------------------------------------------------
# The grid


def _objectives(tokens_per_s: np.ndarray, num_gpus: np.ndarray, cost_per_gpu_s: np.ndarray) -> np.ndarray:
    """(-tokens/s, cost per million tokens), both minimised."""
    return np.column_stack([-tokens_per_s, num_gpus * cost_per_gpu_s * 1e6 / tokens_per_s])


def _cost_per_gpu_s(g: pd.DataFrame) -> np.ndarray:
    """USD per GPU-second from the table's tokens per USD (the GPU type's median for rows without
    one, such as OOMs), or 1/3600 where it has no prices, making the cost objective GPU-hours."""
    usd = g["tokens_per_s"] / g["tokens_per_usd"] / g["num_gpus"]
    usd = usd.fillna(usd.groupby(g["gpu_type"]).transform("median"))
    if usd.isna().any():  # a GPU type without a price: GPU-hours for all, to keep one unit
        return np.full(len(g), 1 / 3600)
    return usd.to_numpy(float)


@dataclass
class Grid:
    """One group's configurations, outcomes and costs, objectives normalised to the group's ok range."""

    name: str
    params: list[str]
    """Columns that vary within the group: the search space."""
    configs: pd.DataFrame
    """One row per configuration: its params, ok, tokens_per_s, tokens_per_usd (told to a searcher),
    price_per_hour_usd, normalised objectives, gpu_hours, its estimate, predicted objectives and oom."""

    def key(self, values: dict) -> tuple:
        return tuple(values[p] for p in self.params)

    @property
    def total_gpu_hours(self) -> float:
        return float(self.configs["gpu_hours"].sum())

    def front_hypervolume(self, index: list[int]) -> float:
        rows = self.configs.loc[index]
        return hypervolume_2d(rows.loc[rows["ok"], ["obj0", "obj1"]].to_numpy())


def _plain(value):
    """numpy scalars as Python ones: Optuna's categorical choices must be plain."""
    return value.item() if isinstance(value, np.generic) else value


def build_grids(df: pd.DataFrame, group_by: str, trial_cost: str = "warm") -> list[Grid]:
    """Configurations of `df` (rows of `load_measured`) per group, with measured and predicted
    outcomes; each charged as `trial_cost` says (module docstring)."""
    df = df.copy()
    step = df["per_device_batch"] * df["seq_len"] * df["grad_accum"] * df["num_gpus"] / df["tokens_per_s"]
    preds = [estimate(trial_config(r), r.gpu_type, r.num_gpus) for r in df.itertuples()]
    df["estimate"] = preds
    df["predicted_oom"] = [p.oom for p in preds]
    df["predicted_tokens_per_s"] = [p.tokens_per_s for p in preds]
    step = step.fillna(pd.Series([p.step_time_s for p in preds], index=df.index))
    ok = df["status"] == "ok"
    steps = np.where(ok, TRIAL_STEPS, 1) * step
    if trial_cost == "warm":
        compiled = df["compile"].fillna(False).astype(bool)
        compile_s = [COMPILE_S[p] for p in df["precision"].fillna(ROW_DEFAULTS["precision"])]
        df["wall"] = TRIAL_OVERHEAD_S + np.where(compiled, compile_s, 0.0) + steps
    else:
        startup = df["startup_s"].fillna(df.groupby("model")["startup_s"].transform("median")).fillna(60.0)
        df["wall"] = df["wall_s"].fillna(startup + steps)
    df["gpu_hours"] = df["wall"] * df["num_gpus"] / 3600
    # a configuration measured more than once: ok if any run was, median outcome, mean cost
    df["ok_tokens"] = df["tokens_per_s"].where(ok)
    keys = [c for c in df.columns if c in CONFIG_COLUMNS]
    if len(keys) < len(CONFIG_COLUMNS):  # a configuration key load_measured does not read would merge configurations
        raise ValueError(f"the table lacks configuration columns {sorted(set(CONFIG_COLUMNS) - set(keys))}")
    agg = df.groupby(keys, dropna=False).agg(
        ok=("status", lambda s: (s == "ok").any()), tokens_per_s=("ok_tokens", "median"),
        tokens_per_usd=("tokens_per_usd", "median"), gpu_hours=("gpu_hours", "mean"),
        predicted_oom=("predicted_oom", "first"), predicted_tokens_per_s=("predicted_tokens_per_s", "first"),
        estimate=("estimate", "first"),
    ).reset_index()
    grids = []
    for name, g in agg.groupby(group_by):
        g = g.reset_index(drop=True)
        params = [c for c in keys if c != group_by and g[c].nunique() > 1]
        for c in params:
            g[c] = [_plain(v) for v in g[c]]
        cost = _cost_per_gpu_s(g)
        gpus = g["num_gpus"].to_numpy(float)
        g["price_per_hour_usd"] = cost * 3600 * gpus  # USD, or GPU-hours where the table has no prices
        g["tokens_per_usd"] = g["tokens_per_s"] * 3600 / g["price_per_hour_usd"]  # the cost objective as a row has it
        measured = _objectives(g["tokens_per_s"].to_numpy(float), gpus, cost)
        predicted = _objectives(g["predicted_tokens_per_s"].to_numpy(float), gpus, cost)
        ok_rows = g["ok"].to_numpy()
        if not ok_rows.any():
            continue
        best, worst = measured[ok_rows].min(axis=0), measured[ok_rows].max(axis=0)
        span = np.where(worst > best, worst - best, 1.0)
        g[["obj0", "obj1"]] = (measured - best) / span
        g[["pred0", "pred1"]] = (predicted - best) / span
        grids.append(Grid(name=str(name), params=params, configs=g))
    return grids


# ---------------------------------------------------------------------------------------------
# Searches: each returns the configuration indices it ran, in order, and which it pruned


@dataclass
class Run:
    order: list[int]
    """Configurations run, in order (each charged its GPU-hours)."""
    pruned: int = 0
    searcher: Searcher | None = None
    """The searcher that chose them (tpe, nsga2, tpe+estimate), as it stands at the end."""


def _budgeted(grid: Grid, order) -> Run:
    """Run `order` until the grid's GPU-hours are spent."""
    ran, spent = [], 0.0
    for i in order:
        if spent >= grid.total_gpu_hours:
            break
        ran.append(int(i))
        spent += grid.configs.at[i, "gpu_hours"]
    return Run(ran)


def run_grid(grid: Grid, seed: int) -> Run:
    return _budgeted(grid, np.random.default_rng(seed).permutation(len(grid.configs)))


def run_ranked(grid: Grid, seed: int) -> Run:
    c = grid.configs
    keep = np.flatnonzero(~c["predicted_oom"].to_numpy())
    rank = pareto_rank(c.loc[keep, ["pred0", "pred1"]].to_numpy())
    order = keep[np.lexsort((c.loc[keep, "pred0"].to_numpy(), rank))]
    run = _budgeted(grid, order)
    run.pruned = len(c) - len(keep)
    return run


@dataclass(frozen=True)
class _ReplayedTrial:
    """What `_predicted_front` reads of a planned trial's `trial`: its model and its Tune config
    (here the group's search-space columns, not every swept one)."""

    model: str
    config: dict

    def as_config(self) -> dict:
        return dict(self.config)


@dataclass(frozen=True)
class _ReplayedPlan:
    """What `_predicted_front` reads of a `slmray.sweep.plan.PlannedTrial`."""

    trial: _ReplayedTrial
    estimate: Estimate
    price_per_hour_usd: float


def predicted_front(grid: Grid) -> list[dict]:
    """The configurations the sweep's Optuna mode would try first (`slmray.sweep.driver._predicted_front`
    of the group's configurations, with the estimate's predictions and the group's prices, for the
    objectives `METRICS`): the estimate's Pareto front, predicted OOMs left out."""
    plan = [
        _ReplayedPlan(_ReplayedTrial(r["model"], {p: r[p] for p in grid.params}), r["estimate"], r["price_per_hour_usd"])
        for r in grid.configs.to_dict("records")
    ]
    return _predicted_front(_objective_space(), plan, limit=len(plan))


def _objective_space():
    """A sweep space with the replay's objectives: `_predicted_front` reads only its objectives."""
    from slmray.sweep.space import SearchSpace

    return SearchSpace(
        model=["llama-100m"], per_device_batch=[8], num_gpus=[1], attention=["sdpa"], strategy=["ddp"],
        search="optuna", objectives=[f"max:{m}" for m in METRICS],
    )


def make_searcher(grid: Grid, sampler: str, seed: int, points_to_evaluate: list[dict] | None = None) -> Searcher:
    """The sweep's Optuna searcher (`slmray.sweep.driver.search_alg`) over the group's columns."""
    searcher = DistinctSearcher(OptunaSearch(
        metric=list(METRICS), mode=["max"] * len(METRICS), sampler=SAMPLERS[sampler](seed=seed),
        points_to_evaluate=points_to_evaluate,
    ))
    space = {p: tune.choice(sorted(grid.configs[p].unique().tolist(), key=str)) for p in grid.params}
    searcher.set_search_properties(None, None, space)
    return searcher


def replayed_row(grid: Grid, i: int, config: dict, pruned: bool = False) -> dict:
    """What the sweep's trial `i` would report to Tune (`slmray.sweep.trial._report`): its status and
    every objective, NaN where not measured (an OOM, or one pruned as predicted to OOM)."""
    c = grid.configs
    if pruned or not c.at[i, "ok"]:
        status = "pruned" if pruned else "oom"
        values = {m: float("nan") for m in METRICS}
    else:
        status = "ok"
        values = {m: float(c.at[i, m]) for m in METRICS}
    return {"status": status, **values, "config": dict(config)}


def run_searcher(grid: Grid, seed: int, sampler: str, use_estimate: bool = False) -> Run:
    """Drive the sweep's searcher over the table, one trial at a time, as Tune would."""
    c = grid.configs
    if not grid.params:  # one configuration: nothing to search
        return _budgeted(grid, c.index)
    index = {grid.key(row): i for i, row in zip(c.index, c[grid.params].to_dict("records"))}
    searcher = make_searcher(grid, sampler, seed, predicted_front(grid) if use_estimate else None)
    ran, pruned, spent, n = [], set(), 0.0, 0
    while spent < grid.total_gpu_hours and len(ran) + len(pruned) < len(c):
        trial_id = f"{grid.name}-{seed}-{n}"
        n += 1
        config = searcher.suggest(trial_id)
        if config is None or config == Searcher.FINISHED:
            break
        i = index.get(grid.key(config))
        skip = i is not None and use_estimate and bool(c.at[i, "predicted_oom"])
        if skip:
            pruned.add(i)
        elif i is not None:
            ran.append(int(i))
            spent += c.at[i, "gpu_hours"]
        if i is None:  # not in the table: nothing to replay, told as a trial that errored, for free
            searcher.on_trial_complete(trial_id, None, error=True)
        else:
            searcher.on_trial_complete(trial_id, replayed_row(grid, i, config, pruned=skip))
    return Run(ran, pruned=len(pruned), searcher=searcher)


def search(method: str, grid: Grid, seed: int) -> Run:
    if method == "grid":
        return run_grid(grid, seed)
    if method == "estimate-ranked":
        return run_ranked(grid, seed)
    return run_searcher(grid, seed, sampler=method.split("+")[0], use_estimate=method.endswith("+estimate"))


def curve(grid: Grid, run: Run) -> pd.DataFrame:
    """Hypervolume fraction after each trial, against the fraction of the grid's GPU-hours spent."""
    full = grid.front_hypervolume(list(grid.configs.index))
    spent = np.cumsum([grid.configs.at[i, "gpu_hours"] for i in run.order])
    hv = [grid.front_hypervolume(run.order[: k + 1]) / full for k in range(len(run.order))]
    return pd.DataFrame({"trial": np.arange(1, len(run.order) + 1), "gpu_hours_fraction": spent / grid.total_gpu_hours, "hv_fraction": hv})


def front_size(grid: Grid) -> int:
    """Configurations on the group's measured Pareto front."""
    ok = grid.configs[grid.configs["ok"]]
    return int((pareto_rank(ok[["obj0", "obj1"]].to_numpy()) == 0).sum())


def hv_at(points: pd.DataFrame, fraction: float) -> float:
    """Hypervolume fraction reached within `fraction` of the grid's GPU-hours (step function)."""
    within = points[points["gpu_hours_fraction"] <= fraction + 1e-12]
    return float(within["hv_fraction"].max()) if len(within) else 0.0


def gpu_hours_to(points: pd.DataFrame, target: float) -> float:
    """Fraction of the grid's GPU-hours spent when the hypervolume fraction first reaches `target`."""
    hit = points[points["hv_fraction"] >= target - 1e-12]
    return float(hit["gpu_hours_fraction"].iloc[0]) if len(hit) else float("nan")


def replay(grids: list[Grid], seeds: int, methods=METHODS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves, per-run summary) of every method x seed x group."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    curves, runs = [], []
    for method in methods:
        for seed in range(seeds):
            for grid in grids:
                run = search(method, grid, seed)
                points = curve(grid, run)
                curves.append(points.assign(method=method, seed=seed, group=grid.name))
                runs.append({
                    "method": method, "seed": seed, "group": grid.name, "pruned": run.pruned,
                    "points": points.assign(oom=~grid.configs.loc[run.order, "ok"].to_numpy()),
                })
    return pd.concat(curves, ignore_index=True), pd.DataFrame(runs)


def summarise(runs: pd.DataFrame, budget: float, target: float) -> pd.DataFrame:
    """Per method, over seeds and groups: hypervolume at `budget`, GPU-hours to `target`."""
    within = [p[p["gpu_hours_fraction"] <= budget + 1e-12] for p in runs["points"]]
    runs = runs.assign(
        hv_at_budget=[hv_at(p, budget) for p in runs["points"]],
        to_target=[gpu_hours_to(p, target) for p in runs["points"]],
        trials=[len(w) for w in within], oom=[int(w["oom"].sum()) for w in within],
    )
    strict_mean = lambda s: s.mean(skipna=False)  # noqa: E731 - a run that never reached the target shows
    per_seed = runs.groupby(["method", "seed"]).agg(
        hv=("hv_at_budget", "mean"), to_target=("to_target", strict_mean), trials=("trials", "sum"),
        oom=("oom", "sum"), pruned=("pruned", "sum"),
    )
    out = per_seed.groupby("method").agg(
        hv_mean=("hv", "mean"), hv_min=("hv", "min"), to_target_mean=("to_target", strict_mean),
        trials=("trials", "mean"), oom_trials=("oom", "mean"), pruned=("pruned", "mean"),
    )
    out["meets_goal"] = out["hv_mean"] >= target
    return out.reindex([m for m in METHODS if m in out.index]).reset_index()


def plot(curves: pd.DataFrame, budget: float, target: float, title: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = np.linspace(0, 1, 201)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in [m for m in METHODS if m in set(curves["method"])]:
        runs = np.array([
            [hv_at(g, x) for x in xs] for _, g in curves[curves["method"] == method].groupby(["seed", "group"])
        ])
        ax.plot(xs, runs.mean(axis=0), label=method)
        ax.fill_between(xs, np.percentile(runs, 25, axis=0), np.percentile(runs, 75, axis=0), alpha=0.15)
    ax.axvline(budget, color="grey", linestyle=":", linewidth=1)
    ax.axhline(target, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("GPU-hours spent / the grid's GPU-hours")
    ax.set_ylabel("hypervolume / the grid's")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# A synthetic grid: the estimate's own predictions, perturbed, so the replay runs without a table

SYNTHETIC_PRICE_PER_GPU_HOUR = 3.0
"""Illustrative only: a made-up H100 price so the synthetic grid has a cost objective."""


def synthetic_table(
    models=("llama-100m", "llama-500m", "llama-1b", "llama-2b"), batches=(8, 16, 32, 64), gpus=(1, 2, 4, 8),
    attention=("eager", "sdpa"), strategies=("ddp", "fsdp"), gpu_type="H100-80GB", seed: int = 0,
):
    """Rows of the results schema: 'measured' = predicted x per-(model, strategy, attention) bias x
    per-row noise (10% on tokens/s, 3% on memory), so the estimate is informative but wrong."""
    from slmray.catalog.prices import Price, PriceBook, gpu_key
    from slmray.core.row import make_row
    from slmray.results.table import to_table

    rng = np.random.default_rng(seed)
    book = PriceBook("synthetic", {gpu_key(gpu_type): Price(gpu_key(gpu_type), SYNTHETIC_PRICE_PER_GPU_HOUR, "synthetic")})
    rows = []
    for model in models:
        for strategy in strategies:
            for att in attention:
                bias = np.exp(rng.normal(0, 0.1))
                for n in gpus:
                    for b in batches:
                        cfg = trial_config(pd.Series({
                            "model": model, "attention": att, "strategy": strategy, "compile": False,
                            "activation_checkpointing": False, "per_device_batch": b, "seq_len": 1024, "grad_accum": 1,
                        }))
                        est = estimate(cfg, gpu_type, n)
                        peak = est.peak_mem_gb * np.exp(rng.normal(0, 0.03))
                        ok = peak <= est.capacity_gb
                        tps = est.tokens_per_s * bias * np.exp(rng.normal(0, 0.1))
                        step = n * cfg.tokens_per_device_step / tps
                        startup = 30 + 20 * cfg.model.num_params / 1e9
                        wall = startup + (TRIAL_STEPS * step if ok else step)
                        measured = {
                            "status": "ok" if ok else "oom", "peak_mem_gb": peak, "startup_s": startup, "wall_s": wall,
                            "tokens_per_s": tps if ok else None, "step_time_median_s": step if ok else None,
                        }
                        identity = {"sweep_id": "synthetic", "trial_id": f"t{len(rows):04d}", "num_gpus": n,
                                    "gpu_type": gpu_type}
                        rows.append(make_row(identity, cfg.flat(), measured, prices=book))
    return to_table(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("tables", nargs="*", help="results Parquet files or trainer CSVs, replayed as one grid")
    p.add_argument("--synthetic", action="store_true", help="replay `synthetic_table()` instead")
    p.add_argument("--out", required=True, help="directory for the plot, table and curves")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--budget", type=float, default=1 / 3, help="share of the grid's GPU-hours to score at")
    p.add_argument("--target", type=float, default=0.9, help="share of the grid's hypervolume to reach")
    p.add_argument("--group-by", default="model", choices=CONFIG_COLUMNS, help="one front per value of this column")
    p.add_argument("--trial-cost", default="warm", choices=("warm", "measured"),
                   help="charge a trial as a warm group runs it (default) or what the table's sweep spent")
    args = p.parse_args(argv)
    if bool(args.tables) == args.synthetic:
        p.error("give a table or --synthetic")
    os.makedirs(args.out, exist_ok=True)
    try:
        if args.synthetic:  # through a Parquet file, as a committed grid would come
            from slmray.results.table import write_table

            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "synthetic_grid.parquet")
                write_table(synthetic_table(), path)
                measured = load_measured([path])
            name = os.path.basename(path)
        else:
            measured = load_measured(args.tables)
            name = " + ".join(os.path.basename(t) for t in args.tables)
        grids = build_grids(measured, args.group_by, args.trial_cost)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not grids:
        print(f"error: {name} has no ok configuration to make a front of", file=sys.stderr)
        return 2
    curves, runs = replay(grids, args.seeds)
    summary = summarise(runs, args.budget, args.target)
    total = sum(g.total_gpu_hours for g in grids)
    fronts = {g.name: front_size(g) for g in grids}
    header = (
        f"Replay of `{name}`: {sum(len(g.configs) for g in grids)} configurations in {len(grids)} groups "
        f"(by {args.group_by}), {total:,.2f} GPU-hours for the whole grid; {args.seeds} seeds. "
        + (f"Each trial charged as a warm worker group runs it: {TRIAL_OVERHEAD_S:g} s beyond its {TRIAL_STEPS} steps "
           "(an OOM trial one step), groups' start-up left out. " if args.trial_cost == "warm" else
           "Each trial charged what the table's sweep spent on it (one worker group per trial). ")
        + "Configurations on each "
        f"group's Pareto front: {', '.join(f'{k} {v}' for k, v in fronts.items())}. "
        f"hv: hypervolume fraction of the grid's front within {args.budget:.0%} of its GPU-hours (mean, worst seed); "
        f"to {args.target:.0%}: mean fraction of the grid's GPU-hours spent to reach {args.target:.0%} of its hypervolume "
        "(NaN where some run never did); trials, oom_trials, pruned: per seed, summed over groups, within the budget "
        "(pruned: over the whole run)."
    )
    if set(fronts.values()) == {1}:
        header += (
            " Every front is one configuration: on one GPU type and count at one price, cost per token is the price "
            "over tokens/s, so the two objectives rank trials alike and the score is how soon a method runs the "
            "fastest configuration of each group."
        )
    if args.synthetic:
        header += (
            " Synthetic grid (`synthetic_table`): every 'measured' value is the estimate's own prediction times a "
            "10% bias per (model, strategy, attention) and 10% (tokens/s) or 3% (memory) noise per row, so the "
            "estimate is closer to the truth here than it will be on a real grid."
        )
    table = summary.rename(columns={"hv_mean": "hv", "hv_min": "hv worst seed", "to_target_mean": f"to {args.target:.0%}"})
    with open(os.path.join(args.out, "sweep_cost_replay.md"), "w") as f:
        f.write(f"# Sweep-cost replay\n\n{header}\n\n{markdown_table(table)}\n")
    summary.to_csv(os.path.join(args.out, "sweep_cost_replay.csv"), index=False)
    curves.round(4).to_csv(os.path.join(args.out, "sweep_cost_replay_curves.csv"), index=False)
    plot(curves, args.budget, args.target, f"{name}: {len(grids)} groups, {args.seeds} seeds", os.path.join(args.out, "sweep_cost_replay.png"))
    print(header)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {args.out}/sweep_cost_replay.{{png,md,csv}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
