"""`python -m slmray.tune SPACE --dry-run`: the summary first, each trial behind --verbose, and
`--out plan.csv|.parquet` with every planned trial, priced at the instances that rent it."""

import math
import os
import stat

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from slmray.catalog.prices import PriceBook
from slmray.catalog.rent import layouts
from slmray.core.schema import SCHEMA
from slmray.predict.estimate import estimate
from slmray.sweep.capacity import named_capacity
from slmray.sweep.dry_run import EXTRA_COLUMNS, PLAN_COLUMNS, plan_table
from slmray.sweep.plan import make_plan
from slmray.sweep.space import load_space
from slmray.train.config import CONFIG_KEYS
from slmray.tune import main

SPACE = """from slmray.sweep.space import SearchSpace
SPACE = SearchSpace(model=["llama-100m", "llama-1b"], per_device_batch=[8, 64], num_gpus=[1, 4],
                    gpu_type=["H100-80GB", "H200"], attention=["sdpa"], strategy=["ddp"], seq_len=1024,
                    prices="aws")
"""


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "space.py"
    path.write_text(SPACE)
    return str(path)


def dry_run(capsys, *args):
    code = main([*args, "--dry-run"])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_summary_comes_first_and_each_trial_only_with_verbose(space, tmp_path, capsys):
    code, out, _ = dry_run(capsys, space, "--storage", str(tmp_path / "s"))
    assert code == 0
    lines = out.splitlines()
    assert lines[1] == "grid: 16 trials (4 predicted out of memory and pruned: recorded, not run)"
    rows = {tuple(line.split()[:2]): line.split() for line in lines if line.startswith("llama-")}
    assert set(rows) == {(m, g) for m in ("llama-100m", "llama-1b") for g in ("H100-80GB", "H200")}
    assert all(r[2] == "4" for r in rows.values())  # trials of each model and GPU type
    assert rows["llama-1b", "H100-80GB"][3] == "2"  # batch 64 under DDP: out of memory on 1 GPU and on 4
    shapes = {tuple(line.split()[:2]): line for line in lines if line.startswith(("H100-80GB ", "H200 "))}
    assert shapes["H200", "1"].endswith("p5en.48xlarge, 8 GPUs, 7 idle")
    assert shapes["H200", "4"].endswith("p5en.48xlarge, 8 GPUs, 4 idle")
    assert shapes["H100-80GB", "1"].endswith("p5.4xlarge, 1 GPU")
    assert "p5.48xlarge, 8 GPUs, 4 idle" in shapes["H100-80GB", "4"] or "4 x p5.4xlarge" in shapes["H100-80GB", "4"]
    total = float(next(line for line in lines if line.startswith("estimate:")).split("$")[1].replace(",", ""))
    per_model = sum(float(r[5].replace(",", "")) for r in rows.values())
    counted = next(line for line in lines if line.startswith("counted: "))
    starts = int(counted.split(" warm worker-group")[0].split()[-1])  # up to as many of a shape as run at once
    assert 4 < starts <= 4 * 8, counted  # four shapes, each with up to its trials' groups
    assert per_model < total <= per_model + 0.05 + starts * 42 / 3600 * 63.296  # plus the warm groups' starts
    assert any(line.startswith("at once: up to ") and "wall-clock about" in line for line in lines)
    assert any(line.startswith("not counted: node start-up") for line in lines)
    billing = next(line for line in lines if line.startswith("billing: "))
    assert billing.startswith("billing: whole instances per trial, idle GPUs included; packed onto shared nodes about $")
    packed = float(billing.split("$")[1].split()[0].replace(",", ""))
    assert 0 < packed < total  # the H200 trials' idle GPUs are not paid
    assert not [line for line in lines if line.split() and line.split()[0].isdigit()]  # no per-trial list
    assert lines[-1] == "each trial: --verbose, or --out plan.csv|plan.parquet"
    _, verbose, _ = dry_run(capsys, space, "--storage", str(tmp_path / "s"), "--verbose")
    listed = [line for line in verbose.splitlines() if line.split() and line.split()[0].isdigit()]
    assert len(listed) == 16 and verbose.index("estimate:") < verbose.index(listed[0])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_out_writes_every_planned_trial_with_the_row_schemas_columns(space, tmp_path, capsys, suffix):
    out = tmp_path / f"plan{suffix}"
    umask = os.umask(0o022)
    try:
        code, stdout, _ = dry_run(capsys, space, "--storage", str(tmp_path / "s"), "--out", str(out))
    finally:
        os.umask(umask)
    assert code == 0 and f"plan: 16 trials written to {out}" in stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # readable by others, as the reports and results are
    if suffix == ".parquet":
        table = pq.read_table(out)
    else:  # CSV carries no types: read it back as the plan's schema says
        table = pcsv.read_csv(out, convert_options=pcsv.ConvertOptions(column_types=plan_table([]).schema))
    assert table.num_rows == 16
    assert table.column_names == [*PLAN_COLUMNS, *EXTRA_COLUMNS]
    assert set(CONFIG_KEYS) <= set(table.column_names)
    for name in PLAN_COLUMNS:
        assert table.schema.field(name).type == SCHEMA.field(name).type, name
    assert table.schema.field("usd").type == pa.float64() and table.schema.field("instances").type == pa.string()
    rows = table.to_pylist()
    for r in rows:
        assert r["predicted_tokens_per_s_low"] <= r["predicted_tokens_per_s"] <= r["predicted_tokens_per_s_high"]
        if r["pruned"]:
            assert r["predicted_oom"] and r["usd"] == r["minutes"] == r["gpu_hours"] == 0.0  # not run: spends nothing
        else:
            assert r["usd"] == pytest.approx(r["minutes"] / 60 * r["price_per_hour_usd"])
            assert r["gpu_hours"] == pytest.approx(r["minutes"] / 60 * r["num_gpus"])
    h200 = [r for r in rows if r["gpu_type"] == "H200" and r["num_gpus"] == 4]
    assert {(r["instance_type"], r["gpus_billed"], r["idle_gpus"]) for r in h200} == {("p5en.48xlarge", 8, 4)}
    assert [r["price_per_hour_usd"] for r in h200] == [pytest.approx(63.296)] * len(h200)


def test_the_plan_predicts_each_option_on_the_link_of_its_instances(tmp_path):
    path = tmp_path / "space.py"
    path.write_text(SPACE)
    space = load_space(str(path), packages=False)
    plan = make_plan(space, named_capacity(space), PriceBook.load("aws"), prune=True)
    four = [p for p in plan if p.gpu_type == "H100-80GB" and p.trial.num_gpus == 4 and not p.pruned]
    assert four
    for p in four:
        r = p.rental
        gpus_per_node, gbps, fabric = r.link
        assert p.estimate.tokens_per_s == estimate(p.train, "H100-80GB", 4, gpus_per_node=gpus_per_node,
                                                   inter_node_gbps=gbps, fabric=fabric).tokens_per_s
        # the cheaper per token of the two ways to rent it
        per_token = [o.usd_per_hour / estimate(p.train, "H100-80GB", 4, gpus_per_node=o.gpus_per_node,
                                               inter_node_gbps=o.inter_node_gbps, fabric=o.fabric).tokens_per_s
                     for o in layouts(PriceBook.load("aws"), "H100-80GB", 4)]
        assert r.usd_per_hour / p.estimate.tokens_per_s == pytest.approx(min(per_token))
        assert p.price_per_hour_usd == r.usd_per_hour


def test_per_gpu_pricing_charges_the_gpus_used(space, tmp_path, capsys):
    out = tmp_path / "plan.parquet"
    assert dry_run(capsys, space, "--storage", str(tmp_path / "s"), "--per-gpu-pricing", "--out", str(out))[0] == 0
    rows = pq.read_table(out).to_pylist()
    for r in rows:
        per_gpu = {"H100-80GB": 6.88, "H200": 63.296 / 8}[r["gpu_type"]]
        assert r["price_per_hour_usd"] == pytest.approx(per_gpu * r["num_gpus"])
        assert r["idle_gpus"] == 0 and r["instance_type"] == "" and r["gpus_per_node"] == r["num_gpus"]


@pytest.mark.parametrize("args, message", [
    (["--dry-run", "--out", "plan.json"], "error: --out: plan.json must end in .csv or .parquet"),
    (["--out", "plan.csv"], "error: --out: writes the plan of a dry run; add --dry-run"),
])
def test_out_is_refused_in_one_line(space, tmp_path, capsys, args, message):
    assert main([space, "--storage", str(tmp_path / "s"), *args]) == 2
    out = capsys.readouterr()
    assert out.err.strip() == message and not out.out
    assert not (tmp_path / "s").exists() and not list(tmp_path.glob("plan*"))


def test_out_that_cannot_be_written_leaves_nothing(space, tmp_path, capsys):
    target = tmp_path / "no-such-dir" / "plan.csv"
    code, stdout, err = dry_run(capsys, space, "--storage", str(tmp_path / "s"), "--out", str(target))
    assert code == 2 and err.strip().startswith(f"error: --out: cannot write {target} (") and not stdout
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o500)
    try:
        code, _, err = dry_run(capsys, space, "--storage", str(tmp_path / "s"), "--out", str(tmp_path / "ro" / "p.csv"))
        if os.geteuid() != 0:  # root writes anywhere
            assert code == 2 and "cannot write" in err
        assert [p.name for p in (tmp_path / "ro").iterdir()] in ([], ["p.csv"])  # no temporary file left
    finally:
        (tmp_path / "ro").chmod(0o700)


def test_the_papers_grid_summary_fits_a_screen(cli, tmp_path):
    out = cli("-m", "slmray.tune", "search_spaces/full.py", "--dry-run", "--storage", str(tmp_path / "s"))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[1].startswith("grid: 2520 trials") and len(lines) < 60
    assert max(len(line) for line in lines[1:]) <= 130  # the first names the hosts and the sweep's folder
    assert math.isfinite(float(next(line for line in lines if line.startswith("estimate:")).split("$")[1].replace(",", "")))


def test_an_optuna_summary_counts_configurations_and_its_samples(tmp_path, capsys):
    path = tmp_path / "optuna.py"
    path.write_text(SPACE.replace('prices="aws")', 'prices="aws", search="optuna", num_samples=6)'))
    code, out, _ = dry_run(capsys, str(path), "--storage", str(tmp_path / "s"), "--budget-usd", "1000")
    assert code == 0
    lines = out.splitlines()
    assert lines[1] == "optuna (tpe): 6 trials sampled from these 16 configurations (4 predicted out of memory)"
    assert lines[3].split()[:4] == ["model", "gpu", "config", "pruned"]
    assert not any("budget" in line for line in lines)  # $1000 buys every sample
    code, out, _ = dry_run(capsys, str(path), "--storage", str(tmp_path / "s"), "--budget-usd", "0.01")
    note = next(line for line in out.splitlines() if line.startswith("budget $0.01"))
    assert note == "budget $0.01 is reached after about 0 of the 6 trials at the average configuration"


def test_on_a_cluster_that_is_up_the_trials_share_its_nodes(tmp_path, capsys):
    # cluster/h100.yaml: p5.48xlarge workers; eight one-GPU trials side by side pay one node, not eight
    out = tmp_path / "plan.csv"
    code, stdout, _ = dry_run(capsys, "search_spaces/h100x1.py", "--cluster-config", "cluster/h100.yaml",
                              "--storage", str(tmp_path / "s"), "--out", str(out))
    assert code == 0
    assert "billing: the trials share the nodes that are there, each paying the GPUs it uses at their rate" in stdout
    rows = pcsv.read_csv(out).to_pylist()
    assert rows and all(r["price_per_hour_usd"] == pytest.approx(55.04 / 8 * r["num_gpus"]) for r in rows)
    assert {r["instances"] for r in rows} == {"1 GPU of a p5.48xlarge (a cluster's, shared)"}


def test_warm_group_starts_replay_the_pool_in_plan_order(tmp_path):
    """The pool starts a group for each waiting trial no idle group of its shape takes; a group
    idle longer than `warm_scheduler.IDLE_S` has ended.  The dry run replays that in plan order."""
    import dataclasses

    from slmray.sweep.plan import group_starts

    path = tmp_path / "space.py"
    path.write_text(SPACE)
    space = load_space(str(path), packages=False)
    plan = [p for p in make_plan(space, named_capacity(space), PriceBook.load("aws"), prune=True) if not p.pruned]
    one = next(p for p in plan if p.trial.num_gpus == 1 and p.gpu_type == "H200")
    four = next(p for p in plan if p.trial.num_gpus == 4 and p.gpu_type == "H200")
    a, b = (dataclasses.replace(p, seconds=10.0) for p in (one, four))
    # one at a time: A starts a group, A reuses it, B starts one (42 + 10 s), by then A's waited 52 s: a new one
    assert group_starts([a, a, b, a], concurrency=1) == [a, b, a]
    assert group_starts([a, a, b, a], concurrency=1, idle_s=60) == [a, b]
    # two at once: two groups of A side by side, then both idle for the next two
    assert group_starts([a, a, a, a], concurrency=2) == [a, a]
    # only 4 GPUs: the second 4-GPU trial waits for the first and takes its group
    assert group_starts([b, b], concurrency=2, gpus=4) == [b]
    assert group_starts([b, b], concurrency=2, gpus=8) == [b, b]
