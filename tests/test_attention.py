"""The backends compute one function: compared on random inputs, forward and gradients."""

import pytest
import torch

from slmray.errors import ConfigError
from slmray.train.attention import get_attention
from slmray.train.config import flash_attn_available, installed_attention
from slmray.train.model import Transformer
from slmray.train.presets import get_model

CPU_BACKENDS = ["eager", "sdpa", "sdpa-math"]


def _qkv(seed, B=2, T=33, nh=4, hs=16):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, T, nh, hs, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)]


@pytest.mark.parametrize("backend", ["sdpa", "sdpa-math"])
@pytest.mark.parametrize("seed", [0, 1])
def test_backend_matches_eager_forward_and_grad(backend, seed):
    ref_in, test_in = _qkv(seed), _qkv(seed)
    ref = get_attention("eager")(*ref_in)
    out = get_attention(backend)(*test_in)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    grad = torch.randn_like(ref)
    ref.backward(grad)
    out.backward(grad)
    for a, b in zip(test_in, ref_in):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-10)


def test_attention_is_causal():
    q, k, v = (t.detach() for t in _qkv(3))
    out = get_attention("eager")(q, k, v)
    k2, v2 = k.clone(), v.clone()
    k2[:, 20:], v2[:, 20:] = torch.randn_like(k2[:, 20:]), torch.randn_like(v2[:, 20:])
    out2 = get_attention("eager")(q, k2, v2)
    torch.testing.assert_close(out[:, :20], out2[:, :20])
    assert not torch.allclose(out[:, 20:], out2[:, 20:])


@pytest.mark.parametrize("model_name", ["tiny", "tiny-neox"])
def test_models_agree_across_backends(model_name):
    cfg = get_model(model_name)
    idx = torch.randint(0, cfg.vocab_size, (2, 40), generator=torch.Generator().manual_seed(0))
    losses, grads = {}, {}
    for backend in CPU_BACKENDS:
        torch.manual_seed(0)
        model = Transformer(cfg, backend).double()
        loss = model(idx[:, :-1], idx[:, 1:])
        loss.backward()
        losses[backend] = loss.detach()
        grads[backend] = torch.cat([p.grad.flatten() for p in model.parameters()])
    for backend in CPU_BACKENDS[1:]:
        torch.testing.assert_close(losses[backend], losses["eager"], rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(grads[backend], grads["eager"], rtol=1e-8, atol=1e-10)


@pytest.mark.skipif(flash_attn_available(), reason="flash_attn is installed here")
def test_flash2_without_package_names_the_extra():
    with pytest.raises(ConfigError, match=r"^attention: flash2 needs the flash_attn package: pip install 'slmray\[flash\]'"):
        get_attention("flash2")
    assert "flash2" not in installed_attention()


def test_unknown_backend():
    with pytest.raises(ConfigError, match="^attention: 'flash3' is not one of"):
        get_attention("flash3")


def _gqa(seed, B=2, T=33, nh=6, nkv=2, hs=16):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, nh, hs, generator=g, dtype=torch.float64, requires_grad=True)
    return [q] + [torch.randn(B, T, nkv, hs, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2)]


def _reference_gqa(q, k, v):
    """Grouped-query attention spelled out: query head i attends with key/value head i // group."""
    group = q.size(2) // k.size(2)
    heads = [get_attention("eager")(q[:, :, i:i + 1], k[:, :, i // group:i // group + 1], v[:, :, i // group:i // group + 1])
             for i in range(q.size(2))]
    return torch.cat(heads, dim=2)


@pytest.mark.parametrize("backend,gqa", [("eager", None), ("sdpa", "native"), ("sdpa", "repeat"),
                                         ("sdpa-math", "native"), ("sdpa-math", "repeat")])
def test_grouped_query_attention_forward_and_grad(backend, gqa):
    ref_in, test_in = _gqa(0), _gqa(0)
    ref = _reference_gqa(*ref_in)
    out = get_attention(backend, gqa)(*test_in)
    assert out.shape == ref.shape == test_in[0].shape
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    grad = torch.randn_like(ref)
    ref.backward(grad)
    out.backward(grad)
    for a, b in zip(test_in, ref_in):
        assert a.grad.shape == b.grad.shape
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-10)


def test_unknown_gqa_mode_is_an_error():
    with pytest.raises(ConfigError, match="^gqa: 'tile'"):
        get_attention("sdpa", "tile")


def test_gqa_model_agrees_across_backends():
    cfg = get_model("tiny", n_kv_head=2, tie_embeddings=True, qkv_bias=True, qk_norm=True, head_dim=8)
    idx = torch.randint(0, cfg.vocab_size, (2, 40), generator=torch.Generator().manual_seed(0))
    results = {}
    for backend, gqa in (("eager", None), ("sdpa", "native"), ("sdpa", "repeat")):
        torch.manual_seed(0)
        model = Transformer(cfg, backend).double()
        if gqa is not None:
            for block in model.blocks:
                block.attn.attend = get_attention(backend, gqa)
        loss = model(idx[:, :-1], idx[:, 1:])
        loss.backward()
        results[backend, gqa] = loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])
    ref_loss, ref_grad = results["eager", None]
    for loss, grad in results.values():
        torch.testing.assert_close(loss, ref_loss, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-8, atol=1e-10)
