"""A failed worker group's error as a trial's status (`slmray.sweep.failure`), on errors built as
Ray Train raises them: `WorkerGroupError` (ranks' errors), `ControllerError`, a task's error;
and Ray's own errors for a dead process, node or raylet, which are the cluster's failure."""

import pytest
import torch
from ray.exceptions import RayTaskError
from ray.train import ControllerError, WorkerGroupError

from slmray.sweep.failure import ERROR_CHARS, InfrastructureFailure, error_line, failure, infrastructure_in, worker_errors
from slmray.sweep.warm_scheduler import INFRASTRUCTURE_STATUS

CPU_OOM = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 1099511627776 bytes."


def raised(exc: BaseException, cause: BaseException | None = None) -> BaseException:
    """`exc` as raised `from cause` (its __cause__ set as Python sets it)."""
    try:
        raise exc from cause
    except BaseException as e:
        return e


def test_an_oom_on_any_rank_makes_the_trial_oom():
    # rank 0 blocked in a collective times out; rank 1 ran out of memory
    exc = WorkerGroupError("2 workers failed", {0: RuntimeError("Timed out waiting for the all-reduce"),
                                                1: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")})
    assert failure(exc) == ("oom", "CUDA out of memory. Tried to allocate 2 GiB")


def test_the_cpu_allocators_refusal_is_an_oom():
    assert failure(WorkerGroupError("1 worker failed", {0: RuntimeError(CPU_OOM)})) == ("oom", CPU_OOM)


def test_an_oom_found_down_a_workers_chain_of_causes():
    wrapped = raised(RuntimeError("the training step failed"), torch.OutOfMemoryError("CUDA out of memory"))
    assert failure(WorkerGroupError("1 worker failed", {0: wrapped}))[0] == "oom"


def test_an_oom_re_raised_by_ray_as_a_type_of_its_own():
    as_cause = RayTaskError("run", "Traceback ...", torch.OutOfMemoryError("CUDA out of memory")).as_instanceof_cause()
    assert "OutOfMemoryError" in type(as_cause).__name__
    assert failure(WorkerGroupError("1 worker failed", {0: as_cause}))[0] == "oom"


def test_other_errors_fail_with_the_first_ranks_error_line():
    error = ValueError("Traceback (most recent call last):\n  File x\nOSError: Parquet magic bytes not found")
    exc = WorkerGroupError("2 workers failed", {1: RuntimeError("rank 1: NCCL error: unhandled system error"), 0: error})
    assert worker_errors(exc) == [error, exc.worker_failures[1]]  # by rank
    assert failure(exc) == ("failed", "OSError: Parquet magic bytes not found")


def test_a_task_error_wrapping_the_worker_group_error_is_read_through():
    inner = WorkerGroupError("1 worker failed", {0: RuntimeError(CPU_OOM)})
    assert failure(RayTaskError("fit", "Traceback ...", inner))[0] == "oom"


def test_a_controller_error_is_its_controllers_failure():
    exc = ControllerError(RuntimeError("The worker group did not start within 60 s"))
    assert worker_errors(exc) == [exc.controller_failure]
    assert failure(exc) == ("failed", "The worker group did not start within 60 s")


@pytest.mark.parametrize("exc, line", [
    (RuntimeError(""), "RuntimeError"),
    (RuntimeError("first\nsecond"), "first"),
    (KeyError("x"), "'x'"),
    (RuntimeError("x" * 2000 + " error"), "x" * ERROR_CHARS),
])
def test_any_other_exception_fails_with_one_short_line(exc, line):
    assert failure(exc) == ("failed", line)
    assert error_line(exc) == line


def infrastructure_cases():
    """Each error Ray raises when a process, actor, node or raylet died, as a fit would see it."""
    from ray.exceptions import (ActorDiedError, LocalRayletDiedError, NodeDiedError, ObjectLostError, OwnerDiedError,
                                RayActorError, WorkerCrashedError)

    return [ActorDiedError(), RayActorError(), NodeDiedError("node 3f2a died"), WorkerCrashedError(),
            OwnerDiedError("0" * 56, "", "f.py:3"), ObjectLostError("0" * 56, "", "f.py:3"), LocalRayletDiedError()]


@pytest.mark.parametrize("dead", infrastructure_cases(), ids=lambda e: type(e).__name__)
def test_a_dead_process_node_or_raylet_is_the_clusters_failure_however_it_arrives(dead):
    for exc in (dead, WorkerGroupError("1 worker failed", {0: dead}), ControllerError(dead),
                RayTaskError("fit", "Traceback ...", dead), raised(RuntimeError("the step failed"), dead)):
        status, line = failure(exc)
        assert status == INFRASTRUCTURE_STATUS, (exc, status)
        assert line and "\n" not in line


def test_a_workers_own_error_beside_a_dead_one_is_still_the_clusters_when_none_ran_out_of_memory():
    from ray.exceptions import ActorDiedError

    # rank 1's process was killed; rank 0 then failed its collective: the configuration did nothing wrong
    exc = WorkerGroupError("2 workers failed", {0: RuntimeError("gloo: connection reset by peer"), 1: ActorDiedError()})
    assert failure(exc)[0] == INFRASTRUCTURE_STATUS
    exc = WorkerGroupError("2 workers failed", {0: ActorDiedError(), 1: RuntimeError(CPU_OOM)})
    assert failure(exc)[0] == "oom"  # an out-of-memory is the configuration's, whatever else died


def test_a_task_error_of_the_configurations_own_is_not_infrastructure():
    error = RayTaskError("fit", "Traceback ...", ValueError("Parquet magic bytes not found")).as_instanceof_cause()
    assert failure(error)[0] == "failed" and infrastructure_in(error) is None
    assert infrastructure_in(RayTaskError("run", "Traceback ...", InfrastructureFailure("pool gone"))) is not None
