"""The local dashboard in a real browser (Debian chromium via playwright-core) while the pipeline runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.harness import SOURCE_NAMES, DevHost, Run

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOT = ROOT / "docs" / "images" / "dashboard.png"
EVENTS_PER_SOURCE = 150


def _browser_available() -> bool:
    return (
        Path(CHROMIUM).exists() and (ROOT / "node_modules" / "playwright-core").is_dir() and bool(shutil.which("node"))
    )


@pytest.mark.skipif(
    not _browser_available() and not os.environ.get("STREAMINGPOC_REQUIRE_BROWSER"),
    reason="needs Debian chromium (apt-get install chromium) and npm install; CI sets STREAMINGPOC_REQUIRE_BROWSER",
)
def test_dashboard_figures_move_and_match_the_summary(broker: str, tmp_path: Path) -> None:
    run, lake = Run(), tmp_path / "lake"
    settings = run.settings()
    for source in SOURCE_NAMES:
        upper = source.upper()
        settings |= {
            f"{upper}_GENERATOR_ENABLED": "true",
            f"{upper}_GENERATOR_SCHEDULE": "* * * * * *",
            f"{upper}_GENERATOR_EVENTS_PER_TICK": "10",
            f"{upper}_GENERATOR_ITERATIONS": str(EVENTS_PER_SOURCE),
        }
    host = DevHost(broker, lake, settings)
    try:
        shot = tmp_path / "dashboard.png"
        result = subprocess.run(
            ["node", str(ROOT / "tests" / "integration" / "dashboard_check.mjs"),
             f"http://127.0.0.1:{host.port}/dashboard", str(shot), str(EVENTS_PER_SOURCE)],
            cwd=ROOT, capture_output=True, text=True, timeout=150, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr + host.output()
        seen = json.loads(result.stdout.strip().splitlines()[-1])
        assert seen["moved"] > seen["first"]
        assert seen["final"] == dict.fromkeys(SOURCE_NAMES, EVENTS_PER_SOURCE)
        assert seen["lag"] == "0"
        assert seen["lookup"].startswith(("404", "400"))
        assert host.interrupt() == 0, host.output()
    finally:
        if host.process.poll() is None:
            host.kill()
    summary = {m["name"]: int(m["events"]) for m in _summary_rows(host.output())}
    assert {s: summary[f"process_{s}"] for s in SOURCE_NAMES} == seen["final"]
    if os.environ.get("STREAMINGPOC_UPDATE_SCREENSHOT"):  # tests never rewrite tracked files unless asked
        shutil.copyfile(shot, SCREENSHOT)


def _summary_rows(output: str) -> list[dict[str, str]]:
    pattern = re.compile(r"^(?P<name>\S+)\s+(?P<trigger>\w+Trigger)\s+(?P<invocations>\d+)\s+(?P<events>\d+)\s+", re.M)
    return [match.groupdict() for match in pattern.finditer(output)]
