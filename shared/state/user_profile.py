"""Per user: the latest profile from the ``users`` topic (the table side of the stream-table join).

Signals are not ordered, so "latest" is decided by position, not by arrival: within a
topic-partition the record of the highest (incarnation, offset) wins. ``latest`` records where
the kept profile came from; a record from another partition (a key that moved, or a renamed
topic) wins when its event time is not older.
"""

from __future__ import annotations

from typing import Any

from shared.source_model import Row
from shared.state.offsets import per_key_reduce

ENTITY = "user_profile"
PROFILE_FIELDS = ("username", "first_name", "last_name", "city", "level", "registered_at")


def compact(row: Row) -> list[Any]:
    """``[offset, event_ms, {profile fields}]``."""
    return [row["_offset"], row["_event_time"], {name: row.get(name) for name in PROFILE_FIELDS}]


def _is_newer(latest: list[Any] | None, candidate: list[Any]) -> bool:
    """``latest`` and ``candidate`` are ``[topic, partition, incarnation, offset, event_ms]``."""
    if latest is None:
        return True
    if latest[:2] == candidate[:2]:
        return bool(candidate[2:4] > latest[2:4])
    return bool(candidate[4] >= latest[4])


def fold(state: dict[str, Any], events: list[list[Any]], part: dict[str, Any]) -> None:
    """Take in one batch's profile records of this user not applied before; the latest by position wins."""
    where = [part["topic"], part["partition"], part.get("incarnation", 0)]
    for offset, event_ms, profile in events:
        state["updates"] = state.get("updates", 0) + 1
        candidate = [*where, offset, event_ms]
        if _is_newer(state.get("latest"), candidate):
            state["profile"], state["latest"] = profile, candidate


reduce = per_key_reduce(ENTITY, fold)
