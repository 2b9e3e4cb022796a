"""The layers, read from the source with `ast`: who may import whom (README, Architecture).

Every import counts: at module level, inside functions and under TYPE_CHECKING alike, and
`from pkg import mod` counts as importing `pkg` too. A failure names the file, the line and
the rule it breaks.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.harness import REPO

ADAPTERS = ("farm.db", "farm.cli", "farm.workers", "farm.migrations")
# What the core (farm/ outside the adapters) never imports, directly or by a submodule.
CORE_FORBIDDEN = (
    "sqlalchemy", "alembic", "psycopg", "celery", "kombu", "redis", "click", "rich",
    "torch", "transformers", "optimum", "openvino", "intel_extension_for_pytorch",
)  # fmt: skip
GENERIC_TOP_LEVEL = ("cli", "workers", "migrations")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # a module name, as written (resolved if relative)
    names: tuple[str, ...]  # what a `from` import takes from target; () for `import x`
    path: Path
    line: int

    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def farm_modules() -> dict[str, Path]:
    """Every module of the farm package (its links to cli/, workers/, migrations/ followed)."""
    found: dict[str, Path] = {}
    root = REPO / "farm"
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        here = Path(folder)
        if not (here / "__init__.py").exists():
            dirs[:] = []  # migrations/versions: scripts Alembic loads by path, not modules
            continue
        parts = ["farm", *here.relative_to(root).parts]
        for name in sorted(files):
            if name.endswith(".py"):
                stem = name[:-3]
                module = ".".join(parts if stem == "__init__" else [*parts, stem])
                found[module] = here / name
    return found


def imports_of(module: str, path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, (), path, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = tuple(a.name for a in node.names)
            yield Import(module, base, names, path, node.lineno)


MODULES = farm_modules()
IMPORTS = [imp for module, path in MODULES.items() for imp in imports_of(module, path)]


def targets(imp: Import) -> set[str]:
    """The Farm modules an import loads: the named module, and for `from pkg import x` the
    package and x when x is a module of it."""
    found = {imp.target} if imp.target in MODULES else set()
    for name in imp.names:
        if f"{imp.target}.{name}" in MODULES:
            found.add(f"{imp.target}.{name}")
    return found


def layer(module: str) -> str:
    if module == "farm.__main__":  # `python -m farm`: the CLI's entry point
        return "farm.cli"
    for adapter in ADAPTERS:
        if module == adapter or module.startswith(adapter + "."):
            return adapter
    return "farm"


def test_the_modules_are_found_through_the_links() -> None:
    assert {"farm.cli.main", "farm.workers.measure", "farm.migrations.env"} <= set(MODULES)
    assert {"farm.db.models", "farm.stats"} <= set(MODULES)


def test_the_core_imports_no_framework_or_ml_library() -> None:
    bad = [
        f"{imp.where()}: {imp.source} imports {imp.target}"
        for imp in IMPORTS
        if layer(imp.source) == "farm" and imp.target.split(".")[0] in CORE_FORBIDDEN
    ]
    assert not bad, "the core must stay free of adapters' libraries:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("importer", "forbidden"),
    [
        ("farm", ("farm.db", "farm.cli", "farm.workers", "farm.migrations")),
        ("farm.db", ("farm.cli", "farm.workers")),
        ("farm.workers", ("farm.cli",)),
        ("farm.migrations", ("farm.cli", "farm.workers")),
    ],
)
def test_layers_import_only_inwards(importer: str, forbidden: tuple[str, ...]) -> None:
    bad = [
        f"{imp.where()}: {imp.source} imports {target}"
        for imp in IMPORTS
        if layer(imp.source) == importer
        for target in targets(imp)
        if layer(target) in forbidden
    ]
    assert not bad, f"{importer} may not import {', '.join(forbidden)}:\n" + "\n".join(bad)


def test_no_generic_top_level_names_are_imported() -> None:
    bad = [
        f"{imp.where()}: imports {imp.target}"
        for imp in IMPORTS
        if imp.target.split(".")[0] in GENERIC_TOP_LEVEL
    ]
    assert not bad, "cli, workers and migrations are imported as farm.cli, ...:\n" + "\n".join(
        bad
    )


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_module_imports_a_private_name_of_another() -> None:
    bad = [
        f"{imp.where()}: {imp.source} takes {name} from {imp.target}"
        for imp in IMPORTS
        if imp.target.startswith("farm")
        for name in (*imp.names, *imp.target.split("."))
        if is_private(name)
    ]
    assert not bad, "private names stay in their module:\n" + "\n".join(bad)


def test_no_import_cycle_between_modules() -> None:
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for imp in IMPORTS:
        graph[imp.source] |= targets(imp) - {imp.source}
    # a package's __init__ importing its own submodules is how a package exposes them, but
    # it still counts: a submodule importing its package back closes a cycle.
    cycles = strongly_connected(graph)
    described = [" -> ".join([*sorted(c), sorted(c)[0]]) for c in cycles]
    assert not cycles, "import cycles:\n" + "\n".join(described)


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative: the components of more than one module, and modules
    that import themselves."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
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
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The checker itself: a known cycle and a known chain."""
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        {"a", "b", "c"}
    ]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_source_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(REPO)): n
        for path in MODULES.values()
        if (n := len(path.read_text().splitlines())) > 400
    }
    assert not long, f"modules small enough to read in one sitting: {long}"


def test_tests_share_code_only_through_tests_support() -> None:
    """Harnesses and builders live in tests/support: no test imports a conftest file or
    another test module (and benchmarks use the same harness)."""
    bad = []
    for path in sorted([*(REPO / "tests").rglob("*.py"), *(REPO / "benchmarks").rglob("*.py")]):
        if "support" in path.relative_to(REPO).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            for name in names:
                parts = name.split(".")
                if parts[0] == "tests" and (len(parts) < 2 or parts[1] != "support"):
                    bad.append(f"{path.relative_to(REPO)}:{node.lineno}: imports {name}")
                elif "conftest" in parts:
                    bad.append(f"{path.relative_to(REPO)}:{node.lineno}: imports {name}")
    assert not bad, "\n".join(bad)
