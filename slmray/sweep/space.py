"""The search-space API that `search_spaces/*.py` files use.

A search-space file is a small Python module defining `SPACE`:

    from slmray.sweep.space import SearchSpace

    SPACE = SearchSpace(
        model=["llama-100m", "llama-500m"],
        per_device_batch=[8, 16, 32],
        num_gpus=[1, 2],
        attention=["eager", "sdpa"],
        strategy=["ddp", "fsdp"],
        seq_len=1024,
        steps=10,
        search="grid",
        objectives=["max:tokens_per_s", "max:tokens_per_usd"],
    )

Lists are swept dimensions; scalars hold for every trial.  Everything is checked when the
space is built, and `load_space` prefixes the file's path to any error.
"""

from __future__ import annotations

import contextvars
import difflib
import importlib.util
import itertools
import math
import re
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from slmray.catalog.gpus import gpu_specs, spec_for
from slmray.catalog.prices import profiles
from slmray.core.objective import Objective, ObjectiveError
from slmray.core.schema import NUMERIC_COLUMNS
from slmray.errors import ConfigError, UserError, check_positive_int
from slmray.train import fp8
from slmray.train.config import (
    ATTENTION_BACKENDS,
    BACKENDS,
    CONFIG_KEYS,
    CPU_ATTENTION,
    DEVICES,
    PRECISIONS,
    STRATEGIES,
    ModelConfig,
    TrainConfig,
    check_backend,
    check_loss_kernel,
    installed_attention,
    is_fp8,
)
from slmray.train.presets import PRESETS, get_model

SEARCHES = ("grid", "optuna")
OPTUNA_SAMPLERS = ("tpe", "nsga2", "random")
OBJECTIVE_COLUMNS = tuple(c for c in NUMERIC_COLUMNS if c not in ("per_device_batch", "num_gpus", "seq_len"))
"""The results columns a sweep may optimise: the numeric ones but the swept dimensions."""
LISTABLE = ("seq_len", "activation_checkpointing", "precision", "loss_kernel", "backend")
"""Fields that are one value for every trial or a list to sweep."""
LISTS = tuple(k for k in CONFIG_KEYS if k not in (*LISTABLE, "per_device_batch", "gpu_type"))
"""The other swept fields, lists (one value is taken as a list of it); per_device_batch may also be a
list per model, and gpu_type None (whatever GPUs the cluster has)."""
FIXED = ("grad_accum", "steps", "warmup_steps", "repeats", "seed", "data")
"""Fields a space holds at one value for every trial and hands to each TrainConfig as they are."""
DEFAULT = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
"""TrainConfig's defaults: a space's own defaults for the training fields it shares."""


CHECK_PACKAGES = contextvars.ContextVar("slmray_space_check_packages", default=True)
"""Whether a space asks this Python for the packages only a trial imports (torchao, liger-kernel,
cut-cross-entropy, transformers, flash_attn): False while `load_space(path, packages=False)` reads a
space planned here and run elsewhere (a dry run on a laptop)."""


class SpaceError(UserError):
    """A search-space file that cannot be used: `<file>: <field>: <what is wrong>`."""


@dataclass(frozen=True)
class Trial:
    """One point of the space: the swept values (`CONFIG_KEYS`), what Tune's config holds."""

    model: str
    per_device_batch: int
    num_gpus: int
    attention: str
    strategy: str
    gpu_type: str | None
    compile: bool
    seq_len: int | None = None
    """None (configurations of sweeps begun before it was swept): the space's only value."""
    activation_checkpointing: bool | None = None
    precision: str = DEFAULT["precision"]
    loss_kernel: str = DEFAULT["loss_kernel"]
    backend: str = DEFAULT["backend"]

    def as_config(self) -> dict[str, Any]:
        """The swept values as a Tune config."""
        return {k: getattr(self, k) for k in CONFIG_KEYS}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Trial:
        return cls(**{k: config[k] for k in CONFIG_KEYS if k in config})

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Trial:
        """The configuration a results row measured, as the space named it (its GPU type as asked,
        `requested_gpu_type`, not the one it was planned on)."""
        return cls.from_config({**row, "gpu_type": row.get("requested_gpu_type")})


@dataclass(frozen=True)
class ResolvedTrial:
    """A trial with what its space adds, resolved once (`SearchSpace.resolve`): the TrainConfig
    its workers run and the GPUs it runs on.  The plan, the estimate, the warm pool and the
    trial's row read this one object; Tune keeps the plain `trial.as_config()`."""

    trial: Trial
    train: TrainConfig

    @property
    def num_gpus(self) -> int:
        return self.trial.num_gpus

    @property
    def gpu_type(self) -> str | None:
        """The GPU type the space asked for; None: any the cluster has."""
        return self.trial.gpu_type

    @property
    def steps_run(self) -> int:
        """Every step the trial runs: its warm-up and each repeat's measured steps."""
        return self.train.warmup_steps + self.train.steps * self.train.repeats


def _as_list(name: str, value: Any) -> list:
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise ConfigError(f"{name}: must list at least one value")
    if len(set(map(repr, values))) != len(values):
        raise ConfigError(f"{name}: lists a value twice")
    return values


@dataclass(frozen=True)
class SearchSpace:
    model: list[str]
    """Preset names (`python -m slmray.train --list-models`), Hugging Face config.json paths (or
    directories holding one), hub ids, or ModelConfig objects; all but presets are resolved to
    ModelConfig objects when the space is made (`slmray.train.presets.get_model`)."""
    per_device_batch: list[int] | dict[str, list[int]]
    """Batches for every model, or {model: batches} (grid search only): the batch that fits, or
    pays, differs by model."""
    num_gpus: list[int]
    """GPUs per trial (Ray Train workers, one GPU each); CPU processes on a CPU-only machine."""
    attention: list[str]
    strategy: list[str]
    gpu_type: list[str] | None = None
    """Canonical GPU names (`H100-80GB`, `A100-40GB`...); None runs on whatever GPUs the cluster has."""
    compile: list[bool] = field(default_factory=lambda: [False])
    seq_len: int | list[int] = DEFAULT["seq_len"]
    """One sequence length, or a list to sweep."""
    steps: int = DEFAULT["steps"]
    warmup_steps: int = DEFAULT["warmup_steps"]
    repeats: int = DEFAULT["repeats"]
    grad_accum: int = DEFAULT["grad_accum"]
    activation_checkpointing: bool | list[bool] = DEFAULT["activation_checkpointing"]
    """One setting, or [False, True] to sweep it."""
    precision: str | list[str] = DEFAULT["precision"]
    """bf16, fp8 (torchao's tensorwise recipe), fp8-rowwise, or a list of them: FP8 needs torchao
    (`slmray[fp8]`) and GPUs with FP8 tensor cores (the gpus.csv rows with an FP8 peak)."""
    loss_kernel: str | list[str] = DEFAULT["loss_kernel"]
    """standard, chunked, liger, cce (`slmray.train.loss`), or a list of them: liger and cce need a GPU
    and their package (liger-kernel, cut-cross-entropy)."""
    backend: str | list[str] = DEFAULT["backend"]
    """native, transformers (the same shape through `transformers.AutoModelForCausalLM`), or both."""
    data: str = DEFAULT["data"]
    device: str = DEFAULT["device"]
    """auto: GPUs where the cluster has them, else CPU processes with gloo."""
    search: str = "grid"
    objectives: list[str] = field(default_factory=lambda: ["max:tokens_per_s"])
    num_samples: int | None = None
    """Optuna trials (default: a third of the grid); grid search runs every point."""
    sampler: str = "tpe"
    """Optuna sampler: tpe, nsga2 (multi-objective) or random."""
    max_concurrent: int | None = None
    """Cap on trials running at once; default: as many as the GPUs fit."""
    seed: int = DEFAULT["seed"]
    max_failures: int = 1
    """Ray Train retries of a crashed worker group before the trial is recorded as failed."""
    prices: str = "local"
    """Price profile for cost columns: local (costs 0), aws, aws-spot, aws-capacity-block, gcp, gcp-spot, lambda, paper."""

    def __post_init__(self) -> None:
        """Each rule in turn, in the order a user fixes them: the first broken one raises."""
        for rule in (
            self._lists, self._models, self._sizes, self._flags_and_precisions, self._loss_and_backend,
            self._attention_and_strategy,
            self._gpu_types, self._compile_and_device, self._search, self._objectives, self._limits, self._trainer_rules,
        ):
            rule()

    def _lists(self) -> None:
        """Swept fields as lists, none empty and none naming a value twice."""
        for name in LISTS:
            object.__setattr__(self, name, _as_list(name, getattr(self, name)))
        if isinstance(self.per_device_batch, dict):
            batches = {k: _as_list(f"per_device_batch[{k!r}]", v) for k, v in self.per_device_batch.items()}
            object.__setattr__(self, "per_device_batch", batches)
        else:
            object.__setattr__(self, "per_device_batch", _as_list("per_device_batch", self.per_device_batch))
        for name in LISTABLE:
            _as_list(name, getattr(self, name))  # checks a list is not empty and lists nothing twice
        if self.gpu_type is not None:
            object.__setattr__(self, "gpu_type", _as_list("gpu_type", self.gpu_type))
        object.__setattr__(self, "objectives", _as_list("objectives", self.objectives))

    def _models(self) -> None:
        """Known models (a config.json path or hub id becomes its ModelConfig here, once: the trials
        carry its name), and a batch list per model naming exactly the space's models."""
        resolved = {m: get_model(m) for m in self.model if not isinstance(m, ModelConfig) and m not in PRESETS}
        object.__setattr__(self, "model", [resolved.get(m, m) if isinstance(m, str) else m for m in self.model])
        names = self.model_names
        for name in names:
            if names.count(name) > 1:  # trials and rows know a model by its name alone
                raise ConfigError(f"model: two models are named {name!r}; give each its own name")
        for m in self.model:
            if isinstance(m, ModelConfig) and m.name in PRESETS and m != PRESETS[m.name]:
                raise ConfigError(f"model: a ModelConfig named {m.name!r} differs from the preset of that name "
                                  "(rows and the planner would read it as the preset); give it a name of its own")
        if not isinstance(self.per_device_batch, dict):
            return
        if resolved:
            renamed = {(resolved[k].name if k in resolved else k): v for k, v in self.per_device_batch.items()}
            object.__setattr__(self, "per_device_batch", renamed)
        if self.search != "grid":
            raise ConfigError("per_device_batch: a batch list per model needs search='grid' (a sampler "
                              "would pair models with batches the space does not list)")
        for k in self.per_device_batch:
            if k not in names:
                raise ConfigError(f"per_device_batch: {k!r} is not one of the space's models ({', '.join(names)})")
        for k in names:
            if k not in self.per_device_batch:
                raise ConfigError(f"per_device_batch: lists no batch for model {k!r}")

    def _sizes(self) -> None:
        """Batches, GPU counts and sequence lengths positive whole numbers."""
        for name, values in (("per_device_batch", self.batches()), ("num_gpus", self.num_gpus),
                             ("seq_len", self.values("seq_len"))):
            for v in values:
                check_positive_int(name, v)

    def _flags_and_precisions(self) -> None:
        """Checkpointing true or false; precisions known, FP8 ones with torchao installed."""
        for v in self.values("activation_checkpointing"):
            if not isinstance(v, bool):
                raise ConfigError(f"activation_checkpointing: {v!r} is not true or false")
        for v in self.values("precision"):
            if v not in PRECISIONS:
                raise ConfigError(f"precision: {v!r} is not one of {', '.join(PRECISIONS)}")
            if is_fp8(v) and CHECK_PACKAGES.get() and not fp8.torchao_available():
                raise ConfigError(f"precision: {v} needs torchao (pip install 'slmray[fp8]')")

    def _loss_and_backend(self) -> None:
        """Loss kernels known and installed (the fused ones GPU only); backends known, transformers installed."""
        for k in self.values("loss_kernel"):
            check_loss_kernel(k, "device is cpu" if self.device == "cpu" else None, need_package=CHECK_PACKAGES.get())
        for b in self.values("backend"):
            if b not in BACKENDS:
                raise ConfigError(f"backend: {b!r} is not one of {', '.join(BACKENDS)}")
            if b == "transformers" and CHECK_PACKAGES.get() and importlib.util.find_spec("transformers") is None:
                raise ConfigError("backend: transformers needs the transformers package (pip install 'slmray[hf]')")
            for m in self.model:
                if isinstance(m, ModelConfig):  # a preset is a native layout
                    check_backend(m, b)

    def _attention_and_strategy(self) -> None:
        """Installed attention backends; known strategies, `single` on one GPU only."""
        for a in self.attention:
            if a not in (installed_attention() if CHECK_PACKAGES.get() else ATTENTION_BACKENDS):
                hint = " (flash2 needs: pip install 'slmray[flash]')" if a == "flash2" else ""
                raise ConfigError(f"attention: {a!r} is not an installed backend ({', '.join(installed_attention())}){hint}")
        for s in self.strategy:
            if s not in STRATEGIES:
                raise ConfigError(f"strategy: {s!r} is not one of {', '.join(STRATEGIES)}")
        if "single" in self.strategy and max(self.num_gpus) > 1:
            raise ConfigError("strategy: single runs on one GPU, but num_gpus goes up to "
                              f"{max(self.num_gpus)}; use ddp, fsdp or fsdp_grad_op")

    def _gpu_types(self) -> None:
        """Known GPU types; FP8 only on GPUs with FP8 tensor cores."""
        known_gpus = [s.gpu for s in gpu_specs()]
        for g in self.gpu_type or []:
            if g not in known_gpus:
                near = [s.gpu for s in gpu_specs() if s.gpu.lower().startswith(str(g).lower())] or [
                    s.gpu for s in gpu_specs() if re.search(s.name_regex, str(g), re.IGNORECASE)]
                mean = f"did you mean {' or '.join(near)}? " if near else ""
                raise ConfigError(f"gpu_type: {g!r} is not a known GPU ({mean}known: {', '.join(known_gpus)})")
        fp8_precisions = [v for v in self.values("precision") if is_fp8(v)]
        if fp8_precisions:
            lacking = [g for g in self.gpu_type or [] if spec_for(g).peak_fp8_tflops is None]
            if lacking:
                raise ConfigError(f"precision: {fp8_precisions[0]} needs FP8 tensor cores, which {', '.join(lacking)} "
                                  "lacks (gpus.csv has no FP8 peak for it); sweep it in bf16 in a space of its own")
            if self.device == "cpu":
                raise ConfigError(f"precision: {fp8_precisions[0]} needs GPUs with FP8 tensor cores; device is cpu")

    def _compile_and_device(self) -> None:
        """Compile true or false; a known device, and on the CPU the attention it runs."""
        for c in self.compile:
            if not isinstance(c, bool):
                raise ConfigError(f"compile: {c!r} is not true or false")
        if self.device not in DEVICES:
            raise ConfigError(f"device: {self.device!r} is not one of {', '.join(DEVICES)}")
        if self.device == "cpu":
            for a in self.attention:
                if a not in CPU_ATTENTION:
                    raise ConfigError(f"attention: {a} needs a CUDA GPU; a CPU sweep can use {', '.join(CPU_ATTENTION)}")

    def _search(self) -> None:
        """A known search and Optuna sampler."""
        if self.search not in SEARCHES:
            raise ConfigError(f"search: {self.search!r} is not one of {', '.join(SEARCHES)}")
        if self.sampler not in OPTUNA_SAMPLERS:
            raise ConfigError(f"sampler: {self.sampler!r} is not one of {', '.join(OPTUNA_SAMPLERS)}")

    def _objectives(self) -> None:
        """Objectives that parse and name results columns, each column once."""
        try:
            objectives = self.objective_list
        except ObjectiveError as exc:
            raise ConfigError(f"objectives: {exc}") from None
        if len({o.column for o in objectives}) != len(objectives):
            raise ConfigError("objectives: names a column twice")

    def _limits(self) -> None:
        """Trial counts and retries: positive where given (retries may be 0); a known price profile."""
        for name in ("num_samples", "max_concurrent"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        check_positive_int("max_failures", self.max_failures, zero_ok=True)
        if self.prices not in profiles():
            raise ConfigError(f"prices: {self.prices!r} is not a price profile ({', '.join(profiles())})")

    def _trainer_rules(self) -> None:
        """A TrainConfig per model and sequence length checks seq_len, steps and the rest as the
        trainer does (in bf16 with plain SDPA and the standard loss on the CPU: precision, attention,
        loss kernel and device are checked above for the devices the space runs on)."""
        first = self.trials()[0]
        for name in self.model_names:
            for seq in self.values("seq_len"):
                point = {**first.__dict__, "model": name, "seq_len": seq, "precision": "bf16", "loss_kernel": "standard",
                         "attention": "sdpa", "per_device_batch": self.batches(name)[0]}
                self.train_config(Trial(**point), device="cpu")

    @property
    def model_names(self) -> list[str]:
        return [m.name if isinstance(m, ModelConfig) else m for m in self.model]

    def values(self, name: str) -> list:
        """The values of a field that is one value or a list (`LISTABLE`), as a list."""
        value = getattr(self, name)
        return list(value) if isinstance(value, (list, tuple)) else [value]

    def batches(self, model: str | None = None) -> list[int]:
        """The per-device batches of `model`; without one, every batch the space names."""
        if not isinstance(self.per_device_batch, dict):
            return self.per_device_batch
        if model is not None:
            return self.per_device_batch[model]
        return sorted({b for bs in self.per_device_batch.values() for b in bs})

    @property
    def objective_list(self) -> list[Objective]:
        return [Objective.parse(o, OBJECTIVE_COLUMNS) for o in self.objectives]

    def model_config(self, model: str) -> ModelConfig:
        for m in self.model:
            if isinstance(m, ModelConfig) and m.name == model:
                return m
        return PRESETS[model]

    def trials(self) -> list[Trial]:
        """Every point of the grid, in a stable order (the order the grid search runs them)."""
        return [
            Trial(model=m, per_device_batch=b, num_gpus=n, attention=a, strategy=s, gpu_type=g, compile=c,
                  seq_len=t, activation_checkpointing=ac, precision=p, loss_kernel=lk, backend=be)
            for m in self.model_names
            for g, n, s, a, b, c, t, ac, p, lk, be in itertools.product(
                self.gpu_type or [None], self.num_gpus, self.strategy, self.attention, self.batches(m), self.compile,
                self.values("seq_len"), self.values("activation_checkpointing"), self.values("precision"),
                self.values("loss_kernel"), self.values("backend"),
            )
        ]

    def default_num_samples(self) -> int:
        return self.num_samples or max(1, math.ceil(len(self.trials()) / 3))

    def resolve(self, trial: Trial | dict[str, Any], device: str) -> ResolvedTrial:
        """A trial (or its Tune config) with its TrainConfig on `device` (cuda, cpu)."""
        trial = trial if isinstance(trial, Trial) else Trial.from_config(trial)
        return ResolvedTrial(trial=trial, train=self.train_config(trial, device))

    def train_config(self, trial: Trial, device: str) -> TrainConfig:
        """What a trial runs: its swept values, the space's fixed ones, and for a configuration of a
        sweep begun before a field was swept (None there), the space's only value of it."""
        row = {**trial.as_config(), **{name: getattr(self, name) for name in FIXED}}
        for name in ("seq_len", "activation_checkpointing"):
            if row[name] is None:
                row[name] = self.values(name)[0]
        return TrainConfig.from_row(row, self.model_config(trial.model), device=device)

    def choices(self) -> dict[str, list]:
        """The swept dimensions and their values, for a sampler."""
        return {
            "model": self.model_names, "per_device_batch": self.per_device_batch, "num_gpus": self.num_gpus,
            "attention": self.attention, "strategy": self.strategy, "gpu_type": self.gpu_type or [None],
            "compile": self.compile, **{k: self.values(k) for k in LISTABLE},
        }


def _did_you_mean(exc: TypeError) -> str:
    """`; did you mean 'per_device_batch'?` for a misspelt SearchSpace field, else ''."""
    unknown = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
    close = difflib.get_close_matches(unknown[1], [f.name for f in fields(SearchSpace)], n=1) if unknown else []
    return f"; did you mean {close[0]!r}?" if close else ""


def load_space(path: str, packages: bool = True) -> SearchSpace:
    """Import a search-space file and return its `SPACE`; every error names the file.  `packages`:
    False for a space planned here to run elsewhere (`CHECK_PACKAGES`)."""
    file = Path(path)
    if not file.is_file():
        raise SpaceError(f"{path}: no such search-space file")
    if file.suffix != ".py":
        raise SpaceError(f"{path}: a search space is a Python file (.py) defining SPACE = SearchSpace(...), "
                         "as in search_spaces/")
    spec = importlib.util.spec_from_file_location(f"slmray_space_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    token = CHECK_PACKAGES.set(packages)
    try:
        spec.loader.exec_module(module)
    except ConfigError as exc:
        raise SpaceError(f"{path}: {exc}") from None
    except TypeError as exc:  # an unknown or missing SearchSpace argument
        raise SpaceError(f"{path}: {str(exc).replace('SearchSpace.__init__() ', '')}{_did_you_mean(exc)}") from None
    except SyntaxError as exc:
        raise SpaceError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    except Exception as exc:
        raise SpaceError(f"{path}: {type(exc).__name__}: {exc}") from None
    except SystemExit as exc:  # the file called sys.exit: not the sweep's exit to take
        raise SpaceError(f"{path}: the file called sys.exit({exc.code!r}) while it was read") from None
    finally:
        CHECK_PACKAGES.reset(token)
    space = getattr(module, "SPACE", None)
    if not isinstance(space, SearchSpace):
        raise SpaceError(f"{path}: SPACE: the file must define SPACE = SearchSpace(...)")
    return space

