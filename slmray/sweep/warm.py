"""Warm trials: a Ray Train worker group, once up, serves trial after trial of its shape.

Design.  Tune still drives the search, one Tune trial per configuration (grid, Optuna, the
budget, resume and one row per trial are unchanged), and Ray Train still owns the workers.
What changes is who starts them.  The driver makes one `WarmPool`, a Ray actor, that keeps a
queue per resource shape of the plan (number of workers, GPU type); a trial hands its training
configuration to the queue of its shape and waits for the result instead of building a
`TorchTrainer` of its own.  The pool runs each group's `TorchTrainer.fit()` in a thread of its
own, so a group starts without a process of its own importing Ray Train (and torch) first.  The
group's `train_loop_per_worker` (`serve`) forms the process group once, then asks the pool for
the next configuration of its shape, runs it (`slmray.train.loop.run`: the model built afresh,
then freed, the CUDA cache emptied and the peak counters reset, so each measurement is its own;
dynamo's per-frame state is reset after a compiled configuration, while Inductor's
compiled-graph cache stays, which is correct across configurations and spares the next trial of
the same shapes some compile time) and hands the result back.

Three parts.  Which group runs what, when groups start and end (the prestart hold, more groups
for a busy shape, idle groups ending for a starving one or after `IDLE_S`, a failed
configuration retried on a fresh group) is `slmray.sweep.warm_scheduler`, plain Python; what a
group's error means (`oom` or `failed`) is `slmray.sweep.failure`; this module is what runs them
on Ray: the actor, each group's `fit()` in a thread, and the loop inside the workers.

Failures.  A one-process group that runs out of memory reports `oom` from `run` and stays
warm: no other rank shares its state.  Anything raised out of `run` (an OOM with several
ranks, where another rank may be blocked in a collective; an NCCL error; a collective past the
group's timeout; a dead worker) ends the group.  The pool actor itself may die (its process
killed, its node lost): Ray restarts it, empty, up to `POOL_RESTARTS` times (the groups it ran
die with it, as actors their owner outlived), and each trial waiting on it hands its
configuration to the new one (`slmray.sweep.trial`).
"""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any

import ray

from slmray import private_apis
from slmray.sweep.failure import failure
from slmray.sweep.warm_scheduler import IDLE_S, INFRASTRUCTURE_RETRIES, GroupSpec, Wait, WarmScheduler, gpu_resource

TRAIN_ENVIRONMENT = {
    "RAY_TRAIN_METRICS_ENABLED": "0",
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
}
"""Ray Train settings of a warm sweep, unless the driver's environment sets them: the rows are
the sweep's record, not Train's Prometheus metrics; a preempted node ends a group as any dead
worker does, and the pool retries its configuration on a fresh group, so Train's watcher would
only be one more process started with every group.  The driver gives them to the whole job
(`train_environment`), not to the pool alone: processes with an environment of their own could
not take the workers Ray starts idle with it, and each group would wait for new ones."""
CAPACITY_TTL_S = 1.0
"""How long the cluster's capacity, once read, stands: nodes come and go in minutes."""
POOL_RESTARTS = INFRASTRUCTURE_RETRIES
"""Times Ray starts the pool actor again after its process died, per sweep run: a trial waiting
on it hands its configuration to the new one; past them the trials' configurations are left for
`--resume` (an infrastructure failure, not theirs)."""
COLLECTIVE_TIMEOUT_S = 900
"""A rank stuck this long in a collective ends the group (torch.distributed's timeout; Ray's
default is 1,800 s).  Compiling llama-2b takes a few minutes, inside no collective."""


def scaling_config(spec: GroupSpec):
    """Ray Train's ScalingConfig of a group of `spec`'s shape."""
    from ray.train import ScalingConfig

    return ScalingConfig(
        num_workers=spec.num_workers, use_gpu=spec.use_gpu, accelerator_type=spec.accelerator_type,
        resources_per_worker=spec.worker_resources,
    )


class WarmPool:
    """The sweep's `WarmScheduler` as one threaded Ray actor (Ray Train is imported once, not once
    per shape): trials block in `result`, groups' rank 0 in `next_job`, each group's `fit()` runs
    in a thread of the actor.  Every call holds one condition and wakes the waiting ones."""

    def __init__(self, specs: dict[str, GroupSpec], reserve: dict[str, float], idle_s: float = IDLE_S):
        self.cond = threading.Condition()
        self.scheduler = WarmScheduler(specs, start_group=self._start_group, capacity=self._capacity,
                                       clock=time.monotonic, stamp=time.time_ns, reserve=reserve, idle_s=idle_s)
        self.capacity_read: tuple[float, dict[str, float]] = (-CAPACITY_TTL_S, {})

    def submit(self, key: str, trial_id: str, train: dict) -> None:
        with self.cond:
            self.scheduler.submit(key, trial_id, train)
            self.cond.notify_all()

    def run(self, key: str, trial_id: str, train: dict) -> dict:
        """`submit`, then `result`: one call, so a trial whose pool was restarted (empty) asks the
        new one with everything it needs."""
        self.submit(key, trial_id, train)
        return self.result(trial_id)

    def result(self, trial_id: str) -> dict:
        """Block until the trial's configuration has run: {"result"} or {"error"}, with "warm"
        and "group_trials"."""
        with self.cond:
            while (outcome := self.scheduler.take_result(trial_id)) is None:
                self.cond.wait()
            return outcome

    def prestart(self, keys: list[str]) -> None:
        """Start a group of each shape in `keys` that fits in what Ray has free (`WarmScheduler.prestart`):
        before any trial asks, so the first trials do not wait for them."""
        with self.cond:
            self.scheduler.prestart(keys, ray.available_resources())
            self.cond.notify_all()

    def history(self) -> list[tuple[float, str, str]]:
        with self.cond:
            return self.scheduler.history()

    def next_job(self, group_id: str) -> dict | None:
        """A group's rank 0 asks for work; None when it is to end."""
        with self.cond:
            answer = self.scheduler.next_job(group_id)
            self.cond.notify_all()  # the group is up or idle: the prestart hold, or a starving shape, may end
            while isinstance(answer, Wait):
                self.cond.wait(max(answer.until - time.monotonic(), 0.0))
                answer = self.scheduler.next_job(group_id)
            self.cond.notify_all()
            return answer

    def finish(self, group_id: str, trial_id: str, result: dict) -> None:
        with self.cond:
            self.scheduler.finish(group_id, trial_id, result)
            self.cond.notify_all()

    def close(self) -> None:
        """End every idle group now (the sweep is over)."""
        with self.cond:
            self.scheduler.close()
            self.cond.notify_all()

    def _capacity(self) -> dict[str, float]:
        """`cluster_capacity`, read at most once per `CAPACITY_TTL_S` (each waiting group asks)."""
        at, capacity = self.capacity_read
        if time.monotonic() - at >= CAPACITY_TTL_S:
            self.capacity_read = (time.monotonic(), cluster_capacity())
        return self.capacity_read[1]

    def _start_group(self, group_id: str, spec: GroupSpec) -> None:
        """A thread of this actor runs the group's `TorchTrainer.fit()`, so a group starts without a
        process of its own importing Ray Train first (called holding the condition)."""
        threading.Thread(target=self._run_group, args=(group_id, spec), name=f"group-{group_id}", daemon=True).start()

    def _run_group(self, group_id: str, spec: GroupSpec) -> None:
        try:
            serve_group(ray.get_runtime_context().current_actor, group_id, spec)
            error = None
        except Exception as exc:  # the group died: ray.train's WorkerGroupError, a worker's death
            error = failure(exc)
        with self.cond:
            self.scheduler.group_ended(group_id, error)
            self.cond.notify_all()


def cluster_capacity() -> dict[str, float]:
    """What the alive nodes of the cluster have in all, their GPUs also by type
    (`gpu_resource`): the scheduler's capacity."""
    total: dict[str, float] = {}
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        resources = node.get("Resources", {})
        for name, amount in resources.items():
            total[name] = total.get(name, 0.0) + amount
        for name in resources:
            if name.startswith("accelerator_type:"):
                typed = gpu_resource(name.split(":", 1)[1])
                total[typed] = total.get(typed, 0.0) + resources.get("GPU", 0.0)
    return total


def serve_group(pool, group_id: str, spec: GroupSpec) -> None:
    """One worker group: a `TorchTrainer` whose workers run the pool's configurations until idle."""
    import ray.train
    from ray.train import FailureConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    trainer = TorchTrainer(
        serve,
        train_loop_config={"pool": pool, "group_id": group_id},
        scaling_config=scaling_config(spec),
        torch_config=TorchConfig(timeout_s=COLLECTIVE_TIMEOUT_S),
        run_config=ray.train.RunConfig(
            name=f"warm-{group_id}", storage_path=spec.storage_path,
            failure_config=FailureConfig(max_failures=0),  # the pool retries the job on a fresh group
        ),
    )
    trainer.fit()


def serve(config: dict[str, Any]) -> None:
    """Ray Train's `train_loop_per_worker` of a warm group: rank 0 asks the pool for the next
    configuration and every rank gets it by broadcast; all run it; rank 0 hands back the result."""
    import torch.distributed as dist

    import torch.compiler

    from slmray.train.config import TrainConfig
    from slmray.train.loop import run

    # nothing compiled yet: this imports dynamo, as DDP's constructor would (a second of CPU), while the group starts
    torch.compiler.reset()
    pool, group_id = config["pool"], config["group_id"]
    rank = ray.train.get_context().get_world_rank()
    node = ray.get_runtime_context().get_node_id()
    several = dist.is_initialized() and dist.get_world_size() > 1
    while True:
        job = ray.get(pool.next_job.remote(group_id)) if rank == 0 else None
        if several:
            box = [job]
            dist.broadcast_object_list(box, src=0)
            job = box[0]
        if job is None:
            return
        cfg = TrainConfig.from_dict(job["train"])
        result = run(cfg, node_id=node).to_dict()
        if rank == 0:  # the trial has its result while the group cleans up: the next job waits for it anyway
            ray.get(pool.finish.remote(group_id, job["trial_id"], result))
        clean_up_after_configuration(compiled=cfg.compile)


def clean_up_after_configuration(compiled: bool) -> None:
    """Leave the process as a fresh one would start the next configuration: nothing of this one
    allocated, the CUDA cache empty, the peak counters reset."""
    import torch

    if compiled:
        # dynamo recompiles a frame for each new shape and falls back to eager past
        # `recompile_limit` (8) variants: a long-lived group would measure later compiled
        # trials uncompiled.  Inductor's compiled-graph cache survives the reset.
        torch.compiler.reset()
    private_apis.release_unwaited_collectives()
    gc.collect()  # the model, optimizer and batches of this configuration are gone
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def train_environment() -> dict[str, str]:
    """`TRAIN_ENVIRONMENT`, where the driver's own environment does not set a name."""
    return {name: os.environ.get(name, value) for name, value in TRAIN_ENVIRONMENT.items()}


def start_pool(specs: dict[str, GroupSpec], prestart: list[str], reserve: dict[str, float],
               resources: dict[str, float], idle_s: float = IDLE_S):
    """The sweep's pool actor, owned by the caller (the driver): it and its groups end with it.
    `resources` places it (the head node's marker on a cluster: Train's controllers run where
    their `fit()` is called); a group of each shape in `prestart` that fits beside `reserve`
    starts at once (`WarmPool.prestart`)."""
    # restarted by Ray when its process dies; a call in flight then fails (max_task_retries 0) and the
    # trial that made it asks again (`slmray.sweep.trial`), the groups' calls find an unknown group and end
    actor = ray.remote(num_cpus=0, resources=resources, max_concurrency=1000, max_restarts=POOL_RESTARTS)
    pool = actor(WarmPool).remote(specs, reserve, idle_s)
    if prestart:  # waited for: the groups have begun before Tune starts a trial
        ray.get(pool.prestart.remote(prestart))
    return pool
