"""Smoke sweep: the tiny model on this machine's CPU (or GPU), 1 and 2 workers, two attention
backends, on real text.  Finishes in a few minutes on 2 cores; the README's first command."""

from slmray.space import SearchSpace

SPACE = SearchSpace(
    model=["tiny"],
    per_device_batch=[4],
    num_gpus=[1, 2],
    attention=["eager", "sdpa"],
    strategy=["ddp"],
    seq_len=64,
    steps=5,
    warmup_steps=2,
    data="stdlib",
    search="grid",
    objectives=["max:tokens_per_s", "min:final_loss"],
)
