"""The project's import graph, read from source: every import counts, in functions and under TYPE_CHECKING too."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "functions", "devhost", "tools")


@cache
def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages (a package is its __init__)."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    found["function_app"] = ROOT / "function_app.py"
    return found


def _owner(name: str) -> str | None:
    """The project module ``name`` is or belongs to (an attribute imported from a module), or None."""
    known = modules()
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".")
            if modules()[module].name != "__init__.py":
                package = package[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        names = [f"{base}.{alias.name}" for alias in node.names] or [base]
    return [owner for name in names if (owner := _owner(name)) is not None]


def _with_packages(module: str) -> list[str]:
    """``module`` and the packages Python runs before it (``a.b.c`` runs ``a/__init__`` and ``a/b/__init__``);
    a package whose ``__init__`` imports nothing does nothing, so it is left out."""
    parts = module.split(".")
    names = [".".join(parts[:index]) for index in range(1, len(parts))]
    return [name for name in names if name in modules() and _imports_anything(name)] + [module]


@cache
def _imports_anything(package: str) -> bool:
    tree = ast.parse(modules()[package].read_text(encoding="utf-8"))
    return any(
        isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and node.module != "__future__")
        for node in ast.walk(tree)
    )


@cache
def graph() -> dict[str, frozenset[str]]:
    """Each module's imports of other project modules, the packages those imports run included."""
    edges = {}
    for module, path in modules().items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(module, node):
                    targets.update(_with_packages(target))
        own = set(_with_packages(module))  # a module's own packages run before it: not its imports
        edges[module] = frozenset(targets - own)
    return edges


def cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found
