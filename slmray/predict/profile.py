"""Profile the GPU at hand for the step-time model: `python -m slmray.predict.profile`.

    python -m slmray.predict.profile                  # writes slmray/catalog/profiles/<gpu_type>.csv
    python -m slmray.predict.profile --quick --out -  # a smaller ladder, printed only
    python -m slmray.predict.profile --json           # the rows as JSON on stdout too

Microbenchmarks, each timed on the device with CUDA events after a warm-up, the median of several
runs, queued behind a sleeping kernel so that the host's launch cost does not count:

- GEMM at the shapes the presets' Linear layers run (`gemm_ladder`): for each (in, out) and each
  step size from 1k to 64k tokens, the forward product, the input gradient and the weight
  gradient, in bf16, and in FP8 through `torch._scaled_mm` where the GPU has FP8 tensor cores;
- fused attention (SDPA as the trainer calls it, and its flash and cuDNN kernels where they run),
  causal, forward and backward, at the presets' head dimensions and sequence 1024 and 2048;
- device-to-device copies (HBM bandwidth) and back-to-back tiny kernels (the fixed cost of one);
- the host: seconds per op that an uncompiled block dispatches (forward and backward, autograd and
  autocast on, counted by a dispatch mode), of one compiled one-kernel region and of one compiled
  block of the llama reference preset, each called forward and backward.

The table is what the estimator reads (`slmray.catalog.profiles`); the trainer's own device
detection names the GPU type.  On a machine without a CUDA GPU the command refuses (exit 2).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterable

from slmray.catalog.gpus import canonical_gpu
from slmray.catalog.profiles import Measurement, format_profile, profile_path
from slmray.predict.kernels import linear_gemms, linear_shapes
from slmray.predict.opcount import count_ops
from slmray.private_apis import gpu_spin
from slmray.train.presets import PRESETS

TOKENS = (1024, 2048, 4096, 8192, 16384, 32768, 65536)
"""Tokens per step (batch x sequence on one GPU) the GEMM ladder runs: batch 1 to 64 at 1024."""
QUICK_TOKENS = (1024, 8192, 65536)
PROFILED_MODELS = tuple(name for name in PRESETS if not name.startswith("tiny"))
QUICK_MODELS = ("llama-100m", "pythia-160m")
SEQ_LENS = (1024, 2048)
BATCH_HEADS = (16, 64, 256, 1024)
"""Attention batch x heads: a batch of 1 to 64 sequences of 16 heads."""
ATTENTION_KINDS = ("sdpa", "sdpa-flash", "sdpa-cudnn")
FP8_ALIGNMENT = 16  # torch._scaled_mm needs every dimension a multiple of 16


def gemm_ladder(
    models: Iterable[str] = PROFILED_MODELS, tokens: Iterable[int] = TOKENS, blocks_only: bool = False
) -> list[tuple[int, int, int, bool]]:
    """The (m, n, k, is a weight gradient) of every GEMM a training step of `models` runs at `tokens`
    tokens: for each Linear (in, out), the forward (tokens, out, in), the input gradient (tokens,
    in, out) and the weight gradient (out, in, tokens); sorted, each once.  `blocks_only`: the blocks' Linear layers,
    not the output head (FP8 training keeps the head in bf16)."""
    shapes = {(fan_in, fan_out) for name in models for fan_in, fan_out, in_block in linear_shapes(PRESETS[name])
              if in_block or not blocks_only}
    out = set()
    for fan_in, fan_out in shapes:
        for t in tokens:
            out |= set(linear_gemms(t, fan_in, fan_out))
    return sorted(out)


def attention_ladder(models: Iterable[str] = PROFILED_MODELS) -> list[tuple[int, int, int]]:
    """(batch x heads, sequence, head dim) of the attention benchmark."""
    head_dims = sorted({PRESETS[name].head_dim for name in models})
    return [(bh, t, hd) for hd in head_dims for t in SEQ_LENS for bh in BATCH_HEADS]


def count_block_ops(family: str, attention: str, device: str = "cpu") -> tuple[int, int]:
    """(ops, kernels) one block of the tiny preset of `family` dispatches forward and backward under
    bf16 autocast: every aten op, and those that are not views (a view launches no kernel)."""
    import torch

    from slmray.train.attention import get_attention
    from slmray.train.model import Block, rotary_tables

    cfg = PRESETS["tiny" if family == "llama" else "tiny-neox"]
    block = Block(cfg, get_attention(attention)).to(device)
    cos, sin = (t[:16].to(device) for t in rotary_tables(cfg))
    x = torch.randn(2, 16, cfg.d_model, device=device, requires_grad=True)
    ops = count_ops(lambda: _block_step(block, x, cos, sin, device))
    return sum(ops.values()), sum(v for (name, is_view), v in ops.items() if not is_view)


def _block_step(block, x, cos, sin, device: str) -> None:
    import torch

    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        y = block(x, cos, sin)
    y.float().sum().backward()


# ---------------------------------------------------------------------------------------------
# Timing on the device


class _Timer:
    """Median device seconds of `fn`, timed with CUDA events behind a sleeping kernel."""

    def __init__(self, reps: int, warmup: int):
        import torch

        self.torch, self.reps, self.warmup = torch, reps, warmup

    def __call__(self, fn: Callable[[], object], inner: int = 1, host_s: float = 20e-6) -> float:
        """`host_s`: a generous bound on the host's time to queue one call of `fn`.  The device
        sleeps while the host queues every timed call (about 2e9 sleep cycles a second at Hopper's
        clock; a slower clock sleeps longer, which costs time, not accuracy): timed behind a shorter
        sleep, the first H100 run measured the host's launch rate (6.7 us a tiny kernel, a flat
        0.5 ms for the smallest attention) instead of the device."""
        torch = self.torch
        for _ in range(self.warmup):
            fn()
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(self.reps)]
        gpu_spin(int(2e9 * max(5e-4, 2 * host_s * inner * self.reps)))
        for start, end in events:
            start.record()
            for _ in range(inner):
                fn()
            end.record()
        torch.cuda.synchronize()
        return statistics.median(s.elapsed_time(e) for s, e in events) / 1e3 / inner


def _free_bytes() -> int:
    import torch

    return torch.cuda.mem_get_info()[0]


def bench_gemms(
    shapes: list[tuple[int, int, int, bool]], fp8_shapes: list[tuple[int, int, int, bool]], timer: _Timer,
    say: Callable[[str], None],
) -> list[Measurement]:
    import torch

    limit = _free_bytes() // 8  # each operand at most an eighth of the free memory
    largest = max(max(m * k, n * k, m * n) for m, n, k, _ in shapes)
    n_elem = min(largest, limit // 2)
    a_buf = torch.randn(n_elem, device="cuda", dtype=torch.bfloat16)
    b_buf = torch.randn(n_elem, device="cuda", dtype=torch.bfloat16)
    rows, skipped, started = [], 0, time.perf_counter()
    for variant, todo in (("bf16", shapes), ("fp8", [s for s in fp8_shapes if all(d % FP8_ALIGNMENT == 0 for d in s[:3])])):
        if not todo:
            continue
        if variant == "fp8":
            a_buf, b_buf = a_buf.to(torch.float8_e4m3fn), b_buf.to(torch.float8_e4m3fn)
            one = torch.ones((), device="cuda")
        for i, (m, n, k, weight_gradient) in enumerate(todo):
            if max(m * k, n * k, m * n) > n_elem:
                skipped += 1
                continue
            a = a_buf[: m * k].view(m, k)
            b = b_buf[: n * k].view(n, k).t()  # (k, n), column-major: a Linear's weight as the GEMM reads it
            if variant == "bf16":
                fn = lambda a=a, b=b: torch.mm(a, b)  # noqa: E731
            else:
                fn = lambda a=a, b=b: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)  # noqa: E731
            rows.append(Measurement("gemm_wgrad" if weight_gradient else "gemm", variant, m, n, k, timer(fn)))
            if (i + 1) % 200 == 0 or i + 1 == len(todo):
                say(f"gemm {variant}: {i + 1}/{len(todo)} ({time.perf_counter() - started:.1f} s)")
    if skipped:
        say(f"gemm: {skipped} shapes skipped, larger than an eighth of the free GPU memory")
    del a_buf, b_buf
    torch.cuda.empty_cache()
    return rows


def fp8_supported() -> bool:
    """Whether this GPU and torch run an FP8 `torch._scaled_mm` (Ada and Hopper on; Ampere not)."""
    import torch

    if not hasattr(torch, "_scaled_mm") or torch.cuda.get_device_capability() < (8, 9):
        return False
    try:
        a = torch.zeros(16, 16, device="cuda").to(torch.float8_e4m3fn)
        one = torch.ones((), device="cuda")
        torch._scaled_mm(a, a.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
        return True
    except (RuntimeError, TypeError):
        return False


def bench_attention(ladder: list[tuple[int, int, int]], kinds: Iterable[str], timer: _Timer, say: Callable[[str], None]) -> list[Measurement]:
    import torch

    from slmray.train.attention import get_attention

    heads = 16
    rows = []
    for kind in kinds:
        attend = get_attention(kind)
        done = 0
        for bh, seq, hd in ladder:
            batch = max(1, bh // heads)
            q, k, v = (torch.randn(batch, seq, heads, hd, device="cuda", dtype=torch.bfloat16, requires_grad=True)
                       for _ in range(3))
            grad = torch.randn(batch, seq, heads, hd, device="cuda", dtype=torch.bfloat16)

            def step(q=q, k=k, v=v, grad=grad):
                attend(q, k, v).backward(grad)

            try:
                seconds = timer(step, host_s=1e-3)  # autograd queues forward and backward: ~0.5 ms measured
            except RuntimeError as exc:  # this kernel does not take this head dim, or is not built here
                say(f"attention {kind}: skipped ({str(exc).splitlines()[0][:100]})")
                break
            rows.append(Measurement("attention", kind, batch * heads, seq, hd, seconds))
            done += 1
        if done:
            say(f"attention {kind}: {done}/{len(ladder)}")
    return rows


def bench_copy(timer: _Timer, say: Callable[[str], None]) -> list[Measurement]:
    import torch

    rows = []
    for size in (1 << 20, 1 << 24, 1 << 27, 1 << 30):
        if 2 * size > _free_bytes() // 2:
            break
        src = torch.empty(size, dtype=torch.uint8, device="cuda").random_()
        dst = torch.empty_like(src)
        rows.append(Measurement("copy", "-", size, 0, 0, timer(lambda: dst.copy_(src))))
    big = rows[-1]
    say(f"copy: {2 * big.m / big.seconds / 1e12:.2f} TB/s read + written ({big.m >> 20} MiB)")
    return rows


def bench_kernel(timer: _Timer, say: Callable[[str], None]) -> list[Measurement]:
    inner = 200
    seconds = timer(lambda: gpu_spin(0), inner=inner, host_s=2e-5)
    say(f"kernel: {seconds * 1e6:.2f} us back to back")
    return [Measurement("kernel", "-", inner, 0, 0, seconds)]


def bench_host(say: Callable[[str], None], calls: int = 30) -> list[Measurement]:
    """Host seconds per op of an eager block, forward and backward (tiny shapes: the host is the bottleneck)."""
    import torch

    from slmray.train.attention import get_attention
    from slmray.train.model import Block, rotary_tables

    rows = []
    for family, preset in (("llama", "tiny"), ("neox", "tiny-neox")):
        for attention in ("sdpa", "eager"):
            cfg = PRESETS[preset]
            block = Block(cfg, get_attention(attention)).cuda()
            cos, sin = (t[:16].cuda() for t in rotary_tables(cfg))
            x = torch.randn(2, 16, cfg.d_model, device="cuda", requires_grad=True)
            ops = count_ops(lambda: _block_step(block, x, cos, sin, "cuda"))
            n_ops = sum(ops.values())
            kernels = sum(v for (_, is_view), v in ops.items() if not is_view)
            seconds = _host_s(lambda: _block_step(block, x, cos, sin, "cuda"), calls)
            rows.append(Measurement("host_op", f"{family}-{attention}", n_ops, kernels, 0, seconds / n_ops))
            say(f"host: {family} {attention} block, {n_ops} ops ({kernels} kernels), {rows[-1].seconds * 1e6:.2f} us an op")
    return rows


def _host_s(step: Callable[[], None], calls: int) -> float:
    """Median over five rounds of the wall seconds per call of `step`, `calls` calls a round between
    device synchronisations: the host's time where the host is the bottleneck (tiny shapes)."""
    import torch

    walls = []
    for _ in range(5):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            step()
        torch.cuda.synchronize()
        walls.append((time.perf_counter() - start) / calls)
    return statistics.median(walls)


def _compiled_host_s(name: str, step: Callable[[], None], say: Callable[[str], None], calls: int) -> float | None:
    """`_host_s` of `step` (a compiled call forward and backward) after three untimed calls that
    compile it; None, said, where Inductor fails (the prior stays, the profile is made)."""
    try:
        for _ in range(3):
            step()
    except Exception as exc:  # noqa: BLE001 (an Inductor failure leaves the prior in place, not the profile unmade)
        say(f"{name}: skipped ({type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''})")
        return None
    seconds = _host_s(step, calls)
    say(f"{name}: {seconds * 1e6:.1f} us forward and backward")
    return seconds


def bench_compiled_call(say: Callable[[str], None], calls: int = 50) -> list[Measurement]:
    """Host seconds of one tiny compiled region, forward and backward (dynamo's guards, the autograd
    wrapper, a few Triton launches): what a compiled region costs each call."""
    import torch

    def f(x):
        return torch.nn.functional.silu(x * 2.0 + 1.0).sum()

    compiled = torch.compile(f)
    x = torch.randn(64, 64, device="cuda", requires_grad=True)
    seconds = _compiled_host_s("compiled call", lambda: compiled(x).backward(), say, calls)
    return [] if seconds is None else [Measurement("compiled_call", "-", 0, 0, 0, seconds)]


def bench_compiled_block(say: Callable[[str], None], calls: int = 30) -> list[Measurement]:
    """Host seconds of one compiled block of the llama reference preset (`block.compile()`, as the
    trainer compiles each block), forward and backward at tiny shapes, where the host is the
    bottleneck: a real block launches its Triton kernels and extern GEMMs one by one from
    Inductor's wrapper, which the one-kernel region of `compiled_call` does not show."""
    import torch

    from slmray.train.attention import get_attention
    from slmray.train.model import Block, rotary_tables

    cfg = PRESETS["tiny"]
    block = Block(cfg, get_attention("sdpa")).cuda()
    block.compile()
    cos, sin = (t[:16].cuda() for t in rotary_tables(cfg))
    x = torch.randn(2, 16, cfg.d_model, device="cuda", requires_grad=True)
    seconds = _compiled_host_s("compiled block", lambda: _block_step(block, x, cos, sin, "cuda"), say, calls)
    return [] if seconds is None else [Measurement("compiled_block", "llama-sdpa", 0, 0, 0, seconds)]


def _driver() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_profile(quick: bool, say: Callable[[str], None]) -> tuple[dict[str, str], list[Measurement]]:
    """The profile of the current CUDA device: its header and rows."""
    import torch

    started = time.perf_counter()
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    header = {
        "gpu_type": canonical_gpu(props.name), "device": props.name,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "driver": _driver(), "torch": torch.__version__, "cuda": str(torch.version.cuda),
        "sms": str(props.multi_processor_count), "quick": str(quick).lower(),
    }
    say(f"profiling {props.name} ({header['gpu_type']}, {props.multi_processor_count} SMs), torch {torch.__version__}")
    torch.backends.cuda.matmul.allow_tf32 = True
    timer = _Timer(reps=5, warmup=2)
    models = QUICK_MODELS if quick else PROFILED_MODELS
    rows = bench_kernel(timer, say) + bench_copy(timer, say)
    fp8 = fp8_supported()
    if not fp8:
        say("gemm fp8: not supported on this GPU or torch (no FP8 rows)")
    tokens = QUICK_TOKENS if quick else TOKENS
    rows += bench_gemms(gemm_ladder(models, tokens), gemm_ladder(models, tokens, blocks_only=True) if fp8 else [], timer, say)
    rows += bench_attention(attention_ladder(models), ATTENTION_KINDS[:1] if quick else ATTENTION_KINDS, timer, say)
    rows += bench_host(say)
    rows += bench_compiled_call(say) + bench_compiled_block(say)
    say(f"done in {time.perf_counter() - started:.1f} s, {len(rows)} rows")
    return header, rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m slmray.predict.profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="CSV to write (default: the catalog's profiles/<gpu_type>.csv); - for none")
    p.add_argument("--quick", action="store_true", help="two models' shapes, three step sizes, SDPA only (tests)")
    p.add_argument("--json", action="store_true", help="also print the header and rows as JSON on stdout")
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("error: profile: no CUDA GPU here (torch.cuda.is_available() is False); run it on the GPU to profile",
              file=sys.stderr)
        return 2

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    header, rows = run_profile(args.quick, say)
    text = format_profile(header, rows)
    if args.json:
        print(json.dumps({"header": header, "rows": [asdict(r) for r in rows]}))
    if args.out != "-":
        out = Path(args.out) if args.out else Path(str(profile_path(header["gpu_type"])))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        say(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
