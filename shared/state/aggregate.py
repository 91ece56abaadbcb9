"""Pre-aggregation: one entity signal per distinct key (and topic-partition) per batch, never one per event."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.sources import get_source
from shared.sources.base import Row
from shared.state.registry import entity_for


@dataclass(frozen=True, slots=True)
class Signal:
    entity: str
    key: str
    operation: str
    payload: dict[str, Any]


def signals_for(
    source_name: str, rows: list[Row], ranges: Mapping[tuple[str, int], tuple[int, int]] | None = None
) -> list[Signal]:
    """The ``apply`` signals for a batch's landed rows; [] for a source without state.

    Rows arrive in offset order within each partition (as the trigger delivers them), so each
    signal's events are in offset order too. ``ranges`` is each partition's offset range in the
    batch (all records, landed or not); a signal carries its partition's range and incarnation
    so the entity can tell which offsets it has applied (``shared.state.offsets``).
    """
    kind = entity_for(source_name)
    if kind is None or not rows:
        return []
    entity_key, compact = get_source(source_name).entity_key, kind.compact
    grouped: dict[tuple[str, str, int, int], list[list[Any]]] = {}
    for row in rows:
        group = (str(entity_key(row)), row["_topic"], row["_partition"], row["_incarnation"])
        events = grouped.get(group)
        if events is None:
            grouped[group] = [compact(row)]
        else:
            events.append(compact(row))
    ranges = ranges or {}
    return [
        Signal(kind.name, key, "apply", _payload(topic, partition, incarnation, events, ranges.get((topic, partition))))
        for (key, topic, partition, incarnation), events in grouped.items()
    ]


def _payload(
    topic: str, partition: int, incarnation: int, events: list[list[Any]], batch_range: tuple[int, int] | None
) -> dict[str, Any]:
    low, high = batch_range or (events[0][0], events[-1][0])
    return {"topic": topic, "partition": partition, "incarnation": incarnation, "range": [low, high], "events": events}
