"""The exactly-once guard of every entity: which offsets of each topic-partition it has applied.

A part of a payload carries one batch's events for one topic-partition, each with its offset,
and the batch's whole offset ``range`` for the partition (every event of the entity's keys in
that range is in the part). The entity applies the events whose offsets it has not applied
yet, then adds the range to its applied ranges. Signals may arrive twice, late or out of order
(Durable Functions does not order a client's signals): each event still counts once.

A bucket entity (``shared.state.bucket_state``) keeps these ranges once for all its keys; a per-key
entity of the previous layout keeps them in its own state (``per_key_reduce``), and a key
moved into a bucket keeps them too, so offsets it applied before the move never count twice.

Ranges merge when batches with the entity's events follow each other; where it had no
events, gaps stay. At most ``KEPT_RANGES`` ranges are kept per partition: the oldest gaps are
closed first, so only a signal overtaken by that many newer signals of the same entity would
be ignored. A gap that meets a hole of the landing ledger (offsets it never landed, below ones it
did: a consumer group moved over them) stays open, so a rewind that lands them later counts them.
Ranges are kept per incarnation (``shared.landing.ledger``): a topic whose offsets
restart is counted afresh.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.offset_ranges import OffsetRanges, add, contains, union, without

APPLIED = "_applied"
LEGACY_MARKS = "_offsets"  # state written before ranges: the highest offset applied per partition
KEPT_RANGES = 32
# A key bucket's ledger holes kept per position (``mark``), as KEPT_OWED: the ledger reports its 8 newest gaps and
# its passed-over ranges (8, more once rewinds land parts of them and split them; 16 lost a split hole in a review).
KEPT_HOLES = 64


class BadEvent(ValueError):
    """An event a fold refuses whatever state it folds into: its key keeps its state, and every event of that key in
    the operation is refused with it (``shared.state.bucket_state.apply``: a key folds all or nothing)."""


def partition_id(topic: str, partition: int, incarnation: int = 0) -> str:
    return f"{topic}/{partition}/{incarnation}"


Fold = Callable[[dict[str, Any], list[list[Any]], dict[str, Any]], None]
Reducer = Callable[[dict[str, Any], str, dict[str, Any]], dict[str, Any]]


def applied_ranges(state: dict[str, Any]) -> dict[str, OffsetRanges]:
    """The entity's applied ranges per position (created empty; high-water marks of older state converted)."""
    applied: dict[str, OffsetRanges] = state.setdefault(APPLIED, {})
    for legacy, high in state.pop(LEGACY_MARKS, {}).items():
        if high >= 0:
            applied[f"{legacy}/0"] = add(applied.get(f"{legacy}/0", []), 0, high)
    return applied


def position(part: dict[str, Any]) -> str:
    """The topic-partition-incarnation a payload part covers."""
    return partition_id(part["topic"], part["partition"], part.get("incarnation", 0))


def not_in(ranges: OffsetRanges | None, events: list[list[Any]]) -> list[list[Any]]:
    """The events (``[offset, ...]``) whose offsets ``ranges`` does not hold."""
    if not ranges:
        return events
    return [event for event in events if not contains(ranges, event[0])]


def part_range(part: dict[str, Any]) -> tuple[int, int]:
    """The offsets a part accounts for: its batch range, else its events' own span.

    A per-key part carries ``events``; a bucket's part carries them per key (``keys``).
    """
    if part.get("range"):
        low, high = part["range"]
        return int(low), int(high)
    groups = part["keys"].values() if "keys" in part else [part["events"]]
    offsets = [event[0] for events in groups for event in events]
    return min(offsets), max(offsets)


def unapplied(state: dict[str, Any], payload: dict[str, Any]) -> list[list[Any]]:
    """The payload's events (``[offset, ...]`` lists) the entity has not applied yet."""
    return not_in(applied_ranges(state).get(position(payload)), list(payload["events"]))


def advance(state: dict[str, Any], payload: dict[str, Any]) -> None:
    """Record the payload's offset range as applied."""
    mark(applied_ranges(state), payload)


def mark(applied: dict[str, OffsetRanges], part: dict[str, Any], holes: dict[str, OffsetRanges] | None = None) -> None:
    """Add the part's range to the ranges applied at its position, keeping at most ``KEPT_RANGES``. A gap that
    meets the part's ``holes`` (offsets its partition's landing ledger has not landed, below ones it has: a
    consumer group moved over them) stays open: a rewind may land them yet, and their events must count then.

    With ``holes`` (the entity's, by position) the part's are kept there until applied, so that the gap stays open
    for signals that do not carry them: one sent after the rewind landed them (which may overtake the rewind's), or
    one from before, delivered again."""
    where = position(part)
    low, high = part_range(part)
    open_holes = part.get("holes")
    if holes is not None:
        open_holes = union(holes.get(where, []), open_holes or [])
    applied[where] = add(applied.get(where, []), low, high, limit=KEPT_RANGES, keep_open=open_holes)
    if holes is not None:
        holes[where] = _kept_holes(without(open_holes or [], applied[where]), part.get("holes") or [])


def _kept_holes(holes: OffsetRanges, carried: OffsetRanges) -> OffsetRanges:
    """At most ``KEPT_HOLES`` of ``holes``: first those the part carried (the ledger's own, which it bounds), then
    gaps before single offsets (a commit marker's: the ledger reports those among its holes and drops them first),
    then the newest. Keeping only the newest let 16 markers push out a hole the ledger still had."""
    if len(holes) <= KEPT_HOLES:
        return holes

    def rank(hole: list[int]) -> tuple[bool, bool, int]:
        told = any(low <= hole[1] and hole[0] <= high for low, high in carried)
        return told, hole[1] > hole[0], hole[0]

    return sorted(sorted(holes, key=rank)[-KEPT_HOLES:])


def per_key_reduce(entity: str, fold: Fold) -> Reducer:
    """The reducer of a per-key entity (the previous layout): ``apply`` takes one key's part of a batch."""

    def reduce(state: dict[str, Any], operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        if operation != "apply":
            raise ValueError(f"{entity} has no operation {operation!r}")
        fresh = unapplied(state, payload)
        if fresh:
            fold(state, fresh, payload)
        advance(state, payload)
        return state

    return reduce
