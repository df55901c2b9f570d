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
from dataclasses import dataclass
from typing import Any, Mapping

from slmray.errors import ConfigError, check_positive_int

FAMILIES = ("llama", "neox")
ATTENTION_BACKENDS = ("eager", "sdpa", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient", "sdpa-math", "flash2")
STRATEGIES = ("single", "ddp", "fsdp", "fsdp_grad_op")
DEVICES = ("auto", "cuda", "cpu")
PRECISIONS = ("bf16", "fp8", "fp8-rowwise")
"""bf16: bf16 compute (fp32 on the CPU); fp8 / fp8-rowwise: torchao's float8 training with
tensorwise or rowwise dynamic scaling on the Linear layers FP8 can take (`slmray.train.fp8`)."""
FP8_PRECISIONS = ("fp8", "fp8-rowwise")

CONFIG_KEYS = (
    "model", "per_device_batch", "num_gpus", "gpu_type", "attention", "strategy", "compile", "precision", "seq_len",
    "activation_checkpointing",
)
"""A sweep configuration's identity: the results columns that tell two configurations apart
(what a space sweeps, what the analysis groups repeats by, what the planner offers).  Defined
here once; everything that keys on a configuration uses this tuple."""
ROW_DEFAULTS = {"precision": "bf16", "activation_checkpointing": False, "compile": False, "grad_accum": 1}
"""What a null (or absent column) in a results table from before that column existed means:
the trainer's default of the day.  Filled in one place, `TrainConfig.from_row`."""


def is_fp8(precision: str | None) -> bool:
    """Whether a precision (a config's, a row's) trains its Linear layers in FP8."""
    return precision in FP8_PRECISIONS


def flash_attn_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def installed_backends() -> tuple[str, ...]:
    """Backend names this environment can run (flash2 only with flash_attn installed); found
    without importing torch, so that the sweep's driver and trials check spaces without it."""
    return tuple(b for b in ATTENTION_BACKENDS if b != "flash2" or flash_attn_available())


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(allowed)}")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a decoder-only transformer; `family` picks the block layout.

    llama: pre-norm RMSNorm, SwiGLU MLP, rotary on every head dim, no biases.
    neox (Pythia): LayerNorm, parallel attention + MLP residual, GELU MLP, biases,
    rotary on `rotary_pct` of each head's dims.  Both untie input and output embeddings.
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

    def __post_init__(self) -> None:
        _one_of("model.family", self.family, FAMILIES)
        for name in ("n_layer", "d_model", "n_head", "d_mlp", "vocab_size", "max_seq_len"):
            check_positive_int(f"model.{name}", getattr(self, name))
        if self.d_model % self.n_head:
            raise ConfigError(f"model.n_head: {self.n_head} does not divide d_model {self.d_model}")
        if not 0.0 < self.rotary_pct <= 1.0:
            raise ConfigError(f"model.rotary_pct: must be in (0, 1], got {self.rotary_pct}")
        if self.rotary_dim % 2:
            raise ConfigError(f"model.rotary_pct: rotary dims {self.rotary_dim} must be even")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.rotary_pct)

    @property
    def num_params(self) -> int:
        """Exact count of the parameters `model.Transformer` creates, without building it."""
        d, h, v = self.d_model, self.d_mlp, self.vocab_size
        if self.family == "llama":
            per_layer = 4 * d * d + 3 * d * h + 2 * d  # qkv+out, gate+up+down, two RMSNorm weights
            final_norm = d
        else:
            per_layer = 4 * d * d + 4 * d + 2 * d * h + h + d + 4 * d  # attn (+bias), mlp (+bias), two LayerNorms
            final_norm = 2 * d
        return self.n_layer * per_layer + final_norm + 2 * v * d

    @property
    def num_embedding_params(self) -> int:
        """Input embedding plus output projection (untied)."""
        return 2 * self.vocab_size * self.d_model

    def replace(self, **changes: Any) -> ModelConfig:
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

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelConfig):
            raise ConfigError(f"model: expected a ModelConfig, got {type(self.model).__name__}")
        _one_of("attention", self.attention, ATTENTION_BACKENDS)
        _one_of("strategy", self.strategy, STRATEGIES)
        _one_of("device", self.device, DEVICES)
        _one_of("precision", self.precision, PRECISIONS)
        if is_fp8(self.precision) and self.device == "cpu":  # before the other checks: the first thing to fix
            raise ConfigError(
                f"precision: {self.precision} needs a GPU with FP8 tensor cores (H100, H200, L4, L40S, ...); device is cpu"
            )
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
        if not self.lr > 0:
            raise ConfigError(f"lr: must be positive, got {self.lr}")
        if self.grad_clip < 0 or self.weight_decay < 0:
            raise ConfigError("grad_clip, weight_decay: must not be negative")
        if not 0.0 < self.memory_fraction <= 1.0:
            raise ConfigError(f"memory_fraction: must be in (0, 1], got {self.memory_fraction}")
        if not isinstance(self.data, str) or not self.data.strip():
            raise ConfigError("data: must name synthetic, stdlib or a token-shard directory")

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
    `llama-1b H100-80GB x8 fsdp sdpa b16 compile fp8 +AC seq 2048`.  What is at its default
    (bf16, no checkpointing, TrainConfig's seq_len) or unknown (a null of an older table) is
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
