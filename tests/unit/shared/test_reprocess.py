"""Recomputing an hour that holds two lives of a partition: rows are told apart by their incarnation."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from shared import formats
from shared.compaction.hours import Hour
from shared.lineage import LINEAGE_COLUMNS
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


def test_a_dead_letter_of_a_later_incarnation_that_lands_now_keeps_its_incarnation() -> None:
    """Promote records ``added_letters`` in the redrive log by incarnation: one left out would be redriven too."""
    source = get_source("clickstream")
    (record,) = records_for(source, 1, seed=3)
    entry = DeadLetterEntry(
        record.topic, record.partition, 1, record.offset, record.key, record.timestamp_ms, "schema", record.value, 0
    )
    no_rows = pa.table({"_topic": pa.array([], pa.string()), "_offset": pa.array([], pa.int64())})
    result = recompute_hour(source, HOUR, no_rows, [entry], max_record_bytes=1 << 20)
    assert result.diff.added == 1 and result.added_letters == [entry]
    assert result.table.column("_incarnation").to_pylist() == [1]
