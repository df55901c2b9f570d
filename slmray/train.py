"""The training loop and its measurements: standalone, under torchrun, or as Ray Train's
`train_loop_per_worker`.

    python -m slmray.train --model llama-500m --attention sdpa --strategy ddp \
        --per-device-batch 8 --seq-len 1024 --steps 50
    torchrun --nproc-per-node 8 -m slmray.train --model llama-1b --strategy fsdp ...

Timing: warm-up steps (compilation included) run first and are not timed.  The measured
steps are timed on the device between step boundaries (`metrics.StepTimer`), without a
host synchronisation inside the loop: losses stay on the device until the end.  Each step's
time is the slowest rank's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.distributed as dist

from slmray import __version__, parallel
from slmray.config import ConfigError, TrainConfig
from slmray.data import make_batches
from slmray.hardware import canonical_gpu, detect_device_name
from slmray.metrics import StepTimer, flops_per_token, median_and_iqr, mfu, tokens_per_second
from slmray.model import Transformer
from slmray.presets import PAPER_PARAM_COUNTS, PRESETS, get_model

GIB = 1 << 30
FINAL_LOSS_STEPS = 5
SHAPE_FLAGS = ("n_layer", "d_model", "n_head", "d_mlp", "vocab_size")
"""ModelConfig fields the command line can override on a preset."""


@dataclass
class TrainResult:
    """What one run measured, identical on every rank (reduced across the group)."""

    status: str
    """ok, or oom when the device ran out of memory."""
    num_gpus: int
    """Processes in the run, one device each (GPUs, or CPU processes on a CPU run)."""
    num_nodes: int
    device_name: str
    """The name torch reports (`NVIDIA H100 80GB HBM3`), or cpu."""
    gpu_type: str
    """Canonical GPU name (`H100-80GB`), or cpu."""
    n_params: int
    flops_per_token: float
    tokens_per_step: int
    """Global tokens per optimizer step, over all ranks and accumulation micro-steps."""
    tokens_per_s: float | None = None
    tokens_per_s_per_gpu: float | None = None
    tokens_per_s_std: float | None = None
    """Spread of tokens/s over the repeats (0 for a single repeat)."""
    step_time_median_s: float | None = None
    step_time_iqr_s: float | None = None
    mfu: float | None = None
    """6N + 12LdT FLOPs per token, N with embeddings, over the GPU's dense BF16 peak."""
    mfu_non_embedding: float | None = None
    peak_mem_gb: float | None = None
    """Peak allocated GPU memory of the busiest rank, GiB (None on CPU)."""
    peak_mem_reserved_gb: float | None = None
    losses: list[float] = field(default_factory=list)
    """Global training loss of each step, warm-up included."""
    final_loss: float | None = None
    """Mean loss of the last `FINAL_LOSS_STEPS` steps."""
    tokens_seen: int = 0
    startup_s: float | None = None
    """From entering `run` to the first measured step: set-up, model build, warm-up, compile."""
    first_measured_at: float | None = None
    """Wall-clock time (epoch s) of the first measured step, to compare with a trial's start."""
    error: str = ""
    torch_version: str = torch.__version__
    slmray_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA OOM, or the CPU allocator refusing a request (the forced OOM of the CPU tests)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(exc)


def _optimizer(model: torch.nn.Module, cfg: TrainConfig, fused: bool) -> torch.optim.Optimizer:
    # decay matrices and embeddings, not norms and biases (nanoGPT's configure_optimizers)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), fused=fused)


def _memory_error(env: parallel.DistEnv, exc: BaseException) -> str:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if env.device.type != "cuda":
        return f"out of memory: {first_line[:200]}"
    total = torch.cuda.get_device_properties(env.device).total_memory / GIB
    peak = torch.cuda.max_memory_allocated(env.device) / GIB
    return f"out of memory: peak {peak:.1f} GiB allocated of {total:.1f} GiB on {detect_device_name('cuda')}"


def run(
    cfg: TrainConfig, node_id: str | None = None, progress: Callable[[str], None] = lambda msg: None
) -> TrainResult:
    """Train `cfg` for warm-up plus measured steps; every rank returns the same result.

    Out of memory in a one-process run comes back as status `oom`.  With several processes
    it is raised: the other ranks may be blocked in a collective, so the launcher (torchrun,
    Ray Train) must tear the group down.
    """
    entered = time.perf_counter()
    env = parallel.setup(cfg.device, cfg.strategy)
    try:
        return _run(cfg, env, node_id or socket.gethostname(), progress, entered)
    finally:
        parallel.teardown(env)


def _run(
    cfg: TrainConfig, env: parallel.DistEnv, node_id: str, progress: Callable[[str], None], entered: float
) -> TrainResult:
    on_gpu = env.device.type == "cuda"
    say = progress if env.is_main else (lambda msg: None)
    device_name = detect_device_name(env.device.type)
    if on_gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        if cfg.memory_fraction < 1.0:
            torch.cuda.set_per_process_memory_fraction(cfg.memory_fraction, env.device)
    tokens_per_step = cfg.tokens_per_device_step * env.world_size
    result = TrainResult(
        status="ok", num_gpus=env.world_size, num_nodes=parallel.num_nodes(node_id), device_name=device_name,
        gpu_type=canonical_gpu(device_name), n_params=cfg.model.num_params,
        flops_per_token=flops_per_token(cfg.model, cfg.seq_len), tokens_per_step=tokens_per_step,
    )
    say(f"building {cfg.model.name} ({cfg.model.num_params / 1e6:.1f}M parameters) on {env.world_size} x {result.gpu_type}")
    try:
        torch.manual_seed(cfg.seed)  # same seed on every rank: identical initial weights
        with env.device:
            model = Transformer(cfg.model, cfg.attention)
        model, amp_dtype = parallel.parallelize(
            model, cfg.strategy, env, compile=cfg.compile, activation_checkpointing=cfg.activation_checkpointing
        )
        optimizer = _optimizer(model, cfg, fused=on_gpu)
        warmup_lr = max(cfg.lr_warmup_steps, 1)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup_lr))
        batches = make_batches(
            cfg.data, cfg.model.vocab_size, cfg.per_device_batch, cfg.seq_len, env.rank, env.world_size,
            cfg.grad_accum, cfg.seed, env.device,
        )
        if on_gpu:
            torch.cuda.reset_peak_memory_stats(env.device)  # count training, not the transient set-up

        timer = StepTimer(env.device)
        losses: list[torch.Tensor] = []
        measured = cfg.steps * cfg.repeats
        say(f"warm-up: {cfg.warmup_steps} steps{' (compiling)' if cfg.compile else ''}")
        for step in range(cfg.warmup_steps + measured):
            if step == cfg.warmup_steps:
                if on_gpu:
                    torch.cuda.synchronize(env.device)
                if dist.is_initialized():
                    dist.barrier()
                result.startup_s = time.perf_counter() - entered
                result.first_measured_at = time.time()
                say(f"measuring: {cfg.repeats} x {cfg.steps} steps")
                timer.mark()
            losses.append(_train_step(model, optimizer, batches, step, cfg, amp_dtype, env.device))
            schedule.step()
            if step >= cfg.warmup_steps:
                timer.mark()
        durations = timer.durations()
    except Exception as exc:
        if not is_out_of_memory(exc) or env.world_size > 1:
            raise
        result.status, result.error = "oom", _memory_error(env, exc)
        if on_gpu:
            result.peak_mem_gb = torch.cuda.max_memory_allocated(env.device) / GIB
        return result

    step_times = parallel.all_reduce(durations, "max", env.device)  # a step ends when the slowest rank does
    step_losses = parallel.all_reduce(torch.stack(losses).float().tolist(), "mean", env.device)
    windows = [sum(step_times[i : i + cfg.steps]) for i in range(0, measured, cfg.steps)]
    rates = [tokens_per_second(tokens_per_step * cfg.steps, w) for w in windows]
    result.tokens_per_s = statistics.fmean(rates)
    result.tokens_per_s_std = statistics.stdev(rates) if len(rates) > 1 else 0.0
    result.tokens_per_s_per_gpu = result.tokens_per_s / env.world_size
    result.step_time_median_s, result.step_time_iqr_s = median_and_iqr(step_times)
    result.mfu = mfu(result.tokens_per_s_per_gpu, result.flops_per_token, result.gpu_type)
    result.mfu_non_embedding = mfu(
        result.tokens_per_s_per_gpu, flops_per_token(cfg.model, cfg.seq_len, include_embeddings=False), result.gpu_type
    )
    if on_gpu:
        peak, reserved = parallel.all_reduce(
            [torch.cuda.max_memory_allocated(env.device) / GIB, torch.cuda.max_memory_reserved(env.device) / GIB],
            "max", env.device,
        )
        result.peak_mem_gb, result.peak_mem_reserved_gb = peak, reserved
    result.losses = step_losses
    result.final_loss = statistics.fmean(step_losses[-FINAL_LOSS_STEPS:])
    result.tokens_seen = tokens_per_step * len(step_losses)
    return result


def _train_step(model, optimizer, batches, step: int, cfg: TrainConfig, amp_dtype, device) -> torch.Tensor:
    """One optimizer step over `grad_accum` micro-batches; returns the loss, still on the device."""
    total = torch.zeros((), device=device)
    for micro in range(cfg.grad_accum):
        x, y = batches.get(step, micro)
        with parallel.grad_sync(model, enabled=micro == cfg.grad_accum - 1):
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                loss = model(x, y) / cfg.grad_accum
            loss.backward()
        total += loss.detach()
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, Any]:
    """Ray Train entry point: `config["train"]` is a `TrainConfig.to_dict()`.

    Reports one result at the end (every `ray.train.report` is a barrier across workers, so
    nothing is reported inside the timed loop), and returns it: Train V2 hands rank 0's
    return value to the caller (`Result.return_value`); `Result.metrics` only follows
    reports that carry a checkpoint.
    """
    import ray
    import ray.train

    cfg = TrainConfig.from_dict(config["train"])
    result = run(cfg, node_id=ray.get_runtime_context().get_node_id()).to_dict()
    ray.train.report(result)
    return result


def format_result(cfg: TrainConfig, r: TrainResult) -> str:
    head = (
        f"{cfg.model.name} {cfg.attention} {cfg.strategy} batch {cfg.per_device_batch} x seq {cfg.seq_len}"
        f"{' compiled' if cfg.compile else ''} on {r.num_gpus} x {r.gpu_type}"
    )
    if r.status != "ok":
        return f"{head}: status {r.status}: {r.error}"
    parts = [f"{r.tokens_per_s:,.0f} tokens/s"]
    if r.tokens_per_s_std:
        parts[-1] += f" (sd {r.tokens_per_s_std:,.0f} over {cfg.repeats} repeats)"
    if r.mfu is not None:
        parts.append(f"MFU {100 * r.mfu:.1f}%")
    parts.append(f"step {1e3 * r.step_time_median_s:.1f} ms (IQR {1e3 * r.step_time_iqr_s:.1f})")
    if r.peak_mem_gb is not None:
        parts.append(f"peak {r.peak_mem_gb:.1f} GiB")
    parts.append(f"loss {r.final_loss:.3f}")
    return f"{head}: " + ", ".join(parts)


def list_models() -> str:
    lines = [f"{'model':<12} {'family':<6} {'layers':>6} {'width':>6} {'heads':>5} {'mlp':>6} {'params':>15}  published"]
    for m in PRESETS.values():
        published = PAPER_PARAM_COUNTS.get(m.name)
        pub = f"{published:,} ({100 * (m.num_params / published - 1):+.2f}%)" if published else "-"
        lines.append(
            f"{m.name:<12} {m.family:<6} {m.n_layer:>6} {m.d_model:>6} {m.n_head:>5} {m.d_mlp:>6} {m.num_params:>15,}  {pub}"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig.__dataclass_fields__
    p = argparse.ArgumentParser(
        prog="python -m slmray.train", description="Train one configuration and report its throughput.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--list-models", action="store_true", help="print the model presets and exit")
    p.add_argument("--model", default="tiny", help="preset name (see --list-models)")
    for name in SHAPE_FLAGS:
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=None, help=f"override the preset's {name}")
    p.add_argument("--attention", default=d["attention"].default, help="eager, sdpa, sdpa-flash, sdpa-cudnn, sdpa-efficient, sdpa-math, flash2")
    p.add_argument("--strategy", default=d["strategy"].default, help="single, ddp, fsdp, fsdp_grad_op")
    for name in ("per_device_batch", "seq_len", "grad_accum", "steps", "warmup_steps", "repeats", "lr_warmup_steps", "seed"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=d[name].default)
    for name in ("lr", "weight_decay", "grad_clip", "memory_fraction"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=d[name].default)
    p.add_argument("--compile", action="store_true", help="torch.compile each block and the output head")
    p.add_argument("--activation-checkpointing", action="store_true")
    p.add_argument("--data", default=d["data"].default, help="synthetic, stdlib, or a token-shard directory / s3:// prefix")
    p.add_argument("--device", default=d["device"].default, choices=("auto", "cuda", "cpu"))
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    # `is not None`, not truthiness: --n-layer 0 must reach ModelConfig's check, not fall back to the preset
    overrides = {k: getattr(args, k) for k in SHAPE_FLAGS if getattr(args, k) is not None}
    names = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "model"]
    return TrainConfig(model=get_model(args.model, **overrides), **{n: getattr(args, n) for n in names})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_models:
        print(list_models())
        return 0
    try:
        cfg = config_from_args(args)
        result = run(cfg, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        print(f"status oom: {str(exc).strip().splitlines()[0][:300]}", file=sys.stderr)  # a rank of a multi-process run
        return 3
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 alone prints
        if args.json:
            print(json.dumps({"config": cfg.to_dict(), "result": result.to_dict()}))
        else:
            print(format_result(cfg, result))
    return 0 if result.status == "ok" else 3


if __name__ == "__main__":
    sys.exit(main())
