"""Dependencies point down: the data plane (``gateway.proxy``) and the admin API
(``gateway.admin``) never import each other, and what both use sits below both.

Read from the source with ``ast`` (nothing is imported, so the check is fast and sees
imports under ``TYPE_CHECKING`` and inside functions too: each is a dependency all the same).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "releases")
DATA_PLANE = "gateway.proxy"
ADMIN_API = "gateway.admin"
# Modules the data plane imports: none of them may lead back into it or into the admin API.
BELOW_THE_DATA_PLANE = ("gateway.metrics", "gateway.errors", "gateway.keys")


def imported_by(tree: ast.AST) -> set[str]:
    """Every module a parsed file imports, anywhere in it; ``from a import b`` names both
    ``a`` and ``a.b`` (``b`` may be a module)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            assert node.level == 0, "the tree uses absolute imports only"
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each module of ours and the modules of ours it imports."""
    paths = {_module_name(p): p for package in PACKAGES for p in (REPO / package).rglob("*.py")}
    return {
        name: imported_by(ast.parse(path.read_text(), str(path))) & paths.keys()
        for name, path in paths.items()
    }


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """The modules ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for module in graph[todo.pop()] - seen:
            seen.add(module)
            todo.append(module)
    return seen


def within(package: str, modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m == package or m.startswith(package + "."))


GRAPH = import_graph()


def test_imports_under_type_checking_and_in_functions_count() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from gateway.proxy.dataplane import DataPlane\n"
        "def later() -> None:\n"
        "    import gateway.admin.auth\n"
    )
    found = imported_by(ast.parse(source))
    assert {"gateway.proxy.dataplane", "gateway.admin.auth"} <= found
    # The graph sees the tree's real edges (the check below would pass on an empty one).
    assert "gateway.metrics" in GRAPH["gateway.proxy.dataplane"]
    assert "gateway.keys" in GRAPH["gateway.admin.auth"]


@pytest.mark.parametrize("module", BELOW_THE_DATA_PLANE)
def test_what_the_data_plane_imports_leads_back_into_neither_api(module: str) -> None:
    """``gateway.metrics`` once imported ``DataPlane``, which imports the metrics: a cycle.
    The collector now takes what it reads as arguments."""
    reached = reachable(GRAPH, module)
    assert within(DATA_PLANE, reached) == []
    assert within(ADMIN_API, reached) == []


def test_the_data_plane_reaches_nothing_of_the_admin_api() -> None:
    """The data plane read a caller's key through ``gateway.admin.auth``; key presentation
    lives in ``gateway.keys`` now, below both."""
    data_plane = within(DATA_PLANE, set(GRAPH))
    assert data_plane, "no data plane modules found"
    reached = {module: within(ADMIN_API, reachable(GRAPH, module)) for module in data_plane}
    assert {module: found for module, found in reached.items() if found} == {}
