"""The pure state helpers: pre-aggregation, anomaly flags, the join, lookups, the query API's decisions."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from shared.batch import process_batch
from shared.sources import SOURCES
from shared.state.aggregate import Signal, members, signals_for
from shared.state.anomaly import flag_anomalies
from shared.state.buckets import bucket_for, bucket_index, bucket_key, is_bucket_key
from shared.state.cache import TtlCache
from shared.state.enrich import enrich_clicks, profile_keys
from shared.state.keys import encode_key
from shared.state.lookups import StateJoiner
from shared.state.query_api import BadQuery, entity_name, public_state
from shared.state.registry import ENTITY_KINDS
from tests.conftest import FIXED_NOW_MS, records_for


def landed(source: str, count: int, partition: int = 0) -> list[dict[str, Any]]:
    batch = process_batch(
        SOURCES[source],
        records_for(SOURCES[source], count, partition=partition),
        max_record_bytes=1 << 20,
    )
    return batch.rows()


def test_one_signal_per_bucket_touched_carrying_every_event_once() -> None:
    rows = landed("mobile", 1000) + landed("mobile", 10, partition=1)
    keys = {SOURCES["mobile"].entity_key(r) for r in rows}
    signals = signals_for("mobile", rows, {("mobile", 0): (0, 999), ("mobile", 1): (0, 9)}, buckets=64)
    assert len(signals) == len({bucket_for(k, 64) for k in keys}) <= 64 < len(keys)  # min(distinct keys, N)
    assert len({s.key for s in signals}) == len(signals) and all(is_bucket_key(s.key) for s in signals)
    events = [
        (part["partition"], key, event[0], s.key)
        for s in signals
        for part in s.payload["parts"]
        for key, key_events in part["keys"].items()
        for event in key_events
    ]
    assert sorted(e[:3] for e in events) == sorted(
        (r["_partition"], SOURCES["mobile"].entity_key(r), r["_offset"]) for r in rows
    )
    assert all(home == bucket_for(key, 64) for _, key, _, home in events)  # every key in its own bucket
    parts = [part for s in signals for part in s.payload["parts"]]
    assert {tuple(p["range"]) for p in parts} == {(0, 999), (0, 9)}  # the batch's whole range per partition
    assert all(e == sorted(e) for p in parts for e in p["keys"].values())  # offset order per key
    assert [m for m in members(signals[0])] == [
        (key, "mobile", part["partition"]) for part in signals[0].payload["parts"] for key in part["keys"]
    ]


def test_fewer_buckets_than_keys_send_fewer_operations_and_more_buckets_never_more_than_keys() -> None:
    rows = landed("mobile", 1000)
    keys = len({SOURCES["mobile"].entity_key(r) for r in rows})
    assert len(signals_for("mobile", rows, buckets=1)) == 1
    assert len(signals_for("mobile", rows, buckets=16)) == 16
    assert len(signals_for("mobile", rows, buckets=65_536)) <= keys


def test_a_key_hashes_to_the_same_bucket_in_every_process() -> None:
    """BLAKE2b, not Python's salted hash: a changed hash would orphan every deployment's state."""
    assert [bucket_index(k, 512) for k in ("device-00001", "ip:111.152.45.45", "7", "é/?#")] == [510, 8, 386, 426]
    assert bucket_key(7, 512) == "~b7of512" and is_bucket_key("~b7of512")
    assert not any(is_bucket_key(encode_key(k)) for k in ("~b7of512", "b7of512", "7"))  # per-key ids never clash
    with pytest.raises(ValueError):
        bucket_key(512, 512)


def test_keys_spread_evenly_over_buckets() -> None:
    counts = Counter(bucket_index(f"sensor-{i:06d}", 256) for i in range(100_000))
    assert len(counts) == 256 and max(counts.values()) < 1.25 * 100_000 / 256


def test_sources_without_state_send_nothing() -> None:
    assert signals_for("nosuchsource", [{"x": 1}]) == []
    assert signals_for("clickstream", []) == []


def sensor_rows(values: list[float], sensor: str = "s1") -> list[dict[str, Any]]:
    return [
        {"sensor_id": sensor, "value": v, "_partition": 0, "_offset": i, "_event_time": FIXED_NOW_MS, "anomaly": False}
        for i, v in enumerate(values)
    ]


def test_an_outlier_after_thirty_readings_is_flagged() -> None:
    steady = [10.0 + (i % 3) * 0.5 for i in range(30)]
    rows = sensor_rows([*steady, 100.0, 10.5])
    assert flag_anomalies(rows, {}) == 1
    assert [r["anomaly"] for r in rows[-2:]] == [True, False]


def test_no_flags_before_thirty_readings_and_known_stats_count() -> None:
    rows = sensor_rows([10.0] * 5 + [100.0])
    assert flag_anomalies(rows, {}) == 0
    known = {"s1": {"count": 100, "mean": 10.0, "m2": 99.0}}  # standard deviation 1
    assert flag_anomalies(sensor_rows([13.9]), known) == 0
    assert flag_anomalies(sensor_rows([14.1]), known) == 1


def test_clicks_are_joined_with_known_profiles_only() -> None:
    rows = [
        {"userid": 7, "user_known": True},
        {"userid": 8, "user_known": True},
        {"userid": -1, "user_known": False},
    ]
    assert profile_keys(rows) == {"7", "8"}
    profiles = {"7": {"profile": {"username": "Reeva_3", "city": "London", "level": "Gold"}}, "8": None}
    assert enrich_clicks(rows, profiles) == 1
    assert (rows[0]["username"], rows[0]["city"], rows[0]["level"]) == ("Reeva_3", "London", "Gold")
    assert rows[1]["username"] is None and rows[2]["city"] is None


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_ttl_cache_expires_entries() -> None:
    clock = FakeClock()
    cache: TtlCache[int] = TtlCache(30, clock)
    cache.put("a", 1)
    assert cache.missing({"a", "b"}) == {"b"}
    clock.now = 31
    assert cache.missing({"a"}) == {"a"}


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
    await joiner.join(gateway, "clickstream", rows, buckets=4)
    await joiner.join(gateway, "clickstream", [dict(r) for r in rows], buckets=4)
    assert sorted(gateway.reads) == [("user_profile", f"~b{i}of4") for i in range(4)]  # per bucket, then cached
    assert rows[0]["city"] == "Raleigh" and rows[5]["city"] is None


@pytest.mark.parametrize(
    ("source", "key"), [("nope", "1"), ("sensors", ""), ("sensors", "\u00e9" * 70), ("users", "\ud800")]
)
def test_bad_queries_are_rejected(source: str, key: str) -> None:
    with pytest.raises(BadQuery):
        entity_name(source, key)


def test_query_maps_sources_to_entities_and_hides_bookkeeping() -> None:
    assert {s: entity_name(s, "ip:111.152.45.45") for s in ENTITY_KINDS} == {
        "clickstream": "user_activity",
        "mobile": "device_activity",
        "sensors": "sensor_stats",
        "users": "user_profile",
    }
    shown = public_state(
        {"count": 2, "m2": 1.0, "_offsets": {"t/0": 1}, "_applied": {}, "windows": [[0, 2, 1.0, 2.0, 3.0]]}
    )
    assert shown == {"count": 2, "windows": [{"start": 0, "count": 2, "min": 1.0, "max": 2.0, "mean": 1.5}]}
