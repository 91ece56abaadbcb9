"""Keyed state through the local host on a real broker: exact counts, replay, SIGKILL, restart, the query API.

The tests are async (pytest-asyncio) so that they can ask the query API for thousands of keys concurrently.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from shared.generator_ticks import generate_messages
from shared.reconcile import group_is_idle
from shared.sources import SOURCES
from shared.state import device_activity
from shared.state.bucket_counts import RECORD_PATH
from shared.state.buckets import bucket_for
from shared.state.keys import encode_key
from tests.conftest import FIXED_NOW
from tests.integration.harness import DevHost, Run, landed_rows, produce, wait_for, wait_for_async
from tests.unit.tools.no_settings import NO_SETTINGS
from tools import migrate_state


def _produce(broker: str, run: Run, source: str, count: int, seed: int = 5) -> Counter[str]:
    messages = generate_messages(SOURCES[source], count, now=FIXED_NOW, seed=seed, start_index=0)
    produce(broker, run.topic(source), [(m.key, m.value.encode()) for m in messages])
    return Counter(m.key for m in messages)


async def _counts(host: DevHost, source: str, field: str, keys: Counter[str]) -> dict[str, int | None]:
    """Every key's ``field`` through the query API, the requests concurrent."""

    async def one(session: aiohttp.ClientSession, key: str) -> int | None:
        async with session.get(f"http://127.0.0.1:{host.port}/api/state/{source}/{key}") as response:
            return (await response.json()).get(field) if response.status == 200 else None

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
        values = await asyncio.gather(*(one(session, key) for key in keys))
    return dict(zip(keys, values, strict=True))


async def _wait_for_counts(host: DevHost, source: str, field: str, expected: Counter[str], timeout: float = 90) -> None:
    async def matches() -> bool:
        return await _counts(host, source, field, expected) == dict(expected)

    try:
        await wait_for_async(matches, timeout, f"{source} entity counts")
    except AssertionError as timeout_error:  # say whether counts were short (slow, lost) or over (doubled)
        counts = await _counts(host, source, field, expected)
        short = sum(1 for key, want in expected.items() if (counts[key] or 0) < want)
        over = sum(1 for key, want in expected.items() if (counts[key] or 0) > want)
        stats = host.function_stats()
        raise AssertionError(
            f"{timeout_error}: {short} keys short, {over} over, of {len(expected)}; "
            f"counted {sum(c or 0 for c in counts.values())} of {sum(expected.values())}; stats {stats}; "
            f"host output: {host.output()[-3000:]}"
        ) from None


def _signals_applied(host: DevHost, source: str, entity: str) -> bool:
    """Every entity operation the source's batches sent has run (signals are applied after the batch returns)."""
    _, snapshot = host.get("/dashboard/api/stats")
    sent = snapshot["sources"].get(source, {}).get("entity_signals", 0)
    applied = {entry["name"]: entry["events"] for entry in snapshot["functions"]}.get(entity, 0)
    return sent > 0 and applied >= sent


async def test_query_api_returns_exact_counts_and_replay_changes_nothing(broker: str, tmp_path: Path) -> None:
    run, lake = Run(), tmp_path / "lake"
    expected = _produce(broker, run, "mobile", 3000)
    host = DevHost(broker, lake, run.settings(["mobile"]), "--no-timers")
    try:
        await _wait_for_counts(host, "mobile", "events", expected)
        assert host.get("/api/state/mobile/no-such-device")[0] == 404
        assert host.get("/api/state/unknown/x")[0] == 400
        assert host.get("/api/state/mobile?key=any%20key%2F%3F%25")[0] == 404  # any key may be asked; none has state
        assert host.get("/api/state/mobile/any%20key%2F%3F")[0] == 400  # '/' in a path key: the query form's
        assert host.get("/api/state/mobile/%FF")[0] == 400  # not percent-encoded UTF-8
        assert host.interrupt() == 0, host.output()
    finally:
        if host.process.poll() is None:
            host.kill()
    replay = DevHost(
        broker, lake, run.settings(["mobile"], MOBILE_CONSUMER_GROUP=f"replay-{run.suffix}"), "--no-timers"
    )
    try:
        wait_for(lambda: replay.function_stats()["process_mobile"]["events"] >= 3000, 90, "the replay to be processed")
        wait_for(lambda: _signals_applied(replay, "mobile", "device_activity"), 60, "every replayed signal applied")
        assert await _counts(replay, "mobile", "events", expected) == dict(expected)
        assert replay.interrupt() == 0, replay.output()
    finally:
        if replay.process.poll() is None:
            replay.kill()
    # A replay by a new group may cut batches differently, so it can land the same records in
    # differently named files (at least once); rows carry (_topic, _partition, _offset) to dedupe.
    assert len({(r["_partition"], r["_offset"]) for r in landed_rows(lake, "raw", "mobile")}) == 3000


async def test_sigkill_mid_stream_then_restart_counts_every_record_once(broker: str, tmp_path: Path) -> None:
    run, lake = Run(), tmp_path / "lake"
    expected = _produce(broker, run, "sensors", 20000)
    # A kill between a landing's ledger write and its files leaves a pending landing that the restarted
    # host (a new owner) must wait out before landing it again: the lease, 150 s by default, 10 s here.
    settings = run.settings(["sensors"], LANDING_LEASE_SECONDS="10")
    host = DevHost(broker, lake, settings, "--no-timers")
    wait_for(lambda: host.function_stats()["sensor_stats"]["events"] >= 100, 60, "entities to be signalled")
    host.kill()
    assert len(landed_rows(lake, "raw", "sensors")) < 20000  # killed mid-stream
    restarted = DevHost(broker, lake, settings, "--no-timers")
    try:
        await _wait_for_counts(restarted, "sensors", "count", expected)
        status, windows = restarted.get(f"/api/state/sensors/{next(iter(expected))}/windows")
        assert status == 200 and sum(w["count"] for w in windows["windows"]) == expected[next(iter(expected))]
        assert restarted.interrupt() == 0, restarted.output()
    finally:
        if restarted.process.poll() is None:
            restarted.kill()
    assert sum(expected.values()) == 20000


def test_clicks_land_joined_with_user_profiles(broker: str, tmp_path: Path) -> None:
    run, lake = Run(), tmp_path / "lake"
    profiles = generate_messages(SOURCES["users"], 200, now=FIXED_NOW, seed=1, start_index=0)
    produce(broker, run.topic("users"), [(m.key, m.value.encode()) for m in profiles])
    host = DevHost(broker, lake, run.settings(["clickstream", "users"]), "--no-timers")
    try:
        known = {m.key for m in profiles}
        wait_for(
            lambda: all(host.get(f"/api/state/users/{key}")[0] == 200 for key in known), 60, "every profile in state"
        )
        _produce(broker, run, "clickstream", 500)
        wait_for(lambda: len(landed_rows(lake, "raw", "clickstream")) >= 500, 60, "clicks to land")
        assert host.interrupt() == 0, host.output()
    finally:
        if host.process.poll() is None:
            host.kill()
    rows = landed_rows(lake, "raw", "clickstream")
    joined = [r for r in rows if r["user_known"] and str(r["userid"]) in known]
    assert joined and all(r["username"] and r["city"] and r["level"] for r in joined)
    assert all(r["username"] is None for r in rows if not r["user_known"])


def _signal_per_key(host: DevHost, rows: list[dict[str, Any]], batch: int = 500) -> None:
    """What the previous version sent: one ``apply`` per key and partition per invocation, to the key's own entity."""
    by_signal: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["_partition"], r["_offset"])):
        by_signal.setdefault(
            (SOURCES["mobile"].entity_key(row), row["_partition"], row["_offset"] // batch), []
        ).append(row)
    last = {}  # the previous version's last invocation ended at the last offset it read
    for row in rows:
        last[row["_partition"]] = max(last.get(row["_partition"], 0), row["_offset"])
    for (key, partition, number), key_rows in by_signal.items():
        payload = {
            "topic": key_rows[0]["_topic"],
            "partition": partition,
            "incarnation": 0,
            "range": [number * batch, min(number * batch + batch - 1, last[partition])],
            "events": [device_activity.compact(row) for row in key_rows],
        }
        url = f"http://127.0.0.1:{host.port}/runtime/webhooks/durabletask/entities/device_activity/{encode_key(key)}"
        request = urllib.request.Request(
            url + "?op=apply", data=json.dumps(json.dumps(payload)).encode(), method="POST"
        )
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202


def _per_key_counts(host: DevHost, keys: Iterable[str]) -> dict[str, int | None]:
    found: dict[str, int | None] = {}
    for key in keys:
        status, body = host.get(f"/runtime/webhooks/durabletask/entities/device_activity/{encode_key(key)}")
        found[key] = body.get("events") if status == 200 else None
    return found


async def test_per_key_state_moves_into_buckets_in_place_losing_and_doubling_nothing(
    broker: str, tmp_path: Path
) -> None:
    """The previous version applied the first two thirds of each partition to per-key entities and committed
    the first half; the rest landed but was never applied. The upgrade: migrate once (processing stopped),
    then the new version resumes the same consumer group, so the third between half and two thirds is
    redelivered across the upgrade (applied before: must not count again) and the rest is new.
    """
    run, lake = Run(), tmp_path / "lake"
    expected = _produce(broker, run, "mobile", 3000)
    previous = run.settings(["mobile"], MOBILE_STATE_ENABLED="false", STATE_BUCKETS="16")
    lands_only = DevHost(broker, lake, previous, "--no-timers")
    try:
        wait_for(lambda: len(landed_rows(lake, "raw", "mobile")) >= 3000, 90, "the records to land")
        (lake / RECORD_PATH).unlink()  # the previous version recorded no bucket counts
        rows = landed_rows(lake, "raw", "mobile")
        ends = Counter(row["_partition"] for row in rows)  # offsets start at 0: a partition's end is its count
        applied_before = [row for row in rows if row["_offset"] < ends[row["_partition"]] * 2 // 3]
        _signal_per_key(lands_only, applied_before)
        before = Counter(SOURCES["mobile"].entity_key(row) for row in applied_before)
        wait_for(lambda: _per_key_counts(lands_only, before) == dict(before), 60, "the per-key entities")
        some_key = next(iter(before))
        assert host_query(lands_only, some_key) == before[some_key]  # read both until migrated
        durable = f"http://127.0.0.1:{lands_only.port}/runtime/webhooks/durabletask"
        arguments = ["--sources", "mobile", "--durable-url", durable, "--settings", NO_SETTINGS]
        with _environment({"LAKE_KIND": "local", "LAKE_LOCAL_ROOT": str(lake), "STATE_BUCKETS": "16"}):
            assert migrate_state.main(arguments) == 0
            assert migrate_state.main(arguments) == 0  # run again: nothing moves twice
        assert lands_only.interrupt() == 0, lands_only.output()
    finally:
        if lands_only.process.poll() is None:
            lands_only.kill()
    group = f"mobile-processor-{run.suffix}"
    _commit(broker, group, run.topic("mobile"), {partition: end // 2 for partition, end in ends.items()})
    upgraded = DevHost(broker, lake, run.settings(["mobile"], STATE_BUCKETS="16"), "--no-timers")
    try:
        await _wait_for_counts(upgraded, "mobile", "events", expected)
        redelivered = sum(end - end // 2 for end in ends.values())
        wait_for(lambda: upgraded.function_stats()["process_mobile"]["events"] >= redelivered, 60, "the redelivery")
        assert await _counts(upgraded, "mobile", "events", expected) == dict(expected)  # nothing doubled either
        bucket = f"/runtime/webhooks/durabletask/entities/device_activity/{bucket_for(some_key, 16)}"
        assert upgraded.get(bucket)[0] == 200
        assert upgraded.interrupt() == 0, upgraded.output()
    finally:
        if upgraded.process.poll() is None:
            upgraded.kill()


async def test_state_moves_to_another_bucket_count_in_place_losing_and_doubling_nothing(
    broker: str, tmp_path: Path
) -> None:
    """A lake that records 16 buckets for mobile moves to 8 (processing idle), then the new layout resumes the
    consumer group from half of each partition: the redelivered half must not count again, new events must."""
    run, lake = Run(), tmp_path / "lake"
    expected = _produce(broker, run, "mobile", 2000)
    before = DevHost(broker, lake, run.settings(["mobile"], STATE_BUCKETS="16"), "--no-timers")
    try:
        await _wait_for_counts(before, "mobile", "events", expected)
        durable = f"http://127.0.0.1:{before.port}/runtime/webhooks/durabletask"
        arguments = ["--sources", "mobile", "--durable-url", durable, "--settings", NO_SETTINGS]
        with _environment({"LAKE_KIND": "local", "LAKE_LOCAL_ROOT": str(lake)}):
            assert migrate_state.main([*arguments, "--to-buckets", "8"]) == 0
            assert migrate_state.main([*arguments, "--to-buckets", "8"]) == 0  # run again: already there
        assert json.loads((lake / RECORD_PATH).read_bytes())["buckets"]["mobile"] == 8
        assert before.interrupt() == 0, before.output()
    finally:
        if before.process.poll() is None:
            before.kill()
    ends = Counter(row["_partition"] for row in landed_rows(lake, "raw", "mobile"))
    _commit(broker, f"mobile-processor-{run.suffix}", run.topic("mobile"), {p: end // 2 for p, end in ends.items()})
    more = _produce(broker, run, "mobile", 500, seed=6)
    after = DevHost(broker, lake, run.settings(["mobile"], STATE_BUCKETS="16"), "--no-timers")  # the record decides
    try:
        redelivered = sum(end - end // 2 for end in ends.values())
        wanted = redelivered + 500
        wait_for(lambda: after.function_stats()["process_mobile"]["events"] >= wanted, 90, "the redelivery")
        await _wait_for_counts(after, "mobile", "events", expected + more)
        some_key = next(iter(expected))
        entities = "/runtime/webhooks/durabletask/entities/device_activity"
        assert after.get(f"{entities}/{bucket_for(some_key, 8)}")[0] == 200
        assert after.interrupt() == 0, after.output()
    finally:
        if after.process.poll() is None:
            after.kill()


async def test_state_moves_to_another_backend_losing_and_doubling_nothing(broker: str, tmp_path: Path) -> None:
    """A durable_backend switch: the state is exported from the backend in use (processing idle), the app
    restarts on an empty one (the local host's entity store removed) and the export is imported into 8
    buckets; then the group resumes from half of each partition: the redelivered half must not count
    again, new events must."""
    run, lake = Run(), tmp_path / "lake"
    expected = _produce(broker, run, "mobile", 2000)
    export = tmp_path / "state.json"
    arguments = ["--sources", "mobile", "--settings", NO_SETTINGS]
    before = DevHost(broker, lake, run.settings(["mobile"], STATE_BUCKETS="16"), "--no-timers")
    try:
        await _wait_for_counts(before, "mobile", "events", expected)
        durable = f"http://127.0.0.1:{before.port}/runtime/webhooks/durabletask"
        with _environment({"LAKE_KIND": "local", "LAKE_LOCAL_ROOT": str(lake)}):
            assert migrate_state.main([*arguments, "--durable-url", durable, "--export", str(export)]) == 0
        assert before.interrupt() == 0, before.output()
    finally:
        if before.process.poll() is None:
            before.kill()
    for store in (tmp_path / "lake.state").glob("entities.sqlite*"):
        store.unlink()  # the new backend holds nothing
    some_key = next(iter(expected))
    switched = DevHost(broker, lake, run.settings(["mobile"], STATE_BUCKETS="16"), "--no-timers")
    try:
        joined = "process_mobile assigned"  # stopped mid-join, a member holds the group's next rebalance up
        wait_for(lambda: joined in switched.output(), 60, "the switched host's consumer to join its group")
        assert host_query(switched, some_key) is None
        durable = f"http://127.0.0.1:{switched.port}/runtime/webhooks/durabletask"
        with _environment({"LAKE_KIND": "local", "LAKE_LOCAL_ROOT": str(lake)}):
            moved = [*arguments, "--durable-url", durable, "--import", str(export), "--to-buckets", "8"]
            assert migrate_state.main(moved) == 0
        assert json.loads((lake / RECORD_PATH).read_bytes())["buckets"]["mobile"] == 8
        assert switched.interrupt() == 0, switched.output()
    finally:
        if switched.process.poll() is None:
            switched.kill()
    ends = Counter(row["_partition"] for row in landed_rows(lake, "raw", "mobile"))
    _commit(broker, f"mobile-processor-{run.suffix}", run.topic("mobile"), {p: end // 2 for p, end in ends.items()})
    more = _produce(broker, run, "mobile", 500, seed=6)
    after = DevHost(broker, lake, run.settings(["mobile"], STATE_BUCKETS="16"), "--no-timers")
    try:
        wanted = sum(end - end // 2 for end in ends.values()) + 500
        wait_for(lambda: after.function_stats()["process_mobile"]["events"] >= wanted, 90, "the redelivery")
        await _wait_for_counts(after, "mobile", "events", expected + more)
        assert after.interrupt() == 0, after.output()
    finally:
        if after.process.poll() is None:
            after.kill()


def _commit(broker: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Set the group's committed offsets once its last member has left: where the next version resumes.

    The broker takes a commit from outside the group only while the group is empty, and refuses it per
    partition (no exception), so both are checked."""
    admin = AdminClient({"bootstrap.servers": broker})

    def idle() -> bool:
        return group_is_idle(str(admin.describe_consumer_groups([group])[group].result(10).state))

    wait_for(idle, 60, f"group {group} to have no members")
    consumer = Consumer({"bootstrap.servers": broker, "group.id": group, "enable.auto.commit": False})
    try:
        placed = consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
        assert placed is not None and not [tp for tp in placed if tp.error], placed
    finally:
        consumer.close()


def host_query(host: DevHost, key: str) -> int | None:
    status, body = host.get(f"/api/state/mobile/{key}")
    return body.get("events") if status == 200 else None


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
