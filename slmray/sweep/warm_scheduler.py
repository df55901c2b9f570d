"""Which warm worker group runs which configuration, and when a group starts or ends: the warm
pool's decisions in plain Python, apart from Ray (`slmray.sweep.warm` runs them on Ray).

Per shape of group (number of workers, GPU type) the scheduler keeps the configurations
waiting (`pending`) and its groups, each `starting` (its workers coming up), `idle` (its rank 0
asking for work), `busy` (running a configuration, then cleaning up after it) or `ending` (told
to end, its resources not yet given back); what each group has `served`; and the results not
yet collected.  It never blocks and reads no clock of its own: starting a group, the clock, a
group's name and the cluster's capacity are callables it is given, and a group asking for work
is told a job, to end (None), or to ask again by a time (`Wait`).

The rules (the pool's before this module, but for where starvation is read from):
- Groups started with the pool (`prestart`) hold back every configuration until all of them are
  up, or `prestart_wait_s` has passed: no trial is measured while another group starts (on the
  CPU, a group starting takes the cores a trial is timed on).
- A shape gets another group while its configurations outnumber its idle and starting groups,
  up to its `max_groups`.
- An idle group ends after `idle_s` without work, and at once while a group of another shape
  starves: it is starting and the pool's groups (by this scheduler's own count) need more than
  the cluster has, or it has been starting longer than `start_wait_s` (what Ray holds for
  others is not counted).  Before, a thread read Ray's placement-group table each second for a
  pending group of the shape: an internal layout, and hundreds of entries on a long sweep.
- A group that raised (its `fit()` ended with an error) hands its configuration back for a fresh
  group, up to the shape's `max_failures`, unless it ran out of memory; then the error is its
  result.  A group that died of an infrastructure failure (a worker process, node or raylet
  gone: `slmray.sweep.failure`) hands it back without counting against `max_failures`, up to
  `INFRASTRUCTURE_RETRIES` times; past them the result is that failure, which the trial does not
  record (its configuration runs again on `--resume`).  A one-process group that ran out of memory reports it as a result and stays warm.
- Once closed, no group starts and configurations still waiting get `CLOSED` as their result.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import deque
from dataclasses import dataclass
from typing import Callable

PRESTART_WAIT_S = 300.0
"""The longest the groups started with the pool hold back the first configuration while one of
them is still starting: past it a group that cannot start (its resources taken meanwhile) no
longer stalls the sweep.  A GPU group starts in about 40 s."""
IDLE_S = 30.0
"""How long an idle group waits for a configuration before it ends and frees its GPUs, unless
another shape needs them first: well past the second Tune takes between one trial's end and
the next one's start, and past a gap while Optuna tries another shape."""
START_WAIT_S = 120.0
"""A group still starting after this long waits on resources the scheduler does not count
(another job's): idle groups of other shapes end for it.  A GPU group starts in about 40 s, a
CPU one on 2 busy cores in 15-30 s."""
INFRASTRUCTURE_RETRIES = 3
"""How often a configuration is run again on fresh resources after an infrastructure failure (a
fresh worker group, a fresh trial actor, the pool actor restarted): enough for a node or two lost
in a sweep, bounded so that a configuration that kills its own workers (a native crash) does not
loop.  Past them its trial records nothing and `--resume` runs it again."""
INFRASTRUCTURE_STATUS = "infrastructure"
"""The status of an error of the cluster's, not the configuration's (`slmray.sweep.failure`): a
group's error that hands its configuration to a fresh group; never a row's status."""
CLOSED = ("failed", "the sweep ended before this trial ran")
"""The result of a configuration still waiting when the pool closes."""


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

    @property
    def worker_resources(self) -> dict[str, float]:
        """What each worker of such a group holds (its GPU type aside)."""
        return {"CPU": self.cpus_per_worker, **({"GPU": 1} if self.use_gpu else {})}

    @property
    def holds(self) -> dict[str, float]:
        """What a group of this shape holds, all workers together; its GPUs also under
        `gpu_resource(type)` when it asks for a GPU type."""
        held = {name: amount * self.num_workers for name, amount in self.worker_resources.items()}
        if self.use_gpu and self.accelerator_type:
            held[gpu_resource(self.accelerator_type)] = float(self.num_workers)
        return held

    @property
    def key(self) -> str:
        return f"{self.num_workers}x{self.accelerator_type or ('gpu' if self.use_gpu else 'cpu')}"


def gpu_resource(accelerator_type: str) -> str:
    """The name under which the capacity counts GPUs of one type (Ray counts only all GPUs)."""
    return f"GPU:{accelerator_type}"


def fits(needs: dict[str, float], free: dict[str, float]) -> bool:
    """Whether `needs` fits in `free` (a resource `free` does not name is not checked)."""
    return all(free[name] >= amount - 1e-6 for name, amount in needs.items() if name in free)


@dataclass(frozen=True)
class Job:
    """A configuration waiting for, or running on, a group."""

    trial_id: str
    train: dict
    """`TrainConfig.to_dict()`."""
    attempts: int = 0
    """Groups that failed while running it, so far (the configuration's failures)."""
    infrastructure_attempts: int = 0
    """Groups that died under it of an infrastructure failure, so far."""


@dataclass
class Group:
    """One worker group, as the scheduler knows it."""

    key: str
    started_at: float
    prestarted: bool
    state: str = "starting"
    """starting | idle | busy | ending."""
    served: int = 0
    """Configurations it has taken, the running one included."""
    job: Job | None = None
    """The configuration it runs, until its result is in."""
    idle_since: float = 0.0


@dataclass(frozen=True)
class Wait:
    """Ask again once the scheduler changes, or at `until` (the scheduler's clock) at the latest."""

    until: float


class WarmScheduler:
    """The warm pool's state and decisions (see the module's docstring).  Not thread-safe: the
    caller holds one lock around every call and wakes its waiting callers after each."""

    def __init__(self, specs: dict[str, GroupSpec], *, start_group: Callable[[str, GroupSpec], None],
                 capacity: Callable[[], dict[str, float]], clock: Callable[[], float], stamp: Callable[[], int],
                 reserve: dict[str, float] | None = None, idle_s: float = IDLE_S,
                 prestart_wait_s: float = PRESTART_WAIT_S, start_wait_s: float = START_WAIT_S):
        """`start_group(group_id, spec)` starts a group (it later asks `next_job` and, once it has
        ended, `group_ended`); `capacity()` is what the cluster has in all (Ray's resource names,
        and `gpu_resource(type)`); `clock()` is in seconds, `stamp()` is a wall time in
        nanoseconds (group names, events); `reserve` is what the trials' own processes hold."""
        self.specs = specs
        self.start_group, self.capacity, self.clock, self.stamp = start_group, capacity, clock, stamp
        self.reserve = dict(reserve or {})
        self.idle_s, self.prestart_wait_s, self.start_wait_s = idle_s, prestart_wait_s, start_wait_s
        self.pending: dict[str, deque[Job]] = {key: deque() for key in specs}
        self.groups: dict[str, Group] = {}
        self.results: dict[str, dict] = {}
        """Trial id -> {"result"} or {"error": (status, message)}, with "warm" and "group_trials"."""
        self.events: list[tuple[float, str, str]] = []
        """(wall time, "started" | "up" | "took <trial id>" | "ended", group id), in order."""
        self.closed = False
        self.prestart_until = -math.inf
        self.prestart_done_at = -math.inf
        """When the last group started with the pool stopped starting."""
        self.ids = itertools.count(1)

    # -- what the trials and the driver call --------------------------------------------------

    def submit(self, key: str, trial_id: str, train: dict) -> None:
        """A trial's configuration joins the queue of its shape."""
        if self.closed:
            self.results[trial_id] = {"error": CLOSED, "warm": False, "group_trials": 0}
            return
        self.pending[key].append(Job(trial_id, train))
        self._start_groups(key)

    def take_result(self, trial_id: str) -> dict | None:
        """The trial's outcome once its configuration has run (then forgotten), else None."""
        return self.results.pop(trial_id, None)

    def prestart(self, keys: list[str], free: dict[str, float]) -> None:
        """Start a group of each shape in `keys`, in order, while it fits in `free` (less the
        reserve and the groups started before it); the first configuration waits for them."""
        if self.groups:
            return
        free = {name: amount - self.reserve.get(name, 0.0) for name, amount in free.items()}
        for key in keys:
            holds = self.specs[key].holds
            if fits(holds, free):
                self._start_group(key, prestarted=True)
                for name, amount in holds.items():
                    if name in free:
                        free[name] -= amount
        self.prestart_until = self.clock() + self.prestart_wait_s

    def close(self) -> None:
        """The sweep is over: idle groups end when they next ask, busy ones after their
        configuration; configurations still waiting get `CLOSED` as their result."""
        self.closed = True
        for queue in self.pending.values():
            while queue:
                self.results[queue.popleft().trial_id] = {"error": CLOSED, "warm": False, "group_trials": 0}

    # -- what the groups call -----------------------------------------------------------------

    def next_job(self, group_id: str) -> dict | None | Wait:
        """A group's rank 0 asks for work: {"trial_id", "train"}, None (the group ends), or Wait."""
        g = self.groups[group_id]
        now = self.clock()
        if g.state == "ending":
            return None
        if g.state != "idle":
            if g.state == "starting":
                self._event("up", group_id)
                if g.prestarted:
                    self.prestart_done_at = now
            g.state, g.idle_since = "idle", now
        if self.closed:
            return self._end(g)
        pending = self.pending[g.key]
        holding = self._holding(now)
        if pending and not holding:
            job = pending.popleft()
            g.state, g.job, g.served = "busy", job, g.served + 1
            self._event(f"took {job.trial_id}", group_id)
            return {"trial_id": job.trial_id, "train": job.train}
        deadlines = [self.prestart_until] if holding else []
        if not pending:
            idle_until = max(g.idle_since, self._hold_end()) + self.idle_s
            starts = self._starting_elsewhere(g.key)
            if now >= idle_until or (starts and self._starved(starts, now)):
                return self._end(g)
            deadlines += [idle_until, *(s.started_at + self.start_wait_s for s in starts)]
        return Wait(min(deadlines))

    def finish(self, group_id: str, trial_id: str, result: dict) -> None:
        """A group's configuration has run: its result is the trial's (the group cleans up next)."""
        g = self.groups[group_id]
        g.job = None
        self.results[trial_id] = {"result": result, "warm": g.served > 1, "group_trials": g.served}

    def group_ended(self, group_id: str, error: tuple[str, str] | None) -> None:
        """A group's `fit()` returned (`error` None) or raised (`error`: `failure`'s (status,
        message)).  The configuration it was running is retried on a fresh group or recorded."""
        g = self.groups.pop(group_id)
        self._event("ended", group_id)
        if g.prestarted and g.state == "starting":
            self.prestart_done_at = self.clock()
        if g.job is not None:
            status, message = error or ("failed", "the worker group ended while running this trial")
            job = g.job
            infrastructure = status == INFRASTRUCTURE_STATUS
            if infrastructure and job.infrastructure_attempts < INFRASTRUCTURE_RETRIES and not self.closed:
                self.pending[g.key].appendleft(dataclasses.replace(
                    job, infrastructure_attempts=job.infrastructure_attempts + 1))
            elif status == "failed" and job.attempts < self.specs[g.key].max_failures and not self.closed:
                self.pending[g.key].appendleft(dataclasses.replace(job, attempts=job.attempts + 1))
            else:
                self.results[job.trial_id] = {"error": (status, message), "warm": g.served > 1,
                                              "group_trials": g.served}
        self._start_groups(g.key)

    def history(self) -> list[tuple[float, str, str]]:
        """What the groups did, in order: (wall time in seconds, event, group id)."""
        return list(self.events)

    # -- the rules ----------------------------------------------------------------------------

    def _start_groups(self, key: str) -> None:
        """A group of shape `key` for each of its waiting jobs no idle or starting group will take."""
        if self.closed:
            return
        mine = [g for g in self.groups.values() if g.key == key]
        ready = sum(g.state in ("starting", "idle") for g in mine)
        for _ in range(min(len(self.pending[key]) - ready, self.specs[key].max_groups - len(mine))):
            self._start_group(key, prestarted=False)

    def _start_group(self, key: str, prestarted: bool) -> str:
        group_id = f"{key}-{next(self.ids)}-{self.stamp()}"  # unique beyond this pool: its Train run's name
        self.groups[group_id] = Group(key, started_at=self.clock(), prestarted=prestarted)
        self._event("started", group_id)
        self.start_group(group_id, self.specs[key])
        return group_id

    def _holding(self, now: float) -> bool:
        """Whether the groups started with the pool still hold back every configuration."""
        return now < self._hold_end()

    def _hold_end(self) -> float:
        if any(g.prestarted and g.state == "starting" for g in self.groups.values()):
            return self.prestart_until
        return min(self.prestart_until, self.prestart_done_at)

    def _starting_elsewhere(self, key: str) -> list[Group]:
        return [g for g in self.groups.values() if g.state == "starting" and g.key != key]

    def _starved(self, starting: list[Group], now: float) -> bool:
        """Whether a starting group (of another shape) waits for resources: starting for longer than
        `start_wait_s`, or more held by the pool's groups and the trials than the cluster has."""
        if any(now - g.started_at >= self.start_wait_s for g in starting):
            return True
        held = dict(self.reserve)
        for g in self.groups.values():
            for name, amount in self.specs[g.key].holds.items():
                held[name] = held.get(name, 0.0) + amount
        capacity = self.capacity()
        return any(amount > capacity.get(name, 0.0) + 1e-6 for name, amount in held.items())

    def _end(self, g: Group) -> None:
        g.state = "ending"
        return None

    def _event(self, what: str, group_id: str) -> None:
        self.events.append((self.stamp() / 1e9, what, group_id))
