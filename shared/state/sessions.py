"""Sessions by inactivity: an event more than 30 minutes after the previous one starts a new session."""

from __future__ import annotations

from typing import Any

INACTIVITY_MS = 30 * 60 * 1000
KEPT_SESSIONS = 10


def add_to_session(state: dict[str, Any], event_ms: int, detail: str | None = None) -> None:
    """Extend the current session with an event, or close it and open a new one.

    Events older than the current session's start (late, out of order) extend nothing; they
    are counted in ``late_to_session`` so the totals still add up.
    """
    current = state.get("session")
    if current is not None and event_ms < current["start"]:
        state["late_to_session"] = state.get("late_to_session", 0) + 1
        return
    if current is not None and event_ms - current["end"] <= INACTIVITY_MS:
        current["end"] = max(current["end"], event_ms)
        current["events"] += 1
        if detail is not None:
            current["last"] = detail
        return
    if current is not None:
        closed = state.setdefault("closed_sessions", [])
        closed.append(current)
        del closed[:-KEPT_SESSIONS]
        state["sessions_closed"] = state.get("sessions_closed", 0) + 1
    state["session"] = {"start": event_ms, "end": event_ms, "events": 1, "last": detail}
