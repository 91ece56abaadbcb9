"""Per-batch state lookups (each source's ``lookup`` in ``shared.state.registry``): one read per key
bucket, cached; signals, bounded."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from shared.source_model import Row
from shared.state.aggregate import Signal
from shared.state.bucket_state import is_bucket_state, key_state
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

    async def read(self, entity: str, key: str) -> Any:
        """The entity's state as stored: any JSON value (a bucket's is an object unless damaged outside this
        code), or ``None`` when the entity does not exist or holds nothing."""

    async def signal(self, signal: Signal) -> None: ...


async def _bounded(calls: Iterable[Any]) -> list[Any]:
    gate = asyncio.Semaphore(CONCURRENT_REQUESTS)

    async def run(call: Any) -> Any:
        async with gate:
            return await call

    return list(await asyncio.gather(*(run(call) for call in calls)))


class BucketReads:
    """Which answers of a lookup's bucket reads a worker keeps: only one whose read began after the bucket's last
    kept answer arrived.

    Invocations on one worker read an expired bucket at once, and the entity may answer them in any order. An
    answer kept after a newer one would undo what the newer one settled (``Carried.settle``): the readings it
    showed applied, no longer carried, would count nowhere until the bucket is read again. Of reads that overlap,
    the first answer to arrive is kept; the others are not cached and settle nothing.
    """

    def __init__(self) -> None:
        self._ticks = itertools.count()
        self._kept_at: dict[str, int] = {}  # per bucket read (at most N per layout), its kept answer's tick

    def begin(self) -> int:
        """The tick a read begins at."""
        return next(self._ticks)

    def keep(self, home: str, begun: int) -> bool:
        """Whether to keep the answer, arriving now, of the read of ``home`` that began at tick ``begun``."""
        if begun < self._kept_at.get(home, -1):
            return False
        self._kept_at[home] = next(self._ticks)
        return True


async def read_cached(
    gateway: StateGateway,
    cache: TtlCache[dict[str, Any] | None],
    carried: Carried,
    reads: BucketReads,
    entity: str,
    homes: set[str],
) -> dict[str, dict[str, Any] | None]:
    """States of the buckets ``homes``: each read once, concurrently, unless cached (and fresh). An answer ``reads``
    keeps is cached and settles what ``carried`` holds for its bucket; for one it does not, the batch takes the
    answer kept. An answer not of a bucket's shape is no state (``_bucket_or_none``)."""
    missing = sorted(cache.missing(homes))
    begun = reads.begin()
    read = await _bounded(gateway.read(entity, home) for home in missing)
    answers = [_bucket_or_none(entity, home, state) for home, state in zip(missing, read, strict=True)]
    for home, state in zip(missing, answers, strict=True):
        if reads.keep(home, begun):
            cache.put(home, state)
            carried.settle(home, state)
    held = cache.get_many(homes)
    for home, state in zip(missing, answers, strict=True):
        held.setdefault(home, state)  # the cache empties itself at its limit: what was read still serves this batch
    return held


def _bucket_or_none(entity: str, home: str, state: Any) -> dict[str, Any] | None:
    """``state`` as read of bucket ``home``, or no state when it is not of a bucket's shape (damaged outside this
    code, as the state API names it), logged once per read: its keys are joined as no state and its carried events
    stay carried, so the batch lands instead of every batch of the source failing on it."""
    if state is None or is_bucket_state(state):
        return state
    log.warning("%s bucket %r is not of a bucket's shape; read as no state", entity, home)
    return None


async def send_signals(gateway: StateGateway, signals: list[Signal]) -> None:
    """Send ``signals``, entities at once and each entity's one after another, in the order given (the pieces of
    a cut apply, ``within_size``, in offset order)."""
    by_entity: dict[tuple[str, str], list[Signal]] = {}
    for signal in signals:
        by_entity.setdefault((signal.entity, signal.key), []).append(signal)

    async def in_order(entity_signals: list[Signal]) -> None:
        for signal in entity_signals:
            await gateway.signal(signal)

    await _bounded(in_order(entity_signals) for entity_signals in by_entity.values())


class StateJoiner:
    """What processing asks of state before landing. One per source per worker; its caches, and what it carries
    of its batches until the entities are read with them (``shared.state.carried``), outlive invocations."""

    def __init__(self, ttl_seconds: float = 30.0) -> None:
        self.ttl_seconds = ttl_seconds
        self.caches: dict[str, TtlCache[dict[str, Any] | None]] = {}
        self.carried: dict[str, Carried] = {}
        self.reads: dict[str, BucketReads] = {}

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
        reads = self.reads.setdefault(lookup.entity, BucketReads())
        held = await read_cached(gateway, cache, carried, reads, lookup.entity, set(homes.values()))
        states = {key: key_state(held.get(home), key) for key, home in homes.items()}
        return lookup.apply(rows, _usable(lookup, states), Carry(carried, homes, held))


def _usable(lookup: Lookup, states: dict[str, dict[str, Any] | None]) -> dict[str, dict[str, Any] | None]:
    """``states`` with each one of a shape the lookup cannot read as no state, logged once per key and batch."""
    for key, state in states.items():
        if state is not None and not lookup.usable(state):
            log.error("%s state of key %r is not of the shape the join reads; joined as no state", lookup.entity, key)
            states[key] = None
    return states
