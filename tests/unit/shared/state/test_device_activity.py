"""A device's state is what its events say, whatever order their signals come in."""

from __future__ import annotations

import itertools
from typing import Any

from shared.state import device_activity
from shared.state.bucket_state import apply, key_state

T0, MINUTE = 1_795_516_200_000, 60_000


def _signal(events: list[list[Any]]) -> dict[str, Any]:
    offsets = [event[0] for event in events]
    part = {"topic": "mobile", "partition": 0, "range": [min(offsets), max(offsets)], "keys": {"d1": events}}
    return {"parts": [part]}


def _applied(signals: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for signal in signals:
        state = apply(device_activity.fold, state, signal).state
    return key_state(state, "d1") or {}


def _tap(offset: int, version: str, os_name: str = "iOS") -> list[Any]:
    return [offset, T0 + offset * MINUTE, "tap", "home", version, os_name]


def test_a_late_event_of_an_old_version_does_not_push_a_newer_one_out() -> None:
    """Keeping the last ten versions to arrive, batch 0 applied last brought 1.0 back and lost 1.1."""
    signals = [_signal([_tap(index, f"1.{index}")]) for index in range(11)]
    in_order = _applied(signals)
    assert in_order["app_versions"] == [f"1.{index}" for index in range(1, 11)]  # 1.10 after 1.9
    assert _applied([*signals[1:], signals[0]])["app_versions"] == in_order["app_versions"]


def test_versions_and_systems_seen_are_the_same_in_any_order_of_signals() -> None:
    events = [_tap(0, "2.0"), _tap(1, "1.9", "Android"), _tap(2, "2.0-beta"), _tap(3, "1.10", "HarmonyOS")]
    seen = {
        (tuple(state["app_versions"]), tuple(state["os_seen"]))
        for order in itertools.permutations(events)
        for state in [_applied([_signal([event]) for event in order])]
    }
    assert seen == {(("1.9", "1.10", "2.0", "2.0-beta"), ("Android", "HarmonyOS", "iOS"))}


def test_of_two_events_at_the_same_time_the_later_arrival_gives_the_last_screen() -> None:
    """As the session's ``last`` does (``sessions.add_to_session``): a tie in event time goes to the later event."""
    events = [[0, T0, "tap", "home", "1.0", "iOS"], [1, T0, "tap", "cart", "1.0", "iOS"]]
    state = _applied([_signal(events)])
    assert state["last_screen"] == "cart" and state["session"][3] == "cart"


def test_at_one_place_a_number_comes_before_text() -> None:
    """``2.0`` is below ``v2.0``: where one version has a number and the other text, the number comes first."""
    state = _applied([_signal([_tap(0, "v2.0"), _tap(1, "2.0")])])
    assert state["app_versions"] == ["2.0", "v2.0"]
