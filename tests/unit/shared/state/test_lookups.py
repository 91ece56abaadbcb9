"""Per-batch state lookups: each bucket read once, then cached."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from shared.invocation import handle_batch_with_state
from shared.lake import LocalLake
from shared.sources import SOURCES
from shared.state.aggregate import Signal
from shared.state.buckets import bucket_for
from shared.state.lookups import StateJoiner
from tests.conftest import context_for, records_for
from tests.unit.shared.conftest import ApplyingGateway


class RecordingGateway:
    """In-memory stand-in for the entity API, counting reads (a test double for a pure-logic test)."""

    def __init__(self, states: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.states = states
        self.reads: list[tuple[str, str]] = []

    async def read(self, entity: str, key: str) -> dict[str, Any] | None:
        self.reads.append((entity, key))
        return self.states.get((entity, key))

    async def signal(self, signal: Signal) -> None:
        raise AssertionError("not used")


async def test_lookups_read_each_bucket_once_then_cached() -> None:
    profile = {"profile": {"username": "u7", "city": "Raleigh", "level": "Gold"}}
    gateway = RecordingGateway({("user_profile", bucket_for("7", 4)): {"keys": {"7": json.dumps(profile)}}})
    joiner = StateJoiner()
    users = [7, 9, *range(100, 140)]
    rows = [{"userid": u, "user_known": True} for u in users for _ in range(5)]
    await joiner.join(gateway, "clickstream", rows, {"users": 4})
    await joiner.join(gateway, "clickstream", [dict(r) for r in rows], {"users": 4})
    assert sorted(gateway.reads) == [("user_profile", f"~b{i}of4") for i in range(4)]  # per bucket, then cached
    assert rows[0]["city"] == "Raleigh" and rows[5]["city"] is None


def test_a_profile_whose_stored_state_is_unreadable_reads_as_no_profile() -> None:
    from shared.state.bucket_state import key_state

    assert key_state({"keys": {"42": '{"profile": {"username": '}}, "42") is None  # truncated text: no state, no error


PROFILE = {"profile": {"username": "u7", "city": "Raleigh", "level": "Gold"}}


@pytest.mark.parametrize("damaged", [{"profile": "damaged"}, {"profile": {"city": {"name": "Raleigh"}}}])
async def test_a_profile_of_another_shape_is_joined_as_no_profile_logged_once(
    damaged: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    bucket = {"keys": {"7": json.dumps(PROFILE), "8": json.dumps(damaged)}}
    gateway = RecordingGateway({("user_profile", "~b0of1"): bucket})
    rows = [{"userid": u, "user_known": True} for u in (7, 8, 8)]
    await StateJoiner().join(gateway, "clickstream", rows, {"users": 1})
    assert [row["city"] for row in rows] == ["Raleigh", None, None]
    assert [r.getMessage() for r in caplog.records].count(
        "user_profile state of key '8' is not of the shape the join reads; joined as no state"
    ) == 1


@pytest.mark.parametrize(
    "damaged", [{"count": "40"}, {"count": 40, "m2": 1.0}, {"count": 40, "mean": 1.0, "m2": -1.0}, {"minutes": 7}]
)
async def test_sensor_stats_of_another_shape_judge_the_readings_as_a_new_sensors(damaged: dict[str, Any]) -> None:
    gateway = RecordingGateway({("sensor_stats", "~b0of1"): {"keys": {"s1": json.dumps(damaged)}}})
    rows = [{"sensor_id": "s1", "value": 50.0, "_event_time": 0, "_topic": "sensors", "_partition": 0, "_offset": 0}]
    outcome = await StateJoiner().join(gateway, "sensors", rows, {"sensors": 1})
    assert (outcome.anomalies, outcome.late, rows[0]["anomaly"]) == (0, 0, False)


def test_a_wrongly_typed_profile_does_not_stall_the_clickstream_partition(tmp_path: Path) -> None:
    """Before, the join raised AttributeError, classified as an entity API failure: the partition waited forever."""
    clicks = records_for(SOURCES["clickstream"], 20)
    users = {json.loads(r.value or b"{}")["userid"] for r in clicks} - {-1}
    victim = str(sorted(users)[0])
    gateway = ApplyingGateway()
    gateway.states[("user_profile", bucket_for(victim, 256))] = json.dumps(
        {"keys": {victim: json.dumps({"profile": "damaged"})}, "_applied": {}}
    )
    context = context_for(SOURCES["clickstream"], LocalLake(tmp_path))
    outcome = asyncio.run(handle_batch_with_state(context, clicks, gateway, StateJoiner()))
    assert outcome.landed == 20 and outcome.signals > 0
