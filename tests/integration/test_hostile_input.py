"""No record can stop a stream: hostile records at the head of one-partition topics, through the local host.

One host run processes every class. Each source's topic has one partition and state on; each
hostile record is followed by good records. For every source the test checks that the partition
keeps flowing (the group commits everything), that every offset is in the lake exactly once (landed
or dead-lettered with the expected reason), and that every key's entity state is exact, read back
through ``GET /api/state/{source}/{key}`` with the key URL-encoded.
"""

from __future__ import annotations

import contextlib
import json
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from confluent_kafka import Producer

from devhost.services.broker import ensure_topics
from shared.generator_ticks import generate_messages
from shared.source_model import record_validator
from shared.sources import SOURCES
from shared.state.buckets import bucket_for
from shared.state.registry import ENTITY_KINDS
from tests.conftest import FIXED_NOW
from tests.integration.harness import END_OFFSETS, DevHost, Run, committed_lag, landed_rows, produce, wait_for

GOOD_AFTER_EACH = 2  # good records after every hostile one
INT64_OVER, INT64_UNDER = 2**63, -(2**63) - 1
MEGABYTE_PLUS = 1_100_000
COUNT_FIELD = {"clickstream": "page_views", "mobile": "events", "sensors": "count", "users": "updates"}
LANDED = "landed"


@dataclass
class Case:
    """One hostile record, what must become of it, and (when it lands) the entity key it counts for."""

    name: str
    value: bytes | None
    expect: str  # LANDED or a dead-letter reason
    entity_key: str | None = None
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    kafka_timestamp_ms: int | None = None  # the record's own Kafka timestamp (None: the producer's clock)


def _good(source: str, seed: int = 11) -> dict[str, Any]:
    message = generate_messages(SOURCES[source], 1, now=FIXED_NOW, seed=seed, start_index=0)[0]
    return dict(json.loads(message.value))


def _json(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode()


def _with(source: str, **changes: Any) -> bytes:
    return _json(_good(source) | changes)


def _raw_field(source: str, name: str, literal: str) -> bytes:
    """The good record with ``name`` set to a JSON literal json.dumps cannot write (1e309, NaN, ...)."""
    record = _good(source)
    record.pop(name, None)
    return _json(record)[:-1] + f', "{name}": {literal}}}'.encode()


def _common(source: str, key_field: str) -> list[Case]:
    """The classes every source gets: broken bytes and JSON shapes."""
    good = _json(_good(source))
    return [
        Case("tombstone", None, "null_value"),
        Case("binary garbage", b"\xff\xfe\x00\x81garbage", "not_utf8"),
        Case("UTF-16", good.decode().encode("utf-16"), "not_utf8"),
        Case("UTF-8 BOM", b"\xef\xbb\xbf" + good, "not_json"),
        Case("lone surrogate", good[:-1] + b', "note": "\\ud800"}', "not_json"),
        Case("deep nesting", good[:-1] + b', "deep": ' + b"[" * 5000 + b"]" * 5000 + b"}", "not_json"),
        Case("array instead of object", b"[" + good + b"]", "schema"),
        Case("scalar instead of object", b"42", "schema"),
        Case("missing fields", b"{}", "schema"),
        Case(f"{key_field} as an object", _with(source, **{key_field: {"a": 1}}), "schema"),
        Case("1 MB+ string", _with(source, **{key_field: "x" * MEGABYTE_PLUS}), "oversized"),
    ]


def clickstream_cases() -> list[Case]:
    good = _good("clickstream")
    return [
        *_common("clickstream", "ip"),
        Case("userid beyond int64", _with("clickstream", userid=INT64_OVER), "schema"),
        Case("userid below int64", _with("clickstream", userid=INT64_UNDER), "schema"),
        Case("_time beyond int64", _with("clickstream", _time=INT64_OVER), "schema"),
        Case("_time below int64", _with("clickstream", _time=INT64_UNDER), "schema"),
        Case("_time 1e309", _raw_field("clickstream", "_time", "1e309"), "schema"),
        Case("status as a number", _with("clickstream", status=302), "schema"),
        Case("userid as a string", _with("clickstream", userid="7"), LANDED, "7"),
        Case("string over its limit", _with("clickstream", referrer="r" * 9000), "schema"),
        Case(
            "URL syntax in the ip key",
            _with("clickstream", userid=-1, ip="/?#%\\.. x"),
            LANDED,
            "ip:/?#%\\.. x",
        ),
        Case("NUL and control characters", _with("clickstream", agent="a\x00b\x01\x7f"), LANDED),
        Case(
            "duplicate JSON keys (last wins)",
            _json(good)[:-1] + b', "userid": 33}',
            LANDED,
            "33",
        ),
        Case("extra fields", _with("clickstream", extra={"x": [1, 2]}), LANDED),
        Case(
            "binary and non-UTF-8 key and headers",
            _json(good),
            LANDED,
            key=b"\xff\xfe\x00",
            headers=[("traceparent", b"\xff\xfe"), ("binary", bytes(range(256)))],
        ),
    ]


def mobile_cases() -> list[Case]:
    twin_nfc, twin_nfd = unicodedata.normalize("NFC", "café-1"), unicodedata.normalize("NFD", "café-1")
    url_keys = ["a/b", "?", "#", "%", "%2F", "\\", "..", ".", "a b", " ", "\t\n", "\x01\x7f\x9f", "~7E", "ключ"]
    return [
        *_common("mobile", "device_id"),
        *(Case(f"key {key!r}", _with("mobile", device_id=key), LANDED, key) for key in url_keys),
        Case("normalisation twin NFC", _with("mobile", device_id=twin_nfc), LANDED, twin_nfc),
        Case("normalisation twin NFD", _with("mobile", device_id=twin_nfd), LANDED, twin_nfd),
        Case("empty key", _with("mobile", device_id=""), "schema"),
        Case("300-character key", _with("mobile", device_id="k" * 300), "schema"),
        Case("key too long once encoded", _with("mobile", device_id="é" * 100), "bad_key"),
        Case("timestamp year 1", _with("mobile", device_id="y1", timestamp="0001-01-01T00:00:00Z"), LANDED, "y1"),
        Case("timestamp year 9999", _with("mobile", device_id="y9", timestamp="9999-12-31T23:59:59Z"), LANDED, "y9"),
        Case("negative epoch", _with("mobile", device_id="neg", timestamp=-86_400), LANDED, "neg"),
        Case("year 1 east of UTC", _with("mobile", device_id="y1e", timestamp="0001-01-01T00:00:00+14:00"), LANDED),
        Case("year 9999 west of UTC", _with("mobile", device_id="y9w", timestamp="9999-12-31T23:59:59-12:00"), LANDED),
        Case("timestamp as a bool", _with("mobile", timestamp=True), "schema"),
        Case("timestamp beyond any date", _with("mobile", timestamp=10**20), "schema"),
        # a Kafka timestamp no .NET DateTime holds stopped the topic's consumer in the local host for good (local only:
        # the extension throws reading it, docs/reliability.md; Event Hubs stamps its own times)
        Case("Kafka timestamp year 10000", _with("mobile", device_id="k10k"), LANDED, "k10k", kafka_timestamp_ms=2**62),
        Case("properties nested", _with("mobile", properties={"a": {"b": "c"}}), "schema"),
        Case("unknown event type", _with("mobile", event_type="teleport"), "schema"),
    ]


def sensors_cases() -> list[Case]:
    good = _good("sensors")
    return [
        *_common("sensors", "sensor_id"),
        Case("value NaN", _raw_field("sensors", "value", "NaN"), "schema"),
        Case("value Infinity", _raw_field("sensors", "value", "Infinity"), "schema"),
        Case("value 1e309", _raw_field("sensors", "value", "1e309"), "schema"),
        Case("value as a string", _with("sensors", value=str(good["value"])), LANDED),
        Case("value as an array", _with("sensors", value=[1.0]), "schema"),
        Case("key with URL syntax", _with("sensors", sensor_id="s/../?x=1#f"), LANDED, "s/../?x=1#f"),
    ]


def users_cases() -> list[Case]:
    return [
        *_common("users", "username"),
        Case("user_id beyond int64", _with("users", user_id=INT64_OVER), "schema"),
        Case("user_id below int64", _with("users", user_id=INT64_UNDER), "schema"),
        Case("registered_at beyond int64", _with("users", registered_at=INT64_OVER), "schema"),
        Case("registered_at after year 9999", _with("users", registered_at=253_402_300_800_000), "schema"),
        Case("user_id as a string", _with("users", user_id="9001"), LANDED, "9001"),
        Case("registered_at as a string", _with("users", user_id=9002, registered_at="1700000000000"), LANDED, "9002"),
    ]


CASES: dict[str, Callable[[], list[Case]]] = {
    "clickstream": clickstream_cases,
    "mobile": mobile_cases,
    "sensors": sensors_cases,
    "users": users_cases,
}


@dataclass
class Expected:
    outcomes: dict[int, tuple[str, str]] = field(default_factory=dict)  # offset -> (case, LANDED or reason)
    counts: Counter[str] = field(default_factory=Counter)  # entity key -> records counted in its state


def _produce_source(broker: str, topic: str, source: str, cases: list[Case]) -> Expected:
    """Each case, then good records; offsets are known because the topic has one partition."""
    expected = Expected()
    goods = generate_messages(SOURCES[source], len(cases) * GOOD_AFTER_EACH, now=FIXED_NOW, seed=3, start_index=0)
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 20, "message.max.bytes": 4_000_000})
    offset = 0
    for index, case in enumerate(cases):
        producer.produce(
            topic, case.value, case.key, headers=case.headers or None, timestamp=case.kafka_timestamp_ms or 0
        )
        expected.outcomes[offset] = (case.name, case.expect)
        if case.expect == LANDED:
            expected.counts[case.entity_key or _entity_key(source, case.value or b"")] += 1
        offset += 1
        for message in goods[index * GOOD_AFTER_EACH : (index + 1) * GOOD_AFTER_EACH]:
            producer.produce(topic, message.value.encode(), message.key.encode())
            expected.outcomes[offset] = ("good", LANDED)
            expected.counts[message.key] += 1
            offset += 1
    assert producer.flush(30) == 0
    END_OFFSETS[topic] = {0: offset}
    return expected


def _entity_key(source: str, value: bytes) -> str:
    """The entity a landed record counts for, as the source defines it."""
    definition = SOURCES[source]
    return definition.entity_key(definition.transform(record_validator(definition.model).validate_json(value)))


def _outcomes(lake: Path, source: str) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for row in landed_rows(lake, "raw", source):
        found.setdefault(row["_offset"], []).append(LANDED)
    for row in landed_rows(lake, "deadletter", source):
        found.setdefault(row["_offset"], []).append(row["reason"])
    return found


def test_hostile_records_never_stop_a_stream(broker: str, tmp_path: Path) -> None:
    run, lake = Run(), tmp_path / "lake"
    sources = list(CASES)
    ensure_topics({"bootstrap.servers": broker}, [run.topic(s) for s in sources], partitions=1)
    cases = {source: CASES[source]() for source in sources}
    assert sum(len(c) for c in cases.values()) >= 30
    expected = {source: _produce_source(broker, run.topic(source), source, cases[source]) for source in sources}
    host = DevHost(broker, lake, run.settings(sources), "--no-timers")
    try:
        for source in sources:
            total = len(expected[source].outcomes)
            wait_for(
                lambda s=source, t=total: len(_outcomes(lake, s)) >= t,  # type: ignore[misc]
                60,
                f"every {source} offset in raw/ or deadletter/\n{host.output()[-3000:]}",
            )
            wait_for(
                lambda s=source: (
                    committed_lag(broker, run.settings([s])[f"{s.upper()}_CONSUMER_GROUP"], run.topic(s)) == 0
                ),
                30,
                f"{source}'s partition to be committed to its end",
            )
        for source in sources:
            found = _outcomes(lake, source)
            wrong = {
                offset: (name, expect, found.get(offset))
                for offset, (name, expect) in expected[source].outcomes.items()
                if found.get(offset) != [expect]
            }
            assert wrong == {}, f"{source}: offset -> (case, expected, found)"
            assert set(found) == set(expected[source].outcomes)
        for source in sources:
            field_name, counts = COUNT_FIELD[source], expected[source].counts

            def exact(s: str = source, f: str = field_name, c: Counter[str] = counts) -> dict[str, Any]:
                got = {key: _state_field(host, s, key, f) for key in c}
                return {key: (value, c[key]) for key, value in got.items() if value != c[key]}

            with contextlib.suppress(AssertionError):  # the assertion below says which keys differ
                wait_for(lambda e=exact: not e(), 30, f"{source} entity state", interval=0.5)  # type: ignore[misc]
            assert exact() == {}, f"{source}: key -> (state, expected)"
        entities = "/runtime/webhooks/durabletask/entities/device_activity"
        status, bucket = host.get(f"{entities}/{bucket_for('a/b', ENTITY_KINDS['mobile'].buckets)}")
        assert status == 200 and "a/b" in bucket["keys"]  # a record's key travels in its bucket's state, as it is
        assert host.get(f"{entities}/a%23b")[0] == 400  # an entity key Azure Storage would refuse
        stats = host.get("/dashboard/api/stats")[1]
        assert all(not entry.get("waiting") for entry in stats["sources"].values())
        assert host.interrupt() == 0, host.output()
    finally:
        if host.process.poll() is None:
            host.kill()


def _state_field(host: DevHost, source: str, key: str, field_name: str) -> Any:
    status, body = host.get(f"/api/state/{source}?key={quote(key, safe='')}")  # carries any key exactly
    return body.get(field_name) if status == 200 else status


def test_a_partition_waiting_on_the_lake_is_loud_and_shows_its_backlog(broker: str, tmp_path: Path) -> None:
    """An infrastructure failure (the lake's source directory is a file) keeps the partition waiting, visibly."""
    run, lake = Run(), tmp_path / "lake"
    topic = run.topic("mobile")
    ensure_topics({"bootstrap.servers": broker}, [topic], partitions=1)
    blocker = lake / "raw" / "mobile"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a directory")
    messages = generate_messages(SOURCES["mobile"], 50, now=FIXED_NOW, seed=4, start_index=0)
    produce(broker, topic, [(m.key, m.value.encode()) for m in messages])
    host = DevHost(broker, lake, run.settings(["mobile"]), "--no-timers")
    try:

        def waiting() -> dict[str, Any] | None:
            entry = host.get("/dashboard/api/stats")[1]["sources"].get("mobile") or {}
            return entry if entry.get("waiting") and entry.get("lag") == 50 else None

        entry = wait_for(waiting, 30, "the dashboard to show mobile's partition waiting with lag 50")
        assert entry["waiting"]["0"]["first_offset"] == 0 and entry["waiting"]["0"]["last_offset"] == 49
        assert host.function_stats()["process_mobile"]["lag"] == 50
        wait_for(lambda: "partition waiting: source=mobile" in host.output(), 10, "the waiting partition's error log")
        line = next(x for x in host.output().splitlines() if "partition waiting: source=mobile" in x)
        assert "ERROR" in line and "partition=0 offsets=0-49 attempts=1" in line and "class=infrastructure" in line
        assert "Not a directory" in line
        assert landed_rows(lake, "raw", "mobile") == []

        blocker.unlink()  # someone fixes the lake: the same batch lands, nothing was skipped
        wait_for(lambda: len(landed_rows(lake, "raw", "mobile")) == 50, 60, "the waiting batch to land")
        wait_for(
            lambda: committed_lag(broker, run.settings(["mobile"])["MOBILE_CONSUMER_GROUP"], topic) == 0, 30, "commit"
        )
        wait_for(lambda: not (host.get("/dashboard/api/stats")[1]["sources"]["mobile"].get("waiting")), 10, "no wait")
        assert host.interrupt() == 0, host.output()
    finally:
        if host.process.poll() is None:
            host.kill()
