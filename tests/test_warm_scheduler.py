"""The warm pool's scheduling rules on a clock the test moves (`slmray.sweep.warm_scheduler`): no
Ray, no threads, milliseconds.  tests/test_warm_pool.py runs the same rules on a local Ray."""

import ast
import inspect

import pytest

from slmray.sweep import warm_scheduler
from slmray.sweep.warm_scheduler import (CLOSED, INFRASTRUCTURE_RETRIES, INFRASTRUCTURE_STATUS, GroupSpec, Wait,
                                         WarmScheduler, gpu_resource)


def spec(workers: int, gpu: str | None = None, max_groups: int = 1, max_failures: int = 0) -> GroupSpec:
    return GroupSpec(num_workers=workers, use_gpu=gpu is not None, accelerator_type=gpu, cpus_per_worker=1.0,
                     storage_path="/unused", max_groups=max_groups, max_failures=max_failures)


class Pool:
    """A scheduler with its effects recorded: the groups it started, in order, on a clock the test sets."""

    def __init__(self, *specs: GroupSpec, capacity: dict | None = None, **kwargs):
        self.now = 1000.0
        self.started: list[str] = []
        self.capacity = capacity if capacity is not None else {"CPU": 64.0}
        self.s = WarmScheduler({s.key: s for s in specs}, start_group=lambda gid, _: self.started.append(gid),
                               capacity=lambda: self.capacity, clock=lambda: self.now,
                               stamp=lambda: int(self.now * 1e9), **kwargs)

    def group(self, key: str, nth: int = 1) -> str:
        """The id of the `nth` group of shape `key` started."""
        return [g for g in self.started if g.startswith(f"{key}-")][nth - 1]

    def run(self, group_id: str, result: dict | None = None) -> str:
        """The group takes a job and finishes it; the job's trial id."""
        job = self.s.next_job(group_id)
        assert isinstance(job, dict), job
        self.s.finish(group_id, job["trial_id"], result or {"status": "ok"})
        return job["trial_id"]


def events(pool: Pool) -> list[tuple[str, str]]:
    return [(what, gid.split("-")[0]) for _, what, gid in pool.s.history()]


def test_prestart_starts_what_fits_in_order_and_no_group_takes_a_job_until_all_are_up():
    pool = Pool(spec(1), spec(2), spec(3), reserve={"CPU": 0.5})
    pool.s.prestart(["1xcpu", "2xcpu", "3xcpu"], free={"CPU": 4.0})  # 3.5 beside the trials: 1 + 2, not 3
    assert [g.split("-")[0] for g in pool.started] == ["1xcpu", "2xcpu"]
    pool.s.submit("1xcpu", "a", {"n": 1})
    assert len(pool.started) == 2  # the starting 1x group will take it
    one, two = pool.group("1xcpu"), pool.group("2xcpu")
    held = pool.s.next_job(one)
    assert held == Wait(pool.now + warm_scheduler.PRESTART_WAIT_S)  # 2x is still starting
    pool.now += 20
    assert isinstance(pool.s.next_job(two), Wait)  # up; nothing of its shape waits
    assert pool.s.next_job(one) == {"trial_id": "a", "train": {"n": 1}}
    assert events(pool) == [("started", "1xcpu"), ("started", "2xcpu"), ("up", "1xcpu"), ("up", "2xcpu"),
                            ("took a", "1xcpu")]


def test_prestart_hold_ends_after_prestart_wait_s_when_a_group_never_comes_up():
    pool = Pool(spec(1), spec(2), prestart_wait_s=60)
    pool.s.prestart(["1xcpu", "2xcpu"], free={"CPU": 8.0})
    pool.s.submit("1xcpu", "a", {})
    one = pool.group("1xcpu")
    assert pool.s.next_job(one) == Wait(1060.0)
    pool.now = 1059.9
    assert isinstance(pool.s.next_job(one), Wait)
    pool.now = 1060.0
    assert pool.s.next_job(one)["trial_id"] == "a"


def test_prestart_does_nothing_once_groups_exist_and_a_pool_without_prestart_holds_nothing():
    pool = Pool(spec(1))
    pool.s.submit("1xcpu", "a", {})
    pool.s.prestart(["1xcpu"], free={"CPU": 8.0})
    assert len(pool.started) == 1
    assert pool.s.next_job(pool.group("1xcpu"))["trial_id"] == "a"


def test_an_idle_group_ends_after_idle_s_counted_from_the_prestart_holds_end():
    pool = Pool(spec(1), spec(2), idle_s=30)
    pool.s.prestart(["1xcpu", "2xcpu"], free={"CPU": 8.0})
    one, two = pool.group("1xcpu"), pool.group("2xcpu")
    assert isinstance(pool.s.next_job(one), Wait)
    pool.now += 100  # 1x waited 100 s for 2x: not idle time
    pool.s.next_job(two)
    assert pool.s.next_job(one) == Wait(pool.now + 30)
    pool.now += 29
    assert isinstance(pool.s.next_job(one), Wait)
    pool.now += 1
    assert pool.s.next_job(one) is None
    assert pool.s.next_job(one) is None  # told once, it stays told
    pool.s.group_ended(one, None)
    assert events(pool)[-1] == ("ended", "1xcpu") and pool.started == [one, two]  # nothing waits: no new group


def test_idle_groups_of_other_shapes_end_at_once_for_a_group_that_does_not_fit_beside_them():
    # test_warm_pool's case: 4 CPUs, the 1x and 2x groups idle, then a 3-worker configuration
    pool = Pool(spec(1), spec(2), spec(3), capacity={"CPU": 4.0}, reserve={"CPU": 0.5})
    pool.s.prestart(["1xcpu", "2xcpu", "3xcpu"], free={"CPU": 4.0})
    one, two = pool.group("1xcpu"), pool.group("2xcpu")
    for gid, key, trial in ((one, "1xcpu", "a"), (two, "2xcpu", "b")):
        pool.s.submit(key, trial, {})
    pool.s.next_job(one)
    assert pool.run(two) == "b" and pool.run(one) == "a"
    assert isinstance(pool.s.next_job(one), Wait) and isinstance(pool.s.next_job(two), Wait)
    pool.s.submit("3xcpu", "c", {})
    three = pool.group("3xcpu")
    assert pool.s.next_job(one) is None and pool.s.next_job(two) is None  # 1 + 2 + 3 + 0.5 > 4
    pool.s.group_ended(one, None)
    pool.s.group_ended(two, None)
    assert pool.run(three) == "c"
    order = events(pool)
    assert order.index(("ended", "2xcpu")) < order.index(("up", "3xcpu"))


def test_idle_groups_stay_while_the_starting_group_fits_beside_them():
    pool = Pool(spec(1), spec(2), capacity={"CPU": 4.0})
    pool.s.submit("1xcpu", "a", {})
    one = pool.group("1xcpu")
    pool.run(one)
    pool.s.submit("2xcpu", "b", {})
    assert pool.s.next_job(one) == Wait(pool.now + warm_scheduler.IDLE_S)  # 1 + 2 <= 4: no release


def test_idle_groups_end_for_a_group_starting_longer_than_start_wait_s():
    # what Ray holds for others is not the pool's to count: past start_wait_s a starting group starves anyway
    pool = Pool(spec(1), spec(2), capacity={"CPU": 64.0}, idle_s=600, start_wait_s=120)
    pool.s.submit("1xcpu", "a", {})
    one = pool.group("1xcpu")
    pool.run(one)
    pool.now += 10
    pool.s.submit("2xcpu", "b", {})
    assert pool.s.next_job(one) == Wait(pool.now + 120)  # when the 2x group would starve
    pool.now += 119
    assert isinstance(pool.s.next_job(one), Wait)
    pool.now += 1
    assert pool.s.next_job(one) is None


def test_starvation_counts_gpus_by_type():
    capacity = {"CPU": 64.0, "GPU": 8.0, gpu_resource("H100"): 4.0, gpu_resource("A100"): 4.0}
    pool = Pool(spec(4, "H100"), spec(2, "H100"), spec(2, "A100"), capacity=capacity)
    pool.s.submit("4xH100", "a", {})
    four = pool.group("4xH100")
    pool.run(four)
    pool.s.submit("2xA100", "b", {})
    assert isinstance(pool.s.next_job(four), Wait)  # A100s are free: 4 + 2 GPUs of 8
    pool.s.submit("2xH100", "c", {})
    assert pool.s.next_job(four) is None  # 6 H100s asked of 4


def test_a_group_with_work_of_its_own_shape_takes_it_while_another_shape_starves():
    pool = Pool(spec(1), spec(3), capacity={"CPU": 3.0})
    pool.s.submit("1xcpu", "a", {})
    one = pool.group("1xcpu")
    pool.s.next_job(one)
    pool.s.submit("3xcpu", "b", {})
    pool.s.submit("1xcpu", "c", {})
    pool.s.finish(one, "a", {"status": "ok"})
    assert pool.s.next_job(one)["trial_id"] == "c"


def test_a_busy_shape_gets_groups_up_to_max_groups_and_a_finished_group_takes_the_rest():
    pool = Pool(spec(1, max_groups=2))
    for trial in "abc":
        pool.s.submit("1xcpu", trial, {})
    assert len(pool.started) == 2
    first, second = pool.started
    assert pool.run(first) == "a" and pool.run(second) == "b"
    assert pool.run(first) == "c" and len(pool.started) == 2
    assert pool.s.take_result("c") == {"result": {"status": "ok"}, "warm": True, "group_trials": 2}
    assert pool.s.take_result("c") is None  # handed over once
    assert pool.s.take_result("b")["warm"] is False


def test_an_oom_reported_by_a_one_rank_group_keeps_it_warm_for_the_next_configuration():
    pool = Pool(spec(1))
    pool.s.submit("1xcpu", "big", {})
    pool.s.submit("1xcpu", "small", {})
    one = pool.group("1xcpu")
    pool.run(one, {"status": "oom", "error": "CUDA out of memory"})
    assert pool.run(one) == "small" and pool.started == [one]
    assert pool.s.take_result("big") == {"result": {"status": "oom", "error": "CUDA out of memory"}, "warm": False,
                                         "group_trials": 1}
    assert pool.s.take_result("small")["group_trials"] == 2


def test_an_oom_raised_from_a_group_ends_it_is_recorded_not_retried_and_the_next_configuration_gets_a_fresh_group():
    pool = Pool(spec(2, max_failures=3))
    pool.s.submit("2xcpu", "big", {})
    pool.s.submit("2xcpu", "small", {})
    first = pool.group("2xcpu")
    pool.s.next_job(first)
    pool.s.group_ended(first, ("oom", "CUDA out of memory"))
    assert pool.s.take_result("big") == {"error": ("oom", "CUDA out of memory"), "warm": False, "group_trials": 1}
    fresh = pool.group("2xcpu", 2)
    assert pool.run(fresh) == "small"


def test_a_failure_is_retried_on_a_fresh_group_then_recorded():
    pool = Pool(spec(1, max_failures=1))
    pool.s.submit("1xcpu", "a", {"n": 1})
    pool.s.submit("1xcpu", "b", {"n": 2})
    first = pool.group("1xcpu")
    assert pool.s.next_job(first)["trial_id"] == "a"
    pool.s.group_ended(first, ("failed", "NCCL error"))
    assert pool.s.take_result("a") is None
    second = pool.group("1xcpu", 2)
    assert pool.s.next_job(second) == {"trial_id": "a", "train": {"n": 1}}  # first in line again, before b
    pool.s.group_ended(second, ("failed", "NCCL error"))
    assert pool.s.take_result("a") == {"error": ("failed", "NCCL error"), "warm": False, "group_trials": 1}
    assert pool.run(pool.group("1xcpu", 3)) == "b"


def test_a_group_ending_without_an_error_mid_configuration_fails_it():
    pool = Pool(spec(1))
    pool.s.submit("1xcpu", "a", {})
    one = pool.group("1xcpu")
    pool.s.next_job(one)
    pool.s.group_ended(one, None)
    assert pool.s.take_result("a")["error"] == ("failed", "the worker group ended while running this trial")


def test_a_group_that_fails_to_start_is_replaced_while_work_waits():
    pool = Pool(spec(1))
    pool.s.submit("1xcpu", "a", {})
    pool.s.group_ended(pool.group("1xcpu"), ("failed", "could not start"))
    assert len(pool.started) == 2 and pool.run(pool.group("1xcpu", 2)) == "a"


def test_close_answers_waiting_jobs_ends_idle_groups_and_starts_none():
    pool = Pool(spec(1, max_failures=5), spec(2))
    for trial in ("a", "b"):
        pool.s.submit("1xcpu", trial, {})
    pool.s.submit("2xcpu", "c", {})
    one, two = pool.group("1xcpu"), pool.group("2xcpu")
    pool.s.next_job(one)  # busy with a
    pool.s.close()
    assert pool.s.take_result("b") == {"error": CLOSED, "warm": False, "group_trials": 0}
    assert pool.s.take_result("c")["error"] == CLOSED
    assert pool.s.next_job(two) is None  # up after the close: ends
    pool.s.finish(one, "a", {"status": "ok"})
    assert pool.s.next_job(one) is None  # the running configuration finished first
    pool.s.group_ended(one, None)
    pool.s.group_ended(two, None)
    pool.s.submit("1xcpu", "d", {})
    assert pool.s.take_result("d")["error"] == CLOSED and len(pool.started) == 2
    assert pool.s.take_result("a")["result"] == {"status": "ok"}


def test_a_failure_after_close_is_recorded_not_retried():
    pool = Pool(spec(1, max_failures=5))
    pool.s.submit("1xcpu", "a", {})
    one = pool.group("1xcpu")
    pool.s.next_job(one)
    pool.s.close()
    pool.s.group_ended(one, ("failed", "worker died"))
    assert pool.s.take_result("a")["error"] == ("failed", "worker died") and pool.started == [one]


def test_the_scheduler_imports_no_ray_nor_torch():
    tree = ast.parse(inspect.getsource(warm_scheduler))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"ray", "torch", "slmray"}, imported


@pytest.mark.parametrize("workers, gpu, holds", [
    (2, None, {"CPU": 2.0}), (4, "H100", {"CPU": 4.0, "GPU": 4.0, "GPU:H100": 4.0})])
def test_a_group_holds_its_workers_resources(workers, gpu, holds):
    assert spec(workers, gpu).holds == holds


def test_an_infrastructure_failure_is_retried_on_fresh_groups_apart_from_max_failures_then_handed_back():
    pool = Pool(spec(1, max_failures=0))  # the configuration's own failures are not retried at all
    pool.s.submit("1xcpu", "a", {"n": 1})
    for nth in range(1, INFRASTRUCTURE_RETRIES + 1):
        group = pool.group("1xcpu", nth)
        assert pool.s.next_job(group) == {"trial_id": "a", "train": {"n": 1}}
        pool.s.group_ended(group, (INFRASTRUCTURE_STATUS, "The actor died unexpectedly"))
        assert pool.s.take_result("a") is None  # a fresh group takes it
    last = pool.group("1xcpu", INFRASTRUCTURE_RETRIES + 1)
    pool.s.next_job(last)
    pool.s.group_ended(last, (INFRASTRUCTURE_STATUS, "The actor died unexpectedly"))
    assert pool.s.take_result("a")["error"] == (INFRASTRUCTURE_STATUS, "The actor died unexpectedly")
    assert len(pool.started) == INFRASTRUCTURE_RETRIES + 1


def test_infrastructure_retries_leave_the_configurations_own_retries_whole():
    pool = Pool(spec(1, max_failures=1))
    pool.s.submit("1xcpu", "a", {})
    first = pool.group("1xcpu")
    pool.s.next_job(first)
    pool.s.group_ended(first, (INFRASTRUCTURE_STATUS, "node died"))
    second = pool.group("1xcpu", 2)
    pool.s.next_job(second)
    pool.s.group_ended(second, ("failed", "NCCL error"))  # its one retry of its own is still there
    assert pool.s.take_result("a") is None
    third = pool.group("1xcpu", 3)
    pool.s.next_job(third)
    pool.s.group_ended(third, ("failed", "NCCL error"))
    assert pool.s.take_result("a")["error"] == ("failed", "NCCL error")
