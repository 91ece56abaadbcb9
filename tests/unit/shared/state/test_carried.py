"""A worker's anomaly flags do not depend on how its readings were cut into batches: what its batches added is
carried until its buckets are read with it, exactly once (``shared.state.carried``)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.invocation import handle_batch_with_state
from shared.lake import LocalLake
from shared.records import KafkaRecord
from shared.sources import SOURCES
from shared.state.aggregate import Signal
from shared.state.anomaly import flag_anomalies
from shared.state.bucket_state import dump, key_state, operate
from shared.state.buckets import bucket_for
from shared.state.carried import MAX_CARRIED_EVENTS, MAX_CARRIED_PER_KEY, Carried, Carry
from shared.state.lookups import StateJoiner
from shared.state.migration import adopt_signals, unbucketed
from shared.state.sensor_stats import ENTITY, fold, reduce
from tests.conftest import FIXED_NOW_MS, context_for
from tests.unit.shared.conftest import ApplyingGateway

SOURCE = SOURCES["sensors"]
OUTLIER = 140.0


def reading(offset: int, value: float) -> KafkaRecord:
    ms = FIXED_NOW_MS - 600_000 + offset * 1000
    body = {"sensor_id": "s1", "site": "ams-1", "metric": "temperature", "value": value, "unit": "celsius"}
    body["timestamp"] = datetime.fromtimestamp(ms / 1000, UTC).isoformat()
    return KafkaRecord("sensors", 0, offset, "s1", json.dumps(body).encode(), ms)


def normal(first: int, count: int) -> list[KafkaRecord]:
    """Readings around 24 (deviation 0.5): an outlier of 140 after 30 of them is flagged, after fewer it is not."""
    return [reading(offset, 24.0 + (0.5 if offset % 2 else -0.5)) for offset in range(first, first + count)]


class QueuedGateway(ApplyingGateway):
    """Signals are queued until ``deliver``: the entities apply them after the next batches were judged."""

    def __init__(self) -> None:
        super().__init__()
        self.queued: list[Signal] = []

    async def signal(self, signal: Signal) -> None:
        self.queued.append(signal)

    def deliver(self) -> None:
        for signal in self.queued:
            asyncio.run(ApplyingGateway.signal(self, signal))
        self.queued.clear()


def run(tmp: Path, batches: list[list[KafkaRecord]], gateway: ApplyingGateway, joiner: StateJoiner) -> dict[str, Any]:
    """The batches processed one after another by one worker (one joiner); the sensor's state."""
    for records in batches:
        asyncio.run(handle_batch_with_state(context_for(SOURCE, LocalLake(tmp)), records, gateway, joiner))
    if isinstance(gateway, QueuedGateway):
        gateway.deliver()
    return gateway.key_states("sensor_stats")["s1"]


def test_an_outlier_is_flagged_however_the_readings_are_cut_into_batches(tmp_path: Path) -> None:
    readings = [*normal(0, 40), reading(40, OUTLIER)]
    whole = run(tmp_path / "a", [readings], ApplyingGateway(), StateJoiner())
    split = run(tmp_path / "b", [readings[:20], readings[20:]], ApplyingGateway(), StateJoiner())  # in the cache's life
    assert whole["anomalies"] == split["anomalies"] == 1 and whole["count"] == split["count"] == 41


def test_a_batch_delivered_again_is_carried_once(tmp_path: Path) -> None:
    """The bucket is not read again in between (the cache is fresh), so only the offsets tell the second delivery."""
    batches = [normal(0, 20), normal(0, 20), [reading(20, OUTLIER)]]
    state = run(tmp_path, batches, ApplyingGateway(), StateJoiner(ttl_seconds=3600))
    assert (state["count"], state["anomalies"]) == (21, 0)  # judged on 20 readings, not 40


def test_a_read_while_the_signals_are_queued_keeps_what_was_carried(tmp_path: Path) -> None:
    batches = [normal(0, 20), normal(20, 20), [reading(40, OUTLIER)]]
    state = run(tmp_path, batches, QueuedGateway(), StateJoiner(ttl_seconds=-1))  # read before every batch
    assert (state["count"], state["anomalies"]) == (41, 1)


def test_a_read_after_the_bucket_applied_a_batch_does_not_count_it_again(tmp_path: Path) -> None:
    state = run(tmp_path, [normal(0, 20), [reading(20, OUTLIER)]], ApplyingGateway(), StateJoiner(ttl_seconds=-1))
    assert (state["count"], state["anomalies"]) == (21, 0)  # judged on 20 readings, not 40


def test_a_batch_redelivered_after_its_signals_were_applied_is_judged_on_the_state_read(tmp_path: Path) -> None:
    batches = [normal(0, 20), [*normal(0, 20), reading(20, OUTLIER)]]  # redelivered with one more reading
    state = run(tmp_path, batches, ApplyingGateway(), StateJoiner(ttl_seconds=-1))
    assert (state["count"], state["anomalies"]) == (21, 0)  # the state read holds the 20: not taken in again


def row(offset: int, value: float) -> dict[str, Any]:
    return {"sensor_id": "s1", "_topic": "sensors", "_partition": 0, "_offset": offset, "value": value}


def test_a_read_of_the_partitions_next_life_settles_what_its_rows_carried() -> None:
    """The join runs before the landing labels a row's life: the bucket's latest life of the partition decides."""
    carried = Carried()
    before = {"keys": {"s1": dump({"count": 1})}, "_applied": {"sensors/0/0": [[0, 500]]}}
    carry = Carry(carried, {"s1": "~b0of1"}, {"~b0of1": before})
    assert carry.start("s1", [row(600, 1.0)]) == []
    assert carry.add("s1", row(600, 1.0), 1.0)
    assert not carry.add("s1", row(7, 2.0), 2.0)  # shown applied in life 0
    after = before | {"_applied": {"sensors/0/0": [[0, 500]], "sensors/0/1": [[0, 600]]}}
    carried.settle("~b0of1", before)
    assert carried.events == {"~b0of1": {"s1": [["sensors", 0, 600, 1.0]]}}
    carried.settle("~b0of1", after)
    assert carried.events == {}


def test_a_bucket_whose_applied_offsets_are_damaged_carries_on_as_if_it_had_applied_none() -> None:
    carried = Carried()
    damaged = {"_applied": {"sensors/0/0": "0-500", "sensors/x": [[0, 9]], "sensors/0/1": [[0, "9"]]}}
    carry = Carry(carried, {"s1": "~b0of1"}, {"~b0of1": damaged})
    assert carry.add("s1", row(7, 2.0), 2.0)
    carried.settle("~b0of1", {"_applied": []})
    assert carry.start("s1", [row(8, 1.0)]) == [2.0]


def carried_count(carried: Carried) -> tuple[int, int]:
    """(events, keys) the store holds."""
    by_key = [events for keys in carried.events.values() for events in keys.values()]
    return sum(len(events) for events in by_key), len(by_key)


def test_a_key_whose_readings_never_reach_its_bucket_carries_only_its_newest() -> None:
    """Its signals refused (``entity_rejected``) or never sent: no read shows them applied, so none is ever settled."""
    carried = Carried()
    other_partition = {"_applied": {"sensors/1/0": [[0, 10**6]]}}
    last = 2 * (MAX_CARRIED_PER_KEY + 1) - 1
    for first in (0, MAX_CARRIED_PER_KEY + 1):  # two batches, the bucket read after each
        rows = [row(offset, float(offset)) for offset in range(first, first + MAX_CARRIED_PER_KEY + 1)]
        carry = Carry(carried, {"s1": "~b0of1"}, {"~b0of1": other_partition})
        carry.start("s1", rows)
        for each in rows:
            carry.add("s1", each, each["value"])
        carried.settle("~b0of1", other_partition)
    held = carried.events["~b0of1"]["s1"]
    assert [held[0][2], held[-1][2], len(held)] == [last - MAX_CARRIED_PER_KEY + 1, last, MAX_CARRIED_PER_KEY]


def test_what_a_worker_carries_is_bounded_however_many_keys_it_reads() -> None:
    """100,000 sensors, three readings each that no read shows applied: the keys carried to least recently go."""
    carried = Carried()
    keys = [f"s{index}" for index in range(100_000)]
    carry = Carry(carried, {key: f"~b{index % 512}of512" for index, key in enumerate(keys)}, {})
    for index, key in enumerate(keys):
        for offset in range(3):
            carry.add(key, {"_topic": "sensors", "_partition": index % 4, "_offset": 3 * index + offset}, 1.0)
    events, keys_held = carried_count(carried)
    assert events <= MAX_CARRIED_EVENTS and keys_held <= MAX_CARRIED_EVENTS
    assert "s0" not in carried.events["~b0of512"]  # carried to least recently
    assert len(carried.events["~b159of512"]["s99999"]) == 3  # the latest keep all theirs


def moved_in(**how: Any) -> dict[str, Any]:
    """The bucket of 2 that s1 is moved into (``shared.state.migration``), having applied readings 0-19 before:
    ``from_buckets`` a bucket of 1 (the key names it, the new bucket keeps its ranges), else its per-key entity
    (the key keeps its own ranges). The new bucket's own applied ranges do not hold 0-19."""
    events = [[offset, 0, 24.0 + (0.5 if offset % 2 else -0.5), False] for offset in range(20)]
    part = {"topic": "sensors", "partition": 0, "incarnation": 0, "range": [0, 19]}
    if how["from_buckets"]:
        old = operate(fold, reduce, "~b0of1", {}, "apply", {"parts": [part | {"keys": {"s1": events}}]}).state
        states, origins = unbucketed({"~b0of1": json.loads(json.dumps(old))})
        signals = adopt_signals(ENTITY, states, 2, origins)
    else:
        per_key = reduce({}, "apply", part | {"events": events})
        signals = adopt_signals(ENTITY, {"s1": json.loads(json.dumps(per_key))}, 2)
    (signal,) = signals
    assert signal.key == bucket_for("s1", 2)
    return json.loads(json.dumps(operate(fold, reduce, signal.key, {}, "adopt", signal.payload).state))


@pytest.mark.parametrize("from_buckets", [True, False], ids=["from a bucket of another N", "from its per-key entity"])
def test_a_batch_redelivered_after_a_rebucket_is_judged_on_the_moved_state_once(from_buckets: bool) -> None:
    """Readings 0-19, applied before the move, redelivered with an outlier: the moved state holds them (20), and
    the new bucket skips them. Taken in and carried again, they counted twice (40: the outlier flagged) until a
    read showed the redelivered batch's range in the new bucket's own ranges, never if its signal did not reach it."""
    home = bucket_for("s1", 2)
    bucket = moved_in(from_buckets=from_buckets)
    state = key_state(bucket, "s1")
    assert state is not None and state["count"] == 20
    rows = [row(offset, 24.0 + (0.5 if offset % 2 else -0.5)) for offset in range(20)] + [row(20, OUTLIER)]
    carried = Carried()
    assert flag_anomalies(rows, {"s1": state}, Carry(carried, {"s1": home}, {home: bucket})) == 0
    assert carried.events == {home: {"s1": [["sensors", 0, 20, OUTLIER]]}}
    carried.events[home]["s1"].insert(0, ["sensors", 0, 19, 23.5])  # carried before the move's state was read
    carried.settle(home, bucket)
    assert carried.events == {home: {"s1": [["sensors", 0, 20, OUTLIER]]}}
