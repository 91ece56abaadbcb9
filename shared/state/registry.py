"""Each source's keyed state, declared once: which entity holds it, how a landed row becomes an
entity event, what the source's rows read from state before they land (``lookup``), and how many
key buckets a new deployment spreads its keys over (``buckets``).

``buckets`` is a power of two whose fullest bucket stays under 256 KB of state at 100,000
uniform keys, measured with ``bench/state.py scale`` (bench/README.md): about 300 B a key for
clicks and profiles and 480 B for devices fit in 256 buckets (124, 110 and 209 KB at the fullest;
128 would be ~241 and ~214 KB for clicks and profiles, too near the ceiling for state that grows
with a key's sessions); a sensor's hour of one-minute windows, about 1.9 KB, needs 1,024 (244 KB).
Fewer buckets mean fewer entity operations per batch (``shared.state.buckets``).
"""

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
    buckets: int
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
            256,
            USER_PROFILE,
        ),
        EntityKind(
            device_activity.ENTITY,
            "mobile",
            device_activity.compact,
            device_activity.fold,
            device_activity.reduce,
            256,
        ),
        EntityKind(
            sensor_stats.ENTITY,
            "sensors",
            sensor_stats.compact,
            sensor_stats.fold,
            sensor_stats.reduce,
            1024,
            SENSOR_STATS,
        ),
        EntityKind(user_profile.ENTITY, "users", user_profile.compact, user_profile.fold, user_profile.reduce, 256),
    )
}


def entity_for(source: str) -> EntityKind | None:
    return ENTITY_KINDS.get(source)


def source_of_entity(entity: str) -> str:
    """The source whose keyed state entity kind ``entity`` holds (e.g. a lookup's entity)."""
    for kind in ENTITY_KINDS.values():
        if kind.name == entity:
            return kind.source
    raise KeyError(f"no source keeps its state in entity {entity!r}")


def state_sources(source: str) -> list[str]:
    """The keyed sources whose buckets ``source``'s invocations use: its own, and the one its lookup reads."""
    kind = ENTITY_KINDS.get(source)
    if kind is None:
        return []
    read = source_of_entity(kind.lookup.entity) if kind.lookup else source
    return sorted({source, read})
