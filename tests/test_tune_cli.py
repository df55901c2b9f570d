"""`python -m slmray.tune` before Ray starts: what is refused, in one line and exit 2, with nothing
written.  In-process through `main([...])`; no Ray starts in this file."""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from slmray.sweep.lock import SweepLock
from slmray.tune import build_parser, main


def write_space(tmp_path, body: str, name="space.py") -> str:
    path = tmp_path / name
    path.write_text("from slmray.sweep.space import SearchSpace\n" + body)
    return str(path)


def tiny_space(tmp_path, **fields) -> str:
    extra = "".join(f", {k}={v!r}" for k, v in fields.items())
    return write_space(tmp_path, f"""
SPACE = SearchSpace(model=["tiny"], per_device_batch=[2], num_gpus=[1], attention=["sdpa"], strategy=["ddp"],
                    seq_len=32, steps=1, warmup_steps=0, device="cpu"{extra})
""")


@pytest.fixture
def sweep(capsys):
    """`python -m slmray.tune ARGS`, in this process: (returncode, stdout, stderr)."""
    def run(*args):
        code = main(list(args))
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)
    return run


def one_error_line(capsys) -> str:
    out = capsys.readouterr()
    assert not out.out, out.out
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.err
    return lines[0]


def test_storage_naming_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main([tiny_space(tmp_path), "--storage", str(tmp_path / "file"), "--name", "s"]) == 2
    assert one_error_line(capsys) == f"error: --storage: {tmp_path / 'file'} is a file, not a directory"


def test_storage_that_cannot_be_created_is_one_line(tmp_path, capsys):
    assert main([tiny_space(tmp_path), "--storage", "/proc/slmray", "--name", "s"]) == 2
    assert one_error_line(capsys).startswith("error: --storage: cannot make /proc/slmray/s: cannot write /proc (")


def test_unknown_storage_scheme_is_one_line(tmp_path, capsys):
    assert main([tiny_space(tmp_path), "--storage", "gs://bucket/x", "--name", "s"]) == 2
    assert "gs://bucket/x is neither a local path nor s3://" in one_error_line(capsys)


@pytest.mark.parametrize("meta, message", [
    (None, "is not a token-shard directory (no meta.json)"),
    ("{not json", "meta.json is not valid JSON"),
    ('{"num_tokens": 1000}', "meta.json has no integer 'vocab_size'"),
    ('{"vocab_size": 100000, "num_tokens": 1000}', "was tokenised with 100000 ids, more than the model's vocabulary"),
    ('{"vocab_size": 100, "num_tokens": 10}', "holds 10 tokens, fewer than one sequence of 32"),
    ('{"vocab_size": 100, "num_tokens": 1000}', "has meta.json but no .parquet shard"),
])
def test_a_data_source_that_cannot_be_read_is_found_before_anything_starts(tmp_path, capsys, meta, message):
    shards = tmp_path / "shards"
    if meta is not None:
        shards.mkdir()
        (shards / "meta.json").write_text(meta)
    space = tiny_space(tmp_path, data=str(tmp_path / "shards" if meta is not None else "/no/such/shards"))
    assert main([space, "--storage", str(tmp_path / "s"), "--name", "d"]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {space}: data: ") and message in line, line
    assert not (tmp_path / "s").exists()


def test_a_second_driver_on_a_running_sweep_is_refused(tmp_path, capsys):
    space, storage = tiny_space(tmp_path), tmp_path / "s"
    (storage / "busy").mkdir(parents=True)
    (storage / "busy" / "tuner.pkl").write_bytes(b"")  # a sweep that exists, so --resume gets past its check
    with SweepLock(str(storage / "busy"), "busy"):
        for extra in ([], ["--resume"]):
            assert main([space, "--storage", str(storage), "--name", "busy", *extra]) == 2
            line = one_error_line(capsys)
            assert line.startswith("error: --name: sweep busy is being run by another driver (pid "), line
    assert sorted(p.name for p in (storage / "busy").iterdir()) == ["driver.lock", "tuner.pkl"]


def test_an_existing_sweep_without_resume_is_refused_and_the_lock_released(tmp_path, capsys):
    space, storage = tiny_space(tmp_path), tmp_path / "s"
    (storage / "done").mkdir(parents=True)
    (storage / "done" / "tuner.pkl").write_bytes(b"")
    assert main([space, "--storage", str(storage), "--name", "done"]) == 2
    assert "a sweep done already exists" in one_error_line(capsys)
    with SweepLock(str(storage / "done"), "done"):  # not left held
        pass


@pytest.mark.parametrize("name", ["a/b", "..", " "])
def test_a_name_that_is_not_one_path_component_is_refused(tmp_path, capsys, name):
    assert main([tiny_space(tmp_path), "--storage", str(tmp_path / "s"), "--name", name]) == 2
    assert one_error_line(capsys).startswith("error: --name: ")
    assert not (tmp_path / "s").exists()


def test_help_describes_every_option_and_shows_each_default_once():
    assert "(default: None)" not in build_parser().format_help()
    for action in build_parser()._actions:
        assert action.help, f"{action.option_strings or action.dest} has no help"
        shown = action.help % {"default": action.default, "prog": "python -m slmray.tune"}
        assert shown.count("(default:") <= 1, shown


@pytest.mark.subprocess  # a fresh interpreter's sys.modules
def test_help_imports_neither_torch_nor_ray():
    # pyarrow (with numpy) may load: the one CSV reader, for the price profiles the help lists
    code = ("import sys, contextlib, io\nfrom slmray.tune import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try: main(['--help'])\n    except SystemExit: pass\n"
            "print(sorted(m for m in ('torch', 'ray', 'pyarrow.parquet', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_dry_run_checks_nothing_it_would_write(tmp_path, capsys):
    # a dry run plans a sweep for elsewhere: neither its data nor its storage is touched
    space = tiny_space(tmp_path, data="/data/on/the/cluster")
    assert main([space, "--dry-run", "--storage", str(tmp_path / "s"), "--name", "plan"]) == 0
    assert "grid: 1 trials" in capsys.readouterr().out
    assert not (tmp_path / "s").exists()


def test_data_meta_json_round_trip_is_accepted(tmp_path, capsys):
    from slmray.data.sources import ByteTokenizer, check_source, prepare

    (tmp_path / "text.txt").write_text("hello world " * 200)
    prepare([str(tmp_path / "text.txt")], str(tmp_path / "shards"), ByteTokenizer())
    meta = check_source(str(tmp_path / "shards"), vocab_size=512, seq_len=32)
    assert meta == json.loads((tmp_path / "shards" / "meta.json").read_text())


def test_a_cost_objective_without_any_price_is_refused(tmp_path, capsys):
    space = tiny_space(tmp_path, objectives=["max:tokens_per_usd"])
    assert main([space, "--storage", str(tmp_path / "s"), "--name", "free"]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {space}: objectives: tokens_per_usd needs a price, and cpu has none"), line
    assert "--price GPU=USD" in line and not (tmp_path / "s").exists()
    assert main([space, "--dry-run", "--price", "cpu=1.5"]) == 0  # with a price it plans
    assert "grid: 1 trials" in capsys.readouterr().out


@pytest.mark.s3
def test_s3_storage_that_cannot_be_written_is_one_line(tmp_path, capsys, monkeypatch, s3_server):
    for k, v in s3_server.items():
        monkeypatch.setenv(k, v)
    assert main([tiny_space(tmp_path), "--storage", "s3://no-such-bucket/sweeps", "--name", "x"]) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: --storage: cannot write s3://no-such-bucket/sweeps/x/driver.lock (") and "NoSuchBucket" in line


@pytest.mark.parametrize("address, message", [
    ("127.0.0.1:1", "--address: nothing answers at 127.0.0.1:1 (Connection refused)"),
    ("no-port-here", "--address: 'no-port-here' is not host:port"),
])
def test_a_ray_address_nothing_answers_on_is_one_line(tmp_path, capsys, address, message):
    assert main([tiny_space(tmp_path), "--storage", str(tmp_path / "s"), "--name", "a", "--address", address]) == 2
    assert one_error_line(capsys).startswith(f"error: {message}")
    assert not (tmp_path / "s").exists()


# moved from test_tune.py: the same assertions, without an interpreter start each
def test_dry_run_prints_the_plan_and_starts_nothing(sweep, tmp_path):
    out = sweep("search_spaces/smoke.py", "--dry-run", "--verbose", "--storage", str(tmp_path), "--name", "plan")
    assert out.returncode == 0, out.stderr
    assert "grid: 4 trials" in out.stdout and "estimate:" in out.stdout and "GPU-hours" in out.stdout
    assert out.stdout.count(" tiny ") == 4
    assert not list(tmp_path.iterdir())
    rows = [line for line in out.stdout.splitlines() if " tiny " in line]
    if " cpu " in rows[0]:  # the CPU's rough estimate is marked as such, not shown as a prediction like a GPU's
        assert all(" ~" in line for line in rows) and "~ the CPU's rough estimate" in out.stdout
    assert "would write to" in out.stdout and "(a dry run writes nothing there)" in out.stdout


def test_dry_run_of_the_papers_grid_prunes_out_of_memory(sweep, tmp_path):
    out = sweep("search_spaces/full.py", "--dry-run", "--verbose", "--storage", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "grid: 2520 trials" in out.stdout
    pruned = [line for line in out.stdout.splitlines() if "(pruned)" in line]
    assert pruned and any("llama-2b" in line and " 64 " in line for line in pruned)


def test_dry_run_totals_only_the_trials_max_trials_lets_run(sweep, tmp_path):
    # 8 GPUs at $450 a GPU-hour: an isolated trial of the tiny model is about its 25 s overhead, $25
    path = write_space(tmp_path, """
SPACE = SearchSpace(model=["tiny"], per_device_batch=[1, 2, 4, 8], num_gpus=[8], gpu_type=["H100-80GB"],
                    attention=["sdpa"], strategy=["ddp"], seq_len=256, prices="aws")
""")

    def dry_run(*args):
        out = sweep(path, "--dry-run", "--verbose", "--storage", str(tmp_path / "s"), "--price", "H100-80GB=450", *args)
        assert out.returncode == 0, out.stderr
        rows = [line.split() for line in out.stdout.splitlines() if line.split() and line.split()[0].isdigit()]
        hours, usd = next(line for line in out.stdout.splitlines() if line.startswith("estimate:")).split(", ")
        return out.stdout, rows, float(hours.split()[1]), float(usd.lstrip("$"))

    # warm (the default): each trial about its 1 s beyond its steps, plus one group start of 42 s ($42) in the total
    stdout, rows, hours, usd = dry_run("--max-trials", "2")
    start = 42 / 3600 * 8 * 450
    assert usd == pytest.approx(start + sum(float(r[-1]) for r in rows[:2]), abs=0.02)
    assert "counted: about 1 warm worker-group start (42 s each)" in stdout

    def dry_run(*args):
        out = sweep(path, "--dry-run", "--verbose", "--storage", str(tmp_path / "s"), "--price", "H100-80GB=450", "--isolate-trials", *args)
        assert out.returncode == 0, out.stderr
        rows = [line.split() for line in out.stdout.splitlines() if line.split() and line.split()[0].isdigit()]
        hours, usd = next(line for line in out.stdout.splitlines() if line.startswith("estimate:")).split(", ")
        return out.stdout, rows, float(hours.split()[1]), float(usd.lstrip("$"))

    # 2 trials (about $50) fit $60; the whole grid's third trial would not (the note said "before trial 3")
    stdout, rows, hours, usd = dry_run("--max-trials", "2", "--budget-usd", "60")
    assert "grid: 2 trials" in stdout and "the first 2 of the grid's 4 points" in stdout
    assert [int(r[0]) for r in rows] == [1, 2]
    assert usd == pytest.approx(sum(float(r[-1]) for r in rows[:2]), abs=0.02)
    assert hours == pytest.approx(sum(float(r[-2]) / 60 * int(r[3]) for r in rows[:2]), abs=0.02)
    assert 50 <= usd < 60 and "budget" not in stdout and "counted: 25 s a trial" in stdout

    stdout, rows, _, usd = dry_run("--max-trials", "3", "--budget-usd", "60")
    assert len(rows) == 3 and usd == pytest.approx(sum(float(r[-1]) for r in rows), abs=0.02)
    assert "budget $60.00 is reached before trial 3" in stdout
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("name, text", [("missing.json", None), ("bad.json", '{"H100-80GB": '), ("bad.csv", "gpu,usd\nH100,3\n")])
def test_bad_price_file_is_one_line_naming_it_and_starts_nothing(sweep, tmp_path, name, text):
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
def test_impossible_spaces_are_refused_before_starting(sweep, tmp_path, body, message):
    path = write_space(tmp_path, body)
    out = sweep(path, "--storage", str(tmp_path / "s"))
    assert out.returncode == 2
    assert out.stderr.strip().startswith(f"error: {path}: {message}"), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_cli_argument_errors(sweep, tmp_path):
    out = sweep("search_spaces/smoke.py", "--resume")
    assert out.returncode == 2 and out.stderr.strip() == "error: --resume: needs --name, the sweep to continue"
    out = sweep("search_spaces/smoke.py", "--resume", "--name", "nothing-here", "--storage", str(tmp_path))
    assert out.returncode == 2 and "there is no sweep nothing-here" in out.stderr
    out = sweep("search_spaces/smoke.py", "--dry-run", "--prices", "moon")
    assert out.returncode == 2 and "moon" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("args, message", [
    (["--storage", "s3://", "--name", "x"], "error: --storage: s3:// names no bucket (s3://bucket/prefix)"),
    (["--storage", "~no-such-user-here/x", "--name", "x"], "error: --storage: ~no-such-user-here/x: "),
    (["--name", "a b"], "error: --name: 'a b' is not a sweep name: 1 to 128 letters, digits"),
    (["--name", "x" * 300], "error: --name: 'xxxx"),
    (["--name", ".hidden"], "error: --name: '.hidden' is not a sweep name"),
    (["--budget-usd", "nan"], "error: --budget-usd: nan is not a positive amount"),
])
def test_odd_storage_names_and_amounts_are_one_line(tmp_path, capsys, args, message):
    assert main([tiny_space(tmp_path), *args]) == 2
    assert one_error_line(capsys).startswith(message)
    assert not list(tmp_path.glob("s3:*"))


@pytest.mark.parametrize("data", ["3", "['stdlib']"])
def test_a_data_field_that_is_not_a_name_is_refused_when_the_space_loads(tmp_path, capsys, data):
    space = write_space(tmp_path, f"""
SPACE = SearchSpace(model=["tiny"], per_device_batch=[2], num_gpus=[1], attention=["sdpa"], strategy=["ddp"],
                    seq_len=32, device="cpu", data={data})
""")
    assert main([space, "--dry-run"]) == 2
    assert one_error_line(capsys) == f"error: {space}: data: must name synthetic, stdlib or a token-shard directory"


def test_the_default_sweep_name_is_made_of_the_space_file_name(tmp_path, capsys):
    space = tiny_space(tmp_path)
    odd = tmp_path / "my space (v2).py"
    odd.write_text(open(space).read())
    assert main([str(odd), "--dry-run"]) == 0
    assert "; sweep my-space-v2-20" in capsys.readouterr().out


def test_the_command_to_continue_a_sweep_is_quoted_for_the_shell():
    from slmray.sweep.driver import continue_command

    class Request:
        name, command = "n", ["my space.py", "--storage", "/tmp/a b", "--name", "n", "--max-trials", "3"]

    assert continue_command(Request) == "python -m slmray.tune 'my space.py' --storage '/tmp/a b' --max-trials 3 --name n --resume"


def test_the_printed_analysis_command_is_shell_quoted(tmp_path):
    """A sweep folder with a space in its path: the printed command runs as printed."""
    import shlex
    import shutil

    from analysis_fixtures import H100_SWEEP
    from slmray.sweep.driver import summary
    from slmray.sweep.space import load_space

    sweep_dir = tmp_path / "my sweeps" / "h100x1"
    sweep_dir.mkdir(parents=True)
    shutil.copy(H100_SWEEP, sweep_dir / "results.parquet")
    line = summary(str(sweep_dir), load_space("search_spaces/h100x1.py")).splitlines()[-1]
    assert line.startswith("analyse it: ")
    assert shlex.split(line.removeprefix("analyse it: ")) == [
        "python", "-m", "slmray.analysis", str(sweep_dir / "results.parquet"), "--out", "h100x1-report"]


def test_a_resume_whose_space_changed_is_refused_in_one_line_before_ray_starts(tmp_path, capsys):
    from slmray.sweep.space import load_space
    from slmray.sweep.space_record import SPACE_FILE, store_space

    started = tiny_space(tmp_path)
    storage = tmp_path / "s"
    (storage / "grown").mkdir(parents=True)
    (storage / "grown" / "tuner.pkl").write_bytes(b"")  # a sweep that exists; Ray would fail to restore it
    store_space(str(storage / "grown"), load_space(started), started)
    stored = (storage / "grown" / SPACE_FILE).read_text()
    changed = write_space(tmp_path, """
SPACE = SearchSpace(model=["tiny"], per_device_batch=[2, 4], num_gpus=[1], attention=["sdpa"], strategy=["ddp"],
                    seq_len=32, steps=5, warmup_steps=0, device="cpu")
""", name="changed.py")
    assert main([changed, "--storage", str(storage), "--name", "grown", "--resume"]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: --resume: {changed} changed since sweep grown started: per_device_batch: [2] -> "
                           "[2, 4] (fields changed: per_device_batch, steps); resume with the space it started with, "
                           "or add --allow-changed-space"), line
    assert (storage / "grown" / SPACE_FILE).read_text() == stored
    assert sorted(p.name for p in (storage / "grown").iterdir()) == ["driver.lock", SPACE_FILE, "tuner.pkl"]
    with SweepLock(str(storage / "grown"), "grown"):  # not left held
        pass


def test_allow_changed_space_is_for_a_resume_only(tmp_path, capsys):
    assert main([tiny_space(tmp_path), "--storage", str(tmp_path / "s"), "--name", "n", "--allow-changed-space"]) == 2
    assert one_error_line(capsys) == ("error: --allow-changed-space: only with --resume (a new sweep stores the space "
                                      "it starts with)")


# -- a dry run plans for the GPUs the space names ------------------------------------------------
SHIPPED = sorted(Path("search_spaces").glob("*.py"))


def plan_rows(stdout: str) -> list[list[str]]:
    """The dry run's table rows, split on spaces (#, model, batch, gpus, gpu, ...)."""
    return [line.split() for line in stdout.splitlines() if line.split() and line.split()[0].isdigit()]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_space_dry_runs_here_on_the_gpus_it_names(sweep, tmp_path, path):
    # how a user prices a sweep before renting anything: on this CPU machine, the GPUs the space
    # names, priced, without the packages only its trials import (h100x1_models.py: Liger's kernel);
    # a space naming none plans this machine (smoke.py: its CPU)
    from slmray.sweep.space import load_space

    out = sweep(str(path), "--dry-run", "--verbose", "--storage", str(tmp_path / "s"))
    assert out.returncode == 0, out.stderr
    space = load_space(str(path), packages=False)
    rows = plan_rows(out.stdout)
    assert len(rows) == len(space.trials()) and not (tmp_path / "s").exists()
    gpus = {r[4] for r in rows}
    if space.gpu_type:
        assert gpus == set(space.gpu_type), gpus
        usd = float(next(line for line in out.stdout.splitlines() if line.startswith("estimate:")).split("$")[1]
                    .replace(",", ""))
        assert usd > 0, out.stdout  # the shipped GPU spaces price with a profile that has their GPUs
    else:
        from slmray.sweep.capacity import local_capacity

        assert gpus == ({"cpu"} if not local_capacity().use_gpu else set(local_capacity().gpu_types))


def test_a_dry_run_plans_hosts_of_the_instance_catalog(sweep, tmp_path):
    from slmray.catalog.instances import instance_types

    host = max(it.gpus for it in instance_types() if it.gpu == "H100-80GB")
    path = write_space(tmp_path, f"""
SPACE = SearchSpace(model=["llama-100m"], per_device_batch=[8], num_gpus=[1, {2 * host}], gpu_type=["H100-80GB", "H100-NVL"],
                    attention=["sdpa"], strategy=["ddp"], seq_len=256, prices="aws")
""")
    assert not any(it.gpu == "H100-NVL" for it in instance_types())  # the case of a GPU no instance carries
    out = sweep(path, "--dry-run", "--verbose", "--storage", str(tmp_path / "s"), "--price", "H100-NVL=3")
    assert out.returncode == 0, out.stderr
    header = out.stdout.splitlines()[0]
    assert f"on 2 hosts of {host} H100-80GB, {2 * host} H100-NVL on one host (instances.csv has no H100-NVL instance)" in header
    assert "give --cluster-config" in header
    assert {(r[3], r[4]) for r in plan_rows(out.stdout)} == {
        ("1", "H100-80GB"), (str(2 * host), "H100-80GB"), ("1", "H100-NVL"), (str(2 * host), "H100-NVL")}


def test_the_dry_runs_capacity_is_the_catalogs_host(tmp_path):
    # the estimate of a trial spanning hosts goes over the network between them: hosts as large as the catalog's
    from slmray.catalog.instances import instance_types
    from slmray.sweep.capacity import named_capacity
    from slmray.sweep.space import load_space

    space = load_space(write_space(tmp_path, """
SPACE = SearchSpace(model=["llama-100m"], per_device_batch=[8], num_gpus=[3], gpu_type=["A10G", "H100-NVL"],
                    attention=["sdpa"], strategy=["ddp"], seq_len=256)
"""))
    capacity = named_capacity(space)
    a10g = max(it.gpus for it in instance_types() if it.gpu == "A10G")
    assert capacity.gpus_per_node == {"A10G": a10g, "H100-NVL": 3}
    assert capacity.gpus == {"A10G": a10g * -(-3 // a10g), "H100-NVL": 3} and capacity.use_gpu
    capacity.check(space)


MORE_THAN_THIS_CPU = (os.cpu_count() or 1) + 1


@pytest.mark.parametrize("field, value, message", [
    ("num_gpus", [1, MORE_THAN_THIS_CPU], f"num_gpus: {MORE_THAN_THIS_CPU} is more than the {MORE_THAN_THIS_CPU - 1} "
                                          "CPU worker processes this machine can ever have"),
    ("objectives", ["max:tokens_per_usd"], "objectives: tokens_per_usd needs a price, and cpu has none under the prices 'aws'"),
])
def test_a_dry_run_of_a_space_naming_no_gpu_that_this_cpu_cannot_take_says_give_a_cluster(
        tmp_path, capsys, field, value, message):
    from slmray.sweep.capacity import local_capacity

    if local_capacity().use_gpu:
        pytest.skip("this machine has GPUs: a space naming none plans on them")
    fields = {"model": ["llama-100m"], "per_device_batch": [8], "num_gpus": [1], "attention": ["sdpa"],
              "strategy": ["ddp"], "seq_len": 256, "prices": "aws", field: value}
    space = write_space(tmp_path, f"SPACE = SearchSpace(**{fields!r})\n")
    assert main([space, "--dry-run", "--storage", str(tmp_path / "s")]) == 2
    line = one_error_line(capsys)  # one line: no warning suggesting --price cpu=USD before it
    assert line.startswith(f"error: {space}: {message}"), line
    assert line.endswith("this machine has no GPU; to plan for the GPUs the sweep will run on, give --cluster-config "
                         "CLUSTER.yaml or gpu_type in the space"), line
    assert "--price cpu" not in line
    # and with the cluster it will run on, it plans that cluster's GPUs
    assert main([space, "--dry-run", "--verbose", "--storage", str(tmp_path / "s"), "--cluster-config", "cluster/h100.yaml"]) == 0
    assert {r[4] for r in plan_rows(capsys.readouterr().out)} == {"H100-80GB"}


def test_a_real_run_of_a_gpu_space_on_this_cpu_is_still_refused(tmp_path, capsys):
    # only the dry run plans GPUs it does not have: the sweep itself checks the machine it runs on
    from slmray.sweep.capacity import local_capacity

    if local_capacity().use_gpu:
        pytest.skip("this machine has GPUs")
    assert main(["search_spaces/h100x1.py", "--storage", str(tmp_path / "s"), "--name", "real"]) == 2
    assert one_error_line(capsys) == ("error: search_spaces/h100x1.py: gpu_type: H100-80GB asked for, but this "
                                      "machine has no GPU")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("how", ["--address", "RAY_ADDRESS"])
def test_a_dry_run_with_a_ray_address_plans_without_connecting(tmp_path, capsys, monkeypatch, how):
    # nothing answers at the address: a dry run never connects (it was a traceback: no capacity to plan on)
    args = ["--address", "127.0.0.1:1"] if how == "--address" else []
    if how == "RAY_ADDRESS":
        monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    assert main(["search_spaces/h200x1.py", "--dry-run", "--verbose", "--storage", str(tmp_path / "s"), *args]) == 0
    assert {r[4] for r in plan_rows(capsys.readouterr().out)} == {"H200"}
    assert main(["search_spaces/smoke.py", "--dry-run", "--storage", str(tmp_path / "s"), *args]) == 2
    assert one_error_line(capsys) == (
        "error: --dry-run: plans without connecting to the Ray cluster of --address or RAY_ADDRESS, and the space "
        "names no gpu_type: give --cluster-config CLUSTER.yaml (the cluster's YAML) to plan for its GPUs")
    assert main(["search_spaces/smoke.py", "--dry-run", "--verbose", "--storage", str(tmp_path / "s"), *args,
                 "--cluster-config", "cluster/h100.yaml"]) == 0
    assert {r[4] for r in plan_rows(capsys.readouterr().out)} == {"H100-80GB"}
    assert not (tmp_path / "s").exists()


def test_only_the_real_run_asks_for_the_packages_its_trials_import(tmp_path, capsys):
    # a dry run plans a sweep for a machine it is not on; the sweep itself needs Liger's package here
    from slmray.train.config import installed_loss_kernels

    if "liger" in installed_loss_kernels():
        pytest.skip("liger-kernel is installed here")
    space = "search_spaces/h100x1_models.py"
    assert main([space, "--dry-run", "--verbose", "--storage", str(tmp_path / "s")]) == 0
    assert " liger " in capsys.readouterr().out
    assert main([space, "--storage", str(tmp_path / "s"), "--name", "real"]) == 2
    assert one_error_line(capsys) == (f"error: {space}: loss_kernel: liger needs the liger-kernel package "
                                      "(pip install liger-kernel)")
    assert not (tmp_path / "s").exists()
