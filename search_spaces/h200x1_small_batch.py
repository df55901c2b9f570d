"""The small-problem regime on one H200 (issue: predictions you can bet money on, item 5): the
paper's four LLaMA models and pythia-410m at per-device batch 4 to 64, eager against fused
attention, compile off and on, one GPU.  What does not fit is recorded as out of memory
(pruning off: `--no-prune`)."""

from slmray.space import SearchSpace

SPACE = SearchSpace(
    model=["llama-100m", "llama-500m", "llama-1b", "llama-2b", "pythia-410m"],
    per_device_batch=[4, 8, 16, 32, 64],
    num_gpus=[1],
    gpu_type=["H200"],
    attention=["eager", "sdpa"],
    compile=[False, True],
    strategy=["ddp"],
    seq_len=1024,
    steps=10,
    warmup_steps=3,
    data="stdlib",
    search="grid",
    objectives=["max:tokens_per_s", "max:tokens_per_usd"],
    prices="aws",
)
