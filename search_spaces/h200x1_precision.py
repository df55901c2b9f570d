"""One H200: bf16 against FP8 (torchao's tensorwise and rowwise recipes) for the paper's four
LLaMA models and pythia-410m and -1b, compiled, fused attention, one batch per model that fits
(predicted by slmray.predict.estimate; llama-1b at 32, where the issue's Bar compares the two), so each
precision is compared with the others at the same configuration.  Run by
benchmarks/sweep_precision.sh with h200x1_checkpointing.py and h200x1_seq_len.py."""

from slmray.space import SearchSpace

SPACE = SearchSpace(
    # llama-1b first: the comparison the Bar asks for runs before anything else
    model=["llama-1b", "llama-2b", "llama-100m", "llama-500m", "pythia-410m", "pythia-1b"],
    per_device_batch={"llama-1b": [32], "llama-2b": [32], "llama-100m": [64], "llama-500m": [64],
                      "pythia-410m": [64], "pythia-1b": [32]},
    num_gpus=[1],
    gpu_type=["H200"],
    attention=["sdpa"],
    strategy=["single"],
    compile=[True],
    precision=["bf16", "fp8", "fp8-rowwise"],
    seq_len=1024,
    steps=10,
    warmup_steps=3,
    data="stdlib",
    search="grid",
    objectives=["max:tokens_per_s", "max:tokens_per_usd"],
    prices="aws",
)
