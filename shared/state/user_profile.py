"""Per user: the latest profile from the ``users`` topic (the table side of the stream-table join).

Signals are not ordered, so "latest" is decided by position, not by arrival, and the result
depends only on which records were applied: within a topic-partition the record of the highest
(incarnation, offset) wins; across partitions (a key that moved, or a renamed topic) the newest
record of each partition is kept and the one with the latest event time wins (then the higher
topic-partition). ``latest`` records where the kept profile came from; the newest record of
each other partition the key has been seen in is kept under ``others`` (absent for a key seen
in one partition, the usual case).
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


def fold(state: dict[str, Any], events: list[list[Any]], part: dict[str, Any]) -> None:
    """Take in one batch's profile records of this user not applied before; the latest by position wins."""
    topic, partition, incarnation = part["topic"], part["partition"], part.get("incarnation", 0)
    newest = _newest_by_partition(state)
    for offset, event_ms, profile in events:
        state["updates"] = state.get("updates", 0) + 1
        held = newest.get((topic, partition))
        if held is None or [incarnation, offset] > held[0][2:4]:
            newest[(topic, partition)] = ([topic, partition, incarnation, offset, event_ms], profile)
    ranked = sorted(newest.values(), key=lambda entry: (entry[0][4], entry[0][0], entry[0][1]), reverse=True)
    (state["latest"], state["profile"]), others = ranked[0], ranked[1:]
    if others:
        state["others"] = [[latest, profile] for latest, profile in others]
    else:
        state.pop("others", None)


def _newest_by_partition(state: dict[str, Any]) -> dict[tuple[str, int], tuple[list[Any], Any]]:
    """The newest record of each topic-partition the key was seen in: ``(latest, profile)``."""
    newest: dict[tuple[str, int], tuple[list[Any], Any]] = {}
    if "latest" in state:
        newest[(state["latest"][0], state["latest"][1])] = (state["latest"], state.get("profile"))
    for latest, profile in state.get("others", []):
        newest[(latest[0], latest[1])] = (latest, profile)
    return newest


reduce = per_key_reduce(ENTITY, fold)
