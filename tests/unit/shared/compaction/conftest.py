"""What the compaction tests share: the hour they work on, raw paths in it, and identity columns of rows."""

from __future__ import annotations

import pyarrow as pa

from shared.compaction.hours import Hour

H10 = Hour("2026-11-24", "10")
MINUTE = 60_000
START_US = H10.start_ms * 1000


def raw(hour: Hour, name: str) -> str:
    return f"raw/clickstream/date={hour.date}/hour={hour.hour}/{name}"


def identity(offsets: list[int], times_us: list[int | None], *, partition: int = 0) -> pa.Table:
    return pa.table(
        {
            "_topic": ["t"] * len(offsets),
            "_partition": pa.array([partition] * len(offsets), pa.int64()),
            "_incarnation": pa.array([0] * len(offsets), pa.int64()),
            "_offset": pa.array(offsets, pa.int64()),
            "_event_time": pa.array(times_us, pa.timestamp("us", tz="UTC")),
        }
    )
