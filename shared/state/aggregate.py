"""Pre-aggregation: one entity signal per distinct key (and topic-partition) per batch, never one per event."""

from __future__ import annotations

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


def signals_for(source_name: str, rows: list[Row]) -> list[Signal]:
    """The ``apply`` signals for a batch's landed rows; [] for a source without state.

    Rows arrive in offset order within each partition (as the trigger delivers them), so each
    signal's events are in offset order too.
    """
    kind = entity_for(source_name)
    if kind is None or not rows:
        return []
    entity_key, compact = get_source(source_name).entity_key, kind.compact
    grouped: dict[tuple[str, str, int], list[list[Any]]] = {}
    for row in rows:
        group = (str(entity_key(row)), row["_topic"], row["_partition"])
        events = grouped.get(group)
        if events is None:
            grouped[group] = [compact(row)]
        else:
            events.append(compact(row))
    return [
        Signal(kind.name, key, "apply", {"topic": topic, "partition": partition, "events": events})
        for (key, topic, partition), events in grouped.items()
    ]
