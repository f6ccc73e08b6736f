"""One-way layering of lego_core, read from the source with `ast` (nothing is imported).

Every `import` / `from ... import` statement counts, at module level or inside a function (a lazy
import is still a dependency). The layers, bottom up:

* base: errors, paths, fileio, devices (they import only each other);
* data/: readers, schema, text, tokenizers, generated fields; imports only data/ and errors,
  paths, fileio;
* lm/: pretrained language models as a library; imports lm/, data/ and the base, never bricks,
  datasets, the model, recipes or training;
* operators/: the bricks; imports operators/, lm/, data/ and the base, never datasets, the model,
  recipes or training;
* everything else sits above; and the import graph of the whole package has no cycle.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "lego_core"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE
BASE = {f"{PACKAGE}.errors", f"{PACKAGE}.paths", f"{PACKAGE}.fileio", f"{PACKAGE}.devices"}


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (packages by their __init__)."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _known(name: str) -> str | None:
    """The package module `name` refers to (its longest existing prefix), None outside lego_core."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name if name.split(".")[0] == PACKAGE else None


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imports_of(module: str) -> dict[str, int]:
    """lego_core modules imported anywhere in `module` -> first line. `from a import b` counts as
    importing the module a.b when it exists (`from lego_core import datasets`), else a."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"), filename=str(MODULES[module]))
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [_known(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            targets = [_known(f"{source}.{alias.name}") if f"{source}.{alias.name}" in MODULES else _known(source)
                       for alias in node.names]
        for target in targets:
            if target and target != module:
                found.setdefault(target, node.lineno)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _violations(layer: str, allowed) -> list[str]:
    bad = []
    for module, targets in GRAPH.items():
        if not _inside(module, f"{PACKAGE}.{layer}"):
            continue
        for target, line in targets.items():
            if not allowed(target):
                bad.append(f"{MODULES[module].relative_to(ROOT.parent)}:{line} imports {target}")
    return sorted(bad)


def test_the_layer_packages_exist():
    """The rules below are not vacuous: each layer has modules and they import something."""
    for layer in ("data", "lm", "operators"):
        assert any(_inside(m, f"{PACKAGE}.{layer}") and GRAPH[m] for m in MODULES), layer
    assert BASE <= set(MODULES)


def test_base_modules_import_only_each_other():
    bad = [f"{m} imports {t}" for m in BASE for t in GRAPH[m] if t not in BASE]
    assert not bad, "\n".join(bad)


def test_data_imports_only_data_and_the_base():
    def allowed(target: str) -> bool:
        return _inside(target, f"{PACKAGE}.data") or target in BASE - {f"{PACKAGE}.devices"}

    bad = _violations("data", allowed)
    assert not bad, "data/ imports a module above it:\n" + "\n".join(bad)


def test_lm_is_a_leaf_library():
    def allowed(target: str) -> bool:
        return _inside(target, f"{PACKAGE}.lm") or _inside(target, f"{PACKAGE}.data") or target in BASE

    bad = _violations("lm", allowed)
    assert not bad, "lm/ imports a module above it:\n" + "\n".join(bad)


def test_operators_use_lm_and_data_but_nothing_above():
    def allowed(target: str) -> bool:
        return any(_inside(target, f"{PACKAGE}.{p}") for p in ("operators", "lm", "data")) or target in BASE

    bad = _violations("operators", allowed)
    assert not bad, "operators/ imports a module above it:\n" + "\n".join(bad)


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0

    def visit(root: str) -> None:  # iterative Tarjan: no recursion limit on a deep graph
        nonlocal counter
        work = [(root, iter(sorted(GRAPH[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(GRAPH[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in GRAPH[node]:
                    found.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return found


def _describe(component: list[str]) -> str:
    members = set(component)
    edges = [f"  {MODULES[m].relative_to(ROOT.parent)}:{line} imports {t}"
             for m in component for t, line in sorted(GRAPH[m].items()) if t in members]
    return " <-> ".join(component) + "\n" + "\n".join(edges)


def test_the_import_graph_has_no_cycles():
    cycles = _cycles()
    assert not cycles, "import cycles in lego_core:\n" + "\n".join(_describe(c) for c in cycles)


@pytest.mark.parametrize("source,expected", [
    ("from lego_core import datasets\n", {"lego_core.datasets"}),
    ("def f():\n    from lego_core.data.text import item_texts\n", {"lego_core.data.text"}),
    ("import lego_core.model as m\n", {"lego_core.model"}),
    ("from lego_core.operators.catalog import get\n", {"lego_core.operators.catalog"}),
    ("import numpy\nfrom torch import nn\n", set()),
])
def test_the_checker_sees_module_and_function_level_imports(source, expected, tmp_path, monkeypatch):
    path = tmp_path / "probe.py"
    path.write_text(source)
    monkeypatch.setitem(MODULES, f"{PACKAGE}.probe", path)
    assert set(imports_of(f"{PACKAGE}.probe")) == expected
