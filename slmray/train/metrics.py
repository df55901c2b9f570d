"""Each throughput metric defined once: FLOPs per token, tokens/s, MFU, step-time statistics,
and the device-synchronised step timer that measures them."""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING

from slmray.catalog.gpus import spec_for
from slmray.train.config import ModelConfig

if TYPE_CHECKING:
    import torch


def flops_per_token(model: ModelConfig, seq_len: int, include_embeddings: bool = True) -> float:
    """Training FLOPs per token: 6 N + 12 L (n_head head_dim) T.

    6 N: forward (2 N) and backward (4 N) multiply-adds of every parameter, N counting the
    input and output embeddings (PaLM's convention, Chowdhery et al. 2022, App. B; nanoGPT's
    `estimate_mfu`); a tied embedding is one matrix, counted once (its GEMM is the output
    head's).  Grouped-query attention is in N through its smaller k/v projection.  12 L
    (n_head head_dim) T: the attention scores Q K^T and the weighted sum P V, each 2 T n_head
    head_dim FLOPs per token and layer forward (d T where head_dim = d / n_head; GQA shares
    k/v heads but every query head still attends), times 3 for forward plus backward; the
    causal mask's skipped half is counted, as PaLM does.  With `include_embeddings=False`, N
    drops the embedding and output-projection parameters (Kaplan et al.'s non-embedding count).
    A family transformers model (any architecture Transformers has) uses its stored count as N and
    its normalised shape for the attention term: the same formula, an approximation for blocks
    unlike these (no attention FLOPs of other kinds are counted).
    """
    n = model.num_params - (0 if include_embeddings else model.num_embedding_params)
    return 6.0 * n + 12.0 * model.n_layer * model.q_dim * seq_len


def tokens_per_second(tokens: int, seconds: float) -> float:
    return tokens / seconds if seconds > 0 else float("nan")


def peak_flops(gpu: str, dtype: str = "bf16") -> float | None:
    """Dense BF16 (or, with dtype `fp8`, FP8) peak of a GPU in FLOP/s; None for the CPU, an
    unknown GPU, or FP8 on a GPU without FP8 tensor cores."""
    spec = spec_for(gpu)
    if spec is None:
        return None
    tflops = spec.peak_fp8_tflops if dtype == "fp8" else spec.peak_bf16_tflops
    return tflops * 1e12 if tflops else None


def mfu(tokens_per_s_per_gpu: float, flops_per_tok: float, gpu: str, dtype: str = "bf16") -> float | None:
    """Model FLOPs utilisation: achieved model FLOP/s over the GPU's dense BF16 peak (`dtype`
    fp8: its dense FP8 peak).  Every run, FP8 ones too, has the BF16 one, so MFU compares across
    precisions; the FP8 one says how far an FP8 run is from its own ceiling, which is never
    reached in full: the attention, the output head and misaligned Linear layers stay bf16."""
    peak = peak_flops(gpu, dtype)
    return tokens_per_s_per_gpu * flops_per_tok / peak if peak else None


def median_and_iqr(values: list[float]) -> tuple[float, float]:
    """Median and inter-quartile range; the IQR is 0 for fewer than two values."""
    if not values:
        return float("nan"), float("nan")
    if len(values) < 2:
        return float(values[0]), 0.0
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return statistics.median(values), q3 - q1


class StepTimer:
    """Times consecutive steps from boundary marks, without synchronising inside the loop.

    On CUDA each `mark()` records an event on the current stream, so a step's time is what
    the GPU spent between two boundaries, host stalls included; `durations()` synchronises
    once at the end.  On the CPU, work is synchronous and the host clock is used.
    """

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self._marks: list = []

    def mark(self) -> None:
        if self.cuda:
            import torch  # the planner and estimator use this module's formulas without torch

            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._marks.append(event)
        else:
            self._marks.append(time.perf_counter())

    def durations(self) -> list[float]:
        """Seconds between consecutive marks."""
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            return [a.elapsed_time(b) / 1e3 for a, b in zip(self._marks, self._marks[1:])]
        return [b - a for a, b in zip(self._marks, self._marks[1:])]
