"""One H100 (the lent `nvidia-h100-x1` machine): the paper's four LLaMA models at per-device
batch 8 to 64, eager against fused attention, on one GPU; the batches that do not fit are
recorded as out of memory (pruning off: `--no-prune`)."""

from slmray.space import SearchSpace

SPACE = SearchSpace(
    model=["llama-100m", "llama-500m", "llama-1b", "llama-2b"],
    per_device_batch=[8, 16, 32, 64],
    num_gpus=[1],
    gpu_type=["H100-80GB"],
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
