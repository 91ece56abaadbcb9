"""A user's profile is the same whatever order the bucket's signals arrive in: within a partition the
highest offset wins, across partitions the latest event time, and the result depends only on what was applied."""

from __future__ import annotations

from itertools import permutations
from typing import Any

from shared.state.bucket_state import key_state
from tests.unit.functions.test_entities import run_entity

BUCKET, KEY = "~b0of1", "u1"


def _signal(partition: int, offset: int, event_ms: int, city: str, incarnation: int = 0) -> dict[str, Any]:
    profile = {"username": KEY, "first_name": None, "last_name": None, "city": city, "level": "Gold"}
    part = {"topic": "users", "partition": partition, "incarnation": incarnation, "range": [offset, offset]}
    return {"parts": [part | {"keys": {KEY: [[offset, event_ms, profile | {"registered_at": None}]]}}]}


def _kept(payloads: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    state, results = run_entity("user_profile", None, [("apply", payload) for payload in payloads], key=BUCKET)
    assert not any(result["isError"] for result in results), results
    held = key_state(state, KEY)
    assert held is not None and held["updates"] == len(payloads)
    return held


def test_the_kept_profile_does_not_depend_on_the_order_signals_arrive_in() -> None:
    """Partition 0: offset 1 at time 300, then offset 2 at time 100 (producer clocks are not monotonic);
    partition 1 (the key moved): offset 0 at time 200. Partition 0's newest is offset 2 (time 100), so
    partition 1's record, at 200, is the latest."""
    signals = (_signal(0, 1, 300, "A"), _signal(0, 2, 100, "B"), _signal(1, 0, 200, "C"))
    kept = {_summary(_kept(order)) for order in permutations(signals)}
    assert kept == {("C", ("users", 1, 0, 0, 200), (("users", 0, 0, 2, 100), "B"))}


def test_a_key_seen_in_one_partition_keeps_one_profile() -> None:
    held = _kept((_signal(0, 2, 100, "B"), _signal(0, 1, 300, "A")))
    assert held["profile"]["city"] == "B" and held["latest"] == ["users", 0, 0, 2, 100] and "others" not in held


def _summary(held: dict[str, Any]) -> tuple[Any, ...]:
    """The kept profile's city, where it came from, and the other partitions' newest, as hashable values."""
    others = tuple((tuple(latest), profile["city"]) for latest, profile in held.get("others", []))
    return (held["profile"]["city"], tuple(held["latest"]), *others)


def test_a_record_of_the_partitions_next_incarnation_wins_over_a_higher_offset_of_the_one_before() -> None:
    """The topic was recreated: its offsets restarted at 0. Offset 0 of incarnation 1 is newer than offset 5 of
    incarnation 0, in either order of arrival."""
    signals = (_signal(0, 5, 100, "Old"), _signal(0, 0, 50, "New", incarnation=1))
    kept = {_summary(_kept(order)) for order in permutations(signals)}
    assert kept == {("New", ("users", 0, 1, 0, 50))}


def test_records_of_two_partitions_at_the_same_event_time_go_to_the_higher_partition() -> None:
    """A tie in event time is broken by topic-partition, so the kept profile does not depend on arrival order."""
    signals = (_signal(0, 1, 100, "A"), _signal(1, 1, 100, "B"))
    kept = {_summary(_kept(order))[:2] for order in permutations(signals)}
    assert kept == {("B", ("users", 1, 0, 1, 100))}
