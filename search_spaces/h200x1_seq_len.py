"""One H200: llama-1b at sequence length 2048 (batch 16, the same tokens per step as batch 32 at
1024 in h200x1_precision.py), bf16 and FP8, compiled, fused attention: attention's share of the
step grows with the sequence, and FP8 speeds only the Linear layers."""

from slmray.space import SearchSpace

SPACE = SearchSpace(
    model=["llama-1b"],
    per_device_batch=[16],
    num_gpus=[1],
    gpu_type=["H200"],
    attention=["sdpa"],
    strategy=["single"],
    compile=[True],
    precision=["bf16", "fp8"],
    seq_len=2048,
    steps=10,
    warmup_steps=3,
    data="stdlib",
    search="grid",
    objectives=["max:tokens_per_s", "max:tokens_per_usd"],
    prices="aws",
)
