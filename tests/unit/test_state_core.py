"""The pure state helpers: pre-aggregation, anomaly flags, the join, lookups, the query API's decisions."""

from __future__ import annotations

from typing import Any

import pytest

from shared.batch import process_batch
from shared.sources import SOURCES
from shared.state.aggregate import Signal, signals_for
from shared.state.anomaly import flag_anomalies
from shared.state.cache import TtlCache
from shared.state.enrich import enrich_clicks, profile_keys
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
    return batch.rows


def test_one_signal_per_key_and_partition_carrying_every_event_once() -> None:
    rows = landed("mobile", 1000) + landed("mobile", 10, partition=1)
    signals = signals_for("mobile", rows)
    keys = {(SOURCES["mobile"].entity_key(r), r["_partition"]) for r in rows}
    assert len(signals) == len(keys) < len(rows)
    assert {(s.key, s.payload["partition"]) for s in signals} == keys
    offsets = sorted((s.payload["partition"], e[0]) for s in signals for e in s.payload["events"])
    assert offsets == sorted((r["_partition"], r["_offset"]) for r in rows)
    assert all(s.payload["events"] == sorted(s.payload["events"]) for s in signals)


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


async def test_lookups_are_per_batch_and_cached() -> None:
    gateway = RecordingGateway(
        {("user_profile", "7"): {"profile": {"username": "u7", "city": "Raleigh", "level": "Gold"}}}
    )
    joiner = StateJoiner()
    rows = [{"userid": 7, "user_known": True} for _ in range(50)] + [{"userid": 9, "user_known": True}]
    await joiner.join(gateway, "clickstream", rows)
    await joiner.join(gateway, "clickstream", [dict(r) for r in rows])
    assert sorted(gateway.reads) == [("user_profile", "7"), ("user_profile", "9")]  # once per key, then cached
    assert rows[0]["city"] == "Raleigh" and rows[-1]["city"] is None


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
