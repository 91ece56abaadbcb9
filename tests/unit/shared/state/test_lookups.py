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
from shared.state.bucket_state import dump
from shared.state.buckets import bucket_for
from shared.state.cache import TtlCache
from shared.state.lookups import BucketReads, StateJoiner
from shared.state.running_stats import update
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


class GatedGateway:
    """Each read waits until the test releases it, so the test decides the order the answers arrive in."""

    def __init__(self, answers: list[dict[str, Any] | None]) -> None:
        self.answers = answers  # the answer of each read, in the order the reads begin
        self.begun = [asyncio.Event() for _ in answers]
        self.released = [asyncio.Event() for _ in answers]
        self.reads = 0

    async def read(self, entity: str, key: str) -> dict[str, Any] | None:
        number = self.reads
        self.reads += 1
        self.begun[number].set()
        await self.released[number].wait()
        return self.answers[number]

    async def signal(self, signal: Signal) -> None:
        raise AssertionError("not used")


def sensor_row(sensor: str, offset: int, value: float, partition: int = 0) -> dict[str, Any]:
    return {
        "sensor_id": sensor,
        "value": value,
        "_event_time": 0,
        "_topic": "sensors",
        "_partition": partition,
        "_offset": offset,
    }


@pytest.mark.parametrize("newer_first", [True, False], ids=["newer answer first", "older answer first"])
async def test_overlapping_reads_of_a_bucket_keep_one_answer_and_what_it_settled(newer_first: bool) -> None:
    """Two invocations read one expired bucket at once. Newer first: its state holds the 40 readings the worker
    carried, so they are no longer carried; the older answer, arriving second, must not replace it (the readings
    would count nowhere until the next read: an outlier after them passed unflagged). Older first: the newer one,
    arriving second, is not kept, so it must not settle the 40 either."""
    clock = [0.0]
    joiner = StateJoiner()
    joiner.caches["sensor_stats"] = TtlCache(30.0, clock=lambda: clock[0])
    readings = [sensor_row("s1", offset, 24.0 + (0.5 if offset % 2 else -0.5)) for offset in range(40)]
    await joiner.join(RecordingGateway({}), "sensors", readings, {"sensors": 1})  # the bucket is empty: all carried
    stats: dict[str, Any] = {}
    for reading in readings:
        update(stats, reading["value"])
    newer = {"keys": {"s1": dump(stats)}, "_applied": {"sensors/0/0": [[0, 39]]}}

    clock[0] = 100.0  # the cached read has expired
    gateway = GatedGateway([None, newer])  # the read begun first is answered from before the 40 were applied
    first = asyncio.create_task(joiner.join(gateway, "sensors", [sensor_row("s2", 0, 1.0, 1)], {"sensors": 1}))
    await gateway.begun[0].wait()
    second = asyncio.create_task(joiner.join(gateway, "sensors", [sensor_row("s3", 0, 1.0, 2)], {"sensors": 1}))
    await gateway.begun[1].wait()
    for answered, task in [(1, second), (0, first)] if newer_first else [(0, first), (1, second)]:
        gateway.released[answered].set()
        await task

    clock[0] = 101.0  # the bucket as cached is read
    outlier = [sensor_row("s1", 40, 140.0)]
    no_reads = RecordingGateway({})
    outcome = await joiner.join(no_reads, "sensors", outlier, {"sensors": 1})
    assert no_reads.reads == []
    assert (outcome.anomalies, outlier[0]["anomaly"]) == (1, True)  # judged on the 40 readings


DAMAGED_BUCKETS = pytest.mark.parametrize(
    "damaged", [{"keys": ["7", "s1"]}, {"keys": "abc"}, ["keys"]], ids=["keys list", "keys text", "not an object"]
)


@DAMAGED_BUCKETS
async def test_a_bucket_not_of_a_buckets_shape_joins_its_keys_as_no_profile_logged_once(
    damaged: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Damaged outside this code (the state API names it ``damaged``): the clicks batch still lands, instead of
    every batch of the source failing on it while it stays."""
    gateway = RecordingGateway({("user_profile", "~b0of1"): damaged})
    joiner = StateJoiner()
    for _ in range(2):  # the second batch takes the bucket as cached: no state, not logged again
        rows = [{"userid": 7, "user_known": True}]
        await joiner.join(gateway, "clickstream", rows, {"users": 1})
        assert rows[0]["city"] is None
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "user_profile bucket '~b0of1' is not of a bucket's shape; read as no state"
    ]


@DAMAGED_BUCKETS
async def test_a_sensors_bucket_not_of_a_buckets_shape_judges_the_readings_as_a_new_sensors(damaged: Any) -> None:
    gateway = RecordingGateway({("sensor_stats", "~b0of1"): damaged})
    rows = [sensor_row("s1", 0, 1.0)]
    outcome = await StateJoiner().join(gateway, "sensors", rows, {"sensors": 1})
    assert (outcome.anomalies, rows[0]["anomaly"]) == (0, False)


@DAMAGED_BUCKETS
async def test_a_bucket_not_of_a_buckets_shape_settles_nothing_carried(damaged: Any) -> None:
    """Read as no state, it shows none of the readings the worker carries applied: they stay carried, and the next
    reading is judged on them."""
    clock = [0.0]
    joiner = StateJoiner()
    joiner.caches["sensor_stats"] = TtlCache(30.0, clock=lambda: clock[0])
    readings = [sensor_row("s1", offset, 24.0 + (0.5 if offset % 2 else -0.5)) for offset in range(40)]
    await joiner.join(RecordingGateway({}), "sensors", readings, {"sensors": 1})  # the bucket is empty: all carried

    clock[0] = 100.0  # the cached read has expired; the bucket is read again, damaged
    damaged_bucket = RecordingGateway({("sensor_stats", "~b0of1"): damaged})
    await joiner.join(damaged_bucket, "sensors", [sensor_row("s2", 0, 1.0, 1)], {"sensors": 1})

    outlier = [sensor_row("s1", 40, 140.0)]
    outcome = await joiner.join(damaged_bucket, "sensors", outlier, {"sensors": 1})
    assert damaged_bucket.reads == [("sensor_stats", "~b0of1")]
    assert (outcome.anomalies, outlier[0]["anomaly"]) == (1, True)  # judged on the 40 readings carried


async def test_buckets_read_for_a_batch_serve_it_even_when_the_cache_empties_at_its_limit() -> None:
    """A cache of one bucket empties itself when the second is put: the first, read for this batch, still joins."""
    homes = {u: bucket_for(str(u), 2) for u in (7, 9)}
    assert homes[7] != homes[9]
    states = {("user_profile", homes[u]): {"keys": {str(u): json.dumps(PROFILE)}} for u in (7, 9)}
    joiner = StateJoiner()
    joiner.caches["user_profile"] = TtlCache(limit=1)
    rows = [{"userid": u, "user_known": True} for u in (7, 9)]
    await joiner.join(RecordingGateway(states), "clickstream", rows, {"users": 2})
    assert [row["city"] for row in rows] == ["Raleigh", "Raleigh"]


def test_an_answer_to_a_read_begun_before_the_last_kept_answer_arrived_is_not_kept() -> None:
    """Two overlapping reads of one bucket: the first answer is kept; the other, begun before it arrived, is not."""
    reads = BucketReads()
    earlier, later = reads.begin(), reads.begin()
    assert reads.keep("~b0of1", earlier)
    assert not reads.keep("~b0of1", later)
    assert reads.keep("~b0of1", reads.begin())  # a read begun after it is kept
