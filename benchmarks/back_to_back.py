"""Does a configuration measure slower right after a heavy one?  llama-100m b16 sdpa on one GPU,
run in one process (as a warm group runs it) straight after llama-100m b64 eager and again after a
pause, and in fresh processes; with the SM clock nvidia-smi reads before and after each run.

    python benchmarks/back_to_back.py --out DIR        # on a GPU machine: DIR/back_to_back.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import warm_memory  # noqa: E402

PAUSE_S = 25.0
"""About the gap between isolated trials (`benchmarks/results/warm_trials/warm_trials_h200_2026-12-04.md`)."""


def sm_clock_mhz() -> int | None:
    out = subprocess.run(["nvidia-smi", "--query-gpu=clocks.sm", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True)
    return int(out.stdout.split()[0]) if out.returncode == 0 and out.stdout.strip() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch
    import torch.distributed as dist

    from slmray.sweep.warm import clean_up_after_configuration
    from slmray.train.loop import run

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    torch.cuda.set_device(0)
    dist.init_process_group("nccl", rank=0, world_size=1)
    heavy = warm_memory.config("llama-100m", 64, "eager")
    light = warm_memory.config("llama-100m", 16, "sdpa").replace(repeats=args.repeats)
    rows = []
    for label, cfg, pause in [("heavy", heavy, 0), ("light right after heavy", light, 0), ("light after a pause", light, PAUSE_S),
                              ("heavy", heavy, 0), ("light right after heavy", light, 0), ("light after a pause", light, PAUSE_S)]:
        time.sleep(pause)
        before = sm_clock_mhz()
        r = run(cfg)
        rows.append({"run": label, "tokens_per_s": r.tokens_per_s, "tokens_per_s_std": r.tokens_per_s_std,
                     "step_time_median_s": r.step_time_median_s, "sm_clock_before_mhz": before,
                     "sm_clock_after_mhz": sm_clock_mhz()})
        print(json.dumps(rows[-1]), flush=True)
        clean_up_after_configuration(compiled=False)
    dist.destroy_process_group()
    (args.out / "back_to_back.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
