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
the same shapes some compile time) and hands the result back.  The pool starts another group of
a shape when its configurations wait and every group of it is busy, up to the sweep's
concurrency.  With the pool, one group of each shape starts at once, the first configuration's
first, as many as fit in what Ray has free beside the trials' own processes: they start together
while Tune sets up, and no group takes a configuration until all of them are up, so no trial is
measured while another group starts (on the CPU, a group starting would take the cores a trial
is timed on).  An idle group gives its GPUs back to Ray at once when a group of another shape
would not fit beside it, and after `IDLE_S` in any case: no trial waits on GPUs that an idle
group holds.

Failures.  A one-process group that runs out of memory reports `oom` from `run` and stays
warm: no other rank shares its state.  Anything raised out of `run` (an OOM with several
ranks, where another rank may be blocked in a collective; an NCCL error; a collective past the
group's timeout; a dead worker) ends the group.  The configuration it was running is retried
on a fresh group up to `max_failures` times unless it ran out of memory, then recorded as
`oom` or `failed`; the next configuration starts a fresh group.
"""

from __future__ import annotations

import gc
import itertools
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import ray

PRESTART_WAIT_S = 300.0
"""The longest the groups started with the pool hold back the first configuration while one of
them is still starting: past it a group that cannot start (its resources taken meanwhile) no
longer stalls the sweep.  A GPU group starts in about 40 s."""
IDLE_S = 30.0
"""How long an idle group waits for a configuration before it ends and frees its GPUs, unless
another shape needs them first: well past the second Tune takes between one trial's end and
the next one's start, and past a gap while Optuna tries another shape."""
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
COLLECTIVE_TIMEOUT_S = 900
"""A rank stuck this long in a collective ends the group (torch.distributed's timeout; Ray's
default is 1,800 s).  Compiling llama-2b takes a few minutes, inside no collective."""


@dataclass(frozen=True)
class GroupSpec:
    """What a worker group of one shape needs: workers, their resources, where Train writes."""

    num_workers: int
    use_gpu: bool
    accelerator_type: str | None
    cpus_per_worker: float
    storage_path: str
    max_groups: int
    """Groups of this shape at once: the sweep's concurrency."""
    max_failures: int

    def scaling_config(self):
        """Ray Train's ScalingConfig of such a group."""
        from ray.train import ScalingConfig

        return ScalingConfig(
            num_workers=self.num_workers, use_gpu=self.use_gpu, accelerator_type=self.accelerator_type,
            resources_per_worker=self.worker_resources,
        )

    @property
    def worker_resources(self) -> dict[str, float]:
        """What each worker of such a group holds (its GPU type aside)."""
        return {"CPU": self.cpus_per_worker, **({"GPU": 1} if self.use_gpu else {})}

    @property
    def key(self) -> str:
        return f"{self.num_workers}x{self.accelerator_type or ('gpu' if self.use_gpu else 'cpu')}"


class WarmPool:
    """The configurations waiting for a group, per shape, the groups serving them, and their
    results: one threaded Ray actor for the sweep, so Ray Train is imported once, not once per
    shape.  Trials block in `result`, groups in `next_job`."""

    def __init__(self, specs: dict[str, GroupSpec], idle_s: float = IDLE_S):
        self.specs = specs
        """Shape key -> what a group of that shape needs."""
        self.idle_s = idle_s
        self.cond = threading.Condition()
        self.pending: dict[str, deque[dict]] = {key: deque() for key in specs}
        """Jobs waiting, per shape: {"trial_id", "train" (TrainConfig.to_dict()), "attempts"}."""
        self.shape_of: dict[str, str] = {}
        """Group id -> its shape key."""
        self.groups: dict[str, threading.Thread] = {}
        """Group id -> the thread running its `fit()`."""
        self.starting: set[str] = set()
        """Groups whose rank 0 has not yet asked for a job (its workers are starting)."""
        self.prestarting: set[str] = set()
        """Groups started with the pool that are not up yet: no group takes a job meanwhile."""
        self.prestart_until = 0.0
        self.idle: dict[str, int] = dict.fromkeys(specs, 0)
        """Groups of each shape waiting in `next_job`."""
        self.in_flight: dict[str, dict] = {}
        """Group id -> the job it runs."""
        self.served: dict[str, int] = {}
        """Group id -> configurations it has taken, the running one included."""
        self.results: dict[str, dict] = {}
        self.releases: dict[str, int] = dict.fromkeys(specs, 0)
        """Bumped when another shape needs the resources the idle groups of this one hold: they end."""
        self.ids = itertools.count(1)
        self.closed = False
        self.events: list[tuple[float, str, str]] = []
        """(time, "started" | "up" | "took <trial id>" | "ended", group id), in order."""
        threading.Thread(target=self._release_while_starved, daemon=True).start()

    def submit(self, key: str, trial_id: str, train: dict) -> None:
        with self.cond:
            self.pending[key].append({"trial_id": trial_id, "train": train, "attempts": 0})
            self._start_groups(key)
            self.cond.notify_all()

    def result(self, trial_id: str) -> dict:
        """Block until the trial's configuration has run: {"result"} or {"error"}, with "warm"
        and "group_trials"."""
        with self.cond:
            while trial_id not in self.results:
                self.cond.wait()
            return self.results.pop(trial_id)

    def prestart(self, keys: list[str], reserve: dict[str, float]) -> None:
        """Start a group of each shape in `keys`, in order, while it fits in what Ray has free
        beside the groups started before it and `reserve` (what the trials' own processes
        need): before any trial asks, so the first trials do not wait for them."""
        with self.cond:
            if self.groups:
                return
            free = ray.available_resources()
            for name, amount in reserve.items():
                free[name] = free.get(name, 0.0) - amount
            for key in keys:
                if self._fits(key, free):
                    self.prestarting.add(self._start_group(key))
                    for name, amount in self._needs(key).items():
                        free[name] -= amount
            self.prestart_until = time.monotonic() + PRESTART_WAIT_S

    def history(self) -> list[tuple[float, str, str]]:
        """What the groups did, in order: (time.time(), event, group id)."""
        with self.cond:
            return list(self.events)

    def next_job(self, group_id: str) -> dict | None:
        """A group's rank 0 asks for work; None when none came for `idle_s` (the group ends)."""
        key = self.shape_of[group_id]
        with self.cond:
            if group_id in self.starting:
                self._event("up", group_id)
            self.starting.discard(group_id)
            self.prestarting.discard(group_id)
            self.cond.notify_all()
            releases = self.releases[key]
            self.idle[key] += 1
            try:
                self._wait(lambda: not self.prestarting, self.prestart_until, releases, key)
                if not self._wait(lambda: self.pending[key], time.monotonic() + self.idle_s, releases, key):
                    return None
                job = self.pending[key].popleft()
            finally:
                self.idle[key] -= 1
            self.served[group_id] = self.served.get(group_id, 0) + 1
            self.in_flight[group_id] = job
            self._event(f"took {job['trial_id']}", group_id)
            return {"trial_id": job["trial_id"], "train": job["train"]}

    def _wait(self, ready, deadline: float, releases: int, key: str) -> bool:
        """Wait (holding `cond`) until `ready()`, the deadline, the pool's close or the idle groups
        of shape `key` being asked to end; whether it is ready and the pool open."""
        while not ready() and not self.closed and self.releases[key] == releases:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.cond.wait(left)
        return bool(ready()) and not self.closed

    def finish(self, group_id: str, trial_id: str, result: dict) -> None:
        with self.cond:
            self.in_flight.pop(group_id, None)
            served = self.served[group_id]
            self.results[trial_id] = {"result": result, "warm": served > 1, "group_trials": served}
            self.cond.notify_all()

    def close(self) -> None:
        """End every idle group now (the sweep is over)."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def _start_groups(self, key: str) -> None:
        """Start a group of shape `key` for each of its waiting jobs no idle or starting group
        will take; idle groups of other shapes end first when it would not fit beside them."""
        starting = sum(self.shape_of[g] == key for g in self.starting)
        groups = sum(self.shape_of[g] == key for g in self.groups)
        while len(self.pending[key]) > self.idle[key] + starting and groups < self.specs[key].max_groups:
            if not self._fits(key):
                self._release_others(key)
            self._start_group(key)
            starting, groups = starting + 1, groups + 1

    def _start_group(self, key: str) -> str:
        """A thread of this actor runs the group's `TorchTrainer.fit()`, so a group starts without a
        process of its own importing Ray Train first."""
        group_id = f"{key}-{next(self.ids)}-{time.time_ns()}"  # unique beyond this pool: its Train run's name
        thread = threading.Thread(target=self._run_group, args=(group_id,), name=f"group-{group_id}", daemon=True)
        self.shape_of[group_id] = key
        self.groups[group_id] = thread
        self.starting.add(group_id)
        self._event("started", group_id)
        thread.start()
        return group_id

    def _run_group(self, group_id: str) -> None:
        try:
            serve_group(ray.get_runtime_context().current_actor, group_id, self.specs[self.shape_of[group_id]])
            error = None
        except Exception as exc:  # the group died: ray.train's TrainingFailedError, a worker's death
            error = failure(exc)
        self._group_ended(group_id, error)

    def _group_ended(self, group_id: str, error: tuple[str, str] | None) -> None:
        """An error fails (or requeues) the job the group was running; waiting jobs get a new group."""
        with self.cond:
            key = self.shape_of[group_id]
            del self.groups[group_id]
            self.starting.discard(group_id)
            self.prestarting.discard(group_id)
            self._event("ended", group_id)
            job = self.in_flight.pop(group_id, None)
            served = self.served.pop(group_id, 0)
            if job is not None:
                status, message = error or ("failed", "the worker group ended while running this trial")
                if status == "failed" and job["attempts"] < self.specs[key].max_failures:
                    self.pending[key].appendleft({**job, "attempts": job["attempts"] + 1})
                else:
                    self.results[job["trial_id"]] = {"error": (status, message), "warm": served > 1,
                                                     "group_trials": served}
            self._start_groups(key)
            self.cond.notify_all()

    def _event(self, what: str, group_id: str) -> None:
        self.events.append((time.time(), what, group_id))

    def _needs(self, key: str) -> dict[str, float]:
        """What a group of shape `key` holds."""
        spec = self.specs[key]
        return {name: amount * spec.num_workers for name, amount in spec.worker_resources.items()}

    def _fits(self, key: str, free: dict[str, float] | None = None) -> bool:
        """Whether a group of shape `key` fits in `free` (default: what Ray has free now)."""
        free = ray.available_resources() if free is None else free
        return all(free.get(k, 0.0) >= v - 1e-6 for k, v in self._needs(key).items())

    def _release_others(self, key: str) -> None:
        for other in self.releases:
            if other != key and self.idle[other]:
                self.releases[other] += 1
        self.cond.notify_all()

    def _release_while_starved(self) -> None:
        """While a starting group waits for resources (another shape's group may have gone idle
        since it started), idle groups of other shapes are asked to end.  Checked each second: a
        group waits when Ray holds a placement group of its shape pending at two checks in a row
        (a moment pending is Ray placing it)."""
        pending_before: set[str] = set()
        while True:
            with self.cond:
                starting = bool(self.starting)
            pending = {pg_id: pg["bundles"] for pg_id, pg in ray.util.placement_group_table().items()
                       if pg["state"] == "PENDING"} if starting else {}  # Ray's whole table: only when it matters
            with self.cond:
                for key in {self.shape_of[g] for g in self.starting}:
                    if any(self._is_group_of(bundles, key) for pg_id, bundles in pending.items() if pg_id in pending_before):
                        self._release_others(key)
            pending_before = set(pending)
            time.sleep(1.0)

    def _is_group_of(self, bundles: dict[int, dict[str, float]], key: str) -> bool:
        """Whether a placement group's bundles are what Ray Train asks for a group of shape `key`:
        one a worker, its CPUs, its GPU, its GPU type."""
        spec = self.specs[key]
        worker = {"GPU": 0.0, **spec.worker_resources}
        return len(bundles) == spec.num_workers and all(
            all(abs(b.get(name, 0.0) - amount) < 1e-6 for name, amount in worker.items())
            and (spec.accelerator_type is None or f"accelerator_type:{spec.accelerator_type}" in b)
            for b in bundles.values())


def serve_group(pool, group_id: str, spec: GroupSpec) -> None:
    """One worker group: a `TorchTrainer` whose workers run the pool's configurations until idle."""
    import ray.train
    from ray.train import FailureConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    trainer = TorchTrainer(
        serve,
        train_loop_config={"pool": pool, "group_id": group_id},
        scaling_config=spec.scaling_config(),
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

    import torch._dynamo  # noqa: F401  DDP's constructor imports it, a second of CPU: here while the group starts

    from slmray.train.config import TrainConfig
    from slmray.train.loop import run

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

    from slmray.train import parallel

    if compiled:
        # dynamo recompiles a frame for each new shape and falls back to eager past
        # `recompile_limit` (8) variants: a long-lived group would measure later compiled
        # trials uncompiled.  Inductor's compiled-graph cache survives the reset.
        torch._dynamo.reset()
    parallel.release_unwaited_collectives()
    gc.collect()  # the model, optimizer and batches of this configuration are gone
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


ERROR_CHARS = 500


def failure(exc: BaseException) -> tuple[str, str]:
    """(status, message) for a failed fit: `oom` if any worker ran out of memory.  `exc` may be
    Ray Train's error, or a task's error wrapping it (`cause`, a warm group's)."""
    from slmray.train.loop import is_out_of_memory  # torch loads once a failure is classified, not with the module

    train_error = next((e for e in (exc, getattr(exc, "cause", None)) if getattr(e, "worker_failures", None)), exc)
    errors = list(getattr(train_error, "worker_failures", {}).values()) or [exc]
    for err in errors:
        chain, seen = [err], set()
        while chain:
            e = chain.pop()
            if e is None or id(e) in seen:
                continue
            seen.add(id(e))
            if is_out_of_memory(e) or "OutOfMemoryError" in type(e).__name__ or "CUDA out of memory" in str(e):
                return "oom", _first_line(e)
            chain += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    return "failed", _first_line(errors[0])


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = next((line for line in lines if "Error" in line or "error" in line), lines[0] if lines else type(exc).__name__)
    return text[:ERROR_CHARS]


def train_environment() -> dict[str, str]:
    """`TRAIN_ENVIRONMENT`, where the driver's own environment does not set a name."""
    return {name: os.environ.get(name, value) for name, value in TRAIN_ENVIRONMENT.items()}


def start_pool(specs: dict[str, GroupSpec], prestart: list[str], reserve: dict[str, float],
               resources: dict[str, float], idle_s: float = IDLE_S):
    """The sweep's pool actor, owned by the caller (the driver): it and its groups end with it.
    `resources` places it (the head node's marker on a cluster: Train's controllers run where
    their `fit()` is called); a group of each shape in `prestart` that fits beside `reserve`
    starts at once (`WarmPool.prestart`)."""
    actor = ray.remote(num_cpus=0, resources=resources, max_concurrency=1000)
    pool = actor(WarmPool).remote(specs, idle_s)
    if prestart:  # waited for: the groups have begun before Tune starts a trial
        ray.get(pool.prestart.remote(prestart, reserve))
    return pool
