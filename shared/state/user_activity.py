"""Per clickstream user (``userid``, or ``ip:<address>`` for Datagen's anonymous ``-1`` users)."""

from __future__ import annotations

from typing import Any

from shared.source_model import Row
from shared.state.counters import add_capped, count, seen
from shared.state.offsets import per_key_reduce
from shared.state.sessions import add_to_session

ENTITY = "user_activity"


def compact(row: Row) -> list[Any]:
    """What the entity needs of one click: ``[offset, event_ms, status_class, bytes, is_bot, path]``."""
    return [row["_offset"], row["_event_time"], row["status_class"], row["bytes"], row["is_bot"], row["request_path"]]


def fold(state: dict[str, Any], events: list[list[Any]], part: dict[str, Any]) -> None:
    """Take in one batch's clicks of this user not applied before (in the order ``bucket_state.apply`` gives)."""
    for _offset, event_ms, status_class, size, is_bot, path in events:
        state["page_views"] = state.get("page_views", 0) + 1
        state["bytes"] = add_capped(state.get("bytes", 0), size)
        count(state, "status_classes", status_class)
        state["bot"] = bool(state.get("bot", False) or is_bot)
        seen(state, event_ms)
        add_to_session(state, event_ms, path)


reduce = per_key_reduce(ENTITY, fold)
