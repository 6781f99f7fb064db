"""The package namespace (eager for the core, lazy for the PyMC models) and its imports."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import clvmodels


def test_bayesian_models_are_exported_lazily():
    from clvmodels.models.hierarchical import (
        HierarchicalBetaGeo,
        HierarchicalGammaGamma,
        compare_loo,
    )

    assert clvmodels.HierarchicalBetaGeo is HierarchicalBetaGeo
    assert clvmodels.HierarchicalGammaGamma is HierarchicalGammaGamma
    assert clvmodels.compare_loo is compare_loo
    assert {"HierarchicalBetaGeo", "compare_loo"} <= set(dir(clvmodels))
    assert set(clvmodels.__all__) <= set(dir(clvmodels))
    with pytest.raises(AttributeError, match="no attribute 'Pareto'"):
        clvmodels.Pareto  # noqa: B018


def test_importing_the_package_does_not_import_pymc():
    code = "import sys, clvmodels; print('pymc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------------------
# Imports: every module on its own, and no cycles
# --------------------------------------------------------------------------------------
PACKAGE = Path(clvmodels.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (packages by their ``__init__``)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _import_graph() -> dict[str, set[str]]:
    """Which package modules each module imports, at the top or inside a function."""
    modules = _modules()

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {known(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        package = package.rpartition(".")[0]
                    base = f"{package}.{base}".rstrip(".")
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in modules else known(base))
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert "clvmodels.plotting" in _import_graph()["clvmodels.report"]


def test_no_import_cycles():
    cycles = _cycles(_import_graph())
    assert cycles == [], f"import cycles: {cycles}"


def test_every_module_imports_on_its_own():
    """Each module in a fresh interpreter of its own: no hidden order dependence.

    Importing any submodule runs the package's ``__init__`` first, so the modules that
    ``import clvmodels`` loads are imported in one order whichever comes first; the
    others each get an interpreter of their own.
    """
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, clvmodels; print(*sorted(sys.modules))"],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout.split()
    names = [n for n in _modules() if n not in loaded and not n.endswith("__main__")]
    if importlib.util.find_spec("pyspark") is None:
        names.remove("clvmodels.spark")
    assert "clvmodels.cli" in names and "clvmodels.pipeline" in loaded
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {
            name: pool.submit(
                subprocess.run, [sys.executable, "-c", f"import {name}"],
                capture_output=True, text=True, timeout=300,
            )
            for name in names
        }
    failures = {
        name: run.result().stderr.strip().splitlines()[-1:]
        for name, run in runs.items()
        if run.result().returncode != 0
    }
    assert failures == {}
