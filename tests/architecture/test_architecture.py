"""What a reviewer checks by hand, held by tests: no import cycles, no upward imports, short signatures, one name
per idea (docs/architecture.md's layers and glossary)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.architecture.imports import ROOT, cycles, graph

ARCHITECTURE = ROOT / "docs" / "architecture.md"
INVOCATION_PATH = (
    "functions/processing.py",
    "shared/invocation.py",
    "shared/batch.py",
    "shared/validation.py",
    "shared/transform.py",
    "shared/lineage.py",
    "shared/landing",
    "shared/state/aggregate.py",
    "shared/state/lookups.py",
    "shared/state/joins.py",
    "shared/state/bucket_state.py",
)
MAX_PARAMETERS = 6
OPTION_BAG = re.compile(r"(^|_)(options|kwargs|config|params)$")  # a dict of settings passed through, by its name


def _table(heading: str) -> list[list[str]]:
    """The rows of the first Markdown table after ``heading`` in docs/architecture.md (header row left out)."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("|") and not line.startswith("| ---"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows[1:]


def _names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def _layers() -> list[list[str]]:
    return [_names(modules) for _, modules in _table("### Layers")]


def _layer_of(module: str, layers: list[list[str]]) -> int | None:
    matches = [
        (index, len(name))
        for index, names in enumerate(layers)
        for name in names
        if module == name or module.startswith(name + ".")
    ]
    return max(matches, key=lambda match: match[1])[0] if matches else None


def test_no_import_cycles_even_under_type_checking_or_inside_functions() -> None:
    assert cycles() == []


def test_every_module_imports_only_from_its_own_layer_or_those_below() -> None:
    layers = _layers()
    assert len(layers) >= 6, "docs/architecture.md lost its Layers table"
    unplaced = sorted(module for module in graph() if module != "shared" and _layer_of(module, layers) is None)
    assert unplaced == [], "modules in no layer of docs/architecture.md"
    upward = [
        f"{module} -> {target}"
        for module, targets in sorted(graph().items())
        for target in sorted(targets)
        if module != "shared"
        and target != "shared"
        and (_layer_of(target, layers) or 0) > (_layer_of(module, layers) or 0)
    ]
    assert upward == []


def _invocation_path_files() -> list[Path]:
    files: list[Path] = []
    for entry in INVOCATION_PATH:
        path = ROOT / entry
        files += sorted(path.glob("*.py")) if path.is_dir() else [path]
    return files


def _signatures() -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    return [
        (str(path.relative_to(ROOT)), node)
        for path in _invocation_path_files()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def test_no_function_on_the_invocation_path_takes_more_than_six_parameters_or_an_option_bag() -> None:
    too_long, bags = [], []
    for where, node in _signatures():
        arguments = node.args
        named = [
            a for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs) if a.arg not in ("self", "cls")
        ]
        if len(named) + bool(arguments.vararg) > MAX_PARAMETERS:
            too_long.append(f"{where}:{node.lineno} {node.name} ({len(named)})")
        option_dicts = [argument.arg for argument in named if OPTION_BAG.search(argument.arg)]
        if arguments.kwarg is not None or option_dicts:
            bags.append(f"{where}:{node.lineno} {node.name}")
    assert too_long == [] and bags == []


def _retired_names() -> list[str]:
    return [name for _, _, retired in _table("### Glossary") for name in _names(retired)]


@pytest.fixture(scope="module")
def code_identifiers() -> dict[str, set[str]]:
    """Every identifier (names, attributes, definitions, imports) in the project's Python, by file."""
    found: dict[str, set[str]] = {}
    for package in ("shared", "functions", "devhost", "tools", "bench", "tests"):
        for path in (ROOT / package).rglob("*.py"):
            if path.parent.name == "architecture":
                continue
            names: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Name):
                    names.add(node.id)
                elif isinstance(node, ast.Attribute):
                    names.add(node.attr)
                elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    names.add(node.name)
                elif isinstance(node, ast.alias):
                    names.add(node.asname or node.name.rpartition(".")[2])
            found[str(path.relative_to(ROOT))] = names
    return found


def test_the_glossary_lists_retired_names(code_identifiers: dict[str, set[str]]) -> None:
    retired = _retired_names()
    assert {"PartitionRanges", "PartitionKey", "Spans", "BatchLanding"} <= set(retired)
    used = {name: sorted(path for path, names in code_identifiers.items() if name in names) for name in retired}
    assert {name: paths for name, paths in used.items() if paths} == {}


def test_every_logger_of_the_app_is_one_its_exporter_sends() -> None:
    """The code's OpenTelemetry log handler listens on the ``streamingpoc`` logger (shared/telemetry.py); the host
    drops a log with no invocation id, which a thread the invocation started sends. A logger of another name
    (``functions.bindings``: the warning that records are no longer in the topic) reached neither (a review)."""
    from shared.telemetry import LOGGER_NAME

    named = []
    for path in sorted([*(ROOT / "functions").rglob("*.py"), *(ROOT / "shared").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "getLogger":
                argument = node.args[0] if node.args else None
                name = argument.value if isinstance(argument, ast.Constant) else ast.unparse(argument or node)
                named.append((str(path.relative_to(ROOT)), LOGGER_NAME if name == "LOGGER_NAME" else name))
    assert named, "no logger found: the scan is wrong"
    assert [(path, name) for path, name in named if not str(name).startswith(LOGGER_NAME)] == []
