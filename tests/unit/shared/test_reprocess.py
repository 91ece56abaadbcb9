"""Recomputing an hour that holds two lives of a partition: rows are told apart by their incarnation."""

from __future__ import annotations

import dataclasses
from collections import Counter

import orjson
import pyarrow as pa

from shared import formats
from shared.batch import process_batch
from shared.compaction.hours import Hour
from shared.lineage import LINEAGE_COLUMNS
from shared.records import KafkaRecord
from shared.redrive import DeadLetterEntry
from shared.reprocess import recompute_hour
from shared.sources import get_source
from tests.conftest import FIXED_NOW_MS, records_for
from tests.unit.shared.conftest import processed

HOUR = Hour.of_ms(FIXED_NOW_MS)


def test_the_same_offsets_in_two_incarnations_are_both_kept_as_they_landed() -> None:
    """The topic was recreated within the hour: offsets 0..2 landed twice, once per life."""
    source = get_source("sensors")
    first_life = processed("sensors", 3, seed=1).rows()
    second_life = processed("sensors", 3, seed=2).rows()
    for row in second_life:
        row["_incarnation"] = 1
    schema = formats.arrow_schema((*source.columns, *LINEAGE_COLUMNS))
    curated = pa.Table.from_pylist(first_life + second_life, schema=schema)
    result = recompute_hour(source, HOUR, curated, [], max_record_bytes=1 << 20)
    assert Counter(result.table.column("_incarnation").to_pylist()) == {0: 3, 1: 3}
    assert not result.diff.differs, result.diff
    assert result.table.column("sensor_id").to_pylist() == curated.column("sensor_id").to_pylist()


def test_a_dead_letter_that_passes_now_is_counted_not_landed() -> None:
    """tools.redrive lands it (raw/, state, curated); landing it here too would skip raw/ and state."""
    source = get_source("clickstream")
    (record,) = records_for(source, 1, seed=3)
    entry = DeadLetterEntry(
        record.topic, record.partition, 1, record.offset, record.key, record.timestamp_ms, "schema", record.value, 0
    )
    no_rows = pa.table({"_topic": pa.array([], pa.string()), "_offset": pa.array([], pa.int64())})
    result = recompute_hour(source, HOUR, no_rows, [entry], max_record_bytes=1 << 20)
    assert (result.diff.now_valid, result.diff.differs, result.table.num_rows) == (1, False, 0)


def _long_key_record(offset: int) -> KafkaRecord:
    (template,) = records_for(get_source("sensors"), 1, first_offset=offset)
    value = orjson.dumps(orjson.loads(template.value or b"") | {"sensor_id": "\u6e29" * 128})  # past 400 encoded
    return dataclasses.replace(template, value=value)


def test_with_state_on_entity_keys_are_checked_as_processing_checks_them() -> None:
    """A sensor id too long for an entity lands while state is off; with state on processing dead-letters it as
    ``bad_key``, and so does the recomputation: such a row leaves, and such a dead letter is not valid now."""
    source = get_source("sensors")
    landed = process_batch(source, [_long_key_record(0)], max_record_bytes=1 << 20).rows()
    schema = formats.arrow_schema((*source.columns, *LINEAGE_COLUMNS))
    curated = pa.Table.from_pylist(landed, schema=schema)
    letter = _long_key_record(1)
    entry = DeadLetterEntry(letter.topic, 0, 0, 1, None, letter.timestamp_ms, "bad_key", letter.value, 0)

    stateless = recompute_hour(source, HOUR, curated, [entry], max_record_bytes=1 << 20)
    assert (stateless.diff.removed, stateless.diff.now_valid) == (0, 1)
    keyed = recompute_hour(source, HOUR, curated, [entry], max_record_bytes=1 << 20, keyed=True)
    assert (keyed.diff.removed, dict(keyed.diff.newly_dead), keyed.diff.now_valid) == (1, {"bad_key": 1}, 0)
