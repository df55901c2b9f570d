"""The loss kernels compute one function: the chunked kernel's loss and gradients (input and
weight, tied and untied output weights, fp32 and bf16 autocast) equal the standard kernel's;
the fused kernels are refused in one line where they cannot run."""

import pytest
import torch

from slmray.errors import ConfigError
from slmray.train import config as train_config
from slmray.train.config import TrainConfig, installed_loss_kernels, loss_chunk_tokens
from slmray.train.loss import check_supported, get_loss
from slmray.train.model import Transformer
from slmray.train.presets import get_model

V, D, B, T = 96, 24, 3, 11  # 33 tokens


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 4 tokens (the last one of 1): several chunks at this size, one uneven."""
    monkeypatch.setattr(train_config, "LOSS_CHUNK_ALIGN", 4)
    monkeypatch.setattr(train_config, "LOSS_CHUNK_BYTES", 4 * V * 4)
    assert loss_chunk_tokens(B * T, V) == 4


def _loss_and_grads(kernel: str, tied: bool, dtype: torch.dtype | None):
    torch.manual_seed(0)
    embed = torch.nn.Embedding(V, D)
    norm = torch.nn.RMSNorm(D)
    head = embed.weight if tied else torch.nn.Parameter(torch.randn(V, D) * 0.2)
    idx, targets = torch.randint(0, V, (B, T)), torch.randint(0, V, (B, T))
    with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        x = embed(idx)
        h = norm(x * 3.0)
        h.retain_grad()
        loss = get_loss(kernel)(h, head, targets)
    loss.backward()
    grads = [embed.weight.grad, norm.weight.grad] + ([] if tied else [head.grad])
    return loss.detach(), h.grad, grads


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_chunked_equals_standard(small_chunks, tied, dtype):
    loss, grad_h, grads = _loss_and_grads("standard", tied, dtype)
    c_loss, c_grad_h, c_grads = _loss_and_grads("chunked", tied, dtype)
    assert loss.dtype == c_loss.dtype == torch.float32
    tol = {"rtol": 1e-5, "atol": 1e-7} if dtype is None else {"rtol": 2e-2, "atol": 2e-4}
    torch.testing.assert_close(c_loss, loss, **tol)
    assert c_grad_h.dtype == grad_h.dtype
    torch.testing.assert_close(c_grad_h.float(), grad_h.float(), **tol)
    for c, s in zip(c_grads, grads, strict=True):
        assert c.dtype == s.dtype == torch.float32
        torch.testing.assert_close(c, s, **tol)
    assert grads[0].abs().sum() > 0  # the embedding's gradient (with the head's, where tied) is not trivially zero


def test_a_wrong_gradient_would_be_caught(small_chunks):
    """The comparison above can fail: a perturbed weight gives a different gradient."""
    _, _, grads = _loss_and_grads("standard", False, None)
    torch.manual_seed(1)
    other = torch.nn.Parameter(torch.randn(V, D) * 0.2)
    h = torch.randn(B, T, D, requires_grad=True)
    get_loss("chunked")(h, other, torch.randint(0, V, (B, T))).backward()
    assert not torch.allclose(other.grad, grads[-1], rtol=1e-3)


def test_the_model_trains_the_same_with_either_kernel(small_chunks):
    cfg = get_model("tiny")
    idx, targets = torch.randint(0, cfg.vocab_size, (2, 16)), torch.randint(0, cfg.vocab_size, (2, 16))
    results = []
    for kernel in ("standard", "chunked"):
        torch.manual_seed(0)
        model = Transformer(cfg, "sdpa", kernel)
        loss = model(idx, targets)
        loss.backward()
        results.append((loss.detach(), model.head.lm_head.weight.grad, model.embed.weight.grad))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_fused_kernels_are_refused_in_one_line_where_they_cannot_run():
    for kernel in ("liger", "cce"):
        with pytest.raises(ConfigError, match=f"^loss_kernel: {kernel} is a Triton kernel that needs a CUDA GPU"):
            check_supported(kernel, "cpu")
        with pytest.raises(ConfigError, match=f"^loss_kernel: {kernel} .*needs a CUDA GPU; device is cpu"):
            TrainConfig(model=get_model("tiny"), loss_kernel=kernel, device="cpu")
        if kernel not in installed_loss_kernels():
            with pytest.raises(ConfigError, match=f"^loss_kernel: {kernel} needs the .* package: pip install"):
                get_loss(kernel)
    check_supported("chunked", "cpu")
    with pytest.raises(ConfigError, match="^loss_kernel: 'fused' is not one of standard, chunked, liger, cce"):
        TrainConfig(model=get_model("tiny"), loss_kernel="fused")


def test_chunks_are_aligned_and_bounded():
    assert loss_chunk_tokens(16 * 1024, 151_936) == 768
    assert loss_chunk_tokens(16 * 1024, 49_152) == 2560
    assert loss_chunk_tokens(100, 32_000) == 100  # never more than the tokens there are
    assert loss_chunk_tokens(16 * 1024, 10**7) == train_config.LOSS_CHUNK_ALIGN  # at least one aligned chunk
