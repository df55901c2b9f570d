"""The output projection and the cross-entropy behind one signature, chosen by name (`LOSS_KERNELS`).

Every kernel takes the final hidden states (B, T, d) after the last norm, the output projection's
weight (V, d) and the targets (B, T), and returns the mean loss over the tokens, so both backends
(`model.OutputHead`, `hf_backend`) call whichever the run names.  At 150k-token vocabularies the
standard kernel's (tokens, vocab) logits and their fp32 upcast outweigh the model's activations
(batch 16 x 1,024 tokens x 151,936 x 4 bytes is 10 GB before backward); the others never hold
more than a chunk of them.  `tests/test_loss.py` checks they compute the same loss and gradients.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from slmray.train.attention import at_least_fp32
from slmray.train.config import check_loss_kernel, loss_chunk_tokens

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def standard_loss(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = F.linear(h, weight)  # (B, T, V), bf16 under mixed precision
    # cross-entropy in fp32: bf16 log-probabilities would lose the loss's low digits
    return F.cross_entropy(at_least_fp32(logits).view(-1, logits.size(-1)), targets.reshape(-1))


def _compute_dtype(h: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The dtype the head's GEMM runs in: autocast's where it is on, else the inputs' common one."""
    if torch.is_autocast_enabled(h.device.type):
        return torch.get_autocast_dtype(h.device.type)
    return torch.promote_types(h.dtype, weight.dtype)


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of h @ w.T, `chunk` tokens at a time.  Forward keeps only each token's
    log-sum-exp (fp32); backward recomputes each chunk's logits (one more head GEMM than the
    standard kernel) and turns them into that chunk's gradients at once.  Plain torch ops in a
    Python loop of fixed length, which Dynamo unrolls: it compiles with the head."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, w: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
        # h (N, d) and w (V, d) in the GEMM's dtype, targets (N,)
        with torch.autocast(h.device.type, enabled=False):
            lse, loss = [], torch.zeros((), dtype=torch.float32, device=h.device)
            for start in range(0, h.size(0), chunk):
                logits = (h[start : start + chunk] @ w.t()).float()  # (n, V) fp32, as the standard upcast
                chunk_lse = torch.logsumexp(logits, dim=-1)  # (n,)
                target_logit = logits.gather(1, targets[start : start + chunk, None]).squeeze(1)
                loss = loss + (chunk_lse - target_logit).sum()
                lse.append(chunk_lse)
        ctx.save_for_backward(h, w, targets, torch.cat(lse))
        ctx.chunk = chunk
        return loss / h.size(0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        h, w, targets, lse = ctx.saved_tensors
        chunk, scale = ctx.chunk, grad.float() / h.size(0)
        with torch.autocast(h.device.type, enabled=False):
            grad_h = torch.empty_like(h)
            grad_w = torch.zeros(w.shape, dtype=torch.float32, device=w.device)  # summed over chunks in fp32
            for start in range(0, h.size(0), chunk):
                h_chunk, t = h[start : start + chunk], targets[start : start + chunk]
                probs = torch.exp((h_chunk @ w.t()).float() - lse[start : start + chunk, None])  # softmax (n, V)
                probs = probs.scatter_add(1, t[:, None], torch.full_like(t[:, None], -1, dtype=probs.dtype))
                g = (probs * scale).to(h.dtype)  # d loss / d logits, in the GEMM's dtype
                grad_h[start : start + chunk] = g @ w
                grad_w += (g.t() @ h_chunk).float()
        return grad_h, grad_w.to(w.dtype), None, None


def chunked_loss(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    dtype = _compute_dtype(h, weight)  # the casts stay outside the Function: autograd takes them back to fp32
    flat = h.reshape(-1, h.size(-1)).to(dtype)
    chunk = loss_chunk_tokens(flat.size(0), weight.size(0))
    return _ChunkedLinearCrossEntropy.apply(flat, weight.to(dtype), targets.reshape(-1), chunk)


def _liger() -> LossFn:
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    # fp32 accumulation of the weight's gradient, as the other kernels do; Liger computes the
    # gradients in forward and follows autocast itself (fp32 weights, bf16 GEMMs)
    kernel = LigerFusedLinearCrossEntropyLoss(accum_dtype=torch.float32)

    @torch.compiler.disable  # Triton kernels and a host sync (.item()): run beside a compiled head, not in it
    def loss(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return kernel(weight, h.reshape(-1, h.size(-1)), targets.reshape(-1))

    return loss


def _cce() -> LossFn:
    from cut_cross_entropy import linear_cross_entropy

    @torch.compiler.disable
    def loss(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        dtype = _compute_dtype(h, weight)  # its kernels take one dtype, bf16 or fp16
        return linear_cross_entropy(h.to(dtype), weight.to(dtype), targets)

    return loss


def check_supported(kernel: str, device: str) -> None:
    """A one-line ConfigError naming `kernel` unless this process can run it; before anything starts."""
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    check_loss_kernel(kernel, None if use_cuda else "this run is on the CPU")


def get_loss(name: str) -> LossFn:
    if name == "standard":
        return standard_loss
    if name == "chunked":
        return chunked_loss
    check_loss_kernel(name)
    return _liger() if name == "liger" else _cce()
