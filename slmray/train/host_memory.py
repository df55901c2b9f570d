"""Whether a CPU run's training state fits this machine's free memory, asked before the model is
built.  A GPU run that does not fit raises CUDA's out-of-memory error, which the loop records as
status `oom`; a CPU run that does not fit is killed by the kernel's OOM killer (SIGKILL, no
message, no row), so the loop asks first and records the same status with the numbers.

The state counted is the least any step needs: fp32 weights, their gradients and AdamW's two
moments, 16 bytes a parameter (FSDP: a 1/world share of them in each process, but no less than
the whole fp32 model each process builds before it is sharded), in every process of this host.
Activations come on top, so a run refused here could never have fitted.  Concurrent runs (CPU
trials of one sweep) each see the same free memory: together they can still exceed it.
"""

from __future__ import annotations

import os
from pathlib import Path

BYTES_PER_PARAM = 16
"""fp32 weight, gradient, AdamW exp_avg and exp_avg_sq."""
FP32_BYTES = 4
NO_LIMIT = 1 << 60
"""A cgroup limit at or above this is none (v1 writes 2^63 rounded down to a page)."""
GIB = 1 << 30


def available_bytes(proc: Path = Path("/proc"), cgroup: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Memory this process may take at most: the kernel's MemAvailable (free memory and the page
    cache it can reclaim), capped by the memory limit of the process's cgroup or any cgroup above
    it (a container's, a Slurm job's; cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`); None
    where neither can be read.  A limit, not the limit less its usage: usage counts page cache the
    kernel would reclaim, and a run is refused here only where it could never fit."""
    found = []
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    limits = [_limit(folder / name) for folder, name in _cgroup_folders(proc, cgroup)]
    found += [limit for limit in limits if limit is not None]
    return min(found) if found else None


def _cgroup_folders(proc: Path, cgroup: Path) -> list[tuple[Path, str]]:
    """Each cgroup folder from the process's own up to the mount's root, with its limit file's name."""
    try:
        lines = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return []
    folders = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "" and path:  # cgroup v2: the unified hierarchy
            mount, name = cgroup, "memory.max"
        elif "memory" in controllers.split(","):
            mount, name = cgroup / "memory", "memory.limit_in_bytes"
        else:
            continue
        own = mount / path.lstrip("/")
        folders += [(folder, name) for folder in (own, *own.parents) if folder.is_relative_to(mount)]
    return folders


def _limit(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit() or int(text) >= NO_LIMIT:  # "max": none
        return None
    return int(text)


def training_state_bytes(num_params: int, world_size: int, sharded: bool, processes_here: int) -> int:
    """The state of every process of this host together (see the module's docstring): a sharded
    process holds its share, but the whole fp32 model for a moment, as it builds it to shard it."""
    per_process = BYTES_PER_PARAM * num_params
    if sharded:
        per_process = max(per_process / world_size, FP32_BYTES * num_params)
    return int(per_process * processes_here)


def shortfall(num_params: int, world_size: int, sharded: bool) -> str | None:
    """The out-of-memory message of a CPU run whose state cannot fit, or None where it can (or
    where the free memory cannot be read)."""
    processes_here = int(os.environ.get("LOCAL_WORLD_SIZE", 1))  # torchrun and Ray Train set it; else count this one
    need = training_state_bytes(num_params, world_size, sharded, processes_here)
    free = available_bytes()
    if free is None or need <= free:
        return None
    who = "needs" if processes_here == 1 else f"needs, over its {processes_here} processes here,"
    return (f"out of memory: the run {who} at least {need / GIB:.1f} GiB for weights, gradients and AdamW's states "
            f"({BYTES_PER_PARAM} bytes a parameter{', sharded' if sharded else ''}; activations come on top) and this "
            f"machine (or its container) has {free / GIB:.1f} GiB free: not started")
