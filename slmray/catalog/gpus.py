"""GPU specifications (one table, `gpus.csv`, each row with its source) and device detection.

The GPU model is detected from the device, never configured: MFU and prices key off the
canonical name (`H100-80GB`, `A100-40GB`, ...) that `canonical_gpu` derives from it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from slmray.catalog.tables import CsvError, read_records
from slmray.errors import UserError

CPU = "cpu"


@dataclass(frozen=True)
class GPUSpec:
    gpu: str
    """Canonical name used across slmray (results, prices, cluster files)."""
    name_regex: str
    """Matched, case-insensitively, against the name torch reports."""
    ray_accelerator_type: str
    """Ray's accelerator-type resource for this GPU (`accelerator_type:<X>`)."""
    peak_bf16_tflops: float
    """Dense (no sparsity) BF16 tensor-core peak."""
    peak_fp8_tflops: float | None
    """Dense FP8 tensor-core peak; None for a GPU without FP8 tensor cores (A100, A10G)."""
    memory_gb: float
    hbm_tb_s: float
    link_gb_s: float
    """Per-GPU, one-direction bandwidth to the other GPUs of its node (NVLink or PCIe)."""
    sms: int
    """Streaming multiprocessors: a GEMM's tiles run in waves of this many (the estimator's shape model)."""
    arch: str
    """Architecture generation (hopper, ampere, ada): the row of architectures.csv whose achievable
    shares of peak the estimator uses for a GPU type without a profile."""
    source: str


@dataclass(frozen=True)
class ArchSpec:
    """What kernels reach on one architecture generation, as a share of its datasheet peak,
    measured by others on their best shapes (each row with its source)."""

    arch: str
    matmul_share: float
    """Best bf16 GEMM rate over the dense bf16 peak."""
    attention_share: float
    """Fused attention (FlashAttention-2, what PyTorch's SDPA runs), forward and backward, over the
    dense bf16 peak."""
    step_rate_scale: float
    """A whole step's rate on this architecture over what the estimator's path predicts for it
    once the shares are applied: fitted on published same-code cross-GPU ratios where there are
    some (`benchmarks/multi_gpu_anchors.py --fit`), 1 where there are none."""
    source: str


ARCH_POSITIVE = ("matmul_share", "attention_share", "step_rate_scale")
"""Columns of architectures.csv that divide a time: each must be a positive number."""


def read_arch_specs(path: Any) -> dict[str, ArchSpec]:
    """The rows of an architectures.csv file by architecture; a value that is missing, zero,
    negative or NaN is one line naming the file, the column and the row."""
    specs = read_records(path, ArchSpec)
    name = getattr(path, "name", str(path))
    for row, spec in enumerate(specs, start=1):
        for column in ARCH_POSITIVE:
            value = getattr(spec, column)
            if not value > 0:  # also NaN
                raise CsvError(f"{name}: {column}: row {row}: {value!r} is not a positive number")
    return {a.arch: a for a in specs}


@functools.cache
def arch_specs() -> dict[str, ArchSpec]:
    return read_arch_specs(resources.files("slmray.catalog") / "architectures.csv")


@functools.cache
def gpu_specs() -> tuple[GPUSpec, ...]:
    """Rows of gpus.csv, most specific first (H100 PCIe before plain H100)."""
    return read_records(resources.files("slmray.catalog") / "gpus.csv", GPUSpec)


def spec_for(name: str) -> GPUSpec | None:
    """The spec for a canonical name (`H100-80GB`) or a name as torch reports it; None if unknown."""
    for spec in gpu_specs():
        if name == spec.gpu:
            return spec
    for spec in gpu_specs():
        if re.search(spec.name_regex, name, flags=re.IGNORECASE):
            return spec
    return None


TORCH_NAME_PREFIXES = ("NVIDIA ", "TESLA ")
"""How the device names torch reports start (`NVIDIA H100 80GB HBM3`, `Tesla V100-SXM2-16GB`)."""


class GPUNameError(UserError):
    """A GPU name a user typed that reads as a catalog GPU without being one of its names."""


def named_gpu(name: str) -> str | None:
    """The catalog GPU a name a user typed means: a canonical name in any case (`h100-80gb`), `cpu`,
    or a device name as torch reports it (`NVIDIA H100 80GB HBM3`); None for a GPU the catalog has
    not (`NVIDIA B200`).  A name that is none of these yet matches a catalog GPU's pattern
    (`H100-90GB`, `A100`) is a GPUNameError: the patterns read torch's names, and would take a typo
    for a GPU the user may not mean."""
    name = name.strip()
    if name.lower() == CPU:
        return CPU
    known = [s.gpu for s in gpu_specs()]
    exact = [g for g in known if g.lower() == name.lower()]
    if exact:
        return exact[0]
    spec = spec_for(name)
    if spec is None:
        return None
    if name.upper().startswith(TORCH_NAME_PREFIXES):
        return spec.gpu
    raise GPUNameError(f"{name!r} is not a catalog name (did you mean {spec.gpu}?); give one of {', '.join(known)}, "
                       "cpu, or the name torch reports (e.g. 'NVIDIA H100 80GB HBM3')")


def canonical_gpu(device_name: str) -> str:
    """`NVIDIA H100 80GB HBM3` -> `H100-80GB`; an unknown GPU keeps the name torch gave it."""
    if device_name == CPU:
        return CPU
    spec = spec_for(device_name)
    return spec.gpu if spec else device_name


def detect_device_name(device_type: str) -> str:
    """The name torch reports for the current device, or `cpu`."""
    if device_type != "cuda":
        return CPU
    import torch

    return torch.cuda.get_device_name(torch.cuda.current_device())
