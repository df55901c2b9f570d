"""Cloud instance types and the GPUs in them (`instances.csv`, each row with its source).

Hardware facts only; what an instance costs is in the price catalog (`prices.py`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

from slmray.catalog.tables import read_records


@dataclass(frozen=True)
class InstanceType:
    provider: str
    instance_type: str
    gpu: str
    """Canonical GPU name, as in gpus.csv."""
    gpus: int
    vcpus: int
    memory_gib: int
    network_gbps: float
    """Bandwidth between instances (EFA where the instance has it)."""
    fabric: str
    """efa (RDMA, where the source names EFA) or ethernet (NCCL over TCP sockets)."""
    source: str


@functools.cache
def instance_types() -> tuple[InstanceType, ...]:
    return read_records(resources.files("slmray.catalog") / "instances.csv", InstanceType)


def instance(provider: str, instance_type: str) -> InstanceType | None:
    for it in instance_types():
        if it.provider == provider and it.instance_type == instance_type:
            return it
    return None
