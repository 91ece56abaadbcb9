"""A record that cannot land, and every reason it can be dead-lettered for (docs/reliability.md)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.records import KafkaRecord


class Reason(StrEnum):
    """Why a record was dead-lettered: its own problem, never the infrastructure's. Stored as its value."""

    NULL_VALUE = "null_value"
    OVERSIZED = "oversized"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NOT_AVRO = "not_avro"
    UNKNOWN_SCHEMA = "unknown_schema"
    SCHEMA = "schema"
    TRANSFORM_ERROR = "transform_error"
    BAD_KEY = "bad_key"
    UNENCODABLE = "unencodable"
    ENTITY_REJECTED = "entity_rejected"


REASONS = tuple(reason.value for reason in Reason)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: KafkaRecord
    reason: Reason
    detail: str
