"""Quarantining a raw file never removes one its partition's landing still names as pending."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from shared.batch import process_batch
from shared.compaction.quarantine import StillLanding, quarantine
from shared.formats import decode, format_named
from shared.lake import LocalLake
from shared.landing.guard import LandingGuard, PartitionLander
from shared.landing.partition import DEFAULT_LEASE_SECONDS
from shared.records import KafkaRecord
from shared.sources import get_source
from tests.conftest import FIXED_NOW_MS, records_for

CLICKS = get_source("clickstream")
HOUR_MS = 3_600_000


def _half_late(first: int, seed: int) -> list[KafkaRecord]:
    """Ten records from ``first``, every other one two hours old: one batch, two raw files (two event hours)."""
    records = []
    for record in records_for(CLICKS, 10, seed=seed, first_offset=first):
        event = json.loads(record.value or b"{}")
        if record.offset % 2:
            event["_time"] -= 2 * HOUR_MS
        records.append(dataclasses.replace(record, value=json.dumps(event).encode()))
    return records


def _land(guard: LandingGuard, records: list[KafkaRecord]) -> None:
    (part,) = process_batch(CLICKS, records, max_record_bytes=1 << 20)
    lander = PartitionLander(
        guard.partition(CLICKS.name, part.topic_partition), part, format_named("parquet"), FIXED_NOW_MS
    )
    lander.admit()
    lander.begin()
    lander.write()
    lander.finish()


def _offsets(root: Path, pattern: str) -> set[int]:
    return {row["_offset"] for path in root.glob(pattern) for row in decode("parquet", path.read_bytes())}


def test_a_raw_file_of_a_pending_landing_waits_for_the_landing_to_finish(tmp_path: Path) -> None:
    """A partition's last landing stays pending until its next batch. Moving one of its files then made the
    next instance take the landing for unfinished and remove its other files: records Kafka does not send
    again (a review found it). The file is moved once the next batch has finished the landing."""
    clock = [1_000_000.0]
    _land(LandingGuard(LocalLake(tmp_path), clock=lambda: clock[0]), _half_late(0, seed=1))
    late, _ = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.glob("raw/**/*.parquet"))
    with pytest.raises(StillLanding, match="still names it as pending"):
        quarantine(LocalLake(tmp_path), CLICKS.name, late, "a column no Delta table stores")

    clock[0] += DEFAULT_LEASE_SECONDS + 10
    _land(LandingGuard(LocalLake(tmp_path), clock=lambda: clock[0]), _half_late(10, seed=2))  # another instance
    moved = quarantine(LocalLake(tmp_path), CLICKS.name, late, "a column no Delta table stores")
    assert moved.raw_path == late and not (tmp_path / late).exists()
    landed, quarantined = _offsets(tmp_path, "raw/**/*.parquet"), _offsets(tmp_path, "deadletter/**/*.quarantined")
    assert landed | quarantined == set(range(20)) and not landed & quarantined
