"""Eight H200s of one host (the lent `nvidia-h200-x8` machine, or `-x4` with num_gpus up to 4):
how tokens/s and tokens/$ scale from 1 to 8 GPUs under DDP and both FSDP modes, for the
paper's four LLaMA models, eager against fused attention, a small and a large batch."""

from slmray.space import SearchSpace

SPACE = SearchSpace(
    model=["llama-100m", "llama-500m", "llama-1b", "llama-2b"],
    per_device_batch=[8, 32],
    num_gpus=[1, 2, 4, 8],
    gpu_type=["H200"],
    attention=["eager", "sdpa"],
    strategy=["ddp", "fsdp", "fsdp_grad_op"],
    seq_len=1024,
    steps=10,
    warmup_steps=3,
    data="stdlib",
    search="grid",
    objectives=["max:tokens_per_s", "max:tokens_per_usd"],
    prices="aws",
)
