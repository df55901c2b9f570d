"""What `python -m slmray.tune SPACE --dry-run` shows of a plan: a summary first (trials, pruned,
GPU-hours and dollars by model, GPU type and GPU count; the instances each GPU count is rented
as; the GPUs held at once and the wall-clock), what the total counts and leaves out, and the
per-trial list behind `--verbose`; `--out plan.csv|.parquet` writes every planned trial.
"""

from __future__ import annotations

import math
import os
import uuid
from collections import Counter, defaultdict
from pathlib import Path

from slmray.core.schema import SCHEMA
from slmray.errors import ConfigError
from slmray.predict.overheads import GROUP_START_S, ISOLATED_TRIAL_OVERHEAD_S, TRIAL_OVERHEAD_S
from slmray.sweep.plan import PlannedTrial, group_starts
from slmray.sweep.space import SearchSpace
from slmray.train.config import CONFIG_KEYS, config_variant

OUT_SUFFIXES = (".csv", ".parquet")
PLAN_COLUMNS = (
    *CONFIG_KEYS, "requested_gpu_type", "predicted_peak_mem_gb", "predicted_oom", "predicted_tokens_per_s",
    "predicted_tokens_per_s_low", "predicted_tokens_per_s_high", "predicted_tokens_per_s_uncorrected",
    "predicted_host_share", "correction_rows",
)
"""The row schema's columns a planned trial fills (their types are the schema's)."""
EXTRA_COLUMNS = {
    "pruned": "bool", "minutes": "float64", "gpu_hours": "float64", "price_per_hour_usd": "float64",
    "usd": "float64", "instances": "string", "instance_type": "string", "gpus_billed": "int64",
    "idle_gpus": "int64", "gpus_per_node": "int64", "inter_node_gbps": "float64", "fabric": "string",
}
"""What `--out` adds: pruned (recorded, not run: its minutes, GPU-hours and dollars are 0), the trial's
minutes, GPU-hours and dollars, and the instances it is priced at (`slmray.catalog.rent`), whose link
its prediction assumes.  The sums leave out what the summary adds once: each worker group's start."""


def check_out(path: str | None, dry_run: bool) -> None:
    """`--out`: only with --dry-run, a .csv or .parquet path; ConfigError otherwise."""
    if path is None:
        return
    if not dry_run:
        raise ConfigError("--out: writes the plan of a dry run; add --dry-run")
    if Path(path).suffix.lower() not in OUT_SUFFIXES:
        raise ConfigError(f"--out: {path} must end in .csv or .parquet")


def plan_table(plan: list[PlannedTrial]):
    """Every planned trial as an Arrow table: the configuration and prediction columns typed as
    in the row schema, then `EXTRA_COLUMNS`."""
    import pyarrow as pa

    rows = []
    for p in plan:
        r = p.rental
        rows.append({
            **{k: v for k, v in p.row_columns().items() if k in PLAN_COLUMNS},
            "pruned": p.pruned, "minutes": p.minutes, "gpu_hours": p.gpu_hours,
            "price_per_hour_usd": p.price_per_hour_usd, "usd": p.cost_usd,
            "instances": r and r.description, "instance_type": r and r.instance_type,
            "gpus_billed": r and r.gpus_billed, "idle_gpus": r and r.idle_gpus,
            "gpus_per_node": r and r.gpus_per_node, "inter_node_gbps": r and r.inter_node_gbps,
            "fabric": r and r.fabric,
        })
    fields = [SCHEMA.field(c) for c in PLAN_COLUMNS] + [pa.field(c, pa.type_for_alias(t)) for c, t in EXTRA_COLUMNS.items()]
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))


def write_plan(plan: list[PlannedTrial], path: str) -> None:
    """`plan_table` to `path` (.csv or .parquet), whole or not at all: written beside it, then renamed."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    table = plan_table(plan)
    target = Path(path).expanduser()
    tmp = None
    try:
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask's mode, as any file written
        if target.suffix.lower() == ".csv":
            pcsv.write_csv(table, tmp)
        else:
            pq.write_table(table, tmp)
        os.replace(tmp, target)
    except OSError as exc:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        raise ConfigError(f"--out: cannot write {path} ({exc.strerror or exc})") from None


def _fmt(value: float | None, spec: str) -> str:
    return "?" if value is None else format(value, spec)


def _money(value: float | None) -> str:
    return "?" if value is None else f"${value:,.2f}"


def trial_lines(listed: list[PlannedTrial]) -> list[str]:
    """The per-trial list (`--verbose`)."""
    lines = [
        f"{'#':>4}  {'model':<12} {'batch':>5} {'gpus':>4} {'gpu':<10} {'attention':<10} {'strategy':<13} "
        f"{'pred mem GiB':>12} {'OOM?':<12} {'pred tok/s':>11} {'est min':>7} {'est $':>8}"
    ]
    for i, p in enumerate(listed, 1):
        e = p.estimate
        lines.append(
            f"{i:>4}  {p.trial.model:<12} {p.trial.per_device_batch:>5} {p.trial.num_gpus:>4} {p.gpu_type or 'any GPU':<10} "
            f"{p.trial.attention:<10} {' '.join([p.trial.strategy, *config_variant(p.train.flat())]):<13} "
            f"{_fmt(e and e.peak_mem_gb, '12.1f')} {('yes' if e and e.oom else 'no' if e else '?') + (' (pruned)' if p.pruned else ''):<12} "
            f"{('~' if e and e.rough else '') + _fmt(e and e.tokens_per_s, ',.0f'):>11} {_fmt(p.minutes, '7.1f')} "
            f"{_fmt(p.cost_usd, '8.2f')}"
        )
    if any(p.estimate and p.estimate.rough for p in listed):
        lines.append("~ the CPU's rough estimate: one low FLOP rate, blind to attention and batch (slmray.predict.estimate)")
    return lines


class _Cell:
    """Trials, pruned, GPU-hours and dollars of a group of planned trials."""

    def __init__(self):
        self.trials = self.pruned = self.unknown = 0
        self.hours = self.usd = 0.0

    def add(self, p: PlannedTrial, weight: float = 1.0) -> None:
        self.trials += 1
        self.pruned += p.pruned
        if not p.pruned:
            self.hours += weight * (p.gpu_hours or 0.0)
            self.usd += weight * (p.cost_usd or 0.0)
            self.unknown += p.cost_usd is None


def summary_lines(listed: list[PlannedTrial], weight: float, what: str = "trials") -> list[str]:
    """Trials (`what`), pruned, GPU-hours and $ by model and GPU type, with $ per GPU count, then
    the instances each GPU count of a type is rented as.  `weight`: trials run per configuration
    listed (1 for a grid; Optuna's samples over the configurations it may pick)."""
    counts = sorted({p.trial.num_gpus for p in listed})
    by_model: dict[tuple, _Cell] = defaultdict(_Cell)
    by_cube: dict[tuple, _Cell] = defaultdict(_Cell)
    by_shape: dict[tuple, _Cell] = defaultdict(_Cell)
    rented: dict[tuple, Counter] = defaultdict(Counter)
    for p in listed:
        gpu = p.gpu_type or "any GPU"
        by_model[p.trial.model, gpu].add(p, weight)
        by_cube[p.trial.model, gpu, p.trial.num_gpus].add(p, weight)
        by_shape[gpu, p.trial.num_gpus].add(p, weight)
        if not p.pruned:
            rented[gpu, p.trial.num_gpus][p.rental.description if p.rental else "no price"] += 1
    cells = {k: "pruned" if c.pruned == c.trials else f"{c.usd:,.2f}" for k, c in by_cube.items()}
    width = max(7, *(len(c) for c in cells.values()))
    lines = [f"{'model':<12} {'gpu':<10} {what:>6} {'pruned':>6} {'GPU-hours':>9} {'$':>9} | $ by GPU count",
             f"{'':<12} {'':<10} {'':>6} {'':>6} {'':>9} {'':>9} | " + " ".join(f"{'x' + str(n):>{width}}" for n in counts)]
    for (model, gpu), c in by_model.items():
        lines.append(f"{model:<12} {gpu:<10} {c.trials:>6} {c.pruned:>6} {c.hours:>9,.2f} {c.usd:>9,.2f} | "
                     + " ".join(f"{cells.get((model, gpu, n), ''):>{width}}" for n in counts))
    lines += ["", f"{'gpu':<10} {'gpus':>4} {what:>6} {'pruned':>6} {'GPU-hours':>9} {'$':>9}   priced at ({what})"]
    for (gpu, n), c in sorted(by_shape.items()):
        how = rented[gpu, n]
        priced = "; ".join(f"{what} ({k})" if len(how) > 1 else what for what, k in how.most_common()) or "-"
        lines.append(f"{gpu:<10} {n:>4} {c.trials:>6} {c.pruned:>6} {c.hours:>9,.2f} {c.usd:>9,.2f}   {priced}")
    return lines


def wall_clock_lines(ran: list[PlannedTrial], concurrency: int, gpus: int, start_s: float,
                     weight: float = 1.0) -> list[str]:
    """The most GPUs held at once and the wall-clock: from every GPU of the capacity kept busy to
    one trial at a time (`gpus`: the capacity's GPUs, or its CPU workers; `weight` as in
    `summary_lines`)."""
    if not ran:
        return []
    concurrency = min(concurrency, len(ran))
    seconds = [weight * (p.seconds or 0.0) for p in ran]
    widest = sorted((p.trial.num_gpus for p in ran), reverse=True)
    peak = min(gpus, sum(widest[:concurrency]))
    serial = sum(seconds) + start_s
    gpu_seconds = sum(s * p.trial.num_gpus for s, p in zip(seconds, ran))
    packed = max(max(seconds), gpu_seconds / peak) + start_s
    return [f"at once: up to {concurrency} trial{'s' if concurrency > 1 else ''}, {peak} GPUs at most; wall-clock "
            f"about {_duration(packed)} with all {peak} busy, {_duration(serial)} one trial at a time"]


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:,.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def billing_line(ran: list[PlannedTrial], shared: bool, weight: float = 1.0) -> str:
    """How the trials are billed (`slmray.catalog.rent`); where they rent whole instances, what the
    same trials cost packed side by side on shared nodes (the GPUs used at their instances' rate)."""
    rented = [p for p in ran if p.rental]
    if shared:
        return "billing: the trials share the nodes that are there, each paying the GPUs it uses at their rate"
    if all(p.rental.per_gpu for p in rented):
        return "billing: per GPU-hour, the GPUs each trial uses (--per-gpu-pricing, or per-GPU prices)"
    packed = sum(weight * (p.seconds or 0.0) / 3600 * p.rental.usd_per_hour / p.rental.gpus_billed * p.trial.num_gpus
                 for p in rented)
    return (f"billing: whole instances per trial, idle GPUs included; packed onto shared nodes about "
            f"${packed:,.2f} (--per-gpu-pricing)")


def format_plan(plan: list[PlannedTrial], space: SearchSpace, runs: int, budget_usd: float | None,
                isolate: bool = False, concurrency: int = 1, gpus: int = 1, verbose: bool = False,
                shared: bool = False) -> str:
    """What `--dry-run` prints: the summary, the totals and what they count, then (`verbose`) each trial.
    `concurrency`: trials run at once; `gpus`: the GPUs (or CPU workers) of the capacity; `shared`:
    its nodes are there and the trials share them (`Capacity.nodes_given`).

    A grid runs its first `runs` points in plan order (`--max-trials` cuts it), so only those
    are summed.  Optuna samples `runs` trials among all the configurations, so the totals are
    `runs` trials at the average configuration.
    """
    grid = space.search == "grid"
    listed = plan[:runs] if grid else plan
    ran = [p for p in listed if not p.pruned]
    starts = [] if isolate else group_starts(ran, concurrency, gpus)
    # Optuna runs `runs` trials, not every configuration once: its starts in that proportion
    per_trial = 1.0 if grid else runs / max(1, len(ran))
    start_hours = per_trial * sum(GROUP_START_S / 3600 * p.trial.num_gpus for p in starts)
    start_cost = per_trial * sum(GROUP_START_S / 3600 * (p.price_per_hour_usd or 0.0) for p in starts)
    n_starts = round(per_trial * len(starts))
    known = [p for p in ran if p.cost_usd is not None]
    unknown = len(ran) - len(known)
    pruned = len(listed) - len(ran)
    budget_note = None
    lines = []
    if grid:
        lines.append(f"grid: {runs} trials ({pruned} predicted out of memory and pruned: recorded, not run)")
        if runs < len(plan):
            lines.append(f"--max-trials: the first {runs} of the grid's {len(plan)} points; the rest are neither listed nor counted")
        weight = 1.0
        hours = sum(p.gpu_hours or 0.0 for p in ran) + start_hours
        usd = sum(p.cost_usd for p in known) + start_cost
        spent = start_cost
        for i, p in enumerate(listed, 1):
            if budget_usd is not None and p.cost_usd is not None and spent + p.cost_usd > budget_usd:
                budget_note = f"budget ${budget_usd:,.2f} is reached before trial {i}: no trial from there on starts"
                break
            spent += p.cost_usd or 0.0
        total = f"estimate: {hours:,.2f} GPU-hours, ${usd:,.2f}"
    else:
        lines.append(f"optuna ({space.sampler}): {runs} trials sampled from these {len(plan)} configurations "
                     f"({pruned} predicted out of memory)")
        weight = runs / max(1, len(ran))
        mean_h = sum(p.gpu_hours or 0.0 for p in known) / max(1, len(known))
        mean_c = sum(p.cost_usd for p in known) / max(1, len(known))
        total = (f"estimate at the average configuration: {runs * mean_h + start_hours:,.2f} GPU-hours, "
                 f"${runs * mean_c + start_cost:,.2f}")
        if budget_usd is not None and runs * mean_c + start_cost > budget_usd:
            # which configurations Optuna picks is not known in advance: only the average can be compared
            affordable = int(max(0.0, budget_usd - start_cost) // mean_c) if mean_c > 0 else runs
            budget_note = (f"budget ${budget_usd:,.2f} is reached after about {affordable} of the "
                           f"{runs} trials at the average configuration")
    lines += ["", *summary_lines(listed, weight, "trials" if grid else "config"), "", total]
    # groups start side by side: the wall-clock waits about one start for each `concurrency` of them
    lines += wall_clock_lines(ran, concurrency, gpus, math.ceil(n_starts / max(1, concurrency)) * GROUP_START_S, weight)
    if starts:
        counted = (f"counted: about {n_starts} warm worker-group start{'s' if n_starts != 1 else ''} "
                   f"({GROUP_START_S:.0f} s each), {TRIAL_OVERHEAD_S} s a trial "
                   "outside its steps")
    else:
        counted = f"counted: {ISOLATED_TRIAL_OVERHEAD_S:.0f} s a trial outside its steps (--isolate-trials)"
    lines.append(counted + ", compiling where compiled")
    lines.append(billing_line(ran, shared, weight))
    lines.append("not counted: node start-up (minutes a node, billed), nodes idle between trials or before "
                 "scale-down, the head node,")
    lines.append("             storage and data transfer, retried trials; GPU-hours count the GPUs used")
    if unknown:
        lines.append(f"{unknown} trials have no price or no estimate: their cost is not counted")
    approximate = sorted({p.trial.model for p in listed if p.estimate is not None and p.estimate.approximate})
    if approximate:
        lines.append(f"approximate: {', '.join(approximate)} (an architecture only Transformers builds) is estimated "
                     f"with the llama-family formulas from its exact parameter count")
    if budget_note:
        lines.append(budget_note)
    if verbose:
        lines += ["", *trial_lines(listed)]
    else:
        lines.append("each trial: --verbose, or --out plan.csv|plan.parquet")
    return "\n".join(lines)
