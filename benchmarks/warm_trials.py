"""Per-trial overhead of a sweep, warm worker groups against one group per trial (`--isolate-trials`).

    python benchmarks/warm_trials.py --out benchmarks/results/warm_trials/warm_trials_cpu.md

Runs the same six-trial sweep of the `tiny` model through `python -m slmray.tune` twice on
this machine, warm and isolated, and reports per trial: the time outside its training steps
(wall time minus warm-up and measured steps, the steps at the trial's median step time), and
tokens/s and peak memory side by side.  The overhead figure is the median over ok trials after the
first (the first pays the group's start either way); an out-of-memory trial's cost is its wall time.
On a GPU machine pass `--space` with a GPU space, `--no-prune` to run the predicted out-of-memory
trials, and `--tables DIR` to keep both results tables:

    python benchmarks/warm_trials.py --space search_spaces/h200x1_warm3.py --no-prune \
        --tables OUT --out OUT/warm_trials_h200.md

(committed in `benchmarks/results/warm_trials/`, named by date; its README says what is current
and what went to `history/`.)
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from slmray.train.config import CONFIG_KEYS, config_label

SIX_TINY = """from slmray.sweep.space import SearchSpace
SPACE = SearchSpace(model=["tiny"], per_device_batch=[1, 2, 4, 8, 16, 32], num_gpus=[1], attention=["sdpa"],
                    strategy=["ddp"], seq_len=64, steps=5, warmup_steps=2, device="cpu")
"""


def overhead_s(row: dict) -> float | None:
    if row["status"] != "ok" or not row["step_time_median_s"]:
        return None
    steps = row["warmup_steps"] + row["steps"] * row["repeats"]
    return row["wall_s"] - steps * row["step_time_median_s"]


def _rate(row: dict) -> str:
    return f"{row['tokens_per_s']:,.0f}" if row["tokens_per_s"] else row["status"]


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.3f}" if a and b else "-"


def _key(row: dict) -> tuple:
    """A configuration's identity, to pair its warm and isolated trials."""
    return tuple(row[k] for k in CONFIG_KEYS)


def run_sweep(space: str, storage: str, name: str, log: Path, *extra: str) -> tuple[list[dict], float]:
    """One sweep through the CLI (its console kept in `log`), its rows in the order they started, and its wall time."""
    from slmray.results.table import RESULTS_FILE, read_table

    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "slmray.tune", space, "--storage", storage, "--name", name, *extra],
                         capture_output=True, text=True)
    wall = time.perf_counter() - started
    log.write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        sys.exit(f"error: the {name} sweep failed: {out.stderr.strip().splitlines()[-1:]}")
    rows = sorted(read_table(f"{storage}/{name}/{RESULTS_FILE}").to_pylist(), key=lambda r: r["started_at"])
    return rows, wall


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default=None, help="search-space file (default: six tiny trials on the CPU)")
    p.add_argument("--no-prune", action="store_true", help="run the trials predicted out of memory too")
    p.add_argument("--tables", default=None, help="folder to copy both results tables to (warm_trials_<mode>.parquet)")
    p.add_argument("--out", required=True, help="Markdown file to write (each sweep's console beside it, <out>.<mode>.log)")
    args = p.parse_args(argv)
    prune = ("--no-prune",) if args.no_prune else ()
    import ray
    import torch

    from slmray.results.table import RESULTS_FILE

    with tempfile.TemporaryDirectory() as tmp:
        space = args.space
        if space is None:
            space = f"{tmp}/six_tiny.py"
            Path(space).write_text(SIX_TINY)
        sweeps = {}
        for mode, extra in (("warm", ()), ("isolated", ("--isolate-trials",))):
            sweeps[mode] = run_sweep(space, f"{tmp}/s", mode, Path(args.out).with_suffix(f".{mode}.log"), *prune, *extra)
            if args.tables:  # at once: a later sweep cut short by a time limit leaves this one
                shutil.copy(f"{tmp}/s/{mode}/{RESULTS_FILE}", f"{args.tables}/warm_trials_{Path(space).stem}_{mode}.parquet")
    device = sweeps["warm"][0][0]["device_name"] or platform.processor() or platform.machine()
    lines = [
        "# Warm worker groups against one group per trial",
        "",
        f"`python benchmarks/warm_trials.py{' --space ' + args.space if args.space else ''}"
        f"{' --no-prune' if args.no_prune else ''}` on {platform.node()} ({device}, {os.cpu_count()} cores), "
        f"{datetime.date.today()}, torch {torch.__version__}, Ray {ray.__version__}.",
        "",
        "| mode | sweep wall s | median overhead s (ok trials after the first) | overhead s per trial | "
        "out-of-memory trials' wall s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for mode, (rows, wall) in sweeps.items():
        per_trial = [overhead_s(r) for r in rows]
        later = [o for o in per_trial[1:] if o is not None]
        oom = [f"{r['wall_s']:.2f}" for r in rows if r["status"] == "oom"]
        lines.append(f"| {mode} | {wall:.1f} | {statistics.median(later):.2f} | "
                     f"{', '.join('-' if o is None else f'{o:.2f}' for o in per_trial)} | {', '.join(oom) or '-'} |")
    lines += ["", "| trial | warm tokens/s | isolated tokens/s | warm / isolated | warm / isolated peak memory | "
              "group trials |", "| --- | --- | --- | --- | --- | --- |"]
    isolated = {_key(r): r for r in sweeps["isolated"][0]}
    for w in sweeps["warm"][0]:
        i = isolated[_key(w)]
        lines.append(f"| {config_label(w)} | {_rate(w)} | "
                     f"{_rate(i)} | {_ratio(w['tokens_per_s'], i['tokens_per_s'])} | "
                     f"{_ratio(w['peak_mem_gb'], i['peak_mem_gb'])} | {w['group_trials']} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
