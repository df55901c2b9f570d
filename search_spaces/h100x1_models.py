"""One H100 (`nvidia-h100-x1`): today's small models (#25), native trainer against the Transformers
stack, the standard loss against the chunked and Liger's fused linear+cross-entropy, SDPA, no
compile, per-device batch 16 (32 for SmolLM2-360M), sequence 1024; out of memory is recorded
(`--no-prune`).  The compiled half is `h100x1_models_compiled.py`."""

from slmray.space import SearchSpace

SPACE = SearchSpace(
    model=["smollm2-360m", "qwen3-0.6b", "llama-3.2-1b", "qwen2.5-1.5b"],
    per_device_batch={"smollm2-360m": [32], "qwen3-0.6b": [16], "llama-3.2-1b": [16], "qwen2.5-1.5b": [16]},
    num_gpus=[1],
    gpu_type=["H100-80GB"],
    attention=["sdpa"],
    strategy=["single"],
    backend=["native", "transformers"],
    loss_kernel=["standard", "chunked", "liger"],
    compile=[False],
    seq_len=1024,
    steps=10,
    warmup_steps=3,
    data="stdlib",
    search="grid",
    objectives=["max:tokens_per_s", "max:tokens_per_usd"],
    prices="aws",
)
