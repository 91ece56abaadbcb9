"""The curated table's data files of one hour: closed past the target size, in order, with Delta statistics."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.compaction.parts import HourFiles
from shared.lake import LocalLake
from tests.unit.shared.compaction.conftest import H10, START_US, identity


def test_data_files_close_past_the_target_keep_order_and_carry_delta_statistics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.compaction import parts

    monkeypatch.setattr(parts, "ROW_GROUP_ROWS", 1000)
    rows = identity(list(range(5000)), [START_US + 1500 + i for i in range(5000)])
    files = HourFiles(LocalLake(tmp_path), "curated/t", H10, rows.schema, target_bytes=1)
    files.write(rows.slice(0, 2500))
    files.write(rows.slice(2500))
    written = files.finish()

    assert [f.rows for f in written] == [1000, 1000, 500, 1000, 1000, 500]
    assert [f.path for f in written] == sorted(f.path for f in written)
    assert all(f.path.startswith("date=2026-11-24/hour=10/part-") for f in written)
    back = pa.concat_tables(pq.read_table(tmp_path / "curated/t" / f.path) for f in written)
    assert back.equals(rows)
    stats = json.loads(written[0].stats)
    assert stats["numRecords"] == 1000 and stats["nullCount"]["_offset"] == 0
    assert (stats["minValues"]["_offset"], stats["maxValues"]["_offset"]) == (0, 999)
    # 10:00:00.001500 .. 10:00:00.002499 to the millisecond, outward
    assert (stats["minValues"]["_event_time"], stats["maxValues"]["_event_time"]) == (
        "2026-11-24T10:00:00.001Z",
        "2026-11-24T10:00:00.003Z",
    )
    assert "_topic" not in stats["minValues"], "strings carry no range"
