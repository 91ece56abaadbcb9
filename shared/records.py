"""A Kafka record as the core sees it, whoever delivered it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """One consumed record. ``value`` is the raw bytes (``None`` for a tombstone)."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes | None
    timestamp_ms: int | None
