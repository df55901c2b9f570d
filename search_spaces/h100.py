"""One 8x H100 node (AWS p5.48xlarge, `cluster/h100.yaml`): the paper's LLaMA models on 1 to 8
GPUs, DDP against both FSDP modes, vanilla against flash attention."""

from slmray.space import SearchSpace

SPACE = SearchSpace(
    model=["llama-100m", "llama-500m", "llama-1b", "llama-2b"],
    per_device_batch=[4, 8, 16, 32, 64],
    num_gpus=[1, 2, 4, 8],
    gpu_type=["H100-80GB"],
    attention=["eager", "sdpa-flash"],
    strategy=["ddp", "fsdp", "fsdp_grad_op"],
    seq_len=1024,
    steps=10,
    repeats=3,
    data="stdlib",
    search="grid",
    objectives=["max:tokens_per_s", "max:tokens_per_usd"],
    prices="aws",
)
