"""Review G: payloads and stored state a bucket cannot take as they are, through the entity handler."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.functions.test_entities import T0, click, held, run_entity


def _part(keys: dict[str, list[list[Any]]], low: Any, high: Any, **fields: Any) -> dict[str, Any]:
    return {"topic": "clickstream", "partition": 0, "incarnation": 0, "range": [low, high], "keys": keys} | fields


def _views(state: dict[str, Any] | None, key: str = "u") -> int:
    return int(held(state, key)["page_views"])


@pytest.mark.parametrize(
    "bad",
    [
        _part({"u": [click(o) for o in range(10)]}, 9, 0),  # reversed range
        _part({"u": [click(50)]}, 0, 9),  # an event outside its part's range
        _part({"u": [click(5), click(5)]}, 0, 9),  # one offset twice
        _part({"u": [click(5)], "v": [click(5)]}, 0, 9),  # one offset for two keys
        _part({"u": [click(5)]}, -10, 2**70),
        _part({"u": [click(5)]}, 0, 2**63),
        _part({"u": [click(5)]}, "0", "9"),
        _part({"u": [click(5)]}, 0.0, 9),
        _part({"u": [click(5)]}, 0, 9, partition=0.0),
        _part({"u": [click(5)]}, 0, 9, partition=False),
        _part({"u": [click(5)]}, 0, 9, partition="00"),
        _part({"u": [click(5)]}, 0, 9, partition=-1),
        _part({"u": [click(5)]}, 0, 9, incarnation=0.0),
        _part({"u": [click(5)]}, 0, 9, incarnation=False),
        _part({"u": [click(5)]}, 0, 9, topic=7),
        _part({"u": [[5.0, T0, "2xx", 1, False, "/"]]}, 0, 9),  # a float offset
        _part({"u": [[9.5, T0, "2xx", 1, False, "/"]]}, 9, 9),
        _part({"u": [click(5)]}, 0, 9, owed=["5"]),
        _part({"u": [click(5)]}, 0, 9, holes=[[3, 1]]),
    ],
)
def test_a_part_whose_position_range_or_offsets_are_malformed_is_refused_whole(bad: dict[str, Any]) -> None:
    """Each let one offset count twice or later events be skipped: refused, nothing applied or marked."""
    base, _ = run_entity("user_activity", None, [("apply", {"parts": [_part({"u": [click(0)]}, 0, 0)]})], "~b0of1")
    good = {"parts": [_part({"u": [click(5)]}, 5, 5)]}
    state, results = run_entity("user_activity", base, [("apply", {"parts": [bad]}), ("apply", good)], "~b0of1")
    assert [r["isError"] for r in results] == [True, False]
    assert "refused, nothing applied" in results[0]["result"]
    assert state is not None and state["_applied"] == {"clickstream/0/0": [[0, 0], [5, 5]]} and _views(state) == 2


def test_a_stored_reversed_range_is_set_aside_not_read_as_applied() -> None:
    state, results = run_entity(
        "user_activity",
        {"keys": {}, "_applied": {"clickstream/0/0": [[3, 0]]}},
        [("apply", {"parts": [_part({"u": [click(1)]}, 1, 1)]})],
        "~b0of1",
    )
    assert not results[0]["isError"] and state is not None and _views(state) == 1
    assert "_applied" in state["_unreadable_bookkeeping"] and state["_applied"] == {"clickstream/0/0": [[1, 1]]}


def test_an_adopt_whose_origins_are_not_ranges_is_refused_and_stores_nothing() -> None:
    sdk_object = {
        "__class__": "DurableEntityContext",
        "__module__": "azure.durable_functions.models.DurableEntityContext",
    }
    sdk_object["__data__"] = json.dumps(
        {"self": {"name": "a", "key": "b"}, "state": None, "exists": False, "batch": []}
    )
    base, _ = run_entity("user_activity", None, [("apply", {"parts": [_part({"u": [click(0)]}, 0, 0)]})], "~b0of1")
    for origins in ({"~b0of2": sdk_object}, {"~b0of2": {"clickstream/0/0": [[9, 0]]}}, {"~b0of2": {"p": "x"}}):
        state, results = run_entity("user_activity", base, [("adopt", {"states": {}, "origins": origins})], "~b0of1")
        assert results[0]["isError"] and "refused" in results[0]["result"]
        assert state == base


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), 1e200])
def test_a_reading_that_is_not_finite_or_would_overflow_the_stats_is_refused_and_the_sensor_counts_on(
    bad: float,
) -> None:
    def readings(values: dict[int, float]) -> dict[str, Any]:
        events = [[o, T0 + o * 1000, value, False] for o, value in values.items()]
        part = {"topic": "sensors", "partition": 0, "incarnation": 0, "range": [min(values), max(values)]}
        return {"parts": [part | {"keys": {"s1": events}}]}

    state, _ = run_entity("sensor_stats", None, [("apply", readings({o: 20.0 + o % 3 for o in range(100)}))], "~b0of1")
    before = held(state, "s1")
    state, results = run_entity("sensor_stats", state, [("apply", readings({100: bad}))], "~b0of1")
    assert results[0]["isError"] and held(state, "s1") == before
    assert state is not None and state["_refused"] == {"s1": {"sensors/0/0": [100]}}
    state, results = run_entity("sensor_stats", state, [("apply", readings({101: 21.0}))], "~b0of1")
    assert not results[0]["isError"] and held(state, "s1")["count"] == 101
    assert state is not None and "_unreadable" not in state


def _base() -> dict[str, Any]:
    state, _ = run_entity(
        "user_activity",
        None,
        [("apply", {"parts": [_part({"u": [click(0), click(1)], "d": [click(2)]}, 0, 2)]})],
        "~b0of1",
    )
    assert state is not None
    return state


@pytest.mark.parametrize("damaged", ["oops", ["x"], {"k": 3}])
def test_a_damaged_unreadable_field_is_set_aside_and_a_damaged_key_is_set_aside_under_it(damaged: Any) -> None:
    """Before: an apply that set a key aside failed after keys and ``_applied`` had changed, and when redelivered."""
    state = _base() | {"_unreadable": damaged}
    state["keys"]["d"] = "{broken"
    payload = {"parts": [_part({"u": [click(10)], "d": [click(11)]}, 10, 11)]}
    state, results = run_entity("user_activity", state, [("apply", payload), ("apply", payload)], "~b0of1")
    assert [r["isError"] for r in results] == [False, False]
    assert state is not None and (_views(state), _views(state, "d")) == (3, 1)
    assert state["_unreadable"] == {"d": "{broken"}
    assert state["_unreadable_bookkeeping"] == {"_unreadable": repr(damaged)}


def test_a_damaged_origin_does_not_set_a_healthy_key_aside() -> None:
    state = _base() | {"_origins": {"~b0of2": {"clickstream/0/0": "abc"}}}
    state["keys"]["u"] = json.dumps(held(state, "u") | {"_moved_from": "~b0of2"})
    state, results = run_entity(
        "user_activity", state, [("apply", {"parts": [_part({"u": [click(10)]}, 10, 10)]})], "~b0of1"
    )
    assert not results[0]["isError"] and state is not None
    assert _views(state) == 3 and "_unreadable" not in state


def test_a_damaged_unreadable_bookkeeping_field_is_kept_when_more_is_set_aside() -> None:
    state = _base() | {"_unreadable_bookkeeping": ["earlier"], "_owed": 5}
    state, results = run_entity(
        "user_activity", state, [("apply", {"parts": [_part({"u": [click(10)]}, 10, 10)]})], "~b0of1"
    )
    assert not results[0]["isError"] and state is not None and _views(state) == 3
    assert state["_unreadable_bookkeeping"] == {"_unreadable_bookkeeping": "['earlier']", "_owed": "5"}
