"""A Hugging Face `config.json` of the LLaMA family read into a `ModelConfig`.

model_type llama, mistral, qwen2 and qwen3 are one block layout with switches (`ModelConfig`'s
n_kv_head, head_dim, tie_embeddings, qkv_bias, qk_norm, rope_scaling); what the native model
cannot honour (a sliding window, experts, a rotary scaling other than Llama 3's, biases on the
output or MLP projections, an activation other than SiLU) is refused in one line, never
approximated: the parameter count must equal what `transformers` builds from the same file.
Any other model_type Transformers' AutoConfig knows is read as family transformers: the file kept
as it is, the shape from Transformers' normalised attributes, the parameter count from its model
built on the meta device; only `backend="transformers"` trains it.

A hub id (`HuggingFaceTB/SmolLM2-360M`) is resolved through `huggingface_hub`, the local cache
first, so that an offline machine with the file cached works and one without it says so.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from slmray.errors import ConfigError
from slmray.train.config import ModelConfig

MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")
REQUIRED = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size",
            "max_position_embeddings")
"""Keys read without a default: each family's transformers default differs, and a shape
silently taken from a default is worse than a line asking for the key."""
MOE_KEYS = ("num_experts", "num_local_experts", "n_routed_experts", "num_experts_per_tok", "moe_intermediate_size",
            "n_shared_experts")
ROPE_TYPES = ("default", "llama3")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
TRANSFORMERS_HINT = 'backend="transformers" takes only the other model_types for now'
"""The end of a refusal of a LLaMA-family file: `backend="transformers"` builds any other
architecture (family transformers), but a llama/mistral/qwen2/qwen3 file is read as the native
layout, so one with a feature that layout lacks is refused for both backends."""
NO_POSITION_LIMIT = 1 << 20
"""max_seq_len of an architecture without max_position_embeddings (state-space and recurrent
models): no limit of its own; this one only bounds `seq_len`."""


def looks_like_hub_id(name: str) -> bool:
    """`owner/name` that is not a path on this machine (nor a .json file name)."""
    return bool(HUB_ID.match(name)) and not name.endswith(".json") and not os.path.exists(name)


def load(path: str | os.PathLike, name: str | None = None, source: str | None = None) -> ModelConfig:
    """The ModelConfig of a config.json, or of a directory holding one."""
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    if not p.is_file():
        raise ConfigError(f"model: {p} does not exist (a preset name, a config.json path or a hub id)")
    try:
        raw = json.loads(p.read_text(encoding="utf-8-sig"))  # a BOM: what Windows editors write first
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"model: {p} is not readable JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"model: {p} holds a JSON {type(raw).__name__}, not a config object")
    if name is None:
        given = raw.get("_name_or_path")
        stem = p.parent.name if p.name == "config.json" and p.parent.name else p.stem
        name = (Path(given).name if isinstance(given, str) and given.strip() else stem).lower()
    return from_dict(raw, name=name, source=source or str(p), where=str(p))


def from_dict(raw: dict[str, Any], *, name: str, source: str, where: str = "config") -> ModelConfig:
    """The ModelConfig of a config.json's contents; `where` names the file in errors."""

    def refuse(what: str) -> ConfigError:
        return ConfigError(f"{where}: {what}")

    model_type = raw.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise refuse(f"model_type is missing (family llama: {', '.join(MODEL_TYPES)}; other architectures: "
                     f"any model_type transformers knows, trained with backend=\"transformers\")")
    if model_type not in MODEL_TYPES:
        return transformers_model(raw, name=name, source=source, refuse=refuse)
    for key in MOE_KEYS:
        if raw.get(key):
            raise refuse(f"{key}={raw[key]!r}: mixture-of-experts layers are not in the native model; {TRANSFORMERS_HINT}")
    _refuse_sliding_window(raw, model_type, refuse)
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise refuse(f"{missing[0]} is missing (needed: {', '.join(REQUIRED)})")
    if raw.get("hidden_act", "silu") != "silu":
        raise refuse(f"hidden_act {raw['hidden_act']!r}: the native LLaMA block is SwiGLU (silu); {TRANSFORMERS_HINT}")
    for key in ("tie_word_embeddings", "mlp_bias", "attention_bias"):  # "yes" or "false" would read as true
        if raw.get(key) is not None and not isinstance(raw[key], bool):
            raise refuse(f"{key}: must be true or false, got {raw[key]!r}")
    if raw.get("mlp_bias"):
        raise refuse(f"mlp_bias=true: the native LLaMA block has no MLP biases; {TRANSFORMERS_HINT}")
    if raw.get("attention_bias") and model_type != "qwen2":
        # llama/mistral/qwen3's attention_bias puts a bias on o_proj too; Qwen2's q/k/v bias is built in
        raise refuse(f"attention_bias=true: the native model has biases on q/k/v only (Qwen2); {TRANSFORMERS_HINT}")
    theta, scaling = _rope(raw, refuse)
    try:
        theta, eps = float(theta), float(raw.get("rms_norm_eps", 1e-6))
    except (TypeError, ValueError):
        raise refuse(f"rope_theta / rms_norm_eps: expected numbers, got {theta!r} / {raw.get('rms_norm_eps')!r}") from None
    values = dict(
        name=name, family="llama", n_layer=raw["num_hidden_layers"], d_model=raw["hidden_size"],
        n_head=raw["num_attention_heads"], d_mlp=raw["intermediate_size"], vocab_size=raw["vocab_size"],
        max_seq_len=raw["max_position_embeddings"], rope_theta=theta, norm_eps=eps, source=source,
        n_kv_head=raw.get("num_key_value_heads"), head_dim=raw.get("head_dim"),
        tie_embeddings=bool(raw.get("tie_word_embeddings", False)),
        qkv_bias=model_type == "qwen2", qk_norm=model_type == "qwen3", rope_scaling=scaling,
    )
    try:
        return ModelConfig(**values)
    except ConfigError as exc:  # names the HF key beside ModelConfig's field
        raise refuse(f"{exc}") from None


def transformers_model(raw: dict[str, Any], *, name: str, source: str, refuse) -> ModelConfig:
    """A model_type outside the LLaMA family as family transformers: Transformers' normalised
    attributes give the shape (`AutoConfig.for_model`, offline), its model on the meta device the
    parameter count; what Transformers cannot read or build is refused in one line."""
    from slmray.train import hf_backend  # torch and transformers: only for a file that needs them

    model_type = raw["model_type"]
    config = hf_backend.auto_config(raw, refuse)
    counted = hf_backend.count_params(config, refuse)

    def shape(attribute: str, default: Any = None) -> Any:
        value = getattr(config, attribute, None)
        if value is None:
            value = default
        if value is None:
            raise refuse(f"model_type {model_type!r}: transformers' {type(config).__name__} has no {attribute}")
        return value

    d_model, n_head = shape("hidden_size"), shape("num_attention_heads")
    head_dim = getattr(config, "head_dim", None)
    values = dict(
        name=name, family="transformers", n_layer=shape("num_hidden_layers"), d_model=d_model, n_head=n_head,
        n_kv_head=shape("num_key_value_heads", n_head), head_dim=head_dim if isinstance(head_dim, int) else None,
        d_mlp=shape("intermediate_size", 4 * d_model if isinstance(d_model, int) else None),
        vocab_size=shape("vocab_size"), max_seq_len=shape("max_position_embeddings", NO_POSITION_LIMIT),
        tie_embeddings=bool(getattr(config, "tie_word_embeddings", False)), source=source,
        hf_json=json.dumps(raw, sort_keys=True), param_count=counted,
    )
    try:
        return ModelConfig(**values)
    except ConfigError as exc:
        raise refuse(f"{exc}") from None


def _refuse_sliding_window(raw: dict[str, Any], model_type: str, refuse) -> None:
    windowed = [t for t in raw.get("layer_types") or () if t != "full_attention"]
    if model_type == "mistral" and raw.get("sliding_window") is not None:
        raise refuse(f"sliding_window={raw['sliding_window']}: the native model attends over the whole sequence; "
                     f"set it to null ({TRANSFORMERS_HINT})")
    if raw.get("use_sliding_window") or windowed:
        # Qwen2/3 configs carry a sliding_window size that only use_sliding_window switches on
        raise refuse(f"use_sliding_window / layer_types: sliding-window layers are not in the native model; "
                     f"{TRANSFORMERS_HINT}")


def _rope(raw: dict[str, Any], refuse) -> tuple[float, tuple[float, float, float, int] | None]:
    """(theta, llama3 scaling or None) from rope_theta + rope_scaling (transformers 4's keys) or
    rope_parameters (transformers 5 writes them there)."""
    params = raw.get("rope_parameters") or {}
    scaling = raw.get("rope_scaling") or (params if params.get("rope_type", "default") != "default" else None)
    theta = raw.get("rope_theta", params.get("rope_theta", 10_000.0))
    if params.get("partial_rotary_factor", raw.get("partial_rotary_factor", 1.0)) != 1.0:
        raise refuse(f"partial_rotary_factor: the native LLaMA block rotates every head dim; {TRANSFORMERS_HINT}")
    if not scaling:
        return theta, None
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind not in ROPE_TYPES:
        raise refuse(f"rope_scaling type {kind!r} is not supported by the native model ({', '.join(ROPE_TYPES)}); "
                     f"{TRANSFORMERS_HINT}")
    if kind == "default":
        return theta, None
    try:
        return theta, (float(scaling["factor"]), float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"]),
                       int(scaling["original_max_position_embeddings"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise refuse(f"rope_scaling: llama3 scaling needs factor, low_freq_factor, high_freq_factor and "
                     f"original_max_position_embeddings ({exc!r})") from None


def _hub_resolves() -> bool:
    """Whether the hub's host name resolves (False in offline mode): a machine without a network
    fails here in milliseconds."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    try:
        socket.getaddrinfo(urlparse(constants.ENDPOINT).hostname, 443)
    except (OSError, UnicodeError):
        return False
    return True


def from_hub(repo_id: str) -> ModelConfig:
    """The ModelConfig of a hub repository's config.json: from the local cache, else downloaded
    (unless HF_HUB_OFFLINE); no network and no cached copy is one line saying so."""
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError
    except ImportError:
        raise ConfigError(f"model: {repo_id} looks like a hub id, and resolving it needs huggingface_hub "
                          f"(pip install huggingface_hub), or pass a config.json path") from None
    offline = ConfigError(f"model: {repo_id} is not a preset or a file here, and its config.json is not in the "
                          f"Hugging Face cache with the hub unreachable (offline); fetch it where online "
                          f"(hf download {repo_id} config.json) or pass a config.json path")
    try:
        path = hf_hub_download(repo_id, "config.json", local_files_only=True)
    except LocalEntryNotFoundError:
        if not _hub_resolves():  # no DNS: say so now rather than after huggingface_hub's 5 retries (23 s)
            raise offline from None
        quiet = logging.getLogger("huggingface_hub")
        level, quiet.level = quiet.level, logging.ERROR  # its retry warnings would break the one line
        try:
            path = hf_hub_download(repo_id, "config.json")
        except LocalEntryNotFoundError:  # offline mode or no connection, and nothing cached
            raise offline from None
        except (RepositoryNotFoundError, EntryNotFoundError):
            raise ConfigError(f"model: {repo_id} is not a preset, a file here, or a hub repository with a "
                              f"config.json (a private one needs `hf auth login`)") from None
        except (HfHubHTTPError, OSError) as exc:
            raise ConfigError(f"model: {repo_id}: the hub did not give its config.json ({str(exc).splitlines()[0]})") from None
        finally:
            quiet.setLevel(level)
    return load(path, name=repo_id.split("/")[-1].lower(), source=f"{repo_id} config.json (Hugging Face hub)")
