"""What a failed worker group means for its trial: `oom`, `failed`, or `infrastructure` (not the
configuration's doing), and one line saying why.

Ray Train raises `ray.train.WorkerGroupError` from `fit()` when workers fail (its public
`worker_failures` maps each rank to its error) and `ray.train.ControllerError` when the group
could not be run at all (`controller_failure`); a Ray task's error carries the one it wraps as
`cause`.  An out-of-memory on any rank makes the trial `oom`: a retry would only repeat it.
A process, actor, node or raylet that died, or an object lost with it (`infrastructure_errors`), is the
cluster's failure: the configuration is run again on fresh resources and never recorded for it.
"""

from __future__ import annotations

from slmray.sweep.warm_scheduler import INFRASTRUCTURE_STATUS

ERROR_CHARS = 500
"""A recorded error's length at most: the row's `error` is one line, not a traceback."""


class InfrastructureFailure(RuntimeError):
    """A trial could not run for the cluster's sake (its retries on fresh resources used up, or Ray
    itself gone): the trial records nothing, and `--resume` runs its configuration again."""


def infrastructure_errors() -> tuple[type[BaseException], ...]:
    """Ray's errors that say a process, actor, node or raylet died, or an object went with it
    (`ray.exceptions`; `OwnerDiedError` is an `ObjectLostError`, `ActorDiedError` a `RayActorError`)."""
    from ray.exceptions import (LocalRayletDiedError, NodeDiedError, ObjectLostError, RayActorError,
                                WorkerCrashedError)

    return (RayActorError, NodeDiedError, WorkerCrashedError, ObjectLostError, LocalRayletDiedError)


def failure(exc: BaseException) -> tuple[str, str]:
    """(status, message) for a failed fit: `oom` if any worker ran out of memory, else
    `INFRASTRUCTURE_STATUS` if a process or node died under it, else `failed` with the first
    rank's error."""
    errors = worker_errors(exc)
    for err in errors:
        oom = _out_of_memory_in(err)
        if oom is not None:
            return "oom", error_line(oom)
    for err in errors:
        dead = infrastructure_in(err)
        if dead is not None:
            return INFRASTRUCTURE_STATUS, error_line(dead)
    return "failed", error_line(errors[0])


def infrastructure_in(exc: BaseException) -> BaseException | None:
    """The error in `exc`'s chain saying a process, node or raylet died (`infrastructure_errors`),
    a worker group's errors and a task error's `cause` included; None when there is none."""
    kinds = infrastructure_errors()
    for e in _chain(exc):
        if isinstance(e, (*kinds, InfrastructureFailure)):
            return e
    for err in worker_errors(exc):
        if err is not exc and infrastructure_in(err) is not None:
            return err
    return None


def _chain(err: BaseException):
    """`err`, its causes and contexts, and the errors Ray task errors wrap, each once."""
    chain, seen = [err], set()
    while chain:
        e = chain.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        chain += [e.__cause__, e.__context__, getattr(e, "cause", None)]


def worker_errors(exc: BaseException) -> list[BaseException]:
    """The errors behind a failed fit, by rank: a `WorkerGroupError`'s workers' (found through a
    task error's `cause` too), a `ControllerError`'s own, or `exc` itself."""
    from ray.train import ControllerError, WorkerGroupError

    for e in (exc, getattr(exc, "cause", None)):
        if isinstance(e, WorkerGroupError) and e.worker_failures:
            return [e.worker_failures[rank] for rank in sorted(e.worker_failures)]
        if isinstance(e, ControllerError):
            return [e.controller_failure]
    return [exc]


def _out_of_memory_in(err: BaseException) -> BaseException | None:
    """The out-of-memory error in `err`'s chain (its causes, contexts and wrapped task errors)."""
    from slmray.train.loop import is_out_of_memory  # torch loads once a failure is classified, not with the module

    for e in _chain(err):
        # a worker's error may reach here re-raised by Ray as a type of its own ("RayTaskError(OutOfMemoryError)");
        # Ray's memory monitor killing a worker is `ray.exceptions.OutOfMemoryError`: the configuration's doing
        if is_out_of_memory(e) or "OutOfMemoryError" in type(e).__name__ or "CUDA out of memory" in str(e):
            return e
    return None


def error_line(exc: BaseException) -> str:
    """The line of an error's message that names the error (else its first), cut to `ERROR_CHARS`."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = next((line for line in lines if "Error" in line or "error" in line), lines[0] if lines else type(exc).__name__)
    return text[:ERROR_CHARS]
