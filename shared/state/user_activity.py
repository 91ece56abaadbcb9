"""Per clickstream user (``userid``, or ``ip:<address>`` for Datagen's anonymous ``-1`` users)."""

from __future__ import annotations

from typing import Any

from shared.sources.base import Row
from shared.state.counters import count, seen
from shared.state.offsets import advance, unapplied
from shared.state.sessions import add_to_session

ENTITY = "user_activity"


def compact(row: Row) -> list[Any]:
    """What the entity needs of one click: ``[offset, event_ms, status_class, bytes, is_bot, path]``."""
    return [row["_offset"], row["_event_time"], row["status_class"], row["bytes"], row["is_bot"], row["request_path"]]


def reduce(state: dict[str, Any], operation: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Called by the entity for each ``apply`` signal: one batch's clicks of this user."""
    if operation != "apply":
        raise ValueError(f"{ENTITY} has no operation {operation!r}")
    for _offset, event_ms, status_class, size, is_bot, path in unapplied(state, payload):
        state["page_views"] = state.get("page_views", 0) + 1
        state["bytes"] = state.get("bytes", 0) + size
        count(state, "status_classes", status_class)
        state["bot"] = bool(state.get("bot", False) or is_bot)
        seen(state, event_ms)
        add_to_session(state, event_ms, path)
    advance(state, payload)
    return state
