"""Imports run one way: configuration -> trainer -> prediction and plan -> sweep -> analysis, with
the core (the row, objectives, costs, the Pareto mask) and storage below them all.  Read from the
source (every import, at any depth of a module, `TYPE_CHECKING` ones too), not by importing it."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "slmray"

LAYERS = {
    0: ("config", "presets", "csvdata", "hardware", "instances", "prices", "storage", "lock", "results", "core", "cli",
        "cluster"),
    1: ("model", "attention", "parallel", "metrics", "data", "fp8", "train", "train_cli", "data_cli"),
    2: ("estimate", "calibration", "capacity", "space", "plan"),
    3: ("searchers", "warm", "trial", "driver", "tune"),
    4: ("analysis", "recommend"),
}
"""Each module of slmray by its first name under the package, and its layer: a module imports
only from its own layer or those below."""
LAYER = {name: layer for layer, names in LAYERS.items() for name in names}


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, module: str) -> set[str]:
    """Every slmray module `path` imports, by full name (`from slmray import fp8` names slmray.fp8)."""
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
            if base == "slmray":  # a module of the package, or a name of its __init__ (__version__)
                found |= {f"slmray.{a.name}" for a in node.names if (PACKAGE / a.name).exists()
                          or (PACKAGE / f"{a.name}.py").exists()}
            elif base.startswith("slmray."):
                found.add(base)
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


def test_nothing_outside_the_analysis_imports_it_and_the_core_stands_on_config_alone():
    for module, path in _modules().items():
        imported = {_part(m) for m in _imports(path, module)}
        if _part(module) != "analysis":
            assert "analysis" not in imported, f"{module} imports slmray.analysis"
        if _part(module) == "core":
            assert imported <= {"core", "config", "prices"}, f"{module} imports {sorted(imported - {'core'})}"


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
