"""One ``apply`` makes the same state of a key whatever order its payload's parts (partitions) came in."""

from __future__ import annotations

from typing import Any

import pytest

from shared.state import sensor_stats, user_activity
from shared.state.aggregate import signals_for
from shared.state.bucket_state import apply, key_state
from shared.state.offsets import Fold

T0 = 1_795_516_200_000
MINUTE = 60_000


def part(topic: str, partition: int, key: str, events: list[list[Any]]) -> dict[str, Any]:
    offsets = [event[0] for event in events]
    return {"topic": topic, "partition": partition, "range": [min(offsets), max(offsets)], "keys": {key: events}}


def folded(fold: Fold, parts: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return key_state(apply(fold, {}, {"parts": parts}).state, key) or {}


def click(offset: int, ms: int) -> list[Any]:
    return [offset, ms, "2xx", 10, False, f"/p{offset}"]


@pytest.mark.parametrize(
    ("fold", "topic", "first", "second"),
    [
        # a user whose clicks are in two partitions of one batch (partitions were added): one session of four
        (
            user_activity.fold,
            "clickstream",
            [click(100, T0), click(101, T0 + 10 * MINUTE)],
            [click(0, T0 + 5 * MINUTE)],
        ),
        # a sensor's reading an hour and a minute later, in another partition: the earlier ones are not late
        (
            sensor_stats.fold,
            "sensors",
            [[7, T0, 1.0, False], [8, T0 + 1, 2.0, False]],
            [[3, T0 + 61 * MINUTE, 3.0, False]],
        ),
    ],
)
def test_a_keys_events_in_two_parts_fold_alike_whichever_part_comes_first(
    fold: Fold, topic: str, first: list[list[Any]], second: list[list[Any]]
) -> None:
    p0, p1 = part(topic, 0, "k", first), part(topic, 1, "k", second)
    assert folded(fold, [p0, p1], "k") == folded(fold, [p1, p0], "k")


def test_a_batch_gives_one_state_whatever_order_its_partitions_were_first_seen_in() -> None:
    def row(partition: int, offset: int, ms: int) -> dict[str, Any]:
        fields = {"status_class": "2xx", "bytes": 10, "is_bot": False, "request_path": "/"}
        fields |= {"userid": 7, "user_known": True}
        return {
            "_topic": "clickstream",
            "_partition": partition,
            "_incarnation": 0,
            "_offset": offset,
            "_event_time": ms,
        } | fields

    p0 = [row(0, 100, T0), row(0, 101, T0 + 10 * MINUTE)]
    p1 = [row(1, 0, T0 + 5 * MINUTE), row(1, 1, T0 + 15 * MINUTE)]
    states = []
    for rows in (p0 + p1, p1 + p0):
        (signal,) = signals_for("clickstream", rows, buckets=1, now_ms=T0 + 20 * MINUTE)
        states.append(folded(user_activity.fold, signal.payload["parts"], "7"))
    assert states[0] == states[1] and states[0]["session"][:3] == [T0, T0 + 15 * MINUTE, 4]
