"""A sweep under faults that are not its configurations' doing, through the real command on a local
Ray: the warm pool's process killed, the raylet killed, the signals a scheduler sends, a full
disk.  Each ends with every configuration recorded exactly once (after `--resume` where the sweep
had to stop), none `failed` for it, slmray's own lines on the console, and no process of the run
left behind."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slmray.results.table import read_table
from slmray.sweep.ending import RUN_VARIABLE

from tests.conftest import run_cli

pytestmark = [pytest.mark.ray, pytest.mark.subprocess]  # each sweep is `python -m slmray.tune`, its own Ray

BATCHES = [1, 2, 4, 8]
SPACE = f"""
from slmray.sweep.space import SearchSpace
SPACE = SearchSpace(model=["tiny"], per_device_batch={BATCHES}, num_gpus=[1], attention=["sdpa"], strategy=["ddp"],
                    seq_len=32, steps=200, warmup_steps=1, device="cpu")
"""  # 200 steps: a second or two a trial on a warm group, time to act while one runs
RAY_NOISE = ("Traceback", "(raylet)", "Raylet is terminated", "A worker died", "SIGTERM received", "logging.cc")


def run_processes(driver_pid: int) -> list[str]:
    """The command lines of live processes started by the run of `driver_pid` (their environment
    carries the run's id, which begins with the driver's pid)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if f"{RUN_VARIABLE}={driver_pid}-".encode() in (entry / "environ").read_bytes():
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state not in ("Z", "X"):
                    found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found


def start(space: Path, storage: Path, name: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "slmray.tune", str(space), "--storage", str(storage), "--name", name,
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_until(condition, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


def rows_in(sweep_dir: Path) -> list[Path]:
    return list((sweep_dir / "rows").glob("*.parquet"))


def kill_the_runs(command: str, driver_pid: int) -> None:
    """SIGKILL the first process of the run whose command line contains `command`."""
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if f"{RUN_VARIABLE}={driver_pid}-".encode() in (entry / "environ").read_bytes() and \
                    command.encode() in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
                return
        except OSError:
            continue
    raise AssertionError(f"no process {command!r} in the run")


def assert_every_configuration_once(sweep_dir: Path) -> None:
    rows = read_table(str(sweep_dir / "results.parquet")).to_pylist()
    assert sorted(r["per_device_batch"] for r in rows) == BATCHES, [(r["trial_id"], r["per_device_batch"]) for r in rows]
    assert all(r["status"] == "ok" for r in rows), [(r["status"], r["error"]) for r in rows]
    assert sorted(p.stem for p in rows_in(sweep_dir)) == sorted(r["trial_id"] for r in rows)


@pytest.fixture
def space(tmp_path) -> Path:
    path = tmp_path / "space.py"
    path.write_text(SPACE)
    return path


def test_a_killed_warm_pool_is_started_again_and_no_configuration_is_charged_for_it(space, tmp_path):
    driver = start(space, tmp_path / "s", "pool")
    wait_until(lambda: rows_in(tmp_path / "s" / "pool") or driver.poll() is not None)
    kill_the_runs("ray::WarmPool", driver.pid)  # mid-sweep: the next trial is waiting on it, or running there
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, out[-3000:] + err[-3000:]
    assert "4/4 done: 4 ok, 0 oom, 0 failed" in out
    assert not any(noise in out + err for noise in RAY_NOISE), out[-3000:] + err[-3000:]
    assert_every_configuration_once(tmp_path / "s" / "pool")
    assert run_processes(driver.pid) == []


def test_a_killed_raylet_stops_the_sweep_with_what_is_left_and_resume_runs_each_remaining_configuration_once(
        space, tmp_path):
    sweep_dir = tmp_path / "s" / "raylet"
    driver = start(space, tmp_path / "s", "raylet")
    wait_until(lambda: rows_in(sweep_dir) or driver.poll() is not None)
    kill_the_runs("/raylet", driver.pid)  # Ray ends its driver at once: a watcher says what is left
    out, err = driver.communicate(timeout=300)
    assert driver.returncode != 0, out[-3000:] + err[-3000:]
    recorded = len(rows_in(sweep_dir))
    assert 1 <= recorded < 4
    assert f"{recorded} of 4 trials recorded, {4 - recorded} left" in out, out[-3000:]
    continue_line = next(line for line in out.splitlines() if line.startswith("continue with: "))
    assert continue_line.endswith("--name raylet --resume")
    assert not any(noise in out + err for noise in RAY_NOISE), out[-3000:] + err[-3000:]
    assert run_processes(driver.pid) == []
    statuses = {read_table(str(p)).to_pylist()[0]["status"] for p in rows_in(sweep_dir)}
    assert statuses == {"ok"}  # no configuration was charged with the raylet's death

    out = run_cli("-m", "slmray.tune", *continue_line.removeprefix("continue with: python -m slmray.tune ").split(),
                  timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert_every_configuration_once(sweep_dir)


@pytest.mark.parametrize("sig, when", [(signal.SIGTERM, "running"), (signal.SIGTERM, "ray starting"),
                                       (signal.SIGHUP, "ray starting")])
def test_a_signal_to_the_process_group_ends_the_sweep_at_once_with_its_lines_and_no_process_left(
        space, tmp_path, sig, when):
    sweep_dir = tmp_path / "s" / "sig"
    driver = start(space, tmp_path / "s", "sig")
    if when == "running":
        wait_until(lambda: rows_in(sweep_dir) or driver.poll() is not None)
    else:  # the raylet is up, the driver still in ray.init or just past it
        wait_until(lambda: any("/raylet" in p for p in run_processes(driver.pid)) or driver.poll() is not None)
    sent = time.monotonic()
    os.killpg(driver.pid, sig)  # what `timeout`, systemd, a container stop or a closed terminal send
    out, err = driver.communicate(timeout=120)
    took = time.monotonic() - sent
    assert driver.returncode == 128 + sig, (driver.returncode, out[-3000:] + err[-3000:])
    assert took < 20, took
    name = signal.Signals(sig).name
    if when == "running":
        recorded = len(rows_in(sweep_dir))
        assert f"stopped by {name}: {recorded} of 4 trials recorded, {4 - recorded} left" in out, out[-3000:]
        assert "continue with: python -m slmray.tune " in out
    else:
        assert [line for line in out.splitlines() if line.strip()] == [f"stopped by {name}: nothing was recorded"], out
    assert not any(noise in out + err for noise in RAY_NOISE), out[-3000:] + err[-3000:]
    wait_until(lambda: run_processes(driver.pid) == [], timeout=10)


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (root only), nearly filled: the sweep's writes fail with ENOSPC part-way."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_stops_the_sweep_in_one_line_and_resume_records_every_configuration_once(space, small_disk):
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (1024 * 1024 - 120 * 1024))  # 120 KiB left: Tune's state alone takes more
    out = run_cli("-m", "slmray.tune", str(space), "--storage", str(small_disk), "--name", "full", timeout=600)
    sweep_dir = small_disk / "full"
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    assert out.stderr.strip().splitlines() == [
        f"error: {sweep_dir}: no space left on the sweep's storage; free some, then continue with: python -m "
        f"slmray.tune {space} --storage {small_disk} --name full --resume"], out.stderr[-3000:]
    assert len(rows_in(sweep_dir)) < 4
    filler.unlink()
    out = run_cli("-m", "slmray.tune", str(space), "--storage", str(small_disk), "--name", "full", "--resume",
                  timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "4/4 done" in out.stdout and "5/4" not in out.stdout
    assert_every_configuration_once(sweep_dir)
