"""One processing invocation for one source: validate, transform, join state, land, signal entities.

Called by the Kafka trigger. The order matters for redelivery: files land before entities
are signalled, and both are idempotent (file names from offsets, entity offset marks), so
a batch retried after any failure lands and counts exactly once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from shared.errors import TransientError
from shared.lake.base import LakeStore
from shared.landing import LandingReport
from shared.landing_guard import land_once
from shared.pipeline import ProcessedBatch, process_batch
from shared.records import KafkaRecord, partition_ranges
from shared.settings import Settings, SourceSettings
from shared.sources.base import Source
from shared.state.aggregate import signals_for
from shared.state.lookups import StateGateway, StateJoiner, send_signals
from shared.telemetry import BatchMetrics, count_reasons, telemetry

log = logging.getLogger("streamingpoc.stream")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    source: str
    records: int
    landed: int
    dead_letters: int
    files: tuple[str, ...]
    bytes_written: int
    seconds: float
    signals: int = 0
    anomalies: int = 0


def handle_batch(
    source: Source,
    records: Sequence[KafkaRecord],
    *,
    lake: LakeStore,
    settings: Settings,
    source_settings: SourceSettings,
    now_ms: int | None = None,
) -> BatchOutcome:
    """Land one batch without keyed state. Bad records are dead-lettered; only lake failures raise."""
    started = time.perf_counter()
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    batch = process_batch(source, records, max_record_bytes=settings.max_record_bytes, now_ms=now_ms)
    return _land(batch, records, lake, settings, source_settings, started, now_ms)


async def handle_batch_with_state(
    source: Source,
    records: Sequence[KafkaRecord],
    *,
    lake: LakeStore,
    settings: Settings,
    source_settings: SourceSettings,
    state: StateGateway | None,
    joiner: StateJoiner,
    now_ms: int | None = None,
) -> BatchOutcome:
    """Land one batch and update its keys' entities: one lookup and one signal per distinct key.

    With ``state`` None (``<SOURCE>_STATE_ENABLED=false``) the batch only lands, off the event loop.
    """
    if state is None:
        return await asyncio.to_thread(
            handle_batch, source, records, lake=lake, settings=settings, source_settings=source_settings, now_ms=now_ms
        )
    started = time.perf_counter()
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    batch = process_batch(source, records, max_record_bytes=settings.max_record_bytes, now_ms=now_ms)
    joined = await _state_call(joiner.join(state, source.name, batch.rows), "read entity state")
    landed = await asyncio.to_thread(_land, batch, records, lake, settings, source_settings, started, now_ms)
    signals = signals_for(source.name, batch.rows, partition_ranges(records))
    await _state_call(send_signals(state, signals), "signal entities")
    telemetry().record_state(source.name, signals=len(signals), late=joined.late, anomalies=joined.anomalies)
    return dataclasses.replace(landed, signals=len(signals), anomalies=joined.anomalies)


async def _state_call(call: Awaitable[T], action: str) -> T:
    """Entity API failures are transient: the batch is retried, and landing and signals are idempotent."""
    try:
        return await call
    except TransientError:
        raise
    except Exception as error:
        raise TransientError(f"{action}: {error}") from error


def _land(
    batch: ProcessedBatch,
    records: Sequence[KafkaRecord],
    lake: LakeStore,
    settings: Settings,
    source_settings: SourceSettings,
    started: float,
    now_ms: int,
) -> BatchOutcome:
    report: LandingReport = land_once(
        lake, batch, records, source_settings.format, now_ms=now_ms, lease_seconds=settings.landing_lease_seconds
    )
    source = batch.source.name
    outcome = BatchOutcome(
        source,
        batch.records,
        report.rows,
        report.dead_letters,
        report.files,
        report.bytes_written,
        time.perf_counter() - started,
    )
    telemetry().record_batch(
        BatchMetrics(
            source=source,
            received=batch.records,
            landed=report.rows,
            dead_letters=count_reasons([letter.reason for letter in batch.dead_letters]),
            duration_ms=outcome.seconds * 1000,
            event_times_ms=[row["_event_time"] for row in batch.rows],
            landed_at_ms=int(time.time() * 1000),
            bytes_written=report.bytes_written,
            files_written=len(report.files),
            lake_write_ms=report.write_ms,
        )
    )
    log.info(
        "landed batch",
        extra={
            "source": source,
            "records": outcome.records,
            "landed": outcome.landed,
            "dead_letters": outcome.dead_letters,
            "files": len(outcome.files),
            "skipped": report.skipped,
            "offsets": _offset_span(records),
        },
    )
    return outcome


def _offset_span(records: Sequence[KafkaRecord]) -> str:
    return ",".join(f"{t}/{p}:{low}-{high}" for (t, p), (low, high) in sorted(partition_ranges(records).items()))
