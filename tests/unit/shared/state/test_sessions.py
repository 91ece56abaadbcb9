"""Sessions stored before the cap on ``last`` (up to 8 KB a path) are cut to it by a migration or the next event."""

from __future__ import annotations

import copy
from typing import Any

from shared.state import sessions
from shared.state.bucket_state import adopt, dump
from shared.state.sessions import KEPT_DETAIL, add_to_session

T0 = 1_795_516_200_000
MINUTE = 60_000
PATH = "/" + "a" * 8_000


def before_the_cap() -> dict[str, Any]:
    """A user's state as stored before the cap: the current session and three closed ones, each with a long path."""
    closed = [[T0 + i * 31 * MINUTE, T0 + i * 31 * MINUTE, 1, PATH + str(i)] for i in range(3)]
    current = {"start": T0 + 93 * MINUTE, "end": T0 + 93 * MINUTE, "events": 1, "last": PATH}  # or as an object
    return {"page_views": 4, "session": current, "closed_sessions": closed, "sessions_closed": 3}


def longest_last(state: dict[str, Any]) -> int:
    return max(len(session[sessions.LAST]) for session in [state["session"], *state["closed_sessions"]])


def test_an_upgrade_cuts_every_sessions_last_and_leaves_the_stored_state_as_it_was() -> None:
    stored = before_the_cap()
    upgraded = sessions.upgrade(stored)
    assert longest_last(upgraded) == KEPT_DETAIL and upgraded["session"][sessions.LAST] == PATH[:KEPT_DETAIL]
    assert stored == before_the_cap()


def test_the_next_event_cuts_the_closed_sessions_too() -> None:
    state = before_the_cap()
    add_to_session(state, T0 + 95 * MINUTE, "/x")
    assert longest_last(state) == KEPT_DETAIL and state["session"][sessions.EVENTS] == 2


def test_ten_users_migrated_from_before_the_cap_keep_their_bucket_under_256_kb() -> None:
    bucket: dict[str, Any] = {}
    adopt(bucket, {"states": {str(user): sessions.upgrade(copy.deepcopy(before_the_cap())) for user in range(10)}})
    assert len(dump(bucket)) < 256 * 1024


def test_an_event_older_than_the_sessions_end_extends_it_but_is_not_its_last() -> None:
    """Review 15: out of order within a session (T0, T0+10 min, then T0+5 min), the late event became ``last``,
    so a device's session disagreed with its own ``last_screen``."""
    state: dict[str, Any] = {}
    add_to_session(state, T0, "/home")
    add_to_session(state, T0 + 10 * MINUTE, "/cart")
    add_to_session(state, T0 + 5 * MINUTE, "/search")
    assert state["session"] == [T0, T0 + 10 * MINUTE, 3, "/cart"]
    add_to_session(state, T0 + 10 * MINUTE, "/pay")  # the same time as the end: the later arrival is the last
    assert state["session"][sessions.LAST] == "/pay"


def test_only_the_last_three_closed_sessions_are_kept_and_every_close_is_counted() -> None:
    """A key's closed sessions are bounded (its bucket's size) while ``sessions_closed`` counts every one closed."""
    state: dict[str, Any] = {}
    for index in range(6):  # six sessions, an hour apart: five close
        add_to_session(state, T0 + index * 60 * MINUTE, f"/{index}")
    assert [session[sessions.LAST] for session in state["closed_sessions"]] == ["/2", "/3", "/4"]
    assert state["sessions_closed"] == 5 and state["session"][sessions.LAST] == "/5"


def test_an_upgrade_keeps_the_newest_closed_sessions() -> None:
    """State written before with more closed sessions than are kept loses its oldest ones, not its newest."""
    closed = [{"start": T0 + i * MINUTE, "end": T0 + i * MINUTE, "events": 1, "last": f"/{i}"} for i in range(5)]
    upgraded = sessions.upgrade({"closed_sessions": closed})
    assert [session[sessions.LAST] for session in upgraded["closed_sessions"]] == ["/2", "/3", "/4"]


def test_an_event_exactly_thirty_minutes_after_the_last_or_at_the_start_extends_the_session() -> None:
    """The inactivity gap is inclusive, and an event at the session's own start is not late to it."""
    state: dict[str, Any] = {}
    add_to_session(state, T0, "/a")
    add_to_session(state, T0, "/b")
    add_to_session(state, T0 + 30 * MINUTE, "/c")
    assert state["session"] == [T0, T0 + 30 * MINUTE, 3, "/c"]
    assert "late_to_session" not in state and "closed_sessions" not in state


def test_a_new_events_detail_is_cut_when_it_is_stored() -> None:
    """A long path is cut by the event that brings it, not only by the key's next event."""
    state: dict[str, Any] = {}
    add_to_session(state, T0, PATH)
    assert state["session"][sessions.LAST] == PATH[:KEPT_DETAIL]
