"""Typed configuration, validated once where it enters (CLI, search space, Ray config dict).

Everything past this module receives a `ModelConfig` / `TrainConfig`, never a raw dict.
Errors are `ConfigError`s whose message starts with the field name, so a CLI can print
them on one line.

Frozen dataclasses, not pydantic (which Ray installs): the checks that need code either way
(seq_len under the model's limit, n_head dividing d_model, FP8 not on the CPU) are most of
`__post_init__`; the rest is one helper call per rule (`check_positive_int`, `_one_of`), and
`from_dict` already refuses unknown fields.  pydantic would add a model-class layer and its own
multi-line error format that each CLI would have to flatten back to `<field>: <what is wrong>`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

from slmray.core.defaults import ROW_DEFAULTS
from slmray.errors import ConfigError, check_positive_int

FAMILIES = ("llama", "neox", "transformers")
"""llama and neox: the layouts the native model builds; transformers: any other architecture
Transformers has, read from its config.json (`slmray.train.hf_config`), trained by
`backend="transformers"` only."""
ATTENTION_BACKENDS = ("eager", "sdpa", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient", "sdpa-math", "flash2")
CPU_ATTENTION = ("eager", "sdpa", "sdpa-math")
"""The attention backends a CPU run may use: the forced fused backends name GPU kernels (on the
CPU, sdpa-flash falls back to a CPU kernel that measures nothing a GPU run would)."""
GQA_DEFAULT = {"sdpa": "native", "sdpa-flash": "native", "sdpa-math": "native",
               "sdpa-cudnn": "native", "sdpa-efficient": "repeat", "eager": "repeat", "flash2": "native"}
"""How each attention backend serves grouped-query attention (n_kv_head < n_head): native
(SDPA's enable_gqa; flash_attn takes fewer k/v heads) or k/v repeated to n_head heads first.
Measured on one H100 (benchmarks/results/models/gqa_attention_h100.md, fwd+bwd, bf16, the GQA
presets' shapes at batch 8 x 2048): native was faster for sdpa (1.03-1.18x, one shape even),
sdpa-flash (1.03-1.07x) and sdpa-cudnn (1.03-1.19x); the memory-efficient kernel has none
("No available kernel"), so it repeats.  Here, not in `attention.py`, so that the estimator
counts the same tensors without importing torch."""
STRATEGIES = ("single", "ddp", "fsdp", "fsdp_grad_op")
DEVICES = ("auto", "cuda", "cpu")
PRECISIONS = ("bf16", "fp8", "fp8-rowwise")
"""bf16: bf16 compute (fp32 on the CPU); fp8 / fp8-rowwise: torchao's float8 training with
tensorwise or rowwise dynamic scaling on the Linear layers FP8 can take (`slmray.train.fp8`)."""
FP8_PRECISIONS = ("fp8", "fp8-rowwise")
LOSS_KERNELS = ("standard", "chunked", "liger", "cce")
"""How the output projection and the cross-entropy run (`slmray.train.loss`): standard (the (tokens,
vocab) logits, upcast to fp32), chunked (torch: a chunk of tokens at a time, its logits recomputed in
backward), liger (Liger-Kernel's fused linear cross-entropy) or cce (Apple's cut-cross-entropy); the
last two are Triton kernels: GPU only, and only where their package is installed."""
FUSED_LOSS_PACKAGES = {"liger": ("liger_kernel", "liger-kernel"), "cce": ("cut_cross_entropy", "cut-cross-entropy")}
"""A fused loss kernel -> (its module, its PyPI package)."""
LOSS_CHUNK_BYTES = 512 << 20
"""Bytes of fp32 logits one chunk of the chunked loss may hold (its tokens times the vocabulary): under
2 GB of a chunk's tensors in backward at a 152k vocabulary, against the standard kernel's 30 GB at
batch 16 x 1,024 (`predict.estimate._head_bytes`).  A first choice, to be set from
`benchmarks/loss_kernels.py` (fewer, larger chunks: larger GEMMs, more memory)."""
LOSS_CHUNK_ALIGN = 256
"""Chunks of a multiple of this many tokens keep the head's GEMMs on aligned tile sizes."""
BACKENDS = ("native", "transformers")
"""native: slmray's own model (`slmray.train.model`); transformers: `AutoModelForCausalLM.from_config`
of the same shape (`slmray.train.hf_backend`), under the same loop, wrapping and measurements."""

CONFIG_KEYS = (
    "model", "per_device_batch", "num_gpus", "gpu_type", "attention", "strategy", "compile", "precision", "seq_len",
    "activation_checkpointing", "loss_kernel", "backend",
)
"""A sweep configuration's identity: the results columns that tell two configurations apart
(what a space sweeps, what the analysis groups repeats by, what the planner offers).  Defined
here once; everything that keys on a configuration uses this tuple."""


def is_fp8(precision: str | None) -> bool:
    """Whether a precision (a config's, a row's) trains its Linear layers in FP8."""
    return precision in FP8_PRECISIONS


def flash_attn_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def installed_attention() -> tuple[str, ...]:
    """Attention kernels this environment can run (flash2 only with flash_attn installed); found
    without importing torch, so that the sweep's driver and trials check spaces without it."""
    return tuple(b for b in ATTENTION_BACKENDS if b != "flash2" or flash_attn_available())


def installed_loss_kernels() -> tuple[str, ...]:
    """Loss kernels whose package this environment has (found without importing torch)."""
    return tuple(k for k in LOSS_KERNELS if k not in FUSED_LOSS_PACKAGES
                 or importlib.util.find_spec(FUSED_LOSS_PACKAGES[k][0]) is not None)


def check_loss_kernel(kernel: str, no_gpu: str | None = None, need_package: bool = True) -> None:
    """The one check of a loss kernel, a one-line ConfigError unless it can run: known; for the fused
    (Triton) ones a GPU (`no_gpu` says where there is none) and, with `need_package`, their package
    (a config read back from a row need not run here)."""
    _one_of("loss_kernel", kernel, LOSS_KERNELS)
    if kernel not in FUSED_LOSS_PACKAGES:
        return
    if no_gpu:
        raise ConfigError(f"loss_kernel: {kernel} is a Triton kernel that needs a CUDA GPU; {no_gpu} (chunked runs anywhere)")
    if need_package and kernel not in installed_loss_kernels():
        package = FUSED_LOSS_PACKAGES[kernel][1]
        raise ConfigError(f"loss_kernel: {kernel} needs the {package} package (pip install {package})")


def loss_chunk_tokens(n_tokens: int, vocab_size: int) -> int:
    """Tokens per chunk of the chunked loss: the most whose fp32 logits fit `LOSS_CHUNK_BYTES`,
    rounded down to a multiple of `LOSS_CHUNK_ALIGN` (never below it), at most `n_tokens`; here, not
    in `slmray.train.loss`, so that the estimator counts the same chunk without torch."""
    fits = LOSS_CHUNK_BYTES // (4 * vocab_size)
    return min(n_tokens, max(LOSS_CHUNK_ALIGN, fits - fits % LOSS_CHUNK_ALIGN))


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(allowed)}")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a decoder-only transformer; `family` picks the block layout.

    llama: pre-norm RMSNorm, SwiGLU MLP, rotary on every head dim, no biases; optionally
    grouped-query attention, tied embeddings, q/k/v biases (Qwen2) and q/k RMSNorm (Qwen3).
    neox (Pythia): LayerNorm, parallel attention + MLP residual, GELU MLP, biases,
    rotary on `rotary_pct` of each head's dims.  The defaults untie input and output embeddings
    and give every query head its own key/value head (the paper's and Pythia's models).
    transformers: an architecture only Transformers builds; `hf_json` holds its config.json, the
    shape fields hold Transformers' normalised attributes (what the FLOP count and the estimator
    read), `param_count` its exact parameter count; the fields the native blocks read (rotary,
    norms, biases) keep their defaults and mean nothing for it.
    """

    name: str
    family: str
    n_layer: int
    d_model: int
    n_head: int
    d_mlp: int
    vocab_size: int
    max_seq_len: int
    rotary_pct: float = 1.0
    rope_theta: float = 10_000.0
    norm_eps: float = 1e-5
    source: str = ""
    """Where the shape comes from (paper table, model card), or why it was chosen."""
    n_kv_head: int | None = None
    """Key/value heads (grouped-query attention: each serves n_head / n_kv_head query heads);
    None: n_head (multi-head attention).  Resolved in `__post_init__`, so always an int after."""
    head_dim: int | None = None
    """Dims per head; None: d_model // n_head.  Qwen3 sets it apart from the width (0.6B: 16 x 128
    over a width of 1024)."""
    tie_embeddings: bool = False
    """Share the input embedding's weight with the output projection (SmolLM2, Qwen2.5, Llama-3.2)."""
    qkv_bias: bool = False
    """Biases on the q/k/v projection of a llama-family block (Qwen2); neox has all biases anyway."""
    qk_norm: bool = False
    """RMSNorm over each head's q and k before rotary (Qwen3)."""
    rope_scaling: tuple[float, float, float, int] | None = None
    """Llama 3's rotary frequency scaling (factor, low_freq_factor, high_freq_factor,
    original_max_position_embeddings); None: plain rotary.  Changes the frequencies only."""
    hf_json: str = ""
    """family transformers: the config.json as it was read (a JSON string, so the config stays plain
    for Ray and Arrow rows); what `hf_backend` builds.  Empty for the native families."""
    param_count: int | None = None
    """family transformers: the parameter count Transformers' model has (tied weights once), counted
    on the meta device when the config.json was read, so that `num_params` needs no torch."""

    def __post_init__(self) -> None:
        _one_of("model.family", self.family, FAMILIES)
        foreign = self.family == "transformers"
        if foreign:
            check_positive_int("model.param_count", self.param_count)
            if not (isinstance(self.hf_json, str) and isinstance(_json_object(self.hf_json).get("model_type"), str)):
                raise ConfigError("model.hf_json: family transformers needs its config.json (a JSON object with a model_type)")
        elif self.hf_json or self.param_count is not None:
            raise ConfigError(f"model.hf_json: only family transformers holds a config.json and a param_count "
                              f"(family {self.family} is counted from its shape)")
        for name in ("n_layer", "d_model", "n_head", "d_mlp", "vocab_size", "max_seq_len"):
            check_positive_int(f"model.{name}", getattr(self, name))
        derived_head_dim = self.head_dim is None
        if derived_head_dim:
            if self.d_model % self.n_head:
                raise ConfigError(f"model.n_head: {self.n_head} does not divide d_model {self.d_model}")
            object.__setattr__(self, "head_dim", self.d_model // self.n_head)
        check_positive_int("model.head_dim", self.head_dim)
        if self.n_kv_head is None:
            object.__setattr__(self, "n_kv_head", self.n_head)
        check_positive_int("model.n_kv_head", self.n_kv_head)
        if self.n_head % self.n_kv_head:
            raise ConfigError(f"model.n_kv_head: {self.n_kv_head} does not divide n_head {self.n_head}")
        if self.family == "neox" and (self.n_kv_head != self.n_head or self.qkv_bias or self.qk_norm
                                      or self.head_dim * self.n_head != self.d_model or self.tie_embeddings):
            raise ConfigError("model.family: neox models have n_kv_head = n_head, head_dim = d_model / n_head, "
                              "untied embeddings and no qkv_bias / qk_norm switches")
        for name in ("rope_theta", "norm_eps"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"model.{name}: must be a positive finite number, got {value!r}")
        if not 0.0 < self.rotary_pct <= 1.0:
            raise ConfigError(f"model.rotary_pct: must be in (0, 1], got {self.rotary_pct}")
        if self.rotary_dim % 2 and not foreign:  # Transformers' own model has its own positions
            if derived_head_dim and self.rotary_pct == 1.0:  # --n-head 64 on a width of 64: name the heads
                raise ConfigError(f"model.n_head: {self.n_head} heads leave {self.head_dim} dims a head "
                                  f"(d_model {self.d_model}); rotary embeddings need an even number")
            raise ConfigError(f"model.rotary_pct: rotary dims {self.rotary_dim} must be even")
        if self.rope_scaling is not None:
            if isinstance(self.rope_scaling, list):  # from JSON or a Ray config
                object.__setattr__(self, "rope_scaling", tuple(self.rope_scaling))
            if len(self.rope_scaling) != 4 or not self.rope_scaling[2] > self.rope_scaling[1] > 0:
                raise ConfigError("model.rope_scaling: expected (factor, low_freq_factor, high_freq_factor, "
                                  f"original_max_position_embeddings) with high > low > 0, got {self.rope_scaling}")

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.rotary_pct)

    @property
    def q_dim(self) -> int:
        """Width of the queries (and of the attention output): n_head * head_dim."""
        return self.n_head * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of the keys, and of the values: n_kv_head * head_dim."""
        return self.n_kv_head * self.head_dim

    @property
    def model_type(self) -> str:
        """The config.json's model_type (family transformers); else the family."""
        return _json_object(self.hf_json)["model_type"] if self.family == "transformers" else self.family

    @property
    def num_params(self) -> int:
        """Exact count of the parameters `model.Transformer` creates, without building it
        (tied weights once, as `transformers` counts them); family transformers: the count stored
        when its config.json was read."""
        if self.family == "transformers":
            return self.param_count
        d, h = self.d_model, self.d_mlp
        qkv_out = self.q_dim + 2 * self.kv_dim
        attention = d * qkv_out + self.q_dim * d  # qkv, out
        if self.family == "llama":
            attention += (qkv_out if self.qkv_bias else 0) + (2 * self.head_dim if self.qk_norm else 0)
            per_layer = attention + 3 * d * h + 2 * d  # gate+up+down, two RMSNorm weights
            final_norm = d
        else:
            per_layer = attention + qkv_out + d + 2 * d * h + h + d + 4 * d  # attn (+bias), mlp (+bias), two LayerNorms
            final_norm = 2 * d
        return self.n_layer * per_layer + final_norm + self.num_embedding_params

    @property
    def num_embedding_params(self) -> int:
        """Input embedding plus output projection (one matrix when tied); for family transformers
        the same two matrices from its shape (an architecture's position embeddings are not among them)."""
        return (1 if self.tie_embeddings else 2) * self.vocab_size * self.d_model

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with `changes`; a head_dim or n_kv_head that was derived (d_model / n_head,
        n_head) is derived again from the changed width or heads unless given.  A family transformers
        model's shape is its config.json's: only its name and source change here."""
        if self.family == "transformers" and set(changes) - {"name", "source"}:
            field_name = sorted(set(changes) - {"name", "source"})[0]
            raise ConfigError(f"model.{field_name}: {self.name} is read from its config.json (model_type "
                              f"{self.model_type}); change the shape there")
        derived_head_dim = self.head_dim * self.n_head == self.d_model
        if "head_dim" not in changes and {"d_model", "n_head"} & set(changes) and derived_head_dim:
            changes["head_dim"] = None
        if "n_kv_head" not in changes and "n_head" in changes and self.n_kv_head == self.n_head:
            changes["n_kv_head"] = None
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class TrainConfig:
    """One training run: what the loop needs, nothing about how it was launched."""

    model: ModelConfig
    attention: str = "sdpa"
    """eager: the paper's vanilla attention; sdpa[-flash|-cudnn|-efficient|-math]: PyTorch's
    fused attention with an optional forced backend; flash2: the flash_attn package."""
    strategy: str = "single"
    """single (no wrapper), ddp, fsdp (FSDP2, reshard after forward) or fsdp_grad_op
    (FSDP2 keeping parameters gathered between forward and backward, like SHARD_GRAD_OP)."""
    per_device_batch: int = 8
    seq_len: int = 1024
    grad_accum: int = 1
    steps: int = 10
    """Measured steps per repeat; warm-up steps come before and are not timed."""
    warmup_steps: int = 3
    repeats: int = 1
    """Measured windows of `steps` steps each; the paper ran every setup 3 times."""
    compile: bool = False
    activation_checkpointing: bool = False
    precision: str = "bf16"
    """bf16, fp8 (torchao's tensorwise recipe) or fp8-rowwise; fp8 needs FP8 tensor cores and
    torchao (`pip install 'slmray[fp8]'`), checked before the run starts (`slmray.train.fp8`)."""
    lr: float = 3e-4
    lr_warmup_steps: int = 10
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    """Global gradient-norm clip; 0 turns it off."""
    seed: int = 0
    data: str = "synthetic"
    """synthetic (random tokens), stdlib (Python's own sources, built offline) or a
    directory / s3:// prefix of token shards written by `python -m slmray.data prepare`."""
    device: str = "auto"
    memory_fraction: float = 1.0
    """Cap on the share of GPU memory the run may use, to stand in for a smaller GPU."""
    loss_kernel: str = "standard"
    """standard, chunked, liger or cce (`LOSS_KERNELS`): how the logits and the loss are computed."""
    backend: str = "native"
    """native (slmray's model) or transformers (the same shape as a Transformers model)."""
    time_limit_s: float | None = None
    """Seconds the run may take, from set-up to the last step (`slmray.train.deadline`); None: no
    limit.  A run past it ends with status failed and says where it was."""

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelConfig):
            raise ConfigError(f"model: expected a ModelConfig, got {type(self.model).__name__}")
        _one_of("attention", self.attention, ATTENTION_BACKENDS)
        _one_of("strategy", self.strategy, STRATEGIES)
        _one_of("device", self.device, DEVICES)
        _one_of("precision", self.precision, PRECISIONS)
        _one_of("backend", self.backend, BACKENDS)
        check_backend(self.model, self.backend)
        check_loss_kernel(self.loss_kernel, "device is cpu" if self.device == "cpu" else None, need_package=False)
        if is_fp8(self.precision) and self.device == "cpu":  # before the other checks: the first thing to fix
            raise ConfigError(
                f"precision: {self.precision} needs a GPU with FP8 tensor cores (H100, H200, L4, L40S, ...); device is cpu"
            )
        if self.device == "cpu":
            check_runs_on_cpu(self)
        for name in ("per_device_batch", "seq_len", "grad_accum", "steps", "repeats"):
            check_positive_int(name, getattr(self, name))
        for name in ("warmup_steps", "lr_warmup_steps", "seed"):
            check_positive_int(name, getattr(self, name), zero_ok=True)
        if self.seq_len > self.model.max_seq_len:
            raise ConfigError(
                f"seq_len: {self.seq_len} is above {self.model.name}'s limit of {self.model.max_seq_len}"
            )
        if self.compile and self.warmup_steps < 1:
            raise ConfigError("warmup_steps: compile needs at least 1 warm-up step to keep compilation untimed")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr: must be a positive finite number, got {self.lr}")
        for name in ("grad_clip", "weight_decay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name}: must be a finite number, 0 or more, got {value}")
        if not 0.0 < self.memory_fraction <= 1.0:
            raise ConfigError(f"memory_fraction: must be in (0, 1], got {self.memory_fraction}")
        if not isinstance(self.data, str) or not self.data.strip():
            raise ConfigError("data: must name synthetic, stdlib or a token-shard directory")
        if self.time_limit_s is not None and not (math.isfinite(self.time_limit_s) and self.time_limit_s > 0):
            raise ConfigError(f"time_limit_s: must be a positive number of seconds (or None: no limit), "
                              f"got {self.time_limit_s}")

    @property
    def tokens_per_device_step(self) -> int:
        return self.per_device_batch * self.seq_len * self.grad_accum

    def flat(self) -> dict[str, Any]:
        """The run's values under one level of names: the model's name, family and size beside
        the training fields (what a results row records of its configuration)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"}
        return {"model": self.model.name, "family": self.model.family, "n_params": self.model.num_params, **values}

    def to_dict(self) -> dict[str, Any]:
        """Plain, serialisable form (Ray config, JSON); inverse of `from_dict`."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown training field (known: {', '.join(sorted(known))})")
        values = dict(raw)
        model = values.get("model")
        if isinstance(model, dict):
            values["model"] = model_from_dict(model)
        elif not isinstance(model, ModelConfig):
            # a preset's name is resolved by `slmray.train.presets.get_model`, which stands on this module
            raise ConfigError(f"model: {model!r} is not a model's fields (a preset by name: slmray.train.presets.get_model)")
        return cls(**values)

    @classmethod
    def from_row(cls, row: Mapping[str, Any], model: ModelConfig, **overrides: Any) -> TrainConfig:
        """The TrainConfig a results row (or a planner option) describes: its training fields,
        `ROW_DEFAULTS` for the nulls of older tables, everything else at TrainConfig's default.
        `model` is resolved by the caller (a preset's name needs `slmray.train.presets`)."""
        known = {f.name for f in dataclasses.fields(cls)} - {"model"}
        values: dict[str, Any] = {}
        for name in known:
            value = row.get(name) if hasattr(row, "get") else None
            if _null(value):
                if name not in ROW_DEFAULTS:
                    continue
                value = ROW_DEFAULTS[name]
            values[name] = _plain(value, getattr(cls, name, None))
        values.update(overrides)
        return cls(model=model, **values)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def check_backend(model: ModelConfig, backend: str) -> None:
    """A ConfigError where `backend` cannot build `model`: the native trainer builds the llama and
    neox layouts only.  One rule for the trainer, a search space and the planner."""
    if backend == "native" and model.family == "transformers":
        raise ConfigError(f"backend: {model.name} is model_type {model.model_type!r}, which the native trainer does not "
                          f"build (family llama: llama, mistral, qwen2, qwen3; neox); train it with the transformers backend")
    if backend == "transformers" and model.family == "llama":  # exported as Llama, Qwen2 or Qwen3 (hf_backend.hf_config)
        if model.qk_norm and model.qkv_bias:
            raise ConfigError(f"backend: {model.name}: no transformers architecture has both q/k/v biases and a q/k norm "
                              "(Qwen3's attention_bias puts one on the output projection too)")
        if model.qkv_bias and model.head_dim * model.n_head != model.d_model:
            raise ConfigError(f"backend: {model.name}: Qwen2 in transformers has head_dim = d_model / n_head, "
                              f"not {model.head_dim}")


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def check_runs_on_cpu(cfg: TrainConfig) -> None:
    """A ConfigError for what a CPU run cannot honour: called where the device is known to be the
    CPU (`device="cpu"` here; `auto` on a machine without a GPU when the run starts)."""
    missing_package = cfg.attention == "flash2" and not flash_attn_available()  # its own line says what to install
    if cfg.attention not in CPU_ATTENTION and not missing_package:
        raise ConfigError(f"attention: {cfg.attention} needs a CUDA GPU; on the CPU: {', '.join(CPU_ATTENTION)}")
    if cfg.memory_fraction < 1.0:
        raise ConfigError(f"memory_fraction: {cfg.memory_fraction} caps a GPU's memory; this run is on the CPU")


def _null(value: Any) -> bool:
    """None, NaN (a null in a pandas float row) or pandas.NA (whose comparisons raise)."""
    try:
        return value is None or bool(value != value)
    except TypeError:
        return True


def _plain(value: Any, default: Any) -> Any:
    """A table's value as the field's Python type (numpy int64 -> int, numpy bool -> bool)."""
    if isinstance(default, bool):
        return bool(value)
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    return value


def model_from_dict(raw: dict[str, Any]) -> ModelConfig:
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"model.{unknown[0]}: unknown model field (known: {', '.join(sorted(known))})")
    try:
        return ModelConfig(**raw)
    except TypeError as exc:  # a missing required field
        raise ConfigError(f"model: {exc}") from None


def config_label(config: Mapping[str, Any], *, model: bool = True) -> str:
    """A sweep configuration (a Tune config, `Trial.as_config()`, a results row) in one line:
    `llama-1b H100-80GB x8 fsdp sdpa b16 compile fp8 loss chunked transformers +AC seq 2048`.  What is at
    its default (bf16, the standard loss, the native backend, no checkpointing, TrainConfig's seq_len) or unknown (a null of an older table) is
    left out, no GPU type reads `local`; `model=False` drops the model, for a table with a model
    column.  Here, not in `slmray.sweep.space`, so that analysis can label rows without importing torch."""
    parts = [str(config["model"])] if model else []
    parts += [f"{_given(config, 'gpu_type') or 'local'} x{_whole(config['num_gpus'])}", str(config["strategy"]),
              str(config["attention"]), f"b{_whole(config['per_device_batch'])}"]
    return " ".join(parts + config_variant(config))


def config_variant(config: Mapping[str, Any]) -> list[str]:
    """The words of `config_label` for what a configuration sets beyond strategy, attention and
    batch (`compile fp8 +AC seq 2048`), none where all is at its default; for a table whose other
    columns show the rest (the sweep's dry-run plan)."""
    precision, seq_len = _given(config, "precision"), _given(config, "seq_len")
    parts = []
    if _given(config, "compile"):
        parts.append("compile")
    if precision not in (None, "bf16"):
        parts.append(str(precision))
    if _given(config, "loss_kernel") not in (None, "standard"):
        parts.append(f"loss {_given(config, 'loss_kernel')}")
    if _given(config, "backend") not in (None, "native"):
        parts.append(str(_given(config, "backend")))
    if _given(config, "activation_checkpointing"):
        parts.append("+AC")
    if seq_len is not None and seq_len != TrainConfig.seq_len:
        parts.append(f"seq {_whole(seq_len)}")
    return parts


def _given(config: Mapping[str, Any], key: str) -> Any:
    value = config.get(key)
    return None if _null(value) else value


def _whole(value: Any) -> Any:
    """8.0 from a pandas int column with nulls reads 8."""
    return int(value) if isinstance(value, float) and value.is_integer() else value
