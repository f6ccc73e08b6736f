"""One-way layering of lego_core, read from the source with `ast` (nothing is imported), checked
against the one table of layers that docs/architecture.md shows (between its `<!-- layers` and
`<!-- end of layers -->` lines): the packages are the folders, each imports only itself and the
packages its row allows, nothing imports in a circle (lego_core and pages/ alike), every package's
docstring says what it may import, and no module is over 400 lines.

Every `import` / `from ... import` statement counts, at module level or inside a function (a lazy
import is still a dependency).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = "lego_core"
REPO = Path(__file__).resolve().parent.parent
ROOT = REPO / PACKAGE
ARCHITECTURE = REPO / "docs" / "architecture.md"
MAX_LINES = 400
MAX_TOP_MODULES = 6


def _layers() -> tuple[dict[str, set[str] | None], list[str]]:
    """({package: packages it may import, None for everything}, the top-level modules) from the
    table in docs/architecture.md."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    block = text[text.index("<!-- layers"):text.index("<!-- end of layers -->")]
    layers: dict[str, set[str] | None] = {}
    top: list[str] = []
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("layer", "---"):
            continue
        name, holds, allowed = cells
        if name == "top":
            top = re.findall(r"`([a-z_]+)`", holds)
            continue
        allowed_set = None if allowed == "everything" else set(re.findall(r"`([a-z_]+)`", allowed))
        layers[name.strip("`")] = allowed_set
    return layers, top


LAYERS, TOP = _layers()


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


def _package_of(module: str) -> str | None:
    """The layer package of a dotted module (lego_core.data.readers.mind -> data), None at the top."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (ROOT / parts[1]).is_dir()) else None


def test_the_table_is_read_and_is_not_vacuous():
    assert list(LAYERS)[:4] == ["core", "data", "lm", "bricks"] and "cli" in LAYERS
    assert LAYERS["core"] == set() and LAYERS["data"] == {"core"}
    assert sum(len(GRAPH[m]) for m in MODULES) > 100  # the checker sees imports


def test_the_packages_are_the_folders_of_the_table():
    folders = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").exists())
    assert folders == sorted(LAYERS), "docs/architecture.md's layer table and the folders of lego_core/ differ"
    top = sorted(p.stem for p in ROOT.glob("*.py"))
    assert top == sorted(TOP) and len(top) <= MAX_TOP_MODULES, f"top-level modules {top}, table {sorted(TOP)}"


def test_each_layer_imports_only_what_its_row_allows():
    bad = []
    for module, targets in GRAPH.items():
        package = _package_of(module)
        if package is None or LAYERS[package] is None:
            continue
        for target, line in targets.items():
            other = _package_of(target)
            if other != package and other not in LAYERS[package]:
                bad.append(f"{MODULES[module].relative_to(REPO)}:{line} imports {target} ({package} may import "
                           f"{sorted(LAYERS[package]) or 'nothing'})")
    assert not bad, "imports against docs/architecture.md's layer table:\n" + "\n".join(sorted(bad))


def test_the_order_is_bottom_up():
    """A row may import only rows above it in the table: the table is an order, not a graph."""
    names = list(LAYERS)
    for i, name in enumerate(names):
        if LAYERS[name] is not None:
            assert LAYERS[name] <= set(names[:i]), f"{name} may import a layer listed after it"


def test_every_package_says_what_it_holds_and_may_import():
    for init in sorted(ROOT.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert len(doc) > 80 and ("May import" in doc or "Imports nothing" in doc), init.relative_to(REPO)
        allowed = LAYERS[init.parent.name]
        if allowed:  # the docstring names every package its row allows
            missing = [p for p in allowed if p not in doc]
            assert not missing, f"{init.relative_to(REPO)} does not mention {missing}"


def test_no_module_is_over_400_lines():
    long = [f"{p.relative_to(REPO)}: {n}" for p in sorted(ROOT.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert not long, "modules past 400 lines (split them):\n" + "\n".join(long)


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0

    def visit(root: str) -> None:  # iterative Tarjan: no recursion limit on a deep graph
        nonlocal counter
        work = [(root, iter(sorted(graph[root])))]
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
                    work.append((child, iter(sorted(graph[child]))))
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
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def _describe(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    members = set(component)
    edges = [f"  {m}:{line} imports {t}" for m in component for t, line in sorted(graph[m].items()) if t in members]
    return " <-> ".join(component) + "\n" + "\n".join(edges)


def test_the_import_graph_has_no_cycles():
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles in lego_core:\n" + "\n".join(_describe(c, GRAPH) for c in cycles)


def _pages_graph() -> dict[str, dict[str, int]]:
    """app.py and pages/*.py -> the pages modules each imports (by name: `import _common`, `from
    pages import x`, `from _common import y`)."""
    files = {"app": REPO / "app.py", **{p.stem: p for p in sorted((REPO / "pages").glob("*.py"))}}
    graph: dict[str, dict[str, int]] = {}
    for name, path in files.items():
        found: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[-1] if a.name.startswith("pages.") else a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                module = node.module or ""
                names = [module.split(".")[-1] if module.startswith("pages.") else module]
                if module == "pages":
                    names = [a.name for a in node.names]
            for target in names:
                if target in files and target != name:
                    found.setdefault(target, node.lineno)
        graph[name] = found
    return graph


def test_pages_have_no_import_cycles():
    graph = _pages_graph()
    assert any(graph.values()), "the pages checker sees no imports"
    cycles = _cycles(graph)
    assert not cycles, "import cycles in pages/:\n" + "\n".join(_describe(c, graph) for c in cycles)


@pytest.mark.parametrize("source,expected", [
    ("from lego_core import datasets\n", {"lego_core.datasets"}),
    ("from lego_core.data import datasets\n", {"lego_core.data.datasets"}),
    ("def f():\n    from lego_core.data.text import item_texts\n", {"lego_core.data.text"}),
    ("import lego_core.bricks.model as m\n", {"lego_core.bricks.model"}),
    ("from lego_core.bricks.catalog import get\n", {"lego_core.bricks.catalog"}),
    ("import numpy\nfrom torch import nn\n", set()),
])
def test_the_checker_sees_module_and_function_level_imports(source, expected, tmp_path, monkeypatch):
    path = tmp_path / "probe.py"
    path.write_text(source)
    monkeypatch.setitem(MODULES, f"{PACKAGE}.probe", path)
    assert set(imports_of(f"{PACKAGE}.probe")) == expected
