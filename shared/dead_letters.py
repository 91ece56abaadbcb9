"""A record that cannot land, and every reason it can be dead-lettered for (docs/reliability.md)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.records import KafkaRecord

REASONS = (
    "null_value",
    "oversized",
    "not_utf8",
    "not_json",
    "not_avro",
    "unknown_schema",
    "schema",
    "transform_error",
    "bad_key",
    "unencodable",
    "entity_rejected",
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: KafkaRecord
    reason: str  # see REASONS
    detail: str
