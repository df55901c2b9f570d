"""Two H200s of one host (the lent `nvidia-h200-x2` machine): DDP against both FSDP modes on
1 and 2 GPUs for the paper's four LLaMA models, eager against fused attention, a small and a
large per-device batch; where DDP stops and FSDP starts to pay (the paper: around 2B, large batches)."""

from slmray.space import SearchSpace

SPACE = SearchSpace(
    model=["llama-100m", "llama-500m", "llama-1b", "llama-2b"],
    per_device_batch=[8, 32],
    num_gpus=[1, 2],
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
