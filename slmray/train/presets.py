"""Named model shapes, as data, each with its source.

LLaMA-style models from Ashkboos et al. 2024, "Computational Bottlenecks of Training
Small-scale Large Language Models", Table 2 (layers, width, total parameters).  The paper
gives neither vocabulary, heads nor MLP width.  A 32,000-token vocabulary (LLaMA's) with an
MLP width of int(2.7 * width) reproduces its 500m, 1b and 2b counts exactly, so those use it.
Heads are chosen for a head dimension of 128 where it divides the width, else 96.

Pythia models (GPT-NeoX) from Biderman et al. 2023, Table 1 and the EleutherAI model cards.

Today's small models (SmolLM2, Qwen2.5, Qwen3, Llama-3.2, TinyLlama) from each model card's
config.json, values as published, named by the hub name lower-cased (what a hub id resolves
to as well).  `get_model` is the one resolver: a preset, a config.json path, or a hub id.
"""

from __future__ import annotations

import os

from slmray.errors import ConfigError
from slmray.train import hf_config
from slmray.train.config import ModelConfig

_PAPER = "Ashkboos et al. 2024, Table 2"
_LLAMA_VOCAB = 32_000
_PYTHIA_VOCAB = 50_304  # 50,277 tokens padded to a multiple of 128


def _llama(name: str, n_layer: int, d_model: int, n_head: int, paper_params: int, **kw) -> ModelConfig:
    kw.setdefault("d_mlp", int(2.7 * d_model))
    kw.setdefault("source", f"{_PAPER}: {n_layer} layers, width {d_model}, {paper_params:,} parameters")
    return ModelConfig(
        name=name, family="llama", n_layer=n_layer, d_model=d_model, n_head=n_head,
        vocab_size=_LLAMA_VOCAB, max_seq_len=2048, **kw,
    )


def _pythia(name: str, n_layer: int, d_model: int, n_head: int) -> ModelConfig:
    return ModelConfig(
        name=name, family="neox", n_layer=n_layer, d_model=d_model, n_head=n_head,
        d_mlp=4 * d_model, vocab_size=_PYTHIA_VOCAB, max_seq_len=2048, rotary_pct=0.25,
        source=f"Biderman et al. 2023 (Pythia), Table 1 / EleutherAI/{name} model card",
    )


def _hub(repo_id: str, name: str | None = None, **fields) -> ModelConfig:
    """A preset from a hub model's config.json, typed in (this code downloads nothing);
    `tests/test_hf_config.py` builds each in transformers and compares the counts."""
    fields.setdefault("norm_eps", 1e-5)
    name = name or repo_id.split("/")[-1].lower()
    return ModelConfig(name=name, family="llama", source=f"{repo_id} config.json", **fields)


_SMOLLM2 = dict(vocab_size=49_152, max_seq_len=8192, rope_theta=100_000.0, tie_embeddings=True)
_QWEN = dict(vocab_size=151_936, rope_theta=1_000_000.0, norm_eps=1e-6, tie_embeddings=True)

TODAY = (
    _hub("HuggingFaceTB/SmolLM2-135M", n_layer=30, d_model=576, n_head=9, n_kv_head=3, d_mlp=1536, **_SMOLLM2),
    _hub("HuggingFaceTB/SmolLM2-360M", n_layer=32, d_model=960, n_head=15, n_kv_head=5, d_mlp=2560, **_SMOLLM2),
    _hub("HuggingFaceTB/SmolLM2-1.7B", n_layer=24, d_model=2048, n_head=32, n_kv_head=32, d_mlp=8192,
         **{**_SMOLLM2, "rope_theta": 130_000.0}),
    _hub("Qwen/Qwen2.5-0.5B", n_layer=24, d_model=896, n_head=14, n_kv_head=2, d_mlp=4864, max_seq_len=32_768,
         qkv_bias=True, **_QWEN),
    _hub("Qwen/Qwen2.5-1.5B", n_layer=28, d_model=1536, n_head=12, n_kv_head=2, d_mlp=8960, max_seq_len=131_072,
         qkv_bias=True, **_QWEN),
    _hub("Qwen/Qwen3-0.6B", n_layer=28, d_model=1024, n_head=16, n_kv_head=8, head_dim=128, d_mlp=3072,
         max_seq_len=40_960, qk_norm=True, **_QWEN),
    _hub("Qwen/Qwen3-1.7B", n_layer=28, d_model=2048, n_head=16, n_kv_head=8, head_dim=128, d_mlp=6144,
         max_seq_len=40_960, qk_norm=True, **_QWEN),
    _hub("meta-llama/Llama-3.2-1B", n_layer=16, d_model=2048, n_head=32, n_kv_head=8, head_dim=64, d_mlp=8192,
         vocab_size=128_256, max_seq_len=131_072, rope_theta=500_000.0, tie_embeddings=True,
         rope_scaling=(32.0, 1.0, 4.0, 8192)),
    _hub("TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T", "tinyllama-1.1b", n_layer=22, d_model=2048, n_head=32, n_kv_head=4,
         d_mlp=5632, vocab_size=32_000, max_seq_len=2048),
)
"""Rotary tables are built for max_seq_len positions (Llama-3.2: 131,072 x 64, 64 MB fp32 on the device)."""

PRESETS: dict[str, ModelConfig] = {
    m.name: m
    for m in (
        _llama(
            "llama-100m", 9, 864, 9, 130_569_920,
            # int(2.7 * 864) = 2332 would give 136,587,168 (+4.6%); 2048 keeps the MLP GEMMs a
            # multiple of 64 and lands 0.47% under the paper's count.  Heads: 9 x 96.
            d_mlp=2048,
        ),
        _llama("llama-500m", 15, 1536, 12, 526_550_016),  # 12 heads x 128
        _llama("llama-1b", 19, 1920, 15, 970_458_240),  # 15 heads x 128
        _llama("llama-2b", 24, 2496, 26, 1_969_027_008),  # 26 heads x 96 (2496 / 128 is not whole)
        _pythia("pythia-70m", 6, 512, 8),
        _pythia("pythia-160m", 12, 768, 12),
        _pythia("pythia-410m", 24, 1024, 16),
        _pythia("pythia-1b", 16, 2048, 8),
        _pythia("pythia-1.4b", 24, 2048, 16),
        _pythia("pythia-2.8b", 32, 2560, 32),
        ModelConfig(
            name="tiny", family="llama", n_layer=2, d_model=64, n_head=4, d_mlp=172,
            vocab_size=512, max_seq_len=256, source="slmray: CPU tests and the smoke sweep",
        ),
        ModelConfig(
            name="tiny-neox", family="neox", n_layer=2, d_model=64, n_head=4, d_mlp=256,
            vocab_size=512, max_seq_len=256, rotary_pct=0.25, source="slmray: CPU tests of the NeoX layout",
        ),
        *TODAY,
    )
}

PUBLISHED_PARAM_COUNTS = {
    "llama-100m": 130_569_920,
    "llama-500m": 526_550_016,
    "llama-1b": 970_458_240,
    "llama-2b": 1_969_027_008,
    "pythia-70m": 70_426_624,
    "pythia-160m": 162_322_944,
    "pythia-410m": 405_334_016,
    "pythia-1b": 1_011_781_632,
    "pythia-1.4b": 1_414_647_808,
    "pythia-2.8b": 2_775_208_960,
    # the hub's parameter count of the safetensors checkpoint (tied weights once)
    "smollm2-135m": 134_515_008,
    "smollm2-360m": 361_821_120,
    "smollm2-1.7b": 1_711_376_384,
    "qwen2.5-0.5b": 494_032_768,
    "qwen2.5-1.5b": 1_543_714_304,
    "llama-3.2-1b": 1_235_814_400,
    "tinyllama-1.1b": 1_100_048_384,
}
"""Published totals, for the tests and `--list-models`.  Qwen3's cards round (0.6B with 0.44B
non-embedding; 1.7B with 1.4B) and their checkpoints store the tied output head a second time
(751,632,384 and 2,031,739,904): `tests/test_hf_config.py` checks the rounded card values."""


def get_model(name_or_path: str, **overrides) -> ModelConfig:
    """A model by preset name, config.json path (or a directory holding one), or Hugging Face hub
    id, optionally with some fields changed (a custom shape, named `<name>-custom` unless `name=`
    is given).  The one resolver of a model argument: search spaces, the trainer, the planner."""
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ConfigError(f"model: expected a preset name, a config.json path or a hub id, got {name_or_path!r}")
    if name_or_path in PRESETS:
        base = PRESETS[name_or_path]
    elif os.path.exists(name_or_path) or name_or_path.endswith(".json"):
        base = hf_config.load(name_or_path)
    elif hf_config.looks_like_hub_id(name_or_path):
        base = hf_config.from_hub(name_or_path)
    else:
        raise ConfigError(f"model: unknown model {name_or_path!r} (known: {', '.join(PRESETS)}; "
                          f"or a config.json path, or a hub id such as HuggingFaceTB/SmolLM2-360M)")
    if not overrides:
        return base
    try:
        return base.replace(name=overrides.pop("name", f"{base.name}-custom"), **overrides)
    except TypeError as exc:  # a field ModelConfig does not have
        raise ConfigError(f"model: {exc}") from None
