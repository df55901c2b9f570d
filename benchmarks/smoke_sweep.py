"""Wall time of the README's first command, `python -m slmray.tune search_spaces/smoke.py`, as a
new user sees it: from the command's start to its exit, Ray's start and stop included.

    python benchmarks/smoke_sweep.py --runs 5 --baseline c2be321 --out benchmarks/results/smoke_sweep/smoke_sweep_cpu.md

Runs the sweep `--runs` times warm (the default) and `--isolated-runs` times with
`--isolate-trials`, and with `--baseline REV` as many times as the code of that git revision
(exported into a temporary folder and imported from there), alternating, each into a fresh
storage folder, and reports every wall time, the median of each mode and the warm median over
the baseline's: like against like, since this machine's speed drifts between hours.  A run
that fails stops the benchmark.
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


def timed_run(storage: str, *extra: str, tree: str | None = None) -> float:
    """Seconds from the command's start to its exit; `tree`: run the slmray found there."""
    env = {**os.environ, "PYTHONPATH": tree} if tree else None
    started = time.perf_counter()
    out = subprocess.run([*COMMAND, "--storage", storage, *extra], capture_output=True, text=True, cwd=tree, env=env)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        sys.exit(f"error: the smoke sweep failed: {(out.stderr or out.stdout).strip().splitlines()[-1:]}")
    return wall


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="warm sweeps to time (default 5)")
    p.add_argument("--isolated-runs", type=int, default=3, help="sweeps with --isolate-trials to time (default 3)")
    p.add_argument("--baseline", metavar="REV", help="also time the sweep of this git revision, --runs times")
    p.add_argument("--out", required=True, help="Markdown file to write")
    args = p.parse_args(argv)
    import ray
    import torch

    walls: dict[str, list[float]] = {"warm": [], "isolated": []}
    with tempfile.TemporaryDirectory() as tmp:
        modes = [("warm", args.runs, (), None), ("isolated", args.isolated_runs, ("--isolate-trials",), None)]
        if args.baseline:
            commit = subprocess.run(["git", "rev-parse", "--short", args.baseline], capture_output=True, text=True)
            if commit.returncode != 0:
                p.error(f"--baseline: {args.baseline} is not a git revision here")
            tree = f"{tmp}/baseline"
            os.makedirs(tree)
            subprocess.run(f"git archive {commit.stdout.strip()} | tar -x -C {tree}", shell=True, check=True)
            baseline = f"baseline {commit.stdout.strip()}"
            walls[baseline] = []
            modes.append((baseline, args.runs, (), tree))
        for i in range(max(args.runs, args.isolated_runs)):
            for mode, wanted, extra, code in modes:
                if i < wanted:
                    walls[mode].append(timed_run(f"{tmp}/{mode.split()[0]}-{i}", *extra, tree=code))
                    print(f"{mode} run {i + 1}: {walls[mode][-1]:.1f} s", flush=True)
    lines = [
        "# The README's smoke sweep, start to exit",
        "",
        f"`python benchmarks/smoke_sweep.py --runs {args.runs} --isolated-runs {args.isolated_runs}"
        f"{f' --baseline {args.baseline}' if args.baseline else ''}` on "
        f"{platform.node()} ({os.cpu_count()} cores), {datetime.date.today()}, torch {torch.__version__}, "
        f"Ray {ray.__version__}: `{' '.join(['python', *COMMAND[1:]])}` (4 trials of `tiny`, 1 and 2 workers); "
        f"this code at {_head()}.",
        "",
        "| mode | runs | wall s, each | median wall s |",
        "| --- | --- | --- | --- |",
    ]
    for mode, values in walls.items():
        if values:
            lines.append(f"| {mode} | {len(values)} | {', '.join(f'{v:.1f}' for v in values)} | "
                         f"{statistics.median(values):.1f} |")
    if args.baseline:
        ratio = statistics.median(walls["warm"]) / statistics.median(walls[baseline])
        lines += ["", f"Warm median over the {baseline}'s: {ratio:.2f}."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def _head() -> str:
    """This checkout's commit, with `+` when the tree has changes."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout
    return head + ("+" if dirty.strip() else "")


if __name__ == "__main__":
    sys.exit(main())
