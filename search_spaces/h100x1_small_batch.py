"""The small-problem regime on one H100-80GB, uncompiled (issue: predictions you can bet money on,
item 5): the paper's four LLaMA models and pythia-410m at per-device batch 4 to 64, eager against
fused attention, one GPU.  What does not fit is recorded as out of memory (pruning off:
`--no-prune`).  The compiled half is `h100x1_small_batch_compiled.py`; the two are separate grids so
that the uncompiled one, a fifth of the device time, is whole first."""

from slmray.space import SearchSpace

SPACE = SearchSpace(
    model=["llama-100m", "llama-2b", "llama-1b", "pythia-410m", "llama-500m"],
    per_device_batch=[4, 8, 16, 32, 64],
    num_gpus=[1],
    gpu_type=["H100-80GB"],
    attention=["sdpa", "eager"],
    compile=[False],
    strategy=["ddp"],
    seq_len=1024,
    steps=10,
    warmup_steps=3,
    data="stdlib",
    search="grid",
    objectives=["max:tokens_per_s", "max:tokens_per_usd"],
    prices="aws",
)
