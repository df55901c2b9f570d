"""What a sweep can run on: GPUs by type, GPUs per node, or CPU processes.

Read from the local machine (no cluster), from a running Ray cluster's nodes, and from an
autoscaling cluster's node types (its YAML), because an autoscaling cluster starts with no
GPU node at all.  A search space is checked against it before anything starts: Ray would
otherwise wait forever for a worker group the cluster can never hold.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from dataclasses import dataclass, field

from slmray.catalog.gpus import CPU, canonical_gpu, gpu_specs, spec_for
from slmray.catalog.instances import instance_types
from slmray.cluster.files import ClusterError, load_cluster
from slmray.errors import ConfigError
from slmray.sweep.space import SearchSpace
from slmray.train.config import CPU_ATTENTION, check_loss_kernel, is_fp8

BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"
"""Where `ray up` leaves the cluster's config on the head node."""


@dataclass(frozen=True)
class Capacity:
    use_gpu: bool
    gpus: dict[str, int] = field(default_factory=dict)
    """Canonical GPU type -> the most GPUs of that type the cluster can have at once."""
    gpus_per_node: dict[str, int] = field(default_factory=dict)
    cpus: int = 1
    where: str = "this machine"
    nodes_given: bool = True
    """True for nodes that are there (this machine, a cluster or its YAML): the sweep's trials share
    them and each is charged its GPUs at their rate (`slmray.catalog.rent.cluster_share`).  False for
    hosts assumed from the instance catalog (`named_capacity`, a dry run from a laptop): each
    trial is priced at the instances that would rent it on its own (`slmray.catalog.rent.rent`)."""

    @property
    def device(self) -> str:
        """What a trial's TrainConfig runs on here: cuda, or cpu."""
        return "cuda" if self.use_gpu else "cpu"

    @property
    def gpu_types(self) -> list[str]:
        return sorted(self.gpus)

    def device_type(self, requested: str | None) -> str | None:
        """The GPU type a trial runs on: the one asked for, or the cluster's only one, or cpu;
        None where it may run on any of several types (not known until it runs)."""
        if not self.use_gpu:
            return CPU
        if requested:
            return requested
        return self.gpu_types[0] if len(self.gpus) == 1 else None

    def max_workers(self, gpu_type: str | None) -> int:
        if not self.use_gpu:
            return self.cpus
        if gpu_type:
            return self.gpus.get(gpu_type, 0)
        return sum(self.gpus.values())

    def check(self, space: SearchSpace) -> None:
        """A space this capacity can run; ConfigError naming the field otherwise."""
        if space.device == "cuda" and not self.use_gpu:
            raise ConfigError(f"device: cuda was asked for but {self.where} has no GPU")
        if not self.use_gpu and space.gpu_type:
            raise ConfigError(f"gpu_type: {', '.join(space.gpu_type)} asked for, but {self.where} has no GPU")
        for g in space.gpu_type or []:
            if g not in self.gpus:
                have = ", ".join(self.gpu_types) or "none"
                raise ConfigError(f"gpu_type: {g} is not in {self.where} (it has: {have})")
        if not self.use_gpu:
            for a in space.attention:
                if a not in CPU_ATTENTION:
                    raise ConfigError(f"attention: {a} needs a CUDA GPU and {self.where} has none")
            for k in space.values("loss_kernel"):
                check_loss_kernel(k, f"{self.where} has none")
        fp8_precisions = [p for p in space.values("precision") if is_fp8(p)]
        if fp8_precisions:
            if not self.use_gpu:
                raise ConfigError(f"precision: {fp8_precisions[0]} needs GPUs with FP8 tensor cores and {self.where} has none")
            lacking = [g for g in space.gpu_type or self.gpu_types if not (spec_for(g) and spec_for(g).peak_fp8_tflops)]
            if lacking:
                raise ConfigError(f"precision: {fp8_precisions[0]} needs FP8 tensor cores, which {', '.join(lacking)} "
                                  f"in {self.where} lacks")
        for g in space.gpu_type or [None]:
            most = self.max_workers(g)
            for n in space.num_gpus:
                if n > most:
                    unit = f"{g} GPUs" if g else ("GPUs" if self.use_gpu else "CPU worker processes")
                    raise ConfigError(f"num_gpus: {n} is more than the {most} {unit} {self.where} can ever have")


def named_capacity(space: SearchSpace) -> Capacity:
    """The GPUs a space names, for a dry run with no cluster to read (a sweep priced from a laptop):
    of each type, hosts as large as instances.csv's largest with it (a type no instance carries: one
    host of as many as the space asks), as many hosts as the space's largest trial spans."""
    most = max(space.num_gpus)
    gpus, per_node, cpus, hosts = {}, {}, 0, []
    for g in space.gpu_type or []:
        largest = max((it for it in instance_types() if it.gpu == g), key=lambda it: (it.gpus, it.vcpus), default=None)
        per_node[g] = largest.gpus if largest else most
        count = -(-most // per_node[g])
        gpus[g] = count * per_node[g]
        cpus += count * (largest.vcpus if largest else 1)
        hosts.append(f"{count} host{'s' if count > 1 else ''} of {per_node[g]} {g}" if largest
                     else f"{most} {g} on one host (instances.csv has no {g} instance)")
    return Capacity(use_gpu=True, gpus=gpus, gpus_per_node=per_node, cpus=max(cpus, 1),
                    where=f"{', '.join(hosts)} from instances.csv (no cluster checked: give --cluster-config)",
                    nodes_given=False)


GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/kfd")
"""NVIDIA's and AMD's driver device files: without either no process here can reach a GPU, and
torch (a second to import) is not asked."""


def local_capacity(device: str = "auto") -> Capacity:
    """This machine alone: its GPUs as torch sees them, or its CPU cores."""
    cpus = os.cpu_count() or 1
    if device == "cpu" or not any(os.path.exists(path) for path in GPU_DEVICE_FILES):
        return Capacity(use_gpu=False, cpus=cpus)
    import torch

    if not torch.cuda.is_available():
        return Capacity(use_gpu=False, cpus=cpus)
    names = Counter(canonical_gpu(torch.cuda.get_device_name(i)) for i in range(torch.cuda.device_count()))
    return Capacity(use_gpu=True, gpus=dict(names), gpus_per_node=dict(names), cpus=cpus)


def _gpu_for_accelerator(resource: str) -> str | None:
    """Ray's accelerator type names the chip, not the part (H100 is SXM, PCIe or NVL): take
    the part with the plainest name pattern, the SXM board that cloud instances carry."""
    ray_type = resource.removeprefix("accelerator_type:")
    parts = [spec for spec in gpu_specs() if spec.ray_accelerator_type == ray_type]
    return min(parts, key=lambda spec: len(spec.name_regex)).gpu if parts else None


def _node_gpus(resources: dict[str, float]) -> tuple[str | None, int]:
    gpus = int(resources.get("GPU", 0))
    types = [_gpu_for_accelerator(k) for k in resources if k.startswith("accelerator_type:")]
    return (types[0] if types else None), gpus


def ray_capacity(device: str = "auto", cluster_yaml: str | None = None) -> Capacity:
    """A running Ray cluster (after `ray.init`): its live nodes, plus, for an autoscaling
    cluster, every worker type at its `max_workers` (from `cluster_yaml`, or the config
    `ray up` left on the head node)."""
    import ray

    gpus: Counter = Counter()
    per_node: dict[str, int] = {}
    cpus = 0
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        res = node.get("Resources", {})
        cpus += int(res.get("CPU", 0))
        gpu, n = _node_gpus(res)
        if n:
            gpu = gpu or "GPU"
            gpus[gpu] += n
            per_node[gpu] = max(per_node.get(gpu, 0), n)
    path = cluster_yaml or os.path.expanduser(BOOTSTRAP_CONFIG)
    if cluster_yaml or os.path.isfile(path):
        try:
            scaled = capacity_from_yaml(path, device)
        except ClusterError as exc:
            if cluster_yaml:
                raise
            warnings.warn(f"{exc}: planning with the live nodes only", stacklevel=2)
        else:
            cpus = max(cpus, scaled.cpus)
            for gpu, n in scaled.gpus.items():
                gpus[gpu] = max(gpus[gpu], n)
                per_node[gpu] = max(per_node.get(gpu, 0), scaled.gpus_per_node[gpu])
    use_gpu = device != "cpu" and bool(gpus)
    return Capacity(use_gpu=use_gpu, gpus=dict(gpus), gpus_per_node=per_node, cpus=max(cpus, 1), where="the Ray cluster")


def capacity_from_yaml(path: str, device: str = "auto") -> Capacity:
    """An autoscaling cluster's worker types at their max_workers (the file validated first)."""
    spec = load_cluster(path)
    gpus = spec.gpu_capacity()
    use_gpu = device != "cpu" and bool(gpus)
    cpus = sum(nt.cpus * nt.max_workers for nt in spec.workers) or 1
    return Capacity(
        use_gpu=use_gpu, gpus=gpus, gpus_per_node={g: spec.gpus_per_node(g) for g in gpus}, cpus=cpus, where=path,
    )
