"""Warm trials: a Ray Train worker group, once up, serves trial after trial of its shape.

Design.  Tune still drives the search, one Tune trial per configuration (grid, Optuna, the
budget, resume and one row per trial are unchanged), and Ray Train still owns the workers.
What changes is who starts them.  The driver makes one `WarmPool` per resource shape of the
plan (number of workers, GPU type), a Ray actor; a trial hands its training configuration to
the pool of its shape and waits for the result instead of building a `TorchTrainer` of its
own.  The pool runs `TorchTrainer`s whose `train_loop_per_worker` (`serve`) forms the process
group once, then asks the pool for the next configuration, runs it (`slmray.train.loop.run`: the
model built afresh, then freed, the CUDA cache emptied and the peak counters reset, so each
measurement is its own; dynamo's per-frame state is reset after a compiled configuration,
while Inductor's compiled-graph cache stays, which is correct across configurations and spares
the next trial of the same shapes some compile time) and hands the result back.  The pool
starts another group of its shape when configurations wait and every group is busy, up to the
sweep's concurrency.  An idle group gives its GPUs back to Ray at once
when a group of another shape would not fit beside it (the pools know each other), and after
`IDLE_S` in any case: no trial waits on GPUs that an idle group holds.

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
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import ray

IDLE_S = 30.0
"""How long an idle group waits for a configuration before it ends and frees its GPUs, unless
another shape needs them first: well past the second Tune takes between one trial's end and
the next one's start, and past a gap while Optuna tries another shape."""
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
            resources_per_worker={"CPU": self.cpus_per_worker, **({"GPU": 1} if self.use_gpu else {})},
        )

    @property
    def key(self) -> str:
        return f"{self.num_workers}x{self.accelerator_type or ('gpu' if self.use_gpu else 'cpu')}"


class WarmPool:
    """The configurations waiting for a group of one shape, the groups serving them, and their
    results.  A threaded Ray actor: trials block in `result`, groups in `next_job`."""

    def __init__(self, spec: GroupSpec):
        self.spec = spec
        self.cond = threading.Condition()
        self.pending: deque[dict] = deque()
        """Jobs waiting: {"trial_id", "train" (TrainConfig.to_dict()), "attempts"}."""
        self.in_flight: dict[str, dict] = {}
        """Group id -> the job it runs."""
        self.served: dict[str, int] = {}
        """Group id -> configurations it has taken, the running one included."""
        self.groups: dict[str, ray.ObjectRef] = {}
        """Group id -> its `fit()` task; ready when the group has ended."""
        self.starting: set[str] = set()
        self.idle = 0
        self.results: dict[str, dict] = {}
        self.ids = itertools.count(1)
        self.closed = False
        self.releases = 0
        """Bumped when another shape needs the resources idle groups hold: they end."""
        self.peers: list = []
        threading.Thread(target=self._watch, daemon=True).start()

    def set_peers(self, peers: list) -> None:
        """The pools of the sweep's other shapes, asked to free idle groups when ours do not fit."""
        self.peers = peers

    def release_idle(self) -> None:
        with self.cond:
            self.releases += 1
            self.cond.notify_all()

    def submit(self, trial_id: str, train: dict) -> None:
        with self.cond:
            self.pending.append({"trial_id": trial_id, "train": train, "attempts": 0})
            self._start_groups()
            self.cond.notify_all()

    def result(self, trial_id: str) -> dict:
        """Block until the trial's configuration has run: {"result"} or {"error"}, with "warm"
        and "group_trials"."""
        with self.cond:
            while trial_id not in self.results:
                self.cond.wait()
            return self.results.pop(trial_id)

    def next_job(self, group_id: str) -> dict | None:
        """A group's rank 0 asks for work; None when none came for `IDLE_S` (the group ends)."""
        with self.cond:
            self.starting.discard(group_id)
            deadline, releases = time.monotonic() + IDLE_S, self.releases
            self.idle += 1
            try:
                while not self.pending and not self.closed and self.releases == releases:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    self.cond.wait(left)
                if self.closed or not self.pending:
                    return None
                job = self.pending.popleft()
            finally:
                self.idle -= 1
            self.served[group_id] = self.served.get(group_id, 0) + 1
            self.in_flight[group_id] = job
            return {"trial_id": job["trial_id"], "train": job["train"]}

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

    def _start_groups(self) -> None:
        """Start a group for each waiting job no idle or starting group will take."""
        from slmray.sweep.warm import serve_group  # the module's remote function, not a copy in this actor

        me = ray.get_runtime_context().current_actor
        while len(self.pending) > self.idle + len(self.starting) and len(self.groups) < self.spec.max_groups:
            if not self._fits():
                for peer in self.peers:
                    peer.release_idle.remote()
            group_id = f"{self.spec.key}-{next(self.ids)}"
            self.groups[group_id] = serve_group.remote(me, group_id, self.spec)
            self.starting.add(group_id)

    def _fits(self) -> bool:
        """Whether a group of this shape fits in what Ray has free now."""
        free = ray.available_resources()
        need = {"CPU": self.spec.num_workers * self.spec.cpus_per_worker}
        if self.spec.use_gpu:
            need["GPU"] = self.spec.num_workers
        return all(free.get(k, 0.0) >= v - 1e-6 for k, v in need.items())

    def _watch(self) -> None:
        while True:
            try:
                self._watch_groups()
            except Exception as exc:  # never leave trials waiting on a dead watcher: fail what waits
                with self.cond:
                    for job in [*self.in_flight.values(), *self.pending]:
                        self.results[job["trial_id"]] = {"error": ("failed", f"warm pool: {exc}"), "warm": False,
                                                         "group_trials": 0}
                    self.in_flight.clear()
                    self.pending.clear()
                    self.cond.notify_all()
                time.sleep(1.0)

    def _watch_groups(self) -> None:
        """When a group ends: an error fails (or requeues) the job it was running.  While a group
        of ours waits for resources, idle groups of other shapes are asked, each second, to end."""
        while True:
            with self.cond:
                refs = dict(self.groups)
                if self.starting and not self._fits():  # still waiting for resources an idle peer may hold
                    for peer in self.peers:
                        peer.release_idle.remote()
            if not refs:
                time.sleep(0.2)
                continue
            ready, _ = ray.wait(list(refs.values()), num_returns=1, timeout=1.0)
            for ref in ready:
                group_id = next(g for g, r in refs.items() if r == ref)
                try:
                    ray.get(ref)
                    error = None
                except Exception as exc:  # the group died: ray.train's TrainingFailedError, an actor death
                    error = failure(exc)
                with self.cond:
                    del self.groups[group_id]
                    self.starting.discard(group_id)
                    job = self.in_flight.pop(group_id, None)
                    served = self.served.pop(group_id, 0)
                    if job is not None:
                        status, message = error or ("failed", "the worker group ended while running this trial")
                        if status == "failed" and job["attempts"] < self.spec.max_failures:
                            self.pending.appendleft({**job, "attempts": job["attempts"] + 1})
                        else:
                            self.results[job["trial_id"]] = {"error": (status, message), "warm": served > 1,
                                                             "group_trials": served}
                    self._start_groups()
                    self.cond.notify_all()


@ray.remote(num_cpus=0)
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
            name=f"warm-{group_id}-{time.time_ns()}", storage_path=spec.storage_path,
            failure_config=FailureConfig(max_failures=0),  # the pool retries the job on a fresh group
        ),
    )
    trainer.fit()


def serve(config: dict[str, Any]) -> None:
    """Ray Train's `train_loop_per_worker` of a warm group: rank 0 asks the pool for the next
    configuration and every rank gets it by broadcast; all run it; rank 0 hands back the result."""
    import torch.distributed as dist

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
        clean_up_after_configuration(compiled=cfg.compile)
        if rank == 0:
            ray.get(pool.finish.remote(group_id, job["trial_id"], result))


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


def start_pools(shapes: dict[str, GroupSpec]) -> dict[str, Any]:
    """One pool actor per shape key, owned by the caller (the sweep's driver): they end with it."""
    remote = ray.remote(num_cpus=0, max_concurrency=1000)(WarmPool)
    pools = {key: remote.remote(spec) for key, spec in shapes.items()}
    ray.get([pool.set_peers.remote([p for k, p in pools.items() if k != key]) for key, pool in pools.items()])
    return pools


def close_pools(pools: dict[str, Any]) -> None:
    """End every idle group: the sweep is over (or stopped)."""
    ray.get([pool.close.remote() for pool in pools.values()])
