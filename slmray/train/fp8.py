"""FP8 training through `torchao.float8`, applied to a built model from outside (parallel.py
calls `convert` before activation checkpointing, compile and FSDP, as torchtitan's float8
converter does); the model knows nothing of it.

torchao is imported only when FP8 is asked for: it is the optional extra `slmray[fp8]`.

    fp8           torchao's "tensorwise" recipe: one dynamic scale per tensor, every GEMM in FP8
    fp8-rowwise   its "rowwise" recipe: a scale per row, more accurate, slower kernels
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
from typing import TYPE_CHECKING, Iterator

from slmray.errors import ConfigError
from slmray.train.config import is_fp8

if TYPE_CHECKING:  # torch is imported where a model is converted: the planner reads this module without it
    import torch
    import torch.nn as nn

RECIPES = {"fp8": "tensorwise", "fp8-rowwise": "rowwise"}
"""slmray precision -> torchao `Float8LinearRecipeName`."""
FP8_CAPABILITY = (8, 9)
"""FP8 tensor cores: Ada (L4, L40S; sm_89), Hopper (H100, H200; sm_90) and later; torchao's
`is_sm_at_least_89` is the same test."""
ALIGNMENT = 16
"""torch._scaled_mm needs both dimensions of each FP8 operand divisible by 16."""


IMPORT_NOISE = ("torchao", "torch.utils._pytree")
"""Loggers that warn while torchao is imported, of nothing a run can act on: torchao of each C++
extension built for another torch (FP8 training here uses none of them), torch of each enum torchao
registers with pytree.  A screen of them came before a run's first line."""


def torchao_available() -> bool:
    return importlib.util.find_spec("torchao") is not None


@contextlib.contextmanager
def quiet_torchao_import() -> Iterator[None]:
    """`IMPORT_NOISE` held to errors while torchao is imported: here around the FP8 conversion,
    and in the transformers backend around building the model (Transformers' torchao quantizer
    imports parts of torchao then)."""
    loggers = [logging.getLogger(name) for name in IMPORT_NOISE]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def check_supported(precision: str, device: str) -> None:
    """A one-line ConfigError naming `precision` unless this process can train in it.

    `device` is the trainer's (auto, cuda, cpu).  Run before anything starts: no process
    group, no model.
    """
    if not is_fp8(precision):
        return
    import torch

    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if not use_cuda:
        raise ConfigError(
            f"precision: {precision} needs a GPU with FP8 tensor cores (H100, H200, L4, L40S, ...); this run is on the CPU"
        )
    if not torch.cuda.is_available():
        return  # device cuda without a GPU: parallel.setup says so
    if torch.cuda.get_device_capability() < FP8_CAPABILITY:
        raise ConfigError(
            f"precision: {precision} needs FP8 tensor cores (compute capability 8.9 or later: H100, H200, L4, L40S, ...); "
            f"{torch.cuda.get_device_name()} has {'.'.join(map(str, torch.cuda.get_device_capability()))}"
        )
    if not torchao_available():
        raise ConfigError(f"precision: {precision} needs torchao: pip install 'slmray[fp8]'")


def convertible(module: nn.Module, fqn: str, blocks: str = "blocks.") -> bool:
    """Which Linear layers run in FP8: those of the transformer blocks whose dimensions FP8
    GEMMs take.  The output head stays bf16 (torchtitan leaves it out too: its fp32 loss follows,
    and its logits' precision matters most); a dimension not divisible by 16 (llama-500m's MLP
    width 4,147, llama-2b's 6,739) would need padding, so that Linear stays bf16.  `blocks`: where the
    blocks are (a Transformers model's decoder layers: `TransformersLM.block_prefix`)."""
    import torch.nn as nn

    return (
        isinstance(module, nn.Linear) and fqn.startswith(blocks)
        and module.in_features % ALIGNMENT == 0 and module.out_features % ALIGNMENT == 0
    )


def convert(model: nn.Module, precision: str, *, fsdp: bool, emulate: bool = False) -> int:
    """Swap the convertible Linear layers of `model` for torchao's Float8Linear, in place;
    returns how many.  `fsdp`: the model is about to be sharded with FSDP2, so tensorwise
    scaling all-gathers the weights in FP8 (torchao's `enable_fsdp_float8_all_gather`; the
    rowwise recipe has no FP8 all-gather).  `emulate`: FP8 casts and GEMMs emulated in higher
    precision, which runs on the CPU (tests only).
    """
    if not is_fp8(precision):
        return 0
    with quiet_torchao_import():
        from torchao.float8 import Float8LinearConfig, convert_to_float8_training

    config = Float8LinearConfig.from_recipe_name(RECIPES[precision])
    config = dataclasses.replace(
        config, enable_fsdp_float8_all_gather=fsdp and precision == "fp8", emulate=emulate
    )
    blocks = getattr(model, "block_prefix", "blocks.")
    convert_to_float8_training(model, module_filter_fn=lambda m, fqn: convertible(m, fqn, blocks), config=config)
    return count(model)


def count(model: nn.Module) -> int:
    """Float8Linear layers in `model` (0 without torchao: then none can be there)."""
    if not torchao_available():
        return 0
    import sys

    if "torchao.float8" not in sys.modules:  # nothing converted in this process
        return 0
    from torchao.float8.float8_linear import Float8Linear

    return sum(isinstance(m, Float8Linear) for m in model.modules())


def register_optimizer_hook(model: nn.Module, optimizer: torch.optim.Optimizer) -> bool:
    """With FP8 all-gather, compute the next step's weight scales for all layers in one fused
    amax after each optimizer step (torchao's `precompute_float8_dynamic_scale_for_fsdp`, as
    torchtitan's float8 converter does); without it each rank would need an all-reduce per
    layer in forward.  Returns whether a hook was registered."""
    import sys

    if "torchao.float8" not in sys.modules:
        return False
    from torch.distributed.tensor import DTensor
    from torchao.float8 import precompute_float8_dynamic_scale_for_fsdp
    from torchao.float8.float8_linear import Float8Linear
    from torchao.float8.fsdp_utils import WeightWithDynamicFloat8CastTensor

    if not any(
        isinstance(m, Float8Linear) and isinstance(m.weight, DTensor)
        and isinstance(m.weight.to_local(), WeightWithDynamicFloat8CastTensor)
        for m in model.modules()
    ):
        return False
    optimizer.register_step_post_hook(lambda *_: precompute_float8_dynamic_scale_for_fsdp(model))
    return True
