"""Peak memory of configurations run one after another in one process (a warm group) against
each run in a fresh process (an isolated trial), and what is live at each warm run's peak.

    python benchmarks/warm_memory.py --out DIR        # on a GPU machine: DIR/warm_memory.{json,md}

One process, one NCCL process group of one rank kept for the whole run (what a warm Ray Train
group of one GPU is), runs configurations of `search_spaces/h200x1_warm.py` one after another
through `slmray.train.loop.run`, each followed by the warm group's clean-up
(`slmray.sweep.warm.clean_up_after_configuration`), and records per configuration: the peak memory it
measured, memory still allocated after the clean-up, and, from CUDA's memory history, the
allocations live at the run's peak grouped by the Python frames that made them.  Then each
configuration runs again in a fresh process of its own: its peak is what an isolated trial sees.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

SEQUENCE = [
    ("llama-100m", 16, "eager"), ("llama-100m", 64, "eager"), ("llama-100m", 16, "sdpa"),
    ("llama-100m", 64, "sdpa"), ("llama-1b", 16, "eager"), ("llama-1b", 16, "sdpa"), ("llama-100m", 16, "sdpa"),
]
GIB = 1 << 30


def config(model: str, batch: int, attention: str, compiled: bool = False):
    """One configuration as the one-GPU sweeps run it (`benchmarks/warm_host_drift.py` uses it too)."""
    from slmray.train.config import TrainConfig
    from slmray.train.presets import get_model

    return TrainConfig(model=get_model(model), attention=attention, strategy="ddp", per_device_batch=batch,
                       seq_len=1024, steps=10, warmup_steps=3, data="stdlib", device="cuda", compile=compiled)


def one_rank_group(port: int) -> None:
    """One NCCL process group of one rank on GPU 0, as Ray Train makes it for a one-GPU worker (no
    device_id): the warm group's process (`warm_host_drift.py` and `host_speed.py` use it too)."""
    import torch
    import torch.distributed as dist

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(port))
    torch.cuda.set_device(0)
    dist.init_process_group("nccl", rank=0, world_size=1)


def live_at_peak(snapshot: dict, top: int = 10) -> list[tuple[str, float]]:
    """GiB live at the trace's peak, by the innermost Python frames that allocated them."""
    live, total, best, at_best = {}, 0, -1, {}
    for trace in snapshot["device_traces"]:
        for event in trace:
            if event["action"] == "alloc":
                live[event["addr"]] = event
                total += event["size"]
                if total > best:
                    best, at_best = total, dict(live)
            elif event["action"] == "free_completed" and event["addr"] in live:
                total -= live.pop(event["addr"])["size"]
    groups = collections.Counter()
    for event in at_best.values():
        frames = [f"{f['filename'].split('/')[-1]}:{f['line']} {f['name']}" for f in event.get("frames", [])
                  if f["filename"].endswith(".py")]
        groups[" < ".join(frames[:3]) or "(no Python frame)"] += event["size"] / GIB
    return groups.most_common(top)


def warm() -> list[dict]:
    import torch
    import torch.distributed as dist

    from slmray.sweep.warm import clean_up_after_configuration
    from slmray.train.loop import run

    one_rank_group(29511)
    rows = []
    for model, batch, attention in SEQUENCE:
        torch.cuda.memory._record_memory_history(max_entries=2_000_000)
        result = run(config(model, batch, attention))
        snapshot = torch.cuda.memory._snapshot()
        torch.cuda.memory._record_memory_history(enabled=None)
        clean_up_after_configuration(compiled=False)
        row = {"model": model, "batch": batch, "attention": attention, "status": result.status,
               "peak_warm_gib": result.peak_mem_gb, "allocated_after_clean_up_gib": torch.cuda.memory_allocated() / GIB,
               "live_at_peak_gib": live_at_peak(snapshot)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    dist.destroy_process_group()
    return rows


def isolated(model: str, batch: int, attention: str) -> float | None:
    code = ("import sys, json; sys.path.insert(0, 'benchmarks'); import warm_memory as w; from slmray.train.loop import run; "
            f"print('PEAK', json.dumps(run(w.config({model!r}, {batch}, {attention!r})).peak_mem_gb))")
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    line = next((l for l in out.stdout.splitlines() if l.startswith("PEAK")), None)
    if line is None:
        print(out.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(line.split(" ", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    rows = warm()
    fresh = {}
    for row in rows:
        key = (row["model"], row["batch"], row["attention"])
        if key not in fresh:
            fresh[key] = isolated(*key)
        row["peak_isolated_gib"] = fresh[key]
    (args.out / "warm_memory.json").write_text(json.dumps(rows, indent=1))
    lines = [
        "# Peak memory: one process for every configuration against a fresh process for each",
        "",
        f"`python benchmarks/warm_memory.py` on {torch.cuda.get_device_name()}, torch {torch.__version__}, "
        f"{datetime.date.today()}; per-run detail, with what was live at each warm run's peak, in `warm_memory.json`.",
        "",
        "| run | configuration | warm peak GiB | fresh-process peak GiB | warm / fresh | left after clean-up GiB |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for i, row in enumerate(rows, start=1):
        ratio = row["peak_warm_gib"] / row["peak_isolated_gib"] if row["peak_isolated_gib"] else float("nan")
        lines.append(f"| {i} | {row['model']} b{row['batch']} {row['attention']} | {row['peak_warm_gib']:.2f} | "
                     f"{row['peak_isolated_gib']:.2f} | {ratio:.3f} | {row['allocated_after_clean_up_gib']:.2f} |")
    (args.out / "warm_memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
