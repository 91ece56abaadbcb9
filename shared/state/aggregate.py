"""Pre-aggregation: one entity operation per key bucket touched by a batch, never one per event or key.

A batch's rows are grouped by key, each key's events in offset order, and the keys by the bucket
that holds them (``shared.state.buckets``); each bucket gets one ``apply`` whose parts cover the
batch's topic-partitions (``shared.state.bucket_state``). So a batch sends at most
min(distinct keys, buckets) operations, across all the partitions it mixes.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import orjson

from shared.lineage import NO_EVENT_TIME
from shared.offset_ranges import OffsetRanges
from shared.records import OffsetSpan, OffsetSpans, TopicPartition
from shared.source_model import Row
from shared.sources import get_source
from shared.state.buckets import bucket_for, bucket_key
from shared.state.registry import entity_for

MAX_ENTITY_LEAD_MS = 60_000  # clock skew an entity takes at face value; an event further ahead happens now
MAX_SIGNAL_BYTES = 256 * 1024  # an apply's payload as JSON, at most (``within_size``)
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
    caught up). So does an event with no time at all (neither its own nor a Kafka timestamp: it lands at
    epoch 0, which would be its key's first_seen and a session of 1970 for good). The landed row keeps its
    time. The correction depends on the invocation's clock, which a redelivery does not reproduce; that is
    harmless: which events a bucket applies depends on offsets
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
        if latest is not None and (event[1] > latest or row.get("_event_time_source") == NO_EVENT_TIME):
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


def members(signal: Signal) -> Iterator[tuple[str, str, int, int, int]]:
    """The (key, topic, partition, low, high) whose events an ``apply`` carries, ``[low, high]`` its part's range:
    what a refused signal leaves unapplied (only that range when ``within_size`` cut the batch's)."""
    for part in signal.payload.get("parts", []):
        low, high = part["range"]
        for key in part["keys"]:
            yield key, part["topic"], part["partition"], low, high


def within_size(signals: list[Signal], max_bytes: int = MAX_SIGNAL_BYTES) -> list[Signal]:
    """``signals`` with each ``apply`` whose payload is over ``max_bytes`` as sent (JSON) cut into several within it.

    A hot key (a bot, a device stuck in a loop) can put a whole batch's events in one bucket's payload: 640 KB
    for 10,000 clickstream events, 1.7 MB for 10,000 profile updates. The Durable Task Scheduler refuses a
    message over its size limit, and a Python app cannot have the extension move it to a blob (only .NET isolated
    apps can: learn.microsoft.com/azure/durable-task/scheduler/durable-task-scheduler-large-payloads); on Azure
    Storage a message over the queue's 64 KB goes through a blob, paid per operation. So an oversized apply is
    cut by offsets: each part becomes parts of consecutive sub-ranges that tile its range, each holding the
    events and owed offsets within it, packed into signals within ``max_bytes``, in offset order. Each is a batch
    of its own to the bucket (``shared.state.offsets``): applied once, in any order, with the others; sent one after
    another (``send_signals``), since each that overtakes another leaves a gap in the bucket's applied ranges,
    and past ``KEPT_RANGES`` gaps the oldest close. A key's events are folded by event time within each piece,
    not across them (sessions, lateness). A single event over ``max_bytes`` goes alone.
    """
    sized = []
    for signal in signals:
        if signal.operation != "apply" or _sent_bytes(signal.payload, max_bytes) <= max_bytes:
            sized.append(signal)
            continue
        pieces = [piece for part in signal.payload["parts"] for piece in _pieces(part, max_bytes)]
        batch: list[dict[str, Any]] = []
        size = _PAYLOAD_BYTES
        for piece, piece_size in pieces:
            if batch and size + piece_size > max_bytes:
                sized.append(Signal(signal.entity, signal.key, signal.operation, {"parts": batch}))
                batch, size = [], _PAYLOAD_BYTES
            batch.append(piece)
            size += piece_size + _PART_SEPARATOR_BYTES
        sized.append(Signal(signal.entity, signal.key, signal.operation, {"parts": batch}))
    return sized


def _sent_bytes(payload: dict[str, Any], max_bytes: int) -> int:
    """The payload's length as the Durable client sends it (``json.dumps``: a space after each separator, non-ASCII
    and DEL escaped), measured only when it could be over ``max_bytes``: that text is at most 6 times the compact
    UTF-8 JSON orjson writes (DEL, one byte there, is ``\\u007f``; a separator gains a space; a character of 2-4
    UTF-8 bytes becomes 6 or 12)."""
    compact = len(orjson.dumps(payload))
    return compact if 6 * compact <= max_bytes else len(json.dumps(payload))


_PAYLOAD_BYTES = len(json.dumps({"parts": []}))
_PART_SEPARATOR_BYTES = len(", ")
_RANGE_BYTES = len(', "range": [, ]') + 2 * 20  # two offsets of at most 20 digits
_KEY_BYTES = len(', "": []')  # a key's name and its list, counted with each of its events: an upper bound
_OWED_BYTES = len(", ") + 20


def _pieces(part: dict[str, Any], max_bytes: int) -> Iterator[tuple[dict[str, Any], int]]:
    """``part`` cut at offsets into parts whose ranges tile its range, each (with its size as JSON, at most) within
    ``max_bytes`` unless one event alone is over it. Owed offsets go with the sub-range holding them."""
    shell = {name: value for name, value in part.items() if name not in ("keys", "owed", "range")}
    base = len(json.dumps(shell | {"keys": {}, "owed": []})) + _RANGE_BYTES
    owed = part.get("owed", ())
    items = sorted(
        [(event[0], key, event) for key, events in part["keys"].items() for event in events]
        + [(offset, None, None) for offset in owed],
        key=itemgetter(0),
    )
    low, high = part["range"]
    keys: dict[str, list[list[Any]]] = {}
    piece_owed: list[int] = []
    size, last = base, None
    for offset, key, event in items:
        item_size = _OWED_BYTES if key is None else len(json.dumps(event)) + len(json.dumps(key)) + _KEY_BYTES
        if last is not None and offset > last and size + item_size > max_bytes:  # never inside one offset
            yield _piece(shell, low, offset - 1, keys, piece_owed), size
            low, keys, piece_owed, size = offset, {}, [], base
        last = offset
        if key is None:
            piece_owed.append(offset)
        else:
            keys.setdefault(key, []).append(event)
        size += item_size
    yield _piece(shell, low, high, keys, piece_owed), size


def _piece(
    shell: dict[str, Any], low: int, high: int, keys: dict[str, list[list[Any]]], owed: list[int]
) -> dict[str, Any]:
    piece = shell | {"range": [low, high], "keys": keys}
    if owed:
        piece["owed"] = owed
    return piece
