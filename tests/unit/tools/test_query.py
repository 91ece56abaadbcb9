"""``python -m tools.query``: ``--drift`` one line per hour, whatever the commit's drift document holds; the lake
the settings name, as the other tools read them; a lake or a source it cannot read is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.compaction.drift import CUT_MARK, FIELD_NAME_CHARS, FIELDS_TRACKED, NEW_FIELDS_REPORTED
from tests.unit.tools.no_settings import NO_SETTINGS
from tools.query import drift_line


def test_a_document_of_older_code_naming_every_field_prints_the_most_frequent_and_a_count() -> None:
    """Before reports were bounded a commit named every field seen, at any length."""
    fields = {f"f{n:05d}" + "x" * 300: 1 for n in range(20_000)} | {"coupon": 7}
    line = drift_line({"date": "2026-11-24", "hour": "10", "rows": 20_000, "new_fields": fields})
    assert "\n" not in line and len(line) < 16 * 1024
    assert "new fields: coupon (7), f00000" + "x" * (FIELD_NAME_CHARS - 6) + CUT_MARK + " (1), " in line
    assert f", +{20_001 - NEW_FIELDS_REPORTED} more  type changes: -" in line


def test_every_name_and_type_a_document_holds_is_printed_escaped() -> None:
    document = {
        "date": "2026-11-24\x1b[2J",
        "hour": "10",
        "rows": 2,
        "new_fields": {"a\nb": 2},
        "more_fields": 3,
        "fields_approximate": True,
        "type_changes": {"t\r": {"landed": "struct<x\x07: int64>", "curated": "string", "moved": 1}},
        "new_columns": ["c\u202e"],
        "null_rates": {"n\x1b": 0.5},
    }
    assert drift_line(document) == (
        "2026-11-24\\x1b[2JT10  rows 2  new fields: a\\nb (2), +3 more"
        f" (approximate: over {FIELDS_TRACKED} distinct names)  "
        "type changes: t\\r struct<x\\x07: int64> -> string (1 to _extra)  new columns: c\\u202e  "
        "null rates: n\\x1b 50%"
    )


def test_a_document_without_drift_prints_dashes() -> None:
    line = drift_line({"date": "2026-11-24", "hour": "10", "rows": 2, "new_fields": {}, "null_rates": {"c": 0.25}})
    assert line == "2026-11-24T10  rows 2  new fields: -  type changes: -  new columns: -  null rates: c 25%"


def test_query_results_are_printed_escaped_and_aligned() -> None:
    """Sensor ids, metrics and units are the producers' text: a bidi override or a newline is printed escaped."""
    import duckdb

    from tools.query import table_text

    relation = duckdb.sql("select * from (values ('s\u202e1', 'temp\nx', 1.5), ('s2', NULL, 2.0)) t(sensor, unit, avg)")
    lines = table_text(relation).splitlines()
    assert lines[0].split() == ["sensor", "unit", "avg"] and set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == ["s\\u202e1", "temp\\nx", "1.5"] and lines[3].split() == ["s2", "NULL", "2.0"]
    assert "\u202e" not in "".join(lines) and lines[3].index("NULL") == lines[2].index("temp")  # aligned


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every table URI ``tools.query`` opens; none exists (as before a first compaction)."""
    from deltalake.exceptions import TableNotFoundError

    from tools import query

    uris: list[str] = []

    def no_table(uri: str, storage_options: dict[str, str] | None = None) -> None:
        uris.append(uri)
        raise TableNotFoundError(f"no table at {uri}")

    for name in ("LAKE_KIND", "LAKE_LOCAL_ROOT", "LAKE_CONNECTION_STRING", "LAKE_ACCOUNT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(query, "DeltaTable", no_table)
    return uris


def test_query_reads_the_settings_file_as_the_other_tools_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opened: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """It read only the environment: with the README's local.settings.json naming another lake, tools.redrive and
    tools.reconcile read one lake and tools.query another."""
    from tools import query

    for lake in ("from-file", "from-env", "given"):
        (tmp_path / lake).mkdir()
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Values": {"LAKE_KIND": "local", "LAKE_LOCAL_ROOT": str(tmp_path / "from-file")}}))
    assert query.main(["--settings", str(settings), "--drift", "orders"]) == 0
    assert opened == [str(tmp_path / "from-file" / "curated" / "orders")]
    assert capsys.readouterr().out == "curated/orders: no table yet\n"
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path / "from-env"))  # the environment over the file
    assert query.main(["--settings", str(settings), "--drift", "orders"]) == 0
    assert opened[-1] == str(tmp_path / "from-env" / "curated" / "orders")
    assert query.main(["--settings", str(settings), "--lake", str(tmp_path / "given"), "--drift", "orders"]) == 0
    assert opened[-1] == str(tmp_path / "given" / "curated" / "orders")  # --lake over both


def test_a_drift_of_a_source_that_does_not_exist_names_the_known_ones(
    tmp_path: Path, opened: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--drift nosuch`` said "curated/nosuch: no table yet", as if it might have one some day."""
    from shared.sources import SOURCES
    from tools import query

    assert query.main(["--lake", str(tmp_path), "--settings", NO_SETTINGS, "--drift", "nosuch"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [
        f"python -m tools.query: unknown source 'nosuch'; known: {', '.join(SOURCES)}"
    ]


@pytest.mark.parametrize("name", ["..", ".", "", "x" * 300])
def test_a_drift_of_a_name_no_path_may_hold_is_an_unknown_source_not_a_lake_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """The lake refused the path safely, and the tool reported it as the lake failing (exit 3)."""
    from tools import query

    assert query.main(["--lake", str(tmp_path), "--settings", NO_SETTINGS, "--drift", name]) == 2
    assert f"unknown source {name!r}" in capsys.readouterr().err


def test_an_unreachable_lake_is_one_line_naming_it_and_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """LAKE_KIND=blob with no Azurite: deltalake's OSError, a traceback and a dozen coloured lines of causes."""
    from tools import query

    def unreachable(uri: str, storage_options: dict[str, str] | None = None) -> None:
        raise OSError(
            "Kernel error -> Generic MicrosoftAzure error\n"
            f"  \x1b[31m\u21b3\x1b[0m Error performing GET {'http://127.0.0.1:10000/devstoreaccount1/lake/x' * 5}\n"
            "    \x1b[31m\u21b3\x1b[0m Connection refused (os error 111)\n"
        )

    monkeypatch.setattr(query, "DeltaTable", unreachable)
    monkeypatch.setenv("LAKE_KIND", "blob")
    monkeypatch.setenv("LAKE_CONNECTION_STRING", "UseDevelopmentStorage=true")
    assert query.main(["--settings", NO_SETTINGS]) == 3
    assert capsys.readouterr().err.splitlines() == [
        "python -m tools.query: cannot read the lake (LAKE_KIND=blob at http://127.0.0.1:10000/devstoreaccount1, "
        "container lake): Kernel error -> Generic MicrosoftAzure error; ...; Connection refused (os error 111)"
    ]


def test_a_bad_setting_is_one_line_naming_it_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools import query

    monkeypatch.setenv("LAKE_KIND", "s3")
    assert query.main(["--settings", NO_SETTINGS]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "python -m tools.query: invalid settings: LAKE_KIND: Input should be 'local', 'blob' or 'adls' (got 's3')"
    ]


@pytest.mark.parametrize(
    "change",
    [
        {"type_changes": ["a"]},
        {"type_changes": {"a": "int -> string"}},
        {"new_fields": ["a"]},
        {"new_fields": {"a": "many"}},
        {"null_rates": {"value": "high"}},
        {"null_rates": {"value": float("nan")}},
        {"more_fields": "many"},
        {"new_columns": "c"},
    ],
    ids=str,
)
def test_a_document_of_another_writers_shape_is_still_one_line(change: dict[str, object]) -> None:
    """Each was a traceback (AttributeError, ValueError, TypeError) where the docstring promises one line; the part
    of the wrong shape is left out."""
    line = drift_line({"date": "2026-11-24", "hour": "10", "rows": 2, "new_fields": {"ok": 1}} | change)
    assert line.startswith("2026-11-24T10  rows 2  new fields: ") and "\n" not in line
    assert "type changes: -" in line and "null rates: -" in line and "new columns: -" in line
