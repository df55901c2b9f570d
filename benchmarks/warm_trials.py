"""Per-trial overhead of a sweep, warm worker groups against one group per trial (`--isolate-trials`).

    python benchmarks/warm_trials.py --out benchmarks/results/warm_trials_cpu.md

Runs the same six-trial sweep of the `tiny` model through `python -m slmray.tune` twice on
this machine, warm and isolated, and reports per trial: the time outside its training steps
(wall time minus warm-up and measured steps, the steps at the trial's median step time), and
tokens/s side by side.  The overhead figure is the median over ok trials after the first (the
first pays the group's start either way).  On a GPU machine pass `--space` with a GPU space.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIX_TINY = """from slmray.space import SearchSpace
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


def run_sweep(space: str, storage: str, name: str, *extra: str) -> tuple[list[dict], float]:
    from slmray.results import read_table

    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "slmray.tune", space, "--storage", storage, "--name", name, *extra],
                         capture_output=True, text=True)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        sys.exit(f"error: the {name} sweep failed: {out.stderr.strip().splitlines()[-1:]}")
    rows = sorted(read_table(f"{storage}/{name}/results.parquet").to_pylist(), key=lambda r: r["started_at"])
    return rows, wall


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default=None, help="search-space file (default: six tiny trials on the CPU)")
    p.add_argument("--out", required=True, help="Markdown file to write")
    args = p.parse_args(argv)
    import ray
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        space = args.space
        if space is None:
            space = f"{tmp}/six_tiny.py"
            Path(space).write_text(SIX_TINY)
        sweeps = {mode: run_sweep(space, f"{tmp}/s", mode, *extra)
                  for mode, extra in (("warm", ()), ("isolated", ("--isolate-trials",)))}
    lines = [
        "# Warm worker groups against one group per trial",
        "",
        f"`python benchmarks/warm_trials.py{' --space ' + args.space if args.space else ''}` on {platform.node()} "
        f"({platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores), "
        f"{datetime.date.today()}, torch {torch.__version__}, Ray {ray.__version__}.",
        "",
        "| mode | sweep wall s | median overhead s (ok trials after the first) | overhead s per trial |",
        "| --- | --- | --- | --- |",
    ]
    for mode, (rows, wall) in sweeps.items():
        per_trial = [overhead_s(r) for r in rows]
        later = [o for o in per_trial[1:] if o is not None]
        lines.append(f"| {mode} | {wall:.1f} | {statistics.median(later):.2f} | "
                     f"{', '.join('-' if o is None else f'{o:.2f}' for o in per_trial)} |")
    lines += ["", "| trial | warm tokens/s | isolated tokens/s | warm / isolated | group trials |", "| --- | --- | --- | --- | --- |"]
    warm, isolated = sweeps["warm"][0], sweeps["isolated"][0]
    for w, i in zip(warm, isolated):
        ratio = f"{w['tokens_per_s'] / i['tokens_per_s']:.3f}" if w["tokens_per_s"] and i["tokens_per_s"] else "-"
        lines.append(f"| {w['model']} b{w['per_device_batch']} x{w['num_gpus']} | {_rate(w)} | {_rate(i)} | {ratio} | "
                     f"{w['group_trials']} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
