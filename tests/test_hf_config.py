"""Hugging Face config.json files into ModelConfig: counts and numerics against transformers itself.

transformers builds each model on the meta device (no weights, no download) to count parameters,
and a tiny one on the CPU to compare logits with the native model given the same weights.
"""

import json
import math

import pytest
import torch

from slmray.errors import ConfigError
from slmray.train.config import ModelConfig
from slmray.train.model import Transformer, rotary_tables
from slmray.train.presets import PRESETS, PUBLISHED_PARAM_COUNTS, get_model
from tests.hf_fixtures import transformers_count, write_config

transformers = pytest.importorskip("transformers")

# The published config.json of each preset (the shape keys, as on the hub; transformers 4's
# rope_theta / rope_scaling keys), typed in apart from presets.py so that each checks the other.
_SMOL = {"model_type": "llama", "vocab_size": 49152, "max_position_embeddings": 8192, "rope_theta": 100000,
         "rms_norm_eps": 1e-5, "tie_word_embeddings": True, "hidden_act": "silu", "rope_scaling": None}
_QWEN2 = {"model_type": "qwen2", "vocab_size": 151936, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
          "tie_word_embeddings": True, "use_sliding_window": False, "sliding_window": 32768, "max_window_layers": 21}
_QWEN3 = {"model_type": "qwen3", "vocab_size": 151936, "rope_theta": 1000000, "rms_norm_eps": 1e-6, "head_dim": 128,
          "tie_word_embeddings": True, "max_position_embeddings": 40960, "attention_bias": False,
          "use_sliding_window": False, "sliding_window": None, "rope_scaling": None}
PUBLISHED_CONFIGS = {
    "smollm2-135m": {**_SMOL, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                     "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64},
    "smollm2-360m": {**_SMOL, "hidden_size": 960, "intermediate_size": 2560, "num_hidden_layers": 32,
                     "num_attention_heads": 15, "num_key_value_heads": 5},
    "smollm2-1.7b": {**_SMOL, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 24,
                     "num_attention_heads": 32, "num_key_value_heads": 32, "rope_theta": 130000},
    "qwen2.5-0.5b": {**_QWEN2, "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
                     "num_attention_heads": 14, "num_key_value_heads": 2, "max_position_embeddings": 32768},
    "qwen2.5-1.5b": {**_QWEN2, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                     "num_attention_heads": 12, "num_key_value_heads": 2, "max_position_embeddings": 131072},
    "qwen3-0.6b": {**_QWEN3, "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
                   "num_attention_heads": 16, "num_key_value_heads": 8},
    "qwen3-1.7b": {**_QWEN3, "hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 28,
                   "num_attention_heads": 16, "num_key_value_heads": 8},
    "llama-3.2-1b": {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                     "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256,
                     "max_position_embeddings": 131072, "rope_theta": 500000.0, "rms_norm_eps": 1e-5,
                     "tie_word_embeddings": True, "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
                     "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                      "original_max_position_embeddings": 8192, "rope_type": "llama3"}},
    "tinyllama-1.1b": {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
                       "num_attention_heads": 32, "num_key_value_heads": 4, "vocab_size": 32000,
                       "max_position_embeddings": 2048, "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
                       "tie_word_embeddings": False, "hidden_act": "silu", "rope_scaling": None},
}
CARD_ROUNDED = {"qwen3-0.6b": (0.6e9, 0.44e9), "qwen3-1.7b": (1.7e9, 1.4e9)}
"""Qwen3's model cards: total and non-embedding parameters, rounded as the cards print them."""






def native_count(cfg: ModelConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in Transformer(cfg).parameters())


@pytest.mark.parametrize("name", list(PUBLISHED_CONFIGS))
def test_presets_are_their_config_json_and_count_as_transformers(name, tmp_path):
    path = write_config(tmp_path, PUBLISHED_CONFIGS[name], name)
    loaded, preset = get_model(path), PRESETS[name]
    assert loaded.replace(source=preset.source) == preset  # named from the folder, lower-cased, like the preset
    assert transformers_count(path) == preset.num_params == native_count(preset)
    if name in PUBLISHED_PARAM_COUNTS:
        assert preset.num_params == PUBLISHED_PARAM_COUNTS[name]
    else:
        total, non_embedding = CARD_ROUNDED[name]
        digits = -int(math.floor(math.log10(total))) + 1
        assert round(preset.num_params, digits) == total
        assert round(preset.num_params - preset.num_embedding_params, digits) == non_embedding


# Small configs of each family as transformers 5 writes them (save_pretrained: rope_parameters,
# layer_types), each with what sets its family apart.
SMALL = {
    "qwen2": dict(model_type="qwen2", hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=128, max_position_embeddings=64,
                  tie_word_embeddings=True),
    "qwen3": dict(model_type="qwen3", hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=128,
                  max_position_embeddings=64, tie_word_embeddings=False),
    "llama3": dict(model_type="llama", hidden_size=64, intermediate_size=80, num_hidden_layers=2,
                   num_attention_heads=8, num_key_value_heads=1, vocab_size=128, max_position_embeddings=64,
                   tie_word_embeddings=True, rope_theta=500000.0,
                   rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
    "mistral": dict(model_type="mistral", hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=4, vocab_size=128, max_position_embeddings=64,
                    sliding_window=None),
}


def save_small(tmp_path, kind: str) -> str:
    values = dict(SMALL[kind])
    config = transformers.AutoConfig.for_model(values.pop("model_type"), **values)
    config.save_pretrained(tmp_path / kind)
    return str(tmp_path / kind)  # a directory holding config.json


def native_weights(hf_state: dict, cfg: ModelConfig) -> dict:
    """transformers' LLaMA-family state dict in `model.Transformer`'s names (q/k/v and gate/up fused)."""
    out = {"embed.weight": hf_state["model.embed_tokens.weight"], "head.norm.weight": hf_state["model.norm.weight"],
           "head.lm_head.weight": hf_state.get("lm_head.weight", hf_state["model.embed_tokens.weight"])}
    for i in range(cfg.n_layer):
        hf, me = f"model.layers.{i}.", f"blocks.{i}."
        attn = hf + "self_attn."
        out[me + "attn.qkv.weight"] = torch.cat([hf_state[attn + f"{p}_proj.weight"] for p in "qkv"])
        if cfg.qkv_bias:
            out[me + "attn.qkv.bias"] = torch.cat([hf_state[attn + f"{p}_proj.bias"] for p in "qkv"])
        if cfg.qk_norm:
            out[me + "attn.q_norm.weight"], out[me + "attn.k_norm.weight"] = (
                hf_state[attn + "q_norm.weight"], hf_state[attn + "k_norm.weight"])
        out[me + "attn.proj.weight"] = hf_state[attn + "o_proj.weight"]
        out[me + "mlp.gate_up.weight"] = torch.cat([hf_state[hf + "mlp.gate_proj.weight"], hf_state[hf + "mlp.up_proj.weight"]])
        out[me + "mlp.down.weight"] = hf_state[hf + "mlp.down_proj.weight"]
        out[me + "norm1.weight"] = hf_state[hf + "input_layernorm.weight"]
        out[me + "norm2.weight"] = hf_state[hf + "post_attention_layernorm.weight"]
    return out


@pytest.mark.parametrize("kind", list(SMALL))
@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_native_model_computes_what_transformers_does(kind, attention, tmp_path):
    """Same weights, same tokens, same logits: GQA, head_dim, tied weights, q/k/v bias, q/k norm
    and Llama 3's rotary scaling as transformers implements them."""
    path = save_small(tmp_path, kind)
    cfg = get_model(path)
    torch.manual_seed(0)
    hf = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.from_pretrained(path),
                                                       attn_implementation="eager").eval()
    for p in hf.parameters():  # norms start at 1 and biases at 0: perturb them so that they count
        p.data.add_(0.05 * torch.randn_like(p))
    assert sum(p.numel() for p in hf.parameters()) == cfg.num_params
    native = Transformer(cfg, attention=attention)
    missing = native.load_state_dict(native_weights(hf.state_dict(), cfg), strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys
    idx = torch.randint(0, cfg.vocab_size, (2, 24))
    with torch.no_grad():
        torch.testing.assert_close(native(idx), hf(idx).logits, atol=2e-5, rtol=1e-4)


def test_llama3_rotary_frequencies_are_transformers_own(tmp_path):
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    path = save_small(tmp_path, "llama3")
    cfg = get_model(path)
    inv_freq, _ = ROPE_INIT_FUNCTIONS["llama3"](transformers.AutoConfig.from_pretrained(path), "cpu")
    cos, _ = rotary_tables(cfg)
    expected = torch.cat([torch.outer(torch.arange(cfg.max_seq_len).float(), inv_freq)] * 2, dim=-1).cos()
    torch.testing.assert_close(cos, expected)
    plain, _ = rotary_tables(cfg.replace(rope_scaling=None))
    assert not torch.allclose(cos, plain)  # the scaling changed something


@pytest.mark.parametrize("kind", list(SMALL))
def test_small_configs_count_as_transformers(kind, tmp_path):
    path = save_small(tmp_path, kind)
    cfg = get_model(path)
    assert cfg.name == kind and cfg.source.endswith("config.json")
    assert transformers_count(path) == cfg.num_params == native_count(cfg)


def test_name_from_name_or_path_and_overrides(tmp_path):
    raw = {**PUBLISHED_CONFIGS["qwen2.5-0.5b"], "_name_or_path": "Qwen/Qwen2.5-0.5B"}
    cfg = get_model(write_config(tmp_path, raw, "anything"))
    assert cfg.name == "qwen2.5-0.5b" and cfg.n_kv_head == 2 and cfg.qkv_bias and cfg.tie_embeddings
    smaller = get_model(write_config(tmp_path, raw, "anything"), n_layer=2)
    assert smaller.name == "qwen2.5-0.5b-custom" and smaller.n_layer == 2 and smaller.n_kv_head == 2


BAD = {
    "sliding window": ({**SMALL["mistral"], "sliding_window": 4096}, "sliding_window=4096"),
    "qwen sliding window": ({**SMALL["qwen2"], "use_sliding_window": True, "sliding_window": 32}, "use_sliding_window"),
    "moe": ({**SMALL["qwen2"], "num_experts": 8, "num_experts_per_tok": 2}, "num_experts=8: mixture-of-experts"),
    "rope type": ({**SMALL["qwen2"], "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "rope_scaling type 'yarn'"),
    "rope type v5": ({**SMALL["qwen2"], "rope_parameters": {"rope_type": "dynamic", "rope_theta": 1e4, "factor": 2.0}},
                     "rope_scaling type 'dynamic'"),
    "heads not dividing width": ({**SMALL["mistral"], "num_attention_heads": 5, "num_key_value_heads": 5},
                                 "model.n_head: 5 does not divide d_model 64"),
    "kv heads": ({**SMALL["qwen2"], "num_key_value_heads": 3}, "model.n_kv_head: 3 does not divide n_head 4"),
    "other architecture": ({"model_type": "no-such-arch", "n_embd": 64},
                           "model_type 'no-such-arch' is neither LLaMA-family"),
    "output bias": ({**SMALL["llama3"], "attention_bias": True}, "attention_bias=true"),
    "missing key": ({k: v for k, v in SMALL["qwen2"].items() if k != "hidden_size"}, "hidden_size is missing"),
    "not a number": ({**SMALL["qwen2"], "hidden_size": "64"}, "model.d_model: must be a positive integer"),
    "theta not a number": ({**SMALL["qwen2"], "rope_theta": "high"}, "rope_theta / rms_norm_eps: expected numbers"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_configs_are_one_line_naming_the_file(case, tmp_path):
    raw, message = BAD[case]
    path = write_config(tmp_path, raw)
    with pytest.raises(ConfigError) as err:
        get_model(path)
    text = str(err.value)
    assert "\n" not in text and text.startswith(path) and message in text
    if case in ("sliding window", "moe", "rope type", "other architecture"):
        assert 'backend="transformers"' in text


def test_missing_file_and_unreadable_json(tmp_path):
    with pytest.raises(ConfigError, match=r"^model: .*nowhere/config.json does not exist"):
        get_model(str(tmp_path / "nowhere" / "config.json"))
    with pytest.raises(ConfigError, match=r"^model: .*nowhere.json does not exist"):
        get_model("nowhere.json")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama", ')
    with pytest.raises(ConfigError, match=r"^model: .*broken/config.json is not readable JSON \(") as err:
        get_model(str(broken))  # the directory form
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="^model: unknown model 'llama-7b' .*hub id"):
        get_model("llama-7b")


def test_hub_id_from_the_local_cache(tmp_path, monkeypatch):
    """A hub id resolves offline from huggingface_hub's own cache layout (refs/main -> snapshot)."""
    from huggingface_hub import constants

    repo = tmp_path / "hub" / "models--SomeOrg--Tiny-Qwen"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(SMALL["qwen2"]))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    cfg = get_model("SomeOrg/Tiny-Qwen")
    assert cfg.name == "tiny-qwen" and cfg.source == "SomeOrg/Tiny-Qwen config.json (Hugging Face hub)"
    assert cfg.qkv_bias and cfg.n_kv_head == 2


@pytest.mark.parametrize("network", [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "https://hub.invalid"}],
                         ids=["offline-mode", "no-network"])  # .invalid never resolves (RFC 2606)
def test_hub_id_offline_and_not_cached_is_one_line(cli, tmp_path, network):
    out = cli("-m", "slmray.train", "--model", "SomeOrg/Not-Cached", "--device", "cpu",
              env={**network, "HF_HOME": str(tmp_path)}, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "SomeOrg/Not-Cached" in lines[0] and "offline" in lines[0], out.stderr


HELD_OUT_QWEN2 = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 96, "intermediate_size": 200,
    "num_hidden_layers": 3, "num_attention_heads": 6, "num_key_value_heads": 2, "vocab_size": 300,
    "max_position_embeddings": 512, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": True,
    "use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 3, "hidden_act": "silu",
    "torch_dtype": "bfloat16",
}


def test_held_out_qwen2_config_trains_two_steps_on_the_cpu(cli, tmp_path):
    """The issue's bar: `python -m slmray.train --model FILE` on a Qwen2 config.json not in the
    repository, two steps on the CPU, reporting transformers' parameter count."""
    path = write_config(tmp_path, HELD_OUT_QWEN2, "held-out-qwen2")
    expected = transformers_count(path)
    out = cli("-m", "slmray.train", "--model", path, "--device", "cpu", "--steps", "2", "--warmup-steps", "0",
              "--seq-len", "32", "--per-device-batch", "2", "--json", timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"building held-out-qwen2 ({expected:,} parameters)" in out.stderr
    result = json.loads(out.stdout)
    assert result["result"]["n_params"] == expected and result["result"]["status"] == "ok"
    assert result["config"]["model"]["n_kv_head"] == 2 and result["config"]["model"]["qkv_bias"] is True
