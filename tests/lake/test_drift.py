"""Schema drift, kept and reported: unknown fields (flat and nested) land in ``_extra`` through
processing, landing and compaction; a field a model adds becomes a new curated column; the drift
report rides in each hour's commit and ``python -m tools.query --drift`` prints it, bounded and
escaped whatever field names producers send."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from shared.batch import process_batch
from shared.compaction.drift import FIELD_NAME_CHARS, FIELDS_TRACKED, NEW_FIELDS_REPORTED, drift_from_history
from shared.compaction.drift import METADATA_KEY as DRIFT_KEY
from shared.compaction.hours import Hour
from shared.extra_fields import field_key
from shared.formats import format_named
from shared.lake import LocalLake
from shared.landing.files import land, plan_batch
from shared.records import KafkaRecord
from shared.settings import load_settings
from shared.source_model import Source
from tests.conftest import FIXED_NOW_MS, datagen_source
from tests.lake.test_compaction import H10, LATER, Lake, curated_rows, run
from tests.lake.test_compaction_foreign_files import H09, parquet, put, raw_table, readable
from tests.unit.tools.no_settings import NO_SETTINGS
from tools import query

ADDRESS = {"type": "record", "name": "Address", "fields": [{"name": "city", "type": "string"}]}


def things(extra_fields: list[dict[str, Any]] | None = None) -> Source:
    """A Datagen config source; ``extra_fields`` is what a newer model adds."""
    fields = [
        {"name": "id", "type": "long"},
        {"name": "address", "type": ADDRESS},
        *(extra_fields or []),
    ]
    return datagen_source("things", {"type": "record", "name": "Thing", "fields": fields})


def records(values: list[dict[str, Any]], first_offset: int) -> list[KafkaRecord]:
    return [
        KafkaRecord("things", 0, first_offset + i, None, orjson.dumps(value), FIXED_NOW_MS + i)
        for i, value in enumerate(values)
    ]


def land_records(lake: Lake, source: Source, values: list[dict[str, Any]], first_offset: int) -> None:
    batch = process_batch(source, records(values, first_offset), max_record_bytes=100_000)
    assert batch.dead_letters == []
    land(lake.store, plan_batch(batch, format_named("parquet"), now_ms=FIXED_NOW_MS))


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(LocalLake(tmp_path), load_settings({"LAKE_LOCAL_ROOT": str(tmp_path)}))


def test_unknown_fields_land_in_extra_and_the_drift_report_names_them(lake: Lake) -> None:
    plain = {"id": 1, "address": {"city": "Oslo"}}
    unknown = {
        "id": 2,
        "address": {"city": "Bergen", "zip4": "5003"},  # inside a known nested record
        "color": "red",  # flat
        "dimensions": {"w": 3, "h": [1, 2, {"deep": None}]},  # a new nested object, kept whole
    }
    land_records(lake, things(), [plain, unknown], 0)
    raw = {row["id"]: row for row in curated_rows_after(lake)}
    assert raw[1]["_extra"] is None
    assert json.loads(raw[2]["_extra"]) == {
        "color": "red",
        "dimensions": {"w": 3, "h": [1, 2, {"deep": None}]},
        "address.zip4": "5003",
    }
    assert json.loads(raw[2]["_received"]) == unknown, "the record as received, every field"
    (document,) = drift_from_history(lake.delta("things").history())
    assert document["new_fields"] == {"address.zip4": 1, "color": 1, "dimensions": 1}
    assert document["type_changes"] == {} and document["rows"] == 2


def test_a_field_the_model_adds_becomes_a_new_nullable_curated_column(
    lake: Lake, capsys: pytest.CaptureFixture[str]
) -> None:
    land_records(lake, things(), [{"id": 1, "address": {"city": "Oslo"}, "color": "red"}], 0)
    run(lake, "things")
    evolved = things([{"name": "color", "type": ["null", "string"], "default": None}])
    land_records(lake, evolved, [{"id": 2, "address": {"city": "Bergen"}, "color": "blue"}], 1)
    report = run(lake, "things")
    (hour,) = report.hours
    assert hour.drift is not None and hour.drift.new_columns == ["color"]
    rows = {row["id"]: row for row in curated_rows(lake, "things", H10)}
    assert rows[2]["color"] == "blue" and rows[2]["_extra"] is None
    assert rows[1]["color"] is None and json.loads(rows[1]["_extra"]) == {"color": "red"}, "older rows keep _extra"
    assert query.main(["--drift", "things", "--lake", str(lake.store.root)]) == 0
    printed = capsys.readouterr().out
    assert "new columns: color" in printed and "curated/things: drift per hour" in printed


def curated_rows_after(lake: Lake) -> list[dict[str, Any]]:
    """The hour's curated rows after compacting (the records carry FIXED_NOW_MS: hour H10)."""
    run(lake, "things")
    return curated_rows(lake, "things", H10)


def json_lines(hour: Hour, offsets: list[int], **columns: list[Any]) -> bytes:
    """A JSON lines raw file of ``clickstream`` (a source whose model has none of ``columns``)."""
    rows = [
        {"_topic": "clickstream", "_partition": 0, "_offset": offset, "_event_time": hour.start_ms + 1000 + i}
        | {name: values[i] for name, values in columns.items()}
        for i, offset in enumerate(offsets)
    ]
    return gzip.compress(b"".join(orjson.dumps(row) + b"\n" for row in rows))


def test_a_new_column_null_in_every_row_of_an_hour_waits_for_a_typed_value(lake: Lake) -> None:
    """A newer model's nullable field, null in every row of an hour's JSON lines (or Avro) files, is Arrow's
    ``null`` type: committed, the table took it as a ``void`` column, and every later hour with values failed."""
    put(lake, H09, "a.jsonl.gz", json_lines(H09, [1, 2], coupon=[None, None]))
    assert not run(lake).failed
    assert "coupon" not in lake.delta().schema().to_arrow().names
    put(lake, H10, "b.jsonl.gz", json_lines(H10, [3, 4], coupon=["X1", None]))
    report = run(lake, now_ms=LATER)
    assert not report.failed, report.failed
    assert readable(lake, H10).sort_by("_offset").column("coupon").to_pylist() == ["X1", None]
    assert readable(lake, H09).column("coupon").to_pylist() == [None, None]


def test_a_void_column_a_table_already_has_takes_the_first_typed_values(lake: Lake) -> None:
    """Tables compacted before columns of nulls were held back have such a column as ``void``: it is retyped."""
    put(lake, H09, "a.parquet", parquet(raw_table(H09, [1, 2])))
    assert not run(lake).failed
    delta = lake.delta()
    older = pa.schema(delta.schema().to_arrow()).append(pa.field("coupon", pa.null()))
    write_deltalake(delta, older.empty_table(), mode="append", schema_mode="merge")  # what older code committed
    assert str(lake.delta().schema().fields[-1].type) == 'PrimitiveType("void")'
    put(lake, H10, "b.parquet", parquet(raw_table(H10, [3, 4], coupon=["X1", None])))
    report = run(lake, now_ms=LATER)
    assert not report.failed, report.failed
    assert lake.delta().schema().to_arrow().field("coupon").type in (pa.string(), pa.string_view())
    assert readable(lake, H10).sort_by("_offset").column("coupon").to_pylist() == ["X1", None]
    assert readable(lake, H09).column("coupon").to_pylist() == [None, None]


def test_a_timestamp_column_in_json_lines_of_older_code_is_read_as_epoch_milliseconds(lake: Lake) -> None:
    """``created_at`` was a ``timestamp`` column of an older model (JSON lines hold epoch ms, ``shared.formats``);
    today's model lacks it, so the Parquet file's type is the hour's and the JSON lines' integers are cast."""
    at_ms = H10.start_ms + 5_000
    put(lake, H10, "a.parquet", parquet(raw_table(H10, [1], created_at=pa.array([at_ms], pa.timestamp("ms", "UTC")))))
    put(lake, H10, "b.jsonl.gz", json_lines(H10, [2], created_at=[at_ms]))
    report = run(lake, now_ms=LATER)
    assert not report.failed, report.failed
    times = readable(lake, H10).sort_by("_offset").column("created_at").cast(pa.int64()).to_pylist()
    assert times == [at_ms * 1000, at_ms * 1000]


def test_a_struct_field_the_curated_struct_lacks_moves_to_extra_and_is_reported(lake: Lake) -> None:
    """A foreign or registry-typed Parquet file carries ``address`` with a field the table's struct lacks:
    Arrow's cast would drop it; it lands in ``_extra`` as ``address.zip`` and the drift report names it."""
    put(lake, H09, "a.parquet", parquet(raw_table(H09, [1], address=pa.array([{"city": "Oslo"}]))))
    assert not run(lake).failed
    kind = pa.struct([("city", pa.string()), ("zip", pa.string())])
    newer = pa.array([{"city": "Bergen", "zip": "5003"}, {"city": "Oslo", "zip": None}, None], kind)
    put(lake, H10, "b.parquet", parquet(raw_table(H10, [2, 3, 4], address=newer)))
    report = run(lake, now_ms=LATER)
    assert not report.failed, report.failed
    rows = readable(lake, H10).sort_by("_offset").to_pylist()
    assert [row["address"] for row in rows] == [{"city": "Bergen"}, {"city": "Oslo"}, None]
    assert [row["_extra"] and json.loads(row["_extra"]) for row in rows] == [{"address.zip": "5003"}, None, None]
    (hour,) = report.hours
    assert hour.drift is not None and hour.drift.new_fields == {"address.zip": 1}
    assert hour.drift.type_changes["address"].moved == 1


# A field name that starts a log line of its own, sets the terminal's title (OSC, ended by BEL) and clears the screen.
FORGED = "x\n2026-11-24 10:00:00 ERROR streamingpoc.compaction: forged line\x1b]0;owned\x07\x1b[2J"


def test_a_producers_field_name_reaches_the_log_and_tools_query_escaped_and_the_commit_as_sent(
    lake: Lake, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    land_records(lake, things(), [{"id": 1, "address": {"city": "Oslo"}, FORGED: 1}], 0)
    with caplog.at_level(logging.WARNING, "streamingpoc.compaction"):
        (row,) = curated_rows_after(lake)
    assert json.loads(row["_extra"]) == {field_key(FORGED): 1}, "the row keeps the field, its dots escaped"
    (document,) = drift_from_history(lake.delta("things").history())
    assert document["new_fields"] == {field_key(FORGED): 1}, "the commit keeps its key in _extra as a JSON string"
    (warning,) = [record.getMessage() for record in caplog.records if "schema drift" in record.getMessage()]
    assert query.main(["--drift", "things", "--lake", str(lake.store.root)]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "new fields" in line]
    for text in (warning, line):
        assert "\n" not in text and "\x1b" not in text and "\x07" not in text, repr(text)
        assert (
            "x\\n2026-11-24 10:00:00 ERROR streamingpoc\\\\.compaction: forged line"
            "\\x1b]0;owned\\x07\\x1b[2J (1)" in text
        )


def test_an_hour_of_a_thousand_and_more_unknown_field_names_keeps_a_bounded_report(
    lake: Lake, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each record a field of its own, longer than a name is kept: every row keeps its field in ``_extra``;
    the commit and ``tools.query`` keep the most frequent names, cut, and count the others."""
    count = FIELDS_TRACKED + 200
    values = [{"id": n, "address": {"city": "Oslo"}, "coupon": n, f"f{n:05d}_" + "x" * 300: n} for n in range(count)]
    land_records(lake, things(), values, 0)
    rows = curated_rows_after(lake)
    assert sorted(len(json.loads(row["_extra"])) for row in rows) == [2] * count
    (commit,) = [commit for commit in lake.delta("things").history() if DRIFT_KEY in commit]
    assert len(commit[DRIFT_KEY]) < 16 * 1024
    (document,) = drift_from_history(lake.delta("things").history())
    assert len(document["new_fields"]) == NEW_FIELDS_REPORTED and document["new_fields"]["coupon"] == count
    assert document["more_fields"] == count + 1 - NEW_FIELDS_REPORTED and document["fields_approximate"] is True
    assert all(len(name) <= FIELD_NAME_CHARS + 1 for name in document["new_fields"])
    assert query.main(["--drift", "things", "--lake", str(lake.store.root)]) == 0
    printed = capsys.readouterr().out
    assert f", +{count + 1 - NEW_FIELDS_REPORTED} more (approximate: over {FIELDS_TRACKED} distinct names)" in printed


def _land_at(lake: Lake, source: Source, values: list[dict[str, Any]], first: int, at_ms: int, fmt: str) -> None:
    batch = process_batch(
        source,
        [KafkaRecord("things", 0, first + i, None, orjson.dumps(v), at_ms + i) for i, v in enumerate(values)],
        max_record_bytes=100_000,
    )
    assert batch.dead_letters == []
    land(lake.store, plan_batch(batch, format_named(fmt), now_ms=at_ms))


def _thing(x_type: str) -> Source:
    return datagen_source(
        "things",
        {"type": "record", "name": "Thing", "fields": [{"name": "id", "type": "long"}, {"name": "x", "type": x_type}]},
    )


@pytest.mark.parametrize(
    ("before", "after", "first", "later", "kept", "moved"),
    [
        ("boolean", "long", True, [5, 0, 1], {2: False, 3: True}, {1: 5}),
        ("long", "string", 7, ["0501", "+7", "12"], {3: 12}, {1: "0501", 2: "+7"}),
        ("double", "string", 1.5, ["NaN", "1e3", "2.5"], {3: 2.5}, {1: "NaN", 2: "1e3"}),
    ],
)
def test_a_value_a_cast_would_change_keeps_its_own_form_in_extra(
    lake: Lake,
    monkeypatch: pytest.MonkeyPatch,
    before: str,
    after: str,
    first: Any,
    later: list[Any],
    kept: dict[int, Any],
    moved: dict[int, Any],
) -> None:
    """Review 15: the curated column keeps its first type; a later model's values were cast to it and counted as
    fitting even when the cast changed them (5 became true, "0501" became 501, "NaN" a float NaN)."""
    from shared import sources

    monkeypatch.setitem(sources.SOURCES, "things", _thing(before))
    _land_at(lake, _thing(before), [{"id": 0, "x": first}], 0, H09.start_ms + 1000, "parquet")
    run(lake, "things")
    monkeypatch.setitem(sources.SOURCES, "things", _thing(after))
    _land_at(lake, _thing(after), [{"id": i + 1, "x": v} for i, v in enumerate(later)], 1, FIXED_NOW_MS, "parquet")
    run(lake, "things")
    rows = {row["id"]: row for row in curated_rows(lake, "things", H10)}
    assert {i: rows[i]["x"] for i in kept} == kept
    assert {i: json.loads(rows[i]["_extra"])["x"] for i in moved} == moved and all(rows[i]["x"] is None for i in moved)


@pytest.mark.parametrize("fmt", ["jsonl", "avro"])
def test_a_fraction_read_back_as_a_later_models_integer_is_not_cut(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """Review 15: JSON lines and Avro files are typed by today's model when compacted; with x now a long, 2.5 landed
    by the model before was read as 2, silently (Parquet files keep their own types)."""
    from shared import sources

    monkeypatch.setitem(sources.SOURCES, "things", _thing("double"))
    _land_at(lake, _thing("double"), [{"id": 1, "x": 2.5}, {"id": 2, "x": -1.9}], 0, FIXED_NOW_MS, fmt)
    monkeypatch.setitem(sources.SOURCES, "things", _thing("long"))  # deployed before the hour compacts
    run(lake, "things")
    values = {row["id"]: (row["x"], row["_extra"]) for row in curated_rows(lake, "things", H10)}
    assert all(
        x == sent or (x is None and json.loads(extra)["x"] == sent)
        for (x, extra), sent in zip([values[1], values[2]], [2.5, -1.9], strict=True)
    ), values


@pytest.mark.parametrize(
    ("before", "after", "old", "new", "curated"), [("long", "double", 3, 2.5, None), ("string", "long", "a", 5, "5")]
)
def test_reprocessing_after_a_type_change_keeps_each_value_and_does_not_stop(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, before: str, after: str, old: Any, new: Any, curated: Any
) -> None:
    """Review 15: tools.reprocess typed today's values with the curated column's type: 2.5 became 2 and its _extra
    copy was dropped on --promote; an int for a string column raised ArrowTypeError out of the command, so no hour
    of the window could be reprocessed. A value the curated type holds exactly (5 as "5") fits; others keep _extra."""
    from shared import sources
    from shared.settings import REGISTERED_DEFAULTS
    from tools import reprocess as tool

    monkeypatch.setitem(sources.SOURCES, "things", _thing(before))
    monkeypatch.setitem(REGISTERED_DEFAULTS, "things", dict(_thing(before).setting_defaults))
    _land_at(lake, _thing(before), [{"id": 0, "x": old}], 0, FIXED_NOW_MS, "parquet")
    _land_at(lake, _thing(after), [{"id": 1, "x": new}], 1, FIXED_NOW_MS + 10, "parquet")
    run(lake, "things")
    monkeypatch.setitem(sources.SOURCES, "things", _thing(after))
    window = ["--from", "2026-11-24T10:00Z", "--to", "2026-11-24T11:00Z", "--lake", str(lake.store.root)]
    assert tool.main(["things", *window, "--settings", NO_SETTINGS, "--promote"]) == 0
    rows = {row["id"]: row for row in curated_rows(lake, "things", H10)}
    assert rows[1]["x"] == curated, rows[1]
    assert curated is not None or json.loads(rows[1]["_extra"])["x"] == new
