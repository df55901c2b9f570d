"""Wall time of the README's first command, `python -m slmray.tune search_spaces/smoke.py`, as a
new user sees it: from the command's start to its exit, Ray's start and stop included.

    python benchmarks/smoke_sweep.py --runs 5 --out benchmarks/results/smoke_sweep_cpu.md

Runs the sweep `--runs` times warm (the default) and `--isolated-runs` times with
`--isolate-trials`, alternating, each into a fresh storage folder, and reports every wall time
and the median of each mode.  A run that fails stops the benchmark.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMAND = [sys.executable, "-m", "slmray.tune", "search_spaces/smoke.py"]


def timed_run(storage: str, *extra: str) -> float:
    started = time.perf_counter()
    out = subprocess.run([*COMMAND, "--storage", storage, *extra], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        sys.exit(f"error: the smoke sweep failed: {(out.stderr or out.stdout).strip().splitlines()[-1:]}")
    return wall


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="warm sweeps to time (default 5)")
    p.add_argument("--isolated-runs", type=int, default=3, help="sweeps with --isolate-trials to time (default 3)")
    p.add_argument("--out", required=True, help="Markdown file to write")
    args = p.parse_args(argv)
    import ray
    import torch

    walls: dict[str, list[float]] = {"warm": [], "isolated": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(max(args.runs, args.isolated_runs)):
            for mode, wanted, extra in (("warm", args.runs, ()), ("isolated", args.isolated_runs, ("--isolate-trials",))):
                if i < wanted:
                    walls[mode].append(timed_run(f"{tmp}/{mode}-{i}", *extra))
                    print(f"{mode} run {i + 1}: {walls[mode][-1]:.1f} s", flush=True)
    lines = [
        "# The README's smoke sweep, start to exit",
        "",
        f"`python benchmarks/smoke_sweep.py --runs {args.runs} --isolated-runs {args.isolated_runs}` on "
        f"{platform.node()} ({os.cpu_count()} cores), {datetime.date.today()}, torch {torch.__version__}, "
        f"Ray {ray.__version__}: `{' '.join(['python', *COMMAND[1:]])}` (4 trials of `tiny`, 1 and 2 workers).",
        "",
        "| mode | runs | wall s, each | median wall s |",
        "| --- | --- | --- | --- |",
    ]
    for mode, values in walls.items():
        if values:
            lines.append(f"| {mode} | {len(values)} | {', '.join(f'{v:.1f}' for v in values)} | "
                         f"{statistics.median(values):.1f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
