"""Schema drift, kept and reported: unknown fields (flat and nested) land in ``_extra`` through
processing, landing and compaction; a field a model adds becomes a new curated column; the drift
report rides in each hour's commit and ``python -m tools.query --drift`` prints it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from shared.batch import process_batch
from shared.compaction.drift import drift_from_history
from shared.formats import format_named
from shared.lake import LocalLake
from shared.landing.files import land, plan_batch
from shared.records import KafkaRecord
from shared.settings import load_settings
from shared.source_model import Source
from tests.conftest import FIXED_NOW_MS, datagen_source
from tests.lake.test_compaction import H10, Lake, curated_rows, run
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
