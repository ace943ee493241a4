"""The import graph keeps the layers pointing one way and the local stack free of cycles.

Read from the source with `ast`, not grepped: every `import` and `from ... import` counts wherever it
is written (module level, inside a function, under `if TYPE_CHECKING:`), relative imports are
resolved against their package, `from package import name` lands on the submodule when `name` is
one, and `importlib.import_module("literal")` counts too. A lazy import still makes one module
depend on another's meaning; only its cost moves.

The layers of chalicelib (what each may import from chalicelib):

    domain        <- services <- adapters <- entrypoints, bootstrap
    config, logs  cross-cutting, import nothing from chalicelib
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("chalicelib", "app.py", "devstack")


# --- the graph ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Edge:
    """One import statement's dependency of `importer` on `imported` (a dotted module name)."""

    importer: str
    imported: str
    path: Path
    line: int
    where: str = ""  # "", "in a function", "under TYPE_CHECKING", "importlib" (combined with ", ")

    def at(self, root: Path) -> str:
        shown = self.path.relative_to(root) if self.path.is_relative_to(root) else self.path
        return f"{shown}:{self.line}"


@dataclass(frozen=True)
class Graph:
    root: Path
    modules: Mapping[str, Path]  # every module parsed, by dotted name
    edges: tuple[Edge, ...]

    def internal(self, package: str) -> dict[str, set[str]]:
        """Adjacency of the modules under `package`, keeping only edges between them."""
        inside = {m for m in self.modules if _under(m, package)}
        adjacency: dict[str, set[str]] = {m: set() for m in inside}
        for edge in self.edges:
            if edge.importer in inside and edge.imported in inside:
                adjacency[edge.importer].add(edge.imported)
        return adjacency


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _python_files(root: Path, sources: Iterable[str]) -> Iterator[Path]:
    for source in sources:
        path = root / source
        if path.is_file():
            yield path
        else:
            yield from sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Imports(ast.NodeVisitor):
    """Every import of one module, with where it was written (for the failure messages)."""

    def __init__(self, module: str, is_package: bool, known: Mapping[str, Path]) -> None:
        self.module, self.is_package, self.known = module, is_package, known
        self.found: list[tuple[str, int, str]] = []
        self._context: list[str] = []

    def _add(self, imported: str, line: int, *extra: str) -> None:
        if imported and imported != "__future__":
            self.found.append((imported, line, ", ".join(dict.fromkeys([*self._context, *extra]))))

    def _nested(self, node: ast.AST, context: str) -> None:
        self._context.append(context)
        self.generic_visit(node)
        self._context.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._nested(node, "in a function")

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._nested(node, "in a function")

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self.visit(node.test)
        self._context.append("under TYPE_CHECKING")
        for child in node.body:
            self.visit(child)
        self._context.pop()
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self._base(node)
        for alias in node.names:
            candidate = f"{base}.{alias.name}" if base else alias.name
            # `from package import module` depends on the module; `from module import name` on the module.
            self._add(candidate if candidate in self.known else base, node.lineno)

    def visit_Call(self, node: ast.Call) -> None:
        function = node.func
        name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
        if (name == "import_module" and node.args and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str) and not node.args[0].value.startswith(".")):
            self._add(node.args[0].value, node.lineno, "importlib")
        self.generic_visit(node)

    def _base(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        # A package's own __init__ is its level-1 anchor; a plain module's is the package holding it.
        package = self.module.split(".") if self.is_package else self.module.split(".")[:-1]
        anchor = package[: len(package) - (node.level - 1)] if node.level > 1 else package
        return ".".join([*anchor, *([node.module] if node.module else [])])


def build_graph(root: Path, sources: Iterable[str] = SOURCES) -> Graph:
    """Parse every .py file of `sources` (directories or files, relative to `root`)."""
    files = list(_python_files(root, sources))
    modules = {_module_name(root, path): path for path in files}
    edges: list[Edge] = []
    for module, path in modules.items():
        visitor = _Imports(module, path.name == "__init__.py", modules)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        edges.extend(Edge(module, imported, path, line, where) for imported, line, where in visitor.found)
    return Graph(root, modules, tuple(edges))


# --- the rules ---------------------------------------------------------------------------------

LAYERS = ("domain", "services", "adapters", "entrypoints", "bootstrap", "config", "logs")
_ALL = frozenset(LAYERS)
# What each layer of chalicelib may import from chalicelib.
MAY_IMPORT: Mapping[str, frozenset[str]] = {
    "domain": frozenset({"domain"}),
    "services": frozenset({"domain", "services", "config", "logs"}),
    "adapters": frozenset({"domain", "services", "adapters", "config", "logs"}),
    "entrypoints": _ALL,
    "bootstrap": _ALL - {"entrypoints"},
    "config": frozenset(),
    "logs": frozenset(),
}
_AWS_AND_FRAMEWORKS = frozenset({"boto3", "botocore", "pynamodb", "PIL", "chalice"})
# Third-party packages a layer must not import (the domain is pure; services reach AWS through ports).
MUST_NOT_USE: Mapping[str, frozenset[str]] = {
    "domain": _AWS_AND_FRAMEWORKS | {"aws_xray_sdk", "aws_lambda_powertools"},
    "services": _AWS_AND_FRAMEWORKS,
}
# What is never deployed: nothing Lambda runs may import it.
NOT_DEPLOYED = frozenset({"devstack", "tests", "bench", "infra"})
DEPLOYED = ("chalicelib", "app")


def layer_of(module: str) -> str | None:
    """The layer of a chalicelib module; None for the package itself; "?" for one in no layer."""
    parts = module.split(".")
    if parts[0] != "chalicelib":
        raise ValueError(f"{module} is not in chalicelib")
    if len(parts) == 1:
        return None  # chalicelib/__init__.py: empty, a namespace, no layer
    return parts[1] if parts[1] in LAYERS else "?"


def _allowed(layer: str) -> str:
    names = sorted(MAY_IMPORT[layer], key=LAYERS.index)
    return ", ".join(names) if names else "nothing"


def layer_violations(graph: Graph, layer: str | None = None) -> list[str]:
    """Each import that breaks a layer rule, as "file:line imports module: the rule"."""
    found = []
    for edge in graph.edges:
        if not _under(edge.importer, "chalicelib"):
            continue
        source = layer_of(edge.importer)
        if source is None or (layer is not None and source != layer):
            continue
        where = f" ({edge.where})" if edge.where else ""
        head = f"{edge.at(graph.root)} imports {edge.imported}{where}"
        if source == "?":
            found.append(f"{head}: {edge.importer} is in no layer ({', '.join(LAYERS)}); place it in one")
            continue
        if _under(edge.imported, "chalicelib"):
            target = layer_of(edge.imported)
            if target is not None and target not in MAY_IMPORT[source]:
                found.append(f"{head}: chalicelib.{source} may import from chalicelib only "
                             f"{_allowed(source)} (this is {target or 'in no layer'})")
        elif edge.imported.split(".")[0] in MUST_NOT_USE.get(source, ()):
            found.append(f"{head}: chalicelib.{source} must not use "
                         f"{', '.join(sorted(MUST_NOT_USE[source]))}")
    return found


def deployed_imports_of_local_code(graph: Graph) -> list[str]:
    """Imports from Lambda's code (chalicelib, app.py) of what is never deployed."""
    return [f"{edge.at(graph.root)} imports {edge.imported}: Lambda code (chalicelib, app.py) must not "
            f"import {', '.join(sorted(NOT_DEPLOYED))} (no emulator or test logic in what is deployed)"
            for edge in graph.edges
            if any(_under(edge.importer, p) for p in DEPLOYED) and edge.imported.split(".")[0] in NOT_DEPLOYED]


def strongly_connected(adjacency: Mapping[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit to meet)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(adjacency):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(adjacency[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(adjacency[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def import_cycles(graph: Graph, package: str) -> list[str]:
    """Each import cycle among `package`'s modules: its modules, then the imports that close it."""
    adjacency = graph.internal(package)
    cycles = [c for c in strongly_connected(adjacency) if len(c) > 1 or c[0] in adjacency[c[0]]]
    described = []
    for cycle in sorted(cycles):
        members = set(cycle)
        edges = sorted({f"    {e.at(graph.root)}: {e.importer} imports {e.imported}"
                        + (f" ({e.where})" if e.where else "")
                        for e in graph.edges if e.importer in members and e.imported in members})
        described.append(f"import cycle among {', '.join(cycle)}:\n" + "\n".join(edges))
    return described


def _report(problems: list[str]) -> str:
    return f"{len(problems)} found:\n" + "\n".join(problems)


# --- the real tree -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> Graph:
    return build_graph(ROOT)


def test_the_graph_of_the_real_tree_is_not_trivial(graph):
    # A builder that found no files or no imports would pass every rule below.
    assert len(graph.modules) > 30
    between_layers = {(layer_of(e.importer), layer_of(e.imported)) for e in graph.edges
                      if _under(e.importer, "chalicelib") and _under(e.imported, "chalicelib")}
    # (Today's handlers reach services through bootstrap's container, so entrypoints -> services
    # is not required here; each of these is what any wiring of the layers has.)
    assert {("entrypoints", "domain"), ("entrypoints", "bootstrap"), ("bootstrap", "adapters"),
            ("services", "domain"), ("adapters", "domain")} <= between_layers
    assert any(e.importer == "app" and _under(e.imported, "chalicelib.entrypoints") for e in graph.edges)
    assert any(e.where == "in a function" for e in graph.edges if _under(e.importer, "chalicelib"))
    assert any(_under(m, "devstack") for m in graph.modules)
    assert all(layer_of(m) != "?" for m in graph.modules if _under(m, "chalicelib")), \
        "a chalicelib module outside the known layers: add its layer to LAYERS and MAY_IMPORT"


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_imports_only_what_it_may(graph, layer):
    assert not (problems := layer_violations(graph, layer)), _report(problems)


def test_lambda_code_imports_neither_the_local_stack_nor_tests(graph):
    assert not (problems := deployed_imports_of_local_code(graph)), _report(problems)


def test_the_local_stack_has_no_import_cycle(graph):
    assert not (cycles := import_cycles(graph, "devstack")), _report(cycles)


# --- the checker, on synthetic packages ----------------------------------------------------------


def _package(root: Path, files: Mapping[str, str]) -> Path:
    """Write `files` (path -> source) under root, with an __init__.py in every package directory."""
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        for parent in path.relative_to(root).parents:
            if parent != Path(".") and not (root / parent / "__init__.py").exists():
                (root / parent / "__init__.py").write_text("")
    return root


_CLEAN = {
    "chalicelib/config.py": "import os\n",
    "chalicelib/logs.py": "from aws_lambda_powertools import Logger\n",
    "chalicelib/domain/orders.py": "from pydantic import BaseModel\nfrom chalicelib.domain import ids\n",
    "chalicelib/domain/ids.py": "import re\n",
    "chalicelib/services/orders.py": "from chalicelib.domain.orders import x\nfrom chalicelib.logs import logger\n",
    "chalicelib/adapters/table.py": "import boto3\nfrom chalicelib.services.orders import Port\n",
    "chalicelib/bootstrap.py": "from chalicelib.adapters.table import Table\n",
    "chalicelib/entrypoints/api.py": "import chalice\nfrom chalicelib.bootstrap import build\n",
    "app.py": "from chalicelib.entrypoints import api\n",
    "devstack/stack.py": "from devstack import events\n",
    "devstack/events.py": "import app\n",
}


def test_a_clean_package_passes(tmp_path):
    graph = build_graph(_package(tmp_path, _CLEAN))

    assert len(graph.modules) == 17  # the 11 files and the 6 __init__.py written for their packages
    assert layer_violations(graph) == []
    assert deployed_imports_of_local_code(graph) == []
    assert import_cycles(graph, "devstack") == []


def test_a_domain_module_importing_an_adapter_is_found_with_file_line_module_and_rule(tmp_path):
    graph = build_graph(_package(tmp_path, {
        **_CLEAN, "chalicelib/domain/orders.py": "import re\n\nfrom chalicelib.adapters.table import Table\n"}))

    assert layer_violations(graph) == [
        "chalicelib/domain/orders.py:3 imports chalicelib.adapters.table: chalicelib.domain may import "
        "from chalicelib only domain (this is adapters)"]


@pytest.mark.parametrize(("layer", "module", "source", "expected"), [
    ("domain", "chalicelib/domain/orders.py", "import boto3.session\n", "must not use"),
    ("domain", "chalicelib/domain/orders.py", "from aws_lambda_powertools import Logger\n", "must not use"),
    ("services", "chalicelib/services/orders.py", "from pynamodb.models import Model\n", "must not use"),
    ("services", "chalicelib/services/orders.py", "from chalicelib.adapters import table\n",
     "only domain, services, config, logs (this is adapters)"),
    ("adapters", "chalicelib/adapters/table.py", "from chalicelib import bootstrap\n",
     "(this is bootstrap)"),
    ("adapters", "chalicelib/adapters/table.py", "from chalicelib.entrypoints.api import x\n",
     "(this is entrypoints)"),
    ("bootstrap", "chalicelib/bootstrap.py", "import chalicelib.entrypoints.api\n", "(this is entrypoints)"),
    ("config", "chalicelib/config.py", "from chalicelib.logs import logger\n", "only nothing (this is logs)"),
    ("logs", "chalicelib/logs.py", "from chalicelib.domain import ids\n", "only nothing (this is domain)"),
])
def test_each_layer_rule_is_enforced(tmp_path, layer, module, source, expected):
    graph = build_graph(_package(tmp_path, {**_CLEAN, module: source}))

    problems = layer_violations(graph)
    assert len(problems) == 1 and expected in problems[0], problems
    assert problems == layer_violations(graph, layer)


def test_a_function_level_import_counts(tmp_path):
    graph = build_graph(_package(tmp_path, {**_CLEAN, "chalicelib/services/orders.py": (
        "def place():\n    from chalicelib.adapters.table import Table\n    return Table\n")}))

    assert layer_violations(graph) == [
        "chalicelib/services/orders.py:2 imports chalicelib.adapters.table (in a function): chalicelib.services "
        "may import from chalicelib only domain, services, config, logs (this is adapters)"]


def test_an_import_under_type_checking_counts(tmp_path):
    graph = build_graph(_package(tmp_path, {**_CLEAN, "chalicelib/domain/orders.py": (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from chalicelib.services.orders import X\n")}))

    assert [p.split(": ")[0] for p in layer_violations(graph)] == [
        "chalicelib/domain/orders.py:3 imports chalicelib.services.orders (under TYPE_CHECKING)"]


def test_relative_imports_are_resolved_against_their_package(tmp_path):
    graph = build_graph(_package(tmp_path, {
        **_CLEAN,
        "chalicelib/adapters/table.py": "from ..entrypoints import api\nfrom . import other\n",
        "chalicelib/adapters/other.py": "from .table import Table\n",
        "chalicelib/adapters/__init__.py": "from .other import x\n",
    }))
    edges = {(e.importer, e.imported) for e in graph.edges}

    assert {("chalicelib.adapters.table", "chalicelib.entrypoints.api"),
            ("chalicelib.adapters.table", "chalicelib.adapters.other"),
            ("chalicelib.adapters.other", "chalicelib.adapters.table"),
            ("chalicelib.adapters", "chalicelib.adapters.other")} <= edges
    assert [p.split(": ")[0] for p in layer_violations(graph)] == [
        "chalicelib/adapters/table.py:1 imports chalicelib.entrypoints.api"]


def test_lambda_code_importing_the_local_stack_or_tests_is_found(tmp_path):
    graph = build_graph(_package(tmp_path, {
        **_CLEAN, "app.py": "def handler():\n    import devstack.stack\n",
        "chalicelib/entrypoints/api.py": "from tests.unit import fakes\n"}))

    assert sorted(p.split(": ")[0] for p in deployed_imports_of_local_code(graph)) == [
        "app.py:2 imports devstack.stack", "chalicelib/entrypoints/api.py:1 imports tests.unit"]


def test_an_import_cycle_is_named_with_its_modules_and_the_imports_closing_it(tmp_path):
    graph = build_graph(_package(tmp_path, {
        **_CLEAN,
        "devstack/containers.py": "from devstack import events\n",
        "devstack/events.py": "import app\n\ndef deliver():\n    from devstack.containers import run\n",
    }))

    assert import_cycles(graph, "devstack") == [
        "import cycle among devstack.containers, devstack.events:\n"
        "    devstack/containers.py:1: devstack.containers imports devstack.events\n"
        "    devstack/events.py:4: devstack.events imports devstack.containers (in a function)"]


def test_a_longer_cycle_and_a_self_import_are_found_and_a_chain_is_not(tmp_path):
    graph = build_graph(_package(tmp_path, {
        "devstack/a.py": "from . import b\n", "devstack/b.py": "import devstack.c\n",
        "devstack/c.py": "from devstack.a import x\n", "devstack/d.py": "import devstack.a\n",
        "devstack/e.py": "from devstack import e\n",
    }))

    cycles = import_cycles(graph, "devstack")
    assert [c.splitlines()[0] for c in cycles] == [
        "import cycle among devstack.a, devstack.b, devstack.c:",
        "import cycle among devstack.e:"]


def test_importlib_with_a_literal_name_counts(tmp_path):
    graph = build_graph(_package(tmp_path, {
        **_CLEAN, "chalicelib/domain/orders.py": "import importlib\nimportlib.import_module('boto3')\n"}))

    assert [p.split(": ")[0] for p in layer_violations(graph)] == [
        "chalicelib/domain/orders.py:2 imports boto3 (importlib)"]
