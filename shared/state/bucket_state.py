"""What a bucket entity does with an operation: apply a batch's events to its keys, or adopt moved keys.

A bucket's state is plain JSON: ``{"keys": {key: "<key state as JSON text>"}, "_applied": {position:
ranges}, "_owed": {position: ranges}}``. Each key state is exactly what a per-key entity held (the kind's
reducer state), kept as its JSON text so that an operation parses and serialises only the keys it touches: the whole
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
  "keys": {key: [[offset, ...], ...]}, "owed": [offset, ...], "holes": [[low, high], ...]}]}``: one
  invocation's events, per topic-partition. ``owed`` (optional) names offsets in the range whose events the
  part does not carry although they count (raw/ holds their rows): the bucket keeps them under ``_owed`` and
  applies an event at one when it comes, once (``tools.redrive`` re-applies them from raw/). ``holes``
  (optional) are the landing ledger's (``Ledger.holes``): a gap that meets one is never closed, and the bucket keeps
  them (``_holes``) until applied, so that signals that do not carry them close none either. A part may
  carry no keys at all, only its range and what it owes: what processing sends a bucket whose ``apply`` was
  refused.
- ``adopt`` ``{"states": {key: state}, "origins": {old bucket: applied ranges}, "replace": run}``: keys moved
  from another layout (``shared.state.migration``), ``origins`` only from buckets of another N. A key
  the bucket does not hold takes the state given; one it holds with the same state is left alone
  (a migration run twice); one it holds with another state is a conflict, refused and named, and
  so is an origin the bucket holds with other ranges. ``replace`` (a bucket of an N the lake does not record,
  which nothing processes into) names the migration run: the first adopt of a run empties the bucket
  whole (``_replaced`` keeps the run), so it holds that run's keys only; an adopt of an earlier run is refused, and
  so is one of that run once the bucket has applied events (a duplicate delivered after processing resumed).
  Origins no key the bucket holds names any more are dropped.

An operation, or a field of a payload or part, that this version does not know is a newer version's signal (old and
new workers share the task hub during a deploy): the operation is refused whole and logged (``unknown_fields``), never
applied with the field ignored. docs/deploy.md says how to deploy a change to what processing sends.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from itertools import groupby, repeat
from typing import Any, TypeGuard

import orjson

from shared.offset_ranges import OffsetRanges, contains, runs, union, without
from shared.state.buckets import is_bucket_key
from shared.state.offsets import (
    APPLIED,
    KEPT_HOLES,
    LEGACY_MARKS,
    BadEvent,
    Fold,
    Reducer,
    applied_ranges,
    mark,
    not_in,
    part_range,
    position,
)

KEYS = "keys"
UNREADABLE = "_unreadable"  # damaged key states (not a JSON object, or one the fold cannot read), kept to read
UNREADABLE_KEYS = "_unreadable_keys"  # a bucket's key states that were not an object at all, kept to read
ORIGINS = "_origins"
REFUSED = "_refused"  # per key and partition, offsets whose events its fold could not take (a bug), for a person
KEPT_REFUSED = 100  # offsets per key and partition, and keys per bucket
KEPT_REFUSED_OFFSETS = 1_000  # offsets in all: with KEPT_REFUSED keys, far under MAX_BUCKET_BYTES, any partitions
MOVED_FROM = "_moved_from"
# The migration run (a token that grows from run to run: ``shared.state.migration.run_token``) whose first ``adopt``
# with ``replace`` emptied the bucket; its later adopts add to what it adopted, an earlier run's are refused.
REPLACED = "_replaced"
# Per position, offsets inside the applied ranges whose events the bucket has not applied yet (ranges): its events
# there were refused by the entity API, or a redelivery rejected records raw/ holds rows of. An event at an owed
# offset is applied when it comes (``tools.redrive`` re-applies it from raw/), once; closing old gaps never
# touches what is owed.
OWED = "_owed"
KEPT_OWED = 64  # owed ranges per position; past it, the oldest count as applied, as closed gaps do
HOLES = "_holes"  # per position, the landing ledger's holes not applied yet: their gaps stay open (offsets.mark)
# A bucket's state as the entity SDK serialises it (``json.dumps``, measured by ``stored_size``) stays under this many
# bytes (docs/scale.md sizes N so that the fullest bucket holds ~230 KB at 100,000 keys, under the Durable Task
# Scheduler's 256 KB): a source with more keys than its N was sized for evicts the keys updated least recently,
# loudly, instead of failing the backend (``_within_capacity``).
MAX_BUCKET_BYTES = 240_000
KEEP_BUCKET_BYTES = 216_000  # what an eviction brings a bucket under
EVICTED = "_evicted"  # how many keys the bucket has evicted, in all
# Bookkeeping fields damaged outside this code (not of the shape below), kept to read: each is then held afresh.
UNREADABLE_BOOKKEEPING = "_unreadable_bookkeeping"
MAX_OFFSET = 2**63 - 1  # Kafka's offsets are signed 64-bit
log = logging.getLogger("streamingpoc.state")


def _is_int(value: Any) -> bool:
    return type(value) is int


def _are_ranges(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(pair, list) and len(pair) == 2 and _is_int(pair[0]) and _is_int(pair[1]) and pair[0] <= pair[1]
        for pair in value
    )


def _per_position(valid: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, dict) and all(isinstance(k, str) and valid(v) for k, v in value.items())


_BOOKKEEPING_SHAPES: dict[str, Callable[[Any], bool]] = {
    APPLIED: _per_position(_are_ranges),
    OWED: _per_position(_are_ranges),
    HOLES: _per_position(_are_ranges),
    LEGACY_MARKS: _per_position(_is_int),
    REFUSED: _per_position(_per_position(lambda offsets: isinstance(offsets, list) and all(map(_is_int, offsets)))),
    ORIGINS: _per_position(lambda origin: isinstance(origin, dict)),
    UNREADABLE: _per_position(lambda text: isinstance(text, str)),
    EVICTED: _is_int,
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """The entity's new state, and why the operation was refused in part (``None``: it was not); for an ``apply``,
    the state's size in bytes when it was measured (a bucket near its capacity) and the keys it evicted for room."""

    state: dict[str, Any]
    refused: str | None = None
    size: int | None = None
    evicted: int = 0


def operate(
    fold: Fold, reduce: Reducer, entity_key: str, state: dict[str, Any], operation: str, payload: Any
) -> Outcome:
    """One operation on one entity: a bucket (``~b<i>of<n>``) or a per-key entity of the previous layout.

    A per-key entity's reducer works on a copy: the Python SDK persists the live state object of a batch
    whatever its operations did (``azure/durable_functions/entity.py``), so one that raised half-way would
    otherwise keep its half-applied changes with no range marked, and count them again when redelivered.
    """
    if not is_bucket_key(entity_key):
        return Outcome(reduce(copy.deepcopy(state), operation, payload))
    state = with_bookkeeping_readable(state)
    if (unknown := unknown_fields(operation, payload)) is not None:
        log.error("bucket %s refused %s: %s", entity_key, operation, unknown)
        return Outcome(state, f"{operation} refused, nothing applied: {unknown}")
    if (why := malformed(operation, payload)) is not None:
        log.error("bucket %s refused %s: %s", entity_key, operation, why)
        return Outcome(state, f"{operation} refused, nothing applied: {why}")
    if operation == "apply":
        return apply(fold, state, payload)
    if operation == "adopt":
        if (earlier := superseded(state, payload)) is not None:
            return Outcome(state, f"adopt refused: {earlier}")
        conflicts = adopt(state, payload)
        refused = f"adopt refused for {len(conflicts)} keys held with other state: {conflicts[:10]!r}"
        return Outcome(state, refused if conflicts else None)
    raise AssertionError(operation)  # unknown_fields refused it


# What this version reads of each operation. A payload with anything else is a newer version's (a rolling deploy runs
# both): refused whole, loudly, rather than marking its ranges applied with what this version would miss.
KNOWN_FIELDS: dict[str, frozenset[str]] = {
    "apply": frozenset({"parts"}),
    "adopt": frozenset({"states", "origins", "replace"}),
}
KNOWN_PART_FIELDS = frozenset({"topic", "partition", "incarnation", "range", "keys", "owed", "holes"})


def unknown_fields(operation: str, payload: Any) -> str | None:
    """Why this version cannot read ``payload`` of ``operation`` whole (an operation or a field it does not know), or
    None."""
    known = KNOWN_FIELDS.get(operation)
    if known is None:
        return f"a bucket has no operation {operation!r}"
    if not isinstance(payload, dict):
        return f"its payload is not an object but {type(payload).__name__}"
    unknown = set(payload) - known
    if operation == "apply":
        parts = payload.get("parts")
        if not isinstance(parts, list) or not all(isinstance(part, dict) for part in parts):
            return "its parts are not a list of objects"
        unknown |= {f"parts[].{name}" for part in parts for name in set(part) - KNOWN_PART_FIELDS}
    if unknown:
        return f"fields this version does not know (a newer version's signal): {sorted(unknown)}"
    return None


def _is_offset(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_OFFSET


def malformed(operation: str, payload: dict[str, Any]) -> str | None:
    """Why ``payload``, of fields this version knows, cannot be applied, or None: a position, range or offset that
    is not an exact integer in order, or an offset twice at one position, could count an event twice or skip later
    ones; an origin not of ranges would be stored as it came."""
    if operation == "adopt":
        if not _per_position(_per_position(_are_ranges))(payload.get("origins") or {}):
            return "its origins are not {old bucket: {position: [[low, high], ...]}} of integers"
        return None
    seen: dict[str, set[int]] = {}
    for index, part in enumerate(payload["parts"]):
        if (why := _malformed_part(part)) is not None:
            return f"parts[{index}] {why}"
        offsets = seen.setdefault(position(part), set())
        for key, events in part["keys"].items():
            for event in events:
                if event[0] in offsets:
                    return f"parts[{index}] repeats offset {event[0]} at {position(part)} (key {key!r:.100})"
                offsets.add(event[0])
    return None


def _malformed_part(part: dict[str, Any]) -> str | None:
    if not isinstance(part.get("topic"), str):
        return "has no topic"
    if not all(type(value) is int and value >= 0 for value in (part.get("partition"), part.get("incarnation", 0))):
        return "has a partition or incarnation that is not an integer >= 0"
    bounds = part.get("range")
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(map(_is_offset, bounds)) and bounds[0] <= bounds[1]):
        return f"has a range {bounds!r:.100} not of two offsets, low <= high"
    keys = part.get("keys")
    if not isinstance(keys, dict) or not all(isinstance(events, list) for events in keys.values()):
        return "has keys that are not {key: [event, ...]}"
    low, high = bounds
    for key, events in keys.items():
        if not all(isinstance(event, list) and event and type(event[0]) is int for event in events) or not all(
            low <= event[0] <= high for event in events
        ):
            return f"has an event of key {key!r:.100} with no offset within its range {bounds}"
    owed, holes = part.get("owed", []), part.get("holes")
    if not (isinstance(owed, list) and all(map(_is_int, owed))):
        return "owes offsets that are not integers"
    if holes is not None and not _are_ranges(holes):
        return "has holes that are not ranges"
    return None


Batches = list[tuple[dict[str, Any], list[list[Any]]]]  # one key's (part, its events the bucket has not applied)


def apply(fold: Fold, state: dict[str, Any], payload: dict[str, Any]) -> Outcome:
    """Apply each part's events the bucket has not applied yet, then mark the parts' ranges applied.

    A key's events of all parts are folded in one order, by event time (then topic, partition, incarnation and
    offset), so what one operation makes of a key does not depend on the order of its parts or of its events
    within one: its events that are late to its sessions or windows are late to what it held before.

    All or nothing: ``state`` changes only once every key is folded, so an operation that raises
    leaves no range marked applied without its events. Each key is folded on its own, so one key
    cannot stop its bucket: a key whose stored text is not a JSON object, or whose fold raises on
    its stored state (a field of the wrong type: damaged outside this code), is set aside under
    ``_unreadable`` with its text and folded again from no state. A key whose events raise from no
    state too (the events are the problem; they were validated, so a bug) keeps its state; its events'
    offsets are marked applied with the others' (leaving them out would let a redelivery count the other
    keys' events again, and the ranges keep at most 32 gaps per partition anyway) and recorded under
    ``_refused`` (the latest ``KEPT_REFUSED`` keys, each's latest offsets per partition, ``KEPT_REFUSED_OFFSETS``
    in all, for a person: a fixed fold counts them from raw/). The other keys' events count, and the operation's
    error result names the key.
    """
    _set_aside_unreadable_keys(state)
    keys: dict[str, str] = state.setdefault(KEYS, {})
    applied = {where: list(ranges) for where, ranges in applied_ranges(state).items()}
    owed: dict[str, OffsetRanges] = {where: list(ranges) for where, ranges in state.get(OWED, {}).items()}
    holes: dict[str, OffsetRanges] = {where: ranges[-KEPT_HOLES:] for where, ranges in state.get(HOLES, {}).items()}
    origins: dict[str, dict[str, Any]] = state.get(ORIGINS, {})
    pending: dict[str, Batches] = {}
    for part in payload["parts"]:
        where = position(part)
        ranges, owing = applied.get(where), owed.get(where)
        taken: list[int] = []
        for key, events in part["keys"].items():
            fresh = not_in(ranges, events) if not owing else _not_applied(ranges, owing, events, taken)
            if fresh:
                pending.setdefault(key, []).append((part, fresh))
        if taken:  # applied now (or refused with the rest of their key's events): owed no more
            owed[where] = owing = without(owing or [], [[offset, offset] for offset in sorted(set(taken))])
        if part.get("owed"):
            owed[where] = _owing(part, ranges, owing)
        mark(applied, part, holes)
    folded: dict[str, str] = {}
    unreadable: dict[str, str] = {}
    refused: list[str] = []
    for key, batches in pending.items():
        text = keys.get(key)
        held = {} if text is None else _parsed(text)
        result = _folded(fold, held, batches, origins) if held is not None else None
        if not isinstance(result, str | BadEvent) and text is not None:  # damaged: fold again from no state
            result = _folded(fold, {}, batches, origins)
            if isinstance(result, str):
                why = "is not a JSON object" if held is None else "is a JSON object the fold cannot read"
                unreadable[key] = _set_aside(key, text, why)
        if isinstance(result, str):
            folded[key] = result
        else:
            log.error("events of key %r cannot be folded even from no state; not counted", key, exc_info=result)
            refused.append(key)
    if unreadable:
        state.setdefault(UNREADABLE, {}).update(unreadable)
    for key, text in folded.items():  # the keys in order of their last update, the least recent first
        keys.pop(key, None)
        keys[key] = text
    for key in refused:  # here, with the rest of the state: nothing changes before every key is folded
        recorded = state.setdefault(REFUSED, {})
        held = recorded.pop(key, {})  # re-inserted: the latest keys are the ones kept
        for part, fresh in pending[key]:
            where = position(part)
            held[where] = [*held.get(where, []), *(event[0] for event in fresh)][-KEPT_REFUSED:]
        recorded[key] = held
    if refused:  # a fold bug that hits every key must not grow the bucket
        state[REFUSED] = _latest_refused(state[REFUSED])
    state[APPLIED] = applied
    _keep_owed(state, owed)
    _keep_holes(state, holes)
    message = f"events of {len(refused)} keys could not be folded, not counted (see {REFUSED}): {refused[:10]!r}"
    size, evicted = _within_capacity(state, folded)
    return Outcome(state, message if refused else None, size, evicted)


def _latest_refused(recorded: dict[str, dict[str, list[int]]]) -> dict[str, dict[str, list[int]]]:
    """The latest ``KEPT_REFUSED`` keys of ``recorded`` (in the order they were refused), with at most
    ``KEPT_REFUSED_OFFSETS`` offsets in all: the latest key's first, each position's latest offsets."""
    kept: list[tuple[str, dict[str, list[int]]]] = []
    room = KEPT_REFUSED_OFFSETS
    for key in reversed(list(recorded)[-KEPT_REFUSED:]):
        positions = {}
        for where, offsets in recorded[key].items():
            if room <= 0:
                break
            positions[where] = offsets[-room:]
            room -= len(positions[where])
        if not positions:
            break
        kept.append((key, positions))
    return dict(reversed(kept))


def with_bookkeeping_readable(state: Any) -> dict[str, Any]:
    """``state`` with each bookkeeping field of the wrong shape (damaged outside this code) set aside under
    ``UNREADABLE_BOOKKEEPING`` and held afresh, as damaged key states are: the bucket's operations apply instead of
    failing, every one, for good, which would lose every later event of its keys. A state that is not an object
    at all is kept there whole. Logged as an error, as it costs what the field kept: with ``_applied`` afresh a
    redelivery of what the bucket had applied counts again; with ``_owed`` afresh an event it owed is taken as
    applied when redriven."""
    if not isinstance(state, dict):
        log.error("a bucket's state is not an object; set aside under %s", UNREADABLE_BOOKKEEPING)
        return {UNREADABLE_BOOKKEEPING: {"state": repr(state)}}
    damaged = [name for name, valid in _BOOKKEEPING_SHAPES.items() if name in state and not valid(state[name])]
    if damaged:
        log.error("a bucket's %s not of its shape; set aside under %s", damaged, UNREADABLE_BOOKKEEPING)
        kept = state.get(UNREADABLE_BOOKKEEPING, {})
        if not isinstance(kept, dict):
            kept = {UNREADABLE_BOOKKEEPING: repr(kept)}
        state[UNREADABLE_BOOKKEEPING] = kept
        for name in damaged:
            kept[name] = repr(state.pop(name))
    return state


def _set_aside_unreadable_keys(state: dict[str, Any]) -> None:
    """A bucket whose key states are not an object (damaged outside this code) keeps them to read under
    ``UNREADABLE_KEYS`` and holds its keys afresh: its operations apply instead of failing, every one, for good."""
    if not is_bucket_state(state):
        log.error("the bucket's %r is not an object of key states; set aside under %s", KEYS, UNREADABLE_KEYS)
        damaged = state[KEYS]
        state[UNREADABLE_KEYS], state[KEYS] = damaged if isinstance(damaged, str) else repr(damaged), {}


def _within_capacity(state: dict[str, Any], touched: Collection[str]) -> tuple[int | None, int]:
    """Keep the bucket under ``MAX_BUCKET_BYTES`` as the entity SDK stores it (``stored_size``): past it, evict the
    keys updated least recently until it is under ``KEEP_BUCKET_BYTES``, those this operation did not update first,
    always. When the keys this operation updated are over the bound alone, evicting every other key is not enough:
    then the operation's own keys go too, in the bucket's order, until it is under ``MAX_BUCKET_BYTES``, as every
    eviction goes (loudly: ``_evicted``, the result's count, an error in the log; their events stay in the lake,
    their offsets applied, and a key that comes back counts afresh), rather than leave a state no backend stores,
    which would fail every later operation on the bucket. Returns the state's size when it was measured (only a
    bucket that may be near the bound is serialised) and how many keys were evicted."""
    keys: dict[str, Any] = state[KEYS]
    rest = _rest_size({name: value for name, value in state.items() if name != KEYS})
    if len(keys) <= _COUNTED_KEYS and _EMPTY + rest + _most_bytes(keys) < MAX_BUCKET_BYTES:
        return None, 0
    size = _EMPTY + rest + _keys_size(keys)
    if size <= MAX_BUCKET_BYTES:
        return size, 0
    excess, untouched = size - KEEP_BUCKET_BYTES, 0
    for key in [key for key in keys if key not in touched]:  # the least recently updated first
        if excess <= 0:
            break
        excess -= _entry_size(key, keys.pop(key))
        untouched += 1
    updated = 0
    if excess + KEEP_BUCKET_BYTES > MAX_BUCKET_BYTES:  # the keys the operation updated are over the bound alone
        if _EMPTY + rest + 2 > MAX_BUCKET_BYTES:  # so is the rest: no key's eviction can bring it under
            log.error("bucket of %d bytes: what it keeps besides its keys is over %d alone", size, MAX_BUCKET_BYTES)
        else:
            gone = []
            while excess + KEEP_BUCKET_BYTES > MAX_BUCKET_BYTES and keys:
                key = next(iter(keys))
                excess -= _entry_size(key, keys.pop(key))
                gone.append(key)
            updated = len(gone)
            log.error(
                "bucket of %d bytes: the keys its operation updated are over %d alone; evicted %d of them too, their "
                "counts start afresh (raise its N): %r",
                size,
                MAX_BUCKET_BYTES,
                updated,
                gone[:10],
            )
    evicted = untouched + updated
    state[EVICTED] = int(state.get(EVICTED, 0)) + evicted
    if untouched:
        log.warning("bucket of %d bytes evicted the %d keys updated least recently (raise its N)", size, untouched)
    return stored_size(state), evicted


# What the entity SDK stores is ``json.dumps(state)`` (``azure.functions._durable_functions.df_dumps``): ASCII only
# (every other character as ``\uXXXX``, one outside the BMP as two), with ``", "`` and ``": "`` between items.
_EMPTY = len('{"keys": }')  # a bucket's state besides its keys object and the rest (whose braces make its ", ")
# Up to this many keys, a bound from their lengths (``_most_bytes``, a few us) may spare serialising the bucket; one
# with more is serialised at once (the bound would cost about as much as serialising a small bucket).
_COUNTED_KEYS = 64
_ASCII = bytes(range(0x80))
_CONTINUATION = bytes(range(0x80, 0xC0))  # UTF-8 bytes that follow a character's first
_BMP_FIRST = bytes(range(0xC0, 0xF0))  # the first byte of a character of 2 or 3 bytes (4: outside the BMP)
# Each digit as "0", "e" and "E" as "e", "." as itself, any other byte as a space: in orjson's output, a float (which
# json.dumps may write longer) is the only place a digit meets a "." or an "e" outside a string.
_NUMBER_SHAPES = bytes(
    b"0"[0] if byte in b"0123456789" else b"e"[0] if byte in b"eE" else byte if byte == b"."[0] else b" "[0]
    for byte in range(256)
)


def stored_size(state: dict[str, Any]) -> int:
    """No fewer than the bytes of ``state`` as the entity SDK stores it (``json.dumps``), for every state an entity
    can hold, damaged ones included (whatever ``json.loads`` gives: key states that are not text, lone surrogates,
    control characters, numbers of any size); never raises. From orjson's serialisation where it writes what
    ``json.dumps`` does but for escapes and separators: exact for a bucket's keys when each state is text, an upper
    bound for the rest (a ``,`` or ``:`` inside a string of it counts as a separator). Runs in C but for a few
    operations per call: no Python step per key. What orjson refuses (a lone surrogate, an integer past 64 bits, deep
    nesting) or writes otherwise (a key state that is not text, a float) is measured by ``json.dumps`` itself."""
    keys = state.get(KEYS) if isinstance(state, dict) else None
    if not isinstance(keys, dict):
        return (_rest_size(state) or 2) if isinstance(state, dict) else _dumped_size(state)  # "{}"
    rest = {name: value for name, value in state.items() if name != KEYS}
    return _EMPTY + _rest_size(rest) + _keys_size(keys)


def _most_bytes(keys: dict[str, Any]) -> int:
    """No fewer than the bytes of a bucket's keys object as stored, from the lengths of its keys and texts alone: as
    stored an ASCII character takes at most 6 bytes (a control character), any other at most 12 (one outside the
    BMP), an entry 8 besides its characters ('"": "", '). A state that is not text (damaged outside this code)
    counts as the bound: measured."""
    try:
        chars = sum(map(str.__len__, keys)) + sum(map(str.__len__, keys.values()))  # TypeError: not all text
    except TypeError:
        return MAX_BUCKET_BYTES
    ascii_only = all(map(str.isascii, keys)) and all(map(str.isascii, keys.values()))  # O(1) a string
    return (6 if ascii_only else 12) * chars + 8 * len(keys) + 2


def _keys_size(keys: dict[str, Any]) -> int:
    """No fewer than the bytes of a bucket's keys object as stored: exact (one ``": "`` and one ``", "`` a key, less
    the last) when each state is text that orjson writes; otherwise ``json.dumps``' own length."""
    if all(map(isinstance, keys.values(), repeat(str))):
        try:
            data = orjson.dumps(keys)
        except TypeError:  # a lone surrogate (``json.loads`` takes one), or a key that is not text
            pass
        else:
            return len(data) + _escaped(data) + max(2 * len(keys) - 1, 0)
    return _dumped_size(keys)


def _rest_size(value: dict[str, Any]) -> int:
    """No fewer than the bytes of ``value`` as stored (0 for an empty one, whose braces a bucket's state does not
    write), counting every ``,`` and ``:`` of it as a separator; ``json.dumps``' own length where orjson refuses it
    or may hold a float or NaN (which the two write differently: ``1e-05``, ``Infinity``)."""
    if not value:
        return 0
    try:
        data = orjson.dumps(value)
    except TypeError:
        return _dumped_size(value)
    if b"null" in data or b"0." in (shapes := data.translate(_NUMBER_SHAPES)) or b"0e" in shapes:
        return _dumped_size(value)
    return len(data) + _escaped(data) + data.count(b",") + data.count(b":")


def _entry_size(key: str, text: Any) -> int:
    """The bytes one key takes in its bucket's state as stored, its separators included: exact for a text state
    orjson writes, ``json.dumps``' own length otherwise."""
    if isinstance(text, str):
        try:  # '["key","text"]': 3 bytes besides the strings, as stored '"key": "text", ': 4
            data = orjson.dumps([key, text])
        except TypeError:
            pass
        else:
            return len(data) + 1 + _escaped(data)
    return _dumped_size({key: text})  # '{"key": state}': its braces stand for its ", "


def _dumped_size(value: Any) -> int:
    """``len(json.dumps(value))``, what the entity SDK stores; for what ``json.dumps`` cannot write (nothing
    ``json.loads`` gives, but for nesting too deep for it), a bound from the value's parts (``_most_dumped``)."""
    try:
        return len(json.dumps(value))
    except (TypeError, ValueError, RecursionError):
        return _most_dumped(value)


def _most_dumped(value: Any) -> int:
    """No fewer than the bytes of ``value`` as ``json.dumps`` writes it, part by part, without recursion: a character
    of a string at most 12 (one outside the BMP), a float at most 24 (``-2.2250738585072014e-308``), an integer a
    digit per 3.28 bits, 2 besides for each separator and for the quotes of a key that is not text."""
    total, pending, seen = 0, [value], set()
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            total += 12 * len(item) + 2
        elif item is None or isinstance(item, bool):
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() * 7 // 23 + 3
        elif isinstance(item, float):
            total += 24
        elif isinstance(item, dict | list | tuple):
            if id(item) in seen:  # a cycle, which json.dumps refuses: counted once
                continue
            seen.add(id(item))
            if isinstance(item, dict):
                total += 2 + 6 * len(item)
                pending.extend(item)
                pending.extend(item.values())
            else:
                total += 2 + 2 * len(item)
                pending.extend(item)
        else:
            total += 12 * len(repr(item)) + 2
    return total


def _escaped(data: bytes) -> int:
    """How many bytes more JSON text takes as ``json.dumps`` writes it than as orjson does (``data``): within
    strings each non-ASCII character becomes ``\\uXXXX`` (6 bytes for its 2 or 3 of UTF-8; 12 for the 4 of one
    outside the BMP), and DEL becomes ``\\u007f``; the rest is escaped alike."""
    grown = 5 * data.count(b"\x7f") if b"\x7f" in data else 0  # ``in`` is a memchr, ``count`` a slower loop
    if data.isascii():
        return grown
    high = data.translate(None, _ASCII)  # the UTF-8 bytes of the non-ASCII characters
    first = high.translate(None, _CONTINUATION)  # one byte per character
    outside_bmp = len(first.translate(None, _BMP_FIRST))
    return grown + 6 * (len(first) + outside_bmp) - len(high)


def _not_applied(
    ranges: OffsetRanges | None, owing: OffsetRanges, events: list[list[Any]], taken: list[int]
) -> list[list[Any]]:
    """The events not applied yet: outside the applied ranges, or at offsets owed; adds the owed ones to ``taken``."""
    fresh = []
    for event in events:
        if contains(owing, event[0]):
            taken.append(event[0])
            fresh.append(event)
        elif not ranges or not contains(ranges, event[0]):
            fresh.append(event)
    return fresh


def _owing(part: dict[str, Any], ranges: OffsetRanges | None, owing: OffsetRanges | None) -> OffsetRanges:
    """What the bucket owes at the part's position once it takes the part's ``owed`` offsets: those within the
    part's range that it has not applied (outside its ranges, or owed already). An offset it applied stays applied:
    owing it would count its event twice."""
    low, high = part_range(part)
    applied_before = without(ranges or [], owing or [])
    new = without(runs({int(offset) for offset in part["owed"] if low <= int(offset) <= high}), applied_before)
    return union(owing or [], new)


def _keep_holes(state: dict[str, Any], holes: dict[str, OffsetRanges]) -> None:
    """Store the holes not applied yet (``offsets.mark`` keeps at most ``KEPT_HOLES`` a position)."""
    kept = {where: ranges for where, ranges in holes.items() if ranges}
    if kept:
        state[HOLES] = kept
    else:
        state.pop(HOLES, None)


def _keep_owed(state: dict[str, Any], owed: dict[str, OffsetRanges]) -> None:
    """Store what the bucket owes, at most ``KEPT_OWED`` ranges per position (the newest)."""
    kept = {where: ranges[-KEPT_OWED:] for where, ranges in owed.items() if ranges}
    for where, ranges in owed.items():
        if len(ranges) > KEPT_OWED:
            log.error("bucket owes over %d ranges at %s; the oldest now count as applied", KEPT_OWED, where)
    if kept:
        state[OWED] = kept
    else:
        state.pop(OWED, None)


def _folded(fold: Fold, held: dict[str, Any], batches: Batches, origins: dict[str, dict[str, Any]]) -> str | Exception:
    """The key's state with its events folded in, as the JSON text its bucket holds; the exception if it raised."""
    try:
        for part, run in _in_event_order(_not_applied_before(held, batches, origins)):
            fold(held, run, part)
        return dump(held)
    except Exception as error:  # a damaged state (or a bug) of one key: apply decides, the other keys go on
        return error


def _not_applied_before(held: dict[str, Any], batches: Batches, origins: dict[str, dict[str, Any]]) -> Batches:
    """Each part's events a key moved into the bucket had not applied where it was before either."""
    kept: Batches = []
    for part, fresh in batches:
        where = position(part)
        if APPLIED in held:  # moved from the per-key layout: what it applied there counts too
            fresh = not_in(held[APPLIED].get(where), fresh)
        if MOVED_FROM in held:  # moved from a bucket of another N: what that bucket applied counts too
            fresh = not_in(_origin_ranges(origins, held[MOVED_FROM], where), fresh)
        if fresh:
            kept.append((part, fresh))
    return kept


def _origin_ranges(origins: dict[str, dict[str, Any]], origin: Any, where: str) -> OffsetRanges | None:
    """What a key's earlier bucket applied at ``where``; None where it is damaged (outside this code), as
    ``shared.state.migration`` moves such a key: without that origin's offsets, its state kept."""
    ranges = origins.get(origin, {}).get(where) if isinstance(origin, str) else None
    if ranges is not None and not _are_ranges(ranges):
        log.error("origin %r of a key is damaged at %s; its offsets are not skipped", origin, where)
        return None
    return ranges


def _in_event_order(batches: Batches) -> Iterator[tuple[dict[str, Any], list[list[Any]]]]:
    """A key's events of all parts in one order, by (event_ms, topic, partition, incarnation, offset), as runs of
    one part each: what one ``apply`` makes of a key never depends on the order of its payload's parts (the
    partitions of a batch, in the order the batch first saw them) or of its events within a part."""
    ordered = sorted(
        ((part, event) for part, fresh in batches for event in fresh),
        key=lambda pair: (
            pair[1][1],
            pair[0]["topic"],
            pair[0]["partition"],
            pair[0].get("incarnation", 0),
            pair[1][0],
        ),
    )
    for _, run in groupby(ordered, key=lambda pair: id(pair[0])):
        pairs = list(run)
        yield pairs[0][0], [event for _, event in pairs]


def _set_aside(key: str, held: Any, why: str = "is not a JSON object") -> str:
    """What ``_unreadable`` keeps of a key whose stored state is damaged (outside this code)."""
    log.error("key state %r %s; set aside under %s", key, why, UNREADABLE)
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
    writes to it) what it holds is stale, left by an interrupted or an earlier move, or by the time the
    source last used this N: the run's first adopt empties the bucket whole (keys, applied and owed offsets,
    origins, evictions), so a key this run does not move (evicted since) cannot come back with its old state,
    and the run's later adopts (its other chunks, in any order) add to it. An adopt of an earlier run than the
    one that emptied the bucket (a signal still queued from an interrupted run) is refused whole. ``replace``
    ``true`` (an adopt from before runs were named) replaces the moved keys and origins only."""
    if (earlier := superseded(state, payload)) is not None:
        return [earlier]
    replace = payload.get("replace")
    if type(replace) is int and state.get(REPLACED) != replace:  # a run's first adopt (``true`` is not a run)
        state.clear()
        state[REPLACED] = replace
    replacing = replace is True or type(replace) is int
    _set_aside_unreadable_keys(state)
    keys: dict[str, str] = state.setdefault(KEYS, {})
    conflicts = []
    given_origins = payload.get("origins") or {}
    for origin, ranges in given_origins.items():
        origins = state.setdefault(ORIGINS, {})
        if replacing:
            origins[origin] = ranges
        elif origins.setdefault(origin, ranges) != ranges:
            conflicts.append(f"origin {origin}")
    for key, given in payload["states"].items():
        moved = as_adopted(given)
        held = keys.get(key)
        if held is None or replacing:
            keys[key] = dump(moved)
        elif (parsed := _parsed(held)) is None:  # set aside, the moved state taken
            state.setdefault(UNREADABLE, {})[key] = _set_aside(key, held)
            keys[key] = dump(moved)
        elif parsed != moved:
            conflicts.append(key)
    _drop_unnamed_origins(state, given_origins)
    return conflicts


def superseded(state: dict[str, Any], payload: dict[str, Any]) -> str | None:
    """Why an adopt is refused whole (``None``: it is not): its run is earlier than the one that emptied the bucket,
    or it is that run's and the bucket has applied events since (a duplicate of the run's adopt, delivered again
    once the move completed and processing resumed: the run verified every adopt of it applied before the record
    named its N, and nothing applies into buckets of an N the record does not name). An adopt that replaces the
    keys it names (``replace`` true: a key moved again, ``migration.moved_on``, or an adopt from before runs were
    named) is refused once the bucket has applied events: it is sent only to buckets that have applied none, so
    it is a duplicate or late, and taking it would undo offsets the bucket counted and no redelivery brings back."""
    run, emptied_by = payload.get("replace"), state.get(REPLACED)
    applied = any(state.get(APPLIED, {}).values())
    if type(run) is int and type(emptied_by) is int and run < emptied_by:
        return f"superseded: run {run} is earlier than run {emptied_by}, which emptied the bucket"
    if type(run) is int and run == emptied_by and applied:
        return f"duplicate: run {run} completed and the bucket has applied events since"
    if run is True and applied:
        return "duplicate or late: it replaces keys' state, and the bucket has applied events"
    return None


def _drop_unnamed_origins(state: dict[str, Any], kept: Collection[str]) -> None:
    """Drop the origins no key the bucket holds names (its keys were evicted: one that comes back starts afresh,
    named by none), but those this adopt brought (a conflicting key still names its origin in the report)."""
    origins = state.get(ORIGINS)
    if not origins:
        return
    named = {parsed.get(MOVED_FROM) for text in state.get(KEYS, {}).values() if (parsed := _parsed(text)) is not None}
    for origin in [origin for origin in origins if origin not in named and origin not in kept]:
        del origins[origin]
    if not origins:
        del state[ORIGINS]


def as_adopted(state: dict[str, Any]) -> dict[str, Any]:
    """A moved key's state as its bucket keeps it: a copy, older high-water marks turned into ranges."""
    adopted: dict[str, Any] = orjson.loads(orjson.dumps(state))
    if APPLIED in adopted or LEGACY_MARKS in adopted:
        applied_ranges(adopted)  # as the per-key entity would have on its next operation
    return adopted


def key_state(bucket: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """One key's state in a bucket's state (``None``: the bucket does not hold it, or not as a JSON object)."""
    held = key_text(bucket, key)
    return None if held is None else _parsed(held)


def is_bucket_state(state: Any) -> TypeGuard[dict[str, Any]]:
    """Whether ``state`` has a bucket's shape: an object whose ``keys``, if any, is an object."""
    return isinstance(state, dict) and isinstance(state.get(KEYS, {}), dict)


def key_text(bucket: dict[str, Any] | None, key: str) -> Any:
    """One key's state as its bucket stores it (JSON text, or whatever damaged it); ``None``: not held (nor by a
    bucket not of a bucket's shape)."""
    return _keys(bucket).get(key)


def held_keys(bucket: dict[str, Any] | None) -> Iterator[str]:
    """The keys a bucket's state holds (none when it is not of a bucket's shape)."""
    yield from _keys(bucket)


def _keys(bucket: dict[str, Any] | None) -> dict[str, Any]:
    return bucket.get(KEYS, {}) if bucket is not None and is_bucket_state(bucket) else {}
