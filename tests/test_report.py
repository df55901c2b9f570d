"""The report and its CLI on real results: a CPU sweep run here, the committed H100 tables (a
sweep with recorded predictions, the trainer benchmark), an S3 copy of a table, and the tables
that must not crash it (empty, out-of-memory only, broken)."""

import math
import sys
import warnings
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.image import imread

from slmray.analysis import accuracy, findings, plots
from slmray.analysis.__main__ import main
from slmray.analysis.costs import add_cost_metrics, price_trials
from slmray.analysis.report import write_report
from slmray.analysis.table import to_frame
from slmray.catalog.prices import PriceBook
from slmray.core.objective import Objective
from slmray.results.table import SCHEMA, read_table, read_tables, write_table

from analysis_fixtures import H100_BENCHMARK, H100_CSV, H100_SWEEP, H200_SWEEP, REPO, RESULTS, cpu_sweep_table

OBJECTIVES = [Objective.parse("max:tokens_per_s"), Objective.parse("min:usd_per_btok")]
PNG = b"\x89PNG\r\n\x1a\n"


def _assert_real_pngs(paths, at_least):
    assert len(paths) >= at_least, paths
    for path in paths:
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5_000, path
        assert imread(path).std() > 0.01, f"{path} is blank"


def test_report_on_a_cpu_sweep(tmp_path):
    df = add_cost_metrics(price_trials(to_frame(cpu_sweep_table()), PriceBook.load(overrides={"cpu": 0.5})))
    report = write_report(df, tmp_path, OBJECTIVES, ["cpu sweep"])
    _assert_real_pngs(report.figures, 3)
    assert sorted(p.name for p in report.figures) == ["attention.png", "batch.png", "ratios.png"]
    md, page = report.markdown.read_text(), report.html.read_text()
    # left out, each with its reason on one line: one GPU count; one price, so $ per token is 1 / tokens/s, and
    # the memory it falls back to the CPU does not measure
    assert "Not drawn, scaling.png: every trial ran on 1 GPU: no scaling to show." in md
    assert "Not drawn, memory.png: no ok trial measured its peak memory" in md
    assert ("Not drawn, pareto.png: no ok trial has both tokens_per_s and peak_mem_gb, drawn instead of max:tokens_per_s "
            "against min:usd_per_btok: at one price per model, $ per billion tokens follows from tokens/s alone") in md
    assert md.index("## Decision: what to pick, per model") < md.index("## Key findings")  # the answer first
    decided = md.split("## Why each pick, and how sure")[1].split("\n## ")[0]
    for model in ("tiny", "tiny-neox"):
        assert f"{model}: pick cpu x1 single" in decided
    assert "tiny-4m-vocab: no pick, no ok trial has tokens_per_s, usd_per_btok (oom 1)" in decided
    picks = report.recommendations.set_index("model")["pick"]
    assert picks["tiny"].startswith("cpu x1") and picks["tiny-4m-vocab"].startswith("none: ")
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


def test_a_price_for_one_gpu_type_keeps_the_recorded_prices_of_the_others(tmp_path, capsys):
    """--price H100-80GB=3 re-prices the H100's trials alone: every pick on the H200 costs what it
    did with no flag (the recorded prices), never the `local` profile's 0 nor today's catalog."""
    def picks(*flags) -> dict[str, str]:
        assert main([str(H200_SWEEP), str(H100_SWEEP), "--out", str(tmp_path / "r"), *flags]) == 0
        return {line.split(":")[0].strip(): line for line in capsys.readouterr().out.splitlines() if ", run $" in line}

    recorded, overridden = picks(), picks("--price", "H100-80GB=3")
    on_h200 = {m for m, line in recorded.items() if ": H200 x" in line}
    assert on_h200 and all(overridden[m] == recorded[m] for m in on_h200)
    md = (tmp_path / "r" / "report.md").read_text()
    assert "Re-priced the trials on H100-80GB with 1 override(s); the others keep their recorded prices." in md


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
    assert "none finished ok (oom 1)" in md and "No pick" in md
    assert "wrote" in capsys.readouterr().out


def test_committed_benchmark_table_is_the_csv_converted():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import trainer_throughput
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    assert read_table(str(H100_BENCHMARK)).equals(trainer_throughput.results_table(str(H100_CSV)))


def test_cli_on_the_committed_h100_benchmark(cli, tmp_path):
    out = tmp_path / "report"
    done = cli("-m", "slmray.analysis", str(H100_BENCHMARK), "--out", str(out), "--prices", "paper")
    assert done.returncode == 0, done.stderr
    _assert_real_pngs(sorted(out.glob("*.png")), 3)
    md = (out / "report.md").read_text()
    assert "llama-100m: pick H100-80GB x1 single sdpa b64 compile" in md.split("## Decision")[1]
    assert "A100-40GB-hours" in md  # the paper's prices are relative
    assert "llama-2b: H100-80GB x1" in done.stdout
    assert "## Predicted vs measured" not in md and not (out / "predictions.png").exists()  # none recorded


def test_report_on_the_committed_h100_tables(cli, tmp_path):
    out = tmp_path / "report"
    done = cli("-m", "slmray.analysis", str(H100_SWEEP), str(H100_BENCHMARK), "--out", str(out), "--prices", "aws")
    assert done.returncode == 0, done.stderr
    md = (out / "report.md").read_text()
    _assert_real_pngs(sorted(out.glob("*.png")), 6)
    key = md.split("**Key findings per model**")[1].split("##")[0]
    # llama-100m without compile: sdpa 354,250 tok/s (sweep, b64) over eager 168,571 (sweep, b32); eager b64 OOM
    assert "| llama-100m | 2.1 | 64 | 32 | 64 | - | 0.526 | 1.68 |" in key
    predicted = md.split("## Predicted vs measured")[1].split("\n## ")[0]
    assert "23 ok or out-of-memory trials, 16 ok. Out of memory predicted right for 100%" in predicted
    assert "| out of memory | 7 | 0 |" in predicted and "| fits | 0 | 16 |" in predicted
    assert "](predictions.png)" in predicted
    # the sweep's DDP at one GPU keeps gradient buckets: llama-1b sdpa b32 runs alone but not under DDP
    assert "| llama-1b | ddp | sdpa | False | 1,024 | 16 | 47.7 | 32 |" in md
    assert "| llama-1b | single | sdpa | False | 1,024 | 32 | 75.5 | 64 |" in md


def test_predicted_vs_measured_by_hand():
    df = pd.DataFrame({
        "model": ["a", "a", "a", "b", "b"], "n_params": [1, 1, 1, 2, 2],
        "status": ["ok", "oom", "ok", "oom", "failed"], "gpu_type": "H100-80GB",
        "peak_mem_gb": [10.0, 70.0, 20.0, 60.0, None], "predicted_peak_mem_gb": [11.0, 90.0, 19.0, 50.0, 5.0],
        "predicted_oom": [False, True, True, False, False],
        "tokens_per_s": [100.0, None, 200.0, None, None], "predicted_tokens_per_s": [110.0, 1.0, 150.0, 1.0, 1.0],
    })
    s = accuracy.summarise(df)  # the failed trial is not judged
    assert (s["rows"], s["ok"], s["oom_accuracy"]) == (4, 2, 0.5)
    assert s["memory_mdape"] == pytest.approx(7.5)  # +10% and -5%
    assert s["tokens_mdape"] == pytest.approx(17.5)  # +10% and -25%
    confusion = accuracy.oom_confusion(df).set_index("prediction")
    assert confusion.loc["out of memory"].tolist() == [1, 1] and confusion.loc["fits"].tolist() == [1, 1]
    table = accuracy.accuracy_table(df).set_index("model")
    assert table.loc["a", "memory worst"] == "10.0%" and table.loc["b", "memory MdAPE"] == "-"
    assert not isinstance(plots.prediction_figure(df), plots.NotDrawn)
    assert not accuracy.has_predictions(df.assign(predicted_oom=None))
    assert isinstance(plots.prediction_figure(df.assign(predicted_oom=None)), plots.NotDrawn)


def test_cpu_sweep_without_predictions_has_no_such_section(tmp_path):
    report = write_report(add_cost_metrics(to_frame(cpu_sweep_table())), tmp_path, OBJECTIVES)
    assert "Predicted vs measured" not in report.markdown.read_text()
    assert not (tmp_path / "predictions.png").exists()


def test_cli_reads_a_table_on_s3(cli, s3_server, tmp_path, monkeypatch):
    for name, value in s3_server.items():
        monkeypatch.setenv(name, value)
    uri = "s3://slmray-test/sweeps/h100x1/results.parquet"
    write_table(read_table(str(H100_SWEEP)), uri)
    out = tmp_path / "report"
    done = cli("-m", "slmray.analysis", uri, "--out", str(out), env=s3_server)
    assert done.returncode == 0, done.stderr
    md = (out / "report.md").read_text()
    assert f"Results: {uri}." in md and "## Predicted vs measured" in md
    assert "llama-1b: H100-80GB x1 ddp sdpa b16" in done.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["/nonexistent/results.parquet"], "error: results: no such table /nonexistent/results.parquet"),
        (["{bad}", "--objective", "max:speed"], "error: objective 'max:speed': unknown column 'speed'"),
        (["{bad}", "--objective", "fastest"], "error: objective 'fastest': expected max:COLUMN or min:COLUMN"),
        (["{sweep}", "--price", "H100"], "error: --price 'H100': expected GPU=USD"),
        (["{sweep}", "--price", "H100-90GB=3"], "error: --price 'H100-90GB=3': 'H100-90GB' is not a catalog name"),
        (["{bad}"], "is not a Parquet table"),
        (["{narrow}"], "lacks the column 'model'"),
        (["{bad}", "--tokens-per-param", "0"], "error: --tokens-per-param: must be a positive number"),
        (["{bad}", "--tokens-per-param", "nan"], "error: --tokens-per-param: must be a positive number"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    bad, narrow = tmp_path / "bad.parquet", tmp_path / "narrow.parquet"
    bad.write_text("not parquet")
    write_table(pa.table({"x": [1]}), str(narrow))
    args = [a.format(bad=bad, narrow=narrow, sweep=H100_SWEEP) for a in args]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_an_empty_out_is_refused_not_the_current_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([str(H100_SWEEP), "--out", " "]) == 2
    assert capsys.readouterr().err == "error: --out: must name a folder for the report (got an empty path)\n"
    assert list(tmp_path.iterdir()) == []


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
    scaling = findings.gpu_scaling(df).set_index(["model", "strategy", "num_gpus"])  # a line per strategy
    assert scaling.loc[("a", "ddp", 2), "scaling_efficiency"] == pytest.approx(0.9)  # 180 / (2 x 100)
    assert scaling.loc[("b", "fsdp", 2), "scaling_efficiency"] == pytest.approx(1.0)  # 20 / (2 x 10)
    strategy = findings.strategy_effect(df).set_index(["model", "num_gpus"])
    assert strategy.loc[("a", 2), "fsdp / ddp"] == pytest.approx(150 / 180)
    assert strategy.loc[("b", 2), "fsdp / ddp"] == pytest.approx(20 / 16)
    attention = findings.attention_effect(df).set_index("model")
    assert attention.loc["a", "fused / eager"] == pytest.approx(180 / 50)
    assert "b" not in attention.index  # b ran sdpa alone: a row that compares nothing is not printed
    batch = findings.batch_effect(df).set_index("model")
    assert list(batch.columns) == ["8", "16"] and batch.loc["a", "16"] == "oom"  # eager at 16 ran out of memory
    assert findings.gpu_type_effect(df).empty  # each model on one GPU type: nothing to compare
    fig = plots.scaling_figure(df)  # a panel per model and attention backend, a line per GPU type and strategy
    panels = {ax.get_title(): {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
              for ax in fig.axes if ax.get_visible()}
    assert list(panels) == ["a\neager", "a\nsdpa", "b\nsdpa"]
    assert panels["a\nsdpa"]["H100-80GB ddp"] == [100.0, 180.0]
    assert math.isnan(panels["a\nsdpa"]["H100-80GB fsdp"][0]) and panels["a\nsdpa"]["H100-80GB fsdp"][1] == 150.0


def test_compile_oom_boundary_and_key_findings_by_hand():
    rows = [  # model, strategy, attention, compile, batch, status, tokens/s, peak GiB, mfu
        ("a", "single", "eager", False, 8, "ok", 100.0, 30.0, 0.1),
        ("a", "single", "eager", False, 16, "oom", None, 79.0, None),
        ("a", "single", "sdpa", False, 8, "ok", 190.0, 20.0, 0.2),
        ("a", "single", "sdpa", False, 16, "ok", 200.0, 40.0, 0.21),
        ("a", "ddp", "sdpa", False, 16, "oom", None, 78.0, None),
        ("a", "single", "sdpa", True, 16, "ok", 300.0, 30.0, 0.32),
        ("a", "single", "eager", True, 16, "ok", 250.0, 50.0, 0.26),
    ]
    df = pd.DataFrame(rows, columns=["model", "strategy", "attention", "compile", "per_device_batch", "status",
                                     "tokens_per_s", "peak_mem_gb", "mfu"]).assign(
        n_params=1e8, gpu_type="H100-80GB", num_gpus=1, seq_len=1024)
    assert findings.mixes_compile(df)
    assert findings.row_keys(df, "num_gpus") == ["model", "num_gpus", "strategy", "attention", "compile"]
    assert findings.row_keys(df, "num_gpus", compared="strategy") == ["model", "num_gpus", "attention", "compile"]
    effect = findings.compile_effect(df).set_index(["strategy", "attention"])  # like for like: a row per strategy
    assert effect.loc[("single", "sdpa"), "on / off"] == pytest.approx(300 / 200)
    assert effect.loc[("single", "eager"), "on"] == 250.0
    assert ("ddp", "sdpa") not in effect.index  # out of memory off, never run on: compares nothing
    split = findings.attention_effect(df, rows=["model", "compile"]).set_index("compile")
    assert split.loc[False, "fused / eager"] == pytest.approx(2.0) and split.loc[True, "fused / eager"] == pytest.approx(1.2)
    boundary = findings.oom_boundary(df).set_index(["strategy", "attention", "compile"])
    assert boundary.loc[("single", "eager", False)][["largest ok batch", "smallest OOM batch"]].tolist() == [8, 16]
    assert pd.isna(boundary.loc[("ddp", "sdpa", False), "largest ok batch"])
    assert pd.isna(boundary.loc[("single", "sdpa", False), "smallest OOM batch"])
    key = findings.key_findings(df, "tokens_per_s").iloc[0]
    # without compile: sdpa 200 over eager 100; batch 16 best (200, sdpa), batch 8 within 5% (190)
    assert key["fused / eager"] == pytest.approx(2.0)
    assert (key["best batch"], key["saturates at"], key["eager OOM from"], key["fused OOM from"]) == (16, 8, 16, None)
    assert key["best MFU"] == pytest.approx(0.32) and key["compile on / off (fused)"] == pytest.approx(1.5)


def test_key_findings_and_gpu_type_effect_split_by_gpu_type():
    """Eager batch 16 runs out of memory on the smaller GPU only: one line per GPU type keeps that
    apart, where a line per model would say eager never ran out."""
    rows = [  # gpu, attention, batch, status, tokens/s, tokens per $
        ("H100-80GB", "eager", 8, "ok", 100.0, 50.0),
        ("H100-80GB", "eager", 16, "oom", None, None),
        ("H100-80GB", "sdpa", 16, "ok", 200.0, 100.0),
        ("H200", "eager", 8, "ok", 110.0, 48.0),
        ("H200", "eager", 16, "ok", 120.0, 52.0),
        ("H200", "sdpa", 16, "ok", 230.0, 90.0),
    ]
    df = pd.DataFrame(rows, columns=["gpu_type", "attention", "per_device_batch", "status", "tokens_per_s",
                                     "tokens_per_usd"]).assign(
        model="a", n_params=1e8, strategy="ddp", compile=False, num_gpus=1, seq_len=1024, mfu=0.1, peak_mem_gb=1.0)
    only_sdpa = findings.attention_effect(df[(df["gpu_type"] == "H100-80GB") & (df["per_device_batch"] == 16)])
    assert pd.isna(only_sdpa.loc[0, "fused / eager"])  # eager ran out of memory: no ratio, not infinity
    key = findings.key_findings(df).set_index("gpu_type")
    assert list(key.index) == ["H100-80GB", "H200"]
    assert key.loc["H100-80GB", "eager OOM from"] == 16 and pd.isna(key.loc["H200", "eager OOM from"])
    assert key.loc["H200", "fused / eager"] == pytest.approx(230 / 120)
    cost = findings.gpu_type_effect(df).set_index("model")
    assert cost.loc["a", "best"] == "H100-80GB" and cost.loc["a", "H200 / best"] == pytest.approx(0.9)
    speed = findings.gpu_type_effect(df, "tokens_per_s").set_index("model")
    assert speed.loc["a", "best"] == "H200" and speed.loc["a", "H100-80GB / best"] == pytest.approx(200 / 230)


COMMITTED = [str(H100_SWEEP), str(H200_SWEEP), str(H100_BENCHMARK)]
"""The tables of benchmarks/results/report/, an H100 and an H200 sweep and the H100 trainer benchmark."""


def _table(md: str, caption: str) -> str:
    return md.split(f"**{caption}**")[1].split("\n\n")[1]


def test_committed_report_regenerates_and_compares_like_for_like(cli, tmp_path):
    out = tmp_path / "report"
    done = cli("-m", "slmray.analysis", *(str(Path(t).relative_to(Path.cwd())) for t in COMMITTED), "--out", str(out),
               "--prices", "aws")  # the command of benchmarks/results/report/README.md
    assert done.returncode == 0, done.stderr
    md = (out / "report.md").read_text()
    assert md == Path("benchmarks/results/report/report.md").read_text()  # the committed report is this code's
    compile_table = _table(md, "torch.compile off and on, tokens/s")
    assert compile_table.splitlines()[0] == "| model | gpu_type | strategy | attention | off | on | on / off |"
    # llama-100m eager: the H100's own uncompiled 166,964 (single, as the compiled run), not the H200's 206,719
    assert "| llama-100m | H100-80GB | single | eager | 166,964 | 463,804 | 2.78 |" in compile_table
    assert "| llama-100m | H200 |" not in compile_table  # no compiled H200 run: that row compares nothing
    attention = _table(md, "FlashAttention (fused) vs eager attention, tokens/s")
    assert "| llama-2b | H200 | ddp | False | oom | 18,219 | - |" in attention  # every eager trial ran out of memory
    assert "| llama-2b | H200 | ddp | False | oom | 0.231 |" in _table(
        md, "MFU (against the BF16 peak, FP8 runs too) by attention backend")
    batch = _table(md, "Per-device batch size, tokens per $")  # a row per attention: no eager-to-sdpa jump
    assert "| llama-1b | H100-80GB | ddp | sdpa | False | - | 29,958,333 | 32,916,669 | oom | - |" in batch
    assert "| pythia-160m | H100-80GB | single | eager | False | - | 36,282,025 | oom | oom | - |" in batch
    speed_caption = "GPU type at equal settings and batch, tokens/s"
    for caption in ("FlashAttention (fused) vs eager attention, tokens/s", speed_caption,
                    "Per-device batch size, tokens per $", "MFU (against the BF16 peak, FP8 runs too) by attention backend"):
        assert not [row for row in _table(md, caption).splitlines() if "| 0 |" in row], caption
    speed = _table(md, speed_caption)  # ddp on both: the sweeps; the H100 benchmark's single runs compare nothing
    ratios = [float(row.split("|")[-2]) for row in speed.splitlines()[2:] if "| oom | oom |" not in row]
    # H200 / best: the H200 is faster at every equal setting both ran
    assert ratios and all(r == 1 for r in ratios)
    h100 = [float(row.split("|")[-3]) for row in speed.splitlines()[2:] if "| oom |" not in row]
    assert "| llama-1b | ddp | eager | 64 | False | oom | oom | - | - | - |" in speed  # both out of memory: no best
    assert min(h100) == pytest.approx(1 / 1.198, abs=1e-3) and max(h100) == pytest.approx(1 / 1.07, abs=1e-3)
    assert "| single |" not in speed
    printed = done.stdout
    assert "  llama-2b: H100-80GB x1 single sdpa b16 compile (39,525 tokens/s, run $1,904)" in printed
    assert "e+" not in printed


def test_report_without_prices_says_so_once(cli, tmp_path):
    out = tmp_path / "report"
    done = cli("-m", "slmray.analysis", str(H100_SWEEP), str(H200_SWEEP), "--out", str(out), "--prices", "local")
    assert done.returncode == 0, done.stderr
    md = (out / "report.md").read_text()
    assert md.count("**GPU type at equal settings and batch, tokens/s**") == 1
    assert "there is no cost axis" in md.split("## Pareto front")[1].split("\n## ")[0]
    assert not (out / "pareto.png").exists() and "pareto.png" not in md
    assert "  llama-2b: H200 x1 ddp sdpa b16 (18,219 tokens/s, run $0)" in done.stdout


def test_a_column_of_the_wrong_type_is_one_line(tmp_path, capsys):
    table = read_table(str(H100_SWEEP))
    i = table.schema.get_field_index("tokens_per_s")
    for text in (pc.cast(table["tokens_per_s"], pa.string()), pa.array(["fast"] * len(table))):
        path = tmp_path / "strings.parquet"
        write_table(table.set_column(i, "tokens_per_s", text), str(path))
        assert main([str(path), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err == f"error: results: {path}: column 'tokens_per_s' holds string, not double\n"
    assert not (tmp_path / "out").exists()


def _inside(box, bbox) -> bool:
    return bbox.x0 >= box.x0 - 0.5 and bbox.x1 <= box.x1 + 0.5 and bbox.y0 >= box.y0 - 0.5 and bbox.y1 <= box.y1 + 0.5


@pytest.mark.parametrize("panels", [1, 2])
def test_prediction_title_fits_the_figure(panels):
    df = to_frame(read_table(str(H100_SWEEP)))
    fig = plots.prediction_figure(df if panels == 2 else df.assign(predicted_peak_mem_gb=None))
    assert len(fig.axes) == panels
    renderer = FigureCanvasAgg(fig).get_renderer()  # the figures have no pyplot canvas
    fig.draw(renderer)
    assert _inside(fig.bbox, fig._suptitle.get_window_extent(renderer))


def test_figure_legend_and_titles_hide_nothing():
    """The legend sits below the panels and no panel's title falls on another panel."""
    df = add_cost_metrics(price_trials(to_frame(read_tables([str(H100_SWEEP), str(H200_SWEEP)])), PriceBook.load("aws")))
    fig = plots.attention_figure(df)
    renderer = FigureCanvasAgg(fig).get_renderer()  # the figures have no pyplot canvas
    fig.draw(renderer)
    (legend,) = fig.legends
    axes = [ax for ax in fig.axes if ax.get_visible()]
    boxes = [ax.get_window_extent(renderer) for ax in axes]
    below = legend.get_window_extent(renderer)
    assert _inside(fig.bbox, below) and not any(below.overlaps(box) for box in boxes)
    for ax in axes:
        title = ax.title.get_window_extent(renderer)
        assert _inside(fig.bbox, title) and not any(title.overlaps(box) for box in boxes)
    # a line per attention backend; the GPU types are panels, never lines
    assert [t.get_text() for t in legend.get_texts()][:2] == ["eager", "sdpa"]
    assert [ax.get_title() for ax in axes][:2] == ["llama-100m\nH100-80GB", "llama-100m\nH200"]


@pytest.mark.parametrize("profile", ["aws", "aws-spot", "aws-capacity-block", "gcp", "gcp-spot", "lambda", "paper", "local"])
def test_every_price_profile_on_the_two_gpu_type_sweeps_gives_a_report(cli, tmp_path, profile):
    """Each price profile on the committed H100 and H200 sweeps: a whole report, never a traceback,
    whether or not the profile prices both GPU types (paper, gcp and lambda price no H200)."""
    out = tmp_path / "report"
    res = cli("-m", "slmray.analysis", str(H100_SWEEP), str(H200_SWEEP), "--out", str(out), "--prices", profile)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    md = (out / "report.md").read_text()
    assert md.startswith("# slmray analysis") and (out / "report.html").exists()
    assert f"Re-priced with the {profile!r} profile" in md
    # the first section names a configuration per model, with its run's dollars where its GPU has a price
    first = md.split("\n## ")[1]
    assert first.startswith("Decision: what to pick, per model")
    first, planner = first.split("**The planner's run per model**")
    assert [row.split(" | ")[0] for row in planner.splitlines() if row.startswith("| llama-")] == [
        "| llama-100m", "| llama-500m", "| llama-1b", "| llama-2b"]  # the planner's run beside each pick
    rows = [row.split(" | ") for row in first.splitlines() if row.startswith("| llama-")]
    picks = [r for r in rows if not r[1].startswith("priced alternative")]
    alternatives = {r[0]: r for r in rows if r[1].startswith("priced alternative (predicted)")}
    assert [p[0] for p in picks] == ["| llama-100m", "| llama-500m", "| llama-1b", "| llama-2b"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a GPU the profile does not price warns: that is the case asked about
        book = PriceBook.load(profile)
        has_price = {g: book.lookup(g) is not None for g in ("H100-80GB", "H200")}
    for model, pick, *_, run_usd, _sure, _runner in picks:
        gpu = pick.split(" x1")[0]
        assert gpu in has_price, pick
        assert (run_usd != "-") == has_price[gpu], (model, pick, run_usd)
        # a pick without a price has the planner's priced alternative beside it, predicted and with dollars
        assert (model in alternatives) == (not has_price[gpu]), (model, pick)
        if model in alternatives:
            *_, alt_usd, alt_sure, _ = alternatives[model]
            assert alt_usd != "-" and alt_sure.startswith("predicted"), alternatives[model]


@pytest.mark.parametrize("flags, said", [
    ([], True), (["--prices", "aws"], False), (["--prices", "aws", "--per-gpu-pricing"], False),
], ids=["recorded", "aws", "aws-per-gpu"])
def test_a_table_billed_per_gpu_says_why_the_planner_costs_more(tmp_path, flags, said):
    """The H200 set B sweep ran on one lent GPU and recorded one H200's share of a p5en.48xlarge; the
    planner rents the whole instance: the report says why the same configuration costs 8x there."""
    table = RESULTS / "heldout" / "h200x1_heldout_b.parquet"
    assert main([str(table), "--out", str(tmp_path / "r"), *flags]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert ("The trials recorded the price of the GPUs they used, a share of an instance" in md) == said
