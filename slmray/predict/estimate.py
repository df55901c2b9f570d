"""Predict a configuration's peak GPU memory and step time before spending GPU time on it.

Memory is counted tensor by tensor from what `model.py`, `parallel.py` and `train.py` keep
alive, at the two moments one of which is the peak: the start of backward (every saved
activation plus the loss's (tokens, vocab) tensors) and the end of backward (every gradient).
Step time is a roofline sum: GEMM FLOPs over the GPU's achievable matrix rate, fused attention
FLOPs over its own rate, memory-bound work (element-wise kernels, the loss, the optimizer)
over HBM bandwidth, plus the part of the collectives that the strategy cannot hide behind
compute.  FP8 runs (`precision`) move the GEMMs of the Linear layers `fp8.convertible` takes to
the GPU's FP8 rate (per recipe), add their casts' HBM traffic, and keep smaller weight copies and
saved inputs.  The few constants fitted to measurements live in `CALIBRATION`; everything else is
arithmetic on the model shape and the GPU table (`gpus.csv`).

On the CPU (`gpu_type="cpu"`) `estimate` returns a rough answer, flagged `rough=True`: fp32
memory, out of memory only when one process alone would need more than the machine's
physical memory, and tokens/s from a conservative CPU FLOP rate, so that a dry run of a CPU
sweep has something to show.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from dataclasses import dataclass

from slmray.catalog.gpus import CPU, GPUSpec, arch_specs, spec_for
from slmray.catalog.instances import instance_types
from slmray.catalog.profiles import GPUProfile, profile_for
from slmray.predict import collectives, kernels, opcount
from slmray.predict.collectives import Network
from slmray.predict.interval import tokens_per_s_interval
from slmray.predict.kernels import Gemm, linear_shapes
from slmray.train import fp8
from slmray.train.config import GQA_DEFAULT, ModelConfig, TrainConfig, loss_chunk_tokens
from slmray.train.metrics import flops_per_token

GIB = 1 << 30
FORWARD_SHARE = 1 / 3
"""Share of a step's compute in forward: backward runs two GEMMs for each forward one."""
LOSS_TRAFFIC = {"standard": (42, 12), "chunked": (42, 12), "liger": (10, 10), "cce": (0, 0)}
"""HBM bytes per logit of the loss's element-wise work, (un-compiled, compiled): standard and chunked
run the same ops (bf16 logits, fp32 upcast, log-softmax and its backward), compiled into one kernel or
not; Liger's kernel rewrites the logits in place (written, read and written, read by two GEMMs, bf16);
cce keeps them on chip.  Counted, not fitted."""
RECOMPUTING_LOSS_KERNELS = ("chunked", "cce")
CALIBRATED_ARCH = "hopper"
"""The architecture of the GPU type `CALIBRATION` was fitted on (an H100).  Another architecture's
datasheet path scales the fitted GEMM and attention efficiencies by its published achievable
share of peak over Hopper's (`slmray/catalog/architectures.csv`): the fit carries what a training
step adds beside the kernels (layouts, launch gaps), the ratio what the generation's kernels reach.
What the shares still miss is a whole step's rate, `step_rate_scale` (see `compute_time_s`)."""
FUSED_ATTENTION = ("sdpa", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient", "flash2")
"""Kernels that never store the (T, T) scores; eager and sdpa-math do."""


@dataclass(frozen=True)
class Calibration:
    """Constants fitted to measured runs by `benchmarks/calibrate_estimate.py` (it prints these)."""

    overhead_gib: float
    """Allocations outside the model's tensors: cuBLAS workspaces, the batch, the rotary tables."""
    usable_memory_fraction: float
    """Share of the GPU's nominal memory that allocations can reach before an OOM (CUDA context,
    fragmentation and the driver's reserve take the rest)."""
    compiled_eager_score_bytes: float
    """Bytes per attention-score element Inductor's graph keeps for backward (eager + compile)."""
    matmul_efficiency: float
    """Achieved share of dense BF16 peak in GEMMs whose dimensions are multiples of 8."""
    misaligned_matmul_efficiency: float
    """The same for un-compiled GEMMs with a dimension that is not (llama-500m's MLP width 4147):
    cuBLAS falls back to kernels without 16-byte-aligned tensor-core loads.  Inductor pads them
    instead, which costs copies (`step_work`)."""
    attention_efficiency: float
    """Achieved share of peak in fused attention, counting the causal half of 12 L d T."""
    activation_passes: float
    """HBM bytes moved by un-compiled element-wise kernels (norms, rotary, SiLU, casts, residual
    adds, forward and backward) per byte of saved activations."""
    compiled_activation_passes: float
    """The same once Inductor has fused them."""
    hbm_efficiency: float
    """Achieved share of HBM bandwidth by memory-bound kernels."""
    cpu_flops: float
    """FLOP/s of one CPU training process: a deliberately low figure for rough estimates."""
    fp8_matmul_efficiency: float = 0.5
    """Achieved share of the dense FP8 peak in the FP8 GEMMs of torchao's tensorwise recipe."""
    fp8_rowwise_matmul_efficiency: float = 0.35
    """The same for its rowwise recipe (a scale per row: CUTLASS kernels below cuBLAS's tensorwise)."""
    fp8_cast_bytes: float = 4.0
    """HBM bytes moved per element cast to FP8 (the amax read, the scaled cast's read and 1-byte
    write, the transposed copy backward needs), beyond what the bf16 kernels move anyway."""
    fp8_saved_input_bytes: float = 2.0
    """Bytes per element of an FP8 Linear's input that a compiled block keeps for backward (2:
    the bf16 input, as without FP8; 1: Inductor keeps the FP8 cast instead)."""
    profiled_matmul_scale: float = 1.0
    """A GEMM's time in a training step over its time alone in the GPU profile (1 until fitted on
    rows of a profiled GPU type)."""
    profiled_attention_scale: float = 1.0
    """The same for fused attention (it also carries what `attention_efficiency` absorbs beside the
    kernel: the q, k, v layout around it)."""
    profile_weight: float = 1.0
    """Share of the profiled GEMM and attention times in a profiled GPU type's prediction, the rest
    from its datasheet path (`benchmarks/heldout_accuracy.py` measures both on held-out rows)."""
    compiled_block_host_s: float = 0.0
    """Host seconds one compiled block costs forward and backward in a trial, fitted on compiled
    steps the host sets (the compiled small-batch grid, every model).  The same block costs a warm process
    more late in a sweep than early (`benchmarks/warm_host_drift.py`: up to 1.5x as a process's
    16th configuration against its 2nd), so it is a median over a grid's order, not a constant of the block.  It replaces the
    profile's `compiled_block` row (that block timed alone, without a trial's DDP and Ray: 1.7 ms on
    the H200's host), kept as a measurement; 0: not fitted, the profile's `compiled_block` or
    `compiled_call` row, else `kernels.PRIOR_COMPILED_CALL_S`."""
    parallel_compiled_fused_rate: float = 1.0
    """Device rate of a compiled step with fused attention under a data-parallel wrapper over the
    same step alone (strategy single), which the device's constants were fitted on: measured inside
    DDP.  Only part of it is DDP's: on one H100 in one process, DDP cost 0.6-3.8% (torch.compile
    splitting each block at DDP's buckets, 3.0 points of it on llama-1b); the rest was the trainer
    of 2026-12-05 to 7cca42b, whose q/k/v split over the GEMM output's last dim ran the same steps
    alone 6-8% slower than the calibration table's trainer did on the same H100 (mended since;
    `benchmarks/results/trainer/README.md`).  Fitted on the grid's device-bound steps measured again
    with the mended trainer (`benchmarks/results/small_batch/h100x1_fused_ddp.parquet`), where it
    also takes the trainer-alone constants' own miss on those models (llama-1b's 5%).  The compiled grids'
    device-bound SDPA steps inside DDP were predicted 6-15% fast on both GPU types, every model and
    batch, compiled eager attention -6% to +8%, and compiled SDPA alone (the trainer, or a sweep's
    trial of strategy single) within 2% (`benchmarks/results/small_batch/README.md`).  FSDP's wrapper has no compiled row yet: it takes
    the same rate, so that no strategy is predicted faster than DDP by a term only DDP was measured
    with.  1: not fitted."""
    gpu_rates: tuple[tuple[str, float], ...] = ()
    """(GPU type, its device rate over the prediction) for GPU types with committed rows but no
    calibration row: the median of measured over predicted tokens/s of their rows, dividing the
    device's terms like `step_rate_scale`.  Empty: none fitted."""

    def gpu_rate(self, gpu_type: str) -> float:
        """`gpu_rates`' factor of `gpu_type`, 1 where none was fitted."""
        return dict(self.gpu_rates).get(gpu_type, 1.0)


CALIBRATION = Calibration(
    # Fitted by `python benchmarks/calibrate_estimate.py` on the calibration rows of
    # benchmarks/results/trainer/trainer_throughput_h100.csv (one H100 80GB HBM3, torch 2.11, strategy
    # single): models llama-100m, llama-500m and pythia-1b, every attention/compile variant and batch;
    # llama-1b, llama-2b and pythia-160m are held out (benchmarks/results/estimate/estimate_accuracy.md).
    # Two steps: the datasheet path's constants below with every profile ignored (the shape model of
    # `slmray.predict.kernels` at its priors: what a GPU type without a profile, the H200, gets), then
    # the two profiled scales at the end on the same rows with the H100's profile, the rest fixed.
    overhead_gib=0.1116,
    usable_memory_fraction=0.9797,
    compiled_eager_score_bytes=4.031,
    matmul_efficiency=0.7256,
    misaligned_matmul_efficiency=0.2055,
    attention_efficiency=0.1928,
    activation_passes=7.621,
    compiled_activation_passes=1.484,
    # Assumed, not fitted: streaming kernels reach 80-90% of nominal HBM bandwidth on A100/H100.
    # Three calibration models cannot separate it from the activation passes; it sets the scale
    # of the loss, score and optimizer traffic.
    hbm_efficiency=0.85,
    # Not fitted: well below what 16 cores of fp32 GEMM reach, so a CPU dry run never promises too much.
    cpu_flops=5e10,
    # FP8 (torchao.float8, compiled), fitted by the same script on the FP8 rows of llama-1b and
    # llama-100m in benchmarks/results/precision/sweep_h200x1_precision.parquet (one H200, torch 2.11, torchao
    # 0.18), the bf16 constants above fixed; the other FP8 rows are held out.
    fp8_matmul_efficiency=0.4266,
    fp8_rowwise_matmul_efficiency=0.3911,
    # Assumed, not fitted: the amax read and the scaled cast's read (2 bytes each), its 1-byte write
    # and the 1-byte transposed copy backward needs; four rows cannot separate it from the GEMMs.
    fp8_cast_bytes=6.0,
    fp8_saved_input_bytes=0.2975,
    # The H100's profile (slmray/catalog/profiles/H100-80GB.csv, 2026-12-05): a GEMM in a step takes
    # about its time alone; fused attention 2.5 times its kernel's (the q, k, v layout and the copies
    # around it, which the profile's attention benchmark does not run).
    profiled_matmul_scale=0.9435,
    profiled_attention_scale=2.49,
    # Chosen, not fitted by the script, on held-out H100 rows (benchmarks/results/estimate/
    # heldout_accuracy.md, its weight table): chosen when 0.25 gave the least median error with each
    # model left out (3.6% against 4.1% at 0); with the small-batch grids in, 0 to 0.5 lie within
    # 0.7 points of each other both ways (model out 3.8-4.5%, GPU type out 4.4-4.5%), so it stays.
    profile_weight=0.25,
    # Fitted by the same script on the compiled steps of at most 8,192 tokens of the whole compiled
    # small-batch grid (benchmarks/results/small_batch/h100x1_small_batch_compiled.parquet, one H100,
    # a sweep's DDP trial, five models): the steps the host sets took 1.9-3.4 ms a block (pythia-410m
    # early in a process, llama-100m late; benchmarks/warm_host_drift.py), 8x the one-kernel region
    # the profile times (0.31 ms a block).  Fitted on llama-100m's rows alone it was 3.3 ms, which
    # predicted the held-out pythia-160m 45% slow (benchmarks/results/heldout/README.md).
    compiled_block_host_s=0.00235,
    # Fitted by the same script on the compiled SDPA steps of more than 8,192 tokens of that grid (12
    # configurations, five models), measured again with the mended trainer (benchmarks/results/
    # small_batch/h100x1_fused_ddp.parquet): inside DDP they ran 6.9% under the prediction made from the
    # trainer-alone rows at the median (llama-100m 0-2%, llama-2b 5%, llama-500m and -1b 6-9%, pythia-410m 9-11%).
    # On the grid's own rows, which ran with the slow q/k/v split, it had been 10.6%.
    parallel_compiled_fused_rate=0.9306,
    # Fitted by the same script on the bf16 rows of the H200's four sweeps before its small-batch grid
    # (benchmarks/results/sweeps/sweep_h200x1.parquet and precision/*): the H200, with no profile and
    # no calibration row, ran 5% slower than its datasheet path predicts at their median (the two
    # larger sweeps, uncompiled and compiled, +5.8% predicted fast each; the two small ones scatter).
    # Its small-batch rows (benchmarks/results/small_batch/h200x1_small_batch.parquet) are held out.
    gpu_rates=(("H200", 0.9483),),
)


@dataclass(frozen=True)
class Estimate:
    """A prediction for one configuration on one GPU type and count."""

    peak_mem_gb: float
    """GiB per device, comparable with torch.cuda.max_memory_allocated."""
    memory_gb: dict[str, float]
    """Breakdown of the peak (GiB): params, grads, optimizer, weight_copies, activations, logits,
    overhead.  Sums to `peak_mem_gb`."""
    oom: bool
    """Predicted peak, plus the allocator's cached blocks that cannot serve the peak's requests,
    above what the GPU can give (`capacity_gb`); on the CPU, above the host's physical memory."""
    step_time_s: float
    tokens_per_s: float
    """Global, all GPUs."""
    time_s: dict[str, float]
    """Breakdown of the step time: matmul, attention, memory, kernels (their fixed cost), host (the
    host's dispatch time the device cannot hide), communication (the collectives' exposed part),
    contention (compute slowed beside the hidden part), one_gpu_floor (see `estimate`), and for FP8
    runs fp8_matmul and fp8_casts."""
    capacity_gb: float | None = None
    """GiB the allocator can reach on this GPU before an OOM; the host's memory on the CPU."""
    rough: bool = False
    """True for the CPU, where neither memory nor speed is calibrated."""
    profiled: bool = False
    """True where the GPU type has a profile (`slmray.catalog.profiles`): GEMM and attention times
    at this configuration's shapes (a `Calibration.profile_weight` share of them), the per-kernel
    and host costs were measured on that GPU type.
    False: its datasheet and the stated priors of `slmray.predict.kernels`, a wider uncertainty."""
    approximate: bool = False
    """True for a family transformers model (an architecture only Transformers builds): counted with
    the llama-family formulas (`kernels.layout`) from its exact parameter count and its normalised
    shape, not from its own blocks."""
    tokens_per_s_low: float | None = None
    tokens_per_s_high: float | None = None
    """Bounds of `tokens_per_s` (`slmray.predict.interval`); None for the CPU's rough estimate."""

    @property
    def host_share(self) -> float:
        """The share of the step the host's dispatch adds beyond the device's work (`time_s["host"]`)."""
        return self.time_s.get("host", 0.0) / self.step_time_s


# ---------------------------------------------------------------------------------------------
# Shapes: parameter groups of `model.Transformer` as parallel.py and autocast see them


@dataclass(frozen=True)
class _Params:
    total: int
    root: int
    """Embedding, output projection and final norm: the root FSDP group."""
    block: int
    """One transformer block."""
    linear: int
    """Parameters of nn.Linear modules (weights and biases), which autocast copies to bf16."""


def _linears(m: ModelConfig) -> list[tuple[int, int, bool]]:
    """(in_features, out_features, in_every_block) of the GEMMs a token goes through."""
    return linear_shapes(m)


def _params(m: ModelConfig) -> _Params:
    d, v = m.d_model, m.vocab_size
    llama = kernels.layout(m) == "llama"
    final_norm = d if llama else 2 * d
    root = m.num_embedding_params + final_norm  # a tied embedding is one matrix
    qk_norms = 2 * m.head_dim if m.qk_norm else 0
    norms = m.n_layer * (2 * d + qk_norms if llama else 4 * d) + final_norm
    untied_input = m.num_embedding_params - v * d  # the input embedding's own matrix (0 when tied)
    return _Params(
        total=m.num_params, root=root, block=(m.num_params - root) // m.n_layer,
        linear=m.num_params - untied_input - norms,  # a tied matrix is the output head's Linear weight
    )


def _in_fp8(cfg: TrainConfig, fan_in: int, fan_out: int, in_block: bool) -> bool:
    """Whether this GEMM runs in FP8: `fp8.convertible`'s rule on the shapes of `_linears`."""
    return (
        fp8.is_fp8(cfg.precision) and in_block and fan_in % fp8.ALIGNMENT == 0 and fan_out % fp8.ALIGNMENT == 0
    )


def _fp8_params(cfg: TrainConfig) -> int:
    """Weights of one block that run in FP8 (no biases: torchao keeps them in high precision)."""
    return sum(i * o for i, o, b in _linears(cfg.model) if _in_fp8(cfg, i, o, b))


def _fp8_inputs(cfg: TrainConfig) -> int:
    """Input elements per token of one block's FP8 Linear layers (their saved activations)."""
    return sum(i for i, o, b in _linears(cfg.model) if _in_fp8(cfg, i, o, b))


def _gathered_block_bytes(cfg: TrainConfig, p: _Params) -> float:
    """Bytes of one block's parameters as FSDP2 all-gathers them: bf16, but 1 byte for the FP8
    Linear weights under the tensorwise recipe (torchao's FP8 all-gather; rowwise has none)."""
    fp8_weights = _fp8_params(cfg) if cfg.precision == "fp8" else 0
    return 2 * (p.block - fp8_weights) + fp8_weights


def _padded(features: int) -> int:
    """`features` rounded up to a multiple of 8, as Inductor pads a bf16 GEMM's dimensions."""
    return -(-features // 8) * 8


def _aligned(fan_in: int, fan_out: int) -> bool:
    # cuBLAS's fast bf16 tensor-core kernels need every leading dimension to be 16 bytes
    return fan_in % 8 == 0 and fan_out % 8 == 0


# ---------------------------------------------------------------------------------------------
# Memory


def _precision(cfg: TrainConfig, on_gpu: bool) -> tuple[int, int]:
    """(residual-stream bytes, compute bytes) per element.

    GPU single/ddp: bf16 autocast over fp32 parameters, so the embedding output and the residual
    stream stay fp32 while GEMM inputs and outputs are bf16.  FSDP: bf16 parameters, no autocast,
    so the residual stream is bf16 too.  CPU: fp32 throughout.
    """
    if not on_gpu:
        return 4, 4
    return (2, 2) if cfg.strategy.startswith("fsdp") else (4, 2)


def _layer_bytes(cfg: TrainConfig, r: int, c: int, cal: Calibration) -> float:
    """Bytes per token one block saves for backward.

    Counted from the autograd graph of `model.Block` (cross-checked with AOTAutograd's min-cut
    partition for the compiled case, and against the H100 runs to within 1%).  Fused attention
    keeps q and k (after rotary), the whole qkv output (v is a view of it), the output and the
    log-sum-exp; materialised attention keeps contiguous copies of q, k, v, the output, and per
    score element the fp32 softmax plus the bf16 probabilities (eager) or what Inductor keeps.
    """
    m = cfg.model
    d, h, nh, T = m.d_model, m.d_mlp, m.n_head, cfg.seq_len
    fused = cfg.attention in FUSED_ATTENTION
    # grouped-query attention: k/v repeated to n_head heads are saved at the query width; served
    # natively, the kernel keeps the narrower k and the qkv output (v's view) only
    repeat = m.n_kv_head != nh and GQA_DEFAULT[cfg.attention] == "repeat"
    qk_norm = 4 * (nh + m.n_kv_head) if m.qk_norm else 0  # RMSNorm's fp32 rstd per head (its input is qkv's view)
    if fused and not repeat:
        attention = c * (3 * m.q_dim + 3 * m.kv_dim) + 4 * nh + qk_norm  # q, k, qkv, output; log-sum-exp
    elif fused:
        attention = 4 * c * m.q_dim + 4 * nh + qk_norm  # q, repeated k and v, output
    elif cfg.compile:
        attention = 4 * c * m.q_dim + cal.compiled_eager_score_bytes * nh * T + qk_norm
    else:
        softmax = 4 + (c if c < 4 else 0)  # the fp32 softmax, and its bf16 copy unless compute is fp32
        attention = 4 * c * m.q_dim + softmax * nh * T + qk_norm
    # FP8 Linear layers: un-compiled, torchao saves their high-precision inputs (and casts again
    # backward); compiled, the partitioner may keep the smaller FP8 casts instead
    fp8_saving = (c - cal.fp8_saved_input_bytes) * _fp8_inputs(cfg) if cfg.compile and c < 4 else 0.0
    if kernels.layout(m) == "llama":
        if cfg.compile:  # the block input, norm outputs, proj output; SiLU and the residual recomputed
            return r * d + 3 * c * d + attention + 3 * c * h - fp8_saving
        return 2 * r * d + 2 * c * d + attention + 4 * c * h  # both norm inputs, gate_up, SiLU, product
    return r * d + 2 * c * d + attention + 2 * c * h - fp8_saving  # parallel residual: x feeds both norms


def loss_chunk(cfg: TrainConfig) -> int:
    """Tokens of the (tokens, vocab) logits a loss kernel holds at once: all of a micro-batch's
    (standard), `loss_chunk_tokens`' chunk (chunked), Liger's own chunk (its `inc_factor` rule in
    `fused_linear_cross_entropy_forward`: logits no larger than the hidden states), none (cce:
    blockwise in on-chip memory)."""
    tokens, v, d = cfg.per_device_batch * cfg.seq_len, cfg.model.vocab_size, cfg.model.d_model
    if cfg.loss_kernel == "chunked":
        return loss_chunk_tokens(tokens, v)
    if cfg.loss_kernel == "liger":
        return min(tokens, 1 << (math.ceil(tokens / math.ceil(v / d)) - 1).bit_length())
    return 0 if cfg.loss_kernel == "cce" else tokens


def _head_bytes(cfg: TrainConfig, r: int, c: int) -> tuple[float, float]:
    """(activations, loss tensors) per token of the output head at the start of backward.

    standard: un-compiled, the fp32 cross-entropy's backward holds three (tokens, vocab) fp32
    tensors at once (log-softmax output, NLL gradient, log-softmax gradient); compiled, the fused
    loss keeps only the bf16 logits.  The others hold one chunk (`loss_chunk`) beside the output
    weight's fp32 gradient, which they accumulate over the chunks: chunked, in backward, the
    chunk's bf16 logits, their fp32 upcast, the softmax and its shifted copy, the bf16 gradient,
    plus the per-token fp32 log-sum-exp; liger, at the end of forward (it computes the gradients
    there), the chunk's logits and the input's gradient; cce, the per-token log-sum-exp.  Counted
    from the kernels' code, not yet fitted to measurements (`benchmarks/loss_kernels.py`).
    """
    m = cfg.model
    d, v = m.d_model, m.vocab_size
    if cfg.loss_kernel == "standard":
        return (r + c) * d, (c * v if cfg.compile else 12 * v)
    tokens = cfg.per_device_batch * cfg.seq_len
    chunk_bytes = {"chunked": 12 + 2 * c, "liger": c, "cce": 0}[cfg.loss_kernel] * loss_chunk(cfg) * v
    per_token = {"chunked": 4, "liger": r * d, "cce": 4}[cfg.loss_kernel]
    return (r + c) * d, per_token + (chunk_bytes + 4 * v * d) / tokens


def training_state_bytes(cfg: TrainConfig, num_gpus: int) -> dict[str, float]:
    """Per-device bytes of fp32 parameters, fp32 gradients and AdamW's two fp32 moments.

    DDP and single keep all of them on every device; FSDP shards each over the `num_gpus` ranks.
    """
    shards = num_gpus if cfg.strategy.startswith("fsdp") else 1
    n = cfg.model.num_params
    return {"params": 4 * n / shards, "grads": 4 * n / shards, "optimizer": 8 * n / shards}


def memory_breakdown(cfg: TrainConfig, num_gpus: int, on_gpu: bool, cal: Calibration = CALIBRATION) -> dict[str, float]:
    """Per-device bytes at the peak, by kind (see `Estimate.memory_gb`, here in bytes)."""
    p = _params(cfg.model)
    r, c = _precision(cfg, on_gpu)
    tokens = cfg.per_device_batch * cfg.seq_len
    L = cfg.model.n_layer
    layer = _layer_bytes(cfg, r, c, cal)
    head_act, logits = _head_bytes(cfg, r, c)
    if cfg.activation_checkpointing:
        # each block keeps its input; backward recomputes one block at a time, after the loss's
        # tensors and the head's activations are freed, so the peak is the larger of the two moments
        # (counting both at once over-predicted llama-2b batch 32 on the H200 by 12%)
        blocks = L * r * cfg.model.d_model + max(0.0, layer - head_act - logits)
    else:
        blocks = L * layer
    state = training_state_bytes(cfg, num_gpus)
    # gradients alive at the start of backward: DDP's buckets always; accumulated ones from micro-step 2
    grads_start = state["grads"] if (cfg.strategy == "ddp" or cfg.grad_accum > 1) else 0.0
    if not on_gpu:
        copies_start = copies_end = 0.0
    elif cfg.strategy.startswith("fsdp"):
        # bf16 unsharded parameters: the root stays gathered from forward to backward; blocks are
        # gathered one at a time (plus one prefetched), or all kept (fsdp_grad_op)
        in_flight = _gathered_block_bytes(cfg, p) * (L if cfg.strategy == "fsdp_grad_op" else 2)
        copies_start = 2 * p.root + in_flight
        copies_end = 2 * p.root + 6 * p.root  # the root's gradients, bf16 then fp32 for reduce-scatter
    else:
        # autocast's bf16 weight copies, saved for backward; an FP8 Linear casts its fp32 weight
        # straight to FP8 (1 byte), which is what it keeps
        converted = L * _fp8_params(cfg)
        copies_start, copies_end = 2 * (p.linear - converted) + converted, 0.0
    start = {
        **state, "grads": grads_start, "weight_copies": copies_start,
        "activations": tokens * (blocks + head_act), "logits": tokens * logits,
    }
    end = {**state, "weight_copies": copies_end, "activations": 0.0, "logits": 0.0}
    peak = max(start, end, key=lambda phase: sum(phase.values()))
    return {**peak, "overhead": cal.overhead_gib * GIB if on_gpu else 0.0}


def unusable_cache_bytes(cfg: TrainConfig) -> float:
    """Freed blocks the caching allocator holds but cannot hand to the larger requests that follow.

    Un-compiled eager attention frees, in every layer, its bf16 scores, the masked copy and the
    fp32 upcast (8 bytes per score element); the last layer's stay cached as blocks too small for
    the loss's (tokens, vocab) tensors.  Counting them moves llama-100m eager batch 64 and llama-2b
    eager batch 8 on the H100 (allocated peaks 74.4 and 76.9 GiB predicted) to the OOM they were.
    """
    if cfg.attention in FUSED_ATTENTION or cfg.compile:
        return 0.0
    return 8.0 * cfg.per_device_batch * cfg.model.n_head * cfg.seq_len**2


# ---------------------------------------------------------------------------------------------
# Time


@dataclass(frozen=True)
class Work:
    """What one optimizer step asks of one device, before dividing by hardware rates.

    Step time is linear in the inverse efficiencies of `Calibration`, so fitting them is a
    least-squares regression of measured step times on these quantities.
    """

    matmul_flops: float
    misaligned_matmul_flops: float
    attention_flops: float
    hbm_bytes: float
    """Loss, materialised attention scores, padding copies, optimizer and parameter casts."""
    activation_bytes: float
    """Saved-activation bytes of the step; element-wise traffic is a multiple of these."""
    compiled: bool
    fp8_matmul_flops: float = 0.0
    """GEMM FLOPs of the Linear layers in FP8, tensorwise recipe (not in `matmul_flops`)."""
    fp8_rowwise_matmul_flops: float = 0.0
    fp8_cast_elements: float = 0.0
    """Elements cast to FP8 in the step: inputs and output gradients of each FP8 Linear, and its
    weight forward and backward; rowwise casts each operand along both axes, so twice."""
    gemms: tuple[Gemm, ...] = ()
    """Every GEMM of the step by shape (`matmul_flops` and the FP8 FLOPs again, shape by shape)."""
    attention_calls: tuple[int, int, int, float] = (0, 0, 0, 0.0)
    """Fused attention as (batch x heads, sequence, head dim, calls per step); calls 0 if none."""
    attention: str = "sdpa"
    model: ModelConfig | None = None
    recompute: float = 1.0
    """Forward passes of each block per step over one (activation checkpointing: 4/3 of the work)."""
    micro: int = 1
    """Micro-batches per step (grad_accum)."""
    backend: str = "native"
    """Whose modules the blocks are (native or transformers): what the host dispatches differs."""
    elementwise: float = 1.0
    """Un-compiled: the blocks' element-wise traffic over that of the blocks the calibration's
    activation passes were fitted on (`opcount.elementwise_ratio`: q/k norms, Transformers' modules)."""
    parallel_compiled_fused: bool = False
    """Compiled blocks with fused attention under DDP or FSDP (`Calibration.parallel_compiled_fused_rate`)."""


def step_work(cfg: TrainConfig, num_gpus: int, cal: Calibration = CALIBRATION) -> Work:
    """Work of one optimizer step (grad_accum micro-batches) on one GPU."""
    m = cfg.model
    tokens = cfg.tokens_per_device_step
    recompute = 4 / 3 if cfg.activation_checkpointing else 1.0  # blocks run forward twice
    aligned = misaligned = padding = in_fp8 = casts = 0.0
    cast_axes = 2 if cfg.precision == "fp8-rowwise" else 1
    gemms = []
    micro_tokens = cfg.per_device_batch * cfg.seq_len
    # the chunked and cce kernels compute the head's logits again in backward: one more forward GEMM
    head_times = 4 / 3 if cfg.loss_kernel in RECOMPUTING_LOSS_KERNELS else 1.0
    for fan_in, fan_out, in_block in _linears(m):
        times = m.n_layer * recompute if in_block else head_times
        if _in_fp8(cfg, fan_in, fan_out, in_block):
            kind = cfg.precision
        elif _aligned(fan_in, fan_out) or cfg.compile:
            kind = "aligned"  # Inductor pads a misaligned GEMM (the copies are counted below)
        else:
            kind = "misaligned"
        # compiled, a misaligned GEMM runs (and is timed) at the shape Inductor pads it to, not at
        # the one cuBLAS's slow kernels run un-compiled (the profile times those several times slower)
        shape = (_padded(fan_in), _padded(fan_out)) if kind == "aligned" else (fan_in, fan_out)
        gemms += [Gemm(*g, count=times * cfg.grad_accum, kind=kind) for g in kernels.linear_gemms(micro_tokens, *shape)]
        if _in_fp8(cfg, fan_in, fan_out, in_block):
            in_fp8 += fan_in * fan_out * times
            casts += cast_axes * (tokens * (fan_in + fan_out) * times + 2 * cfg.grad_accum * fan_in * fan_out * m.n_layer)
        elif _aligned(fan_in, fan_out):
            aligned += fan_in * fan_out * times
        elif cfg.compile:
            # Inductor pads the GEMM to aligned shapes, copying each operand along a misaligned
            # dimension: input and output forward, their gradients and the weight-gradient input
            # backward, each read and written in bf16 (about 12 bytes per element of that dimension)
            aligned += fan_in * fan_out * times
            padding += 12 * ((fan_in % 8 != 0) * fan_in + (fan_out % 8 != 0) * fan_out) * times
        else:
            misaligned += fan_in * fan_out * times
    L, nh, T = m.n_layer, m.n_head, cfg.seq_len
    fused = cfg.attention in FUSED_ATTENTION
    # HBM traffic per score element of materialised attention, forward and backward (GEMMs
    # writing/reading scores, scale, mask, fp32 softmax, casts); these GEMMs are memory-bound
    # (arithmetic intensity ~ head_dim, below the GPU's ridge point), so they count here only.
    score_traffic = 0.0 if fused else (28 if cfg.compile else 74) * L * nh * T * recompute
    # loss: bf16 logits, fp32 upcast, log-softmax and its backward (un-compiled) vs one fused kernel
    loss_traffic = LOSS_TRAFFIC[cfg.loss_kernel][cfg.compile] * m.vocab_size
    p = _params(m)
    if cfg.strategy.startswith("fsdp"):
        local = p.total / num_gpus
        # per all-gather: copy-out of the bf16 parameters; per reduce-scatter: fp32 cast and copy-in
        per_micro = (2 if cfg.strategy == "fsdp" else 1) * 4 * p.total
        per_step = 10 * p.total
    else:
        local = p.total
        per_micro = 6 * p.linear + 8 * p.total  # autocast's weight casts; bf16 weight grads into fp32 .grad
        per_step = 0.0
    # fused AdamW reads p, g, m, v and writes p, m, v (28 B); clipping reads and rescales g (12 B)
    per_step += 40 * local
    r, c = _precision(cfg, on_gpu=True)
    return Work(
        matmul_flops=6 * tokens * aligned,
        misaligned_matmul_flops=6 * tokens * misaligned,
        attention_flops=6 * tokens * L * m.q_dim * T * recompute if fused else 0.0,  # causal half of 12 L d T
        hbm_bytes=tokens * (score_traffic + loss_traffic + padding) + per_step + cfg.grad_accum * per_micro,
        activation_bytes=tokens * L * _layer_bytes(cfg, r, c, cal) * recompute,
        compiled=cfg.compile,
        fp8_matmul_flops=6 * tokens * in_fp8 if cfg.precision == "fp8" else 0.0,
        fp8_rowwise_matmul_flops=6 * tokens * in_fp8 if cfg.precision == "fp8-rowwise" else 0.0,
        fp8_cast_elements=casts,
        gemms=tuple(gemms),
        attention_calls=(cfg.per_device_batch * nh, T, m.head_dim, L * recompute * cfg.grad_accum) if fused else (0, 0, 0, 0.0),
        attention=cfg.attention, model=m, recompute=recompute, micro=cfg.grad_accum, backend=cfg.backend,
        elementwise=1.0 if cfg.compile else opcount.elementwise_ratio(m, cfg.backend),
        parallel_compiled_fused=cfg.strategy != "single" and cfg.compile and fused,
    )


_SHIPPED = object()
"""`compute_time_s`'s default: the profile the catalog ships for the GPU type, if any."""
_PROFILED_ATTENTION = {"sdpa": "sdpa", "sdpa-flash": "sdpa-flash", "sdpa-cudnn": "sdpa-cudnn", "flash2": "sdpa-flash"}
"""The profile's attention variant that times each fused kernel (flash2 as PyTorch's FlashAttention-2)."""


def gpu_profile(spec: GPUSpec) -> GPUProfile | None:
    return profile_for(spec.gpu)


def attention_time_s(work: Work, spec: GPUSpec, profile: GPUProfile | None) -> tuple[float, float]:
    """(seconds at 100% of the datasheet peak, seconds the profile measured) of the step's fused
    attention; one of them 0."""
    bh, seq, head_dim, calls = work.attention_calls
    variant = _PROFILED_ATTENTION.get(work.attention)
    if calls and profile is not None and variant:
        measured = profile.attention_seconds(bh, seq, head_dim, variant)
        if measured is not None:
            return 0.0, measured * calls
    return work.attention_flops / (spec.peak_bf16_tflops * 1e12), 0.0


def step_rate_scale(spec: GPUSpec) -> float:
    """architectures.csv's `step_rate_scale` of the GPU type's architecture over the calibrated one's
    (exactly 1 on Hopper)."""
    specs = arch_specs()
    return specs[spec.arch].step_rate_scale / specs[CALIBRATED_ARCH].step_rate_scale


def compute_time_s(
    work: Work, spec: GPUSpec, cal: Calibration = CALIBRATION, profile: GPUProfile | None | object = _SHIPPED,
    step_rate: float | None = None,
) -> dict[str, float]:
    """Seconds of matmul, attention and memory-bound work in one step on one GPU, the kernels' fixed
    cost, and the host's dispatch time the device cannot hide (`host`).

    GEMMs and fused attention are timed at their shapes: from the GPU's profile where it has them
    (`profile`, default the catalog's), else from the datasheet peak and the shape's tile waves
    (`kernels.shape_efficiency`); with a profile, `cal.profile_weight` of the profiled times and the
    rest of the datasheet's (the profile's kernel and host costs in full).  The device runs while the host queues ahead (no host
    synchronisation inside a step), so a step takes the longer of the two; `host` is the excess.

    The device's terms (everything but `host`) are divided by `step_rate` (default
    `step_rate_scale(spec)`: 1 on the calibrated architecture) times `cal.gpu_rate` of the GPU type
    (1 but where its committed rows fitted one), and for compiled fused attention under a
    data-parallel wrapper by `cal.parallel_compiled_fused_rate`; `step_rate_scale` is the cross-architecture prior fitted
    on published same-code H100 / A100 ratios.  Those ratios say how much faster a whole step runs,
    not which kernel, so the prior scales the device's time as a whole, profiled or not (the
    profiled scales were fitted on Hopper too); it leaves the host's dispatch (the CPU's) and the
    collectives (the links' datasheet and the instance catalog's) alone, so a one-GPU step the host
    does not bound scales its tokens/s by exactly the prior."""
    if profile is _SHIPPED:
        profile = gpu_profile(spec)
    peak, bw = spec.peak_bf16_tflops * 1e12, spec.hbm_tb_s * 1e12
    arch, fitted = arch_specs()[spec.arch], arch_specs()[CALIBRATED_ARCH]
    matmul_gain, attention_gain = arch.matmul_share / fitted.matmul_share, arch.attention_share / fitted.attention_share
    passes = cal.compiled_activation_passes if work.compiled else cal.activation_passes

    def gemm_and_attention(profile: GPUProfile | None) -> tuple[float, float]:
        if work.gemms:
            mm = kernels.matmul_terms(work.gemms, peak, spec.sms, profile)
        else:  # a Work built by hand, without shapes
            mm = {"aligned": work.matmul_flops / peak, "misaligned": work.misaligned_matmul_flops / peak, "profiled": 0.0}
        attention, attention_profiled = attention_time_s(work, spec, profile)
        return (
            (mm["aligned"] / cal.matmul_efficiency + mm["misaligned"] / cal.misaligned_matmul_efficiency) / matmul_gain
            + mm["profiled"] * cal.profiled_matmul_scale,
            attention / (cal.attention_efficiency * attention_gain) + attention_profiled * cal.profiled_attention_scale,
        )

    matmul, attention = gemm_and_attention(profile)
    if profile is not None and cal.profile_weight < 1:  # shrunk toward the datasheet path
        w = cal.profile_weight
        sheet_matmul, sheet_attention = gemm_and_attention(None)
        matmul, attention = w * matmul + (1 - w) * sheet_matmul, w * attention + (1 - w) * sheet_attention
    times = {
        "matmul": matmul,
        "attention": attention,
        "memory": (work.hbm_bytes + passes * work.activation_bytes * work.elementwise) / (bw * cal.hbm_efficiency),
    }
    fp8_flops = work.fp8_matmul_flops + work.fp8_rowwise_matmul_flops
    if fp8_flops:
        if not spec.peak_fp8_tflops:
            raise ValueError(f"precision: {spec.gpu} has no FP8 tensor cores (gpus.csv gives it no FP8 peak)")
        peak8 = spec.peak_fp8_tflops * 1e12
        times["fp8_matmul"] = work.fp8_matmul_flops / (peak8 * cal.fp8_matmul_efficiency) + (
            work.fp8_rowwise_matmul_flops / (peak8 * cal.fp8_rowwise_matmul_efficiency)
        )
        times["fp8_casts"] = work.fp8_cast_elements * cal.fp8_cast_bytes / (bw * cal.hbm_efficiency)
    if work.model is not None:
        kernel_s = (profile.kernel_s if profile is not None else None) or kernels.PRIOR_KERNEL_S
        args = (work.model, work.attention, work.compiled, work.recompute, work.micro, profile, work.backend)
        times["kernels"] = kernels.kernels_per_step(*args) * kernel_s
    rate = (step_rate_scale(spec) if step_rate is None else step_rate) * cal.gpu_rate(spec.gpu)
    rate *= cal.parallel_compiled_fused_rate if work.parallel_compiled_fused else 1.0
    times = {term: seconds / rate for term, seconds in times.items()}
    if work.model is not None:
        times["host"] = max(0.0, kernels.host_s(*args, compiled_block_s=cal.compiled_block_host_s) - sum(times.values()))
    return times


FABRICS = ("efa", "ethernet")
"""Networks between nodes (instances.csv's `fabric`)."""


def network(
    spec: GPUSpec, num_gpus: int, gpus_per_node: int, inter_node_gbps: float | None, fabric: str | None = None,
) -> Network:
    """The links a ring over `num_gpus` x `spec` crosses.

    Within a node: the GPU's NVLink or PCIe figure (PCIe where gpus.csv gives 64 GB/s or less: a
    Gen5 x16 link).  Across nodes the ring runs at its node's whole network bandwidth
    (`Network.inter_gb_s` says why), in the share of it the job's GPUs on its emptiest node have; without
    `inter_node_gbps`, the fastest multi-GPU instance of that GPU in instances.csv is assumed, with its
    fabric; a bandwidth given without `fabric` is taken as plain Ethernet (the slower assumption).
    """
    if fabric not in (None, *FABRICS):
        raise ValueError(f"fabric: {fabric!r} is not one of {', '.join(FABRICS)}")
    intra = "nvlink" if spec.link_gb_s > 64 else "pcie"
    net = Network(num_gpus, gpus_per_node, intra, spec.link_gb_s)
    if num_gpus <= gpus_per_node:
        return net
    if inter_node_gbps is None:
        known = [
            it for it in instance_types()
            if it.gpu == spec.gpu and it.gpus > 1 and math.isfinite(it.network_gbps)  # nan: not published
        ]
        if not known:
            raise ValueError(
                f"inter_node_gbps: {num_gpus} x {spec.gpu} span nodes of {gpus_per_node}, and instances.csv "
                f"has no multi-GPU instance of {spec.gpu} to take the network bandwidth from; pass it"
            )
        fastest = max(known, key=lambda it: it.network_gbps)
        inter_node_gbps, fabric, node_gpus = fastest.network_gbps, fabric or fastest.fabric, fastest.gpus
    else:
        node_gpus = gpus_per_node
    # a node the job fills in part reaches the network through its own GPUs' NICs only (NCCL takes the
    # NICs near each GPU): the emptiest node, the last of an uneven split, sets the ring's pace
    emptiest = num_gpus % gpus_per_node or gpus_per_node
    share = min(1.0, emptiest / node_gpus)
    return dataclasses.replace(net, inter=fabric or "ethernet", inter_gb_s=inter_node_gbps / 8 * share)


def communication(cfg: TrainConfig, compute: dict[str, float], net: Network) -> collectives.Exposed:
    """The step's collectives on `net` and what of them the strategy cannot hide behind
    `compute` (`slmray.predict.collectives` documents the overlap model).

    DDP all-reduces fp32 gradients in the last micro-step; FSDP all-gathers each block's bf16 (or
    FP8) parameters and reduce-scatters its fp32 gradients, and gathers the root group (embedding,
    output head, final norm) once per micro-step."""
    if net.num_gpus == 1 or cfg.strategy == "single":
        return collectives.Exposed(0.0, 0.0, 0.0)
    p = _params(cfg.model)
    micro = cfg.grad_accum
    forward = sum(compute.values()) * FORWARD_SHARE / micro  # per micro-step
    backward = sum(compute.values()) * (1 - FORWARD_SHARE) / micro
    if cfg.strategy == "ddp":
        embedding = cfg.model.vocab_size * cfg.model.d_model
        return collectives.ddp_step(net, 4 * p.total, 4 * embedding, backward)
    return collectives.fsdp_step(
        net, n_layer=cfg.model.n_layer, block_gather_bytes=_gathered_block_bytes(cfg, p), block_scatter_bytes=4 * p.block,
        root_gather_bytes=2 * p.root, root_scatter_bytes=4 * p.root, forward_s=forward, backward_s=backward,
        regather=cfg.strategy == "fsdp", micro=micro,
    )


# ---------------------------------------------------------------------------------------------


def host_memory_gib() -> float:
    """Physical memory of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB


def _cpu_estimate(cfg: TrainConfig, num_gpus: int, cal: Calibration) -> Estimate:
    memory = {k: v / GIB for k, v in memory_breakdown(cfg, num_gpus, on_gpu=False, cal=cal).items()}
    peak = sum(memory.values())
    host = host_memory_gib()
    tokens = cfg.tokens_per_device_step
    step = tokens * flops_per_token(cfg.model, cfg.seq_len) / cal.cpu_flops
    return Estimate(
        peak_mem_gb=peak, memory_gb=memory, oom=peak > host, step_time_s=step,
        tokens_per_s=num_gpus * tokens / step, time_s={"matmul": step}, capacity_gb=host, rough=True,
        approximate=cfg.model.family == "transformers",
    )


@functools.lru_cache(maxsize=1024)
def _alone_s(cfg: TrainConfig, spec: GPUSpec, cal: Calibration, use_profile: bool, step_rate: float | None) -> float:
    """Step seconds of `cfg` on one GPU, no collective (cached: every GPU count and FSDP variant of
    a planner's or a sweep's configuration asks for the same one)."""
    profile = gpu_profile(spec) if use_profile else None
    return sum(compute_time_s(step_work(cfg, 1, cal), spec, cal, profile, step_rate).values())


def estimate(
    cfg: TrainConfig, gpu_type: str, num_gpus: int, gpus_per_node: int = 8, inter_node_gbps: float | None = None,
    *, fabric: str | None = None, calibration: Calibration = CALIBRATION, use_profile: bool = True,
    step_rate: float | None = None,
) -> Estimate:
    """Predicted peak memory per device and global tokens/s of `cfg` on `num_gpus` x `gpu_type`.

    `gpu_type` is a canonical name from gpus.csv (`H100-80GB`) or the name torch reports
    (`NVIDIA H100 80GB HBM3`); `cpu` gives a rough estimate (see the module docstring).  An
    unknown GPU raises ValueError.  `num_gpus` is the world size; runs span nodes of
    `gpus_per_node` GPUs joined by `inter_node_gbps` over `fabric` (efa or ethernet; default: from
    instances.csv, see `network`).

    A data-parallel step is never predicted faster per GPU than the same configuration on one GPU
    under its wrapper (DDP on one GPU: the lone GPU's work at the wrapper's measured rate,
    `Calibration.parallel_compiled_fused_rate`), and its collectives always cost: what the strategy saves per device
    (a sharded optimizer step, FSDP's bf16 parameters without autocast's casts) is taken back by
    `time_s["one_gpu_floor"]` before the collectives' exposed time and contention are added, so
    it never pays for them (an FSDP run then predicts below DDP's rate where their collectives
    do, as the seed paper found of small models).  Where more GPUs do pay per GPU, the cause is a different per-device
    configuration (a larger batch that fits once states are sharded), which is another estimate.
    `use_profile=False` ignores the GPU type's profile (its datasheet and the priors alone): the
    baseline the accuracy benchmarks compare the profile against.  `step_rate` replaces the
    architecture's cross-architecture prior (`compute_time_s`; 1: none), for the benchmark that fits it.
    """
    if isinstance(num_gpus, bool) or not isinstance(num_gpus, int) or num_gpus < 1:
        raise ValueError(f"num_gpus: must be a positive integer, got {num_gpus!r}")
    if cfg.strategy == "single" and num_gpus > 1:
        raise ValueError(f"strategy: single runs on one device, not {num_gpus}; use ddp or fsdp")
    if isinstance(gpus_per_node, bool) or not isinstance(gpus_per_node, int) or gpus_per_node < 1:
        raise ValueError(f"gpus_per_node: must be a positive integer, got {gpus_per_node!r}")
    if step_rate is not None and not step_rate > 0:
        raise ValueError(f"step_rate: must be a positive number, got {step_rate!r}")
    if gpu_type == CPU:
        return _cpu_estimate(cfg, num_gpus, calibration)
    spec = spec_for(gpu_type)
    if spec is None:
        raise ValueError(f"gpu_type: {gpu_type!r} is not in gpus.csv; add a row with its specs and source")
    memory = {k: v / GIB for k, v in memory_breakdown(cfg, num_gpus, on_gpu=True, cal=calibration).items()}
    peak = sum(memory.values())
    capacity = spec.memory_gb * calibration.usable_memory_fraction * cfg.memory_fraction
    work = step_work(cfg, num_gpus, calibration)
    profile = gpu_profile(spec) if use_profile else None
    times = compute_time_s(work, spec, calibration, profile, step_rate)
    comm = communication(cfg, times, network(spec, num_gpus, gpus_per_node, inter_node_gbps, fabric))
    if cfg.strategy.startswith("fsdp"):  # DDP's per-device work is the lone GPU's: only FSDP's can be less
        alone = _alone_s(cfg.replace(strategy="ddp"), spec, calibration, use_profile, step_rate)
        times["one_gpu_floor"] = max(0.0, alone - sum(times.values()))
    times["communication"] = comm.exposed_s
    times["contention"] = comm.contention_s
    step = sum(times.values())
    out = Estimate(
        peak_mem_gb=peak, memory_gb=memory, oom=peak + unusable_cache_bytes(cfg) / GIB > capacity, step_time_s=step,
        tokens_per_s=num_gpus * cfg.tokens_per_device_step / step, time_s=times, capacity_gb=capacity,
        profiled=profile is not None, approximate=cfg.model.family == "transformers",
    )
    bounds = tokens_per_s_interval(out.tokens_per_s, cfg, spec.gpu, profiled=out.profiled, num_gpus=num_gpus,
                                   host_share=out.host_share)
    return dataclasses.replace(out, tokens_per_s_low=bounds.low, tokens_per_s_high=bounds.high)
