"""``python -m tools.redrive``: a run that finds another one holding the source's lease stops, sending nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.lake import LocalLake
from shared.redrive import redrive_log, take_lease
from tools import redrive as redrive_cli


def test_redrive_cli_exits_with_3_while_another_redrive_holds_the_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAKE_KIND", "local")
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path))
    lake = LocalLake(tmp_path)
    take_lease(lake, "orders", "the-other-run")
    assert redrive_cli.main(["orders", "--settings", str(tmp_path / "absent.json")]) == 3
    err = capsys.readouterr().err
    assert "another redrive of orders is running" in err and "the-other-run" in err
    assert redrive_log(lake, "orders") == (set(), set())
