"""What a worker's batches added to the keys its lookups read, carried until a read of their buckets shows it.

A lookup reads a key's bucket before its batch lands, from a cache that outlives invocations
(``shared.state.lookups``), and the batch's signals reach the bucket later: a lookup that judges a
batch on what the earlier batches added (readings on their sensor's running stats,
``shared.state.anomaly``) would judge the same readings differently as they were cut into batches.
So the worker carries, per key, what its batches added that the key's bucket as read has not applied
(``[topic, partition, offset, value]``, in the order added), and the lookup takes a key's state as
its bucket's as read plus what is carried. The rule that keeps it exact:

- a read of a bucket from the entity drops the carried events it shows applied: its state holds them
  now, so none counts twice; one whose signal is still queued stays carried, so none is lost;
- a batch's row its bucket as read shows applied (a batch redelivered after its signals were applied)
  is in the state read already: it is not carried;
- a key's carried events at or past a batch's first offset of their partition are what the batch
  delivers again (a retried or redelivered batch; a topic whose offsets restarted): they are dropped
  before the batch is judged, then judged and carried again, so a redelivery never carries twice.

A row's life (incarnation) is labelled by the landing, after the lookup, so a bucket's applied offsets
are read in the latest life it holds for the partition (lives only go forward). A key moved into its
bucket from another layout (``shared.state.bucket_state``: ``_moved_from`` a bucket of another N, or its
own ``_applied`` from its per-key entity) counts what it applied there as applied too, as its bucket does:
its state holds those events, and the bucket skips them without listing them in its own ranges.

A key keeps to one partition, so one worker carries it at a time. What is carried is what a worker's
batches added since its buckets were last read (at most the cache's time to live, ``StateJoiner``), plus
events whose signal never reaches their bucket (refused: ``entity_rejected``; a row not signalled), which
no read settles. So a store is bounded: a key carries at most ``MAX_CARRIED_PER_KEY`` events (its oldest go
first), and the store ``MAX_CARRIED_EVENTS`` (then keys, all their events, in the order they were last
carried to: a key carried to least recently is the likeliest to be stuck, or in a bucket layout no longer
read). Keys carried are at most as many as the events. An event dropped so counts in no lookup until its
bucket is read with it applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.offset_ranges import OffsetRanges, add, contains
from shared.source_model import Row
from shared.state.bucket_state import MOVED_FROM, ORIGINS, key_state
from shared.state.offsets import APPLIED

# A key's readings over the cache's 30 s and as long again for their signals, at one every 60 ms.
MAX_CARRIED_PER_KEY = 1_000
# About 50 MB (~190 bytes an event); a worker at 10,000 events/s (sensors 23.5%) carries ~140,000 for 60 s.
MAX_CARRIED_EVENTS = 250_000
Event = list[Any]  # [topic, partition, offset, value]
Bucket = dict[str, Any] | None


class Carried:
    """Per key bucket and key, the events carried (one store per lookup and worker: ``StateJoiner``), bounded."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, list[Event]]] = {}
        self.size = 0  # events held, all keys
        self._last_carried: dict[tuple[str, str], None] = {}  # (bucket, key) held, least recently carried to first

    def settle(self, home: str, bucket: Bucket) -> None:
        """``home`` was just read from its entity as ``bucket``: drop the events it shows applied."""
        held = self.events.get(home)
        if not held:
            return
        bucket_lives = _latest_lives(_applied_of(bucket))
        for key, events in list(held.items()):
            applied = _key_lives(bucket, key, bucket_lives)
            self.keep(home, key, [event for event in events if not _shown(applied, event[0], event[1], event[2])])

    def keep(self, home: str, key: str, events: list[Event]) -> None:
        """Carry only ``events`` (some of those carried, in order) for ``key`` of bucket ``home``."""
        held = self.events.setdefault(home, {})
        self.size += len(events) - len(held.get(key, ()))
        if events:
            held[key] = events
            return
        held.pop(key, None)
        self._last_carried.pop((home, key), None)
        if not held:
            del self.events[home]

    def carry(self, home: str, key: str, event: Event) -> None:
        """Carry ``event`` for ``key`` of bucket ``home``, within the bounds (the module's docstring)."""
        events = self.events.setdefault(home, {}).setdefault(key, [])
        events.append(event)
        self.size += 1
        if len(events) > MAX_CARRIED_PER_KEY:
            del events[0]
            self.size -= 1
        self._last_carried.pop((home, key), None)
        self._last_carried[(home, key)] = None
        while self.size > MAX_CARRIED_EVENTS:
            least_home, least_key = next(iter(self._last_carried))
            self.keep(least_home, least_key, [])


class Carry:
    """One batch's use of ``Carried``: its keys' buckets (``homes``: key -> bucket) as read for it (``buckets``)."""

    def __init__(self, carried: Carried, homes: Mapping[str, str], buckets: Mapping[str, Bucket]) -> None:
        self.carried = carried
        self.homes = homes
        self.buckets = buckets
        self.bucket_lives: dict[str, Lives] = {}  # each bucket's, once asked for
        self.key_lives: dict[str, Lives] = {}  # each key's, once asked for

    def start(self, key: str, rows: list[Row]) -> list[Any]:
        """The values carried for ``key`` (its rows in this batch: ``rows``), in the order added, once those the
        rows deliver again are dropped."""
        home = self.homes[key]
        events = self.carried.events.get(home, {}).get(key, [])
        first: dict[tuple[str, int], int] = {}
        for row in rows:
            where = (row["_topic"], row["_partition"])
            first[where] = min(first.get(where, row["_offset"]), row["_offset"])
        kept = [event for event in events if not _delivered_again(event, first)]
        if len(kept) < len(events):
            self.carried.keep(home, key, kept)
        return [event[3] for event in kept]

    def add(self, key: str, row: Row, value: Any) -> bool:
        """Carry the row's ``value`` for ``key``; False (not carried) when its bucket as read has applied it."""
        topic, partition, offset = row["_topic"], row["_partition"], row["_offset"]
        if _shown(self._applied(key), topic, partition, offset):
            return False
        self.carried.carry(self.homes[key], key, [topic, partition, offset, value])
        return True

    def _applied(self, key: str) -> Lives:
        lives = self.key_lives.get(key)
        if lives is None:
            home = self.homes[key]
            bucket = self.buckets.get(home)
            if home not in self.bucket_lives:
                self.bucket_lives[home] = _latest_lives(_applied_of(bucket))
            lives = self.key_lives[key] = _key_lives(bucket, key, self.bucket_lives[home])
        return lives


Lives = dict[tuple[str, int], tuple[int, OffsetRanges]]  # (topic, partition) -> its latest life, that life's ranges


def _latest_lives(*applied: Any) -> Lives:
    """The applied ranges of each topic-partition's latest life in ``applied`` (each ``{position: ranges}``; one
    life's ranges in several are joined). Ranges of another shape (damaged outside this code) are left out: the
    lookup must not stop its source's batches (``joins.Lookup``)."""
    latest: Lives = {}
    for ranges_by_position in applied:
        for where, ranges in ranges_by_position.items() if isinstance(ranges_by_position, dict) else ():
            named = str(where).rsplit("/", 2)
            if len(named) != 3 or not (named[1].isdigit() and named[2].isdigit() and _are_ranges(ranges)):
                continue
            topic, partition, incarnation = named[0], int(named[1]), int(named[2])
            held = latest.get((topic, partition))
            if held is None or incarnation > held[0]:
                latest[(topic, partition)] = (incarnation, ranges)
            elif incarnation == held[0]:
                latest[(topic, partition)] = (incarnation, _joined(held[1], ranges))
    return latest


def _key_lives(bucket: Bucket, key: str, bucket_lives: Lives) -> Lives:
    """The applied ranges that count for ``key``: its bucket's (``bucket_lives``), and for a key moved in, what it
    applied before the move (its old bucket's ranges, kept under ``_origins``, or its own ``_applied``)."""
    state = key_state(bucket, key)
    if state is None or (MOVED_FROM not in state and APPLIED not in state):
        return bucket_lives
    origins = (bucket or {}).get(ORIGINS)
    moved_from = state.get(MOVED_FROM)
    origin = origins.get(moved_from) if isinstance(origins, dict) and isinstance(moved_from, str) else None
    return _latest_lives(_applied_of(bucket), origin, state.get(APPLIED))


def _applied_of(bucket: Bucket) -> Any:
    return (bucket or {}).get(APPLIED)


def _joined(ranges: OffsetRanges, more: OffsetRanges) -> OffsetRanges:
    for low, high in more:
        ranges = add(ranges, low, high)
    return ranges


def _are_ranges(ranges: Any) -> bool:
    return isinstance(ranges, list) and all(
        isinstance(span, list) and len(span) == 2 and all(type(end) is int for end in span) for span in ranges
    )


def _delivered_again(event: Event, first: dict[tuple[str, int], int]) -> bool:
    """Whether a carried event is at or past the batch's first offset of its partition."""
    low = first.get((event[0], event[1]))
    return low is not None and event[2] >= low


def _shown(applied: Lives, topic: str, partition: int, offset: int) -> bool:
    held = applied.get((topic, partition))
    return held is not None and contains(held[1], offset)
