"""Per-batch state lookups: profiles for the join, sensor stats for anomalies; one read per key, cached."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from shared.sources.base import Row
from shared.state.aggregate import Signal
from shared.state.anomaly import flag_anomalies
from shared.state.cache import TtlCache
from shared.state.enrich import enrich_clicks, profile_keys
from shared.state.sensor_stats import ENTITY as SENSOR_STATS
from shared.state.sensor_stats import KEPT_WINDOWS, WINDOW_MS
from shared.state.user_profile import ENTITY as PROFILES

CONCURRENT_REQUESTS = 32


class StateGateway(Protocol):
    """How processing reaches entities: the durable client in Azure and on the local host."""

    async def read(self, entity: str, key: str) -> dict[str, Any] | None: ...

    async def signal(self, signal: Signal) -> None: ...


@dataclass(frozen=True, slots=True)
class JoinOutcome:
    anomalies: int = 0
    late: int = 0


async def _bounded(calls: Iterable[Any]) -> list[Any]:
    gate = asyncio.Semaphore(CONCURRENT_REQUESTS)

    async def run(call: Any) -> Any:
        async with gate:
            return await call

    return list(await asyncio.gather(*(run(call) for call in calls)))


async def read_cached(
    gateway: StateGateway, cache: TtlCache[dict[str, Any] | None], entity: str, keys: set[str]
) -> dict[str, dict[str, Any] | None]:
    """States of ``keys``; only those not cached (or expired) are read, concurrently."""
    missing = sorted(cache.missing(keys))
    for key, state in zip(missing, await _bounded(gateway.read(entity, key) for key in missing), strict=True):
        cache.put(key, state)
    return cache.get_many(keys)


async def send_signals(gateway: StateGateway, signals: list[Signal]) -> None:
    await _bounded(gateway.signal(signal) for signal in signals)


def count_late(rows: list[Row], stats: dict[str, dict[str, Any] | None]) -> int:
    """Readings older than the oldest window their sensor keeps: counted late, not windowed."""
    late = 0
    for row in rows:
        windows = (stats.get(row["sensor_id"]) or {}).get("windows") or []
        if windows and row["_event_time"] < windows[-1][0] - (KEPT_WINDOWS - 1) * WINDOW_MS:
            late += 1
    return late


class StateJoiner:
    """What processing asks of state before landing. One per source per worker; its caches outlive invocations."""

    def __init__(self, ttl_seconds: float = 30.0) -> None:
        self.profiles: TtlCache[dict[str, Any] | None] = TtlCache(ttl_seconds)
        self.sensor_stats: TtlCache[dict[str, Any] | None] = TtlCache(ttl_seconds)

    async def join(self, gateway: StateGateway, source: str, rows: list[Row]) -> JoinOutcome:
        """Enrich clicks with profiles; flag sensor anomalies. Other sources pass through."""
        if source == "clickstream":
            enrich_clicks(rows, await read_cached(gateway, self.profiles, PROFILES, profile_keys(rows)))
        elif source == "sensors":
            keys = {row["sensor_id"] for row in rows}
            stats = await read_cached(gateway, self.sensor_stats, SENSOR_STATS, keys)
            return JoinOutcome(anomalies=flag_anomalies(rows, stats), late=count_late(rows, stats))
        return JoinOutcome()
