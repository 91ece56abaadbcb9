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
are read in the latest life it holds for the partition (lives only go forward). A key keeps to one
partition, so one worker carries it at a time. What is carried is what a worker's batches added since
its buckets were last read (at most the cache's time to live, ``StateJoiner``); an event whose signal never
reaches its bucket (refused: ``entity_rejected``; a row not signalled, with no other event of its partition
for that bucket in the batch) stays until a read shows its offset applied (a redrive) or the worker restarts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.offset_ranges import OffsetRanges, contains
from shared.source_model import Row
from shared.state.offsets import APPLIED

Event = list[Any]  # [topic, partition, offset, value]
Bucket = dict[str, Any] | None


class Carried:
    """Per key bucket and key, the events carried (one store per lookup and worker: ``StateJoiner``)."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, list[Event]]] = {}

    def settle(self, home: str, bucket: Bucket) -> None:
        """``home`` was just read from its entity as ``bucket``: drop the events it shows applied."""
        held = self.events.get(home)
        if not held:
            return
        applied = _latest_lives(bucket)
        for key, events in list(held.items()):
            held[key] = [event for event in events if not _shown(applied, event[0], event[1], event[2])]
            if not held[key]:
                del held[key]
        if not held:
            del self.events[home]


class Carry:
    """One batch's use of ``Carried``: its keys' buckets (``homes``: key -> bucket) as read for it (``buckets``)."""

    def __init__(self, carried: Carried, homes: Mapping[str, str], buckets: Mapping[str, Bucket]) -> None:
        self.carried = carried
        self.homes = homes
        self.buckets = buckets
        self.lives: dict[str, Lives] = {}  # each bucket's, once asked for

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
            self.carried.events[home][key] = kept
        return [event[3] for event in kept]

    def add(self, key: str, row: Row, value: Any) -> bool:
        """Carry the row's ``value`` for ``key``; False (not carried) when its bucket as read has applied it."""
        home = self.homes[key]
        topic, partition, offset = row["_topic"], row["_partition"], row["_offset"]
        if home not in self.lives:
            self.lives[home] = _latest_lives(self.buckets.get(home))
        if _shown(self.lives[home], topic, partition, offset):
            return False
        self.carried.events.setdefault(home, {}).setdefault(key, []).append([topic, partition, offset, value])
        return True


Lives = dict[tuple[str, int], tuple[int, OffsetRanges]]  # (topic, partition) -> its latest life, that life's ranges


def _latest_lives(bucket: Bucket) -> Lives:
    """The applied ranges of each topic-partition's latest life the bucket holds. Ranges of another shape (damaged
    outside this code) are left out: the lookup must not stop its source's batches (``joins.Lookup``)."""
    latest: Lives = {}
    applied = (bucket or {}).get(APPLIED)
    for where, ranges in applied.items() if isinstance(applied, dict) else ():
        named = str(where).rsplit("/", 2)
        if len(named) != 3 or not (named[1].isdigit() and named[2].isdigit() and _are_ranges(ranges)):
            continue
        topic, partition, incarnation = named
        held = latest.get((topic, int(partition)))
        if held is None or int(incarnation) > held[0]:
            latest[(topic, int(partition))] = (int(incarnation), ranges)
    return latest


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
