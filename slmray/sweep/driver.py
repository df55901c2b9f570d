"""The sweep driver: Ray Tune over the plan, one trial per configuration, one row per trial.

`slmray.tune` parses and checks everything, takes the sweep's lock, then calls `run_sweep`.
Tune sees one report per trial, the trial's row (`slmray.sweep.trial`), so every numeric column of
the row can be an objective of any searcher.  The console carries slmray's own lines only
(progress, the summary, one warning where one is due) unless `verbose`: Ray's banners, its
experiment table and its restore hint are kept off it.
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import json
import logging
import os
import shlex
import signal
import threading
import time
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from ray import tune

from slmray import private_apis
from slmray.catalog.prices import PriceBook
from slmray.cluster.files import HEAD_RESOURCE
from slmray.core.costs import tokens_per_usd
from slmray.core.pareto import pareto_mask
from slmray.core.row import make_row
from slmray.errors import ConfigError, first_line
from slmray.predict.calibration import Correction
from slmray.results.storage import exists, filesystem, join, list_files, write_atomically
from slmray.results.table import COLUMNS, RESULTS_FILE, ResultsError, read_table, to_table, write_table
from slmray.sweep.capacity import Capacity, local_capacity, ray_capacity
from slmray.sweep.ending import RUN_VARIABLE, SignalThread, Watcher, end_run_processes, new_run_id, stopped_lines
from slmray.sweep.failure import error_line, infrastructure_errors, infrastructure_in
from slmray.sweep.lock import lock_lost
from slmray.sweep.plan import PlannedTrial, make_plan, plan_trial
from slmray.sweep.searchers import SAMPLERS, BudgetLimiter, DistinctSearcher, PlanSearcher, Recalibrating
from slmray.sweep.space import SearchSpace, SpaceError, Trial
from slmray.sweep.trial import RECORDED_AS, SweepSettings, row_uri, run_trial
from slmray.sweep.warm import train_environment
from slmray.sweep.warm_scheduler import INFRASTRUCTURE_RETRIES
from slmray.train.config import config_label

DRIVER_RESOURCES = {"CPU": 0.01}
"""A trial's own process only waits on its Train run (Ray refuses a zero-resource trial)."""
INTERRUPTED = 130
"""The exit status of a sweep stopped by Ctrl-C, as a shell reports a process ended by SIGINT."""
HEARTBEAT_S = 60.0
"""The longest the console stays silent while a trial runs."""
INFRASTRUCTURE_EXIT = 75
"""The exit status of a sweep that left trials unrecorded for the cluster's sake (sysexits'
EX_TEMPFAIL: try again, here with `--resume`)."""
SECRET_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


@dataclass(frozen=True)
class SweepRequest:
    """A checked sweep, ready to run: what `python -m slmray.tune` resolved from its arguments."""

    space: SearchSpace
    space_path: str
    prices: PriceBook
    name: str
    storage: str
    sweep_dir: str
    capacity: Capacity | None
    """None when joining a running cluster: read from it once connected."""
    resume: bool
    prune: bool
    max_trials: int | None
    budget_usd: float | None
    address: str | None
    cluster_config: str | None
    verbose: bool
    isolate_trials: bool
    """Each trial on a worker group of its own (today's measurements), not on a warm one."""
    command: list[str]
    """The command line, to print how to continue an interrupted sweep."""
    trial_timeout_s: float | None = None
    """Each trial's time limit (`TrainConfig.time_limit_s`); None: none."""


class PlannedCost:
    """Estimated dollars of a suggested configuration, for the budget: planned with the tokens/s
    correction the configuration carries (`Recalibrating`), so the estimate improves as trials
    finish (picklable)."""

    def __init__(self, settings: SweepSettings):
        self.settings = settings

    def __call__(self, config: dict) -> float:
        s = self.settings
        correction = Correction(**config["correction"]) if config.get("correction") else None
        planned = plan_trial(s.space.resolve(config, s.capacity.device), s.capacity, s.prices, s.prune, correction,
                             s.pool is None)
        return planned.cost_usd or 0.0


class GpuTypeOf:
    """The GPU type a configuration runs on, as planned (picklable, for `Recalibrating`)."""

    def __init__(self, capacity: Capacity):
        self.capacity = capacity

    def __call__(self, config: dict) -> str:
        return self.capacity.device_type(config.get("gpu_type"))


class SweepRecorder(tune.Callback):
    """Driver side: writes each finished trial's row at once, and prints progress.

    Rows are keyed by trial id, and reloaded from storage when a sweep resumes, so a trial
    is never lost or counted twice.  One line per event: a trial starts, a trial ends; and while
    trials run, a line each `HEARTBEAT_S` without one, so a long trial is seen to be alive.
    """

    def __init__(self, sweep_id: str, sweep_dir: str, planned: int, concurrency: int, gpu_type_of: GpuTypeOf,
                 trial_timeout_s: float | None = None):
        self.sweep_id, self.sweep_dir, self.planned, self.concurrency = sweep_id, sweep_dir, planned, concurrency
        self.gpu_type_of, self.trial_timeout_s = gpu_type_of, trial_timeout_s
        self.rows: dict[str, dict] = {}
        self.running: dict[str, tuple[str, float]] = {}
        """Trial id -> (its configuration's label, when it started, time.monotonic())."""
        self.last_line = time.monotonic()
        self.unrecorded: set[str] = set()
        """Trials that ended in an infrastructure failure: no row, run again by `--resume`."""

    def setup(self, **info) -> None:
        self.rows, self.running, self.unrecorded = recorded_rows(self.sweep_dir), {}, set()
        if self.rows:
            print(f"resuming: {len(self.rows)} trials already recorded", flush=True)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.running[trial.trial_id] = (config_label(trial.config), time.monotonic())
        self._say(f"[{_now()}] started {config_label(trial.config)} ({len(self.running)} running)")

    def on_step_end(self, iteration, trials, **info) -> None:
        """Tune's loop turns every fraction of a second: a heartbeat once no line came for `HEARTBEAT_S`."""
        now = time.monotonic()
        if not self.running or now - self.last_line < HEARTBEAT_S:
            return
        label, started = min(self.running.values(), key=lambda v: v[1])
        limit = f" of its {self.trial_timeout_s / 60:g} min limit" if self.trial_timeout_s else " (no time limit)"
        others = f" and {len(self.running) - 1} more" if len(self.running) > 1 else ""
        self._say(f"[{_now()}] still running: {label} for {(now - started) / 60:.1f} min{limit}{others}")

    def _say(self, line: str) -> None:
        print(line, flush=True)
        self.last_line = time.monotonic()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.running.pop(trial.trial_id, None)
        result = trial.last_result or {}
        if "status" not in result:  # the trial function ended without reporting its row
            return self.on_trial_error(iteration, trials, trial)
        if result.get(RECORDED_AS) in self.rows:  # its configuration's row, recorded before: not twice
            return self._progress()
        self._record({k: v for k, v in result.items() if k in COLUMNS})

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        error = _trial_error(trial)
        if error is not None and storage_full(error):  # the storage's failure: the sweep stops, `--resume` runs it
            raise OSError(errno.ENOSPC, f"no space left on {self.sweep_dir}")
        dead = infrastructure_in(error)
        if dead is not None:  # the cluster's failure, not the configuration's: no row, `--resume` runs it
            self.running.pop(trial.trial_id, None)
            self.unrecorded.add(trial.trial_id)
            print(f"[{_now()}] not recorded: {config_label(trial.config)} (infrastructure failure after "
                  f"{INFRASTRUCTURE_RETRIES} retries: {error_line(dead)[:200]}); --resume runs it again", flush=True)
            return
        config = Trial.from_config(trial.config)
        error = "the trial process failed" + (f"; see {trial.error_file}" if trial.error_file else "")
        self._record(make_row(
            {**config.as_config(), "requested_gpu_type": config.gpu_type, "gpu_type": self.gpu_type_of(trial.config)},
            {"sweep_id": self.sweep_id, "trial_id": trial.trial_id, "status": "failed", "error": error},
        ))

    def on_experiment_end(self, trials, **info) -> None:
        self._write_table()

    def _record(self, row: dict) -> None:
        self.running.pop(row["trial_id"], None)
        if lock_lost(self.sweep_dir):
            return
        table = to_table([row])
        write_table(table, row_uri(self.sweep_dir, row["trial_id"]))
        self.rows[row["trial_id"]] = table.to_pylist()[0]
        self._write_table()
        self._progress()

    def _write_table(self) -> None:
        if lock_lost(self.sweep_dir):  # another driver holds the sweep now: its table, not ours
            return
        write_table(to_table(self.rows.values()), join(self.sweep_dir, RESULTS_FILE))

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
        self._say(
            f"[{_now()}] {len(self.rows)}/{self.planned} done: {counts['ok']} ok, "
            f"{counts['oom']} oom, {counts['failed']} failed, {counts['pruned']} pruned | {len(self.running)} running "
            f"| spent ${spent:,.2f} | {eta}"
        )


def recorded_rows(sweep_dir: str) -> dict[str, dict]:
    """The sweep's rows by trial id, as its row files hold them.  Rows are written atomically, so a
    damaged row file is a disk's fault or a hand's: it is restored from the whole table where that
    holds its trial; else a SweepError names the command that moves it aside (its row is then lost)."""
    rows, damaged = {}, []
    for uri in list_files(join(sweep_dir, "rows"), ".parquet"):
        try:
            rows.update((row["trial_id"], row) for row in read_table(uri).to_pylist())
        except ResultsError as exc:
            damaged.append((uri, exc))
    if not damaged:
        return rows
    try:
        whole = {row["trial_id"]: row for row in read_table(join(sweep_dir, RESULTS_FILE)).to_pylist()}
    except ResultsError:
        whole = {}
    for uri, exc in damaged:
        trial_id = uri.rsplit("/", 1)[-1].removesuffix(".parquet")
        if trial_id not in whole:
            aside = ["aws", "s3", "mv"] if uri.startswith("s3://") else ["mv"]
            reason = str(exc).removeprefix(f"results: {uri} ")[:160]
            raise SweepError(f"{uri}: a damaged row file ({reason}), and {RESULTS_FILE} "
                             f"does not hold trial {trial_id}; to resume without its row, move it aside: "
                             f"{shlex.join([*aside, uri, uri + '.damaged'])}", 2)
        write_table(to_table([whole[trial_id]]), uri)
        rows[trial_id] = whole[trial_id]
        print(f"warning: {uri} was damaged; restored from {RESULTS_FILE}", flush=True)
    return rows


def _trial_error(trial) -> BaseException | None:
    """The error a trial ended with, as Tune pickled it beside the trial (before `on_trial_error`)."""
    from ray import cloudpickle

    path = trial.pickled_error_file
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path, "rb") as f:
            return cloudpickle.load(f)
    except Exception:  # an error whose class cannot be loaded here: read as the configuration's
        return None


def _now() -> str:
    return f"{datetime.datetime.now():%H:%M:%S}"


def _quiet_ray(verbose: bool) -> None:
    """Keep Ray's banners, experiment table, TensorBoard hint and restore hint off the console."""
    # Tune's per-trial CSV/JSON/TensorBoard loggers: the row is the record, and TensorBoard's
    # writer prints a line for each NaN objective a failed trial reports
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    if verbose:
        return
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the legacy reporter, silent at verbose=0
    # "A worker died", "Raylet is terminated" with 20 lines of its log: the sweep says what it means for
    # the sweep in one line; Ray's processes' own logs keep the messages
    private_apis.keep_ray_errors_off_the_console()
    for name in ("ray", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # "Trials did not complete" after an interrupt: slmray says what is left itself; "Trial task
    # failed" with a traceback: the trial runs again (infrastructure) or its row says why
    logging.getLogger("ray.tune.tune").setLevel(logging.CRITICAL)
    logging.getLogger("ray.tune.execution.tune_controller").setLevel(logging.CRITICAL)
    # "Saving experiment state ... failed" with a traceback (a full disk): the sweep says it in one line
    logging.getLogger("ray.tune.execution.experiment_state").setLevel(logging.CRITICAL)


def _keep_credentials_out_of_ray() -> None:
    """Ray Tune copies AWS keys from the driver's environment into every trial's runtime
    environment (`private_apis.withhold_from_trials`), and Ray's runtime-env agent writes that
    environment to its log.  Keys stay out of it: a local Ray inherits this process's environment
    anyway, and a cluster's nodes have their instance role."""
    present = [v for v in SECRET_VARIABLES if os.environ.get(v)]
    private_apis.withhold_from_trials(SECRET_VARIABLES)
    if present:
        print(
            f"warning: {', '.join(present)} set in the environment: kept out of what Ray passes to trials (Ray logs it); "
            "trials on other nodes use their own credentials (instance role, AWS_PROFILE)",
            flush=True,
        )


class SweepError(RuntimeError):
    """The sweep could not start (exit 2), or stopped on an unexpected error (exit 1); one line,
    and what to do."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def _connect(address: str | None, capacity_hint: Capacity, space: SearchSpace, environment: dict[str, str],
             verbose: bool) -> bool:
    """Join the given cluster, or start a local Ray; True when this process started it.  Every
    process of the sweep gets `environment`: as the job's runtime environment on a cluster, and
    from this process's own when it starts Ray (its idle workers then have it too)."""
    import ray

    level = logging.INFO if verbose else logging.ERROR
    if address or os.environ.get("RAY_ADDRESS"):
        where = address or os.environ["RAY_ADDRESS"]
        try:
            ray.init(address=address, runtime_env={"env_vars": environment} if environment else None,
                     log_to_driver=verbose, logging_level=level)
        except Exception as exc:  # ConnectionError, or Ray's own on a wrong address
            raise SweepError(f"--address: cannot join the Ray cluster at {where} ({first_line(exc)[:300]})", 2) from None
        return False
    cpus = capacity_hint.cpus
    if not capacity_hint.use_gpu:
        # CPU workers take whole cores and CPU trials run one at a time: Ray counts enough cores for
        # one idle group of every shape to stay warm beside the others, and a sliver for the trials
        cpus = max(cpus, sum(set(space.num_gpus))) + 1
    os.environ.update(environment)
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=verbose, logging_level=level)
    return True


def max_concurrent_trials(space: SearchSpace, capacity: Capacity) -> int:
    """Trials run at once: the space's max_concurrent, else as many of its smallest as the GPUs hold (CPU: one)."""
    if space.max_concurrent:
        return space.max_concurrent
    if not capacity.use_gpu:
        return 1  # CPU trials share the same cores: one at a time keeps their timings apart
    return max(1, capacity.max_workers(None) // min(space.num_gpus))


def search_alg(settings: SweepSettings, plan: list[PlannedTrial], runs: int, budget: float | None,
               recorded: Iterable[dict] = (), grid: list[dict] | None = None):
    """The searcher of the space: the plan in order (grid) or Optuna, each configuration once,
    each with the tokens/s correction refitted so far, inside the budget.  `recorded`, the rows
    of a resumed grid sweep: their configurations are not suggested again, and the correction and
    the dollars spent start from them; `grid`, the configurations it planned when it started
    (default: the plan's first `runs`)."""
    space = settings.space
    recorded = list(recorded)
    from ray.tune.search.optuna import OptunaSearch

    metrics = [o.column for o in space.objective_list]
    modes = [o.mode for o in space.objective_list]
    if space.search == "grid":
        alg = PlanSearcher(unrecorded([p.trial.as_config() for p in plan[:runs]] if grid is None else grid, recorded))
    else:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # its INFO lines are not slmray's
        sampler = SAMPLERS[space.sampler](seed=space.seed)
        single = len(metrics) == 1
        alg = DistinctSearcher(OptunaSearch(
            metric=metrics[0] if single else metrics, mode=modes[0] if single else modes, sampler=sampler,
            points_to_evaluate=_predicted_front(space, plan, limit=runs),
        ))
    alg = Recalibrating(alg, GpuTypeOf(settings.capacity))
    for row in recorded:
        alg.recalibrator.observe(row)
    if budget is not None:
        alg = BudgetLimiter(alg, budget, PlannedCost(settings),
                            spent_usd=sum(row.get("cost_usd") or 0.0 for row in recorded))
    return alg


def unrecorded(configs: list[dict], recorded: Iterable[dict]) -> list[dict]:
    """The configurations none of the rows `recorded` measured, in order."""
    done = {Trial.from_row(row) for row in recorded}
    return [c for c in configs if Trial.from_config(c) not in done]


GRID_FILE = "grid.json"
"""The configurations a grid sweep planned when it started, in `<storage>/<name>/`: with the rows,
what a resume runs (whatever the space file or Tune's state say meanwhile)."""


def store_grid(sweep_dir: str, configs: list[dict]) -> None:
    body = json.dumps(configs, indent=1).encode()

    def write(fs, path: str) -> None:
        with fs.open_output_stream(path) as out:
            out.write(body)

    write_atomically(join(sweep_dir, GRID_FILE), write)


def stored_grid(sweep_dir: str) -> list[dict] | None:
    """The grid stored with the sweep; None for a sweep begun before it was stored, or one whose
    file a full disk cut short (the current plan stands in)."""
    uri = join(sweep_dir, GRID_FILE)
    if not exists(uri):
        return None
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as f:
        try:
            return json.loads(f.read().decode())
        except ValueError:
            return None


PREDICTED = {
    "tokens_per_s": lambda p: p.estimate.tokens_per_s,
    "tokens_per_s_per_gpu": lambda p: p.estimate.tokens_per_s / p.trial.num_gpus,
    "tokens_per_usd": lambda p: float(tokens_per_usd(p.estimate.tokens_per_s, p.price_per_hour_usd)),
}
"""The objectives the estimate predicts, from a planned trial (NaN without a price)."""


def _predicted_front(space: SearchSpace, plan: list[PlannedTrial], limit: int) -> list[dict]:
    """The configurations the estimate puts on each model's Pareto front of the space's
    objectives, for Optuna to try first (the sweep-cost replay's `tpe+estimate`).  Objectives it
    cannot predict (loss) are left out, tokens/s standing in where none is left; predicted
    out-of-memory configurations are left out."""
    candidates = [p for p in plan if p.estimate and not p.estimate.oom]
    objectives = [(PREDICTED[o.column], o.maximize) for o in space.objective_list if o.column in PREDICTED]
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


def _format_value(value: float) -> str:
    return f"{value:>14,.0f}" if abs(value) >= 100 else f"{value:>14,.4f}"


def summary(sweep_dir: str, space: SearchSpace) -> str:
    """The table's path, the best configurations by each objective, and how to analyse it."""
    uri = join(sweep_dir, RESULTS_FILE)
    table = read_table(uri).to_pylist()
    lines = [f"results: {uri} ({len(table)} trials)"]
    ok = [r for r in table if r["status"] == "ok"]
    for o in space.objective_list:
        scored = [r for r in ok if r.get(o.column) is not None]
        scored.sort(key=lambda r: r[o.column], reverse=o.maximize)
        lines.append(f"best by {o}:")
        lines += [f"  {_format_value(r[o.column])}  {config_label(r)}" for r in scored[:3]]
        if not scored:
            lines.append("  (no successful trial measured it)")
    report = f"{sweep_dir.rstrip('/').rsplit('/', 1)[-1]}-report"
    lines.append(f"analyse it: {shlex.join(['python', '-m', 'slmray.analysis', uri, '--out', report])}")  # a path with spaces
    return "\n".join(lines)


class _Interrupt:
    """Ctrl-C stops the sweep as Tune does (its state saved, running trials stopped) and is
    remembered, so the driver can say what is left.
    Tune installs its own SIGINT handler unless told not to, but it always listens on SIGUSR1
    with the same graceful stop (`private_apis.stop_tune_gracefully`): the first signal is passed
    on, a second one ends the driver at once."""

    SIGNALS = (signal.SIGINT,)

    def __init__(self):
        self.seen = False

    def __enter__(self) -> _Interrupt:
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        self.previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def _handle(self, signum, frame) -> None:
        if self.seen:
            raise KeyboardInterrupt
        self.seen = True
        print(f"\n[{_now()}] interrupted: stopping the running trials and saving the sweep's state "
              "(Ctrl-C again to quit at once)", flush=True)
        private_apis.stop_tune_gracefully()

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def continue_command(request: SweepRequest) -> str:
    """The command that resumes this sweep: the user's own, with `--name NAME --resume`."""
    args, skip = [], False
    for arg in request.command:
        if skip:
            skip = False
        elif arg in ("--name", "--resume"):
            skip = arg == "--name"
        elif not arg.startswith("--name="):
            args.append(arg)
    return shlex.join(["python", "-m", "slmray.tune", *args, "--name", request.name, "--resume"])


class _Terminate:
    """SIGTERM (what `timeout`, systemd, a container stop and batch schedulers send, often to the
    whole process group) and SIGHUP (the terminal gone) end the run at once: the group's other
    processes, Ray's own among them, got the same signal, so no graceful stop through Ray is
    left.  The driver prints what its rows hold and how to continue, ends every process of the
    run (`slmray.sweep.ending`) and exits 128 + the signal, as a shell reports it.  The rows are
    the sweep's record: `--resume` runs every configuration they lack.  The handler runs on a
    thread the moment the signal arrives (`SignalThread`), ahead of Ray's own reaction to its
    raylet's end, and in the main thread as Python delivers it; whichever comes first ends the run.
    An error that leaves the run meanwhile (Ray's objects lost with the raylet the signal ended)
    is the signal's doing: leaving, the run still ends as on the signal (CI once saw exit 1)."""

    SIGNALS = (signal.SIGTERM, signal.SIGHUP)

    def __init__(self, request: SweepRequest, run_id: str, watcher: Watcher):
        self.request, self.run_id, self.watcher = request, run_id, watcher
        self.runs: int | None = None
        self._ending = threading.Lock()

    def __enter__(self) -> _Terminate:
        self.previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        self.thread = SignalThread(self.SIGNALS, self.handle)
        self.thread.install()
        return self

    def reinstall(self) -> None:
        """Take the signals back once Ray has started: `ray.init` sets a SIGTERM handler that exits
        15, the head node one that waits to drain it and exits 1."""
        for sig in self.SIGNALS:
            signal.signal(sig, self._handle)
        self.thread.install()

    def handle(self, signum: int) -> None:
        """End the run as on `signum` (it arrived while another handler had it)."""
        self._handle(signum, None)

    def planned(self, runs: int) -> None:
        self.runs = runs
        self.watcher.describe(self.request.sweep_dir, runs, continue_command(self.request))

    def _handle(self, signum, frame) -> None:
        self._ending.acquire()  # held until os._exit: a second caller (thread or main) waits for the end
        name = signal.Signals(signum).name
        try:
            try:
                lines = stopped_lines(self.request.sweep_dir, self.runs, f"stopped by {name}",
                                      continue_command(self.request))
            except Exception as exc:  # the storage is what failed: the command still continues the sweep
                lines = f"stopped by {name} ({first_line(exc)[:200]})\ncontinue with: {continue_command(self.request)}"
            print(f"\n{lines}", flush=True)
        except Exception:  # SIGHUP: the terminal may be gone with its output
            pass
        finally:
            self.watcher.done()
            end_run_processes(self.run_id)
            os._exit(128 + signum)

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None and (signum := self.thread.arrived()) is not None:
            self._handle(signum, None)  # the error is the signal's doing (Ray lost with its raylet): it ends the run
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.thread.close()


def run_sweep(request: SweepRequest) -> int:
    """Run (or resume) the sweep on Ray; the exit status: 0, 130 when interrupted, 75 when trials
    were left unrecorded for the cluster's sake.  Raises SpaceError for a space the cluster cannot
    hold, SweepError when Ray cannot start or fails.  SIGTERM and SIGHUP end it at once
    (`_Terminate`); should Ray end this process (its raylet killed), a watcher says what is left."""
    run_id = new_run_id()
    os.environ[RUN_VARIABLE] = run_id  # every process of a local Ray started here inherits it
    watcher = Watcher(run_id)
    watcher.describe(request.sweep_dir, None, continue_command(request))
    try:
        with _Terminate(request, run_id, watcher) as terminate:
            return _run(request, terminate)
    finally:
        os.environ.pop(RUN_VARIABLE, None)
        watcher.done()  # this process says how it ended; the watcher ends what Ray left


def _run(request: SweepRequest, terminate: _Terminate) -> int:
    import ray

    _quiet_ray(request.verbose)
    space = request.space
    environment = {} if request.isolate_trials else train_environment()
    try:
        started_here = _connect(request.address, request.capacity or local_capacity(space.device), space, environment,
                                request.verbose)
    except SystemExit:  # SIGTERM while Ray starts: `ray.init` and its head node exit on it by handlers of their own
        terminate.handle(signal.SIGTERM)
    terminate.reinstall()
    try:
        capacity = _capacity(request)
        plan = make_plan(space, capacity, request.prices, prune=request.prune, isolate=request.isolate_trials)
        runs = planned_runs(space, plan, request.max_trials)
        grid = None
        if space.search == "grid":  # resumed: the sweep that was started, its stored grid
            grid = (stored_grid(request.sweep_dir) if request.resume else None) or [p.trial.as_config() for p in plan[:runs]]
            runs = len(grid)
        terminate.planned(runs)
        concurrency = max_concurrent_trials(space, capacity)
        settings, resources = _settings(request, capacity, plan, runs, concurrency)
        recorder = SweepRecorder(request.name, request.sweep_dir, runs, concurrency, GpuTypeOf(settings.capacity),
                                 request.trial_timeout_s)
        tuner = _tuner(request, settings, plan, grid, runs, concurrency, resources, recorder)
        interrupted = _fit(request, tuner, settings)
        return _finish(request, runs, interrupted, recorder)
    finally:
        if started_here:
            ray.shutdown()


def _capacity(request: SweepRequest) -> Capacity:
    """What the sweep runs on: as resolved before Ray started, or, joining a cluster, read from
    it now and the space checked against it."""
    if request.capacity is not None:
        return request.capacity
    capacity = ray_capacity(request.space.device, request.cluster_config)
    try:
        capacity.check(request.space)
    except ConfigError as exc:
        raise SpaceError(f"{request.space_path}: {exc}") from None
    return capacity


def _settings(request: SweepRequest, capacity: Capacity, plan: list[PlannedTrial], runs: int,
              concurrency: int) -> tuple[SweepSettings, dict[str, float]]:
    """What every trial shares, with the warm pool started (its first groups beside Tune's set-up),
    and the resources of a trial's own process (on the head node where the cluster marks it)."""
    import ray

    recorded = {Trial.from_row(row): row for row in recorded_rows(request.sweep_dir).values()} if request.resume else {}
    settings = SweepSettings(
        space=request.space, sweep_id=request.name, sweep_dir=request.sweep_dir, capacity=capacity,
        prices=request.prices, prune=request.prune, recorded=recorded, trial_timeout_s=request.trial_timeout_s,
    )
    on_head = {HEAD_RESOURCE: 0.01} if ray.cluster_resources().get(HEAD_RESOURCE) else {}
    if not request.isolate_trials:
        first = None if request.resume else _first_configuration(request.space, plan, runs)
        settings = dataclasses.replace(settings, pool=_warm_pool(settings, plan, runs, concurrency, first, on_head))
    return settings, {**DRIVER_RESOURCES, **on_head}


def _tuner(request: SweepRequest, settings: SweepSettings, plan: list[PlannedTrial], grid: list[dict] | None,
           runs: int, concurrency: int, resources: dict[str, float], recorder: SweepRecorder) -> tune.Tuner:
    """Tune over the trial function: new over the plan (a grid: `grid`, its configurations, stored
    here when new), or, resumed, over what the sweep's rows lack.  The rows are the record, not Tune's state (a full disk cuts its state file short, and
    Tune then runs recorded trials again and forgets others): a grid resumes as a new Tune run
    over the configurations without a row.  Optuna's study lives in Tune's state: an Optuna
    sweep is restored from it, its errored trials run again (a trial errors only for the
    cluster's sake, or without a row), and a trial whose configuration has a row re-reports it."""
    _keep_credentials_out_of_ray()
    trainable = tune.with_resources(tune.with_parameters(run_trial, sweep=settings), resources)
    print(f"sweep {request.name}: {runs} trials on {settings.capacity.where}, up to {concurrency} at once -> "
          f"{request.sweep_dir}", flush=True)
    space = settings.space
    recorded = list(settings.recorded.values())
    if grid is not None and not request.resume:
        store_grid(request.sweep_dir, grid)
    if request.resume and space.search != "grid":
        tuner = tune.Tuner.restore(request.sweep_dir, trainable=trainable, resume_unfinished=True, resume_errored=True)
        _follow_storage(tuner, recorder)
        return tuner
    param_space = {}
    if space.search == "optuna":
        param_space = {k: tune.choice(v) for k, v in space.choices().items()}
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            search_alg=search_alg(settings, plan, runs, request.budget_usd, recorded, grid),
            # a grid: the configurations its rows lack (at least one sample: Tune wants one)
            num_samples=max(len(unrecorded(grid, recorded)), 1) if grid is not None else runs,
            max_concurrent_trials=concurrency,
            # a trial's driver is a light actor with the same resources each time: reusing it
            # saves its process start and imports, about 7 s between trials on 2 CPU cores
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=request.name, storage_path=request.storage, verbose=0,
            callbacks=[recorder],
            # a trial whose process or node died runs again on a fresh actor; its own failures are rows
            failure_config=tune.FailureConfig(max_failures=INFRASTRUCTURE_RETRIES),
        ),
    )


def _follow_storage(tuner: tune.Tuner, recorder: SweepRecorder) -> None:
    """A restored sweep records where it is now (--storage/--name), not where it was started.
    Tune takes the storage and the trials' folders from the path it restores from, and the
    trainable is given anew, but it unpickles the callbacks with the rest of the run config:
    the recorder there still holds the directory of the sweep's first run (a copied sweep would
    write into the original, a moved one recreate it).  It is replaced by this run's."""
    run_config = private_apis.restored_run_config(tuner)
    others = [c for c in run_config.callbacks or [] if not isinstance(c, SweepRecorder)]
    run_config.callbacks = [*others, recorder]


def _fit(request: SweepRequest, tuner: tune.Tuner, settings: SweepSettings) -> bool:
    """Run the trials; whether Ctrl-C (or SIGTERM) stopped them.  The warm pool closes either way."""
    import ray

    with _Interrupt() as interrupt:
        try:
            tuner.fit()
        except Exception as exc:  # a storage outage, a bug: the state saved so far stays resumable
            if request.verbose:
                raise
            if storage_full(exc):  # the rows written so far are the record: --resume runs what they lack
                raise SweepError(f"{request.sweep_dir}: no space left on the sweep's storage; free some, then "
                                 f"continue with: {continue_command(request)}") from None
            raise SweepError(f"the sweep stopped: {type(exc).__name__}: {first_line(exc)[:300]} (--verbose shows "
                             f"the traceback); continue with: {continue_command(request)}") from None
        finally:
            if settings.pool:  # idle groups end now; a group mid-trial ends after it
                try:
                    ray.get(settings.pool.close.remote())
                except infrastructure_errors():  # the pool died for good: its groups went with it
                    pass
    return interrupt.seen


def storage_full(exc: BaseException) -> bool:
    """Whether a write failed for want of space (ENOSPC, or a quota's EDQUOT), anywhere in `exc`'s chain."""
    seen, chain = set(), [exc]
    while chain:
        e = chain.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(e):
            return True
        chain += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    return False


def _finish(request: SweepRequest, runs: int, interrupted: bool, recorder: SweepRecorder) -> int:
    """The closing lines: what is left and how to continue, or the summary; the exit status."""
    if interrupted:
        print(stopped_lines(request.sweep_dir, runs, "interrupted", continue_command(request)), flush=True)
        return INTERRUPTED
    if recorder.unrecorded:
        why = f"{len(recorder.unrecorded)} trials not recorded (infrastructure failures)"
        print(stopped_lines(request.sweep_dir, runs, why, continue_command(request)), flush=True)
        return INFRASTRUCTURE_EXIT
    print(summary(request.sweep_dir, request.space), flush=True)
    return 0


def _first_configuration(space: SearchSpace, plan: list[PlannedTrial], runs: int) -> Trial | None:
    """The configuration the searcher asks for first (`search_alg`): the grid's first point, or the
    first Optuna is given to try; None when Optuna samples it."""
    if not runs:
        return None
    if space.search == "grid":
        return plan[0].trial
    front = _predicted_front(space, plan, limit=1)
    return Trial.from_config(front[0]) if front else None


def _warm_pool(settings: SweepSettings, plan: list[PlannedTrial], runs: int, concurrency: int, first: Trial | None,
               resources: dict[str, float]):
    """The sweep's warm pool over the resource shapes of the plan, each with as many groups as trials
    run at once.  A group of each shape the sweep will run starts now, beside Tune's set-up: the
    first configuration's first, then the others in the plan's order, as many as fit."""
    from slmray.sweep.warm import start_pool

    specs = {}
    for p in plan:
        spec = dataclasses.replace(settings.group_spec(p.trial), max_groups=concurrency)
        specs[spec.key] = spec
    prestart = []
    if runs:  # a grid runs its first `runs` points; Optuna may pick any configuration
        candidates = plan[:runs] if settings.space.search == "grid" else plan
        trials = ([first] if first else []) + [p.trial for p in candidates if not p.pruned]
        prestart = list(dict.fromkeys(settings.group_spec(t).key for t in trials))
    reserve = {name: amount * concurrency for name, amount in DRIVER_RESOURCES.items()}
    return start_pool(specs, prestart, reserve, resources)


def planned_runs(space: SearchSpace, plan: list[PlannedTrial], max_trials: int | None) -> int:
    """Trials the sweep launches: the grid's points or Optuna's samples, cut by --max-trials."""
    runs = len(plan) if space.search == "grid" else space.default_num_samples()
    return min(runs, max_trials) if max_trials else runs
