"""The report and its CLI on real results: a CPU sweep run here, the committed H100 benchmark,
and the tables that must not crash it (empty, out-of-memory only, broken)."""

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from analysis_fixtures import cpu_sweep_table, h100_benchmark_table
from matplotlib.image import imread

from slmray.analysis import findings, plots
from slmray.analysis.__main__ import main
from slmray.analysis.costs import add_cost_metrics, price_trials
from slmray.analysis.pareto import parse_objective
from slmray.analysis.report import write_report
from slmray.analysis.table import to_frame
from slmray.prices import PriceBook
from slmray.results import SCHEMA, write_table

OBJECTIVES = [parse_objective("max:tokens_per_s"), parse_objective("min:usd_per_btok")]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def cpu_table(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "results.parquet"
    write_table(cpu_sweep_table(), str(path))
    return path


@pytest.fixture(scope="module")
def h100_table(tmp_path_factory):
    path = tmp_path_factory.mktemp("h100") / "trainer_throughput_h100.parquet"
    write_table(h100_benchmark_table(), str(path))
    return path


def _assert_real_pngs(paths, at_least):
    assert len(paths) >= at_least, paths
    for path in paths:
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5_000, path
        assert imread(path).std() > 0.01, f"{path} is blank"


def test_report_on_a_cpu_sweep(tmp_path):
    df = add_cost_metrics(price_trials(to_frame(cpu_sweep_table()), PriceBook.load(overrides={"cpu": 0.5})))
    report = write_report(df, tmp_path, OBJECTIVES, ["cpu sweep"])
    _assert_real_pngs(report.figures, 4)  # scaling, batch, attention, pareto (no GPU memory on the CPU)
    md, page = report.markdown.read_text(), report.html.read_text()
    assert md.rstrip().endswith("|") and "## Recommendation" in md
    recommendation = md.split("## Recommendation")[1]
    for model in ("tiny", "tiny-neox"):
        assert f"{model}: cpu x1 single" in recommendation
    assert "tiny-4m-vocab: no recommendation, no ok trial with a value (oom 1)" in recommendation
    assert set(report.recommendations["model"]) == {"tiny", "tiny-neox"}
    assert page.count("data:image/png;base64,") == len(report.figures)
    for figure in report.figures:
        assert f"]({figure.name})" in md
    assert "FlashAttention (fused) vs eager" in md and "Per-device batch size, tokens per $" in md


def test_local_prices_are_zero_and_say_so(tmp_path):
    df = add_cost_metrics(to_frame(cpu_sweep_table()))  # as swept: the local machine costs 0
    report = write_report(df, tmp_path, OBJECTIVES)
    md = report.markdown.read_text()
    assert "cost tables and plots show tokens/s instead of tokens per $" in md
    assert (df.loc[df["status"] == "ok", "usd_per_btok"] == 0).all()


def test_empty_table_gives_a_report_not_a_crash(tmp_path):
    report = write_report(to_frame(SCHEMA.empty_table()), tmp_path, OBJECTIVES)
    assert "The results table is empty" in report.markdown.read_text()
    assert report.figures == () and report.recommendations.empty
    assert report.html.exists()


def test_oom_only_table_through_the_cli(tmp_path, capsys):
    table = cpu_sweep_table()
    oom_only = table.filter(pc.equal(table["status"], "oom"))
    path = tmp_path / "oom.parquet"
    write_table(oom_only, str(path))
    assert main([str(path), "--out", str(tmp_path / "report"), "--prices", "aws"]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "none finished ok (oom 1)" in md and "No recommendation" in md
    assert "wrote" in capsys.readouterr().out


def test_cli_on_the_committed_h100_benchmark(cli, h100_table, tmp_path):
    out = tmp_path / "report"
    done = cli("-m", "slmray.analysis", str(h100_table), "--out", str(out), "--prices", "paper")
    assert done.returncode == 0, done.stderr
    _assert_real_pngs(sorted(out.glob("*.png")), 3)
    md = (out / "report.md").read_text()
    assert "llama-100m: H100-80GB x1 single sdpa b64 compile" in md.split("## Recommendation")[1]
    assert "A100-40GB-hours" in md  # the paper's prices are relative
    assert "llama-2b: H100-80GB x1" in done.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["/nonexistent/results.parquet"], "error: results: no such table /nonexistent/results.parquet"),
        (["{bad}", "--objective", "max:speed"], "error: objective 'max:speed': unknown column 'speed'"),
        (["{bad}", "--objective", "fastest"], "error: objective 'fastest': expected max:COLUMN or min:COLUMN"),
        (["{bad}", "--price", "H100"], "error: --price 'H100': expected GPU=USD"),
        (["{bad}"], "is not a Parquet table"),
        (["{narrow}"], "lacks the column 'model'"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    bad, narrow = tmp_path / "bad.parquet", tmp_path / "narrow.parquet"
    bad.write_text("not parquet")
    write_table(pa.table({"x": [1]}), str(narrow))
    args = [a.format(bad=bad, narrow=narrow) for a in args]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_findings_tables_by_hand():
    rows = [  # model, gpu, gpus, strategy, attention, batch, status, tokens/s, tokens/$
        ("a", "H100-80GB", 1, "ddp", "sdpa", 8, "ok", 100.0, 50.0),
        ("a", "H100-80GB", 2, "ddp", "sdpa", 8, "ok", 180.0, 45.0),
        ("a", "H100-80GB", 2, "fsdp", "sdpa", 8, "ok", 150.0, 37.5),
        ("a", "H100-80GB", 1, "ddp", "eager", 8, "ok", 50.0, 25.0),
        ("a", "H100-80GB", 1, "ddp", "eager", 16, "oom", None, None),
        ("b", "A100-40GB", 1, "fsdp", "sdpa", 16, "ok", 10.0, 20.0),
        ("b", "A100-40GB", 2, "ddp", "sdpa", 16, "ok", 16.0, 16.0),
        ("b", "A100-40GB", 2, "fsdp", "sdpa", 16, "ok", 20.0, 20.0),
    ]
    df = pd.DataFrame(rows, columns=["model", "gpu_type", "num_gpus", "strategy", "attention", "per_device_batch",
                                     "status", "tokens_per_s", "tokens_per_usd"]).assign(
        n_params=lambda d: d["model"].map({"a": 1e8, "b": 2e9}), compile=False)
    scaling = findings.gpu_scaling(df).set_index(["model", "num_gpus"])
    assert scaling.loc[("a", 2), "scaling_efficiency"] == pytest.approx(0.9)  # 180 / (2 x 100)
    assert scaling.loc[("b", 2), "scaling_efficiency"] == pytest.approx(1.0)  # 20 / (2 x 10)
    strategy = findings.strategy_effect(df).set_index(["model", "num_gpus"])
    assert strategy.loc[("a", 2), "fsdp / ddp"] == pytest.approx(150 / 180)
    assert strategy.loc[("b", 2), "fsdp / ddp"] == pytest.approx(20 / 16)
    attention = findings.attention_effect(df).set_index("model")
    assert attention.loc["a", "fused / eager"] == pytest.approx(180 / 50) and pd.isna(attention.loc["b", "eager"])
    batch = findings.batch_effect(df).set_index("model")
    assert list(batch.columns) == ["8", "16"] and batch.loc["a", "16"] == 0.0  # eager at 16 ran out of memory
    assert findings.gpu_type_effect(df).set_index("model").loc["b", "A100-40GB"] == 20.0
    assert list(findings.gpu_type_effect(df)["model"]) == ["a", "b"]  # smallest model first
    fig = plots.scaling_figure(df)
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 2]  # ddp and fsdp lines in each model's panel
