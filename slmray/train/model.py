"""Decoder-only transformers of the LLaMA and GPT-NeoX (Pythia) layouts, on one device.

The LLaMA layout covers today's small models too: grouped-query attention, tied embeddings,
q/k/v biases (Qwen2), q/k RMSNorm (Qwen3), a head dim apart from the width, Llama 3's rotary
scaling, each a `ModelConfig` field whose default leaves the paper's models as they were.

Nothing here knows about distribution, Ray or logging: `parallel.py` wraps these modules
from the outside.  Layout follows karpathy/nanoGPT's model.py; the loss is computed inside
`OutputHead`, by the run's loss kernel (`loss.py`), so that compiling the head fuses the fp32
upcast into the cross-entropy.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from slmray.train.attention import AttentionFn, get_attention
from slmray.train.config import ModelConfig
from slmray.train.loss import LossFn, get_loss


def llama3_scaled(inv_freq: torch.Tensor, scaling: tuple[float, float, float, int]) -> torch.Tensor:
    """Llama 3.1's rotary frequencies: wavelengths above original_max / low_freq_factor slowed
    by `factor`, those below original_max / high_freq_factor kept, a smooth blend between
    (Meta's llama-models `apply_scaling`; transformers' `_compute_llama3_parameters`)."""
    factor, low, high, original = scaling
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > original / low, inv_freq / factor, inv_freq)
    smooth = (original / wavelen - low) / (high - low)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= original / high) & (wavelen <= original / low)
    return torch.where(medium, blended, scaled)


def rotary_tables(cfg: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape (max_seq_len, rotary_dim), in the rotate-half (GPT-NeoX) layout."""
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.rotary_dim, 2).float() / cfg.rotary_dim))
    if cfg.rope_scaling is not None:
        inv_freq = llama3_scaled(inv_freq, cfg.rope_scaling)
    angles = torch.outer(torch.arange(cfg.max_seq_len).float(), inv_freq)  # (T, rot/2)
    angles = torch.cat((angles, angles), dim=-1)  # (T, rot)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first cos.size(-1) dims of each head; x is (B, T, nh, hs), cos/sin (T, rot)."""
    rot = cos.size(-1)
    cos, sin = cos[:, None, :].to(x.dtype), sin[:, None, :].to(x.dtype)  # (T, 1, rot)
    x_rot, x_pass = x[..., :rot], x[..., rot:]
    x1, x2 = x_rot.chunk(2, dim=-1)
    x_rot = x_rot * cos + torch.cat((-x2, x1), dim=-1) * sin
    return torch.cat((x_rot, x_pass), dim=-1) if x_pass.size(-1) else x_rot


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig, attend: AttentionFn, bias: bool):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        # one GEMM for q, k and v: n_head query heads, then n_kv_head key and n_kv_head value heads
        self.qkv = nn.Linear(cfg.d_model, cfg.q_dim + 2 * cfg.kv_dim, bias=bias or cfg.qkv_bias)
        self.proj = nn.Linear(cfg.q_dim, cfg.d_model, bias=bias)
        self.attend = attend
        # Qwen3: RMSNorm over each head's dims, one weight shared by the heads, before rotary
        self.q_norm = nn.RMSNorm(cfg.head_dim, eps=cfg.norm_eps) if cfg.qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(cfg.head_dim, eps=cfg.norm_eps) if cfg.qk_norm else nn.Identity()

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        nh, nkv, hs = self.n_head, self.n_kv_head, self.head_dim
        # split over heads, not over the last dim: backward then concatenates the gradients along
        # the head dim, which compiled runs 6-8% faster (benchmarks/results/trainer/qkv_split_h100.txt)
        q, k, v = self.qkv(x).view(B, T, nh + 2 * nkv, hs).split((nh, nkv, nkv), dim=2)
        q, k = self.q_norm(q), self.k_norm(k)  # (B, T, nh, hs), (B, T, nkv, hs)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        y = self.attend(q, k, v)  # (B, T, nh, hs)
        return self.proj(y.reshape(B, T, nh * hs))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_up = nn.Linear(cfg.d_model, 2 * cfg.d_mlp, bias=False)  # gate and up in one GEMM
        self.down = nn.Linear(cfg.d_mlp, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class GeluMLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.d_mlp)
        self.down = nn.Linear(cfg.d_mlp, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, attend: AttentionFn):
        super().__init__()
        llama = cfg.family == "llama"
        norm = (lambda: nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)) if llama else (
            lambda: nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        )
        self.parallel_residual = not llama  # GPT-NeoX: x + attn(ln1(x)) + mlp(ln2(x))
        self.norm1 = norm()
        self.attn = CausalSelfAttention(cfg, attend, bias=not llama)
        self.norm2 = norm()
        self.mlp = SwiGLU(cfg) if llama else GeluMLP(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        if self.parallel_residual:
            return x + self.attn(self.norm1(x), cos, sin) + self.mlp(self.norm2(x))
        x = x + self.attn(self.norm1(x), cos, sin)
        return x + self.mlp(self.norm2(x))


class OutputHead(nn.Module):
    """Final norm, output projection and the loss; logits when no targets are given."""

    def __init__(self, cfg: ModelConfig, loss: LossFn):
        super().__init__()
        self.norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps) if cfg.family == "llama" else nn.LayerNorm(
            cfg.d_model, eps=cfg.norm_eps
        )
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.loss = loss

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        if targets is None:
            return self.lm_head(self.norm(x))  # (B, T, V)
        return self.loss(self.norm(x), self.lm_head.weight, targets)


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig, attention: str = "sdpa", loss_kernel: str = "standard"):
        super().__init__()
        self.cfg = cfg
        attend = get_attention(attention)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg, attend) for _ in range(cfg.n_layer))
        self.head = OutputHead(cfg, get_loss(loss_kernel))
        if cfg.tie_embeddings:
            # one Parameter in two modules: parameters() lists it once (the optimizer, DDP's
            # buckets and FSDP2's root group see one tensor); both modules are in the root group
            self.head.lm_head.weight = self.embed.weight
        cos, sin = rotary_tables(cfg)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        # GPT-2's scaled init of the projections that write into the residual stream
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.down.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        T = idx.size(1)
        x = self.embed(idx)  # (B, T, d)
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.head(x, targets)
