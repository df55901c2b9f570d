"""The output head's loss kernels on one GPU: forward + backward time and peak memory of each
(`slmray.train.loss`) at today's small models' vocabularies and widths, 16 x 1,024 tokens.

    python benchmarks/loss_kernels.py --out loss_kernels_h100.md   # on a GPU; no table committed yet

Each kernel runs as the trainer runs it on one GPU: fp32 hidden states and output weight under
bf16 autocast (the head's GEMMs in bf16, the loss in fp32), the gradients of both taken.  standard
and chunked also run compiled (`torch.compile` of the kernel, as `parallelize` compiles the head);
liger (Liger-Kernel) and cce (cut-cross-entropy) run where their packages are installed, as the
trainer runs them (beside a compiled head, never inside it).  Time: the median of `--iters`
forward+backward passes after `--warmup`, CUDA events.  Memory: the peak allocated during those
passes above what the inputs, the weight and their gradients take, i.e. what the kernel adds.
Loss and gradients are compared with the un-compiled standard kernel's (largest relative error of
the loss, of the input's and of the weight's gradient), so a fast kernel that computes something
else shows.  An out-of-memory kernel reads `oom`.  `--device cpu` runs the same code on the CPU
(host-clock times, no memory figure, no Triton kernels): a check of the script, not a measurement.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from slmray.train.config import installed_loss_kernels
from slmray.train.loss import get_loss

VOCABS = (49_152, 128_256, 151_936)  # SmolLM2; Llama-3.2; Qwen2.5 / Qwen3
HIDDEN = (960, 1536, 2048)  # SmolLM2-360M; Qwen2.5-1.5B; Llama-3.2-1B / Qwen3-1.7B
VARIANTS = ("standard", "standard+compile", "chunked", "chunked+compile", "liger", "cce")
GIB = 1 << 30


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30)).item()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(variant: str, vocab: int, hidden: int, tokens: int, warmup: int, iters: int, device: torch.device,
            reference=None) -> dict:
    """Time and extra peak memory of one kernel at one shape, and its outputs for the comparison."""
    kernel, _, compiled = variant.partition("+")
    torch.compiler.reset()  # each shape compiles afresh; no recompilation limit across shapes
    torch.manual_seed(0)
    on_gpu = device.type == "cuda"
    h = (torch.randn(tokens, hidden, device=device) * 0.5).requires_grad_()
    w = (torch.randn(vocab, hidden, device=device) * 0.02).requires_grad_()
    targets = torch.randint(0, vocab, (tokens,), device=device)
    loss_fn = get_loss(kernel)
    if compiled:
        loss_fn = torch.compile(loss_fn)

    def step() -> torch.Tensor:
        h.grad = w.grad = None
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = loss_fn(h, w, targets)
        loss.backward()
        return loss.detach()

    try:
        for _ in range(warmup):
            step()
        _sync(device)
        h.grad = w.grad = None
        if on_gpu:
            base = torch.cuda.memory_allocated() + h.numel() * 4 + w.numel() * 4  # inputs, weight, their fp32 grads
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(iters):
            if on_gpu:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                loss = step()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
            else:
                began = time.perf_counter()
                loss = step()
                times.append(1e3 * (time.perf_counter() - began))
        peak = torch.cuda.max_memory_allocated() - base if on_gpu else float("nan")
    except torch.OutOfMemoryError:
        return {"status": "oom"}
    out = {"status": "ok", "ms": statistics.median(times), "extra_gib": peak / GIB,
           "loss": loss.float().cpu(), "grad_h": h.grad.float().cpu(), "grad_w": w.grad.float().cpu()}
    if reference is not None and reference.get("status") == "ok":
        out["err"] = max(_rel(out[k], reference[k]) for k in ("loss", "grad_h", "grad_w"))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab", type=int, nargs="+", default=list(VOCABS))
    p.add_argument("--hidden", type=int, nargs="+", default=list(HIDDEN))
    p.add_argument("--tokens", type=int, default=16 * 1024, help="batch x sequence (default 16 x 1024)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--out", help="also write the table (Markdown) here")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: a check of the script, not a measurement")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: this benchmark needs a CUDA GPU (--device cpu checks the script)", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    installed = [k for k in installed_loss_kernels() if device.type == "cuda" or k in ("standard", "chunked")]
    variants = [v for v in args.variants if v.partition("+")[0] in installed]
    skipped = [v for v in args.variants if v not in variants]
    where = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    lines = [
        f"Loss kernels on {where}, torch {torch.__version__}, {args.tokens:,} tokens, bf16 autocast, "
        f"fwd+bwd median of {args.iters}; extra GiB: peak above inputs, weight and their gradients; err: largest "
        "relative error of loss / grad(h) / grad(W) against un-compiled standard"
        + (f"; not run (not installed, or no GPU): {', '.join(skipped)}" if skipped else ""),
        "",
        "| vocab | hidden | kernel | ms | extra GiB | err | x standard time | x standard memory |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    out = open(args.out, "w") if args.out else None  # written as the rows come: a run cut short keeps its rows

    def emit(*rows: str) -> None:
        print("\n".join(rows), flush=True)
        if out is not None:
            out.write("".join(f"{r}\n" for r in rows))
            out.flush()

    emit(*lines)
    for vocab in args.vocab:
        for hidden in args.hidden:
            reference = measure("standard", vocab, hidden, args.tokens, args.warmup, args.iters, device)
            for variant in variants:
                r = reference if variant == "standard" else measure(
                    variant, vocab, hidden, args.tokens, args.warmup, args.iters, device, reference)
                if r["status"] != "ok":
                    row = f"| {vocab} | {hidden} | {variant} | oom | | | | |"
                else:
                    ok = reference["status"] == "ok"
                    ratio_t = f"{r['ms'] / reference['ms']:.2f}" if ok else ""
                    ratio_m = f"{r['extra_gib'] / reference['extra_gib']:.2f}" if ok else ""
                    row = (f"| {vocab} | {hidden} | {variant} | {r['ms']:.1f} | {r['extra_gib']:.2f} | "
                           f"{r.get('err', 0.0):.1e} | {ratio_t} | {ratio_m} |")
                emit(row)
                torch.cuda.empty_cache()
    if out is not None:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
