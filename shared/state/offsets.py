"""The exactly-once guard of every entity: which offsets of each topic-partition it has applied.

A payload carries one batch's events of this key, each with its offset, and the batch's whole
offset ``range`` for the partition (every event of the key in that range is in the payload).
The entity applies the events whose offsets it has not applied yet, then adds the range to
its applied ranges. Signals may arrive twice, late or out of order (Durable Functions does
not order a client's signals): each event still counts once.

Ranges of one key merge when batches with its events follow each other; where a key had no
events, gaps stay. At most ``KEPT_RANGES`` ranges are kept per partition: the oldest gaps are
closed first, so only a signal overtaken by that many newer signals of the same key would be
ignored. Ranges are kept per incarnation (``shared.landing.ledger``): a topic whose offsets
restart is counted afresh.
"""

from __future__ import annotations

from typing import Any

from shared.offset_ranges import OffsetRanges, add, contains

APPLIED = "_applied"
LEGACY_MARKS = "_offsets"  # state written before ranges: the highest offset applied per partition
KEPT_RANGES = 32


def partition_id(topic: str, partition: int, incarnation: int = 0) -> str:
    return f"{topic}/{partition}/{incarnation}"


def _applied(state: dict[str, Any]) -> dict[str, OffsetRanges]:
    applied: dict[str, OffsetRanges] = state.setdefault(APPLIED, {})
    for legacy, mark in state.pop(LEGACY_MARKS, {}).items():
        if mark >= 0:
            applied[f"{legacy}/0"] = add(applied.get(f"{legacy}/0", []), 0, mark)
    return applied


def _position(payload: dict[str, Any]) -> str:
    return partition_id(payload["topic"], payload["partition"], payload.get("incarnation", 0))


def unapplied(state: dict[str, Any], payload: dict[str, Any]) -> list[list[Any]]:
    """The payload's events (``[offset, ...]`` lists) the entity has not applied yet."""
    ranges = _applied(state).get(_position(payload), [])
    if not ranges:
        return list(payload["events"])
    return [event for event in payload["events"] if not contains(ranges, event[0])]


def advance(state: dict[str, Any], payload: dict[str, Any]) -> None:
    """Record the payload's offset range as applied."""
    events = payload["events"]
    low, high = payload.get("range") or (min(e[0] for e in events), max(e[0] for e in events))
    applied = _applied(state)
    position = _position(payload)
    applied[position] = add(applied.get(position, []), low, high, limit=KEPT_RANGES)
