"""The ops, kernels and element-wise bytes of the configured model's block, counted on the CPU
(`slmray.predict.opcount`), and what they change in the step model (`kernels.host_s`, the memory term)."""

import dataclasses

import pytest

from slmray.catalog.profiles import profile_for
from slmray.errors import ConfigError
from slmray.predict import kernels, opcount
from slmray.predict.estimate import compute_time_s, step_work
from slmray.catalog.gpus import spec_for
from slmray.train.config import ModelConfig, TrainConfig
from slmray.train.presets import PRESETS


def test_a_qk_norm_block_dispatches_more_than_a_plain_llama_block():
    qwen3, plain = PRESETS["qwen3-0.6b"], dataclasses.replace(PRESETS["qwen3-0.6b"], qk_norm=False)
    for attention in ("sdpa", "eager"):
        with_norm, without = opcount.count(qwen3, attention), opcount.count(plain, attention)
        assert with_norm.block_ops > without.block_ops and with_norm.block_kernels > without.block_kernels
        assert with_norm.head_ops == without.head_ops  # the norms are in the blocks only
    # the reference preset's counts are the table's own (ratio 1): the presets are predicted as before
    assert kernels.block_ops(PRESETS["llama-100m"], "sdpa", None) == kernels.BLOCK_OPS[("llama", "sdpa")]
    assert kernels.block_ops(PRESETS["pythia-160m"], "eager", None) == kernels.BLOCK_OPS[("neox", "eager")]


def test_transformers_own_layers_are_counted_and_differ_from_the_native_block():
    llama = PRESETS["llama-3.2-1b"]
    native, hf = opcount.count(llama, "sdpa"), opcount.count(llama, "sdpa", "transformers")
    assert hf.block_ops > 0 and hf.block_kernels > 0 and hf.head_ops > 0
    assert hf.block_ops != native.block_ops and hf.head_ops != native.head_ops
    # sdpa-flash and sdpa dispatch the same ops on the host; eager materialises the scores
    assert opcount.count(llama, "sdpa-flash", "transformers") == hf
    assert opcount.count(llama, "eager", "transformers").block_ops > hf.block_ops


@pytest.mark.parametrize("backend", ["native", "transformers"])
def test_the_estimators_host_time_and_element_wise_traffic_grow_with_the_count(backend):
    qwen3 = PRESETS["qwen3-0.6b"]
    plain = dataclasses.replace(qwen3, qk_norm=False)
    profile = profile_for("H100-80GB")
    args = ("sdpa", False, 1.0, 1, profile, backend)
    own, fewer = kernels.host_s(qwen3, *args), kernels.host_s(plain, *args)
    assert own > fewer * 1.1
    assert kernels.kernels_per_step(qwen3, *args) > kernels.kernels_per_step(plain, *args)
    assert opcount.elementwise_ratio(qwen3, backend) > 1.3 * opcount.elementwise_ratio(plain, backend)
    cfg = TrainConfig(model=qwen3, attention="sdpa", per_device_batch=16, seq_len=1024, backend=backend)
    spec = spec_for("H100-80GB")
    memory = compute_time_s(step_work(cfg, 1), spec)["memory"]
    assert memory > compute_time_s(step_work(dataclasses.replace(cfg, model=plain), 1), spec)["memory"] * 1.2
    # compiled, Inductor fuses the element-wise ops: no ratio, and one region per block on the host
    compiled = dataclasses.replace(cfg, compile=True)
    assert step_work(compiled, 1).elementwise == 1.0
    assert kernels.host_s(qwen3, "sdpa", True, 1.0, 1, profile, backend) == kernels.host_s(plain, "sdpa", True, 1.0, 1, profile, backend)


def test_an_unknown_model_type_is_one_line_naming_the_model():
    m = ModelConfig(name="mystery", family="transformers", n_layer=2, d_model=64, n_head=4, d_mlp=128, vocab_size=128,
                    max_seq_len=64, hf_json='{"model_type": "no-such-architecture"}', param_count=1000)
    with pytest.raises(ConfigError, match=r"model_type 'no-such-architecture'") as info:
        opcount.count(m, "sdpa", "transformers")
    assert "\n" not in str(info.value) and str(info.value).startswith("model: no-such-architecture: counting its ops")


def test_counts_are_kept_on_disk_under_slmray_cache_and_read_back(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("SLMRAY_CACHE", str(tmp_path))
    opcount._cached.cache_clear(); opcount.count.cache_clear()
    m = dataclasses.replace(PRESETS["tiny"], qkv_bias=True)
    try:
        counted = opcount.count(m, "sdpa")
        stored = json.loads((tmp_path / opcount.CACHE_FILE).read_text())
        (key,) = [k for k, v in stored.items() if v == list(dataclasses.astuple(counted))]
        stored[key] = [1, 2, 3, 4]  # a later process reads the file, not the model
        (tmp_path / opcount.CACHE_FILE).write_text(json.dumps(stored))
        opcount._cached.cache_clear(); opcount.count.cache_clear()
        assert opcount.count(m, "sdpa") == opcount.OpCount(1, 2, 3, 4)
        (tmp_path / opcount.CACHE_FILE).write_text("{torn")  # a torn file: counted again
        opcount._cached.cache_clear(); opcount.count.cache_clear()
        assert opcount.count(m, "sdpa") == counted
    finally:
        opcount._cached.cache_clear(); opcount.count.cache_clear()
