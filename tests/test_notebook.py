"""analysis/bottlenecks.ipynb runs top to bottom (nbclient) on the table the real CPU sweep
writes (`python -m slmray.tune search_spaces/smoke.py`, conftest's `smoke_sweep`) and on the
committed GPU tables, with its parameters injected after the `parameters` cell."""

import nbformat
import pytest
from nbclient import NotebookClient

from analysis_fixtures import H100_BENCHMARK, REPO

NOTEBOOK = REPO / "analysis" / "bottlenecks.ipynb"


def run_notebook(**parameters) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    return nb


def outputs(nb, mime):
    return [o["data"][mime] for c in nb.cells if c.cell_type == "code" for o in c.outputs if mime in o.get("data", {})]


def printed(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs if o["output_type"] == "stream")


def test_committed_notebook_has_one_parameter_cell_and_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].source.startswith(
        'RESULTS = ["../benchmarks/results/sweeps/sweep_h100x1.parquet", "../benchmarks/results/sweeps/sweep_h200x1.parquet"]')
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.notebook
@pytest.mark.subprocess  # nbclient's kernel
def test_notebook_runs_on_the_cpu_sweep(smoke_sweep):
    done, sweep_dir = smoke_sweep
    assert done.returncode == 0, done.stderr[-2000:]
    nb = run_notebook(RESULTS=str(sweep_dir / "results.parquet"), PRICES="local")
    html = "".join(outputs(nb, "text/html"))
    assert "tiny" in html and "fused / eager" in html
    assert "ran out of memory" in html  # the sweep recorded the estimate's (rough, CPU) predictions
    assert len(outputs(nb, "image/png")) >= 3


@pytest.mark.notebook
@pytest.mark.subprocess  # nbclient's kernel
@pytest.mark.parametrize("parameters, shown, figures, why", [
    # the defaults: the committed H100 and H200 sweeps side by side, AWS prices
    ({}, ("llama-100m", "llama-500m", "llama-1b", "llama-2b", "H200 / best"), 5,
     ("compile off", "strategy ddp", "num_gpus 1")),
    # one GPU type on one GPU: the comparisons it cannot make say why instead of showing an empty table
    ({"RESULTS": str(H100_BENCHMARK), "PRICES": "paper"}, ("llama-100m", "llama-2b", "pythia-1b"), 4,
     ("strategy single", "num_gpus 1", "gpu_type H100-80GB", "gpu_type H100-80GB")),
    # the documented PRICES = "paper" on both GPU types: the paper prices no H200 (it crashed in gpu_type_effect)
    ({"PRICES": "paper"}, ("llama-100m", "llama-500m", "llama-1b", "llama-2b"), 5,
     ("compile off", "strategy ddp", "num_gpus 1")),
], ids=["h100-h200-sweeps", "h100-benchmark", "h100-h200-sweeps-paper"])
def test_notebook_runs_on_the_committed_gpu_tables(parameters, shown, figures, why):
    nb = run_notebook(**parameters)
    html = "".join(outputs(nb, "text/html"))
    for text in shown:
        assert text in html
    said = printed(nb)
    assert sorted(line.split(" has ")[-1] for line in said.splitlines() if line.startswith("not shown:")) == sorted(why), said
    assert "fused / eager" in html and "smallest OOM batch" in html
    assert "<th>planner's pick</th>" in html and "<th>run $</th>" in html  # 8: planning a run (slmray.analysis.decision)
    assert "how sure" in html and "runner-up" in html  # the decision first (decision.summary_table)
    assert "loss floor" in html and "$ a target loss costs" in html  # the loss you can buy (budget.sections)
    assert len(outputs(nb, "image/png")) >= figures  # the sweep recorded predictions: one figure more
