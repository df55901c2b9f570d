"""Imports run one way: trainer -> prediction -> sweep -> the planner -> analysis, with the catalog
(GPUs, instances, prices), the results table, the core (the row, objectives, costs, the Pareto
mask) and the cluster files below them all.  Read from the
source (every import, at any depth of a module, `TYPE_CHECKING` ones too), not by importing it."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "slmray"

LAYERS = {
    0: ("errors", "cli", "catalog", "results", "core", "cluster", "private_apis", "__main__"),
    1: ("train", "data"),
    2: ("predict",),
    3: ("sweep", "space", "tune"),
    4: ("planning",),
    5: ("analysis", "recommend"),
}
"""Each package (or command module) of slmray by its first name under the package, and its layer:
it imports only from its own layer or those below."""
LAYER = {name: layer for layer, names in LAYERS.items() for name in names}


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, module: str) -> set[str]:
    """Every slmray module `path` imports, by full name (`from slmray.train import fp8` names slmray.train.fp8)."""
    found = set()
    tree = ast.parse(path.read_text())
    entry = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
    for node in entry:  # `python -m` entry points run the command line first: not a dependency
        tree.body.remove(node)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("slmray.")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing module's package
                package = module.split(".")[: -node.level] if not path.name == "__init__.py" else module.split(".")
                base = ".".join([*package, *([base] if base else [])])
            if base == "slmray" or base.startswith("slmray."):
                folder = PACKAGE.parent.joinpath(*base.split("."))
                # `from slmray.train import fp8` names the module slmray.train.fp8; a name defined in a
                # package's __init__ (slmray.__version__) names the package
                modules = {f"{base}.{a.name}" for a in node.names
                           if (folder / a.name).is_dir() or (folder / f"{a.name}.py").exists()}
                found |= modules or ({base} if base != "slmray" else set())
    return found


def _part(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_every_module_has_a_layer():
    unplaced = sorted({_part(m) for m in _modules()} - set(LAYER) - {""})
    assert not unplaced, f"modules with no layer in LAYERS: {unplaced}"


@pytest.mark.parametrize("module", sorted(m for m in _modules() if m != "slmray"))
def test_imports_point_down(module):
    path = _modules()[module]
    upward = sorted(m for m in _imports(path, module) if _part(m) and LAYER[_part(m)] > LAYER[_part(module)])
    assert not upward, f"{module} (layer {LAYER[_part(module)]}) imports from above it: {upward}"


def test_nothing_outside_the_analysis_imports_it_and_the_core_stands_on_errors_and_prices_alone():
    for module, path in _modules().items():
        imported = {_part(m) for m in _imports(path, module)}
        if _part(module) != "analysis":
            assert "analysis" not in imported, f"{module} imports slmray.analysis"
        if _part(module) == "core":
            assert imported <= {"core", "errors", "catalog"}, f"{module} imports {sorted(imported - {'core'})}"


def test_no_import_cycle():
    graph = {m: {i for i in _imports(p, m) if i in _modules() and i != m} for m, p in _modules().items()}
    done, path = set(), []

    def visit(m: str) -> None:
        if m in path:
            pytest.fail(f"import cycle: {' -> '.join(path[path.index(m):] + [m])}")
        if m in done:
            return
        path.append(m)
        for n in sorted(graph[m]):
            visit(n)
        path.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)


def test_names_pickled_before_the_stage_layout_still_resolve():
    """A sweep begun before the move pickled `slmray.searchers.DistinctSearcher` and the like into
    its state (Tune's tuner.pkl); `--resume` unpickles them (seen: ModuleNotFoundError without this)."""
    import importlib
    import pickle

    from slmray import MOVED
    from slmray.sweep.driver import SweepRecorder
    from slmray.sweep.searchers import DistinctSearcher

    assert pickle.loads(b"cslmray.searchers\nDistinctSearcher\n.") is DistinctSearcher
    assert pickle.loads(b"cslmray.driver\nSweepRecorder\n.") is SweepRecorder
    for old, new in MOVED.items():
        module = importlib.import_module(new)
        name = next(n for n in vars(module) if not n.startswith("_"))
        assert getattr(importlib.import_module(old), name) is getattr(module, name), old


COMMITTED_STATE = PACKAGE.parent / "benchmarks" / "results" / "precision" / "sweep_h200x1_precision_state.tgz"


def test_the_committed_sweep_state_loads_and_still_needs_the_old_names(tmp_path):
    """What `--resume` unpickles of the committed precision sweeps (Tune's tuner.pkl, the searcher's
    state) loads under this code; and without `slmray.MOVED` it would not, which is why the shims
    stay (their removal date is in slmray/__init__.py).  The day this second assertion fails, no
    committed state needs the old names: remove MOVED and this half of the test."""
    import pickle
    import sys
    import tarfile

    import slmray

    with tarfile.open(COMMITTED_STATE) as tar:
        tar.extractall(tmp_path, filter="data")
    pickles = sorted(tmp_path.rglob("tuner.pkl")) + sorted(tmp_path.rglob("searcher-state-*.pkl"))
    assert len(pickles) >= 6
    for path in pickles:
        assert pickle.loads(path.read_bytes()) is not None, path

    finder = next(f for f in sys.meta_path if isinstance(f, slmray._MovedModule))
    saved = {name: sys.modules.pop(name) for name in slmray.MOVED if name in sys.modules}
    sys.meta_path.remove(finder)
    try:
        needing = []
        for path in pickles:
            try:
                pickle.loads(path.read_bytes())
            except ModuleNotFoundError:
                needing.append(path.parent.name)
    finally:
        sys.meta_path.append(finder)
        sys.modules.update(saved)
    assert needing, "no committed sweep state needs the pre-move module names: remove slmray.MOVED"


@pytest.mark.subprocess  # a fresh interpreter's sys.modules
def test_a_warm_trial_and_the_sweep_driver_import_no_torch():
    # the trial process of a warm sweep only waits on the pool, and planning is arithmetic: torch (a
    # second or more of CPU beside every worker group's start) loads in the workers alone
    import subprocess
    import sys

    probe = "import sys, slmray.sweep.trial, slmray.sweep.driver; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
    # nor does the command, up to starting Ray, on a machine with no GPU: a dry run is everything before it
    from slmray.sweep.capacity import GPU_DEVICE_FILES

    if any(Path(p).exists() for p in GPU_DEVICE_FILES):
        return  # here torch is asked which GPUs there are
    dry_run = ("import runpy, sys; sys.argv = ['slmray.tune', 'search_spaces/smoke.py', '--dry-run']\n"
               "try:\n    runpy.run_module('slmray.tune', run_name='__main__')\nexcept SystemExit:\n    pass\n"
               "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", dry_run], capture_output=True, text=True, timeout=120,
                         cwd=PACKAGE.parent)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr
