"""Process groups and the wrapping of a single-device model for DDP or FSDP2.

Applied from outside the model, in torchtitan's order (`parallelize.py`): FP8 conversion of
the Linear layers (its model converters run first), activation checkpointing, then compile,
then FSDP per block, then the root.  The model module knows nothing of this.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
import socket
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.distributed.device_mesh import init_device_mesh
from torch.nn.parallel import DistributedDataParallel

from slmray.errors import ConfigError
from slmray.private_apis import checkpoint_wrapper
from slmray.train import fp8


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    device: torch.device
    owns_group: bool
    """True when `setup` created the process group (and `teardown` must destroy it)."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(device: str, strategy: str) -> DistEnv:
    """Join the process group a launcher made (Ray Train, torchrun), or make a one-process one.

    Ray Train creates the group and sets the current CUDA device itself; torchrun only sets
    RANK / WORLD_SIZE / LOCAL_RANK.  A lone process running ddp or fsdp gets a world of 1.
    """
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for but torch sees no GPU")
    backend = "nccl" if use_cuda else "gloo"
    owns = False
    if not dist.is_initialized():
        if use_cuda and "LOCAL_RANK" in os.environ:
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        if "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ:
            dist.init_process_group(backend)
            owns = True
        elif strategy != "single":
            dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
            owns = True
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    if strategy == "single" and world > 1:
        raise ConfigError(f"strategy: single runs one process, but {world} were started; use ddp or fsdp")
    dev = torch.device("cuda", torch.cuda.current_device()) if use_cuda else torch.device("cpu")
    return DistEnv(rank=rank, world_size=world, device=dev, owns_group=owns)


def teardown(env: DistEnv) -> None:
    if env.owns_group and dist.is_initialized():
        if env.world_size > 1:
            dist.barrier()  # no rank destroys the group while a peer still talks to it
        dist.destroy_process_group()
        # FSDP state keeps the group alive in reference cycles; freeing them now joins gloo's
        # worker threads while Python still runs (one that drops a tensor during interpreter
        # shutdown aborts the process: seen in about 1 in 15 two-rank CPU runs)
        gc.collect()


# The only buffers are the rotary tables, equal on every rank: no need to broadcast them each
# forward.  torch 2.13 renamed the switch; the GPU image's torch 2.11 knows only the old one.
_NO_BUFFER_SYNC = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    else {"broadcast_buffers": False}
)


def parallelize(
    model: nn.Module, strategy: str, env: DistEnv, *, compile: bool, activation_checkpointing: bool,
    precision: str = "bf16", emulate_fp8: bool = False,
) -> tuple[nn.Module, torch.dtype | None]:
    """Wrap `model` (already on `env.device`) in place; returns it and the autocast dtype.

    GPU runs train in bf16: FSDP through its MixedPrecisionPolicy (bf16 parameters in compute,
    fp32 gradient reduction), the others through autocast.  CPU runs stay in fp32.  With an FP8
    `precision` the Linear layers `fp8.convertible` accepts run their GEMMs in FP8 on top of
    that (`fp8.convert`; `emulate_fp8` emulates it, for CPU tests).
    """
    on_gpu = env.device.type == "cuda"
    fp8.convert(model, precision, fsdp=strategy.startswith("fsdp"), emulate=emulate_fp8)
    blocks = model.blocks
    for i, block in enumerate(blocks):
        if activation_checkpointing:
            block = checkpoint_wrapper(block)
        if compile:
            block.compile()
        blocks[i] = block
    if compile:
        model.head.compile()  # fuses the fp32 upcast of the logits into the cross-entropy

    if strategy == "single":
        return model, (torch.bfloat16 if on_gpu else None)
    if strategy == "ddp":
        ddp = DistributedDataParallel(
            model, device_ids=[env.device.index] if on_gpu else None, gradient_as_bucket_view=True, **_NO_BUFFER_SYNC
        )
        return ddp, (torch.bfloat16 if on_gpu else None)
    if strategy in ("fsdp", "fsdp_grad_op"):
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard  # 0.7 s of imports a DDP worker skips

        mesh = init_device_mesh(env.device.type, (env.world_size,))
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if on_gpu else None
        kwargs = {"mesh": mesh, "reshard_after_forward": strategy == "fsdp"}
        if mp is not None:
            kwargs["mp_policy"] = mp
        for block in blocks:
            fully_shard(block, **kwargs)
        fully_shard(model, **kwargs)
        return model, None
    raise ConfigError(f"strategy: unknown strategy {strategy!r}")


def grad_sync(model: nn.Module, enabled: bool):
    """Context in which backward does (or, for accumulation micro-steps, skips) gradient sync."""
    if isinstance(model, DistributedDataParallel) and not enabled:
        return model.no_sync()
    fsdp = sys.modules.get("torch.distributed.fsdp")  # imported by `parallelize` for an FSDP strategy
    if fsdp is not None and isinstance(model, fsdp.FSDPModule):
        model.set_requires_gradient_sync(enabled)
    return contextlib.nullcontext()


def all_reduce(values: list[float], op: str, device: torch.device) -> list[float]:
    """Reduce a list of floats across ranks (`max`, `sum` or `mean`); a no-op without a group."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    reduce_op = {"max": dist.ReduceOp.MAX, "sum": dist.ReduceOp.SUM, "mean": dist.ReduceOp.SUM}[op]
    dist.all_reduce(t, op=reduce_op)
    if op == "mean":
        t /= dist.get_world_size()
    return t.tolist()


def num_nodes(node_id: str) -> int:
    """Distinct nodes in the process group, each rank naming its own (host name, Ray node id)."""
    if not dist.is_initialized():
        return 1
    ids: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(ids, node_id)
    return len(set(ids))
