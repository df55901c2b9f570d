"""analysis/bottlenecks.ipynb runs top to bottom (nbclient) on a CPU sweep made here and on the
committed H100 benchmark, with its parameters injected after the `parameters` cell."""

import nbformat
import pytest
from analysis_fixtures import REPO, cpu_sweep_table, h100_benchmark_table
from nbclient import NotebookClient

from slmray.results import write_table

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


def test_committed_notebook_has_one_parameter_cell_and_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].source.startswith("RESULTS = ")
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("which", ["cpu-sweep", "h100-benchmark"])
def test_notebook_runs(tmp_path, which):
    table, prices = (cpu_sweep_table(), "local") if which == "cpu-sweep" else (h100_benchmark_table(), "paper")
    path = tmp_path / "results.parquet"
    write_table(table, str(path))
    nb = run_notebook(RESULTS=str(path), PRICES=prices)
    html = "".join(outputs(nb, "text/html"))
    models = ("tiny", "tiny-neox") if which == "cpu-sweep" else ("llama-100m", "llama-2b", "pythia-1b")
    for model in models:
        assert model in html
    assert len(outputs(nb, "image/png")) >= 3
    assert "fused / eager" in html
