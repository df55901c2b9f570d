"""`python -m slmray.tune SPACE.py`: sweep a search space with Ray Tune, one Ray Train run per trial.

    python -m slmray.tune search_spaces/smoke.py                      # local Ray, CPU or GPUs
    python -m slmray.tune search_spaces/full.py --dry-run             # the plan and its cost
    python -m slmray.tune search_spaces/h100.py --storage s3://bucket/sweeps --name h100-a
    python -m slmray.tune search_spaces/h100.py --storage s3://bucket/sweeps --name h100-a --resume

A Ray cluster given by `--address` or RAY_ADDRESS is used; otherwise a local Ray starts.
Each finished trial is written at once as `<storage>/<name>/rows/<trial id>.parquet`, and
the whole table as `<storage>/<name>/results.parquet`, atomically.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import warnings
from pathlib import Path

import numpy as np
from ray import tune

from slmray.analysis.costs import tokens_per_usd, usd_per_btok
from slmray.analysis.pareto import pareto_mask
from slmray.capacity import Capacity, capacity_from_yaml, local_capacity, ray_capacity
from slmray.cluster import HEAD_RESOURCE, ClusterError
from slmray.config import ConfigError
from slmray.plan import PlannedTrial, format_plan, make_plan
from slmray.prices import PriceBook, PriceError, parse_price_overrides, profiles
from slmray.results import COLUMNS, read_table, to_table, write_table
from slmray.searchers import BudgetLimiter, DistinctSearcher, PlanSearcher
from slmray.space import SWEPT, SearchSpace, SpaceError, Trial, load_space
from slmray.storage import StorageError, exists, join, list_files
from slmray.trial import SweepSettings, row_uri, run_trial

DEFAULT_STORAGE = "~/slmray_results"
DRIVER_RESOURCES = {"CPU": 0.01}
"""A trial's own process only waits on its Train run (Ray refuses a zero-resource trial)."""


class PlannedCost:
    """Estimated dollars of a suggested configuration, for the budget (picklable)."""

    def __init__(self, plan: list[PlannedTrial]):
        self.costs = {tuple(p.trial.as_config().values()): p.cost_usd or 0.0 for p in plan}

    def __call__(self, config: dict) -> float:
        return self.costs.get(tuple(config[k] for k in SWEPT), 0.0)


class SweepRecorder(tune.Callback):
    """Driver side: writes each finished trial's row at once, and prints progress.

    Rows are keyed by trial id, and reloaded from storage when a sweep resumes, so a trial
    is never lost or counted twice.
    """

    def __init__(self, sweep_dir: str, planned: int, concurrency: int):
        self.sweep_dir, self.planned, self.concurrency = sweep_dir, planned, concurrency
        self.rows: dict[str, dict] = {}
        self.running: set[str] = set()

    def setup(self, **info) -> None:
        self.rows, self.running = {}, set()
        for uri in list_files(join(self.sweep_dir, "rows"), ".parquet"):
            for row in read_table(uri).to_pylist():
                self.rows[row["trial_id"]] = row
        if self.rows:
            print(f"resuming: {len(self.rows)} trials already recorded", flush=True)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.running.add(trial.trial_id)
        self._progress()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        result = trial.last_result or {}
        if "status" not in result:  # the trial function ended without reporting its row
            return self.on_trial_error(iteration, trials, trial)
        self._record({k: v for k, v in result.items() if k in COLUMNS})

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        row = {**Trial.from_config(trial.config).__dict__, "trial_id": trial.trial_id, "status": "failed"}
        row["requested_gpu_type"] = row["gpu_type"]
        row["error"] = "the trial process failed" + (f"; see {trial.error_file}" if trial.error_file else "")
        self._record(row)

    def on_experiment_end(self, trials, **info) -> None:
        self._write_table()

    def _record(self, row: dict) -> None:
        self.running.discard(row["trial_id"])
        table = to_table([row])
        write_table(table, row_uri(self.sweep_dir, row["trial_id"]))
        self.rows[row["trial_id"]] = table.to_pylist()[0]
        self._write_table()
        self._progress()

    def _write_table(self) -> None:
        write_table(to_table(self.rows.values()), join(self.sweep_dir, "results.parquet"))

    def _progress(self) -> None:
        rows = self.rows.values()
        counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "oom", "failed", "pruned")}
        spent = sum(r.get("cost_usd") or 0.0 for r in rows)
        walls = [r["wall_s"] for r in rows if r.get("wall_s") and r["status"] != "pruned"]
        left = max(self.planned - len(self.rows), 0)
        if not left:
            eta = "ETA 0 min"
        elif walls:
            eta = f"ETA {left * sum(walls) / len(walls) / self.concurrency / 60:.1f} min"
        else:
            eta = "ETA ?"
        print(
            f"[{datetime.datetime.now():%H:%M:%S}] {len(self.rows)}/{self.planned} done: {counts['ok']} ok, "
            f"{counts['oom']} oom, {counts['failed']} failed, {counts['pruned']} pruned | {len(self.running)} running "
            f"| spent ${spent:,.2f} | {eta}",
            flush=True,
        )


def _connect(address: str | None, capacity_hint: Capacity, verbose: bool) -> bool:
    """Join the given cluster, or start a local Ray; True when this process started it."""
    import ray

    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address, log_to_driver=verbose)
        return False
    cpus = capacity_hint.cpus
    if not capacity_hint.use_gpu:
        cpus += 1  # CPU workers take whole cores; the trial drivers need a sliver beside them
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=verbose)
    return True


def _concurrency(space: SearchSpace, capacity: Capacity) -> int:
    if space.max_concurrent:
        return space.max_concurrent
    if not capacity.use_gpu:
        return 1  # CPU trials share the same cores: one at a time keeps their timings apart
    return max(1, capacity.max_workers(None) // min(space.num_gpus))


def _search_alg(space: SearchSpace, plan: list[PlannedTrial], runs: int, budget: float | None):
    from ray.tune.search.optuna import OptunaSearch

    metrics = [o.metric for o in space.objective_list]
    modes = [o.mode for o in space.objective_list]
    if space.search == "grid":
        alg = PlanSearcher([p.trial.as_config() for p in plan][:runs])
    else:
        import optuna

        sampler = {
            "tpe": lambda: optuna.samplers.TPESampler(seed=space.seed),
            "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=space.seed),
            "random": lambda: optuna.samplers.RandomSampler(seed=space.seed),
        }[space.sampler]()
        single = len(metrics) == 1
        alg = DistinctSearcher(OptunaSearch(
            metric=metrics[0] if single else metrics, mode=modes[0] if single else modes, sampler=sampler,
            points_to_evaluate=_predicted_front(space, plan, limit=runs),
        ))
    if budget is not None:
        alg = BudgetLimiter(alg, budget, PlannedCost(plan))
    return alg


PREDICTED = {
    "tokens_per_s": lambda p: p.estimate.tokens_per_s,
    "tokens_per_s_per_gpu": lambda p: p.estimate.tokens_per_s / p.trial.num_gpus,
    "tokens_per_usd": lambda p: float(tokens_per_usd(p.estimate.tokens_per_s, p.price_per_hour_usd)),
    "usd_per_btok": lambda p: float(usd_per_btok(p.estimate.tokens_per_s, p.price_per_hour_usd)),
}
"""The objectives the estimate predicts, from a planned trial (NaN without a price)."""


def _predicted_front(space: SearchSpace, plan: list[PlannedTrial], limit: int) -> list[dict]:
    """The configurations the estimate puts on each model's Pareto front of the space's
    objectives, for Optuna to try first (the sweep-cost replay's `tpe+estimate`).  Objectives it
    cannot predict (loss) are left out, tokens/s standing in where none is left; predicted
    out-of-memory configurations are left out."""
    candidates = [p for p in plan if p.estimate and not p.estimate.oom]
    objectives = [(PREDICTED[o.metric], o.mode == "max") for o in space.objective_list if o.metric in PREDICTED]
    values = np.array([[f(p) for f, _ in objectives] for p in candidates], dtype=float).reshape(len(candidates), -1)
    known = ~np.isnan(values).all(axis=0) if len(candidates) else np.zeros(len(objectives), bool)
    objectives, values = [o for o, k in zip(objectives, known) if k], values[:, known]
    if not objectives:
        objectives, values = [(PREDICTED["tokens_per_s"], True)], np.array([[p.estimate.tokens_per_s] for p in candidates])
    front = []
    for model in dict.fromkeys(p.trial.model for p in candidates):
        rows = [i for i, p in enumerate(candidates) if p.trial.model == model]
        mask = pareto_mask(values[rows], [up for _, up in objectives])
        chosen = sorted((candidates[i] for i, m in zip(rows, mask) if m), key=lambda p: -p.estimate.tokens_per_s)
        front += [p.trial.as_config() for p in chosen]
    return front[:limit]


def _summary(sweep_dir: str, space: SearchSpace) -> str:
    table = read_table(join(sweep_dir, "results.parquet")).to_pylist()
    lines = [f"results: {join(sweep_dir, 'results.parquet')} ({len(table)} trials)"]
    ok = [r for r in table if r["status"] == "ok"]
    for o in space.objective_list:
        scored = [r for r in ok if r.get(o.metric) is not None]
        scored.sort(key=lambda r: r[o.metric], reverse=o.mode == "max")
        lines.append(f"best by {o}:")
        for r in scored[:3]:
            lines.append(
                f"  {r[o.metric]:>14,.{0 if abs(r[o.metric]) >= 100 else 4}f}  {r['model']} batch {r['per_device_batch']} x {r['num_gpus']} "
                f"{r['gpu_type']} {r['attention']} {r['strategy']}{' compiled' if r['compile'] else ''}"
            )
        if not scored:
            lines.append("  (no successful trial measured it)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m slmray.tune", description="Sweep a search space: one Ray Train run per trial, one row per trial.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("space", help="search-space file, e.g. search_spaces/smoke.py")
    p.add_argument("--storage", default=DEFAULT_STORAGE, help="local directory or s3://bucket/prefix for the sweep")
    p.add_argument("--name", default=None, help="sweep name (default: the space's name and the time)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted sweep --name")
    p.add_argument("--dry-run", action="store_true", help="print the plan and its estimated cost; start nothing")
    p.add_argument("--max-trials", type=int, default=None, help="run at most this many trials")
    p.add_argument("--budget-usd", type=float, default=None, help="launch no trial once the estimate would pass this")
    p.add_argument("--no-prune", action="store_true", help="run trials predicted to run out of memory")
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--cluster-config", default=None, help="cluster YAML whose node types bound the capacity")
    p.add_argument("--prices", default=None, help=f"price profile: {', '.join(profiles())} (default: the space's)")
    p.add_argument("--price-file", default=None, help="CSV or JSON of extra or replacing prices")
    p.add_argument("--price", action="append", default=[], metavar="GPU=USD", help="USD per GPU-hour, e.g. H100-80GB=3.1")
    p.add_argument("--verbose", action="store_true", help="show the trials' own logs (Ray workers' output)")
    return p


def _capacity(args: argparse.Namespace, space: SearchSpace) -> Capacity:
    """What the plan is checked against, without starting anything."""
    if args.cluster_config:
        return capacity_from_yaml(args.cluster_config, space.device)
    if args.address or os.environ.get("RAY_ADDRESS"):
        return None  # known once connected
    local = local_capacity(space.device)
    if args.dry_run and space.gpu_type and not local.use_gpu:
        # planning a cloud sweep from a laptop: assume the GPUs the space asks for
        return Capacity(
            use_gpu=True, gpus={g: max(space.num_gpus) for g in space.gpu_type},
            gpus_per_node={g: 8 for g in space.gpu_type}, cpus=local.cpus,
            where="the GPUs the space names (capacity not checked: give --cluster-config)",
        )
    return local


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    warnings.formatwarning = _one_line_warning  # a missing price is news, not a stack location
    try:
        space = load_space(args.space)
        prices = PriceBook.load(args.prices or space.prices, args.price_file, parse_price_overrides(args.price))
        if args.max_trials is not None and args.max_trials < 1:
            raise ConfigError(f"--max-trials: {args.max_trials} is not a positive integer")
        if args.budget_usd is not None and args.budget_usd <= 0:
            raise ConfigError(f"--budget-usd: {args.budget_usd} is not a positive amount")
        if args.resume and not args.name:
            raise ConfigError("--resume: needs --name, the sweep to continue")
        name = args.name or f"{Path(args.space).stem}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
        storage = args.storage if args.storage.startswith("s3://") else str(Path(args.storage).expanduser().absolute())
        sweep_dir = join(storage, name)
        capacity = _capacity(args, space)
        if capacity is not None:
            _check(space, capacity, args.space)
        if args.dry_run:
            plan = make_plan(space, capacity, prices, prune=not args.no_prune)
            runs = _runs(space, plan, args.max_trials)
            print(f"{args.space}: {len(plan)} configurations on {capacity.where}; sweep {name} -> {sweep_dir}")
            print(format_plan(plan, space, runs, args.budget_usd))
            return 0
        if exists(join(sweep_dir, "tuner.pkl")) and not args.resume:
            raise ConfigError(f"--name: a sweep {name} already exists in {storage}; add --resume to continue it")
        if args.resume and not exists(join(sweep_dir, "tuner.pkl")):
            raise ConfigError(f"--name: there is no sweep {name} in {storage} to resume")
    except (SpaceError, ConfigError, PriceError, StorageError, ClusterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return _run(args, space, prices, name, storage, sweep_dir, capacity)


def _check(space: SearchSpace, capacity: Capacity, path: str) -> None:
    try:
        capacity.check(space)
    except ConfigError as exc:
        raise SpaceError(f"{path}: {exc}") from None


def _runs(space: SearchSpace, plan: list[PlannedTrial], max_trials: int | None) -> int:
    runs = len(plan) if space.search == "grid" else space.default_num_samples()
    return min(runs, max_trials) if max_trials else runs


def _run(args, space: SearchSpace, prices: PriceBook, name: str, storage: str, sweep_dir: str, capacity) -> int:
    import ray

    started_here = _connect(args.address, capacity or local_capacity(space.device), args.verbose)
    try:
        if capacity is None:
            capacity = ray_capacity(space.device, args.cluster_config)
            try:
                _check(space, capacity, args.space)
            except SpaceError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        plan = make_plan(space, capacity, prices, prune=not args.no_prune)
        runs = _runs(space, plan, args.max_trials)
        concurrency = _concurrency(space, capacity)
        settings = SweepSettings(
            space=space, sweep_id=name, sweep_dir=sweep_dir, capacity=capacity, prices=prices, prune=not args.no_prune,
        )
        resources = dict(DRIVER_RESOURCES)
        if ray.cluster_resources().get(HEAD_RESOURCE):
            resources[HEAD_RESOURCE] = 0.01
        trainable = tune.with_resources(tune.with_parameters(run_trial, sweep=settings), resources)
        print(f"sweep {name}: {runs} trials on {capacity.where}, up to {concurrency} at once -> {sweep_dir}", flush=True)
        if args.resume:
            tuner = tune.Tuner.restore(sweep_dir, trainable=trainable, resume_unfinished=True, resume_errored=False)
        else:
            param_space = {}
            if space.search == "optuna":
                param_space = {k: tune.choice(v) for k, v in space.choices().items()}
            tuner = tune.Tuner(
                trainable,
                param_space=param_space,
                tune_config=tune.TuneConfig(
                    search_alg=_search_alg(space, plan, runs, args.budget_usd),
                    num_samples=runs, max_concurrent_trials=concurrency,
                    # a trial's driver is a light actor with the same resources each time: reusing it
                    # saves its process start and imports, about 7 s between trials on 2 CPU cores
                    reuse_actors=True,
                ),
                run_config=tune.RunConfig(
                    name=name, storage_path=storage, verbose=0,
                    callbacks=[SweepRecorder(sweep_dir, runs, concurrency)],
                ),
            )
        tuner.fit()
        print(_summary(sweep_dir, space), flush=True)
        return 0
    finally:
        if started_here:
            ray.shutdown()


if __name__ == "__main__":
    # Run from the imported module, not from `__main__`: Tune pickles the callbacks into the
    # sweep's state, and classes of `__main__` are pickled by value, code and globals, so a
    # sweep begun before a code change could not be resumed after it.
    from slmray.tune import main as imported_main

    sys.exit(imported_main())
