"""benchmarks/dry_run_accuracy.py: the dry run's predictions against the sweeps it planned."""

import shlex
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "benchmarks" / "results" / "estimate" / "dry_run_accuracy.md"
BAR = ROOT / "benchmarks" / "results" / "heldout" / "bar.md"
HELD_OUT = ROOT / "benchmarks" / "results" / "heldout"


@pytest.mark.parametrize("committed", [COMMITTED, BAR], ids=["sweeps", "bar"])
def test_the_committed_comparison_regenerates_from_its_own_command(cli, tmp_path, committed):
    made = committed.read_text().splitlines()[2]
    command = shlex.split(made.split("`")[1])
    assert command[:2] == ["python", "benchmarks/dry_run_accuracy.py"]
    out = tmp_path / "again.md"
    res = cli(str(ROOT / command[1]), *[str(ROOT / a) for a in command[2:]], "--out", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    # the command line names the files as given; the rest is the comparison itself
    assert out.read_text().splitlines()[4:] == committed.read_text().splitlines()[4:]


def test_a_committed_plan_is_judged_as_it_was_made_not_planned_again(cli, tmp_path):
    plan = pd.read_csv(HELD_OUT / "h100x1_heldout_b_plan.csv")
    plan["predicted_tokens_per_s"] *= 2  # what a different estimator would have said that day
    path = tmp_path / "plan.csv"
    plan.to_csv(path, index=False)
    res = cli(str(ROOT / "benchmarks" / "dry_run_accuracy.py"), str(path), str(HELD_OUT / "h100x1_heldout_b.parquet"))
    assert res.returncode == 0, res.stderr[-2000:]
    row = plan[(plan["model"] == "smollm2-360m") & (plan["attention"] == "eager") & ~plan["compile"]
               & (plan["per_device_batch"] == 5)].iloc[0]
    line = next(l for l in res.stdout.splitlines() if l.startswith("| plan | smollm2-360m | eager | False | bf16 | native | 5 |"))
    measured, predicted = (float(c.replace(",", "")) for c in line.split("|")[8:10])
    assert predicted == pytest.approx(row["predicted_tokens_per_s"], abs=1)
    assert predicted / measured > 1.8  # the doubled prediction, not today's estimate


def test_a_space_without_its_table_is_one_line(cli):
    res = cli(str(ROOT / "benchmarks" / "dry_run_accuracy.py"), str(ROOT / "search_spaces" / "h100x1.py"))
    assert res.returncode == 2
    assert "give each space with its table" in res.stderr and "Traceback" not in res.stderr


def test_a_missing_table_or_a_bad_space_is_one_line(cli, tmp_path):
    script, space = str(ROOT / "benchmarks" / "dry_run_accuracy.py"), str(ROOT / "search_spaces" / "h100x1.py")
    res = cli(script, space, str(tmp_path / "nothing.parquet"))
    assert res.returncode == 2 and "nothing.parquet" in res.stderr and "Traceback" not in res.stderr
    res = cli(script, str(tmp_path / "no_plan.csv"), str(HELD_OUT / "h100x1_heldout_b.parquet"))
    assert res.returncode == 2 and "no_plan.csv" in res.stderr and "Traceback" not in res.stderr
    bad = tmp_path / "bad.py"
    bad.write_text("SPACE = 1\n")
    res = cli(script, str(bad), str(ROOT / "benchmarks" / "results" / "sweeps" / "sweep_h100x1.parquet"))
    assert res.returncode == 2 and "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
