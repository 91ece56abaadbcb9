"""``python -m tools.query`` on curated tables whose columns drifted from its queries (a table of another version
or writer): one line naming the table and the column, exit 3 (what is in the lake cannot be read), no traceback.
Before, a table without ``is_bot`` was DuckDB's BinderException, one without ``date`` a KeyError in ``load`` and a
column of another type DuckDB's conversion error, each a traceback."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from tests.conftest import ROOT
from tests.unit.tools.no_settings import NO_SETTINGS
from tools import query

T = datetime(2026, 1, 1, tzinfo=UTC)
CLICKSTREAM: dict[str, Any] = {
    "_event_time": [T],
    "userid": [1],
    "is_bot": [False],
    "request_path": ["/"],
    "bytes": [3],
    "date": ["2026-01-01"],
    "hour": ["00"],
}
SENSORS: dict[str, Any] = {
    "_event_time": [T],
    "sensor_id": ["s"],
    "metric": ["m"],
    "value": [1.0],
    "unit": ["u"],
    "date": ["2026-01-01"],
    "hour": ["00"],
}
PREFIX = "python -m tools.query: cannot query the lake (LAKE_KIND=local at "
GUESS = " (a table of another version or writer?)"


def lake_of(root: Path, clickstream: dict[str, Any], sensors: dict[str, Any]) -> Path:
    """Curated tables written with deltalake directly, as another version or writer of them would."""
    write_deltalake(root / "curated" / "clickstream", pa.table(clickstream))
    write_deltalake(root / "curated" / "sensors", pa.table(sensors))
    return root


def without(columns: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in columns.items() if key != name}


@pytest.fixture(autouse=True)
def _no_lake_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LAKE_KIND", "LAKE_LOCAL_ROOT", "LAKE_CONNECTION_STRING", "LAKE_ACCOUNT_URL"):
        monkeypatch.delenv(name, raising=False)


def run_query(lake: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = query.main(["--lake", str(lake), "--settings", NO_SETTINGS])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("clickstream", "sensors", "why"),
    [
        (without(CLICKSTREAM, "is_bot"), SENSORS, "curated/clickstream has no column 'is_bot', which its queries read"),
        (without(CLICKSTREAM, "date"), SENSORS, "curated/clickstream has no column 'date', which its queries read"),
        (CLICKSTREAM, without(SENSORS, "unit"), "curated/sensors has no column 'unit', which its queries read"),
        (CLICKSTREAM, without(SENSORS, "hour"), "curated/sensors has no column 'hour', which its queries read"),
        (
            CLICKSTREAM | {"is_bot": ["maybe"]},
            SENSORS,
            "curated/clickstream: column 'is_bot' is string",
        ),
        (CLICKSTREAM | {"bytes": ["3"]}, SENSORS, "curated/clickstream: column 'bytes' is string"),
        (CLICKSTREAM | {"_event_time": ["x"]}, SENSORS, "curated/clickstream: column '_event_time' is string"),
        (CLICKSTREAM, SENSORS | {"value": ["abc"]}, "curated/sensors: column 'value' is string"),
    ],
    ids=["no is_bot", "no date", "no unit", "no hour", "is_bot text", "bytes text", "time text", "value text"],
)
def test_a_drifted_table_is_one_line_naming_it_and_the_column_exit_3(
    clickstream: dict[str, Any], sensors: dict[str, Any], why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_query(lake_of(tmp_path, clickstream, sensors), capsys)
    assert code == query.EXIT_LAKE_UNREADABLE == 3
    (line,) = err.splitlines()
    assert line.startswith(f"{PREFIX}{tmp_path.resolve()}): {why}") and line.endswith(GUESS), line
    if " is string" in why:  # the type it has (string or string_view, as deltalake reads it) and the one it needs
        assert ", its queries need a " in line


def test_the_queries_backstop_names_the_table_when_the_column_check_passes_a_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A drift ``check_columns`` does not know of: DuckDB's error and a KeyError in ``load`` are the same one line."""
    monkeypatch.setattr(query, "check_columns", lambda name, schema: None)
    code, err = run_query(lake_of(tmp_path / "a", without(CLICKSTREAM, "is_bot"), SENSORS), capsys)
    (line,) = err.splitlines()
    assert code == 3 and line.startswith(
        f"{PREFIX}{(tmp_path / 'a').resolve()}): curated/clickstream: its query failed ("
    )
    assert "is_bot" in line and line.endswith(GUESS)
    code, err = run_query(lake_of(tmp_path / "b", CLICKSTREAM, SENSORS | {"value": ["abc"]}), capsys)
    (line,) = err.splitlines()
    assert code == 3 and "curated/sensors: its query failed (" in line
    code, err = run_query(lake_of(tmp_path / "c", without(CLICKSTREAM, "date"), SENSORS), capsys)
    (line,) = err.splitlines()
    assert code == 3 and "curated/clickstream: cannot count its hours (" in line and "date" in line


def test_tables_with_every_column_the_queries_read_are_queried(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The check is of what the queries read only: other columns, and any type where the queries take any."""
    extra = {"status": [200], "userid": ["u1"]}
    lake = lake_of(tmp_path, CLICKSTREAM | extra, SENSORS)
    code = query.main(["--lake", str(lake), "--settings", NO_SETTINGS])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert "Page views per user and hour" in out and "Sensor averages per minute" in out and "u1" in out


def test_the_command_on_a_drifted_lake_prints_no_traceback(tmp_path: Path) -> None:
    """The reviewer's reproducer, as a newcomer runs it."""
    lake = lake_of(tmp_path, without(CLICKSTREAM, "is_bot"), without(SENSORS, "unit"))
    done = subprocess.run(
        [sys.executable, "-m", "tools.query", "--lake", str(lake), "--settings", NO_SETTINGS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 3 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"{PREFIX}{tmp_path.resolve()}): curated/clickstream has no column 'is_bot', which its queries read{GUESS}"
    ]
