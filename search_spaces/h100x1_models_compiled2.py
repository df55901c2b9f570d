"""One H100: the compiled half of `h100x1_models.py` for Qwen3-0.6B and Llama-3.2-1B (the other two
models are `h100x1_models_compiled.py`), native against Transformers, standard against chunked loss."""

from slmray.space import SearchSpace

SPACE = SearchSpace(
    model=["qwen3-0.6b", "llama-3.2-1b"],
    per_device_batch={"qwen3-0.6b": [16], "llama-3.2-1b": [16]},
    num_gpus=[1],
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
