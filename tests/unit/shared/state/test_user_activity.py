"""A user's counters stay within what a bucket's JSON state can hold, so one key never stops its bucket."""

from __future__ import annotations

import dataclasses
import json

import orjson

from shared.batch import process_batch
from shared.records import KafkaRecord, offset_spans
from shared.source_model import INT64_MAX
from shared.sources import SOURCES
from shared.state.aggregate import Signal, signals_for
from shared.state.bucket_state import key_state
from shared.state.buckets import bucket_for
from tests.conftest import records_for
from tests.unit.functions.test_entities import run_entity

BUCKETS = 256
SOURCE = SOURCES["clickstream"]


def _click(user: int, offset: int, size: str) -> KafkaRecord:
    template = records_for(SOURCE, 1)[0]
    value = json.dumps(json.loads(template.value or b"{}") | {"userid": user, "bytes": size}).encode()
    return dataclasses.replace(template, offset=offset, key=str(user), value=value)


def _signal(records: list[KafkaRecord]) -> Signal:
    batch = process_batch(SOURCE, records, max_record_bytes=1 << 20, keyed=True)
    (signal,) = signals_for("clickstream", batch.rows(), offset_spans(records), buckets=BUCKETS)
    return signal


def test_a_byte_total_past_64_bits_is_held_at_its_largest_and_the_bucket_keeps_counting() -> None:
    neighbour = next(u for u in range(8, 10_000) if bucket_for(str(u), BUCKETS) == bucket_for("7", BUCKETS))
    first = _signal([_click(7, 0, "999999999999999")])
    state, _ = run_entity("user_activity", None, [("apply", first.payload)], key=first.key)
    assert state is not None
    held = key_state(state, "7") or {}
    state["keys"]["7"] = orjson.dumps(held | {"bytes": INT64_MAX - 10}).decode()  # 18,446 such clicks later
    second = _signal([_click(7, 1, "999999999999999"), _click(neighbour, 2, "278")])
    state, results = run_entity("user_activity", state, [("apply", second.payload)], key=second.key)
    assert not results[0]["isError"], results[0]["result"]
    assert (key_state(state, "7") or {})["bytes"] == INT64_MAX
    assert (key_state(state, str(neighbour)) or {})["page_views"] == 1
