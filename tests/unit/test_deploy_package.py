"""The zip deploy in docs/deploy.md packages every folder the app imports or reads.

The command is read from the page and run for real (``zip``); the package is unpacked and the app
is indexed from it alone, in a fresh interpreter: it must register exactly the functions the
repository registers (a missing ``sources/`` drops ``generate_orders`` and its siblings). An
audit hook also records every file and folder under the repository that importing and indexing
the app opens, lists or imports; each top-level entry must be in the zip command and must not be
excluded by ``.funcignore`` (what ``func azure functionapp publish`` uploads).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, python_json

# Not read by Python but by the host (host.json) and the remote build (requirements.txt).
HOST_FILES = {"host.json", "requirements.txt"}

_INDEX = """
import json, os, sys
root = os.path.realpath(sys.argv[1])
touched = set()

def audit(event, args):
    if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes, os.PathLike)):
        touched.add(os.fsdecode(args[0]))

sys.addaudithook(audit)
import function_app
functions = sorted(f.get_function_name() for f in function_app.app.get_functions())
touched |= {m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)}
environment = os.path.realpath(sys.prefix) + os.sep  # the virtual environment's packages, wherever it lives
inside = {os.path.realpath(p) for p in touched if "__pycache__" not in p}
inside = {p for p in inside if not p.startswith(environment)}
top = sorted({os.path.relpath(p, root).split(os.sep)[0] for p in inside if p.startswith(root + os.sep)})
print(json.dumps({"app": os.path.realpath(function_app.__file__), "functions": functions, "top": top}))
"""


def _index(directory: Path) -> dict[str, Any]:
    """Import and index ``function_app`` from ``directory`` only (the venv's packages aside)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KAFKA_SECURITY_PROTOCOL", "LAKE_KIND")}
    return python_json(_INDEX, str(directory), cwd=directory, env=env)


def _zip_command() -> list[str]:
    deploy = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    found = re.search(r"^zip -r app\.zip .*$", deploy, re.MULTILINE)
    assert found, "docs/deploy.md no longer shows the zip deploy command"
    return shlex.split(found.group(0))


def _packaged_entries(command: list[str]) -> set[str]:
    """Top-level paths the zip command names (before its ``-x`` exclusions)."""
    arguments = command[3 : command.index("-x")] if "-x" in command else command[3:]
    return {argument.rstrip("/") for argument in arguments}


@pytest.fixture(scope="module")
def repository() -> dict[str, Any]:
    return _index(ROOT)


def test_the_zip_package_indexes_the_same_functions_as_the_repository(
    repository: dict[str, Any], tmp_path: Path
) -> None:
    if shutil.which("zip") is None:
        if os.environ.get("STREAMINGPOC_REQUIRE_ZIP"):
            pytest.fail("the zip command is not installed; STREAMINGPOC_REQUIRE_ZIP is set, so this test must run")
        pytest.skip("the zip command is not installed (CI installs it and sets STREAMINGPOC_REQUIRE_ZIP)")
    command = _zip_command()
    archive = tmp_path / "app.zip"
    subprocess.run([*command[:2], str(archive), *command[3:]], cwd=ROOT, check=True, capture_output=True)
    unpacked = tmp_path / "package"
    with zipfile.ZipFile(archive) as package:
        package.extractall(unpacked)
        assert not [name for name in package.namelist() if "__pycache__" in name]

    packaged = _index(unpacked)

    assert packaged["app"].startswith(str(unpacked.resolve())), "the app was imported from outside the package"
    assert packaged["functions"] == repository["functions"]
    assert any(name.startswith("generate_") for name in repository["functions"])


def test_every_folder_the_app_imports_or_reads_is_packaged_and_published(repository: dict[str, Any]) -> None:
    needed = set(repository["top"]) | HOST_FILES
    assert {"function_app.py", "functions", "shared", "sources"} <= needed, repository["top"]

    missing = needed - _packaged_entries(_zip_command())
    assert not missing, f"the zip deploy in docs/deploy.md leaves out {sorted(missing)}"

    ignored = {line.strip().rstrip("/") for line in (ROOT / ".funcignore").read_text().splitlines()}
    assert not needed & ignored, f".funcignore keeps {sorted(needed & ignored)} out of `func azure functionapp publish`"


def test_docs_name_the_extension_bundle_that_host_json_loads() -> None:
    loaded = json.loads((ROOT / "host.json").read_text())["extensionBundle"]["version"]
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = {
        (page.name, found.group(1))
        for page in pages
        for found in re.finditer(r"bundle\s+`(\[[^`]+\))`", page.read_text(encoding="utf-8"))
    }
    assert named, "no page names the extension bundle any more"
    assert {version for _, version in named} == {loaded}, sorted(named)


def test_what_a_workstation_makes_beside_the_app_is_not_published() -> None:
    """Review 15: `make bench`'s .venv-quix/, the zip of docs/deploy.md, .env files and other local settings were
    published by `func azure functionapp publish` (.funcignore named only .venv/ and local.settings.json)."""
    import pathspec

    spec = pathspec.PathSpec.from_lines("gitignore", (ROOT / ".funcignore").read_text().splitlines())
    local = [".venv-quix/lib/site.py", "app.zip", ".env", ".env.local", "local.settings.azure.json"]
    assert [path for path in local if not spec.match_file(path)] == []
    assert not spec.match_file("function_app.py") and not spec.match_file("shared/settings.py")
