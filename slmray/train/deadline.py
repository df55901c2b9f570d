"""A time limit on a training run that needs no cooperation from the code it limits.

A run can stall where no step boundary is reached: building a batch of 10^9 sequences on the
CPU, a kernel that runs for an hour.  A check between steps would never run, and a Ray Train
worker's loop does not run in the main thread, so `signal.alarm` cannot reach it.  `Deadline`
arms a timer thread that, once the time is up, raises `TimeLimitExceeded` in the thread that
runs the training (CPython's documented `PyThreadState_SetAsyncExc`): pure-Python work stops at
once, a long native call (one kernel, one collective) as soon as it returns to Python.
"""

from __future__ import annotations

import ctypes
import threading


class TimeLimitExceeded(BaseException):
    """Raised into the limited thread.  A BaseException, as KeyboardInterrupt is: library code's
    `except Exception` must not swallow it."""


class Deadline:
    """`with Deadline(seconds):` raises `TimeLimitExceeded` in this thread once `seconds` pass;
    None or 0 sets no limit.  Leaving the block disarms it, also when it fires as the block ends."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.fired = False
        self._lock = threading.Lock()
        self._armed = False
        self._timer: threading.Timer | None = None

    def __enter__(self) -> Deadline:
        if self.seconds:
            self._thread_id = threading.get_ident()
            self._armed = True
            self._timer = threading.Timer(self.seconds, self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def _fire(self) -> None:
        with self._lock:
            if not self._armed:
                return
            self.fired = True
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread_id),
                                                       ctypes.py_object(TimeLimitExceeded))

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._timer is None:
            return
        self._timer.cancel()
        with self._lock:
            self._armed = False
            if self.fired and exc_type is not TimeLimitExceeded:  # fired as the block ended: not raised yet
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread_id), None)
