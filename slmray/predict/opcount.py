"""The ops and kernels the configured model dispatches, counted on the CPU: one block (decoder
layer) and the rest of a step (embedding, final norm, positions, mask, loss), forward and backward
under bf16 autocast.

Why: an uncompiled step is host-bound when its kernels are small, and its host time is its op
count times a per-op cost (`kernels.host_s`).  A fixed table of the llama/neox presets' counts
predicted Qwen3-0.6B (two RMSNorms more per block) and every `backend="transformers"` model
(Transformers' own modules) up to 2x too fast on an H100.  So the model actually configured is
counted: the native `Block` of its `ModelConfig`, or Transformers' own model built from its config
(offline), at tiny widths but with the same switches (q/k norm, q/k/v biases, grouped-query
attention and its group size, partial rotary, the family's layout), since an op count does not
depend on the widths.

Counted as the difference of the whole model (loss included) with two layers and with one: the
second layer's ops are one block's, whatever its forward's signature (Transformers' layers take
masks and position embeddings from their model); the one-layer model less that block is the rest.
Cached in memory, and on disk under `$SLMRAY_CACHE` (`opcounts.json`, keyed by the architecture,
the attention kind and the versions and sources that dispatch the ops), since building a
Transformers model costs its import (seconds) the first time in a process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Callable

from slmray.errors import ConfigError
from slmray.train.config import ModelConfig

TOKENS = (2, 16)
"""Batch and sequence of the counted step: an op count does not depend on them."""
TINY = {"d_mlp": 64, "vocab_size": 128, "max_seq_len": 32}
"""The widths a counted native model shrinks to (its head dim and switches kept)."""
CACHE_FILE = "opcounts.json"
_SOURCES = ("train/model.py", "train/attention.py", "train/loss.py", "train/hf_backend.py", "predict/opcount.py")
"""The files whose code dispatches the counted ops: a change to one recounts (the disk cache's key)."""


@dataclass(frozen=True)
class OpCount:
    """(ops, kernels) of one block and of the rest of a step, forward and backward; kernels are the
    ops that are not views (a view launches none)."""

    block_ops: int
    block_kernels: int
    head_ops: int
    head_kernels: int


def attention_kind(attention: str) -> str:
    """The attention the count distinguishes: eager (scores materialised; sdpa-math runs the same
    ops) or sdpa (one fused op forward and one backward, whichever kernel)."""
    return "eager" if attention in ("eager", "sdpa-math") else "sdpa"


def count_ops(fn: Callable[[], None]) -> dict[tuple[str, bool], int]:
    """Aten ops `fn` dispatches, by (name, is a view); `fn` runs once before, uncounted (lazy
    initialisations dispatch ops of their own)."""
    import torch

    from slmray.private_apis import torch_dispatch_mode

    class Counter(torch_dispatch_mode()):
        def __init__(self):
            super().__init__()
            self.ops: dict[tuple[str, bool], int] = {}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            key = (func.overloadpacket.__name__, bool(func.is_view) or func.overloadpacket.__name__ == "detach")
            self.ops[key] = self.ops.get(key, 0) + 1
            return func(*args, **(kwargs or {}))

    fn()
    with Counter() as counter:
        fn()
    torch.cuda.synchronize() if torch.cuda.is_available() else None
    return counter.ops


@lru_cache(maxsize=None)
def count(m: ModelConfig, attention: str, backend: str = "native") -> OpCount:
    """The counts of `m` trained with `attention` by `backend` (native or transformers; family
    transformers is always Transformers')."""
    kind = attention_kind(attention)
    if m.family == "transformers":
        return _cached("transformers", m.hf_json, kind)
    tiny = tiny_model(m)
    return _cached(backend, json.dumps(dataclasses.asdict(tiny), sort_keys=True), kind)


def tiny_model(m: ModelConfig) -> ModelConfig:
    """`m` (a native family) at tiny widths with its switches: two key/value heads with its group
    size (or four heads without grouping), its head dim, and a width apart from the heads' if its own
    is (Qwen3); one name and the default rotary and norm constants (values, not switches: the same
    ops), so that models with the same switches share a count."""
    groups = m.n_head // m.n_kv_head
    n_kv = 2 if groups > 1 else 4
    n_head = n_kv * groups
    apart = m.head_dim * m.n_head != m.d_model
    return dataclasses.replace(
        m, name="opcount", source="", n_layer=1, rope_theta=10_000.0, norm_eps=1e-5, rope_scaling=None, n_head=n_head, n_kv_head=n_kv,
        head_dim=m.head_dim if apart else None, d_model=(n_head * m.head_dim // 2) if apart else n_head * m.head_dim,
        **TINY,
    )


WIDTH_DIVISOR = 8
"""Element-wise traffic is counted at the model's widths over this (heads and switches kept): bytes
a token moves are linear in the widths, and a ratio of two models at the same widths keeps."""
NOT_ELEMENTWISE = frozenset({
    "mm", "addmm", "bmm", "embedding", "embedding_dense_backward", "_log_softmax", "_log_softmax_backward_data",
    "nll_loss_forward", "nll_loss_backward",
})
"""Ops whose traffic the step model counts elsewhere (GEMMs, the loss, the embedding); every fused
attention op too (`_scaled_dot_product*`)."""


@lru_cache(maxsize=None)
def elementwise_ratio(m: ModelConfig, backend: str = "native") -> float:
    """Bytes per token the un-compiled blocks of `m` (by `backend`) move through element-wise ops
    (every non-view op but GEMMs and fused attention: norms, rotary, activations, casts, residuals,
    their gradients), over those of the same widths without q/k norm and q/k/v biases, natively:
    what the step model's element-wise traffic, calibrated on such blocks, is to be multiplied by.
    Qwen3's q/k RMSNorm in fp32 over a query twice the width, or Transformers' own RMSNorm and
    rotary, move 1.2-2.1x the bytes.  1 for family transformers (its widths cannot be cut, see
    `_transformers`): not counted."""
    if m.family == "transformers":
        return 1.0
    if backend == "native" and not (m.qk_norm or m.qkv_bias):  # the calibrated blocks themselves
        return 1.0
    k = WIDTH_DIVISOR
    head_dim = max(8, m.head_dim // k)
    while int(head_dim * m.rotary_pct) % 2:
        head_dim += 1
    narrow = dataclasses.replace(
        m, name="opcount", source="", n_layer=1, rope_theta=10_000.0, norm_eps=1e-5, rope_scaling=None,
        head_dim=head_dim if m.head_dim * m.n_head != m.d_model else None,
        d_model=max(1, m.d_model * head_dim // m.head_dim) if m.head_dim * m.n_head != m.d_model else m.n_head * head_dim,
        d_mlp=max(1, m.d_mlp // k), vocab_size=TINY["vocab_size"], max_seq_len=2 * TOKENS[1],
    )
    plain = dataclasses.replace(narrow, qk_norm=False, qkv_bias=False)
    own = _cached_bytes(backend, json.dumps(dataclasses.asdict(narrow), sort_keys=True))
    return own / _cached_bytes("native", json.dumps(dataclasses.asdict(plain), sort_keys=True))


@lru_cache(maxsize=None)
def _cached_bytes(backend: str, architecture: str) -> float:
    return float(_on_disk([backend, "bytes", architecture], lambda: [_block_bytes_per_token(backend, architecture)])[0])


def _block_bytes_per_token(backend: str, architecture: str) -> float:
    """Element-wise bytes (inputs and outputs) per token of one block, forward and backward: the
    difference of 2 and 1 layers, of 32 and 16 tokens (what does not grow with either drops out)."""
    import torch

    from slmray.private_apis import torch_dispatch_mode

    def tensors(x):
        if isinstance(x, torch.Tensor):
            yield x
        elif isinstance(x, (list, tuple)):
            for item in x:
                yield from tensors(item)
        elif isinstance(x, dict):
            for item in x.values():
                yield from tensors(item)

    class Bytes(torch_dispatch_mode()):
        def __init__(self):
            super().__init__()
            self.bytes = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = func.overloadpacket.__name__
            if not (func.is_view or name == "detach" or name in NOT_ELEMENTWISE or name.startswith("_scaled_dot_product")):
                self.bytes += sum(t.numel() * t.element_size() for t in tensors((args, kwargs, out)))
            return out

    per_layers = []
    for layers in (1, 2):
        model = _built(backend, architecture, "sdpa", layers)
        moved = []
        for tokens in (TOKENS[1], 2 * TOKENS[1]):
            step = _step(model, (1, tokens))
            step()  # lazy initialisations first
            with Bytes() as counter:
                step()
            moved.append(counter.bytes)
        per_layers.append((moved[1] - moved[0]) / TOKENS[1])
    return per_layers[1] - per_layers[0]


@lru_cache(maxsize=None)
def _cached(backend: str, architecture: str, kind: str) -> OpCount:
    return OpCount(*_on_disk([backend, kind, architecture],
                             lambda: list(dataclasses.astuple(_count_model(backend, architecture, kind)))))


def _count_model(backend: str, architecture: str, kind: str) -> OpCount:
    counts = []
    for layers in (1, 2):
        ops = count_ops(_step(_built(backend, architecture, kind, layers), TOKENS))
        counts.append((sum(ops.values()), sum(v for (_, is_view), v in ops.items() if not is_view)))
    (ops1, kernels1), (ops2, kernels2) = counts
    return OpCount(ops2 - ops1, kernels2 - kernels1, 2 * ops1 - ops2, 2 * kernels1 - kernels2)


def _built(backend: str, architecture: str, kind: str, layers: int):
    """The model of `architecture` with `layers` blocks, its weights from a fixed seed."""
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return (_native if backend == "native" else _transformers)(architecture, kind, layers)


def _step(model, shape: tuple[int, int]) -> Callable[[], None]:
    """One training step of `model` under bf16 autocast on token ids of `shape` drawn from a fixed
    seed (what a count sees depends on nothing that ran before it)."""
    import torch

    idx = torch.randint(0, TINY["vocab_size"], shape, generator=torch.Generator().manual_seed(0))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16), warnings.catch_warnings():
            # the CPU's rms_norm has no fused kernel for a bf16 input with fp32 weights: counted the same, said each time
            warnings.filterwarnings("ignore", message="Mismatch dtype between input and weight", category=UserWarning)
            loss = model(idx, idx)
        loss.float().backward()
    return step


def _model_config(fields: dict, layers: int) -> ModelConfig:
    """A ModelConfig back from its JSON fields (`rope_scaling` a tuple again), with `layers` blocks."""
    if fields.get("rope_scaling") is not None:
        fields = {**fields, "rope_scaling": tuple(fields["rope_scaling"])}
    return dataclasses.replace(ModelConfig(**fields), n_layer=layers)


def _native(architecture: str, kind: str, layers: int):
    from slmray.train.model import Transformer

    return Transformer(_model_config(json.loads(architecture), layers), kind)


def _transformers(architecture: str, kind: str, layers: int):
    """Transformers' model of a native family's tiny config (`hf_backend.hf_config`), or of a family
    transformers config.json with its layers, vocabulary and the widths it names as most decoders do
    cut (`_narrow`; the count does not depend on them)."""
    import torch

    from slmray.train.hf_backend import TransformersLM, attn_implementation, auto_config, causal_lm, hf_config
    from slmray.train.loss import get_loss

    if importlib.util.find_spec("transformers") is None:  # a dry run on a machine that will not train
        raise ConfigError("backend: transformers: predicting these trials counts the ops of Transformers' own model, "
                          "which needs transformers here too: pip install 'slmray[hf]' (or drop the backend)")
    fields = json.loads(architecture)
    native = "family" in fields  # a native family's tiny ModelConfig, else a config.json
    name = fields["name"] if native else str(fields.get("_name_or_path") or fields["model_type"])

    def refuse(what: str) -> ConfigError:
        return ConfigError(f"model: {name}: counting its ops: {what}")

    if native:
        config = hf_config(_model_config(fields, layers))
    else:
        config = auto_config({**fields, "use_cache": False}, refuse)
        config.num_hidden_layers = layers
        if isinstance(getattr(config, "layer_types", None), list):
            config.layer_types = config.layer_types[:layers]
        config.vocab_size = TINY["vocab_size"]
        _narrow(config)
        for token in ("pad_token_id", "bos_token_id", "eos_token_id"):
            if isinstance(getattr(config, token, None), int) and getattr(config, token) >= TINY["vocab_size"]:
                setattr(config, token, None)
    hf = causal_lm(config, refuse, attn_implementation=attn_implementation(kind), dtype=torch.float32)
    return TransformersLM(hf, get_loss("standard"), kind)


NARROW_HEAD_DIM = 16


def _narrow(config) -> None:
    """Cuts a config.json's widths where it names them as most decoders do (hidden_size,
    intermediate_size, num_attention_heads, num_key_value_heads, head_dim): two key/value heads with
    its group size, heads of NARROW_HEAD_DIM; a width apart from the heads' stays apart.  What it does
    not name keeps its width: the count is the same, only slower to make."""
    names = ("hidden_size", "intermediate_size", "num_attention_heads")
    if not all(isinstance(getattr(config, n, None), int) for n in names):
        return
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    if not isinstance(kv, int) or heads % kv:
        return
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    apart = head_dim * heads != config.hidden_size
    groups = heads // kv
    kv_new = 2 if groups > 1 else 4
    config.num_attention_heads = kv_new * groups
    if hasattr(config, "num_key_value_heads"):
        config.num_key_value_heads = kv_new
    if getattr(config, "head_dim", None) is not None:
        config.head_dim = NARROW_HEAD_DIM
    config.hidden_size = config.num_attention_heads * NARROW_HEAD_DIM // (2 if apart else 1)
    config.intermediate_size = 2 * config.hidden_size


@lru_cache(maxsize=1)
def _versions() -> tuple[str, ...]:
    """torch's and transformers' versions and a digest of `_SOURCES`: what the ops depend on."""
    versions = []
    for package in ("torch", "transformers"):
        try:
            versions.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} absent")
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(b"".join((root / s).read_bytes() for s in _SOURCES)).hexdigest()[:16]
    return (*versions, digest)


def _cache_path() -> Path:
    return Path(os.environ.get("SLMRAY_CACHE", Path.home() / ".cache" / "slmray")) / CACHE_FILE


def _read_disk() -> dict[str, list[int]]:
    try:
        data = json.loads(_cache_path().read_text())
    except (OSError, ValueError):  # none yet, unreadable or torn: count again
        return {}
    return data if isinstance(data, dict) else {}


def _on_disk(what: list[str], count: Callable[[], list[float]]) -> list[float]:
    """The disk cache's entry for `what` (with `_versions()` in its key), else `count()` stored there."""
    key = json.dumps([*what, *_versions()])
    stored = _read_disk().get(key)
    if stored is not None:
        return stored
    counted = count()
    _write_disk(key, counted)
    return counted


def _write_disk(key: str, counted: list[float]) -> None:
    """Adds `counted` to the disk cache, replacing the file whole (a reader never sees half of it); a
    cache that cannot be written is skipped: the count is made again next time."""
    path = _cache_path()
    data = {**_read_disk(), key: counted}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
            json.dump(data, f)
        os.replace(f.name, path)
    except OSError:
        pass
