"""The trainer of an earlier commit against today's, on the same GPU in one call: compiled SDPA
llama-100m at batch 64 and llama-1b at batch 32 (seq 1024, 3 repeats of 10 steps after 3 warm-up,
strategy single, synthetic tokens), the steps `trainer/trainer_throughput_h100.csv` calibrates on.

    git archive cace4d0 slmray benchmarks/trainer_throughput.py | (mkdir -p ab_old && tar -x -C ab_old)
    for w in old new old; do python3 -P benchmarks/trainer_ab.py $w; done
    python3 -P benchmarks/trainer_ab.py new llama-3.2-1b:16 smollm2-360m:32   # other steps (MODEL:BATCH)

`old` imports the archived package (its `benchmarks/trainer_throughput.measure`), `new` the slmray
first on `sys.path` (this checkout's, or another tree's: `PYTHONPATH=other_tree python3 -P ... new`);
`-P` keeps the script's folder off `sys.path`, so each process sees one slmray.  Each line:
`AB which model batch tokens/s step-median-s`.  Results: benchmarks/results/trainer/README.md
(`trainer_ab_h100.txt`, the slowdown; `qkv_split_h100.txt`, its cause).
"""

import gc
import sys

import torch

RUNS = (("llama-100m", 64), ("llama-1b", 32))


def main(which: str, runs: tuple[tuple[str, int], ...] = RUNS) -> None:
    out = []
    if which == "old":
        sys.path[:0] = ["ab_old", "ab_old/benchmarks"]
        from trainer_throughput import measure

        for model, batch in runs:
            r = measure(model, 1024, batch, "sdpa", True, 10, 3)
            out.append((model, batch, r["tokens_per_s"], r["step_time_median_s"]))
    else:
        from slmray.train.config import TrainConfig
        from slmray.train.loop import run
        from slmray.train.presets import get_model

        for model, batch in runs:
            torch.compiler.reset()
            r = run(TrainConfig(model=get_model(model), attention="sdpa", per_device_batch=batch, seq_len=1024,
                                steps=10, repeats=3, warmup_steps=3, compile=True, data="synthetic", device="cuda"))
            out.append((model, batch, r.tokens_per_s, r.step_time_median_s))
            gc.collect()
            torch.cuda.empty_cache()
    for row in out:
        print("AB", which, *row, flush=True)


def _runs(args: list[str]) -> tuple[tuple[str, int], ...]:
    """MODEL:BATCH arguments as (model, batch) pairs; `RUNS` when there are none."""
    try:
        return tuple((m, int(b)) for m, b in (a.split(":") for a in args)) or RUNS
    except ValueError:
        sys.exit(f"trainer_ab.py: give runs as MODEL:BATCH, not {' '.join(args)}")


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("old", "new"):
        sys.exit("usage: trainer_ab.py old|new [MODEL:BATCH ...]")
    main(sys.argv[1], _runs(sys.argv[2:]))
