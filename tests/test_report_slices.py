"""The report on every kind of narrow table a first sweep makes: one attention kernel, one batch,
one model, one GPU type, one strategy, one precision.  Each is a slice of the committed GPU
sweeps, analysed end to end (findings, plots, decision); a slice of one attention family once
ended in `KeyError: 'fused / eager'` and a folder holding one PNG."""

import pandas as pd
import pyarrow as pa
import pytest

from slmray.analysis import report as report_module
from slmray.analysis.costs import add_cost_metrics
from slmray.analysis.report import write_report
from slmray.analysis.table import load_results
from slmray.core.objective import Objective

from analysis_fixtures import H100_SWEEP, H200_SWEEP, RESULTS

OBJECTIVES = [Objective.parse("max:tokens_per_s"), Objective.parse("min:usd_per_btok")]
PRECISION_SWEEP = RESULTS / "precision" / "sweep_h200x1_precision.parquet"


def _both() -> pd.DataFrame:
    return load_results([str(H100_SWEEP), str(H200_SWEEP)])


SLICES = {
    "sdpa only, two GPU types": lambda: (df := _both())[df["attention"] == "sdpa"],
    "eager only": lambda: (df := _both())[df["attention"] == "eager"],
    "one batch": lambda: (df := _both())[df["per_device_batch"] == 16],
    "one model": lambda: (df := _both())[df["model"] == "llama-500m"],
    "committed precision sweep (sdpa, one strategy)": lambda: load_results([str(PRECISION_SWEEP)]),
}


SAID_INSTEAD = {  # what a slice's report says in place of the comparisons it cannot make
    "sdpa only, two GPU types": ["FlashAttention (fused) vs eager attention, tokens/s (not shown: every trial that "
                                 "ran has attention sdpa)."],
    "one model": ["DDP vs FSDP by model size and GPU count, tokens/s (not shown: every trial that ran has strategy ddp).",
                  "Scaling with GPU count: tokens/s, tokens per $, efficiency (not shown: every trial that ran has "
                  "num_gpus 1).",
                  "torch.compile off and on, tokens/s (not shown: every trial that ran has compile off).",
                  "bf16 vs FP8 (torchao.float8) at the same configuration: tokens/s, peak GiB (not shown: every trial "
                  "that ran has precision bf16)."],
}


@pytest.mark.parametrize("name", list(SLICES))
def test_a_narrow_table_gives_a_whole_report(tmp_path, name):
    df = SLICES[name]().reset_index(drop=True)
    assert len(df), name
    report = write_report(add_cost_metrics(df), tmp_path / "report", OBJECTIVES)
    md = report.markdown.read_text()
    assert md.startswith("# slmray analysis") and report.html.exists()
    assert not report.recommendations.empty, name
    for model in df.loc[df["status"] == "ok", "model"].unique():
        assert model in md
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == sorted(
        ["report.md", "report.html", *(p.name for p in report.figures)]
    )
    assert "(no rows)" not in md.split("## Findings")[1].split("\n## ")[0]
    for line in SAID_INSTEAD.get(name, []):
        assert line in md


def test_a_failed_report_leaves_no_folder_and_keeps_an_old_one(tmp_path, monkeypatch):
    df = add_cost_metrics(SLICES["one model"]().reset_index(drop=True))
    out = tmp_path / "report"
    first = write_report(df, out, OBJECTIVES)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args, **kwargs):
        raise RuntimeError("plotting failed")

    monkeypatch.setattr(report_module.plots, "memory_figure", broken)
    with pytest.raises(RuntimeError):
        write_report(df, out, OBJECTIVES)
    with pytest.raises(RuntimeError):
        write_report(df, tmp_path / "new", OBJECTIVES)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and first.markdown.exists()
    assert not (tmp_path / "new").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no staging folder left behind


def test_a_table_named_twice_counts_each_trial_once(tmp_path, capsys):
    from slmray.analysis.__main__ import main
    from slmray.results.table import ResultsWarning

    once = load_results([str(H100_SWEEP)])
    copy = tmp_path / "copy.parquet"
    copy.write_bytes(H100_SWEEP.read_bytes())
    with pytest.warns(ResultsWarning, match=f"{len(once)} row"):
        twice = load_results([str(H100_SWEEP), str(copy)])
    pd.testing.assert_frame_equal(twice, once)
    assert main([str(H100_SWEEP), str(copy), str(H100_SWEEP), "--out", str(tmp_path / "twice")]) == 0
    assert f"warning: results: {len(once)} row(s) repeat a trial" in capsys.readouterr().err
    md = (tmp_path / "twice" / "report.md").read_text()
    for model, rows in once.groupby("model"):  # the report's trial counts are the table's, once
        ok, oom = (rows["status"] == "ok").sum(), (rows["status"] == "oom").sum()
        assert md.count(f"| {model} | {rows['n_params'].iloc[0]:,} | {ok} | {oom} | ") == 1, model
    assert f"{len(once)} row(s) repeat a trial" in md  # and the report says what it dropped


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("status", "finished", "status 'finished' is not one of ok, oom, failed, pruned"),
        ("model", None, "1 row(s) have no model"),
        ("tokens_per_s", float("inf"), "column 'tokens_per_s' holds inf, not a measurement"),
        ("peak_mem_gb", -3.0, "column 'peak_mem_gb' holds -3.0, not a measurement"),
    ],
)
def test_values_no_sweep_writes_are_one_line(tmp_path, capsys, column, value, message):
    from slmray.analysis.__main__ import main
    from slmray.results.table import read_table, write_table

    table = read_table(str(H100_SWEEP))
    values = table[column].to_pylist()
    values[3] = value
    broken = table.set_column(table.column_names.index(column), column, pa.array(values, table[column].type))
    path = tmp_path / "broken.parquet"
    write_table(broken, str(path))
    assert main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_new_report_over_an_old_one_leaves_none_of_its_figures(tmp_path):
    out = tmp_path / "report"
    wide = write_report(add_cost_metrics(SLICES["one model"]().reset_index(drop=True)), out, OBJECTIVES)
    assert "pareto.png" in {p.name for p in wide.figures}
    narrow = write_report(add_cost_metrics(SLICES["one model"]().reset_index(drop=True)), out,
                          [Objective.parse("max:tokens_per_s")])  # one objective: no Pareto front drawn
    assert "pareto.png" not in {p.name for p in narrow.figures}
    assert sorted(p.name for p in out.iterdir()) == sorted(["report.md", "report.html", *(p.name for p in narrow.figures)])


def test_an_old_tables_nulls_read_as_the_defaults_of_their_day(tmp_path):
    """A table from before a configuration column (null there) and a new one that names the default
    group together: nulls read as `ROW_DEFAULTS` where a table is read, not as a setting of their own."""
    from slmray.analysis import findings
    from slmray.core.defaults import ROW_DEFAULTS
    from slmray.results.table import read_table, write_table

    old = read_table(str(H100_SWEEP))
    assert old["loss_kernel"].null_count == len(old)  # written before the loss kernel was a column
    new = old.set_column(old.column_names.index("loss_kernel"), "loss_kernel",
                         pa.array(["standard"] * len(old), pa.string()))
    new = new.set_column(new.column_names.index("sweep_id"), "sweep_id", pa.array(["later"] * len(old), pa.string()))
    write_table(new, str(tmp_path / "new.parquet"))
    df = load_results([str(H100_SWEEP), str(tmp_path / "new.parquet")])
    for name, value in ROW_DEFAULTS.items():
        assert (df[name] == value).all(), name
    assert findings.row_keys(df, compared="attention") == findings.row_keys(load_results([str(H100_SWEEP)]),
                                                                           compared="attention")


def test_what_a_comparison_says_when_it_has_no_rows():
    from slmray.analysis.findings import nothing_compared

    df = pd.DataFrame({"model": ["a", "b", "c"], "gpu_type": ["H100-80GB", "H200", "L4"],
                       "status": ["ok", "oom", "failed"]})
    assert nothing_compared(df, "gpu_type") == "no two trials differ in gpu_type alone, at the settings a row holds fixed"
    assert nothing_compared(df[df["model"] != "b"], "gpu_type") == "every trial that ran has gpu_type H100-80GB"
    assert nothing_compared(df[df["status"] == "failed"], "gpu_type") == "no trial ran"
    assert nothing_compared(df, "strategy") == "the table has no strategy column"
    assert nothing_compared(df.assign(precision=None), "precision") == "every trial that ran has precision bf16"
