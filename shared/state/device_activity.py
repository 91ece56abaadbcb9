"""Per mobile device: sessions by inactivity, event-type counts, last screen, the highest app versions and the OS
seen (at most ten of each, in version order)."""

from __future__ import annotations

import re
from typing import Any

from shared.source_model import Row
from shared.state.counters import count, seen
from shared.state.offsets import per_key_reduce
from shared.state.sessions import add_to_session

ENTITY = "device_activity"
KEPT_VERSIONS = 10
_VERSION_PARTS = re.compile(r"\d+|\D+")


def compact(row: Row) -> list[Any]:
    """``[offset, event_ms, event_type, screen, app_version, os]``."""
    return [row["_offset"], row["_event_time"], row["event_type"], row["screen"], row["app_version"], row["os"]]


def _remember(values: list[str], value: str) -> None:
    """Keep the ``KEPT_VERSIONS`` highest values seen, in version order: the same whatever order events came in
    (keeping the last ten to arrive, a late event's old version pushed a newer one out)."""
    if value not in values:
        values.append(value)
        values.sort(key=_version_order)
        del values[:-KEPT_VERSIONS]


def _version_order(value: str) -> tuple[tuple[int, int, str], ...]:
    """``1.10`` after ``1.9``: numbers compared as numbers, text as text, a number before text at one place."""
    return tuple((1, 0, part) if not part.isdigit() else (0, int(part), "") for part in _VERSION_PARTS.findall(value))


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
