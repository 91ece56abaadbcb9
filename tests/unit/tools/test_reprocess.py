"""``python -m tools.reprocess``: its window arguments, and the sources it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.shared.schema_registry.conftest import avro_source
from tests.unit.tools.no_settings import NO_SETTINGS
from tools import reprocess as reprocess_cli


def test_a_window_that_ends_before_it_starts_is_refused_as_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["clickstream", "--from", "2026-11-24T12:00Z", "--to", "2026-11-24T10:00Z", "--lake", str(tmp_path)]
    with pytest.raises(SystemExit) as stop:
        reprocess_cli.main([*argv, "--settings", NO_SETTINGS, "--promote"])
    assert stop.value.code == 2
    assert "--from must be before --to" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [], "nothing was read or written: no lease taken"


@pytest.mark.parametrize(
    ("start", "end", "taken"),
    [("1971-01-01T00:00Z", "2026-01-01T00:00Z", False), ("2025-11-24T10:00Z", "2026-11-24T10:00Z", True)],
)
def test_a_window_of_more_than_a_year_is_refused_as_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], start: str, end: str, taken: bool
) -> None:
    """Every hour of a window is listed and read: year 1 to 9999 ran for hours on gigabytes of hour lists (those
    years are refused as times now; a window of 55 years is refused for its size)."""
    argv = ["clickstream", "--from", start, "--to", end, "--lake", str(tmp_path), "--settings", NO_SETTINGS]
    if taken:
        assert reprocess_cli.main(argv) == 0
        return
    with pytest.raises(SystemExit) as stop:
        reprocess_cli.main(argv)
    assert stop.value.code == 2
    assert "spans 482,136 hours; reprocess at most 8,784 (a year) a run" in capsys.readouterr().err


def test_the_window_holds_every_hour_it_touches() -> None:
    hours = reprocess_cli.window_hours((1_764_000_000_000 + 1_800_000, 1_764_000_000_000 + 3 * 3_600_000))
    assert [str(hour) for hour in hours] == ["2025-11-24T16", "2025-11-24T17", "2025-11-24T18"]


def test_an_avro_source_is_refused_before_anything_is_read_or_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its rows keep the record as the producer wrote it, not the writer schema id: recomputing them as JSON
    removed or rewrote rows that landed correctly. Refused with the reason, no traceback, no lease taken."""
    monkeypatch.setitem(reprocess_cli.SOURCES, "orders", avro_source())
    argv = ["orders", "--from", "2026-11-24T10:00Z", "--to", "2026-11-24T12:00Z", "--lake", str(tmp_path)]
    assert reprocess_cli.main([*argv, "--settings", NO_SETTINGS, "--promote"]) == 4
    printed = capsys.readouterr()
    assert printed.err.startswith("not reprocessed: orders is an Avro source") and "Traceback" not in printed.err
    assert "writer schema id" in printed.err and "python -m tools.redrive orders" in printed.err
    assert printed.out == ""
    assert list(tmp_path.iterdir()) == [], "nothing was read or written: no lease, no shadow table, no dead letters"


def test_a_bad_setting_is_one_line_naming_it_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused app setting was a ConfigurationError traceback."""
    monkeypatch.setenv("LAKE_KIND", "bogus")
    argv = ["clickstream", "--from", "2026-11-24T10:00Z", "--to", "2026-11-24T12:00Z"]
    assert reprocess_cli.main([*argv, "--settings", NO_SETTINGS]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("python -m tools.reprocess: invalid settings: LAKE_KIND: ")


def test_an_unreachable_lake_is_one_line_naming_it_without_its_key_and_exit_5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real refused connection (nothing listens on port 1) was a LakeUnavailable traceback."""
    key = "c2VjcmV0LWtleQ=="
    monkeypatch.setenv("LAKE_KIND", "blob")
    monkeypatch.setenv(
        "LAKE_CONNECTION_STRING",
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};"
        "BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;",
    )
    argv = ["clickstream", "--from", "2026-11-24T10:00Z", "--to", "2026-11-24T12:00Z", "--promote"]
    assert reprocess_cli.main([*argv, "--settings", NO_SETTINGS]) == 5
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(
        "reprocess of clickstream stopped: cannot use the lake (LAKE_KIND=blob at http://127.0.0.1:1/devstoreaccount1, "
        "container lake): "
    )
    assert "Connection refused" in line and key not in line
