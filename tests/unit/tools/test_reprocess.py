"""``python -m tools.reprocess``: its window arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import reprocess as reprocess_cli


def test_a_window_that_ends_before_it_starts_is_refused_as_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["clickstream", "--from", "2026-11-24T12:00Z", "--to", "2026-11-24T10:00Z", "--lake", str(tmp_path)]
    with pytest.raises(SystemExit) as stop:
        reprocess_cli.main([*argv, "--settings", "/nonexistent.json", "--promote"])
    assert stop.value.code == 2
    assert "--from must be before --to" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [], "nothing was read or written: no lease taken"


def test_the_window_holds_every_hour_it_touches() -> None:
    hours = reprocess_cli.window_hours((1_764_000_000_000 + 1_800_000, 1_764_000_000_000 + 3 * 3_600_000))
    assert [str(hour) for hour in hours] == ["2025-11-24T16", "2025-11-24T17", "2025-11-24T18"]
