"""Which entity holds each source's state, and how a landed row becomes an entity event."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.sources.base import Row
from shared.state import device_activity, sensor_stats, user_activity, user_profile

Reducer = Callable[[dict[str, Any], str, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class EntityKind:
    name: str
    source: str
    compact: Callable[[Row], list[Any]]
    reduce: Reducer


ENTITY_KINDS: dict[str, EntityKind] = {
    kind.source: kind
    for kind in (
        EntityKind(user_activity.ENTITY, "clickstream", user_activity.compact, user_activity.reduce),
        EntityKind(device_activity.ENTITY, "mobile", device_activity.compact, device_activity.reduce),
        EntityKind(sensor_stats.ENTITY, "sensors", sensor_stats.compact, sensor_stats.reduce),
        EntityKind(user_profile.ENTITY, "users", user_profile.compact, user_profile.reduce),
    )
}


def entity_for(source: str) -> EntityKind | None:
    return ENTITY_KINDS.get(source)
