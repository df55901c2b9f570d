"""One H100: the compiled half of `h100x1_models.py` for the smallest and the largest vocabulary
(SmolLM2-360M, 49,152; Qwen2.5-1.5B, 151,936), native against Transformers, standard against
chunked loss (Liger's kernel runs beside a compiled head, not in it)."""

from slmray.space import SearchSpace

SPACE = SearchSpace(
    model=["smollm2-360m", "qwen2.5-1.5b"],
    per_device_batch={"smollm2-360m": [32], "qwen2.5-1.5b": [16]},
    num_gpus=[1],
    gpu_type=["H100-80GB"],
    attention=["sdpa"],
    strategy=["single"],
    backend=["native", "transformers"],
    loss_kernel=["standard", "chunked"],
    compile=[True],
    seq_len=1024,
    steps=10,
    warmup_steps=3,
    data="stdlib",
    search="grid",
    objectives=["max:tokens_per_s", "max:tokens_per_usd"],
    prices="aws",
)
