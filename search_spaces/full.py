"""The seed paper's grid (Ashkboos et al. 2024, Sec. 3): LLaMA models of 100M to 2B parameters,
sequence length 1024, per-device batch 4 to 64, 1 to 64 GPUs of three types, vanilla vs
FlashAttention-2 (PyTorch's built-in kernel), DDP and two FSDP modes, 3 repeats of 10
measured steps.  2,520 trials: run it on a cluster (`cluster/mixed.yaml`), with
`--dry-run` first to see what it costs and which trials are predicted to run out of memory."""

from slmray.space import SearchSpace

SPACE = SearchSpace(
    model=["llama-100m", "llama-500m", "llama-1b", "llama-2b"],
    per_device_batch=[4, 8, 16, 32, 64],
    num_gpus=[1, 2, 4, 8, 16, 32, 64],
    gpu_type=["A100-40GB", "A100-80GB", "H100-80GB"],
    attention=["eager", "sdpa-flash"],
    strategy=["ddp", "fsdp", "fsdp_grad_op"],
    seq_len=1024,
    steps=10,
    repeats=3,
    warmup_steps=3,
    data="stdlib",
    search="grid",
    objectives=["max:tokens_per_s", "max:tokens_per_usd"],
    prices="aws",
)
