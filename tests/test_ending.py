"""How a sweep run that did not finish ends (`slmray.sweep.ending`, `slmray.sweep.driver.storage_full`):
the lines it prints from the rows on storage, and the processes of the run found by the mark in
their environment."""

import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from slmray.results.table import to_table, write_table
from slmray.sweep.driver import storage_full
from slmray.sweep.ending import RUN_VARIABLE, end_run_processes, run_processes, stopped_lines

CONTINUE = "python -m slmray.tune s.py --name x --resume"


def test_the_lines_say_what_the_rows_hold_and_how_to_continue(tmp_path):
    sweep = tmp_path / "x"
    (sweep / "rows").mkdir(parents=True)
    (sweep / "tuner.pkl").write_bytes(b"")
    for trial_id in ("a", "b"):
        write_table(to_table([{"sweep_id": "x", "trial_id": trial_id, "status": "ok"}]), str(sweep / "rows" / f"{trial_id}.parquet"))
    assert stopped_lines(str(sweep), 5, "stopped by SIGTERM", CONTINUE) == (
        f"stopped by SIGTERM: 2 of 5 trials recorded, 3 left (table: {sweep}/results.parquet)\ncontinue with: {CONTINUE}")
    assert stopped_lines(str(sweep), None, "why", CONTINUE).startswith("why: 2 trials recorded (table: ")


def test_before_tune_began_it_is_one_line_saying_nothing_was_recorded(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "space.json").write_text("{}")  # what the command writes before Ray starts
    assert stopped_lines(str(tmp_path / "x"), None, "stopped by SIGHUP", CONTINUE) == "stopped by SIGHUP: nothing was recorded"


def raised(exc: BaseException, cause: BaseException) -> BaseException:
    try:
        raise exc from cause
    except BaseException as e:
        return e


@pytest.mark.parametrize("exc, full", [
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
    (OSError("[Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device"), True),
    (raised(RuntimeError("Saving experiment state failed"), OSError(errno.ENOSPC, "full")), True),
    (OSError(errno.EACCES, "Permission denied"), False),
    (RuntimeError("a bug"), False),
])
def test_a_full_storage_is_found_anywhere_in_the_chain(exc, full):
    assert storage_full(exc) is full


@pytest.mark.subprocess  # processes of its own
def test_the_runs_processes_are_found_by_their_mark_and_ended_whatever_their_session():
    mark = f"test-{os.getpid()}-{time.time_ns()}"
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    sleepers = [subprocess.Popen([sys.executable, "-c", stubborn], env={**os.environ, RUN_VARIABLE: mark},
                                 stdout=subprocess.PIPE, start_new_session=True)]
    assert sleepers[0].stdout.readline() == b"ready\n"  # it ignores SIGTERM from now on
    sleepers.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env={**os.environ, RUN_VARIABLE: mark}))
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env={**os.environ, RUN_VARIABLE: mark + "0"})
    try:
        deadline = time.time() + 10
        while sorted(run_processes(mark)) != sorted(p.pid for p in sleepers) and time.time() < deadline:
            time.sleep(0.05)
        assert sorted(run_processes(mark)) == sorted(p.pid for p in sleepers)  # not a run whose id only begins alike
        end_run_processes(mark, grace_s=1.0)  # the first ignores SIGTERM: SIGKILL after the grace
        assert [p.wait(timeout=10) for p in sleepers] == [-9, -15]
        assert run_processes(mark) == [] and other.poll() is None
    finally:
        for p in (*sleepers, other):
            p.kill()
            p.wait()


def test_a_grid_is_stored_with_its_sweep_and_one_cut_short_reads_as_none(tmp_path):
    from slmray.sweep.driver import GRID_FILE, store_grid, stored_grid, unrecorded
    from slmray.sweep.space import Trial

    configs = [Trial("tiny", batch, 1, "sdpa", "ddp", None, False, 32, False).as_config() for batch in (1, 2, 4)]
    store_grid(str(tmp_path), configs)
    assert stored_grid(str(tmp_path)) == configs
    row = {**configs[1], "gpu_type": "cpu", "requested_gpu_type": None, "status": "failed"}
    assert unrecorded(stored_grid(str(tmp_path)), [row]) == [configs[0], configs[2]]  # a failed row is recorded too
    text = (tmp_path / GRID_FILE).read_text()
    (tmp_path / GRID_FILE).write_text(text[: len(text) // 2])  # a full disk
    assert stored_grid(str(tmp_path)) is None and stored_grid(str(tmp_path / "none")) is None


BLOCKED_IN_C = """
import ctypes, os, signal, sys
from slmray.sweep.ending import SignalThread

def handler(signum):
    print("handled", signum, flush=True)
    os._exit(128 + signum)

signal.signal(signal.SIGTERM, lambda signum, frame: handler(signum))  # the main thread's, as the driver's
if sys.argv[1] == "thread":
    SignalThread([signal.SIGTERM], handler).install()
# blocked in C as in Ray's ray.get: system() retries its wait on EINTR, so no Python handler runs until it
# returns.  Its shell says "ready" once this process is inside it; sleep's output goes elsewhere, so the
# pipe ends with this process.
ctypes.CDLL(None).system(b"echo ready; exec sleep 3 >/dev/null")
print("returned", flush=True)
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("mode", ["thread", "main only"])
def test_a_signal_is_handled_at_once_while_the_main_thread_is_blocked_in_c(mode):
    child = subprocess.Popen([sys.executable, "-c", BLOCKED_IN_C, mode], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "ready\n"
    sent = time.monotonic()
    child.send_signal(15)
    out, _ = child.communicate(timeout=30)
    took = time.monotonic() - sent
    assert child.returncode == 143 and out.splitlines()[0] == "handled 15", (child.returncode, out)
    if mode == "thread":
        assert took < 1.5, took
    else:  # without the thread the handler waits for the C call: what the thread is for
        assert took > 2.0 and "returned" not in out, (took, out)


@pytest.mark.subprocess
def test_the_signal_thread_says_which_of_its_signals_arrived():
    """`arrived`: an error the main thread raises while a signal ends the run is that signal's doing;
    a signal the thread does not handle (here SIGALRM; a sweep's SIGINT) or none is not."""
    code = """
import os, signal
from slmray.sweep.ending import SignalThread

signal.signal(signal.SIGUSR2, lambda *a: None)
signal.signal(signal.SIGALRM, lambda *a: None)
seen = []
t = SignalThread([signal.SIGUSR2], seen.append)
t.install()
print(t.arrived(0.2))
os.kill(os.getpid(), signal.SIGALRM)
print(t.arrived())
os.kill(os.getpid(), signal.SIGUSR2)
print(t.arrived(), seen)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.splitlines() == ["None", "None", f"{int(signal.SIGUSR2)} [{int(signal.SIGUSR2)}]"], out
