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


def test_the_fp32_tolerance_catches_a_gradient_slightly_off(small_chunks):
    """The comparison above can fail: the chunked kernel on a head with one weight moved by 1e-3
    (half a percent of its scale) gives weight gradients outside the fp32 tolerance."""
    torch.manual_seed(0)
    h, targets = torch.randn(B, T, D), torch.randint(0, V, (B, T))
    w = torch.nn.Parameter(torch.randn(V, D) * 0.2)
    get_loss("standard")(h, w, targets).backward()
    moved = torch.nn.Parameter(w.detach().clone())
    with torch.no_grad():
        moved[0, 0] += 1e-3
    get_loss("chunked")(h, moved, targets).backward()
    with pytest.raises(AssertionError):
        torch.testing.assert_close(moved.grad, w.grad, rtol=1e-5, atol=1e-7)
    w_again = torch.nn.Parameter(w.detach().clone())
    get_loss("chunked")(h, w_again, targets).backward()
    torch.testing.assert_close(w_again.grad, w.grad, rtol=1e-5, atol=1e-7)  # unmoved, it agrees


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
            with pytest.raises(ConfigError, match=rf"^loss_kernel: {kernel} needs the .* package \(pip install"):
                get_loss(kernel)
    check_supported("chunked", "cpu")
    with pytest.raises(ConfigError, match="^loss_kernel: 'fused' is not one of standard, chunked, liger, cce"):
        TrainConfig(model=get_model("tiny"), loss_kernel="fused")


def test_chunks_are_aligned_and_bounded():
    assert loss_chunk_tokens(16 * 1024, 151_936) == 768
    assert loss_chunk_tokens(16 * 1024, 49_152) == 2560
    assert loss_chunk_tokens(100, 32_000) == 100  # never more than the tokens there are
    assert loss_chunk_tokens(16 * 1024, 10**7) == train_config.LOSS_CHUNK_ALIGN  # at least one aligned chunk


SPACE = dict(model=["tiny"], per_device_batch=[2], num_gpus=[1], attention=["sdpa"], strategy=["single"], seq_len=32)


def test_loss_kernel_and_backend_are_swept_and_recorded():
    from slmray.core.row import make_row
    from slmray.sweep.space import SearchSpace, Trial
    from slmray.train.config import CONFIG_KEYS, config_label

    space = SearchSpace(**SPACE, loss_kernel=["standard", "chunked"], backend=["native", "transformers"])
    trials = space.trials()
    assert [(t.loss_kernel, t.backend) for t in trials] == [
        ("standard", "native"), ("standard", "transformers"), ("chunked", "native"), ("chunked", "transformers")]
    cfg = space.train_config(trials[-1], device="cpu")
    assert (cfg.loss_kernel, cfg.backend) == ("chunked", "transformers")
    assert Trial.from_config(trials[-1].as_config()) == trials[-1]
    assert space.choices()["loss_kernel"] == ["standard", "chunked"]
    assert config_label(trials[-1].as_config()) == "tiny local x1 single sdpa b2 loss chunked transformers seq 32"
    row = make_row(cfg.flat())
    assert (row["loss_kernel"], row["backend"]) == ("chunked", "transformers")
    assert {"loss_kernel", "backend"} <= set(CONFIG_KEYS)
    # a configuration of a sweep from before they were swept: the defaults
    old = {k: v for k, v in trials[0].as_config().items() if k not in ("loss_kernel", "backend")}
    assert (Trial.from_config(old).loss_kernel, Trial.from_config(old).backend) == ("standard", "native")


def test_a_row_from_before_the_columns_reads_as_the_defaults():
    row = {"model": "tiny", "per_device_batch": 2, "seq_len": 64, "strategy": "single", "attention": "sdpa", "loss_kernel": None}
    cfg = TrainConfig.from_row(row, get_model("tiny"), device="cpu")
    assert (cfg.loss_kernel, cfg.backend) == ("standard", "native")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"loss_kernel": ["standard", "fused"]}, "loss_kernel: 'fused' is not one of standard, chunked, liger, cce"),
        ({"loss_kernel": ["liger"], "device": "cpu"}, "loss_kernel: liger "),
        ({"backend": ["hf"]}, "backend: 'hf' is not one of native, transformers"),
        ({"backend": []}, "backend: must list at least one value"),
    ],
)
def test_bad_loss_kernels_and_backends_name_the_field(changes, message):
    from slmray.sweep.space import SearchSpace

    with pytest.raises(ConfigError) as err:
        SearchSpace(**{**SPACE, **changes})
    assert str(err.value).startswith(message) and "\n" not in str(err.value), str(err.value)


def test_capacity_refuses_fused_kernels_without_a_gpu():
    from slmray.sweep.capacity import Capacity
    from slmray.sweep.space import SearchSpace

    space = SearchSpace(**SPACE, loss_kernel=["standard", "chunked"])
    Capacity(use_gpu=False).check(space)
    if "liger" in installed_loss_kernels():
        with pytest.raises(ConfigError, match="^loss_kernel: liger is a Triton kernel that needs a CUDA GPU; this machine has none"):
            Capacity(use_gpu=False).check(SearchSpace(**SPACE, loss_kernel="liger"))


def test_estimate_counts_a_chunk_of_logits_and_the_recomputed_head_gemm():
    from slmray.predict.estimate import estimate, loss_chunk
    from slmray.train.config import ModelConfig

    big_vocab = ModelConfig(name="v152k", family="llama", n_layer=28, d_model=1536, n_head=12, d_mlp=8960,
                            vocab_size=151_936, max_seq_len=4096)
    base = TrainConfig(model=big_vocab, per_device_batch=16, seq_len=1024)
    est = {k: estimate(base.replace(loss_kernel=k), "H100-80GB", 1) for k in ("standard", "chunked", "liger", "cce")}
    tokens, v, d = 16 * 1024, 151_936, 1536
    # standard: three (tokens, vocab) fp32 tensors un-compiled, as before
    assert est["standard"].memory_gb["logits"] == pytest.approx(12 * tokens * v / 2**30)
    # chunked: one chunk's tensors, the fp32 weight gradient it accumulates, the per-token log-sum-exp
    assert loss_chunk(base.replace(loss_kernel="chunked")) == 768
    chunked = ((12 + 2 * 2) * 768 * v + 4 * v * d + 4 * tokens) / 2**30
    assert est["chunked"].memory_gb["logits"] == pytest.approx(chunked)
    assert est["chunked"].peak_mem_gb < est["standard"].peak_mem_gb - 20
    assert loss_chunk(base.replace(loss_kernel="liger")) == 256 and loss_chunk(base.replace(loss_kernel="cce")) == 0
    # chunked recomputes the head's forward GEMM: a third more of its FLOPs
    head = 6 * tokens * v * d / 3
    work = {k: __import__("slmray.predict.estimate", fromlist=["step_work"]).step_work(base.replace(loss_kernel=k), 1)
            for k in ("standard", "chunked")}
    assert work["chunked"].matmul_flops - work["standard"].matmul_flops == pytest.approx(head)
    assert est["chunked"].step_time_s > est["standard"].step_time_s * 0.97
    for k in ("standard", "chunked", "liger", "cce"):
        assert sum(est[k].memory_gb.values()) == pytest.approx(est[k].peak_mem_gb)
