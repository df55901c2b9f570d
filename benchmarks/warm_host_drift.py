"""Does a warm group's host slow down as it runs configuration after configuration?

    python benchmarks/warm_host_drift.py --out DIR [--rounds 2] [--freeze]   # on a GPU: DIR/warm_host_drift*.json

Small steps are the host's (an un-compiled step dispatches every op; a compiled one calls a region
per block), and the small-batch grids measured a block 1.8x slower late in one warm group
(pythia-410m, the 31st configuration) than early in another (pythia-160m, the first).  One process, one NCCL process group of one rank (a warm Ray
Train group of one GPU), runs probe configurations whose steps the host sets, then fillers (other
models, compiled and not, as a grid would), then the probes again, each followed by the warm
group's clean-up (`slmray.sweep.warm.clean_up_after_configuration`).  Recorded per run: the
median step time, the Python objects the collector tracks, and the collector's passes and seconds
during the run (`gc.callbacks`).  `--freeze` moves what survives each clean-up out of the
collector's reach (`gc.freeze`) before the next configuration."""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

from warm_memory import config, one_rank_group  # this folder is the script's: one configuration as the sweeps run it

PROBES = [("pythia-160m", 4, "sdpa", False), ("pythia-160m", 4, "sdpa", True)]
FILLERS = [("llama-1b", 4, "sdpa", True), ("llama-500m", 4, "eager", False), ("pythia-410m", 8, "sdpa", True),
           ("llama-100m", 8, "eager", True), ("llama-2b", 4, "sdpa", False)]


class CollectorClock:
    """Passes and seconds of the cyclic garbage collector, by generation, since `reset`."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.reset()
        gc.callbacks.append(self._on)

    def reset(self) -> None:
        self.passes, self.seconds = [0, 0, 0], [0.0, 0.0, 0.0]

    def _on(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        elif self.started is not None:
            self.passes[info["generation"]] += 1
            self.seconds[info["generation"]] += time.perf_counter() - self.started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=2, help="probe, fillers, ... probe: rounds of fillers (default: 2)")
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() after each clean-up")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch
    import torch.distributed as dist

    from slmray.sweep.warm import clean_up_after_configuration
    from slmray.train.loop import run

    one_rank_group(29512)
    clock, rows = CollectorClock(), []
    sequence = [*((p, "probe") for p in PROBES)]
    for _ in range(args.rounds):
        sequence += [*((f, "filler") for f in FILLERS), *((p, "probe") for p in PROBES)]
    for i, ((model, batch, attention, compiled), role) in enumerate(sequence, start=1):
        clock.reset()
        result = run(config(model, batch, attention, compiled))
        row = {"run": i, "role": role, "model": model, "batch": batch, "attention": attention, "compile": compiled,
               "status": result.status, "step_ms": 1e3 * result.step_time_median_s if result.status == "ok" else None,
               "gc_tracked": len(gc.get_objects()), "gc_passes": list(clock.passes),
               "gc_s": [round(s, 4) for s in clock.seconds], "freeze": args.freeze}
        clean_up_after_configuration(compiled=compiled)
        if args.freeze:
            gc.freeze()
        print(json.dumps(row), flush=True)
        rows.append(row)
    dist.destroy_process_group()
    name = "warm_host_drift_freeze.json" if args.freeze else "warm_host_drift.json"
    (args.out / name).write_text(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                                             "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
