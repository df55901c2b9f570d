"""Grouped-query attention two ways: SDPA's `enable_gqa=True` against k/v repeated to n_head heads.

    python benchmarks/gqa_attention.py [--out DIR]      # on a GPU: a table; DIR/gqa_attention.{json,md}

For the attention shapes of the presets with GQA (n_head, n_kv_head, head_dim), fwd+bwd in bf16
of `slmray.train.attention.get_attention(backend, gqa)`, the function the model calls, on q/k/v
taken as views of one (B, T, (n_head + 2 n_kv_head) head_dim) tensor as the model's fused qkv GEMM
gives them, so that the repeat's copy and its backward's reduction are in the time.  Median of
CUDA-event times after warm-up.  `config.GQA_DEFAULT` picks a mode per backend; this says whether
it picked the faster one.  A forced backend that refuses a mode is shown as such.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

BACKENDS = ("sdpa", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient", "flash2")


def shapes() -> dict[tuple[int, int, int], list[str]]:
    """(n_head, n_kv_head, head_dim) -> the presets with that attention shape, GQA ones only."""
    from slmray.train.presets import PRESETS

    out: dict[tuple[int, int, int], list[str]] = {}
    for m in PRESETS.values():
        if m.n_kv_head != m.n_head:
            out.setdefault((m.n_head, m.n_kv_head, m.head_dim), []).append(m.name)
    return out


def time_fwd_bwd(attend, nh: int, nkv: int, hs: int, batch: int, seq: int, device: str, iters: int) -> float:
    """Median milliseconds of attend's forward and backward on fresh-gradient views of one qkv tensor."""
    import torch

    qkv = torch.randn(batch, seq, (nh + 2 * nkv) * hs, device=device, dtype=torch.bfloat16, requires_grad=True)
    grad = torch.randn(batch, seq, nh, hs, device=device, dtype=torch.bfloat16)

    def step() -> None:
        q, k, v = qkv.view(batch, seq, nh + 2 * nkv, hs).split((nh, nkv, nkv), dim=2)  # as the model splits it
        out = attend(q, k, v)
        out.backward(grad)
        qkv.grad = None

    for _ in range(3):
        step()
    times = []
    for _ in range(iters):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            import time

            t0 = time.perf_counter()
            step()
            times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--device", default="cuda", help="cuda; cpu only to check the script (sdpa, tiny sizes)")
    p.add_argument("--out", type=Path, default=None, help="folder for gqa_attention.json and .md")
    args = p.parse_args(argv)

    import torch

    from slmray.errors import ConfigError
    from slmray.train.attention import get_attention
    from slmray.train.config import GQA_DEFAULT

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: torch sees no GPU", file=sys.stderr)
        return 2
    backends = BACKENDS if args.device == "cuda" else ("sdpa",)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    rows = []
    for (nh, nkv, hs), models in shapes().items():
        for backend in backends:
            row = {"models": models, "n_head": nh, "n_kv_head": nkv, "head_dim": hs, "backend": backend,
                   "default": GQA_DEFAULT[backend]}
            for mode in ("native", "repeat"):
                try:
                    row[mode] = time_fwd_bwd(get_attention(backend, None if backend == "flash2" else mode),
                                             nh, nkv, hs, args.batch, args.seq_len, args.device, args.iters)
                except (RuntimeError, ConfigError) as exc:  # a forced kernel that refuses the shape or mode
                    row[mode] = None
                    row[f"{mode}_error"] = str(exc).strip().splitlines()[0][:160]
                if backend == "flash2":  # flash_attn takes fewer k/v heads itself: one mode
                    row["repeat"], row["repeat_error"] = None, "flash_attn serves GQA natively"
                    break
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [f"GQA attention fwd+bwd, bf16, batch {args.batch} x seq {args.seq_len}, {device_name}, torch {torch.__version__}",
             "", "| models | heads (q/kv x dim) | backend | native ms | repeat ms | repeat/native | default | default faster |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        both = r["native"] is not None and r["repeat"] is not None
        ratio = f"{r['repeat'] / r['native']:.2f}" if both else "-"
        faster = ("yes" if r[r["default"]] == min(r["native"], r["repeat"]) else "NO") if both else "-"
        lines.append(f"| {', '.join(r['models'])} | {r['n_head']}/{r['n_kv_head']} x {r['head_dim']} | {r['backend']} | "
                     f"{ms(r['native'])} | {ms(r['repeat'])} | {ratio} | {r['default']} | {faster} |")
    errors = sorted({f"{r['backend']} {m}: {r[m + '_error']}" for r in rows for m in ("native", "repeat")
                     if r.get(m + "_error") and r[m + "_error"] != "flash_attn serves GQA natively"})
    if errors:
        lines += ["", "Refused:", *(f"- {e}" for e in errors)]
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gqa_attention.json").write_text(json.dumps(
            {"device": device_name, "torch": torch.__version__, "batch": args.batch, "seq_len": args.seq_len,
             "rows": rows}, indent=1))
        (args.out / "gqa_attention.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
