"""The exactly-once guard: per topic-partition, the last offset an entity has applied.

A redelivered batch can be cut differently (first 0-99, then 0-149), so a pre-summed batch
could not be partly de-duplicated. Payloads therefore carry the key's events themselves, each
with its offset; only events past the mark are applied, then the mark advances.
"""

from __future__ import annotations

from typing import Any

MARKS = "_offsets"


def partition_id(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


def unapplied(state: dict[str, Any], payload: dict[str, Any]) -> list[list[Any]]:
    """The payload's events (``[offset, ...]`` lists) the entity has not applied yet."""
    mark = state.get(MARKS, {}).get(partition_id(payload["topic"], payload["partition"]), -1)
    return [event for event in payload["events"] if event[0] > mark]


def advance(state: dict[str, Any], payload: dict[str, Any]) -> None:
    """Record the payload's last offset as applied (never moves backwards)."""
    marks = state.setdefault(MARKS, {})
    key = partition_id(payload["topic"], payload["partition"])
    last = max((event[0] for event in payload["events"]), default=-1)
    marks[key] = max(marks.get(key, -1), last)
