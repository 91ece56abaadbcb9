"""Keyed state through the local host on a real broker: exact counts, replay, SIGKILL, restart, the query API.

The tests are async (pytest-asyncio) so that they can ask the query API for thousands of keys concurrently.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import aiohttp

from shared.generator_ticks import generate_messages
from shared.sources import SOURCES
from tests.conftest import FIXED_NOW
from tests.integration.harness import DevHost, Run, landed_rows, produce, wait_for, wait_for_async


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

    await wait_for_async(matches, timeout, f"{source} entity counts")


async def test_query_api_returns_exact_counts_and_replay_changes_nothing(broker: str, tmp_path: Path) -> None:
    run, lake = Run(), tmp_path / "lake"
    expected = _produce(broker, run, "mobile", 3000)
    host = DevHost(broker, lake, run.settings(["mobile"]), "--no-timers")
    try:
        await _wait_for_counts(host, "mobile", "events", expected)
        assert host.get("/api/state/mobile/no-such-device")[0] == 404
        assert host.get("/api/state/unknown/x")[0] == 400
        assert host.get("/api/state/mobile/any%20key%2F%3F")[0] == 404  # any key can be asked for; none has state
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
        wait_for(lambda: replay.function_stats()["device_activity"]["events"] >= len(expected), 60, "replayed signals")
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
    host = DevHost(broker, lake, run.settings(["sensors"]), "--no-timers")
    wait_for(lambda: host.function_stats()["sensor_stats"]["events"] >= 100, 60, "entities to be signalled")
    host.kill()
    assert len(landed_rows(lake, "raw", "sensors")) < 20000  # killed mid-stream
    restarted = DevHost(broker, lake, run.settings(["sensors"]), "--no-timers")
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
