"""A subset of `h200x1.py` that fits twice into one device call: warm against isolated trials
(`benchmarks/warm_trials.py --space search_spaces/h200x1_warm.py --no-prune`).  llama-100m and
llama-1b at both batches, eager and fused attention: six ok trials and two out of memory."""

from slmray.space import SearchSpace

SPACE = SearchSpace(
    model=["llama-100m", "llama-1b"],
    per_device_batch=[16, 64],
    num_gpus=[1],
    attention=["eager", "sdpa"],
    strategy=["ddp"],
    seq_len=1024,
    steps=10,
    warmup_steps=3,
    data="stdlib",
    search="grid",
    objectives=["max:tokens_per_s", "max:tokens_per_usd"],
    prices="aws",
)
