"""Causal self-attention kernels behind one signature, chosen by name.

Every backend takes q as (B, T, n_head, head_dim) and k, v as (B, T, n_kv_head, head_dim)
(grouped-query attention when n_kv_head < n_head: query head i reads key/value head
i // (n_head / n_kv_head)) and returns q's layout, so the model never branches on the backend.
They compute the same function; `tests/test_attention.py` compares them.

GQA two ways: SDPA's `enable_gqa=True` (the kernel indexes the shared k/v head) or k/v repeated
to n_head heads first (a copy of k and v per layer, forward, and a reduction backward).
`config.GQA_DEFAULT` picks per backend; `benchmarks/gqa_attention.py` times both on a GPU.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from slmray.errors import ConfigError
from slmray.train.config import ATTENTION_BACKENDS, GQA_DEFAULT, flash_attn_available

AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
GQA_MODES = ("native", "repeat")

_SDPA_BACKENDS = {
    "sdpa-flash": SDPBackend.FLASH_ATTENTION,
    "sdpa-cudnn": SDPBackend.CUDNN_ATTENTION,
    "sdpa-efficient": SDPBackend.EFFICIENT_ATTENTION,
    "sdpa-math": SDPBackend.MATH,
}


def at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 -> fp32 for softmax-like reductions; fp32 and fp64 stay as they are."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def repeat_kv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """k, v with each of their n_kv_head heads repeated to n_head heads (as q has); unchanged
    (no copy) for multi-head attention."""
    groups = q.size(2) // k.size(2)
    if groups == 1:
        return k, v
    return k.repeat_interleave(groups, dim=2), v.repeat_interleave(groups, dim=2)  # (B, T, nh, hs)


def eager_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The paper's vanilla attention: the (T, T) scores are materialised, masked, softmaxed."""
    k, v = repeat_kv(q, k, v)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
    T = q.size(-2)
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))  # (B, nh, T, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    scores = scores.masked_fill(~causal, float("-inf"))
    probs = torch.softmax(at_least_fp32(scores), dim=-1).to(q.dtype)  # in fp32 at least, as HF LLaMA did
    return (probs @ v).transpose(1, 2)  # (B, T, nh, hs)


def _sdpa(backend: SDPBackend | None, gqa: str) -> AttentionFn:
    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        grouped = k.size(2) != q.size(2)
        if grouped and gqa == "repeat":
            k, v = repeat_kv(q, k, v)
            grouped = False
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # views: SDPA takes strided inputs
        ctx = sdpa_kernel(backend) if backend is not None else contextlib.nullcontext()
        with ctx:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=grouped)
        return out.transpose(1, 2)

    return attend


def sdpa_backend(name: str) -> SDPBackend | None:
    """The SDPA backend an `sdpa-*` name forces (None: PyTorch chooses); for a model whose own
    attention calls SDPA (`hf_backend`)."""
    return _SDPA_BACKENDS.get(name)


def _flash2(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    from flash_attn import flash_attn_func

    return flash_attn_func(q, k, v, causal=True)


def get_attention(name: str, gqa: str | None = None) -> AttentionFn:
    """The kernel for a backend name; a missing flash_attn package is a one-line error.
    `gqa` (native or repeat) overrides `GQA_DEFAULT` for an SDPA backend (the benchmark's switch)."""
    if gqa is not None and gqa not in GQA_MODES:
        raise ConfigError(f"gqa: {gqa!r} is not one of {', '.join(GQA_MODES)}")
    if name == "eager":
        return eager_attention
    if name == "sdpa":
        return _sdpa(None, gqa or GQA_DEFAULT[name])
    if name in _SDPA_BACKENDS:
        return _sdpa(_SDPA_BACKENDS[name], gqa or GQA_DEFAULT[name])
    if name == "flash2":
        if not flash_attn_available():
            raise ConfigError(
                "attention: flash2 needs the flash_attn package: pip install 'slmray[flash]' "
                "(or use sdpa-flash, PyTorch's built-in FlashAttention-2 kernel)"
            )
        return _flash2
    raise ConfigError(f"attention: {name!r} is not one of {', '.join(ATTENTION_BACKENDS)}")

