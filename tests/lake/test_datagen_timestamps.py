"""A Datagen source's timestamps and dates through landing and compaction: the model takes exactly the dates
the lake can store and compact (years 1 to 9999); one past them is a ``schema`` dead letter, so no record can
land that stops its hour from compacting."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from shared.datagen.avro import MAX_DATE_DAYS, MIN_DATE_DAYS, MIN_TIMESTAMP_MS
from shared.dead_letters import Reason
from shared.invocation import handle_batch
from shared.lake import LocalLake
from shared.records import KafkaRecord
from shared.settings import load_settings
from shared.source_model import MAX_TIMESTAMP_MS, Source
from tests.conftest import FIXED_NOW_MS, context_for, datagen_source
from tests.lake.test_compaction import H10, Lake, curated_rows, run

MS, US = MAX_TIMESTAMP_MS, MAX_TIMESTAMP_MS * 1000 + 999
EDGES = {  # logical type: (underlying type, smallest value it holds, largest, a value of now)
    "timestamp-millis": ("long", MIN_TIMESTAMP_MS, MS, FIXED_NOW_MS),
    "local-timestamp-millis": ("long", MIN_TIMESTAMP_MS, MS, FIXED_NOW_MS),
    "timestamp-micros": ("long", MIN_TIMESTAMP_MS * 1000, US, FIXED_NOW_MS * 1000),
    "local-timestamp-micros": ("long", MIN_TIMESTAMP_MS * 1000, US, FIXED_NOW_MS * 1000),
    "date": ("int", MIN_DATE_DAYS, MAX_DATE_DAYS, FIXED_NOW_MS // 86_400_000),
}


def timed(logical: str) -> Source:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "ts", "type": {"type": EDGES[logical][0], "logicalType": logical}}],
    }
    return datagen_source("tsx", schema)


def records(values: list[Any]) -> list[KafkaRecord]:
    return [
        KafkaRecord("tsx", 0, offset, "k", json.dumps({"ts": v}).encode(), FIXED_NOW_MS)
        for offset, v in enumerate(values)
    ]


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(LocalLake(tmp_path), load_settings({"LAKE_LOCAL_ROOT": str(tmp_path)}))


@pytest.mark.parametrize("fmt", ["parquet", "avro", "jsonl"])
@pytest.mark.parametrize("logical", sorted(EDGES))
def test_the_first_and_last_dates_land_and_compact_and_one_past_them_is_a_schema_dead_letter(
    lake: Lake, logical: str, fmt: str
) -> None:
    _, low, high, now = EDGES[logical]
    context = context_for(
        timed(logical), lake.store, settings={"LAKE_LOCAL_ROOT": str(lake.store.root), "TSX_FORMAT": fmt}
    )
    outcome = handle_batch(context, records([now, low, high, low - 1, high + 1, 2**62, -(2**62)]))
    assert (outcome.landed, outcome.dead_letters) == (3, 4)
    letters = [json.loads(line) for path in lake.store.list_paths("deadletter/tsx") for line in _lines(lake, path)]
    assert {letter["reason"] for letter in letters} == {Reason.SCHEMA}
    report = run(lake, "tsx", now_ms=H10.end_ms + 5 * 3_600_000)
    assert not report.failed, report.failed
    assert report.rows == 3
    landed = sorted(row["ts"] for row in curated_rows(lake, "tsx", H10))
    if logical == "date":
        assert landed == ["0001-01-01", "2026-11-24", "9999-12-31"]
    else:
        assert landed == [MIN_TIMESTAMP_MS, FIXED_NOW_MS, MS]  # micros land as milliseconds


def _lines(lake: Lake, path: str) -> list[str]:
    data = lake.store.read(path)
    return [line for line in (gzip.decompress(data) if path.endswith(".gz") else data).decode().splitlines() if line]
