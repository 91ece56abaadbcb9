"""Per mobile device: sessions by inactivity, event-type counts, last screen, app versions and OS seen."""

from __future__ import annotations

from typing import Any

from shared.source_model import Row
from shared.state.counters import count, seen
from shared.state.offsets import per_key_reduce
from shared.state.sessions import add_to_session

ENTITY = "device_activity"
KEPT_VERSIONS = 10


def compact(row: Row) -> list[Any]:
    """``[offset, event_ms, event_type, screen, app_version, os]``."""
    return [row["_offset"], row["_event_time"], row["event_type"], row["screen"], row["app_version"], row["os"]]


def _remember(values: list[str], value: str) -> None:
    if value not in values:
        values.append(value)
        del values[:-KEPT_VERSIONS]


def fold(state: dict[str, Any], events: list[list[Any]], part: dict[str, Any]) -> None:
    """Take in one batch's events of this device not applied before (in the order ``bucket_state.apply`` gives)."""
    for _offset, event_ms, event_type, screen, app_version, os_name in events:
        state["events"] = state.get("events", 0) + 1
        count(state, "event_types", event_type)
        if event_ms >= state.get("last_seen", event_ms):
            state["last_screen"] = screen
        _remember(state.setdefault("app_versions", []), app_version)
        _remember(state.setdefault("os_seen", []), os_name)
        seen(state, event_ms)
        add_to_session(state, event_ms, screen)


reduce = per_key_reduce(ENTITY, fold)
