"""What a failed worker group means for its trial: `oom` or `failed`, and one line saying why.

Ray Train raises `ray.train.WorkerGroupError` from `fit()` when workers fail (its public
`worker_failures` maps each rank to its error) and `ray.train.ControllerError` when the group
could not be run at all (`controller_failure`); a Ray task's error carries the one it wraps as
`cause`.  An out-of-memory on any rank makes the trial `oom`: a retry would only repeat it.
"""

from __future__ import annotations

ERROR_CHARS = 500
"""A recorded error's length at most: the row's `error` is one line, not a traceback."""


def failure(exc: BaseException) -> tuple[str, str]:
    """(status, message) for a failed fit: `oom` if any worker ran out of memory, else `failed`
    with the first rank's error."""
    errors = worker_errors(exc)
    for err in errors:
        oom = _out_of_memory_in(err)
        if oom is not None:
            return "oom", error_line(oom)
    return "failed", error_line(errors[0])


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

    chain, seen = [err], set()
    while chain:
        e = chain.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        # a worker's error may reach here re-raised by Ray as a type of its own ("RayTaskError(OutOfMemoryError)")
        if is_out_of_memory(e) or "OutOfMemoryError" in type(e).__name__ or "CUDA out of memory" in str(e):
            return e
        chain += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    return None


def error_line(exc: BaseException) -> str:
    """The line of an error's message that names the error (else its first), cut to `ERROR_CHARS`."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = next((line for line in lines if "Error" in line or "error" in line), lines[0] if lines else type(exc).__name__)
    return text[:ERROR_CHARS]
