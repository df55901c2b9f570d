"""slmray: measure which GPUs, batch sizes, attention kernels and parallelism give small
language models the most tokens per second and per dollar, with Ray Tune and Ray Train."""

__version__ = "0.1.0"
