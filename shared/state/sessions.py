"""Sessions by inactivity: an event more than 30 minutes after the previous one starts a new session.

The state keeps the current session (``session``), the last ``KEPT_SESSIONS`` closed ones
(``closed_sessions``) and how many have closed (``sessions_closed``); every session is in the lake.
Each is stored as ``[start, end, events, last]``, a list rather than an object because a key's
state decides how many keys a bucket holds under 256 KB (``shared.state.registry``); the query API
shows them as objects (``sessions_view``). State written before holds objects: they are read as
they are and rewritten as lists, the last ``KEPT_SESSIONS`` kept, by the key's next event or a
migration (``upgrade``). ``last`` (a click's request path, a device's screen) is kept to its first
``KEPT_DETAIL`` characters: paths up to 8 KB pass the clickstream model, and four of them a user would
let a producer put ~32 KB into each key it invents, past a bucket's 256 KB at ten keys. Sessions stored
before that cap keep longer ones: they are cut, in the current and the closed sessions, by the key's next
event or a migration (``upgrade``).
"""

from __future__ import annotations

from typing import Any

INACTIVITY_MS = 30 * 60 * 1000
KEPT_SESSIONS = 3
KEPT_DETAIL = 256  # characters of a session's ``last``
FIELDS = ("start", "end", "events", "last")
START, END, EVENTS, LAST = range(4)


def _stored(session: list[Any] | dict[str, Any]) -> list[Any]:
    return [session[name] for name in FIELDS] if isinstance(session, dict) else session


def _kept(session: list[Any] | dict[str, Any]) -> list[Any]:
    """A session as stored today: a list, its ``last`` cut to ``KEPT_DETAIL`` (a new list when either changed)."""
    stored = _stored(session)
    last = stored[LAST]
    if isinstance(last, str) and len(last) > KEPT_DETAIL:
        return [*stored[:LAST], last[:KEPT_DETAIL]]
    return stored


def _restate(state: dict[str, Any]) -> None:
    """Sessions written before as objects, with more closed ones than are kept now, or with a ``last`` longer
    than is kept now (before the cap), into today's form."""
    if state.get("session") is not None:
        state["session"] = _kept(state["session"])
    closed = state.get("closed_sessions")
    if closed:
        state["closed_sessions"] = [_kept(session) for session in closed[-KEPT_SESSIONS:]]


def upgrade(state: dict[str, Any]) -> dict[str, Any]:
    """A copy of a key's state with its sessions in today's form (what its next event would store)."""
    upgraded = dict(state)
    _restate(upgraded)
    return upgraded


def add_to_session(state: dict[str, Any], event_ms: int, detail: str | None = None) -> None:
    """Extend the current session with an event, or close it and open a new one.

    Events older than the current session's start (late, out of order) extend nothing; they
    are counted in ``late_to_session`` so the totals still add up.
    """
    _restate(state)
    detail = None if detail is None else detail[:KEPT_DETAIL]
    current = state.get("session")
    if current is not None and event_ms < current[START]:
        state["late_to_session"] = state.get("late_to_session", 0) + 1
        return
    if current is not None and event_ms - current[END] <= INACTIVITY_MS:
        if detail is not None and event_ms >= current[END]:  # an older event arriving late is not the last one
            current[LAST] = detail
        current[END] = max(current[END], event_ms)
        current[EVENTS] += 1
        return
    if current is not None:
        closed = state.setdefault("closed_sessions", [])
        closed.append(current)
        del closed[:-KEPT_SESSIONS]
        state["sessions_closed"] = state.get("sessions_closed", 0) + 1
    state["session"] = [event_ms, event_ms, 1, detail]


def sessions_view(state: dict[str, Any]) -> dict[str, Any]:
    """``session`` and ``closed_sessions`` as the query API shows them: objects of start, end, events, last."""
    shown: dict[str, Any] = {}
    if state.get("session") is not None:
        shown["session"] = dict(zip(FIELDS, _stored(state["session"]), strict=True))
    if "closed_sessions" in state:
        shown["closed_sessions"] = [dict(zip(FIELDS, _stored(s), strict=True)) for s in state["closed_sessions"]]
    return shown
