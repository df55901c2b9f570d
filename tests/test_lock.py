"""The sweep lock: one driver per sweep name, never stuck after a SIGKILL, locally and on S3."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from slmray.results.storage import StorageError
from slmray.sweep import lock as lock_module
from slmray.sweep.lock import LockHeld, SweepLock

HOLD = """
import sys, time
from slmray.sweep.lock import SweepLock
SweepLock(sys.argv[1], "held").acquire()
print("locked", flush=True)
time.sleep(600)
"""


def _holder_process(sweep_dir: str, env: dict | None = None) -> subprocess.Popen:
    """Another driver: a process that takes the lock and sleeps holding it."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, sweep_dir], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _s3_env(monkeypatch, s3_server):
    for k, v in s3_server.items():
        monkeypatch.setenv(k, v)


@pytest.mark.unit
def test_local_lock_is_exclusive_and_reusable(tmp_path):
    sweep_dir = str(tmp_path / "sweep")
    with SweepLock(sweep_dir, "a"):
        with pytest.raises(LockHeld, match=rf"--name: sweep a is being run by another driver \(pid {os.getpid()} on "):
            SweepLock(sweep_dir, "a").acquire()
    with SweepLock(sweep_dir, "a"):  # released: free again
        pass


@pytest.mark.unit
def test_storage_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StorageError, match=r"--storage: .*/file is a file, not a directory"):
        SweepLock(str(tmp_path / "file" / "x"), "x").acquire()
    with pytest.raises(StorageError, match=r"^--storage: cannot make /proc/slmray-test/x: cannot write /proc \("):
        SweepLock("/proc/slmray-test/x", "x").acquire()


@pytest.mark.subprocess  # the holder is a process SIGKILLed
def test_local_lock_of_a_killed_driver_is_not_stuck(tmp_path):
    sweep_dir = str(tmp_path / "sweep")
    holder = _holder_process(sweep_dir)
    try:
        with pytest.raises(LockHeld, match=f"pid {holder.pid} on "):
            SweepLock(sweep_dir, "held").acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with SweepLock(sweep_dir, "held"):
        pass


@pytest.mark.s3
def test_s3_lock_uses_conditional_writes(monkeypatch, s3_server):
    _s3_env(monkeypatch, s3_server)
    sweep_dir = "s3://slmray-test/sweeps/a"
    first = SweepLock(sweep_dir, "a")
    first.acquire()
    try:
        with pytest.raises(LockHeld, match="sweep a is being run by another driver"):
            SweepLock(sweep_dir, "a").acquire()
    finally:
        first.release()
    # released: the object is gone and the next driver creates it anew
    second = SweepLock(sweep_dir, "a")
    second.acquire()
    second.release()


@pytest.mark.s3
def test_s3_lock_race_has_one_winner(monkeypatch, s3_server):
    """If-None-Match: * lets exactly one of several simultaneous creators through."""
    _s3_env(monkeypatch, s3_server)
    locks = [SweepLock("s3://slmray-test/sweeps/race", "race") for _ in range(6)]
    barrier, outcomes = threading.Barrier(len(locks)), []

    def take(lock):
        barrier.wait()
        try:
            lock.acquire()
            outcomes.append("won")
        except LockHeld:
            outcomes.append("held")

    threads = [threading.Thread(target=take, args=(lk,)) for lk in locks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["held"] * 5 + ["won"]
    for lk in locks:
        lk.release()


@pytest.mark.s3
def test_s3_lock_of_a_killed_driver_is_taken_over(monkeypatch, s3_server):
    _s3_env(monkeypatch, s3_server)
    sweep_dir = "s3://slmray-test/sweeps/killed"
    holder = _holder_process(sweep_dir, env=s3_server)
    try:
        with pytest.raises(LockHeld, match=f"pid {holder.pid} on "):
            SweepLock(sweep_dir, "killed").acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # its holder ran on this host and is gone: stale at once, without waiting out the lease
    taker = SweepLock(sweep_dir, "killed")
    taker.acquire()
    taker.release()


@pytest.mark.s3
def test_s3_lock_of_another_host_is_held_until_its_lease_runs_out(monkeypatch, s3_server):
    import boto3

    _s3_env(monkeypatch, s3_server)
    s3 = boto3.client("s3")
    other = {"host": "elsewhere", "pid": 1, "started": "1", "since": "2026-12-02T00:00:00+00:00"}
    s3.put_object(Bucket="slmray-test", Key="sweeps/remote/driver.lock", Body=json.dumps(other).encode())
    with pytest.raises(LockHeld, match="pid 1 on elsewhere"):
        SweepLock("s3://slmray-test/sweeps/remote", "remote").acquire()
    monkeypatch.setattr(lock_module, "LEASE_S", -1.0)  # its heartbeat is now older than the lease
    taker = SweepLock("s3://slmray-test/sweeps/remote", "remote")
    taker.acquire()
    assert json.loads(s3.get_object(Bucket="slmray-test", Key="sweeps/remote/driver.lock")["Body"].read())["pid"] == os.getpid()
    taker.release()


@pytest.mark.s3
def test_s3_heartbeat_keeps_the_lease_and_notices_a_takeover(monkeypatch, s3_server):
    import boto3

    _s3_env(monkeypatch, s3_server)
    monkeypatch.setattr(lock_module, "HEARTBEAT_S", 0.2)
    s3 = boto3.client("s3")
    lost = []
    held = SweepLock("s3://slmray-test/sweeps/beat", "beat", on_lost=lambda: lost.append(True))
    held.acquire()
    first = s3.head_object(Bucket="slmray-test", Key="sweeps/beat/driver.lock")["ETag"]
    deadline = time.time() + 10
    while s3.head_object(Bucket="slmray-test", Key="sweeps/beat/driver.lock")["ETag"] == first:
        assert time.time() < deadline, "no heartbeat refreshed the lock"
        time.sleep(0.1)
    s3.put_object(Bucket="slmray-test", Key="sweeps/beat/driver.lock", Body=b'{"host": "thief"}')
    while not held.lost:
        assert time.time() < deadline, "the holder did not notice the takeover"
        time.sleep(0.1)
    assert lost == [True] and lock_module.lock_lost("s3://slmray-test/sweeps/beat")  # it writes nothing more
    held.release()
    assert s3.get_object(Bucket="slmray-test", Key="sweeps/beat/driver.lock")["Body"].read() == b'{"host": "thief"}'
