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
from collections.abc import Awaitable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from shared.batch import ProcessedBatch, process_batch
from shared.errors import StateBackendError, TransientError
from shared.failures import StallLog, classify_entity_error
from shared.lake.base import LakeStore
from shared.landing.files import LandingReport, land, plan_files
from shared.landing.guard import land_once
from shared.records import KafkaRecord, PartitionRanges, partition_ranges
from shared.settings import Settings, SourceSettings
from shared.sources.base import Source
from shared.state.aggregate import Signal, members, signals_for
from shared.state.lookups import StateGateway, StateJoiner, send_signals
from shared.telemetry import LATENCY_SAMPLES, BatchMetrics, count_reasons, sample, telemetry

log = logging.getLogger("streamingpoc.stream")
T = TypeVar("T")
stalls = StallLog(on_failure=lambda source, error_class: telemetry().record_failure(source, error_class))


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
    ranges = partition_ranges(records)
    with _watched(source, ranges):
        batch = process_batch(
            source, records, max_record_bytes=settings.max_record_bytes, columnar=source_settings.format == "parquet"
        )
        return _land(batch, records, ranges, lake, settings, source_settings, started, now_ms)


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
    ranges = partition_ranges(records)
    with _watched(source, ranges):
        return await _with_state(
            source, records, ranges, lake, settings, source_settings, state, joiner, started, now_ms
        )


@contextmanager
def _watched(source: Source, ranges: PartitionRanges) -> Iterator[None]:
    """Tell the stall watch how the invocation ended: a failure makes its partitions wait (loudly)."""
    try:
        yield
    except Exception as error:
        stalls.failed(source.name, ranges, error)
        raise
    stalls.succeeded(source.name, ranges)


async def _with_state(
    source: Source,
    records: Sequence[KafkaRecord],
    ranges: PartitionRanges,
    lake: LakeStore,
    settings: Settings,
    source_settings: SourceSettings,
    state: StateGateway,
    joiner: StateJoiner,
    started: float,
    now_ms: int,
) -> BatchOutcome:
    batch = process_batch(source, records, max_record_bytes=settings.max_record_bytes, keyed=True)
    gateway = _RecordIsolatingGateway(state)
    buckets = settings.state_buckets
    joined = await _state_call(joiner.join(gateway, source.name, batch.rows, buckets), "read entity state")
    landed = await asyncio.to_thread(_land, batch, records, ranges, lake, settings, source_settings, started, now_ms)
    signals = signals_for(source.name, batch.rows, ranges, buckets=buckets)
    await _state_call(send_signals(gateway, signals), "signal entities")
    if gateway.rejected:
        await asyncio.to_thread(_dead_letter_rejected, batch, gateway.rejected, lake, now_ms)
    telemetry().record_state(source.name, signals=len(signals), late=joined.late, anomalies=joined.anomalies)
    return dataclasses.replace(landed, signals=len(signals), anomalies=joined.anomalies)


class _RecordIsolatingGateway:
    """The gateway as processing uses it: a key the entity API refuses (a 4xx of its own) does not fail the batch.

    A refused read counts as no state (the row lands unenriched); a refused signal is kept in
    ``rejected`` so its rows are dead-lettered as ``entity_rejected``. Everything else is
    classified once (``shared.failures``): transient errors retry the batch, infrastructure
    errors make it wait, loudly.
    """

    def __init__(self, state: StateGateway) -> None:
        self.state = state
        self.rejected: list[tuple[Signal, str]] = []

    async def read(self, entity: str, key: str) -> dict[str, Any] | None:
        try:
            return await self.state.read(entity, key)
        except Exception as error:
            if _entity_error(error, f"read entity state ({entity})") == "record":
                log.warning("entity read refused for one key, treated as no state: %s %r: %s", entity, key, error)
                return None
            raise

    async def signal(self, signal: Signal) -> None:
        try:
            await self.state.signal(signal)
        except Exception as error:
            if _entity_error(error, f"signal entities ({signal.entity})") == "record":
                self.rejected.append((signal, f"{type(error).__name__}: {error}"[:1000]))
                return
            raise


def _entity_error(error: Exception, action: str) -> str:
    """``record`` for a per-key refusal; otherwise raises the error's class (transient or infrastructure)."""
    error_class = classify_entity_error(error)
    if error_class == "transient":
        raise TransientError(f"{action}: {error}") from error
    if error_class == "infrastructure":
        raise StateBackendError(f"{action}: {error}") from error
    return error_class


async def _state_call(call: Awaitable[T], action: str) -> T:
    """Entity API failures as the project's own errors, classified once (``shared.failures``)."""
    try:
        return await call
    except (TransientError, StateBackendError):
        raise
    except Exception as error:
        _entity_error(error, action)
        raise StateBackendError(f"{action}: {error}") from error


def _dead_letter_rejected(
    batch: ProcessedBatch, rejected: list[tuple[Signal, str]], lake: LakeStore, now_ms: int
) -> None:
    """Dead-letter the records whose entity refused their signal; they are in raw/ already.

    Each refused record gets its own file (``...+<offset>+<offset>.entity_rejected.jsonl.gz``) beside
    the batch's dead letters, so a redelivered batch, however it is cut, rewrites it rather than adding one.
    """
    entity_key = batch.source.entity_key
    refused = {member: detail for signal, detail in rejected for member in members(signal)}
    letters = ProcessedBatch(batch.source, records=batch.records)
    details = []
    for row, origin in zip(batch.rows, batch.origins, strict=True):
        detail = refused.get((str(entity_key(row)), row["_topic"], row["_partition"]))
        if detail is not None:
            letters.rows.append(row)
            letters.origins.append(origin)
            details.append(f"landed in raw/, but the entity refused its update: {detail}")
    incarnations = {(row["_topic"], row["_partition"]): row["_incarnation"] for row in letters.rows}
    letters.dead_letter_rows(list(letters.rows), "entity_rejected", details)
    planned = [  # one file per refused record: its name never depends on how the batch was cut
        dataclasses.replace(file, path=file.path.replace(".jsonl.gz", ".entity_rejected.jsonl.gz"))
        for letter in letters.dead_letters
        for file in plan_files(
            ProcessedBatch(batch.source, dead_letters=[letter]), "jsonl", now_ms=now_ms, incarnations=incarnations
        )
    ]
    land(lake, planned)
    telemetry().record_dead_letters(batch.source.name, {"entity_rejected": len(letters.dead_letters)})
    log.error(
        "entity refused %d signals of %s; %d landed records dead-lettered as entity_rejected",
        len(rejected),
        batch.source.name,
        len(letters.dead_letters),
    )


def _land(
    batch: ProcessedBatch,
    records: Sequence[KafkaRecord],
    ranges: PartitionRanges,
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
            event_times_ms=batch.event_times_ms(sample(range(batch.row_count), LATENCY_SAMPLES)),
            landed_at_ms=int(time.time() * 1000),
            bytes_written=report.bytes_written,
            files_written=len(report.files),
            lake_write_ms=report.write_ms,
        )
    )
    if log.isEnabledFor(logging.INFO):
        log.info(
            "landed batch",
            extra={
                "source": source,
                "records": outcome.records,
                "landed": outcome.landed,
                "dead_letters": outcome.dead_letters,
                "files": len(outcome.files),
                "skipped": report.skipped,
                "offsets": ",".join(f"{t}/{p}:{low}-{high}" for (t, p), (low, high) in sorted(ranges.items())),
            },
        )
    return outcome
