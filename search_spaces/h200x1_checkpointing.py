"""One H200: activation checkpointing off and on for llama-2b, eager and fused attention, at a
batch (32) where the estimate has eager without checkpointing run out of memory and the others
fit: memory, not compute, is what caps the batch there.  Compiled, bf16.  Run with --no-prune
(benchmarks/sweep_precision.sh) so the out-of-memory trial is measured, not predicted."""

from slmray.space import SearchSpace

SPACE = SearchSpace(
    model=["llama-2b"],
    per_device_batch=[32],
    num_gpus=[1],
    gpu_type=["H200"],
    attention=["eager", "sdpa"],
    strategy=["single"],
    compile=[True],
    activation_checkpointing=[False, True],
    seq_len=1024,
    steps=10,
    warmup_steps=3,
    data="stdlib",
    search="grid",
    objectives=["max:tokens_per_s", "max:tokens_per_usd"],
    prices="aws",
)
