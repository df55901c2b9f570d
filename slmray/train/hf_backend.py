"""The transformers backend: a `ModelConfig` as a Transformers model, trained by the same loop.

`hf_config` is the one export of a ModelConfig to a transformers config (llama -> LlamaConfig,
Qwen2Config where q/k/v have biases, Qwen3Config where q and k are normed; neox -> GPTNeoXConfig;
family transformers -> its own config.json through `AutoConfig.for_model`, offline).
`build` makes `AutoModelForCausalLM.from_config` of it, with Transformers' own attention (eager,
sdpa, flash_attention_2), wrapped in `TransformersLM` so that the loop, `parallel.parallelize` and
the loss kernels see it as they see the native model: `blocks` (its decoder layers, which
parallelize checkpoints, compiles, converts to FP8 and shards one by one), `head` (the loss,
compiled like the native head) and `forward(idx, targets) -> loss`, the loss taken from the final
hidden states and the output weight by the run's loss kernel rather than from Transformers' logits.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel

from slmray.errors import ConfigError
from slmray.train import fp8
from slmray.train.attention import sdpa_backend
from slmray.train.config import ModelConfig, TrainConfig, check_backend, flash_attn_available
from slmray.train.loss import LossFn, get_loss


def attn_implementation(attention: str) -> str:
    """Transformers' `attn_implementation` for an attention name: eager, sdpa (every sdpa-*, the
    named backend forced around the forward) or flash_attention_2 (flash2, with flash_attn)."""
    if attention == "flash2":
        if not flash_attn_available():
            raise ConfigError("attention: flash2 needs the flash_attn package: pip install 'slmray[flash]' "
                              "(or use sdpa-flash, PyTorch's built-in FlashAttention-2 kernel)")
        return "flash_attention_2"
    return "eager" if attention == "eager" else "sdpa"


LOGIT_TRANSFORMS = {"final_logit_softcapping": None, "logit_scale": 1.0, "logits_scaling": 1.0, "output_multiplier": 1.0}
"""Config attributes with which a causal LM changes its logits after the output projection (Gemma 2
and later: a tanh cap; Cohere, Granite: a scale), each with the value that leaves them as they are:
the loss kernels take the final hidden states and the output weight, so such a model is refused
rather than trained on other logits.  Found by reading transformers 5.17's `*ForCausalLM.forward`."""


def auto_config(raw: dict[str, Any], refuse: Callable[[str], ConfigError]):
    """Transformers' config of a config.json's contents (`AutoConfig.for_model`: nothing downloaded)."""
    try:
        import transformers
    except ImportError:
        raise refuse(f"model_type {raw['model_type']!r} is built by Transformers only: pip install 'slmray[hf]'") from None
    values = {k: v for k, v in raw.items() if k != "model_type"}
    try:
        return transformers.AutoConfig.for_model(raw["model_type"], **values)
    except ValueError as exc:
        if f"{raw['model_type']}" in str(exc) and "Unrecognized" in str(exc):
            raise refuse(f"model_type {raw['model_type']!r} is neither LLaMA-family (llama, mistral, qwen2, qwen3) nor an "
                         f"architecture transformers {transformers.__version__} knows (backend=\"transformers\" "
                         f"trains those)") from None
        raise refuse(f"transformers cannot read it ({_first_line(exc)})") from None
    except (TypeError, KeyError, AttributeError) as exc:
        raise refuse(f"transformers cannot read it ({_first_line(exc)})") from None


def causal_lm(config, refuse: Callable[[str], ConfigError], **kwargs) -> nn.Module:
    """`AutoModelForCausalLM.from_config`, refused in one line where it has no causal-LM head whose
    output the loss kernels can take: no output embedding, a bias on it, or logits changed after it
    (`LOGIT_TRANSFORMS`)."""
    from transformers import AutoModelForCausalLM

    try:
        with fp8.quiet_torchao_import():
            hf = AutoModelForCausalLM.from_config(config, **kwargs)
    except ValueError as exc:
        if "Unrecognized configuration class" in str(exc):
            raise refuse(f"model_type {config.model_type!r} has no causal-LM head in transformers "
                         f"(AutoModelForCausalLM does not build it)") from None
        raise refuse(f"transformers cannot build it ({_first_line(exc)})") from None
    except (TypeError, KeyError, AttributeError, AssertionError, RuntimeError, ImportError) as exc:
        raise refuse(f"transformers cannot build it ({_first_line(exc)})") from None
    head = hf.get_output_embeddings()
    weight = getattr(head, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise refuse(f"{type(hf).__name__} has no output projection to take the loss from (get_output_embeddings)")
    if getattr(head, "bias", None) is not None:
        raise refuse(f"{type(hf).__name__}'s output projection has a bias, which the loss kernels do not add")
    for key, neutral in LOGIT_TRANSFORMS.items():
        value = getattr(hf.config, key, None)
        if value is not None and value != neutral:
            raise refuse(f"{key}={value}: {type(hf).__name__} changes its logits after the output projection, "
                         f"which the loss kernels do not do")
    return hf


def count_params(config, refuse: Callable[[str], ConfigError]) -> int:
    """Parameters of Transformers' model of `config`, built on the meta device (no memory, no
    weights), tied ones once."""
    with torch.device("meta"):
        hf = causal_lm(config, refuse)
    return sum(p.numel() for p in hf.parameters())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def hf_config(m: ModelConfig):
    """The transformers config of the same architecture and shape; the parameter counts agree
    (`tests/test_hf_backend.py` builds each preset on the meta device)."""
    from transformers import GPTNeoXConfig, LlamaConfig, Qwen2Config, Qwen3Config

    if m.family == "transformers":
        raw = json.loads(m.hf_json)
        return auto_config({**raw, "use_cache": False}, lambda what: ConfigError(f"model: {m.name}: {what}"))

    rope = {"rope_type": "default", "rope_theta": m.rope_theta}
    if m.rope_scaling is not None:  # Llama 3's: the same frequencies as `slmray.train.model.llama3_scaled`
        factor, low, high, original = m.rope_scaling
        rope = {"rope_type": "llama3", "rope_theta": m.rope_theta, "factor": factor, "low_freq_factor": low,
                "high_freq_factor": high, "original_max_position_embeddings": int(original)}
    common = dict(
        vocab_size=m.vocab_size, hidden_size=m.d_model, intermediate_size=m.d_mlp, num_hidden_layers=m.n_layer,
        num_attention_heads=m.n_head, max_position_embeddings=m.max_seq_len,
        tie_word_embeddings=m.tie_embeddings, use_cache=False, rope_parameters=rope,
    )
    if m.family == "neox":  # ModelConfig holds neox to full multi-head attention, untied, no q/k switches
        common["rope_parameters"]["partial_rotary_factor"] = m.rotary_pct
        return GPTNeoXConfig(**common, layer_norm_eps=m.norm_eps, use_parallel_residual=True, attention_bias=True,
                             hidden_act="gelu")
    llama = dict(common, num_key_value_heads=m.n_kv_head, rms_norm_eps=m.norm_eps, hidden_act="silu")
    check_backend(m, "transformers")  # the combinations no transformers architecture has
    if m.qk_norm:
        return Qwen3Config(**llama, head_dim=m.head_dim, attention_bias=False)
    if m.qkv_bias:
        return Qwen2Config(**llama)
    return LlamaConfig(**llama, head_dim=m.head_dim, attention_bias=False, mlp_bias=False)


class LossHead(nn.Module):
    """The loss kernel as a module of no parameters: what `parallelize` compiles as the head."""

    def __init__(self, loss: LossFn):
        super().__init__()
        self.loss = loss

    def forward(self, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(h, weight, targets)


def _decoder_layers(hf: nn.Module) -> str:
    """Name of the ModuleList of decoder layers: the one whose modules are all of the classes
    Transformers keeps whole (`_no_split_modules`), else the base model's `layers`."""
    whole = set(getattr(hf, "_no_split_modules", None) or ())
    for name, module in hf.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) and all(type(m).__name__ in whole for m in module):
            return name
    for name, module in hf.named_modules():
        if name.endswith("layers") and isinstance(module, nn.ModuleList):
            return name
    raise ConfigError(f"backend: {type(hf).__name__} has no list of decoder layers to wrap (no _no_split_modules, no layers)")


class TransformersLM(nn.Module):
    """A Transformers causal LM behind the native model's interface (see the module docstring)."""

    def __init__(self, hf: nn.Module, loss: LossFn, attention: str):
        super().__init__()
        self.hf = hf
        self.head = LossHead(loss)
        self._layers = _decoder_layers(hf)
        self.block_prefix = f"hf.{self._layers}."  # where `fp8.convertible` finds the blocks (`blocks.` natively)
        self._sdpa_backend = sdpa_backend(attention)

    @property
    def blocks(self) -> nn.ModuleList:
        return self.hf.get_submodule(self._layers)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        forced = sdpa_kernel(self._sdpa_backend) if self._sdpa_backend is not None else contextlib.nullcontext()
        with forced:
            h = self.hf.base_model(input_ids=idx, use_cache=False).last_hidden_state  # (B, T, d), after the final norm
        weight = self.hf.get_output_embeddings().weight  # (V, d)
        if targets is None:
            return F.linear(h, weight)
        return self.head(h, weight, targets)


def build(cfg: TrainConfig) -> TransformersLM:
    """The run's model through `AutoModelForCausalLM.from_config`, in fp32 (mixed precision as the
    native model's: autocast or FSDP's policy), on the current default device."""
    try:
        import transformers  # noqa: F401  (what the line below says where it is missing)
    except ImportError:
        raise ConfigError("backend: transformers needs the transformers package: pip install 'slmray[hf]'") from None
    implementation = attn_implementation(cfg.attention)

    def refuse(what: str) -> ConfigError:
        if "attention implementation" in what or "attn_implementation" in what:  # e.g. XGLM has no sdpa
            return ConfigError(f"attention: {cfg.attention}: {cfg.model.name}'s Transformers model (model_type "
                               f"{cfg.model.model_type}) has no {implementation} implementation; eager runs in every one")
        return ConfigError(f"model: {cfg.model.name}: {what}")

    hf = causal_lm(hf_config(cfg.model), refuse, attn_implementation=implementation, dtype=torch.float32)
    return TransformersLM(hf, get_loss(cfg.loss_kernel), cfg.attention)
