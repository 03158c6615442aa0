"""No import cycles among the modules of `shared/`, counting imports made inside functions too
(they still tie the modules together), but not those made only for type checking."""

from __future__ import annotations

import ast
from pathlib import Path

SHARED = Path(__file__).resolve().parent.parent / "shared"


def module_name(path: Path) -> str:
    parts = path.relative_to(SHARED.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in SHARED.rglob("*.py")}


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def imported(path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of `shared` that the module at `path` imports by name."""
    found: set[str] = set()
    pending: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
    while pending:
        node = pending.pop()
        if _type_checking_only(node):
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from shared import openapi` names a module; `from shared.auth import sign_in` a name in one.
            found.update(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                         for alias in node.names)
        pending.extend(ast.iter_child_nodes(node))
    return {name for name in found if name in known}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module, or of one that imports itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        for other in sorted(graph[name]):
            if other not in index:
                visit(other)
                low[name] = min(low[name], low[other])
            elif other in stack:
                low[name] = min(low[name], index[other])
        if low[name] == index[name]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == name:
                    break
            if len(group) > 1 or name in graph[name]:
                groups.append(sorted(group))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return groups


def test_the_walk_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_modules_of_shared_import_each_other_without_cycles() -> None:
    known = modules()
    graph = {name: imported(path, known) - {name} for name, path in known.items()}
    assert graph["shared.openapi"] >= {"shared.declare", "shared.texts"}
    assert cycles(graph) == []


def test_no_route_module_imports_another() -> None:
    # What two route modules share lives below them (shared/http.py, shared/declare.py), so each
    # blueprint reads on its own; shared/api.py, which collects them all, is not a route module.
    known = modules()
    routes = {name for name in known if name.startswith("shared.routes.")}
    assert {"shared.routes.registrations", "shared.routes.revisions", "shared.routes.feed"} <= routes
    reaching = {name: sorted(imported(known[name], known) & routes - {name}) for name in sorted(routes)}
    assert {name: others for name, others in reaching.items() if others} == {}
