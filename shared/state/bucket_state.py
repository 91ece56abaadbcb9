"""What a bucket entity does with an operation: apply a batch's events to its keys, or adopt moved keys.

A bucket's state is plain JSON: ``{"keys": {key: "<key state as JSON text>"}, "_applied": {position:
ranges}}``. Each key state is exactly what a per-key entity held (the kind's reducer state), kept
as its JSON text so that an operation parses and serialises only the keys it touches: the whole
bucket is still read and written per operation (Durable stores an entity's state as one JSON
document), but as a few hundred strings instead of thousands of objects, which is what its CPU per
operation depends on (bench/README.md). The applied ranges (``shared.state.offsets``) are kept
once for the bucket, since an ``apply`` carries every event of the bucket's keys in its parts'
offset ranges. A key moved in from the per-key layout
keeps its own ``_applied`` ranges, and its events at offsets it applied before the move are
skipped too, so a batch redelivered across the upgrade never counts twice. A key moved in from a
bucket of another N names that bucket (``_moved_from``), whose applied ranges the new bucket keeps
once for all the keys that came from it (``_origins``), so a move does not copy them into each key.

Operations:
- ``apply`` ``{"parts": [{"topic", "partition", "incarnation", "range": [low, high],
  "keys": {key: [[offset, ...], ...]}}]}``: one invocation's events, per topic-partition.
- ``adopt`` ``{"states": {key: state}, "origins": {old bucket: applied ranges}}``: keys moved from
  another layout (``shared.state.migration``), ``origins`` only from buckets of another N. A key
  the bucket does not hold takes the state given; one it holds with the same state is left alone
  (a migration run twice); one it holds with another state is a conflict, refused and named, and
  so is an origin the bucket holds with other ranges.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from shared.state.buckets import is_bucket_key
from shared.state.offsets import (
    APPLIED,
    LEGACY_MARKS,
    Fold,
    Reducer,
    applied_ranges,
    mark,
    not_in,
    part_range,
    position,
)

KEYS = "keys"
UNREADABLE = "_unreadable"  # key states whose stored text was not a JSON object, kept for a person to read
ORIGINS = "_origins"
MOVED_FROM = "_moved_from"
log = logging.getLogger("streamingpoc.state")


@dataclass(frozen=True, slots=True)
class Outcome:
    """The entity's new state, and why the operation was refused in part (``None``: it was not)."""

    state: dict[str, Any]
    refused: str | None = None


def operate(
    fold: Fold, reduce: Reducer, entity_key: str, state: dict[str, Any], operation: str, payload: Any
) -> Outcome:
    """One operation on one entity: a bucket (``~b<i>of<n>``) or a per-key entity of the previous layout."""
    if not is_bucket_key(entity_key):
        return Outcome(reduce(state, operation, payload))
    if operation == "apply":
        return Outcome(apply(fold, state, payload))
    if operation == "adopt":
        conflicts = adopt(state, payload)
        refused = f"adopt refused for {len(conflicts)} keys held with other state: {conflicts[:10]!r}"
        return Outcome(state, refused if conflicts else None)
    raise ValueError(f"a bucket has no operation {operation!r}")


def apply(fold: Fold, state: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """Apply each part's events the bucket has not applied yet, then mark the parts' ranges applied.

    All or nothing: ``state`` changes only once every part is folded, so an operation that raises
    leaves no range marked applied without its events. A key whose stored text is not a JSON object
    (damaged outside this code) is set aside under ``_unreadable`` with its text and starts again,
    so one key cannot stop its bucket.
    """
    keys: dict[str, str] = state.setdefault(KEYS, {})
    applied = {where: list(ranges) for where, ranges in applied_ranges(state).items()}
    origins: dict[str, dict[str, Any]] = state.get(ORIGINS, {})
    touched: dict[str, dict[str, Any]] = {}
    unreadable: dict[str, str] = {}
    for part in payload["parts"]:
        where = position(part)
        ranges = applied.get(where)
        for key, events in part["keys"].items():
            fresh = not_in(ranges, events)
            if not fresh:
                continue
            held = touched.get(key)
            if held is None:
                held = touched[key] = _readable(keys, key, unreadable)
            if APPLIED in held:  # moved from the per-key layout: what it applied there counts too
                fresh = not_in(held[APPLIED].get(where), fresh)
            if MOVED_FROM in held:  # moved from a bucket of another N: what that bucket applied counts too
                fresh = not_in(origins.get(held[MOVED_FROM], {}).get(where), fresh)
            if fresh:
                fold(held, fresh, part)
        mark(applied, where, *part_range(part))
    for key, held in touched.items():
        keys[key] = dump(held)
    state[APPLIED] = applied
    if unreadable:
        state.setdefault(UNREADABLE, {}).update(unreadable)
    return state


def _readable(keys: dict[str, str], key: str, unreadable: dict[str, str]) -> dict[str, Any]:
    """The key's state to fold into: its stored state, or a new one when the stored text is unreadable."""
    text = keys.get(key)
    if text is None:
        return {}
    parsed = _parsed(text)
    if parsed is None:
        unreadable[key] = _set_aside(key, text)
        return {}
    return parsed


def _set_aside(key: str, held: Any) -> str:
    """What ``_unreadable`` keeps of a key whose stored text is not a JSON object (damaged outside this code)."""
    log.error("key state %r is not a JSON object; set aside under %s", key, UNREADABLE)
    return held if isinstance(held, str) else repr(held)


def _parsed(text: Any) -> dict[str, Any] | None:
    """A stored key state as a dict, or None when it is not the JSON text of an object."""
    if not isinstance(text, str):
        return None
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def dump(key_state: dict[str, Any]) -> str:
    """A key's state as the JSON text a bucket holds."""
    return orjson.dumps(key_state).decode()


def adopt(state: dict[str, Any], payload: dict[str, Any]) -> list[str]:
    """Take in moved keys' states; returns the keys refused because the bucket holds them with other state.

    With ``replace`` (the bucket belongs to a layout the lake's record does not name, so no processing
    writes to it) what it holds of the moved keys and origins is stale, left by an interrupted or an earlier
    move, and is replaced."""
    keys: dict[str, str] = state.setdefault(KEYS, {})
    replace = payload.get("replace") is True
    conflicts = []
    for origin, ranges in (payload.get("origins") or {}).items():
        origins = state.setdefault(ORIGINS, {})
        if replace:
            origins[origin] = ranges
        elif origins.setdefault(origin, ranges) != ranges:
            conflicts.append(f"origin {origin}")
    for key, given in payload["states"].items():
        moved = as_adopted(given)
        held = keys.get(key)
        if held is None or replace:
            keys[key] = dump(moved)
        elif (parsed := _parsed(held)) is None:  # set aside, the moved state taken
            state.setdefault(UNREADABLE, {})[key] = _set_aside(key, held)
            keys[key] = dump(moved)
        elif parsed != moved:
            conflicts.append(key)
    return conflicts


def as_adopted(state: dict[str, Any]) -> dict[str, Any]:
    """A moved key's state as its bucket keeps it: a copy, older high-water marks turned into ranges."""
    adopted: dict[str, Any] = orjson.loads(orjson.dumps(state))
    if APPLIED in adopted or LEGACY_MARKS in adopted:
        applied_ranges(adopted)  # as the per-key entity would have on its next operation
    return adopted


def key_state(bucket: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """One key's state in a bucket's state (``None``: the bucket does not hold it)."""
    if not bucket:
        return None
    held = bucket.get(KEYS, {}).get(key)
    return None if held is None else _parsed(held)


def held_keys(bucket: dict[str, Any] | None) -> Iterator[str]:
    """The keys a bucket's state holds."""
    yield from (bucket or {}).get(KEYS, {})
