"""What the guard, partition and ledger tests share: clickstream batches landed through ``land_once``,
as rows or as one Arrow table (the ``batch_form`` fixture), and the positions that reached raw/."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.batch import ProcessedBatch, process_batch
from shared.formats import decode, format_named
from shared.lake import LocalLake
from shared.landing.files import LandingReport
from shared.landing.guard import land_once
from shared.records import KafkaRecord
from shared.sources import get_source
from tests.conftest import FIXED_NOW_MS

CLICKS = get_source("clickstream")
PARQUET = format_named("parquet")
_columnar = [False]  # clickstream has a columnar transform: every test runs with rows and with one Arrow table


@pytest.fixture(params=[False, True], ids=["rows", "arrow"])
def batch_form(request: pytest.FixtureRequest) -> None:
    _columnar[0] = request.param


def _tables(batch: ProcessedBatch) -> bool:
    return all(part.table is not None for part in batch)


def land_clicks(lake: LocalLake, records: list[KafkaRecord]) -> int:
    """Land ``records`` once through the guard, in the batch form of the test; the rows landed."""
    return land_clicks_report(lake, records).row_count


def land_clicks_report(lake: LocalLake, records: list[KafkaRecord]) -> LandingReport:
    """:func:`land_clicks`, answering the whole report."""
    batch = process_batch(CLICKS, records, max_record_bytes=1 << 20, columnar=_columnar[0])
    assert _tables(batch) == _columnar[0]
    report = land_once(lake, batch, PARQUET, now_ms=FIXED_NOW_MS)
    assert _tables(batch) == _columnar[0]  # redeliveries and incarnations keep the table: no rows built
    return report


def _rows(root: Path) -> list[dict[str, object]]:
    return [row for path in sorted(root.glob("raw/**/*.parquet")) for row in decode("parquet", path.read_bytes())]


def landed_positions(root: Path) -> list[tuple[object, ...]]:
    return sorted((row["_partition"], row["_incarnation"], row["_offset"]) for row in _rows(root))
