"""Each source's keyed state, declared once: which entity holds it, how a landed row becomes an
entity event, what the source's rows read from state before they land (``lookup``), how many key
buckets a new deployment spreads its keys over (``buckets``), and how a key's state written by an
earlier version is put in today's form when it is moved (``upgrade``).

``buckets`` is a power of two whose fullest bucket stays under 256 KB at 100,000
uniform keys with every key at its steady-state size (``bench/state_scale.bucket_bound``, checked
by tests/unit/bench/test_state_scale.py): a click user's three kept sessions ~460 B, a device's
~610 B, a profile ~250 B, a sensor's hour of one-minute windows at 1.41 readings a minute (10,000
events/s, sensors 23.5% of the mix) ~970 B. So 256 buckets for clickstream and users (fullest ~204 and
~111 KB; 128 would put users at ~212 KB, near the ceiling for longer names), 512 for mobile and
sensors (~142 and ~226 KB; sensors read more often than that need more, docs/scale.md). Fewer
buckets mean fewer entity operations per batch (``shared.state.buckets``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.source_model import Row
from shared.state import device_activity, sensor_stats, sessions, user_activity, user_profile
from shared.state.joins import SENSOR_STATS, USER_PROFILE, Lookup
from shared.state.offsets import Fold, Reducer


@dataclass(frozen=True)
class EntityKind:
    """``fold`` takes a key's new events into its state; ``reduce`` is the per-key entity of the previous layout."""

    name: str
    source: str
    compact: Callable[[Row], list[Any]]  # a row as its event: [offset, event_ms, ...]
    fold: Fold
    reduce: Reducer
    buckets: int
    lookup: Lookup | None = None  # read before landing (a join), e.g. clicks read their user's profile
    upgrade: Callable[[dict[str, Any]], dict[str, Any]] = dict  # a key's state in today's stored form (migration)


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
            sessions.upgrade,
        ),
        EntityKind(
            device_activity.ENTITY,
            "mobile",
            device_activity.compact,
            device_activity.fold,
            device_activity.reduce,
            512,
            upgrade=sessions.upgrade,
        ),
        EntityKind(
            sensor_stats.ENTITY,
            "sensors",
            sensor_stats.compact,
            sensor_stats.fold,
            sensor_stats.reduce,
            512,
            SENSOR_STATS,
            sensor_stats.upgrade,
        ),
        EntityKind(user_profile.ENTITY, "users", user_profile.compact, user_profile.fold, user_profile.reduce, 256),
    )
}


def entity_for(source: str) -> EntityKind | None:
    return ENTITY_KINDS.get(source)


def keeps_state(source: str, state_enabled: bool) -> bool:
    """Whether ``source``'s records go to keyed state: its ``<SOURCE>_STATE_ENABLED`` is on and it has an entity kind
    (for a source without one, such as a Datagen config's, the setting is ignored: nothing would take its keys)."""
    return state_enabled and source in ENTITY_KINDS


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
