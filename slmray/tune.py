"""`python -m slmray.tune SPACE.py`: sweep a search space with Ray Tune, one Ray Train run per trial.

    python -m slmray.tune search_spaces/smoke.py                      # local Ray, CPU or GPUs
    python -m slmray.tune search_spaces/full.py --dry-run             # the plan and its cost
    python -m slmray.tune search_spaces/h100.py --storage s3://bucket/sweeps --name h100-a
    python -m slmray.tune search_spaces/h100.py --storage s3://bucket/sweeps --name h100-a --resume

This module is the command line: it parses, checks everything that can be checked before
Ray starts (the space against the capacity, prices, the data source, that the storage can be
written, that no other driver runs the sweep), and hands the sweep to `slmray.sweep.driver`.  Heavy
imports (torch, Ray) wait until the arguments are parsed, so `--help` is instant.
A Ray cluster given by `--address` or RAY_ADDRESS is used; otherwise a local Ray starts.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import re
import signal
import sys
import warnings
from pathlib import Path

from slmray.cli import add_price_arguments, exits_2_on_user_error, parser, price_book, seconds
from slmray.sweep.warm_scheduler import INFRASTRUCTURE_RETRIES

DEFAULT_STORAGE = "~/slmray_results"
DEFAULT_TRIAL_TIMEOUT_S = 1800.0
"""A trial's time limit unless --trial-timeout says otherwise: the paper's largest trials (llama-2b,
compiled, on one GPU) take minutes; one that runs half an hour has stalled."""
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""A sweep name: one path component that a shell, S3 and every file system take as it is."""


def __getattr__(name: str):
    # sweeps begun before the driver moved to slmray.sweep.driver pickled `slmray.tune.SweepRecorder`
    # into their state; resolving it here lets them resume
    if name in ("SweepRecorder", "PlannedCost"):
        from slmray.sweep import driver

        return getattr(driver, name)
    raise AttributeError(name)


def build_parser() -> argparse.ArgumentParser:
    p = parser("python -m slmray.tune", "Sweep a search space: one Ray Train run per trial, one row per trial.")
    p.add_argument("space", help="search-space file, e.g. search_spaces/smoke.py")
    p.add_argument("--storage", default=DEFAULT_STORAGE,
                   help="local directory or s3://bucket/prefix the sweep is written under (default: %(default)s)")
    p.add_argument("--name", default=None, help="sweep name (default: the space's file name and the time)")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted sweep --name: each configuration its recorded rows lack runs, once. "
                        "A trial whose process, worker group, node or Ray died is not charged to its configuration: "
                        f"it runs again on fresh resources (up to {INFRASTRUCTURE_RETRIES} times), then is left "
                        "unrecorded for --resume (exit 75)")
    p.add_argument("--allow-changed-space", action="store_true",
                   help="with --resume: go on although the space file changed since the sweep started (the remaining "
                        "trials run with the new settings); without it such a resume is refused")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan's summary and estimated cost (each trial with --verbose); start nothing")
    p.add_argument("--out", default=None, metavar="PLAN.csv|PLAN.parquet",
                   help="with --dry-run: write every planned trial, its configuration, prediction, minutes, dollars "
                        "and instances (default: none)")
    p.add_argument("--max-trials", type=int, default=None, help="run at most this many trials (default: all)")
    p.add_argument("--budget-usd", type=float, default=None,
                   help="launch no trial once dollars spent plus those committed would pass this (default: no budget)")
    p.add_argument("--no-prune", action="store_true", help="run trials predicted to run out of memory")
    p.add_argument("--trial-timeout", type=seconds, default=DEFAULT_TRIAL_TIMEOUT_S, metavar="SECONDS",
                   help="a trial still training after this long is stopped and recorded failed, saying where it "
                        "was; 0 sets no limit (default: %(default)g)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--cluster-config", default=None,
                   help="cluster YAML whose node types bound the capacity (default: the cluster or machine at hand)")
    add_price_arguments(p, "the space's")
    p.add_argument("--isolate-trials", action="store_true",
                   help="start a worker group for each trial, as a standalone run would, instead of reusing a warm "
                        "group of the same shape")
    p.add_argument("--verbose", action="store_true",
                   help="show Ray's own output and the trials' logs; with --dry-run, list each trial")
    return p


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


@exits_2_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    warnings.formatwarning = _one_line_warning  # a missing price is news, not a stack location

    from slmray.errors import ConfigError
    from slmray.sweep.lock import SweepLock

    try:
        request = _request(args, command)
        if request is None:
            return 0  # a dry run: printed, nothing started
        # a lost lock stops the sweep as Ctrl-C does (its trials stop, its state is saved)
        lock = SweepLock(request.sweep_dir, request.name, on_lost=lambda: os.kill(os.getpid(), signal.SIGINT))
        lock.acquire()  # also the first write: storage that cannot be written is found here
    except KeyboardInterrupt:
        print("interrupted before the sweep started: nothing ran", file=sys.stderr)
        return 130
    from slmray.results.storage import exists, join
    from slmray.sweep.driver import INTERRUPTED, SweepError, continue_command, recorded_rows, run_sweep
    from slmray.sweep.space_record import check_resumed_space, store_space

    try:
        if exists(join(request.sweep_dir, "tuner.pkl")) and not request.resume:
            raise ConfigError(f"--name: a sweep {request.name} already exists in {request.storage}; "
                              "add --resume to continue it")
        if request.resume:  # before Ray starts: a changed space is refused, or said to go on
            note = check_resumed_space(request.sweep_dir, request.name, request.space, request.space_path,
                                       args.allow_changed_space)
            if note:
                print(note, flush=True)
            recorded_rows(request.sweep_dir)  # a damaged row file: restored, or one line saying how to go on
        else:
            store_space(request.sweep_dir, request.space, request.space_path)
        code = run_sweep(request)
        if lock.lost:
            print(f"error: the lock on sweep {request.name} was taken over by another driver; this one stopped "
                  "and wrote nothing after that", file=sys.stderr)
            return 2
        return code
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # before Tune took over, or a second Ctrl-C
        if exists(join(request.sweep_dir, "tuner.pkl")):
            print(f"interrupted; continue with: {continue_command(request)}", file=sys.stderr)
        else:
            print("interrupted before the sweep started: nothing ran", file=sys.stderr)
        return INTERRUPTED
    finally:
        lock.release()


def _request(args: argparse.Namespace, command: list[str]):
    """The checked sweep (`slmray.sweep.driver.SweepRequest`), or None after printing a dry run."""
    from slmray.catalog.prices import PriceWarning
    from slmray.data.sources import check_source
    from slmray.errors import ConfigError
    from slmray.results.storage import exists, join, normalize
    from slmray.sweep.driver import SweepRequest, max_concurrent_trials, planned_runs
    from slmray.sweep.dry_run import check_out, format_plan, write_plan
    from slmray.sweep.plan import make_plan
    from slmray.sweep.space import SpaceError, load_space

    check_out(args.out, args.dry_run)
    space = load_space(args.space, packages=not args.dry_run)  # a dry run plans for a machine it is not on
    prices = price_book(args, space.prices)
    if args.max_trials is not None and args.max_trials < 1:
        raise ConfigError(f"--max-trials: {args.max_trials} is not a positive integer")
    if args.budget_usd is not None and not (math.isfinite(args.budget_usd) and args.budget_usd > 0):
        raise ConfigError(f"--budget-usd: {args.budget_usd} is not a positive amount")
    if args.resume and not args.name:
        raise ConfigError("--resume: needs --name, the sweep to continue")
    if args.allow_changed_space and not args.resume:
        raise ConfigError("--allow-changed-space: only with --resume (a new sweep stores the space it starts with)")
    if args.name is not None and not NAME.fullmatch(args.name):
        raise ConfigError(f"--name: {args.name!r} is not a sweep name: 1 to 128 letters, digits, '.', '_' or '-', "
                          "beginning with a letter or digit (e.g. h100-a)")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(args.space).stem).strip(".-_") or "sweep"
    name = args.name or f"{stem[:100]}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    if not args.storage.strip():
        raise ConfigError("--storage: is empty; give a directory or s3://bucket/prefix")
    storage = normalize(args.storage, "--storage")  # checked offline: a dry run plans from a laptop
    sweep_dir = join(storage, name)
    if not args.dry_run:
        _check_reachable(args.address)
    capacity = _capacity(args, space)
    # a dry run of a space that names no GPU type, here where there is no GPU: it may be a CPU sweep
    # (smoke.py), planned as one; where this CPU cannot take it, what it lacks is a cluster to plan for
    gpus_unknown = (args.dry_run and capacity is not None and not capacity.use_gpu and not space.gpu_type
                    and space.device != "cpu")
    hint = ("this machine has no GPU; to plan for the GPUs the sweep will run on, give --cluster-config CLUSTER.yaml "
            "or gpu_type in the space" if gpus_unknown else "")
    if capacity is not None:
        try:
            capacity.check(space)
        except ConfigError as exc:
            raise SpaceError(f"{args.space}: {exc}" + (f"; {hint}" if hint else "")) from None
    if capacity is not None and any(o.column == "tokens_per_usd" for o in space.objective_list):
        with warnings.catch_warnings():
            if gpus_unknown:  # its "--price cpu=USD" would plan a GPU sweep on this CPU
                warnings.simplefilter("ignore", PriceWarning)
            plan = make_plan(space, capacity, prices, prune=not args.no_prune)
        if not any(p.price_per_hour_usd for p in plan):
            gpus = ", ".join(sorted({p.gpu_type for p in plan}))
            fix = f" and {hint}" if hint else ": give --prices PROFILE or --price GPU=USD"
            raise SpaceError(f"{args.space}: objectives: tokens_per_usd needs a price, and {gpus} has none under "
                             f"the prices {args.prices or space.prices!r}{fix}")
    if args.dry_run:
        plan = make_plan(space, capacity, prices, prune=not args.no_prune, isolate=args.isolate_trials)
        runs = planned_runs(space, plan, args.max_trials)
        if args.out:
            write_plan(plan, args.out)
        print(f"{args.space}: {len(plan)} configurations on {capacity.where}; sweep {name} would write to {sweep_dir} "
              "(a dry run writes nothing there)")
        print(format_plan(plan, space, runs, args.budget_usd, isolate=args.isolate_trials,
                          concurrency=max_concurrent_trials(space, capacity), gpus=capacity.max_workers(None),
                          verbose=args.verbose, shared=capacity.nodes_given))
        if args.out:
            print(f"plan: {len(plan)} trials written to {args.out}")
        return None
    for model in dict.fromkeys(space.model_config(t.model) for t in space.trials()):
        try:
            check_source(space.data, model.vocab_size, max(space.values("seq_len")))
        except ConfigError as exc:
            raise SpaceError(f"{args.space}: {exc}") from None
    if args.resume and not exists(join(sweep_dir, "tuner.pkl")):
        raise ConfigError(f"--name: there is no sweep {name} in {storage} to resume")
    return SweepRequest(
        space=space, space_path=args.space, prices=prices, name=name, storage=storage, sweep_dir=sweep_dir,
        capacity=capacity, resume=args.resume, prune=not args.no_prune, max_trials=args.max_trials,
        budget_usd=args.budget_usd, address=args.address, cluster_config=args.cluster_config, verbose=args.verbose,
        isolate_trials=args.isolate_trials, command=command, trial_timeout_s=args.trial_timeout or None,
    )


def _check_reachable(address: str | None) -> None:
    """A `host:port` that nothing answers on is one line now; Ray itself retries it for minutes."""
    import socket

    from slmray.errors import ConfigError

    target = address or os.environ.get("RAY_ADDRESS")
    if not target or target in ("auto", "local"):
        return
    host, _, port = target.split("://", 1)[-1].rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address: {target!r} is not host:port (or ray://host:port, auto)")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ConfigError(f"--address: nothing answers at {host}:{port} ({exc.strerror or exc})") from None


def _capacity(args: argparse.Namespace, space):
    """What the plan is checked against, without starting anything (None: read from the cluster)."""
    from slmray.errors import ConfigError
    from slmray.sweep.capacity import capacity_from_yaml, local_capacity, named_capacity

    if args.cluster_config:
        return capacity_from_yaml(args.cluster_config, space.device)
    names_gpus = bool(space.gpu_type) and space.device != "cpu"
    if args.address or os.environ.get("RAY_ADDRESS"):
        if not args.dry_run:
            return None  # known once connected
        if not names_gpus:  # a dry run starts nothing, and connects to nothing either
            raise ConfigError("--dry-run: plans without connecting to the Ray cluster of --address or RAY_ADDRESS, "
                              "and the space names no gpu_type: give --cluster-config CLUSTER.yaml (the cluster's "
                              "YAML) to plan for its GPUs")
        return named_capacity(space)
    local = local_capacity(space.device)
    if args.dry_run and names_gpus and not set(space.gpu_type) <= set(local.gpus):
        return named_capacity(space)  # a cloud sweep priced from a laptop: the GPUs the space names
    return local


if __name__ == "__main__":
    # Run from the imported module, not from `__main__`: Tune pickles the callbacks into the
    # sweep's state, and classes of `__main__` are pickled by value, code and globals, so a
    # sweep begun before a code change could not be resumed after it.
    from slmray.tune import main as imported_main

    sys.exit(imported_main())
