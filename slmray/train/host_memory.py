"""Whether a CPU run's training state fits this machine's free memory, asked before the model is
built.  A GPU run that does not fit raises CUDA's out-of-memory error, which the loop records as
status `oom`; a CPU run that does not fit is killed by the kernel's OOM killer (SIGKILL, no
message, no row), so the loop asks first and records the same status with the numbers.

The state counted is the least any step needs: fp32 weights, their gradients and AdamW's two
moments, 16 bytes a parameter (FSDP: a 1/world share of them in each process), in every process
of this host.  Activations come on top, so a run refused here could never have fitted.
"""

from __future__ import annotations

import os
from pathlib import Path

BYTES_PER_PARAM = 16
"""fp32 weight, gradient, AdamW exp_avg and exp_avg_sq."""
GIB = 1 << 30


def available_bytes() -> int | None:
    """Memory this process may still take: the kernel's MemAvailable, capped by the cgroup's limit
    (a container's) where one is set; None where neither can be read."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            found.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def training_state_bytes(num_params: int, world_size: int, sharded: bool, processes_here: int) -> int:
    """The state of every process of this host together (see the module's docstring)."""
    per_process = BYTES_PER_PARAM * num_params / (world_size if sharded else 1)
    return int(per_process * processes_here)


def shortfall(num_params: int, world_size: int, sharded: bool) -> str | None:
    """The out-of-memory message of a CPU run whose state cannot fit, or None where it can (or
    where the free memory cannot be read)."""
    processes_here = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    need = training_state_bytes(num_params, world_size, sharded, processes_here)
    free = available_bytes()
    if free is None or need <= free:
        return None
    who = "needs" if processes_here == 1 else f"needs, over its {processes_here} processes here,"
    return (f"out of memory: the run {who} at least {need / GIB:.1f} GiB for weights, gradients and AdamW's states "
            f"({BYTES_PER_PARAM} bytes a parameter{', sharded' if sharded else ''}; activations come on top) and this "
            f"machine has {max(free, 0) / GIB:.1f} GiB free: not started")
