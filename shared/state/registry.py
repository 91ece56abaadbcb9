"""Each source's keyed state, declared once: which entity holds it, how a landed row becomes an
entity event, and what the source's rows read from state before they land (``lookup``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.source_model import Row
from shared.state import device_activity, sensor_stats, user_activity, user_profile
from shared.state.joins import SENSOR_STATS, USER_PROFILE, Lookup
from shared.state.offsets import Fold, Reducer


@dataclass(frozen=True)
class EntityKind:
    """``fold`` takes a key's new events into its state; ``reduce`` is the per-key entity of the previous layout."""

    name: str
    source: str
    compact: Callable[[Row], list[Any]]
    fold: Fold
    reduce: Reducer
    lookup: Lookup | None = None  # read before landing (a join), e.g. clicks read their user's profile


ENTITY_KINDS: dict[str, EntityKind] = {
    kind.source: kind
    for kind in (
        EntityKind(
            user_activity.ENTITY,
            "clickstream",
            user_activity.compact,
            user_activity.fold,
            user_activity.reduce,
            USER_PROFILE,
        ),
        EntityKind(
            device_activity.ENTITY, "mobile", device_activity.compact, device_activity.fold, device_activity.reduce
        ),
        EntityKind(
            sensor_stats.ENTITY,
            "sensors",
            sensor_stats.compact,
            sensor_stats.fold,
            sensor_stats.reduce,
            SENSOR_STATS,
        ),
        EntityKind(user_profile.ENTITY, "users", user_profile.compact, user_profile.fold, user_profile.reduce),
    )
}


def entity_for(source: str) -> EntityKind | None:
    return ENTITY_KINDS.get(source)
