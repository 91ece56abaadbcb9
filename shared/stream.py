"""One processing invocation for one source: validate, transform, land. Called by the Kafka trigger."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from shared.lake.base import LakeStore
from shared.landing import LandingReport, land, plan_files
from shared.pipeline import process_batch
from shared.records import KafkaRecord
from shared.settings import Settings, SourceSettings
from shared.sources.base import Source
from shared.telemetry import BatchMetrics, count_reasons, telemetry

log = logging.getLogger("streamingpoc.stream")


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    source: str
    records: int
    landed: int
    dead_letters: int
    files: tuple[str, ...]
    bytes_written: int
    seconds: float


def handle_batch(
    source: Source,
    records: Sequence[KafkaRecord],
    *,
    lake: LakeStore,
    settings: Settings,
    source_settings: SourceSettings,
    now_ms: int | None = None,
) -> BatchOutcome:
    """Land one batch. Bad records are dead-lettered; only lake failures raise (and are retried)."""
    started = time.perf_counter()
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    batch = process_batch(source, records, max_record_bytes=settings.max_record_bytes, now_ms=now_ms)
    report: LandingReport = land(lake, plan_files(batch, source_settings.format, now_ms=now_ms))
    outcome = BatchOutcome(
        source.name,
        batch.records,
        report.rows,
        report.dead_letters,
        report.files,
        report.bytes_written,
        time.perf_counter() - started,
    )
    telemetry().record_batch(
        BatchMetrics(
            source=source.name,
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
            "source": source.name,
            "records": outcome.records,
            "landed": outcome.landed,
            "dead_letters": outcome.dead_letters,
            "files": len(outcome.files),
            "offsets": _offset_span(records),
        },
    )
    return outcome


def _offset_span(records: Sequence[KafkaRecord]) -> str:
    spans: dict[tuple[str, int], list[int]] = {}
    for record in records:
        spans.setdefault((record.topic, record.partition), []).append(record.offset)
    return ",".join(f"{t}/{p}:{min(o)}-{max(o)}" for (t, p), o in sorted(spans.items()))
