"""A run's time limit, the sweep's heartbeat, a damaged row file on resume (issue 27, item 14)."""

import shlex
import subprocess
import sys
import threading
import time

import pytest

from slmray.errors import ConfigError
from slmray.results.table import RESULTS_FILE, read_table, to_table, write_table
from slmray.train.config import TrainConfig
from slmray.train.deadline import Deadline, TimeLimitExceeded
from slmray.train.presets import get_model
from tests.conftest import call_main, run_cli


def test_a_deadline_stops_pure_python_work_that_never_reaches_a_check():
    started = time.perf_counter()
    with pytest.raises(TimeLimitExceeded):
        with Deadline(0.02):
            while True:  # as a batch of 10^9 rows built one by one: no step boundary to check at
                pass
    assert time.perf_counter() - started < 1.0


def test_a_deadline_left_in_time_raises_nothing_later():
    with Deadline(0.01):
        pass
    with Deadline(None):
        pass
    time.sleep(0.03)  # an armed timer would have raised by now


def test_a_deadline_limits_only_its_own_thread():
    hits = []

    def other():
        try:
            time.sleep(0.1)
        except TimeLimitExceeded:
            hits.append("other")

    thread = threading.Thread(target=other)
    thread.start()
    with pytest.raises(TimeLimitExceeded):
        with Deadline(0.02):
            while True:
                pass
    thread.join()
    assert hits == []


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf")])
def test_a_time_limit_is_a_positive_number_of_seconds(value):
    with pytest.raises(ConfigError, match="time_limit_s"):
        TrainConfig(model=get_model("tiny"), seq_len=32, time_limit_s=value)


def test_a_batch_that_cannot_fit_the_host_is_out_of_memory_at_once():
    import torch

    from slmray.data.sources import make_batches

    started = time.perf_counter()
    with pytest.raises(torch.OutOfMemoryError, match="GiB of host memory"):
        make_batches("synthetic", 256, 10**9, 64, 0, 1, 1, 0, torch.device("cpu"))
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "ten"])
def test_tune_refuses_a_trial_timeout_that_is_no_duration(capsys, value):
    from slmray.tune import main

    out = call_main(capsys, main, "search_spaces/smoke.py", "--dry-run", "--trial-timeout", value)
    assert out.returncode == 2
    assert out.stderr.startswith("error: argument --trial-timeout:") and len(out.stderr.splitlines()) == 1


def _recorder(tmp_path, timeout):
    from slmray.sweep.capacity import local_capacity
    from slmray.sweep.driver import GpuTypeOf, SweepRecorder

    return SweepRecorder("s", str(tmp_path), 4, 1, GpuTypeOf(local_capacity("cpu")), timeout)


def test_the_sweep_says_a_long_trial_is_alive_once_a_minute(tmp_path, capsys):
    from slmray.sweep.driver import HEARTBEAT_S

    recorder = _recorder(tmp_path, 1800.0)
    recorder.running["t1"] = ("tiny cpu x1 ddp sdpa b4 seq 64", time.monotonic() - 150)
    recorder.last_line = time.monotonic() - HEARTBEAT_S / 2
    recorder.on_step_end(1, [])
    assert capsys.readouterr().out == ""  # a line came recently
    recorder.last_line = time.monotonic() - HEARTBEAT_S - 1
    recorder.on_step_end(2, [])
    line = capsys.readouterr().out
    assert "still running: tiny cpu x1 ddp sdpa b4 seq 64 for 2.5 min of its 30 min limit" in line
    recorder.on_step_end(3, [])
    assert capsys.readouterr().out == ""  # the heartbeat is a line too
    recorder.running.clear()
    recorder.last_line = time.monotonic() - HEARTBEAT_S - 1
    recorder.on_step_end(4, [])
    assert capsys.readouterr().out == ""  # nothing running: nothing to say


def _row(trial_id):
    return {"sweep_id": "s", "trial_id": trial_id, "model": "tiny", "status": "ok", "tokens_per_s": 10.0,
            "per_device_batch": 4, "num_gpus": 1, "attention": "sdpa", "strategy": "ddp"}


def _sweep_with_a_damaged_row(tmp_path, whole_holds_it: bool):
    rows = [_row("a1"), _row("b2")]
    for row in rows:
        write_table(to_table([row]), str(tmp_path / "rows" / f"{row['trial_id']}.parquet"))
    write_table(to_table(rows if whole_holds_it else rows[:1]), str(tmp_path / RESULTS_FILE))
    damaged = tmp_path / "rows" / "b2.parquet"
    damaged.write_bytes(damaged.read_bytes()[:100])  # a disk's fault: rows are written atomically
    return damaged


def test_a_damaged_row_file_is_restored_from_the_whole_table(tmp_path, capsys):
    from slmray.sweep.driver import recorded_rows

    damaged = _sweep_with_a_damaged_row(tmp_path, whole_holds_it=True)
    assert sorted(recorded_rows(str(tmp_path))) == ["a1", "b2"]
    assert "b2.parquet was damaged; restored from results.parquet" in capsys.readouterr().out
    assert read_table(str(damaged)).to_pylist()[0]["trial_id"] == "b2"


@pytest.mark.subprocess
def test_a_damaged_row_file_nothing_holds_names_a_command_that_works(tmp_path):
    from slmray.sweep.driver import SweepError, recorded_rows

    damaged = _sweep_with_a_damaged_row(tmp_path / "my sweep", whole_holds_it=False)
    with pytest.raises(SweepError) as caught:
        recorded_rows(str(tmp_path / "my sweep"))
    message = str(caught.value)
    assert caught.value.exit_code == 2 and "\n" not in message
    command = message.rsplit("move it aside: ", 1)[1]
    subprocess.run(shlex.split(command), check=True)  # the printed command, as a shell would run it
    assert not damaged.exists()
    assert sorted(recorded_rows(str(tmp_path / "my sweep"))) == ["a1"]  # the resume it names now goes on


def test_train_stops_at_its_time_limit_and_says_where(cli):
    out = cli("-m", "slmray.train", "--model", "tiny", "--seq-len", "32", "--steps", "1000000", "--time-limit", "8",
              timeout=120)
    assert out.returncode == 3, out.stderr
    assert "status failed: time limit: 8 s passed " in out.stdout
    assert "Traceback" not in out.stderr


@pytest.mark.ray
def test_a_sweep_trial_past_its_time_limit_is_recorded_failed_and_the_sweep_goes_on(tmp_path):
    space = tmp_path / "slow.py"
    space.write_text(
        "from slmray.space import SearchSpace\n"
        "SPACE = SearchSpace(model=['tiny'], per_device_batch=[2], num_gpus=[1], attention=['sdpa'], strategy=['ddp'],"
        " seq_len=32, steps=10**6, warmup_steps=1, data='synthetic', search='grid', objectives=['max:tokens_per_s'])\n")
    out = run_cli("-m", "slmray.tune", str(space), "--storage", str(tmp_path / "st"), "--name", "slow",
                  "--trial-timeout", "5", timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    (row,) = read_table(str(tmp_path / "st" / "slow" / RESULTS_FILE)).to_pylist()
    assert row["status"] == "failed"
    assert row["error"].startswith("time limit: 5 s passed in ") and "--trial-timeout" in row["error"]
    assert "Traceback" not in out.stdout + out.stderr
