"""benchmarks/dry_run_accuracy.py: the dry run's predictions against the sweeps it planned."""

import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "benchmarks" / "results" / "estimate" / "dry_run_accuracy.md"


def test_the_committed_comparison_regenerates_from_its_own_command(cli, tmp_path):
    made = COMMITTED.read_text().splitlines()[2]
    command = shlex.split(made.split("`")[1])
    assert command[:2] == ["python", "benchmarks/dry_run_accuracy.py"]
    out = tmp_path / "again.md"
    res = cli(str(ROOT / command[1]), *[str(ROOT / a) for a in command[2:]], "--out", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    # the command line names the files as given; the rest is the comparison itself
    assert out.read_text().splitlines()[4:] == COMMITTED.read_text().splitlines()[4:]


def test_a_space_without_its_table_is_one_line(cli):
    res = cli(str(ROOT / "benchmarks" / "dry_run_accuracy.py"), str(ROOT / "search_spaces" / "h100x1.py"))
    assert res.returncode == 2
    assert "give each space with its table" in res.stderr and "Traceback" not in res.stderr


def test_a_missing_table_or_a_bad_space_is_one_line(cli, tmp_path):
    script, space = str(ROOT / "benchmarks" / "dry_run_accuracy.py"), str(ROOT / "search_spaces" / "h100x1.py")
    res = cli(script, space, str(tmp_path / "nothing.parquet"))
    assert res.returncode == 2 and "nothing.parquet" in res.stderr and "Traceback" not in res.stderr
    bad = tmp_path / "bad.py"
    bad.write_text("SPACE = 1\n")
    res = cli(script, str(bad), str(ROOT / "benchmarks" / "results" / "sweeps" / "sweep_h100x1.parquet"))
    assert res.returncode == 2 and "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
