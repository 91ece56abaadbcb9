"""Per-batch state lookups (each source's ``lookup`` in ``shared.state.registry``): one read per key
bucket, cached; signals, bounded."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from shared.source_model import Row
from shared.state.aggregate import Signal
from shared.state.bucket_state import key_state
from shared.state.buckets import bucket_for
from shared.state.cache import TtlCache
from shared.state.carried import Carried, Carry
from shared.state.joins import JoinOutcome, Lookup
from shared.state.registry import entity_for, source_of_entity

CONCURRENT_REQUESTS = 32
log = logging.getLogger("streamingpoc.state")


class StateGateway(Protocol):
    """How processing reaches entities: the durable client in Azure and on the local host.

    ``key`` is the entity key as sent: a bucket key (``shared.state.buckets``), or a per-key
    entity's key already encoded (``shared.state.keys``).
    """

    async def read(self, entity: str, key: str) -> dict[str, Any] | None: ...

    async def signal(self, signal: Signal) -> None: ...


async def _bounded(calls: Iterable[Any]) -> list[Any]:
    gate = asyncio.Semaphore(CONCURRENT_REQUESTS)

    async def run(call: Any) -> Any:
        async with gate:
            return await call

    return list(await asyncio.gather(*(run(call) for call in calls)))


async def read_cached(
    gateway: StateGateway, cache: TtlCache[dict[str, Any] | None], carried: Carried, entity: str, homes: set[str]
) -> dict[str, dict[str, Any] | None]:
    """States of the buckets ``homes``: each read once, concurrently, unless cached (and fresh). A bucket read
    settles what ``carried`` holds for it."""
    missing = sorted(cache.missing(homes))
    for home, state in zip(missing, await _bounded(gateway.read(entity, home) for home in missing), strict=True):
        cache.put(home, state)
        carried.settle(home, state)
    return cache.get_many(homes)


async def send_signals(gateway: StateGateway, signals: list[Signal]) -> None:
    await _bounded(gateway.signal(signal) for signal in signals)


class StateJoiner:
    """What processing asks of state before landing. One per source per worker; its caches, and what it carries
    of its batches until the entities are read with them (``shared.state.carried``), outlive invocations."""

    def __init__(self, ttl_seconds: float = 30.0) -> None:
        self.ttl_seconds = ttl_seconds
        self.caches: dict[str, TtlCache[dict[str, Any] | None]] = {}
        self.carried: dict[str, Carried] = {}

    async def join(
        self, gateway: StateGateway, source: str, rows: list[Row], buckets: Mapping[str, int]
    ) -> JoinOutcome:
        """Apply the source's lookup to ``rows`` (in place); a source without one passes through.

        ``buckets`` is N per keyed source (``shared.state.bucket_counts``), the looked-up one's
        included; the caches hold whole buckets.
        """
        kind = entity_for(source)
        lookup = kind.lookup if kind else None
        if lookup is None:
            return JoinOutcome()
        cache = self.caches.setdefault(lookup.entity, TtlCache(self.ttl_seconds))
        carried = self.carried.setdefault(lookup.entity, Carried())
        count = buckets[source_of_entity(lookup.entity)]
        homes = {key: bucket_for(key, count) for key in lookup.keys(rows)}
        held = await read_cached(gateway, cache, carried, lookup.entity, set(homes.values()))
        states = {key: key_state(held.get(home), key) for key, home in homes.items()}
        return lookup.apply(rows, _usable(lookup, states), Carry(carried, homes, held))


def _usable(lookup: Lookup, states: dict[str, dict[str, Any] | None]) -> dict[str, dict[str, Any] | None]:
    """``states`` with each one of a shape the lookup cannot read as no state, logged once per key and batch."""
    for key, state in states.items():
        if state is not None and not lookup.usable(state):
            log.error("%s state of key %r is not of the shape the join reads; joined as no state", lookup.entity, key)
            states[key] = None
    return states
