"""Pre-aggregation: one entity operation per key bucket touched by a batch, never one per event or key.

A batch's rows are grouped by key, each key's events in offset order, and the keys by the bucket
that holds them (``shared.state.buckets``); each bucket gets one ``apply`` whose parts cover the
batch's topic-partitions (``shared.state.bucket_state``). So a batch sends at most
min(distinct keys, buckets) operations, across all the partitions it mixes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from shared.offset_ranges import OffsetRanges
from shared.records import OffsetSpan, OffsetSpans, TopicPartition
from shared.source_model import Row
from shared.sources import get_source
from shared.state.buckets import bucket_for, bucket_key
from shared.state.registry import entity_for

MAX_ENTITY_LEAD_MS = 60_000  # clock skew an entity takes at face value; an event further ahead happens now
PartitionLife = tuple[str, int, int]  # topic, partition, incarnation: one life of a topic-partition


@dataclass(frozen=True, slots=True)
class Signal:
    """One entity operation; ``key`` is the entity key as sent (a bucket key, or an encoded per-key key)."""

    entity: str
    key: str
    operation: str
    payload: dict[str, Any]


def signals_for(
    source_name: str,
    rows: list[Row],
    spans: OffsetSpans | None = None,
    *,
    buckets: int | None = None,
    life_spans: Mapping[PartitionLife, OffsetSpan] | None = None,
    now_ms: int | None = None,
) -> list[Signal]:
    """The ``apply`` signals for a batch's landed rows; [] for a source without state.

    Rows arrive in offset order within each partition (as the trigger delivers them), so each
    key's events are in offset order too. ``spans`` holds each partition's offset span in the
    batch (all records, landed or not); a part carries its partition's span and incarnation so
    the bucket can tell which offsets it has applied (``shared.state.offsets``). ``buckets`` is
    N as the lake records it (``shared.state.bucket_counts``), needed for a keyed source.
    ``life_spans`` holds the span of each life of a partition whose batch crossed the point where
    its offsets restarted (``PartitionBatch.life_spans``); such a life's part carries that span.
    ``now_ms``: the invocation's clock. An event more than ``MAX_ENTITY_LEAD_MS`` past it (a producer
    whose clock, and so the Kafka timestamp its event time is checked against, runs ahead) reaches the
    entity as happening now: at its own time it would push its key's hour of windows out, and make the
    key's later events late to their sessions and older than its last value (frozen until the clock
    caught up). The landed row keeps its time. The correction depends on the invocation's clock, which
    a redelivery does not reproduce; that is harmless: which events a bucket applies depends on offsets
    only, never on event times, and an event is applied once, by the first signal carrying its offset
    to reach its bucket, so the state holds the time one delivery gave it, never two.
    """
    kind = entity_for(source_name)
    if kind is None or not rows:
        return []
    if buckets is None:
        raise ValueError(f"{source_name} keeps keyed state: its bucket count (the lake's record) is needed")
    count = buckets
    entity_key, compact = get_source(source_name).entity_key, kind.compact
    latest = None if now_ms is None else now_ms + MAX_ENTITY_LEAD_MS
    by_key: dict[tuple[str, str, int, int], list[list[Any]]] = {}
    for row in rows:
        group = (str(entity_key(row)), row["_topic"], row["_partition"], row["_incarnation"])
        event = compact(row)  # [offset, event_ms, ...]
        if latest is not None and event[1] > latest:
            event[1] = now_ms
        events = by_key.get(group)
        if events is None:
            by_key[group] = [event]
        else:
            events.append(event)
    homes: dict[str, str] = {}
    by_bucket: dict[str, dict[PartitionLife, dict[str, list[list[Any]]]]] = {}
    for (key, topic, partition, incarnation), events in by_key.items():
        home = homes.get(key)
        if home is None:
            home = homes[key] = bucket_for(key, count)
        by_bucket.setdefault(home, {}).setdefault((topic, partition, incarnation), {})[key] = events
    spans, lives = spans or {}, life_spans or {}
    return [
        Signal(kind.name, home, "apply", {"parts": [_part(where, keys, spans, lives) for where, keys in parts.items()]})
        for home, parts in by_bucket.items()
    ]


Owed = Mapping[PartitionLife, Collection[int]]  # offsets owed, by partition life


def with_owed(source_name: str, signals: list[Signal], owed: Owed, buckets: int) -> list[Signal]:
    """``signals`` with every bucket of the ``buckets`` told, in the same operation that marks the batch's range,
    which offsets of that range it owes: they count, but the batch has no rows of them (raw/ holds rows an earlier
    delivery landed, which this one rejected), so their bucket applies their events when ``tools.redrive``
    re-signals them from raw/.

    Every bucket, since without a valid row the entity key, and so the bucket, is not known (a record's Kafka key
    need not be its entity key): a bucket signalled for the life would mark the offset applied, and one not
    signalled would close the gap after ``KEPT_RANGES`` later ranges. A bucket owing an offset that is not its
    key's applies nothing for it; such entries go with the oldest past ``KEPT_OWED``. So a batch holding such
    a record sends one operation to each of the N buckets: rare (a change between two deliveries of a batch
    whose signals failed), and each a part of ranges alone where the bucket had no part of the life.
    """
    kind = entity_for(source_name)
    if kind is None or not owed:
        return signals
    by_key = {signal.key: signal for signal in signals}
    for index in range(buckets):
        home = bucket_key(index, buckets)
        signal = by_key.get(home)
        if signal is None:
            signal = by_key[home] = Signal(kind.name, home, "apply", {"parts": []})
            signals.append(signal)
        parts = {(part["topic"], part["partition"], part["incarnation"]): part for part in signal.payload["parts"]}
        for (topic, partition, life), offsets in owed.items():
            part = parts.get((topic, partition, life))
            if part is None:
                part = {"topic": topic, "partition": partition, "incarnation": life, "keys": {}}
                part["range"] = [min(offsets), max(offsets)]
                signal.payload["parts"].append(part)
            low, high = part["range"]
            part["owed"] = sorted({*part.get("owed", ()), *(offset for offset in offsets if low <= offset <= high)})
    return signals


def with_holes(signals: list[Signal], holes: Mapping[PartitionLife, OffsetRanges]) -> list[Signal]:
    """``signals`` with each part told its partition life's holes (``Ledger.holes``): offsets the landing ledger
    has not landed, below ones it has. Its bucket keeps any gap that meets them open (``offsets.mark``), so the
    events a rewind lands there later count, however many ranges the bucket gathered meanwhile."""
    if not holes:
        return signals
    for signal in signals:
        for part in signal.payload["parts"]:
            found = holes.get((part["topic"], part["partition"], part["incarnation"]))
            if found:
                part["holes"] = found
    return signals


def owing(signal: Signal) -> Signal:
    """What a bucket is sent when the entity API refused ``signal``: its parts' ranges, with every event's offset
    and every offset the part named owed, and no events, so that ``tools.redrive`` re-applies each refused event
    once, however late."""
    parts = [
        {name: value for name, value in part.items() if name not in ("keys", "owed")}
        | {"keys": {}}
        | {"owed": sorted({*part.get("owed", ()), *(event[0] for events in part["keys"].values() for event in events)})}
        for part in signal.payload["parts"]
    ]
    return Signal(signal.entity, signal.key, signal.operation, {"parts": parts})


def _part(
    where: PartitionLife,
    keys: dict[str, list[list[Any]]],
    spans: OffsetSpans,
    lives: Mapping[PartitionLife, OffsetSpan],
) -> dict[str, Any]:
    topic, partition, incarnation = where
    batch_range = lives.get(where) or spans.get(TopicPartition(topic, partition))
    if batch_range is None:
        offsets = [event[0] for events in keys.values() for event in events]
        batch_range = OffsetSpan(min(offsets), max(offsets))
    low, high = batch_range
    return {"topic": topic, "partition": partition, "incarnation": incarnation, "range": [low, high], "keys": keys}


def members(signal: Signal) -> Iterator[tuple[str, str, int]]:
    """The (key, topic, partition) whose events an ``apply`` carries: what a refused signal leaves unapplied."""
    for part in signal.payload.get("parts", []):
        for key in part["keys"]:
            yield key, part["topic"], part["partition"]
