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

import dataclasses
import math
from functools import lru_cache
from dataclasses import dataclass

from slmray.catalog.profiles import GPUProfile
from slmray.predict import opcount
from slmray.train.config import ModelConfig
from slmray.train.presets import PRESETS

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
    ("llama", "eager"): (232, 146), ("llama", "sdpa"): (187, 116),
    ("neox", "eager"): (217, 128), ("neox", "sdpa"): (172, 98),
}
"""(ops, kernels) one block of the layout's tiny preset (`REFERENCE`) dispatches forward and backward
under bf16 autocast, counted on the CPU by `slmray.predict.profile.count_block_ops`
(tests/test_profile.py recounts them).  A profile's own counts, made on its GPU, replace them (there
RMSNorm is one fused op); `block_ops` scales either to the model configured."""
HEAD_OPS = 60
"""Ops of the embedding, the output head and the loss of a reference preset, forward and backward
(about a block's third; `opcount.count(PRESETS["tiny"], "sdpa").head_ops` counts 60); `head_ops`
scales it to the model configured."""
REFERENCE = {"llama": "tiny", "neox": "tiny-neox"}
"""The preset of each layout whose counts `BLOCK_OPS` and a profile's `host_op` rows are."""
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
                     profile: GPUProfile | None, backend: str = "native") -> float:
    """Kernels one optimizer step launches on one device."""
    if compiled:
        block, head = COMPILED_KERNELS_PER_BLOCK, HEAD_OPS / 2
    else:
        block, head = block_ops(m, attention, profile, backend)[1], head_ops(m, attention, backend) / 2
    return micro * (m.n_layer * block * recompute + head) + OPTIMIZER_OPS


def block_ops(m: ModelConfig, attention: str, profile: GPUProfile | None, backend: str = "native") -> tuple[float, float]:
    """(ops, kernels) one block of `m` dispatches forward and backward on the device, un-compiled.

    The counts measured for the layout's reference preset (the profile's, made on its GPU, else
    `BLOCK_OPS`, made on the CPU), each scaled by (this model's CPU count) / (the reference's CPU
    count), both counted by `opcount.count` the same way.  A ratio rather than a difference: the
    GPU runs some of what the CPU dispatches as several ops as one (RMSNorm, a fused op there), so
    a block with more of the same modules (Qwen3's q/k RMSNorm, Transformers' own decoder layers)
    has proportionally more ops on both, not the CPU's extra ops added to the GPU's count.  For
    the reference preset itself the ratio is 1: the measured counts as they were."""
    family, kind = layout(m), opcount.attention_kind(attention)
    base = (profile.block_ops(family, kind) if profile is not None else None) or BLOCK_OPS[(family, kind)]
    if _as_reference(m, backend):
        return base
    own, ref = opcount.count(m, kind, backend), opcount.count(PRESETS[REFERENCE[family]], kind)
    return base[0] * own.block_ops / ref.block_ops, base[1] * own.block_kernels / ref.block_kernels


@lru_cache(maxsize=None)
def _as_reference(m: ModelConfig, backend: str) -> bool:
    """Whether `m` dispatches its reference preset's ops (the same switches natively): a ratio of 1,
    known without counting (the paper's presets, in every dry run)."""
    return backend == "native" and m.family != "transformers" and (
        _switches(m) == _switches(PRESETS[REFERENCE[layout(m)]]))


def _switches(m: ModelConfig) -> dict:
    """`opcount.tiny_model(m)` but its widths (a head's width changes no op's count)."""
    tiny = dataclasses.asdict(opcount.tiny_model(m))
    return {**tiny, "d_model": None, "head_dim": tiny["head_dim"] is not None}


def head_ops(m: ModelConfig, attention: str, backend: str = "native") -> float:
    """Ops of the embedding, the final norm, the positions, the mask and the loss of `m`: `HEAD_OPS`
    scaled as `block_ops` scales a block (Transformers' models build their rotary tables and mask
    every forward: about half as many ops again)."""
    if _as_reference(m, backend):
        return HEAD_OPS
    kind, reference = opcount.attention_kind(attention), PRESETS[REFERENCE[layout(m)]]
    return HEAD_OPS * opcount.count(m, kind, backend).head_ops / opcount.count(reference, kind).head_ops


def host_s(m: ModelConfig, attention: str, compiled: bool, recompute: float, micro: int,
           profile: GPUProfile | None, backend: str = "native", compiled_block_s: float | None = None) -> float:
    """Host seconds to dispatch one optimizer step: every op un-compiled; compiled, one region per
    block (`compiled_block_s`, fitted: `Calibration.compiled_block_host_s`; else the profile's
    `compiled_block`, else its `compiled_call`) and one for the head, forward and backward, plus
    the optimizer's ops."""
    op_s = (profile.host_op_s if profile is not None else None) or PRIOR_HOST_OP_S
    if compiled:
        call_s = (profile.compiled_call_s if profile is not None else None) or PRIOR_COMPILED_CALL_S
        block_s = compiled_block_s or (profile.compiled_block_s if profile is not None else None) or call_s
        return micro * (m.n_layer * recompute * block_s + call_s) + OPTIMIZER_OPS * op_s
    ops = block_ops(m, attention, profile, backend)[0]
    return (micro * (m.n_layer * ops * recompute + head_ops(m, attention, backend)) + OPTIMIZER_OPS) * op_s
