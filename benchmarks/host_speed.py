"""Does a second-long host probe see the speed of the steps the host sets, on the machine at hand?

    python benchmarks/host_speed.py --out DIR [--seconds 150] [--tag NAME]   # on a GPU: DIR/host_speed_NAME.json

Held-out sets measured the same host-bound step (pythia-160m, SDPA, batch 6, sequence 1024,
uncompiled) at 28 ms on one lent H100 and 43-55 ms on another; the device-bound steps repeated
within 1.5%.  A dry run cannot know that host; a probe run where the trials run could.  One
process, one NCCL process group of one rank (what a warm Ray Train worker of one GPU holds), repeats rounds
until `--seconds` have passed; each round records:

- the probe: `slmray.predict.profile.bench_host` (host seconds per op of an eager block, the four
  block kinds the profile measures) and a pure-Python loop (the interpreter alone);
- the host-bound step (the configuration above) and a device-bound one (the same at batch 24),
  uncompiled, through `slmray.train.loop.run` as the sweeps run them, with the warm group's clean-up;
- the CPU time the hypervisor took from this machine (`steal` in /proc/stat) during the round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from warm_memory import config, one_rank_group  # this folder is the script's: one configuration as the sweeps run it

HOST_BOUND = ("pythia-160m", 6, "sdpa", False)
DEVICE_BOUND = ("pythia-160m", 24, "sdpa", False)


def steal_ticks() -> tuple[int, int]:
    """(steal, all) jiffies of all CPUs since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return fields[7], sum(fields)


def python_loop_us(n: int = 200_000) -> float:
    """Microseconds per iteration of a loop of a call and an add: the interpreter's speed, median of five."""

    def f(i: int) -> int:
        return i + 1

    times = []
    for _ in range(5):
        start = time.perf_counter()
        total = 0
        for i in range(n):
            total += f(i)
        times.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=150.0, help="keep starting rounds until this much has passed")
    parser.add_argument("--tag", default="1", help="names the output file (one per process)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch
    import torch.distributed as dist

    from slmray.predict.profile import bench_host
    from slmray.sweep.warm import clean_up_after_configuration
    from slmray.train.loop import run

    one_rank_group(29513)
    started, rows = time.perf_counter(), []
    while time.perf_counter() - started < args.seconds:
        steal0, all0 = steal_ticks()
        row = {"round": len(rows) + 1, "t_s": round(time.perf_counter() - started, 1),
               "python_loop_us": round(python_loop_us(), 4),
               "host_op_us": {m.variant: round(m.seconds * 1e6, 3) for m in bench_host(lambda _: None)}}
        for key, (model, batch, attention, compiled) in (("host_bound_ms", HOST_BOUND), ("device_bound_ms", DEVICE_BOUND)):
            result = run(config(model, batch, attention, compiled))
            row[key] = round(1e3 * result.step_time_median_s, 2) if result.status == "ok" else result.status
            clean_up_after_configuration(compiled=compiled)
        steal1, all1 = steal_ticks()
        row["steal_share"] = round((steal1 - steal0) / max(1, all1 - all0), 4)
        print(json.dumps(row), flush=True)
        rows.append(row)
    dist.destroy_process_group()
    (args.out / f"host_speed_{args.tag}.json").write_text(json.dumps(
        {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "nproc": os.cpu_count(),
         "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rounds": rows}, indent=1))


if __name__ == "__main__":
    main()
