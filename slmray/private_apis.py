"""Every Ray, torch and Optuna internal slmray relies on, each here and nowhere else, with why no
public API serves.  `tests/test_private_apis.py` has a test per item that fails the day the
internal changes, and one that no other module imports a private Ray name.

One module below every layer (`tests/test_imports.py`: layer 0), since the internals serve the
cluster files (layer 0), the trainer (1) and the sweep (3); it imports Ray and torch only inside
the function that needs them, so importing it costs nothing.

- `withhold_from_trials`: Ray Tune copies the driver's AWS keys into every trial's runtime
  environment (`ray.tune.execution.class_cache.ENV_VARS_TO_PROPAGATE`), which Ray's runtime-env
  agent writes to its log.  Tune has no option to turn that off: the set itself is edited.
- `stop_tune_gracefully`: Tune stops a run gracefully (state saved, trials stopped) on SIGINT
  unless `TUNE_DISABLE_SIGINT_HANDLER` (documented) is set, and always on SIGUSR1, which is not
  documented.  The sweep handles SIGINT and SIGTERM itself (to say what is left) and passes the
  first one on as SIGUSR1.  Tune has no public call that stops `Tuner.fit()` so that its trials
  resume: a `Stopper`'s `stop_all` ends them as finished, and `--resume` would not run them.
- `ray_cluster_launcher`: `ray up` fills a cluster file's defaults and validates it in
  `ray.autoscaler._private.util` (`prepare_config`, `validate_config`,
  `fill_node_type_min_max_workers`); Ray's public `ray.autoscaler.sdk` only launches clusters,
  with no dry run, so checking a file offline needs these.
- `release_unwaited_collectives`: ProcessGroupNCCL keeps the tensors of collectives nobody
  `wait()`ed on (DDP's gradient buckets) until its next call after its watchdog thread (every
  100 ms) saw them finish (`shelvesToUnstash_` in ProcessGroupNCCL.hpp); torch has no call that
  frees them.  The timing of that watchdog is what this relies on.
- `checkpoint_wrapper`: activation checkpointing of a whole block as a module
  (`torch.distributed.algorithms._checkpoint`, what torchtitan uses); the public
  `torch.utils.checkpoint.checkpoint` is a function over one call, not a module FSDP2 and
  `compile()` can be applied to afterwards.
- `torch_dispatch_mode`: the base class of a mode that sees every aten op a call dispatches
  (`torch.utils._python_dispatch.TorchDispatchMode`, what torch's own FLOP counter builds on);
  the GPU profile counts a block's ops with it to price the host side of an uncompiled step.
  torch has no public op-level hook.
- `gpu_spin`: `torch.cuda._sleep`, a kernel that keeps the GPU busy for a number of cycles, so a
  timed batch of kernels is queued behind it and the host's launch cost is not what is timed (what
  torch's own benchmarks do); there is no public busy-wait kernel.
- `restored_run_config`: `Tuner.restore` unpickles the sweep's `RunConfig` with its callbacks, and
  takes a new trainable and param space but no new callbacks; the recorder restored there holds
  the sweep directory of its first run.  The `RunConfig` the restored Tuner will run with is held
  by its `TunerInternal` (`Tuner._local_tuner`), which has the getter; Tune has no public one.
- `keep_ray_errors_off_the_console`: a driver's thread prints every error message Ray publishes
  for its job (a worker died, the raylet terminated with 20 lines of its log) straight to the
  console through `ray._private.worker.print_to_stdstream`, whatever `log_to_driver` says; no
  option turns it off.  The name is replaced by a function that hands them to the `ray` logger
  at DEBUG (Ray's own logs keep them; `--verbose` leaves the console as Ray has it).
- `ddp_graph_splitting`: torch.compile splits a graph it compiles under a DDP module at DDP's
  gradient buckets (Dynamo's DDPOptimizer), so that a bucket's all-reduce can start inside the
  graph's backward; the switch is `torch._dynamo.config.optimize_ddp` (named in torch's notes on
  DDP and compile, but in a private module); DDP itself has no argument for it.
- `optuna_study` (tests only): Ray's `OptunaSearch` keeps its Optuna study in `_ot_study` (and so
  in its saved state) with no accessor; the tests read what Optuna was told from it.

Public forms replaced internals that had one: `torch.compiler.reset` (was `torch._dynamo.reset`),
`DTensor.to_local()` (was `_local_tensor`), the warm pool's own bookkeeping (was Ray's
placement-group table layout).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any, Callable, Iterable


def withhold_from_trials(names: Iterable[str]) -> Callable[[], None]:
    """Keep the driver's environment variables `names` out of what Tune passes to every trial;
    returns what undoes it (tests)."""
    from ray.tune.execution import class_cache

    if not isinstance(getattr(class_cache, "ENV_VARS_TO_PROPAGATE", None), (set, frozenset)):
        raise RuntimeError("ray.tune.execution.class_cache.ENV_VARS_TO_PROPAGATE is gone: Ray changed how Tune "
                           "passes the driver's environment to trials (see slmray/private_apis.py)")
    before = class_cache.ENV_VARS_TO_PROPAGATE
    class_cache.ENV_VARS_TO_PROPAGATE = set(before) - set(names)

    def undo() -> None:
        class_cache.ENV_VARS_TO_PROPAGATE = before

    return undo


def stop_tune_gracefully() -> None:
    """Ask the `Tuner.fit()` running in this process to stop as it does on Ctrl-C: its state
    saved, its running trials stopped."""
    os.kill(os.getpid(), signal.SIGUSR1)


def ray_cluster_launcher():
    """`ray up`'s module that fills a cluster file's defaults (`prepare_config`,
    `fill_node_type_min_max_workers`) and validates it (`validate_config`)."""
    from ray.autoscaler._private import util

    return util


def release_unwaited_collectives() -> None:
    """Free the tensors NCCL still holds for collectives nobody `wait()`ed on.

    Called after the first step, so that DDP's initial buckets, replaced by the ones it rebuilds
    in step 2, are gone before step 2 peaks; left to the watchdog's timing they were there in
    every run but a process's first (its slow first step gave the watchdog time), on the H200:
    peak memory 0.48 GB higher for llama-100m and 3.6 GB for llama-1b
    (`benchmarks/results/warm_trials/warm_memory_h200.md`).  Called between a warm group's configurations,
    it frees what the last one left.
    """
    import torch
    import torch.distributed as dist

    if not (dist.is_initialized() and torch.cuda.is_available()):
        return
    torch.cuda.synchronize()
    time.sleep(0.25)  # the watchdog looks every 100 ms
    dist.barrier()


def ddp_graph_splitting(enabled: bool):
    """Context in which a graph torch.compile compiles under DDP is (`True`, torch's default) or is
    not split at DDP's gradient buckets."""
    import torch._dynamo

    return torch._dynamo.config.patch(optimize_ddp=enabled)


def checkpoint_wrapper(module):
    """`module` with its activations recomputed in backward instead of kept."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper as wrap

    return wrap(module)


def torch_dispatch_mode() -> type:
    """The base class of a dispatch mode (subclass it, define `__torch_dispatch__`)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    return TorchDispatchMode


def gpu_spin(cycles: int) -> None:
    """Queue a kernel that spins the current GPU for about `cycles` clock cycles."""
    import torch

    torch.cuda._sleep(cycles)


def restored_run_config(tuner: Any):
    """The `RunConfig` a (restored) `Tuner` will fit with; its callbacks may be replaced."""
    if getattr(tuner, "_local_tuner", None) is None:
        raise RuntimeError("ray.tune.Tuner has no _local_tuner: Ray changed where a Tuner keeps its run config "
                           "(see slmray/private_apis.py)")
    return tuner._local_tuner.get_run_config()


def keep_ray_errors_off_the_console() -> None:
    """Send the error messages Ray publishes to this driver to the `ray` logger at DEBUG instead of
    printing them (see the module's docstring)."""
    import logging

    from ray._private import worker

    if not callable(getattr(worker, "print_to_stdstream", None)):
        raise RuntimeError("ray._private.worker.print_to_stdstream is gone: Ray changed how a driver prints the "
                           "errors it is sent (see slmray/private_apis.py)")

    def to_log(data: dict, ignore_prefix: bool = False) -> None:
        for line in data.get("lines", []):
            logging.getLogger("ray").debug("%s", line)

    worker.print_to_stdstream = to_log


def optuna_study(searcher_or_state: Any):
    """The Optuna study of a Ray `OptunaSearch`, or of the state it saved (a dict)."""
    if isinstance(searcher_or_state, dict):
        return searcher_or_state["_ot_study"]
    return searcher_or_state._ot_study
