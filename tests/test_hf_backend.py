"""The transformers backend: each preset's Transformers model has the native parameter count;
a ModelConfig maps to the architecture that has its features; the same loop trains it on the CPU
(llama and neox layouts), through FP8 conversion and activation checkpointing; what cannot run
is refused in one line."""


import pytest
import torch

from slmray.errors import ConfigError
from slmray.train import fp8, parallel
from slmray.train.config import ModelConfig, TrainConfig
from slmray.train.hf_backend import attn_implementation, build, hf_config
from slmray.train.loop import run
from slmray.train.presets import PRESETS, get_model


def _transformers_count(m: ModelConfig) -> int:
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        hf = AutoModelForCausalLM.from_config(hf_config(m))
    return sum(p.numel() for p in hf.parameters())  # a tied weight once


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_has_the_native_parameter_count_in_transformers(name):
    assert _transformers_count(PRESETS[name]) == PRESETS[name].num_params


def _featured(**kw) -> ModelConfig:
    return ModelConfig(name="featured", family="llama", n_layer=2, d_model=64, n_head=4, d_mlp=160, vocab_size=512,
                     max_seq_len=256, rope_theta=1e6, norm_eps=1e-6, **kw)


def test_features_pick_the_architecture_that_has_them():
    plain = hf_config(_featured())
    assert type(plain).__name__ == "LlamaConfig" and plain.num_key_value_heads == 4 and not plain.tie_word_embeddings
    assert plain.rope_parameters["rope_theta"] == 1e6 and plain.rms_norm_eps == 1e-6 and plain.max_position_embeddings == 256
    gqa = hf_config(_featured(n_kv_head=2, tie_embeddings=True))
    assert gqa.num_key_value_heads == 2 and gqa.tie_word_embeddings
    assert type(hf_config(_featured(qkv_bias=True))).__name__ == "Qwen2Config"
    assert type(hf_config(_featured(qk_norm=True, n_kv_head=2))).__name__ == "Qwen3Config"
    # tied, grouped-query, q/k-normed: Transformers counts what the features add
    d, kv, v = 64, 2 * 16, 512
    untied = _transformers_count(_featured(qk_norm=True))
    assert _transformers_count(_featured(qk_norm=True, n_kv_head=2, tie_embeddings=True)) == (
        untied - v * d - 2 * 2 * (d - kv) * d)
    neox = hf_config(PRESETS["tiny-neox"])
    assert type(neox).__name__ == "GPTNeoXConfig" and neox.rope_parameters["partial_rotary_factor"] == 0.25


def test_features_no_architecture_has_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="^backend: featured: no transformers architecture has both q/k/v biases and a q/k norm"):
        hf_config(_featured(qkv_bias=True, qk_norm=True))
    with pytest.raises(ConfigError, match="^backend: featured: Qwen2 in transformers has head_dim = d_model / n_head"):
        hf_config(_featured(qkv_bias=True, head_dim=32))


def test_llama3_rope_scaling_reaches_transformers():
    hf = hf_config(PRESETS["llama-3.2-1b"])
    factor, low, high, original = PRESETS["llama-3.2-1b"].rope_scaling
    assert hf.rope_parameters == {"rope_type": "llama3", "rope_theta": PRESETS["llama-3.2-1b"].rope_theta,
                                  "factor": factor, "low_freq_factor": low, "high_freq_factor": high,
                                  "original_max_position_embeddings": original}


def test_attention_names_map_to_transformers_implementations():
    assert [attn_implementation(a) for a in ("eager", "sdpa", "sdpa-math", "sdpa-flash")] == ["eager", "sdpa", "sdpa", "sdpa"]
    from slmray.train.config import flash_attn_available

    if not flash_attn_available():
        with pytest.raises(ConfigError, match=r"^attention: flash2 needs the flash_attn package: pip install 'slmray\[flash\]'"):
            attn_implementation("flash2")


def _cfg(model: str, **kw) -> TrainConfig:
    kw = {"per_device_batch": 2, "seq_len": 32, "steps": 2, "warmup_steps": 0, "data": "synthetic", "device": "cpu",
          "backend": "transformers", **kw}
    return TrainConfig(model=get_model(model), **kw)


@pytest.mark.parametrize("model", ["tiny", "tiny-neox"])
def test_the_loop_trains_a_transformers_model_on_the_cpu(model):
    result = run(_cfg(model, loss_kernel="chunked"))
    assert result.status == "ok" and result.n_params == get_model(model).num_params
    assert len(result.losses) == 2 and all(5.0 < loss < 7.5 for loss in result.losses)  # about ln(512) at the start
    assert result.tokens_per_s > 0 and result.flops_per_token > 6 * result.n_params


def test_transformers_model_takes_the_same_wrapping():
    """Activation checkpointing wraps its decoder layers and computes the same loss; FP8 converts
    their Linear layers (emulated) and leaves the output weight alone."""
    env = parallel.DistEnv(rank=0, world_size=1, device=torch.device("cpu"), owns_group=False)
    idx = torch.randint(0, 512, (2, 16))
    losses = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = build(_cfg("tiny"))
        model, _ = parallel.parallelize(model, "single", env, compile=False, activation_checkpointing=checkpointing)
        losses.append(model(idx, idx).item())
        if checkpointing:
            assert all(type(b).__name__ == "CheckpointWrapper" for b in model.blocks)
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    model = build(_cfg("tiny"))
    fp8.convert(model, "fp8", fsdp=False, emulate=True)
    # tiny: q, k, v and o (64 x 64) of each of 2 layers; the MLP's 172 is not a multiple of 16
    assert fp8.count(model) == 8
    assert type(model.hf.get_output_embeddings()).__name__ == "Linear"


def test_cli_refuses_flash2_without_flash_attn_in_one_line(capsys):
    from slmray.train.cli import main
    from slmray.train.config import flash_attn_available
    from tests.conftest import call_main

    if flash_attn_available():
        pytest.skip("flash_attn is installed here")
    out = call_main(capsys, main, "--model", "tiny", "--backend", "transformers", "--attention", "flash2",
                    "--device", "cpu", "--seq-len", "32", "--steps", "1", "--warmup-steps", "0")
    assert out.returncode == 2
    error = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert error == ["error: attention: flash2 needs the flash_attn package: pip install 'slmray[flash]' "
                     "(or use sdpa-flash, PyTorch's built-in FlashAttention-2 kernel)"]
    assert "Traceback" not in out.stderr


def test_a_space_without_transformers_refuses_the_backend(monkeypatch):
    import importlib.util

    from slmray.sweep.space import SearchSpace

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else real(name, *a))
    with pytest.raises(ConfigError, match=r"^backend: transformers needs the transformers package \(pip install 'slmray\[hf\]'\)$"):
        SearchSpace(model=["tiny"], per_device_batch=[2], num_gpus=[1], attention=["sdpa"], strategy=["single"],
                    seq_len=32, backend=["native", "transformers"])


def test_a_space_refuses_a_transformers_export_no_architecture_has_before_any_trial():
    # it used to be refused only when the trial built its model, mid-sweep
    from slmray.sweep.space import SearchSpace

    both = {"name": "both", "family": "llama", "n_layer": 2, "d_model": 64, "n_head": 4, "d_mlp": 160, "vocab_size": 512,
            "max_seq_len": 256, "qkv_bias": True, "qk_norm": True}
    kwargs = dict(model=[ModelConfig(**both)], per_device_batch=[2], num_gpus=[1], attention=["sdpa"],
                  strategy=["single"], seq_len=32)
    SearchSpace(**kwargs, backend=["native"])  # the native model builds it
    with pytest.raises(ConfigError, match="^backend: both: no transformers architecture has both q/k/v biases and a q/k norm"):
        SearchSpace(**kwargs, backend=["native", "transformers"])


@pytest.mark.subprocess
def test_a_dry_run_without_transformers_says_its_estimate_needs_it(tmp_path):
    """A dry run needs no package a trial alone imports, but predicting a transformers-backend trial
    counts the ops of Transformers' own model: without it, one line and exit 2, not a traceback."""
    import subprocess
    import sys

    space = tmp_path / "space.py"
    space.write_text('from slmray.space import SearchSpace\nSPACE = SearchSpace(model=["smollm2-360m"], '
                     'per_device_batch=[8], num_gpus=[1], gpu_type=["H100-80GB"], attention=["sdpa"], '
                     'strategy=["single"], backend=["transformers"], seq_len=1024)\n')
    code = ("import sys; sys.modules['transformers'] = None; from slmray.tune import main; "
            f"sys.exit(main([{str(space)!r}, '--dry-run', '--storage', {str(tmp_path / 'store')!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "SLMRAY_CACHE": str(tmp_path / "cache")})
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().splitlines()[-1] == (
        "error: backend: transformers: predicting these trials counts the ops of Transformers' own model, which "
        "needs transformers here too: pip install 'slmray[hf]' (or drop the backend)"), out.stderr
    assert "Traceback" not in out.stderr
