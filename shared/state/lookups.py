"""Per-batch state lookups (each source's ``lookup`` in ``shared.state.registry``): one read per key,
cached; signals, bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Protocol

from shared.sources.base import Row
from shared.state.aggregate import Signal
from shared.state.cache import TtlCache
from shared.state.joins import JoinOutcome
from shared.state.registry import entity_for

CONCURRENT_REQUESTS = 32


class StateGateway(Protocol):
    """How processing reaches entities: the durable client in Azure and on the local host."""

    async def read(self, entity: str, key: str) -> dict[str, Any] | None: ...

    async def signal(self, signal: Signal) -> None: ...


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


class StateJoiner:
    """What processing asks of state before landing. One per source per worker; its caches outlive invocations."""

    def __init__(self, ttl_seconds: float = 30.0) -> None:
        self.ttl_seconds = ttl_seconds
        self.caches: dict[str, TtlCache[dict[str, Any] | None]] = {}

    async def join(self, gateway: StateGateway, source: str, rows: list[Row]) -> JoinOutcome:
        """Apply the source's lookup to ``rows`` (in place); a source without one passes through."""
        kind = entity_for(source)
        lookup = kind.lookup if kind else None
        if lookup is None:
            return JoinOutcome()
        cache = self.caches.setdefault(lookup.entity, TtlCache(self.ttl_seconds))
        return lookup.apply(rows, await read_cached(gateway, cache, lookup.entity, lookup.keys(rows)))
