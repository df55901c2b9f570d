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

import dataclasses
import math
import socket
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.distributed as dist

from slmray import __version__, private_apis
from slmray.catalog.gpus import canonical_gpu, detect_device_name
from slmray.data.sources import BatchStream, make_batches
from slmray.train import fp8, host_memory, parallel
from slmray.train import loss as loss_kernels
from slmray.train.config import TrainConfig, check_runs_on_cpu
from slmray.train.deadline import Deadline, TimeLimitExceeded
from slmray.train.metrics import StepTimer, flops_per_token, median_and_iqr, mfu, tokens_per_second
from slmray.train.model import Transformer

GIB = 1 << 30
FINAL_LOSS_STEPS = 5
PROGRESS_EVERY_S = 10.0
"""A long run says how far it has got at most this often (a step counter on stderr)."""


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
    mfu_fp8: float | None = None
    """FP8 runs: the same FLOPs over the GPU's dense FP8 peak (`mfu` stays against BF16)."""
    fp8_linear_layers: int = 0
    """Linear layers that ran their GEMMs in FP8 (`fp8.convertible`); 0 in bf16."""
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
    torch_version: str = str(torch.__version__)
    """A plain str: torch's own `TorchVersion` would make whoever unpickles a result import torch."""
    slmray_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class TimeLimitError(RuntimeError):
    """A run of several processes past its `time_limit_s`: raised, as their out-of-memory is (another
    rank may be blocked in a collective), so the launcher tears the group down."""


def _time_limit_message(cfg: TrainConfig, at: dict[str, Any]) -> str:
    step = at.get("step")
    if step is None:
        where = "while building the model and its batches"
    elif step < cfg.warmup_steps:
        where = f"in warm-up step {step + 1} of {cfg.warmup_steps}"
    else:
        where = f"in measured step {step - cfg.warmup_steps + 1} of {cfg.steps * cfg.repeats}"
    return (f"time limit: {cfg.time_limit_s:g} s passed {where}; raise it with --trial-timeout (a sweep) "
            "or --time-limit (python -m slmray.train)")


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

    Out of memory, or `cfg.time_limit_s` passing, in a one-process run comes back as status `oom`
    or `failed`.  With several processes it is raised: the other ranks may be blocked in a
    collective, so the launcher (torchrun, Ray Train) must tear the group down.
    """
    entered = time.perf_counter()
    fp8.check_supported(cfg.precision, cfg.device)  # before any process group or model exists
    loss_kernels.check_supported(cfg.loss_kernel, cfg.device)
    env = parallel.setup(cfg.device, cfg.strategy)
    at: dict[str, Any] = {}
    try:
        with Deadline(cfg.time_limit_s):  # set-up and teardown of the process group stay outside it
            return _run(cfg, env, node_id or socket.gethostname(), progress, entered, at)
    except TimeLimitExceeded:  # past the limit outside the steps (the result is not built yet)
        raise TimeLimitError(_time_limit_message(cfg, at)) from None
    finally:
        parallel.teardown(env)


def _run(
    cfg: TrainConfig, env: parallel.DistEnv, node_id: str, progress: Callable[[str], None], entered: float,
    at: dict[str, Any],
) -> TrainResult:
    on_gpu = env.device.type == "cuda"
    if not on_gpu:
        check_runs_on_cpu(cfg)  # device auto on a machine without a GPU
    say = progress if env.is_main else (lambda msg: None)
    device_name = detect_device_name(env.device.type)
    if on_gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        if cfg.memory_fraction < 1.0:
            torch.cuda.set_per_process_memory_fraction(cfg.memory_fraction, env.device)
    result = TrainResult(
        status="ok", num_gpus=env.world_size, num_nodes=parallel.num_nodes(node_id), device_name=device_name,
        gpu_type=canonical_gpu(device_name), n_params=cfg.model.num_params,
        flops_per_token=flops_per_token(cfg.model, cfg.seq_len), tokens_per_step=cfg.tokens_per_device_step * env.world_size,
    )
    if not on_gpu and (short := _cpu_shortfall(cfg, env)):
        result.status, result.error = "oom", short
        return result
    say(f"building {cfg.model.name} ({cfg.model.num_params:,} parameters) on {env.world_size} x {result.gpu_type}")
    try:
        training = _build(cfg, env)
        result.fp8_linear_layers = fp8.count(training.model)
        durations, losses = _steps(cfg, env, training, result, say, entered, at)
    except TimeLimitExceeded:
        if env.world_size > 1:
            raise TimeLimitError(_time_limit_message(cfg, at)) from None
        result.status, result.error = "failed", _time_limit_message(cfg, at)
        return result
    except Exception as exc:
        if not is_out_of_memory(exc) or env.world_size > 1:
            raise
        result.status, result.error = "oom", _memory_error(env, exc)
        if on_gpu:
            result.peak_mem_gb = torch.cuda.max_memory_allocated(env.device) / GIB
        return result
    _summarise(cfg, env, result, durations, losses)
    return result


def _cpu_shortfall(cfg: TrainConfig, env: parallel.DistEnv) -> str | None:
    """`host_memory.shortfall`, the same on every rank: each reads its host's free memory at its own
    moment, and one rank going on alone would wait in a collective forever."""
    short = host_memory.shortfall(cfg.model.num_params, env.world_size, cfg.strategy.startswith("fsdp"))
    if env.world_size > 1:
        every = [None] * env.world_size
        dist.all_gather_object(every, short)
        short = next((s for s in every if s), None)
    return short


@dataclass
class _Training:
    """What the steps need: the wrapped model, its optimizer and schedule, the batches, the autocast dtype."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    batches: BatchStream
    amp_dtype: torch.dtype | None


def _build(cfg: TrainConfig, env: parallel.DistEnv) -> _Training:
    torch.manual_seed(cfg.seed)  # same seed on every rank: identical initial weights
    with env.device:
        if cfg.backend == "transformers":
            from slmray.train import hf_backend  # transformers: 2 s of imports a native run skips

            model = hf_backend.build(cfg)
        else:
            model = Transformer(cfg.model, cfg.attention, cfg.loss_kernel)
    model, amp_dtype = parallel.parallelize(
        model, cfg.strategy, env, compile=cfg.compile, activation_checkpointing=cfg.activation_checkpointing,
        precision=cfg.precision,
    )
    optimizer = _optimizer(model, cfg, fused=env.device.type == "cuda")
    fp8.register_optimizer_hook(model, optimizer)
    warmup_lr = max(cfg.lr_warmup_steps, 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup_lr))
    batches = make_batches(
        cfg.data, cfg.model.vocab_size, cfg.per_device_batch, cfg.seq_len, env.rank, env.world_size,
        cfg.grad_accum, cfg.seed, env.device,
    )
    return _Training(model, optimizer, schedule, batches, amp_dtype)


def _steps(
    cfg: TrainConfig, env: parallel.DistEnv, training: _Training, result: TrainResult, say: Callable[[str], None],
    entered: float, at: dict[str, Any],
) -> tuple[list[float], list[torch.Tensor]]:
    """Warm-up, then the measured steps: each measured step's device time on this rank, and every
    step's loss (still on the device).  `at["step"]` follows the step, for a time limit to say where."""
    on_gpu = env.device.type == "cuda"
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(env.device)  # count training, not the transient set-up
    timer = StepTimer(env.device)
    losses: list[torch.Tensor] = []
    say(f"warm-up: {cfg.warmup_steps} steps{' (compiling)' if cfg.compile else ''}")
    total, said = cfg.warmup_steps + cfg.steps * cfg.repeats, time.perf_counter()
    for step in range(total):
        if step == cfg.warmup_steps:
            if on_gpu:
                torch.cuda.synchronize(env.device)
            if dist.is_initialized():
                dist.barrier()
            result.startup_s = time.perf_counter() - entered
            result.first_measured_at = time.time()
            say(f"measuring: {cfg.repeats} x {cfg.steps} steps")
            timer.mark()
        at["step"] = step
        losses.append(_train_step(training, step, cfg, env.device))
        training.schedule.step()
        if step == 0 and cfg.warmup_steps > 0 and on_gpu:
            private_apis.release_unwaited_collectives()  # a peak of training, not of NCCL's watchdog timing
        if step >= cfg.warmup_steps:
            timer.mark()
        if time.perf_counter() - said >= PROGRESS_EVERY_S:  # steps dispatched: the device may trail them
            say(f"step {step + 1} of {total}")
            said = time.perf_counter()
    return timer.durations(), losses


def _summarise(
    cfg: TrainConfig, env: parallel.DistEnv, result: TrainResult, durations: list[float], losses: list[torch.Tensor]
) -> None:
    """Fill `result` from the steps, reduced over the ranks so that every rank holds the same."""
    step_times = parallel.all_reduce(durations, "max", env.device)  # a step ends when the slowest rank does
    step_losses = parallel.all_reduce(torch.stack(losses).float().tolist(), "mean", env.device)
    windows = [sum(step_times[i : i + cfg.steps]) for i in range(0, cfg.steps * cfg.repeats, cfg.steps)]
    rates = [tokens_per_second(result.tokens_per_step * cfg.steps, w) for w in windows]
    result.tokens_per_s = statistics.fmean(rates)
    result.tokens_per_s_std = statistics.stdev(rates) if len(rates) > 1 else 0.0
    result.tokens_per_s_per_gpu = result.tokens_per_s / env.world_size
    result.step_time_median_s, result.step_time_iqr_s = median_and_iqr(step_times)
    result.mfu = mfu(result.tokens_per_s_per_gpu, result.flops_per_token, result.gpu_type)
    result.mfu_non_embedding = mfu(
        result.tokens_per_s_per_gpu, flops_per_token(cfg.model, cfg.seq_len, include_embeddings=False), result.gpu_type
    )
    if fp8.is_fp8(cfg.precision):
        result.mfu_fp8 = mfu(result.tokens_per_s_per_gpu, result.flops_per_token, result.gpu_type, dtype="fp8")
    if env.device.type == "cuda":
        peak, reserved = parallel.all_reduce(
            [torch.cuda.max_memory_allocated(env.device) / GIB, torch.cuda.max_memory_reserved(env.device) / GIB],
            "max", env.device,
        )
        result.peak_mem_gb, result.peak_mem_reserved_gb = peak, reserved
    result.losses = step_losses
    result.final_loss = statistics.fmean(step_losses[-FINAL_LOSS_STEPS:])
    result.tokens_seen = result.tokens_per_step * len(step_losses)
    diverged = next((i for i, loss in enumerate(step_losses) if not math.isfinite(loss)), None)
    if diverged is not None:  # its speed was measured, but a run that stopped learning is no result to rank
        result.status = "failed"
        result.error = f"loss is not finite from step {diverged} on ({step_losses[diverged]}): the run diverged"


def _train_step(training: _Training, step: int, cfg: TrainConfig, device: torch.device) -> torch.Tensor:
    """One optimizer step over `grad_accum` micro-batches; returns the loss, still on the device."""
    model, optimizer, amp_dtype = training.model, training.optimizer, training.amp_dtype
    total = torch.zeros((), device=device)
    for micro in range(cfg.grad_accum):
        x, y = training.batches.get(step, micro)
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

    Returns the result, the one channel it leaves by: Train V2 hands rank 0's return value to
    the caller (`Result.return_value`).  Nothing is `ray.train.report`ed: a report is a barrier
    across workers, and a Tune trial would see it before its own row.
    """
    import ray

    cfg = TrainConfig.from_dict(config["train"])
    return run(cfg, node_id=ray.get_runtime_context().get_node_id()).to_dict()


def format_result(cfg: TrainConfig, r: TrainResult) -> str:
    head = (
        f"{cfg.model.name} {cfg.attention} {cfg.strategy} batch {cfg.per_device_batch} x seq {cfg.seq_len}"
        f"{' compiled' if cfg.compile else ''}{f' {cfg.precision}' if fp8.is_fp8(cfg.precision) else ''}"
        f"{f' loss {cfg.loss_kernel}' if cfg.loss_kernel != 'standard' else ''}"
        f"{f' ({cfg.backend})' if cfg.backend != 'native' else ''}"
        f" on {r.num_gpus} x {r.gpu_type}"
    )
    if r.status != "ok":
        return f"{head}: status {r.status}: {r.error}"
    parts = [f"{r.tokens_per_s:,.0f} tokens/s"]
    if r.tokens_per_s_std:
        parts[-1] += f" (sd {r.tokens_per_s_std:,.0f} over {cfg.repeats} repeats)"
    if r.mfu is not None:
        parts.append(f"MFU {100 * r.mfu:.1f}%" + (f" (of FP8 peak {100 * r.mfu_fp8:.1f}%)" if r.mfu_fp8 is not None else ""))
    if fp8.is_fp8(cfg.precision):
        parts.append(f"{r.fp8_linear_layers} Linear layers in FP8")
    parts.append(f"step {1e3 * r.step_time_median_s:.1f} ms (IQR {1e3 * r.step_time_iqr_s:.1f})")
    if r.peak_mem_gb is not None:
        parts.append(f"peak {r.peak_mem_gb:.1f} GiB")
    parts.append(f"loss {r.final_loss:.3f}")
    return f"{head}: " + ", ".join(parts)

