"""The small-problem side of the step-time model: what one step asks of the device kernel by kernel
(GEMM shapes, kernel counts) and of the host, timed with the constants a GPU profile measured
(`slmray.catalog.profiles`, `python -m slmray.predict.profile`) or, for a GPU type without one,
from its datasheet with the stated priors below.

A step stops being a sum of peak-rate rooflines when kernels are small:
- a GEMM runs its output in tiles, the tiles in waves over the SMs: a last wave part-full, or a
  short K (each tile's prologue and epilogue), lowers its rate (`shape_efficiency`);
- every kernel has a fixed cost on the device (`kernel_s`, times the kernels of a step);
- the host must dispatch every op; un-compiled, autograd and autocast cost tens of microseconds
  an op, and the device idles when the host is slower than its kernels (`host_s`); a compiled
  block is one region per call forward and one backward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from slmray.catalog.profiles import GPUProfile
from slmray.train.config import ModelConfig

TILE = 128
"""Output tile edge of the cuBLAS/CUTLASS bf16 tensor-core kernels the shape model assumes (128 x 128)."""
TILE_K_OVERHEAD = 128
"""Prior: a tile's prologue and epilogue cost about two 64-deep k-steps, so K runs at K / (K + 128)."""
SPLIT_K_MIN = 512
"""Prior: cuBLAS splits K (each split at least this long) when the tiles cannot fill the SMs."""
PRIOR_KERNEL_S = 4e-6
"""Prior without a profile: the device time a tiny kernel takes back to back (launch, ramp, drain).
Stated, not measured on that GPU; a profiled GPU uses its own."""
PRIOR_HOST_OP_S = 15e-6
"""Prior without a profile: host seconds per op eager PyTorch dispatches with autograd and autocast
on a server CPU.  Stated, not measured there; the host's speed is the machine's, not the GPU's."""
PRIOR_COMPILED_CALL_S = 4e-4
"""Prior without a profile: host seconds of one compiled region called forward and backward."""
BLOCK_OPS = {
    ("llama", "eager"): (238, 150), ("llama", "sdpa"): (191, 116),
    ("neox", "eager"): (222, 130), ("neox", "sdpa"): (176, 98),
}
"""(ops, kernels) one block dispatches forward and backward under bf16 autocast, counted on the CPU
by `slmray.predict.profile.count_block_ops` (tests/test_profile.py recounts them).  A profile's own
counts, made on its GPU, replace them (there RMSNorm is one fused op)."""
HEAD_OPS = 60
"""Ops of the embedding, the output head and the loss, forward and backward (about a block's third)."""
OPTIMIZER_OPS = 20
"""Ops of gradient clipping (foreach norms), fused AdamW and the learning-rate update."""
COMPILED_KERNELS_PER_BLOCK = 30
"""Kernels of a compiled block forward and backward: its GEMMs (4 Linear layers, 3 GEMMs each),
attention forward and backward, and the fused element-wise kernels between them."""


def layout(m: ModelConfig) -> str:
    """The block layout the step and memory models count: the family's, and llama for a family
    transformers model, an approximation (its blocks are Transformers' own, of any architecture):
    its parameter count is exact, its shapes Transformers' normalised ones; `Estimate.approximate`
    flags it."""
    return "neox" if m.family == "neox" else "llama"


def linear_shapes(m: ModelConfig) -> list[tuple[int, int, bool]]:
    """(in_features, out_features, in_every_block) of the GEMMs a token goes through."""
    d, h = m.d_model, m.d_mlp
    mlp = [(d, 2 * h, True), (h, d, True)] if layout(m) == "llama" else [(d, h, True), (h, d, True)]
    return [(d, m.q_dim + 2 * m.kv_dim, True), (m.q_dim, d, True), *mlp, (d, m.vocab_size, False)]


def linear_gemms(tokens: int, fan_in: int, fan_out: int) -> list[tuple[int, int, int, bool]]:
    """(m, n, k, is the weight gradient) of a Linear's three GEMMs: forward, input gradient, weight
    gradient (whose K is the tokens)."""
    return [(tokens, fan_out, fan_in, False), (tokens, fan_in, fan_out, False), (fan_out, fan_in, tokens, True)]


def shape_efficiency(m: int, n: int, k: int, sms: int) -> float:
    """Share of a full-wave, long-K GEMM's rate that a GEMM of this shape reaches, from its tiles:
    waves of TILE x TILE tiles over `sms` SMs (split along K when too few tiles fill them), and the
    fixed cost of each tile along K."""
    tiles = math.ceil(m / TILE) * math.ceil(n / TILE)
    split = max(1, min(sms // tiles, k // SPLIT_K_MIN)) if tiles < sms else 1
    units = tiles * split
    waves = math.ceil(units / sms)
    k_split = k / split
    return units / (waves * sms) * k_split / (k_split + TILE_K_OVERHEAD)


@dataclass(frozen=True)
class Gemm:
    m: int
    n: int
    k: int
    weight_gradient: bool
    """K is the tokens (the weight gradient); else M is."""
    count: float
    """How many times a step runs it (layers, recomputation, micro-batches)."""
    kind: str
    """aligned, misaligned (bf16 with a dimension not a multiple of 8, un-compiled), fp8, fp8-rowwise."""

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.n * self.k * self.count


def matmul_terms(gemms: tuple[Gemm, ...], peak_flops: float, sms: int, profile: GPUProfile | None) -> dict[str, float]:
    """Seconds of the step's GEMMs, by term: `aligned` and `misaligned` at 100% of the datasheet peak
    and the shape's efficiency (the calibration's efficiencies divide them), `profiled` as the
    profile measured them (a bf16 GEMM whose shape the profile has); FP8 GEMMs are left to the caller."""
    out = {"aligned": 0.0, "misaligned": 0.0, "profiled": 0.0}
    for g in gemms:
        if g.kind not in ("aligned", "misaligned"):
            continue
        measured = profile.gemm_seconds(g.m, g.n, g.k, weight_gradient=g.weight_gradient) if profile is not None else None
        if measured is not None:
            out["profiled"] += measured * g.count
        else:
            out[g.kind] += g.flops / (peak_flops * shape_efficiency(g.m, g.n, g.k, sms))
    return out


def kernels_per_step(m: ModelConfig, attention: str, compiled: bool, recompute: float, micro: int,
                     profile: GPUProfile | None) -> float:
    """Kernels one optimizer step launches on one device."""
    if compiled:
        block = COMPILED_KERNELS_PER_BLOCK
    else:
        block = _block_ops(layout(m), attention, profile)[1]
    return micro * (m.n_layer * block * recompute + HEAD_OPS / 2) + OPTIMIZER_OPS


def _block_ops(family: str, attention: str, profile: GPUProfile | None) -> tuple[int, int]:
    kind = "eager" if attention in ("eager", "sdpa-math") else "sdpa"
    measured = profile.block_ops(family, kind) if profile is not None else None
    return measured or BLOCK_OPS[(family, kind)]


def host_s(m: ModelConfig, attention: str, compiled: bool, recompute: float, micro: int,
           profile: GPUProfile | None) -> float:
    """Host seconds to dispatch one optimizer step: every op un-compiled; compiled, one region per
    block and the head, forward and backward, plus the optimizer's ops."""
    op_s = (profile.host_op_s if profile is not None else None) or PRIOR_HOST_OP_S
    if compiled:
        call_s = (profile.compiled_call_s if profile is not None else None) or PRIOR_COMPILED_CALL_S
        return micro * (m.n_layer * recompute + 1) * call_s + OPTIMIZER_OPS * op_s
    ops = _block_ops(layout(m), attention, profile)[0]
    return (micro * (m.n_layer * ops * recompute + HEAD_OPS) + OPTIMIZER_OPS) * op_s
