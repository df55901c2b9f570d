"""The sweep end to end on a local Ray with CPU workers (gloo), through the real command.

Each sweep here starts its own local Ray (about 10 s) and runs real trials; they are few and
small to keep the suite inside CI's time.
"""

import os
import signal
import subprocess
import sys
import time

import pyarrow.compute as pc
import pytest

from slmray.results.table import REQUIRED_COLUMNS, read_table

from tests.conftest import run_cli

pytestmark = [pytest.mark.ray, pytest.mark.subprocess]  # each sweep is `python -m slmray.tune`, its own Ray


def sweep(*args, timeout=600, env=None):
    return run_cli("-m", "slmray.tune", *args, timeout=timeout, env=env)


def write_space(tmp_path, body: str, name="space.py") -> str:
    path = tmp_path / name
    path.write_text("from slmray.sweep.space import SearchSpace\nfrom slmray.train.presets import get_model\n" + body)
    return str(path)


def test_smoke_sweep_writes_one_row_per_trial(smoke_sweep):
    out, sweep_dir = smoke_sweep
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table = read_table(str(sweep_dir / "results.parquet"))
    assert table.num_rows == 4
    for column in REQUIRED_COLUMNS:
        assert column in table.column_names
    rows = table.to_pylist()
    assert {(r["num_gpus"], r["attention"]) for r in rows} == {(1, "eager"), (1, "sdpa"), (2, "eager"), (2, "sdpa")}
    assert len({r["trial_id"] for r in rows}) == 4
    for r in rows:
        assert r["status"] == "ok", r["error"]
        assert r["tokens_per_s"] > 0 and r["final_loss"] > 0 and r["gpu_type"] == "cpu"
        assert r["price_per_hour_usd"] == 0 and r["cost_usd"] == 0  # the local machine costs nothing
        assert r["time_to_first_step_s"] > 0 and r["wall_s"] >= r["time_to_first_step_s"]
        assert r["torch_version"] and r["ray_version"] and r["slmray_version"]
        assert r["sweep_id"] == "smoke" and len(r["losses"]) == 7
    assert len(list((sweep_dir / "rows").glob("*.parquet"))) == 4
    # warm trials: each shape's group starts once and serves its second trial
    in_order = sorted(rows, key=lambda r: r["started_at"])
    assert [(r["num_gpus"], r["warm"], r["group_trials"]) for r in in_order] == [
        (1, False, 1), (1, True, 2), (2, False, 1), (2, True, 2)]
    # one Train run per group (named warm-<shape>-<group>-<ns when the pool started it>): both shapes'
    # groups began with the pool, while Tune was setting up, before the first trial did
    groups = {p.name.split("-")[1]: int(p.name.rsplit("-", 1)[1]) / 1e9 for p in (sweep_dir / "train").glob("warm-*")}
    assert sorted(groups) == ["1xcpu", "2xcpu"] and len(list((sweep_dir / "train").glob("warm-*"))) == 2
    assert max(groups.values()) < in_order[0]["started_at"].timestamp()


def test_smoke_sweep_shows_progress_and_best(smoke_sweep):
    out, sweep_dir = smoke_sweep
    assert "4/4 done: 4 ok, 0 oom, 0 failed, 0 pruned" in out.stdout
    assert f"results: {sweep_dir / 'results.parquet'} (4 trials)" in out.stdout
    assert "best by max:tokens_per_s:" in out.stdout and "best by min:final_loss:" in out.stdout
    assert f"analyse it: python -m slmray.analysis {sweep_dir / 'results.parquet'} --out smoke-report" in out.stdout


def test_smoke_sweep_console_is_slmrays_own_lines_once_per_event(smoke_sweep):
    out, _ = smoke_sweep
    console = out.stdout + out.stderr
    for noise in ("╭", "Configuration for experiment", "TensorBoard", "Token authentication", "Started a local Ray",
                  "Tuner.restore", "Wrote the latest version", "View detailed results"):
        assert noise not in console, noise
    progress = [line.split("] ", 1)[1] for line in out.stdout.splitlines() if " done: " in line]
    assert [p.split(" done")[0] for p in progress] == ["1/4", "2/4", "3/4", "4/4"]  # one line per trial's end
    started = [line for line in out.stdout.splitlines() if "] started tiny local x" in line and " b4" in line]
    assert len(started) == 4
    # 1.646e+04 is not how a count of tokens reads
    best = [line for line in out.stdout.splitlines() if "tiny cpu x" in line and "] started" not in line]
    assert best and all("e+" not in line for line in best)


def test_out_of_memory_and_crashes_are_rows_and_the_sweep_goes_on(tmp_path):
    # 4096 x 32 x 2M fp32 logits, 1 TB: the CPU allocator refuses at once (a real out-of-memory path);
    # batch 1 fits.  (Fewer tokens or a smaller vocabulary: the blocks' forward before the logits, or
    # batch 1's steps, are what these trials spend their seconds on.)
    # One worker reports its OOM as a status and its warm group serves the next trial; two raise
    # it from the worker group, which ends: the next trial gets a fresh group.
    path = write_space(tmp_path, """
huge = get_model("tiny", vocab_size=2_000_000, d_model=8, n_head=2, name="tiny-huge-vocab")
SPACE = SearchSpace(model=[huge], per_device_batch=[4096, 1], num_gpus=[1, 2], attention=["sdpa"],
                    strategy=["ddp"], seq_len=32, steps=1, warmup_steps=0, device="cpu", max_failures=0)
""")
    out = sweep(path, "--storage", str(tmp_path / "s"), "--name", "oom", "--no-prune")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = {(r["num_gpus"], r["per_device_batch"]): r for r in read_table(str(tmp_path / "s/oom/results.parquet")).to_pylist()}
    assert sorted(rows) == [(1, 1), (1, 4096), (2, 1), (2, 4096)]
    for n in (1, 2):
        assert rows[n, 4096]["status"] == "oom" and "memory" in rows[n, 4096]["error"] and rows[n, 4096]["tokens_per_s"] is None
        assert rows[n, 1]["status"] == "ok" and rows[n, 1]["tokens_per_s"] > 0
    assert (rows[1, 1]["warm"], rows[1, 1]["group_trials"]) == (True, 2)  # the OOM left its group warm
    assert (rows[2, 1]["warm"], rows[2, 1]["group_trials"]) == (False, 1)  # a fresh group after the raised OOM

    # with pruning on (the default), the trial predicted to need 805 GB is recorded, not run; shards whose
    # metadata passes the sweep's own check but whose data is garbage crash the worker (one: a group of
    # one starts fastest, and a raised error ends a group of any size)
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "meta.json").write_text('{"vocab_size": 256, "num_tokens": 100000}')
    (shards / "shard_00000.parquet").write_bytes(b"not parquet at all" * 100)
    crash = write_space(tmp_path, f"""
huge = get_model("tiny", vocab_size=4_000_000, d_model=8, n_head=2, name="tiny-huge-vocab")
SPACE = SearchSpace(model=["tiny", huge], per_device_batch=[64], num_gpus=[1], attention=["sdpa"], strategy=["ddp"],
                    seq_len=256, steps=1, warmup_steps=0, device="cpu", data="{shards}", max_failures=1)
""", name="crash.py")
    out = sweep(crash, "--storage", str(tmp_path / "s"), "--name", "crash")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = {r["model"]: r for r in read_table(str(tmp_path / "s/crash/results.parquet")).to_pylist()}
    assert rows["tiny"]["status"] == "failed" and "Parquet" in rows["tiny"]["error"], rows["tiny"]["error"]
    pruned = rows["tiny-huge-vocab"]
    assert pruned["status"] == "pruned" and pruned["predicted_oom"] and pruned["predicted_peak_mem_gb"] > 500
    assert pruned["error"].startswith("predicted ") and pruned["wall_s"] < 5
    # what a trial ran on, or was planned to run on where it never ran; what the space asked: nothing
    assert [(r["gpu_type"], r["requested_gpu_type"]) for r in rows.values()] == [("cpu", None)] * 2
    assert rows["tiny"]["group_trials"] == 1  # its retry ran on a fresh group, and failed again


def test_budget_stops_launching_trials(tmp_path):
    # at $7,200 an hour a CPU worker costs $2 a second: the plan puts an isolated trial at about
    # $50 (25 s), so after the first (over 5 s, $10, once measured: a worker group's start alone
    # takes longer) the next would pass $60
    out = sweep("search_spaces/smoke.py", "--storage", str(tmp_path), "--name", "budget", "--price", "cpu=7200",
                "--budget-usd", "60", "--isolate-trials")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = read_table(str(tmp_path / "budget/results.parquet")).to_pylist()
    assert len(rows) == 1 and rows[0]["status"] == "ok"
    assert rows[0]["price_per_hour_usd"] == 7200 and rows[0]["cost_usd"] == pytest.approx(2 * rows[0]["wall_s"])
    assert "would pass $60.00: no more trials start" in out.stdout
    assert rows[0]["warm"] is None and rows[0]["group_trials"] is None  # isolated: a worker group of its own


def test_killed_interrupted_and_contested_sweep_resumes_with_every_trial_once(tmp_path):
    """A sweep's drivers die or collide: SIGKILL leaves no stuck lock, a second driver (or --resume)
    on the running sweep gets one line and exit 2, Ctrl-C says what is left and how to continue
    (exit 130), and the continued sweep holds every configuration once."""
    from slmray.tune import main

    path = write_space(tmp_path, """
SPACE = SearchSpace(model=["tiny"], per_device_batch=[1, 2, 4, 8, 16], num_gpus=[1], attention=["sdpa"],
                    strategy=["ddp"], seq_len=32, steps=300, warmup_steps=1, device="cpu")
""")  # 300 steps: a few seconds a trial even on a warm group, time to act while one runs
    storage = tmp_path / "s"
    rows_dir = storage / "life" / "rows"
    base = [path, "--storage", str(storage), "--name", "life"]

    def start(*extra):
        return subprocess.Popen([sys.executable, "-m", "slmray.tune", *base, *extra], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)

    def wait_for_rows(n):
        deadline = time.time() + 300
        while time.time() < deadline and len(list(rows_dir.glob("*.parquet"))) < n:
            time.sleep(0.3)
        return len(list(rows_dir.glob("*.parquet")))

    driver = start()
    wait_for_rows(1)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
    driver.communicate()
    before = {p.stem: read_table(str(p)).to_pylist()[0] for p in rows_dir.glob("*.parquet")}
    assert 1 <= len(before) < 5

    driver = start("--resume")  # the killed driver's lock is not in its way
    lock_file, deadline = storage / "life" / "driver.lock", time.time() + 120
    while time.time() < deadline and f'"pid": {driver.pid},' not in (lock_file.read_text() if lock_file.exists() else ""):
        time.sleep(0.2)
    for extra in ([], ["--resume"]):
        import contextlib
        import io

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert main([*base, *extra]) == 2
        assert err.getvalue().startswith(f"error: --name: sweep life is being run by another driver (pid {driver.pid} on ")
        assert len(err.getvalue().strip().splitlines()) == 1
    assert wait_for_rows(len(before) + 1) < 5
    os.killpg(driver.pid, signal.SIGINT)  # Ctrl-C, as a terminal sends it: to the whole process group
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 130, out[-3000:] + err[-3000:]
    recorded = len(list(rows_dir.glob("*.parquet")))
    assert f"interrupted: {recorded} of 5 trials recorded, {5 - recorded} left" in out
    continue_line = next(line for line in out.splitlines() if line.startswith("continue with: "))
    assert continue_line == f"continue with: python -m slmray.tune {' '.join(base)} --resume"
    assert "best by" not in out and "Tuner.restore" not in out + err

    out = sweep(*continue_line.removeprefix("continue with: python -m slmray.tune ").split())
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table = read_table(str(storage / "life/results.parquet"))
    rows = table.to_pylist()
    assert sorted(r["per_device_batch"] for r in rows) == [1, 2, 4, 8, 16]  # none lost, none twice
    assert len(set(pc.unique(table["trial_id"]).to_pylist())) == 5
    for trial_id, row in before.items():
        again = next(r for r in rows if r["trial_id"] == trial_id)
        assert again["started_at"] == row["started_at"]  # finished trials were not run again


def test_a_copied_sweep_resumes_into_its_own_folder_and_a_changed_space_only_when_allowed(tmp_path):
    """A sweep interrupted in A, copied to B and A moved away: `--storage B --resume` writes B
    only (the recorder restored from Tune's state held A's path).  Its space file changed meanwhile:
    refused in one line, then run with the new settings under --allow-changed-space."""
    import contextlib
    import io
    import shutil

    from slmray.tune import main

    path = write_space(tmp_path, """
SPACE = SearchSpace(model=["tiny"], per_device_batch=[1, 2, 4], num_gpus=[1], attention=["sdpa"],
                    strategy=["ddp"], seq_len=32, steps=300, warmup_steps=1, device="cpu")
""")
    a, b = tmp_path / "a", tmp_path / "b"
    driver = subprocess.Popen([sys.executable, "-m", "slmray.tune", path, "--storage", str(a), "--name", "x"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list((a / "x" / "rows").glob("*.parquet")):
        time.sleep(0.3)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
    driver.communicate()
    assert (a / "x" / "space.json").exists()  # stored when the sweep started
    shutil.copytree(a / "x", b / "x")
    a.rename(tmp_path / "a-moved")
    before = {p.stem for p in (b / "x" / "rows").glob("*.parquet")}
    assert 1 <= len(before) < 3

    write_space(tmp_path, """
SPACE = SearchSpace(model=["tiny"], per_device_batch=[1, 2, 4], num_gpus=[1], attention=["sdpa"],
                    strategy=["ddp"], seq_len=32, steps=5, warmup_steps=1, device="cpu")
""")
    resume = [path, "--storage", str(b), "--name", "x", "--resume"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(resume) == 2
    assert err.getvalue().strip() == (f"error: --resume: {path} changed since sweep x started: steps: 300 -> 5; resume "
                                      "with the space it started with, or add --allow-changed-space to run the "
                                      "remaining trials with the new one")

    out = sweep(*resume, "--allow-changed-space")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"warning: --allow-changed-space: {path} changed since sweep x started (steps; first: steps: 300 -> 5)" in out.stdout
    rows = read_table(str(b / "x" / "results.parquet")).to_pylist()
    assert sorted(r["per_device_batch"] for r in rows) == [1, 2, 4]
    assert sorted(p.stem for p in (b / "x" / "rows").glob("*.parquet")) == sorted(r["trial_id"] for r in rows)
    assert sorted(r["steps"] for r in rows if r["trial_id"] not in before) == [5] * (3 - len(before))
    assert not a.exists()  # nothing wrote where the sweep was started
    assert {p.stem for p in (tmp_path / "a-moved" / "x" / "rows").glob("*.parquet")} == before


def test_optuna_on_a_cost_objective_on_s3_keeps_credentials_out_of_every_file(tmp_path, s3_server):
    """The README's pairing, tokens/s and tokens per $, through Optuna; what Optuna is told of each
    trial is its row's value; a canary secret key reaches no file the sweep causes."""
    import glob
    import pickle

    import boto3

    from slmray.private_apis import optuna_study

    canary = f"slmray-canary-{os.getpid()}-{time.time_ns()}"
    env = {**s3_server, "AWS_SECRET_ACCESS_KEY": canary}
    path = write_space(tmp_path, """
SPACE = SearchSpace(model=["tiny"], per_device_batch=[2, 4, 8], num_gpus=[1, 2], attention=["eager", "sdpa"],
                    strategy=["ddp"], seq_len=32, steps=2, warmup_steps=1, device="cpu", search="optuna",
                    sampler="nsga2", num_samples=2, seed=7, objectives=["max:tokens_per_s", "max:tokens_per_usd"])
""")
    started = time.time()
    out = sweep(path, "--storage", "s3://slmray-test/sweeps", "--name", "opt", "--price", "cpu=1.0", env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "warning: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY set in the environment: kept out of" in out.stdout
    env_before = dict(os.environ)
    os.environ.update(s3_server)
    try:
        rows = read_table("s3://slmray-test/sweeps/opt/results.parquet").to_pylist()
        s3 = boto3.client("s3")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="slmray-test", Prefix="sweeps/opt/")["Contents"]]
        objects = {k: s3.get_object(Bucket="slmray-test", Key=k)["Body"].read() for k in keys}
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    assert len({(r["per_device_batch"], r["num_gpus"], r["attention"]) for r in rows}) == 2  # no configuration twice
    assert all(r["per_device_batch"] in (2, 4, 8) and r["num_gpus"] in (1, 2) for r in rows)
    assert all(r["tokens_per_usd"] == pytest.approx(r["tokens_per_s"] * 3600 / r["num_gpus"]) for r in rows)
    # the estimator's best guess goes first: on the CPU it ranks by worker count, then plan order
    first = min(rows, key=lambda r: r["started_at"])
    assert (first["num_gpus"], first["attention"], first["per_device_batch"]) == (2, "eager", 2)
    assert "best by max:tokens_per_s:" in out.stdout and "best by max:tokens_per_usd:" in out.stdout

    # what Optuna was told: its study, checkpointed with the sweep
    state = pickle.loads(next(v for k, v in objects.items() if "searcher-state" in k))
    told = {tuple(t.params[k] for k in ("per_device_batch", "num_gpus", "attention")): t.values
            for t in optuna_study(state).trials if t.values}
    assert told == {(r["per_device_batch"], r["num_gpus"], r["attention"]): [r["tokens_per_s"], r["tokens_per_usd"]]
                    for r in rows}

    secret = canary.encode()
    assert canary not in out.stdout + out.stderr
    assert not [k for k, v in objects.items() if secret in v]
    leaked = []
    for session in glob.glob("/tmp/ray/session_*"):
        if os.path.islink(session) or os.path.getmtime(session) < started - 5:
            continue
        for root, _, files in os.walk(session):
            for name in files:
                file = os.path.join(root, name)
                try:
                    if os.path.isfile(file) and secret in open(file, "rb").read():
                        leaked.append(file)
                except OSError:
                    pass
    assert not leaked, leaked
