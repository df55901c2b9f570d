"""How a sweep run ends when it does not finish: its closing lines, and no process of its own left.

A local Ray dies with its driver in ways no Python code of the driver sees: a killed raylet
makes Ray's core worker end the driver process at once ("The connection to the plasma store is
failed. Terminate the process."), and a SIGTERM to the process group ends Ray's own processes
under the driver.  So:

- Every process this run starts carries `RUN_VARIABLE` in its environment (Ray's processes
  inherit the driver's): `run_processes` finds them, whatever session or parent they have now,
  and `end_run_processes` ends them.
- A watcher (`python -m slmray.sweep.ending`, light: no Ray, no torch), started before Ray,
  waits on a pipe from the driver.  If the driver ends without writing `DONE` into it (it died),
  the watcher prints the lines the driver would have (`stopped_lines`: trials recorded, how to
  continue), read from the sweep's rows, and ends what the run left running.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

RUN_VARIABLE = "SLMRAY_RUN"
"""Set to a run's id in the environment of the driver, and so of every process its local Ray starts."""
DONE = b"done\n"
"""What the driver writes to its watcher once it has said how it ended."""
END_GRACE_S = 3.0
"""How long a run's processes have after SIGTERM before SIGKILL (Ray's shut down in under a second)."""


def stopped_lines(sweep_dir: str, runs: int | None, why: str, continue_with: str) -> str:
    """What a sweep that stopped early prints: the trials its rows hold (of `runs`, when known) and
    the command that continues it, or one line where it stopped before Tune began.  Read from
    storage: it needs no Ray."""
    from slmray.results.storage import exists, join, list_files
    from slmray.results.table import RESULTS_FILE

    recorded = len(list_files(join(sweep_dir, "rows"), ".parquet"))
    if not recorded and not exists(join(sweep_dir, "tuner.pkl")):  # Tune never began: nothing to resume
        return f"{why}: nothing was recorded"
    of = f" of {runs} trials recorded, {max(runs - recorded, 0)} left" if runs is not None else " trials recorded"
    return f"{why}: {recorded}{of} (table: {join(sweep_dir, RESULTS_FILE)})\ncontinue with: {continue_with}"


class SignalThread:
    """Runs `handler(signum)` on a thread of its own the moment one of `signals` arrives.

    Python runs a signal's handler in the main thread between bytecodes.  A driver blocked in
    Ray's C++ (`ray.get`) runs it only when that call looks up, and a SIGTERM to the process group
    has meanwhile stopped the raylet too, whose loss Ray's core worker answers by ending the process
    itself (exit 1, "The program will terminate"): a race the driver's handler sometimes lost.  The
    interpreter's C-level handler also writes the signal's number to the pipe of
    `signal.set_wakeup_fd` at once; this thread, blocked on that pipe with the GIL free, runs the
    handler without waiting for the main thread.  The Python-level handlers stay installed (for a
    signal that arrives while something else holds the wakeup fd), so `handler` must tolerate being
    called twice."""

    def __init__(self, signals: Iterable[int], handler: Callable[[int], None]):
        self.signals, self.handler = {int(s) for s in signals}, handler
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)  # the C handler must never block on a full pipe
        self._previous_fd = -1
        self.received: int | None = None
        """The last of `signals` the thread read from the pipe (set before its handler runs)."""
        threading.Thread(target=self._run, name="slmray-signals", daemon=True).start()

    def install(self) -> None:
        """Take the wakeup fd (from the main thread); again after something else set one (`ray.init`)."""
        previous = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        if previous != self._write:
            self._previous_fd = previous

    def close(self) -> None:
        """Give the wakeup fd back and end the thread (it reads the pipe's end)."""
        try:
            signal.set_wakeup_fd(self._previous_fd)
        except ValueError:  # the previous owner closed its fd meanwhile
            signal.set_wakeup_fd(-1)
        os.close(self._write)

    def arrived(self, wait_s: float = 1.0) -> int | None:
        """The signal of `signals` that arrived, if any, once the thread has read what the pipe holds
        (waiting up to `wait_s`): an error the main thread raises while such a signal ends the run
        (Ray's objects lost with the raylet the same signal ended) is that signal's doing."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and select.select([self._read], [], [], 0)[0]:
            time.sleep(0.01)
        if self.received is None:
            time.sleep(0.05)  # read but not yet recorded
        return self.received

    def _run(self) -> None:
        while data := os.read(self._read, 64):
            for signum in data:
                if signum in self.signals:
                    self.received = signum
                    self.handler(signum)
        os.close(self._read)


def new_run_id() -> str:
    return f"{os.getpid()}-{time.time_ns()}"


def run_processes(run_id: str) -> list[int]:
    """The live processes (but this one) whose environment carries `RUN_VARIABLE=run_id` (Linux's /proc)."""
    needle = f"{RUN_VARIABLE}={run_id}".encode() + b"\0"
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        if pid == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if needle in environ and _state(pid) not in ("Z", "X", None):
            found.append(pid)
    return found


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def end_run_processes(run_id: str, grace_s: float = END_GRACE_S, spare: int | None = None) -> None:
    """SIGTERM every process of the run (but `spare`'s), then SIGKILL those still there after `grace_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = [pid for pid in run_processes(run_id) if pid != spare]
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + grace_s
        while pids and time.monotonic() < deadline:
            time.sleep(0.1)
            pids = [pid for pid in run_processes(run_id) if pid != spare]
        if not pids:
            return


class Watcher:
    """The driver's end of its watcher: `describe` what to print should the driver die, then `done`."""

    def __init__(self, run_id: str):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "slmray.sweep.ending", run_id, str(os.getpid())], stdin=subprocess.PIPE,
            start_new_session=True,  # a signal to the driver's process group leaves it to clean up after
            env={k: v for k, v in os.environ.items() if k != RUN_VARIABLE},
        )

    def describe(self, sweep_dir: str, runs: int | None, continue_with: str) -> None:
        """What the watcher prints if the driver dies from now on."""
        self._send(json.dumps({"sweep_dir": sweep_dir, "runs": runs, "continue_with": continue_with}).encode() + b"\n")

    def done(self) -> None:
        """The driver has said how it ended: the watcher only ends what the run left running."""
        self._send(DONE)
        try:
            self.process.stdin.close()
        except OSError:
            pass

    def _send(self, data: bytes) -> None:
        try:
            self.process.stdin.write(data)
            self.process.stdin.flush()
        except OSError:  # the watcher is gone: nothing to do about it
            pass


def watch(run_id: str, driver: int) -> int:
    """The watcher: read the driver's descriptions until the pipe closes; print its closing lines
    unless it said `DONE`; end the run's processes (the driver's own aside) either way."""
    described, finished = None, False
    for line in sys.stdin.buffer:
        if line == DONE:
            finished = True
        else:
            described = json.loads(line)
    if not finished and described:
        try:
            print(stopped_lines(described["sweep_dir"], described["runs"],
                                "the sweep stopped: its driver or its Ray ended unexpectedly (Ray's logs: "
                                "/tmp/ray/session_latest/logs)", described["continue_with"]), flush=True)
        except Exception as exc:  # storage unreachable: the command still continues the sweep
            print(f"the sweep stopped: its driver or its Ray ended unexpectedly ({exc})\n"
                  f"continue with: {described['continue_with']}", flush=True)
    end_run_processes(run_id, spare=driver)
    return 0


if __name__ == "__main__":
    sys.exit(watch(sys.argv[1], int(sys.argv[2])))
