"""One processing invocation for one source: validate, transform, join state, land, signal entities.

Called by the Kafka trigger with a :class:`ProcessingContext` (what the invocation runs against)
and the records. The order matters for redelivery: files land before entities are signalled,
and both are idempotent (file names from offsets, entity offset marks), so a batch retried
after any failure lands and counts exactly once.

Step by step (docs/architecture.md): ``process_batch`` validates and transforms the records and
splits them by topic-partition; with keyed state, the rows read their lookups (one read per
bucket); ``land_once`` lands each partition (admit, plan, begin, write, finish); the rows that
landed are signalled to their key buckets; a refused signal's records are dead-lettered as
``entity_rejected``; telemetry records the batch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared.batch import ProcessedBatch, process_batch
from shared.dead_letters import DeadLetter, Reason
from shared.errors import StateBackendError, TransientError
from shared.failures import ErrorClass, StallLog, classify_entity_error
from shared.formats import format_named
from shared.lake.base import LakeStore
from shared.landing.files import LandingReport, land, plan_entity_rejected
from shared.landing.guard import land_once
from shared.landing.raw_rows import Identity, raw_rows
from shared.layout import hour_start_ms
from shared.records import KafkaRecord, OffsetSpans, offset_spans
from shared.schema_registry.decoder import AvroDecoder, decoder_for
from shared.settings import Settings, SourceSettings
from shared.source_model import Row, Source
from shared.state.aggregate import (
    PartitionLife,
    Signal,
    members,
    owing,
    signals_for,
    with_holes,
    with_owed,
    within_size,
)
from shared.state.bucket_counts import bucket_counts, state_bucket_settings
from shared.state.lookups import StateGateway, StateJoiner, send_signals
from shared.state.registry import ENTITY_KINDS, keeps_state, state_sources
from shared.telemetry import LATENCY_SAMPLES, BatchMetrics, count_reasons, sample, telemetry

log = logging.getLogger("streamingpoc.stream")
T = TypeVar("T")
stalls = StallLog(on_failure=lambda source, error_class: telemetry().record_failure(source, error_class))


@dataclass(frozen=True)
class ProcessingContext:
    """What one source's invocations run against: the lake, the app's and the source's settings, a clock."""

    source: Source
    lake: LakeStore
    settings: Settings
    source_settings: SourceSettings
    clock: Callable[[], float] = field(default=time.time)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def decoder(self) -> AvroDecoder | None:
        """The worker's Avro decoder for the source's registry; None for a JSON source."""
        return decoder_for(self.source, self.settings) if self.source.value_format == "avro" else None


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    source: str
    record_count: int
    landed: int
    dead_letters: int
    files: tuple[str, ...]
    bytes_written: int
    seconds: float
    signals: int = 0
    anomalies: int = 0


@dataclass(frozen=True, slots=True)
class _Invocation:
    """One invocation in flight: its context, records, their offset spans, and when it started."""

    context: ProcessingContext
    records: Sequence[KafkaRecord]
    spans: OffsetSpans
    started: float
    now_ms: int


def handle_batch(context: ProcessingContext, records: Sequence[KafkaRecord]) -> BatchOutcome:
    """Land one batch without keyed state. Bad records are dead-lettered; only lake failures raise."""
    invocation = _begin(context, records)
    with _watched(invocation):
        if context.source.name in ENTITY_KINDS:  # N is recorded before a keyed source's first landing
            bucket_counts(context.lake, *state_bucket_settings(context.settings)).of(context.source.name)
        columnar = format_named(context.source_settings.format).takes_tables
        batch = process_batch(
            context.source,
            records,
            max_record_bytes=context.settings.max_record_bytes,
            columnar=columnar,
            decoder=context.decoder(),
        )
        return _land(invocation, batch)


async def handle_batch_with_state(
    context: ProcessingContext,
    records: Sequence[KafkaRecord],
    state: StateGateway | None,
    joiner: StateJoiner,
) -> BatchOutcome:
    """Land one batch and update its keys' entities: one lookup and one signal per key bucket.

    With ``state`` None (``<SOURCE>_STATE_ENABLED=false``), or for a source no entity keeps (a Datagen config's,
    whose ``STATE_ENABLED`` is then ignored: ``registry.keeps_state``), the batch only lands, off the event loop.
    """
    if state is None or not keeps_state(context.source.name, state_enabled=True):
        return await asyncio.to_thread(handle_batch, context, records)
    invocation = _begin(context, records)
    with _watched(invocation):
        return await _with_state(invocation, state, joiner)


def _begin(context: ProcessingContext, records: Sequence[KafkaRecord]) -> _Invocation:
    return _Invocation(context, records, offset_spans(records), time.perf_counter(), context.now_ms())


@contextmanager
def starting(source: str, records: Sequence[KafkaRecord]) -> Iterator[None]:
    """Around what an invocation does before its batch is handled (its lake client, its context): a failure there
    (a setting the lake needs, missing or refused) makes the batch's partitions wait, loudly and counted, as one
    while it is handled does; it failed every invocation with no failure metric, so no alert fired."""
    try:
        yield
    except Exception as error:
        stalls.failed(source, offset_spans(records), error)
        raise


@contextmanager
def _watched(invocation: _Invocation) -> Iterator[None]:
    """Tell the stall watch how the invocation ended: a failure makes its partitions wait (loudly)."""
    source = invocation.context.source.name
    try:
        yield
    except Exception as error:
        stalls.failed(source, invocation.spans, error)
        raise
    stalls.succeeded(source, invocation.spans)


async def _with_state(invocation: _Invocation, state: StateGateway, joiner: StateJoiner) -> BatchOutcome:
    context = invocation.context
    source = context.source
    buckets = await _bucket_counts(context)
    limit, decoder = context.settings.max_record_bytes, context.decoder()
    batch = process_batch(source, invocation.records, max_record_bytes=limit, keyed=True, decoder=decoder)
    gateway = _RecordIsolatingGateway(state)
    rows = batch.rows()
    joined = await _state_call(joiner.join(gateway, source.name, rows, buckets), "read entity state")
    outcome, report = await asyncio.to_thread(_land_and_report, invocation, batch)
    in_raw = await asyncio.to_thread(_in_raw, invocation, batch, rows, report.rejected_in_raw)
    signalled = _signalled(rows, report.not_in_raw(), in_raw.rows)
    lives = {
        (part.topic_partition.topic, part.topic_partition.partition, life): span
        for part in batch
        if part.earlier
        for life, span in part.life_spans().items()
    }
    count = buckets.get(source.name)
    signals = signals_for(
        source.name, signalled, invocation.spans, buckets=count, life_spans=lives, now_ms=invocation.now_ms
    )
    if in_raw.not_found and count:
        signals = with_owed(source.name, signals, in_raw.owed(), count)
    signals = within_size(with_holes(signals, report.holes_by_life()))
    await _state_call(send_signals(gateway, signals), "signal entities")
    if gateway.rejected:
        await _owe_refused(gateway)
    if gateway.rejected or in_raw.not_found:
        rejected = _Rejected(gateway.rejected, report.not_in_raw(), in_raw)
        await asyncio.to_thread(_dead_letter_rejected, invocation, batch, rejected)
    telemetry().record_state(source.name, signals=len(signals), late=joined.late, anomalies=joined.anomalies)
    return dataclasses.replace(outcome, signals=len(signals), anomalies=joined.anomalies)


@dataclass(frozen=True, slots=True)
class _InRaw:
    """Records this delivery rejected whose rows an earlier delivery landed: the rows raw/ holds of them, which
    count as any landed row does, and those not found where they were looked for (owed to every bucket)."""

    found: list[tuple[DeadLetter, Row]]
    not_found: dict[Identity, DeadLetter]

    @property
    def rows(self) -> list[Row]:
        return [row for _, row in self.found]

    def owed(self) -> dict[PartitionLife, set[int]]:
        """The offsets of the records not found, by partition life."""
        owed: dict[PartitionLife, set[int]] = {}
        for topic, partition, life, offset in self.not_found:
            owed.setdefault((topic, partition, life), set()).add(offset)
        return owed


def _in_raw(invocation: _Invocation, batch: ProcessedBatch, rows: list[Row], rejected: Sequence[DeadLetter]) -> _InRaw:
    """The rows raw/ holds of ``rejected``, looked for in the hours of their Kafka timestamps and of the batch's rows
    (their own event hour cannot be read from a record this delivery rejects, but is almost always one of those)."""
    if not rejected:
        return _InRaw([], {})
    parts = {part.topic_partition: part for part in batch}
    wanted: dict[Identity, DeadLetter] = {}
    for letter in rejected:
        record = letter.record
        life = parts[record.topic_partition].life_of(record.offset)
        wanted[(record.topic, record.partition, life, record.offset)] = letter
    hours = {hour_start_ms(letter.record.timestamp_ms or 0) for letter in rejected}
    hours.update(hour_start_ms(row["_event_time"]) for row in rows)
    unreadable: dict[Identity, str] = {}
    found = raw_rows(invocation.context.lake, batch.source.name, wanted, hours=hours, unreadable=unreadable)
    for why in sorted(set(unreadable.values())):
        log.warning("raw file %s; the rows it holds are not counted from it", why)
    found = {identity: row | {"_incarnation": identity[2]} for identity, row in found.items()}
    if found:
        log.warning(
            "%d records of %s this delivery rejected landed as rows before; state counts the rows raw/ holds",
            len(found),
            batch.source.name,
        )
    return _InRaw(
        [(letter, found[item]) for item, letter in wanted.items() if item in found],
        {item: letter for item, letter in wanted.items() if item not in found},
    )


async def _owe_refused(gateway: _RecordIsolatingGateway) -> None:
    """Tell each bucket whose ``apply`` the entity API refused which offsets it owes (``owing``): a signal of
    ranges alone, so that ``tools.redrive`` re-applies the refused events once, however many signals come
    between. One refused too leaves the offsets a gap, which the bucket closes after ``KEPT_RANGES`` more."""
    owing_gateway = _RecordIsolatingGateway(gateway.state)
    await _state_call(send_signals(owing_gateway, [owing(signal) for signal, _ in gateway.rejected]), "signal entities")
    for signal, detail in owing_gateway.rejected:
        log.error("entity refused what bucket %s owes too, a gap now: %s", signal.key, detail)


async def _bucket_counts(context: ProcessingContext) -> dict[str, int]:
    """N of the buckets this source's invocations use (its own, its lookup's), read from the lake once per worker."""
    counts = bucket_counts(context.lake, *state_bucket_settings(context.settings))
    sources = state_sources(context.source.name)
    known = counts.known(sources)
    return known if known is not None else await asyncio.to_thread(counts.resolve, sources)


def _signalled(rows: list[Row], not_in_raw: set[tuple[str, int, int]], from_raw: list[Row]) -> list[Row]:
    """The rows whose events reach the entities: all but those raw/ does not hold (dead-lettered now or before),
    and the rows raw/ holds of records this delivery rejected, in offset order within each partition."""
    kept = (
        rows if not not_in_raw else [r for r in rows if (r["_topic"], r["_partition"], r["_offset"]) not in not_in_raw]
    )
    if not from_raw:
        return kept
    return sorted([*kept, *from_raw], key=lambda r: (r["_topic"], r["_partition"], r["_incarnation"], r["_offset"]))


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

    async def read(self, entity: str, key: str) -> Any:
        try:
            return await self.state.read(entity, key)
        except Exception as error:
            if _entity_error(error, f"read entity state ({entity})") is ErrorClass.RECORD:
                log.warning("entity read refused for one key, treated as no state: %s %r: %s", entity, key, error)
                return None
            raise

    async def signal(self, signal: Signal) -> None:
        try:
            await self.state.signal(signal)
        except Exception as error:
            if _entity_error(error, f"signal entities ({signal.entity})") is ErrorClass.RECORD:
                self.rejected.append((signal, f"{type(error).__name__}: {error}"[:1000]))
                return
            raise


def _entity_error(error: Exception, action: str) -> ErrorClass:
    """``ErrorClass.RECORD`` for a per-key refusal; otherwise raises the error's class (transient or infrastructure)."""
    error_class = classify_entity_error(error)
    if error_class is ErrorClass.TRANSIENT:
        raise TransientError(f"{action}: {error}") from error
    if error_class is ErrorClass.INFRASTRUCTURE:
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


@dataclass(frozen=True, slots=True)
class _Rejected:
    """The signals the entity API refused, the rows no signal carried because raw/ does not hold them, and the
    records raw/ holds rows of that this delivery rejected: their rows read from raw/ (signalled with the batch's),
    and those not found (owed to every bucket)."""

    signals: list[tuple[Signal, str]]
    not_in_raw: set[tuple[str, int, int]]
    in_raw: _InRaw


def _dead_letter_rejected(invocation: _Invocation, batch: ProcessedBatch, rejected: _Rejected) -> None:
    """Dead-letter as ``entity_rejected`` the records raw/ holds whose entity has not counted them: their
    ``apply`` was refused (rows of the batch, or rows read from raw/ of records this delivery rejected), or this
    delivery rejected them and their rows were not found. ``tools.redrive`` re-applies them from raw/.

    Each gets its own file (``plan_entity_rejected``) beside the batch's dead letters, so a redelivered
    batch, however it is cut, finds it there rather than adding one.
    """
    source = batch.source
    entity_key = source.entity_key
    refused: dict[tuple[str, str, int], list[tuple[int, int, str]]] = {}
    for signal, refused_for in rejected.signals:
        for key, topic, partition, low, high in members(signal):
            refused.setdefault((key, topic, partition), []).append((low, high, refused_for))

    def refusal(row: Row) -> str | None:
        offset = row["_offset"]
        ranges = refused.get((str(entity_key(row)), row["_topic"], row["_partition"]), ())
        return next((why for low, high, why in ranges if low <= offset <= high), None)

    letters: list[tuple[DeadLetter, int]] = []
    for part in batch if refused else ():
        for row, origin in zip(part.to_rows(), part.origins, strict=True):
            detail = refusal(row)
            if detail is not None and (origin.topic, origin.partition, origin.offset) not in rejected.not_in_raw:
                why = f"landed in raw/, but the entity refused its update: {detail}"
                letters.append((DeadLetter(origin, Reason.ENTITY_REJECTED, why), row["_incarnation"]))
    for letter, row in rejected.in_raw.found if refused else ():
        detail = refusal(row)
        if detail is not None:
            why = f"landed in raw/ by an earlier delivery (this one rejected it); the entity refused it: {detail}"
            letters.append((DeadLetter(letter.record, Reason.ENTITY_REJECTED, why[:1000]), row["_incarnation"]))
    for (_, _, life, _), letter in rejected.in_raw.not_found.items():
        why = f"landed in raw/ by an earlier delivery; this one rejected it ({letter.reason}: {letter.detail})"
        letters.append((DeadLetter(letter.record, Reason.ENTITY_REJECTED, why[:1000]), life))
    now_ms = invocation.now_ms
    land(invocation.context.lake, [plan_entity_rejected(source, letter, life, now_ms) for letter, life in letters])
    telemetry().record_dead_letters(source.name, {Reason.ENTITY_REJECTED: len(letters)})
    log.error(
        "entity refused %d signals of %s, %d records raw/ holds rejected by this delivery; %d dead-lettered as"
        " entity_rejected",
        len(rejected.signals),
        source.name,
        len(rejected.in_raw.found) + len(rejected.in_raw.not_found),
        len(letters),
    )


def _land(invocation: _Invocation, batch: ProcessedBatch) -> BatchOutcome:
    return _land_and_report(invocation, batch)[0]


def _land_and_report(invocation: _Invocation, batch: ProcessedBatch) -> tuple[BatchOutcome, LandingReport]:
    context = invocation.context
    fmt = format_named(context.source_settings.format)
    lease = context.settings.landing_lease_seconds
    report = land_once(context.lake, batch, fmt, now_ms=invocation.now_ms, lease_seconds=lease)
    source = batch.source.name
    outcome = BatchOutcome(
        source,
        batch.record_count,
        report.row_count,
        report.dead_letter_count,
        report.files,
        report.bytes_written,
        time.perf_counter() - invocation.started,
    )
    reasons = [letter.reason for letter in batch.dead_letters] + [letter.reason for letter in report.unencodable]
    telemetry().record_batch(
        BatchMetrics(
            source=source,
            received=batch.record_count,
            landed=report.row_count,
            dead_letters=count_reasons(reasons),
            duration_ms=outcome.seconds * 1000,
            event_times_ms=_latency_samples(batch),
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
                "records": outcome.record_count,
                "landed": outcome.landed,
                "dead_letters": outcome.dead_letters,
                "files": len(outcome.files),
                "skipped": report.skipped,
                "offsets": ",".join(
                    f"{t}/{p}:{low}-{high}" for (t, p), (low, high) in sorted(invocation.spans.items())
                ),
            },
        )
    return outcome, report


def _latency_samples(batch: ProcessedBatch) -> list[int]:
    """The landing times of up to ``LATENCY_SAMPLES`` rows spread over the batch."""
    samples: list[int] = []
    per_part = max(1, LATENCY_SAMPLES // max(1, len(batch.partitions)))
    for part in batch:
        samples.extend(part.event_times_ms(sample(range(part.row_count), per_part)))
    return samples[:LATENCY_SAMPLES]
