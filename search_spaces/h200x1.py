"""One H200 (the lent `nvidia-h200` machine): the paper's four LLaMA models at a small and a
large per-device batch, eager against fused attention, on one GPU; batch 16 matches
`h100x1.py` so the two GPU types can be compared per dollar.  Run with `--no-prune` (as
committed in benchmarks/results/sweeps/sweep_h200x1.parquet) the out-of-memory trials are measured,
which checks the estimator's predictions on a GPU it was never calibrated on; without it they
are recorded as pruned and not run."""

from slmray.space import SearchSpace

SPACE = SearchSpace(
    model=["llama-100m", "llama-500m", "llama-1b", "llama-2b"],
    per_device_batch=[16, 64],
    num_gpus=[1],
    gpu_type=["H200"],
    attention=["eager", "sdpa"],
    strategy=["ddp"],
    seq_len=1024,
    steps=10,
    warmup_steps=3,
    data="stdlib",
    search="grid",
    objectives=["max:tokens_per_s", "max:tokens_per_usd"],
    prices="aws",
)
