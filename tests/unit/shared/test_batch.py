"""A processed batch per topic-partition: selecting offsets keeps rows, origins, records and dead letters aligned."""

from __future__ import annotations

import pytest

from shared.batch import ProcessedBatch, process_batch
from shared.records import KafkaRecord
from shared.sources import SOURCES
from tests.conftest import FIXED_NOW_MS, records_for


@pytest.mark.parametrize("columnar", [False, True])
def test_selecting_offsets_keeps_rows_origins_records_and_dead_letters_aligned(columnar: bool) -> None:
    source = SOURCES["clickstream"]
    records = records_for(source, 6)
    records[4] = KafkaRecord(records[4].topic, 0, 4, None, b"{not json", FIXED_NOW_MS)
    batch: ProcessedBatch = process_batch(source, records, max_record_bytes=1 << 20, columnar=columnar)
    (part,) = batch
    chosen = part.select({1, 3, 4})
    assert [r["_offset"] for r in chosen.to_rows()] == [o.offset for o in chosen.origins] == [1, 3]
    assert [r.offset for r in chosen.records] == [1, 3, 4] and [d.record.offset for d in chosen.dead_letters] == [4]
    assert (chosen.table is not None) == columnar and part.row_count == 5  # the batch it came from is unchanged
