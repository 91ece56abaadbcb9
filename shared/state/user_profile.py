"""Per user: the latest profile from the ``users`` topic (the table side of the stream-table join)."""

from __future__ import annotations

from typing import Any

from shared.sources.base import Row
from shared.state.offsets import advance, unapplied

ENTITY = "user_profile"
PROFILE_FIELDS = ("username", "first_name", "last_name", "city", "level", "registered_at")


def compact(row: Row) -> list[Any]:
    """``[offset, event_ms, {profile fields}]``."""
    return [row["_offset"], row["_event_time"], {name: row.get(name) for name in PROFILE_FIELDS}]


def reduce(state: dict[str, Any], operation: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Called by the entity for each ``apply`` signal: the latest record in offset order wins."""
    if operation != "apply":
        raise ValueError(f"{ENTITY} has no operation {operation!r}")
    for _offset, _event_ms, profile in unapplied(state, payload):
        state["profile"] = profile
        state["updates"] = state.get("updates", 0) + 1
    advance(state, payload)
    return state
