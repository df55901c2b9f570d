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

from slmray.results import REQUIRED_COLUMNS, read_table
from tests.conftest import run_cli

pytestmark = pytest.mark.ray


def sweep(*args, timeout=600, env=None):
    return run_cli("-m", "slmray.tune", *args, timeout=timeout, env=env)


def write_space(tmp_path, body: str, name="space.py") -> str:
    path = tmp_path / name
    path.write_text("from slmray.space import SearchSpace\nfrom slmray.presets import get_model\n" + body)
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


def test_smoke_sweep_shows_progress_and_best(smoke_sweep):
    out, sweep_dir = smoke_sweep
    assert "4/4 done: 4 ok, 0 oom, 0 failed, 0 pruned" in out.stdout
    assert f"results: {sweep_dir / 'results.parquet'} (4 trials)" in out.stdout
    assert "best by max:tokens_per_s:" in out.stdout and "best by min:final_loss:" in out.stdout


def test_dry_run_prints_the_plan_and_starts_nothing(tmp_path):
    out = sweep("search_spaces/smoke.py", "--dry-run", "--storage", str(tmp_path), "--name", "plan")
    assert out.returncode == 0, out.stderr
    assert "grid: 4 trials" in out.stdout and "estimate:" in out.stdout and "GPU-hours" in out.stdout
    assert out.stdout.count(" tiny ") == 4
    assert not list(tmp_path.iterdir())


def test_dry_run_of_the_papers_grid_prunes_out_of_memory(tmp_path):
    out = sweep("search_spaces/full.py", "--dry-run", "--storage", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "grid: 2520 trials" in out.stdout
    pruned = [line for line in out.stdout.splitlines() if "(pruned)" in line]
    assert pruned and any("llama-2b" in line and " 64 " in line for line in pruned)


def test_dry_run_totals_only_the_trials_max_trials_lets_run(tmp_path):
    # 8 GPUs at $450 a GPU-hour: a trial of the tiny model is about its 42 s overhead, $42
    path = write_space(tmp_path, """
SPACE = SearchSpace(model=["tiny"], per_device_batch=[1, 2, 4, 8], num_gpus=[8], gpu_type=["H100-80GB"],
                    attention=["sdpa"], strategy=["ddp"], seq_len=256, prices="aws")
""")

    def dry_run(*args):
        out = sweep(path, "--dry-run", "--storage", str(tmp_path / "s"), "--price", "H100-80GB=450", *args)
        assert out.returncode == 0, out.stderr
        rows = [line.split() for line in out.stdout.splitlines() if line.split() and line.split()[0].isdigit()]
        hours, usd = next(line for line in out.stdout.splitlines() if line.startswith("estimate:")).split(", ")
        return out.stdout, rows, float(hours.split()[1]), float(usd.lstrip("$"))

    # 2 trials (about $84) fit $100; the whole grid's third trial would not (the note said "before trial 3")
    stdout, rows, hours, usd = dry_run("--max-trials", "2", "--budget-usd", "100")
    assert "grid: 2 trials" in stdout and "the first 2 of the grid's 4 points" in stdout
    assert [int(r[0]) for r in rows] == [1, 2]
    assert usd == pytest.approx(sum(float(r[-1]) for r in rows[:2]), abs=0.02)
    assert hours == pytest.approx(sum(float(r[-2]) / 60 * int(r[3]) for r in rows[:2]), abs=0.02)
    assert 80 < usd < 100 and "budget" not in stdout

    stdout, rows, _, usd = dry_run("--max-trials", "3", "--budget-usd", "100")
    assert len(rows) == 3 and usd == pytest.approx(sum(float(r[-1]) for r in rows), abs=0.02)
    assert "budget $100.00 is reached before trial 3" in stdout
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("name, text", [("missing.json", None), ("bad.json", '{"H100-80GB": '), ("bad.csv", "gpu,usd\nH100,3\n")])
def test_bad_price_file_is_one_line_naming_it_and_starts_nothing(tmp_path, name, text):
    price_file = tmp_path / name
    if text is not None:
        price_file.write_text(text)
    out = sweep("search_spaces/smoke.py", "--dry-run", "--storage", str(tmp_path / "s"), "--price-file", str(price_file))
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith(f"error: price file {price_file}: ") and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not out.stdout and not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "body, message",
    [
        ("SPACE = SearchSpace(model=['tiny'], per_device_batch=[2], num_gpus=[64], attention=['sdpa'], strategy=['ddp'], seq_len=32, device='cpu')",
         "num_gpus: 64 is more than the"),
        ("SPACE = SearchSpace(model=['tiny'], per_device_batch=[2], num_gpus=[1], attention=['sdpa'], strategy=['ddp'], seq_len=32, gpu_type=['H100-80GB'], device='cpu')",
         "gpu_type: H100-80GB asked for, but this machine has no GPU"),
    ],
)
def test_impossible_spaces_are_refused_before_starting(tmp_path, body, message):
    path = write_space(tmp_path, body)
    out = sweep(path, "--storage", str(tmp_path / "s"))
    assert out.returncode == 2
    assert out.stderr.strip().startswith(f"error: {path}: {message}"), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_cli_argument_errors(tmp_path):
    out = sweep("search_spaces/smoke.py", "--resume")
    assert out.returncode == 2 and out.stderr.strip() == "error: --resume: needs --name, the sweep to continue"
    out = sweep("search_spaces/smoke.py", "--resume", "--name", "nothing-here", "--storage", str(tmp_path))
    assert out.returncode == 2 and "there is no sweep nothing-here" in out.stderr
    out = sweep("search_spaces/smoke.py", "--dry-run", "--prices", "moon")
    assert out.returncode == 2 and "moon" in out.stderr and "Traceback" not in out.stderr


def test_out_of_memory_and_crashes_are_rows_and_the_sweep_goes_on(tmp_path):
    # 64 x 256 x 4M fp32 logits: the CPU allocator refuses at once (a real out-of-memory path);
    # a missing data directory crashes every worker (retried once, then recorded as failed).
    # One worker reports its OOM as a status, two raise it from the worker group: both paths, and
    # the sweep goes on from the first to the second.
    path = write_space(tmp_path, """
huge = get_model("tiny", vocab_size=4_000_000, d_model=8, n_head=2, name="tiny-huge-vocab")
SPACE = SearchSpace(model=[huge], per_device_batch=[64], num_gpus=[1, 2], attention=["sdpa"],
                    strategy=["ddp"], seq_len=256, steps=2, warmup_steps=1, device="cpu", max_failures=0)
""")
    out = sweep(path, "--storage", str(tmp_path / "s"), "--name", "oom", "--no-prune")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = {r["num_gpus"]: r for r in read_table(str(tmp_path / "s/oom/results.parquet")).to_pylist()}
    assert sorted(rows) == [1, 2]
    for n in (1, 2):
        assert rows[n]["status"] == "oom" and "memory" in rows[n]["error"] and rows[n]["tokens_per_s"] is None

    # with pruning on (the default), the trial predicted to need 805 GB is recorded, not run
    crash = write_space(tmp_path, """
huge = get_model("tiny", vocab_size=4_000_000, d_model=8, n_head=2, name="tiny-huge-vocab")
SPACE = SearchSpace(model=["tiny", huge], per_device_batch=[64], num_gpus=[2], attention=["sdpa"], strategy=["ddp"],
                    seq_len=256, steps=1, warmup_steps=0, device="cpu", data="/nonexistent/shards", max_failures=1)
""", name="crash.py")
    out = sweep(crash, "--storage", str(tmp_path / "s"), "--name", "crash")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = {r["model"]: r for r in read_table(str(tmp_path / "s/crash/results.parquet")).to_pylist()}
    assert rows["tiny"]["status"] == "failed" and "is not a token-shard directory" in rows["tiny"]["error"]
    pruned = rows["tiny-huge-vocab"]
    assert pruned["status"] == "pruned" and pruned["predicted_oom"] and pruned["predicted_peak_mem_gb"] > 500
    assert pruned["error"].startswith("predicted ") and pruned["wall_s"] < 5


def test_budget_stops_launching_trials(tmp_path):
    # at $3,600 an hour a CPU worker costs $1 a second: the plan puts a trial at about $45, so
    # after the first (about $15 once measured) the next would pass $50
    out = sweep("search_spaces/smoke.py", "--storage", str(tmp_path), "--name", "budget", "--price", "cpu=3600",
                "--budget-usd", "50")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = read_table(str(tmp_path / "budget/results.parquet")).to_pylist()
    assert len(rows) == 1 and rows[0]["status"] == "ok"
    assert rows[0]["price_per_hour_usd"] == 3600 and rows[0]["cost_usd"] == pytest.approx(rows[0]["wall_s"])
    assert "would pass $50.00: no more trials start" in out.stdout


def test_resume_after_the_driver_is_killed(tmp_path):
    path = write_space(tmp_path, """
SPACE = SearchSpace(model=["tiny"], per_device_batch=[2, 4, 8], num_gpus=[1], attention=["sdpa"], strategy=["ddp"],
                    seq_len=32, steps=2, warmup_steps=1, device="cpu")
""")
    storage = tmp_path / "s"
    rows_dir = storage / "killed" / "rows"
    driver = subprocess.Popen(
        [sys.executable, "-m", "slmray.tune", path, "--storage", str(storage), "--name", "killed"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and len(list(rows_dir.glob("*.parquet"))) < 1:
        time.sleep(0.5)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
    driver.wait()
    before = {p.stem: read_table(str(p)).to_pylist()[0] for p in rows_dir.glob("*.parquet")}
    assert 1 <= len(before) < 3

    out = sweep(path, "--storage", str(storage), "--name", "killed", "--resume")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table = read_table(str(storage / "killed/results.parquet"))
    rows = table.to_pylist()
    assert sorted(r["per_device_batch"] for r in rows) == [2, 4, 8]  # none lost, none twice
    assert len(set(pc.unique(table["trial_id"]).to_pylist())) == 3
    for trial_id, row in before.items():
        again = next(r for r in rows if r["trial_id"] == trial_id)
        assert again["started_at"] == row["started_at"]  # finished trials were not run again


def test_optuna_multi_objective_on_s3(tmp_path, s3_server):
    path = write_space(tmp_path, """
SPACE = SearchSpace(model=["tiny"], per_device_batch=[2, 4, 8], num_gpus=[1, 2], attention=["eager", "sdpa"],
                    strategy=["ddp"], seq_len=32, steps=2, warmup_steps=1, device="cpu", search="optuna",
                    sampler="nsga2", num_samples=2, seed=7, objectives=["max:tokens_per_s", "min:final_loss"])
""")
    out = sweep(path, "--storage", "s3://slmray-test/sweeps", "--name", "opt", env=s3_server)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    env_before = dict(os.environ)
    os.environ.update(s3_server)
    try:
        rows = read_table("s3://slmray-test/sweeps/opt/results.parquet").to_pylist()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    assert len({(r["per_device_batch"], r["num_gpus"], r["attention"]) for r in rows}) == 2  # no configuration twice
    assert all(r["per_device_batch"] in (2, 4, 8) and r["num_gpus"] in (1, 2) for r in rows)
    # the estimator's best guess goes first: on the CPU it ranks by worker count, then plan order
    first = min(rows, key=lambda r: r["started_at"])
    assert (first["num_gpus"], first["attention"], first["per_device_batch"]) == (2, "eager", 2)
    assert "best by max:tokens_per_s:" in out.stdout
