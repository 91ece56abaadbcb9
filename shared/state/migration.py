"""Moving keyed state into key buckets once: from the per-key entities of the previous layout, or from
buckets of another N (``unbucketed``). What to send and how to check it; ``tools/migrate_state.py`` runs it.

A moved key's state is adopted by its bucket as it was (``shared.state.bucket_state.adopt``),
with its own applied offset ranges (a key moved out of a bucket names that bucket, whose applied
offsets its new bucket keeps once: ``unbucketed``), so a batch redelivered across the upgrade never
counts an event twice, and one the previous layout had not applied still counts. Adopting is
idempotent (a second run changes nothing) and never overwrites a key the bucket already holds with
other state: such a key is a conflict, reported, never lost.

Into buckets of an N the lake does not record (``replace``: nothing processes into them) a move sends
every one of the N buckets an adopt naming the run (``run_token``: the lake's counter, so a later run is named
higher than an earlier one on any machine), those without keys an empty one: each
bucket is emptied by its run's first adopt, so it holds what this run moved and nothing older (a key evicted
since the source last used this N does not come back with its state from then). Once the record names the
new N, the tool no longer replaces (``tools.migrate_state``): a run again after that cannot wipe what
processing has since counted there.

What an old bucket owes (``_owed``: offsets whose events it was refused, which ``tools.redrive`` re-signals) moves
too: ``origin_ranges`` leaves those offsets out of the origins, and once every adopt of the move is applied each new
bucket is told, in an ``apply`` of ranges alone (``owed_signals``), to owe every offset an old bucket whose keys can
hash into it owed. Without that the new bucket only had a gap there, which a later move (the landing ledger counts
the offset landed) or 32 later ranges closed, and the re-signal was skipped as applied. An ``apply`` marks the bucket
applied, so it is sent after the run's last adopt (an applied bucket refuses its run's adopts: ``superseded``); a
run again replaces the buckets and tells them again, and an ``apply`` of what a bucket already owes changes nothing.

The migration is exact when the previous layout no longer changes while it runs: processing is
stopped first and the previous layout's entities have applied the signals they were sent
(docs/scale.md).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from shared.lake.base import LakeStore
from shared.offset_ranges import OffsetRanges, add, union, without
from shared.records import TopicPartition
from shared.source_model import Row
from shared.state import bucket_state
from shared.state.aggregate import MAX_SIGNAL_BYTES, Signal, within_size
from shared.state.bucket_counts import next_run
from shared.state.bucket_state import (
    KEPT_OWED,
    KEYS,
    MAX_OFFSET,
    MOVED_FROM,
    ORIGINS,
    OWED,
    REFUSED,
    REPLACED,
    UNREADABLE,
    UNREADABLE_BOOKKEEPING,
    UNREADABLE_KEYS,
    as_adopted,
    dump,
    held_keys,
    is_bucket_state,
    key_state,
    key_text,
    with_bookkeeping_readable,
)
from shared.state.buckets import bucket_for, bucket_key
from shared.state.offsets import APPLIED

# One adopt operation's payload (its states and the origins they name) as the Durable client sends it (``json.dumps``:
# non-ASCII escaped, a space after each separator), at most: an apply's limit (``MAX_SIGNAL_BYTES``, which the Durable
# Task Scheduler's message size sets), less room for the operation's envelope.
MAX_ADOPT_BYTES = MAX_SIGNAL_BYTES - 4096
NEAR_CAPACITY = 0.8  # of MAX_BUCKET_BYTES: a bucket this full after a move is reported (its applies may evict soon)


def keys_of(entity_key: Any, rows: Iterable[Row]) -> set[str]:
    """The entity keys a source's landed rows count for (what may have state in the previous layout)."""
    keys = set()
    for row in rows:
        try:
            keys.add(str(entity_key(row)))
        except (KeyError, TypeError, ValueError):  # a row without its key fields never reached an entity
            continue
    return keys


Origins = dict[str, dict[str, OffsetRanges]]  # old bucket -> per position, the offsets it applied (``origin_ranges``)
# Per position (``topic/partition/incarnation``), the offsets its partition's landing ledger counts as landed in that
# life (``shared.landing.ledger.Ledger.landed_in``): what ``origin_ranges`` may close an old bucket's gaps over.
Landed = Mapping[str, OffsetRanges]


def readable(bucket: Any) -> dict[str, Any] | None:
    """A bucket's state as read (``None``: no such entity) as its entity reads it: bookkeeping damaged outside this
    code set aside (``bucket_state.with_bookkeeping_readable``), so a move reads every bucket the entity can."""
    return None if bucket is None else with_bookkeeping_readable(bucket)


def unbucketed(
    buckets: Mapping[str, dict[str, Any] | None], landed: Landed | None = None
) -> tuple[dict[str, Any], Origins]:
    """The key states a layout's buckets hold (bucket key -> state), each naming the bucket it came from
    (``_moved_from``), and each such bucket's applied offsets (``origin_ranges``, its gaps closed only over
    ``landed``): in its new bucket, a moved key still skips every offset its old bucket applied. A key moved before
    keeps what its earlier origin applied too. A key whose stored text is not a JSON object (damaged outside this
    code) is moved as stored (``as_stored``), so its new bucket still holds it, as damaged. The buckets are read as
    ``readable`` gives them; what they hold that a move does not carry is named by ``left_behind``."""
    states: dict[str, Any] = {}
    origins: Origins = {}
    for home, bucket in sorted(buckets.items()):
        if not bucket:
            continue
        applied = origin_ranges(bucket, landed or {})
        for key in held_keys(bucket):
            state = key_state(bucket, key)
            if state is None:
                states[key] = as_stored(_stored_value(key_text(bucket, key)))
                continue
            earlier = _earlier_origin(state)
            origin = home if earlier is None else f"{home}<{earlier}"
            if origin not in origins:
                origins[origin] = _union(applied, _origin_of(bucket, earlier) if earlier else {})
            states[key] = state | {MOVED_FROM: origin}
    return states, origins


def as_stored(value: Any) -> Any:
    """A key state that is not a JSON object (damaged outside this code) as a move carries it: a value whose bucket
    holds it as its text, still damaged (an event sets it aside, the state API answers it as damaged) and readable.
    The value itself, or wrapped in a list where the bucket's adopt (``as_adopted``) would raise on it (a number, a
    null, a text naming ``_applied``) or take it as a key state (an object a bucket held not as text), or what
    orjson cannot write (its ``repr``, last)."""
    candidates: tuple[Any, ...] = (value, [value], [[value]], [[repr(value)]])  # adopt takes any payload value
    for carried in candidates:
        if isinstance(carried, dict):
            continue
        try:
            as_adopted(carried)
        except (TypeError, AttributeError):  # orjson.JSONEncodeError is a TypeError
            continue
        return carried
    raise AssertionError("a list of a list of text is always adopted")


def _stored_value(text: Any) -> Any:
    """The JSON value a key's stored text holds; the text itself when it is not JSON."""
    if not isinstance(text, str):
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _earlier_origin(state: dict[str, Any]) -> str | None:
    """The origin a key moved before names (one not text is damaged: ``left_behind`` names it)."""
    earlier = state.get(MOVED_FROM)
    return earlier if isinstance(earlier, str) else None


def _origin_of(bucket: dict[str, Any], origin: str) -> dict[str, OffsetRanges]:
    """The applied ranges a bucket keeps for an origin (none when damaged: ``left_behind`` names it)."""
    ranges = bucket.get(ORIGINS, {}).get(origin, {})
    return ranges if _are_ranges(ranges) else {}


def left_behind(buckets: Mapping[str, dict[str, Any] | None]) -> dict[str, str]:
    """Per bucket (read as ``readable`` gives them), what a move out of it does not carry, for a person: what it
    set aside (damaged bookkeeping, key states, its keys object; ``bucket_state``), the offsets it refused, damaged
    ``_moved_from`` or ``_origins`` of its keys (their earlier origin's offsets). The bucket keeps them."""
    found = {}
    for home, bucket in sorted(buckets.items()):
        what = _left_in(bucket) if bucket else []
        if what:
            found[home] = "; ".join(what)[:400]
    return found


def _left_in(bucket: dict[str, Any]) -> list[str]:
    what = []
    if set_aside := bucket.get(UNREADABLE_BOOKKEEPING):  # its applied or owed offsets among them: not carried
        named = sorted(set_aside) if isinstance(set_aside, dict) else UNREADABLE_BOOKKEEPING
        what.append(f"bookkeeping damaged, set aside, its offsets not carried: {named!r}")
    if not is_bucket_state(bucket):
        what.append(f"its {KEYS!r} is not an object: no key of it moved")
    if UNREADABLE_KEYS in bucket:
        what.append(f"a keys object set aside ({UNREADABLE_KEYS})")
    for field_name, kept in ((UNREADABLE, "damaged key states set aside"), (REFUSED, "offsets refused of keys")):
        if held := bucket.get(field_name):
            what.append(f"{kept} ({field_name}): {sorted(held)[:10]!r}" if isinstance(held, dict) else field_name)
    damaged = sorted(key for key in held_keys(bucket) if _damaged_origin(bucket, key_state(bucket, key)))
    if damaged:
        what.append(f"keys whose earlier origin is damaged, moved without its offsets: {damaged[:10]!r}")
    return what


def _damaged_origin(bucket: dict[str, Any], state: dict[str, Any] | None) -> bool:
    if state is None or MOVED_FROM not in state:
        return False
    earlier = _earlier_origin(state)
    return earlier is None or not _are_ranges(bucket.get(ORIGINS, {}).get(earlier, {}))


def origin_ranges(bucket: dict[str, Any], landed: Landed) -> dict[str, OffsetRanges]:
    """What a bucket's keys count as applied once moved out of it, per position: its applied ranges, each gap
    between two of them closed when ``landed`` (the partition's landing ledger, that life) counts every offset of
    the gap as landed, then without the offsets it owes (``_owed``: inside its ranges, not applied yet; they count
    when they come, once, in the new bucket too).

    A gap the ledger counts landed whole is a run of batches that landed and were signalled, to other buckets: an
    event of this bucket's keys there was applied (it is in the ranges) or is owed (the trigger never processes a
    partition's later offsets before an earlier failed batch is redelivered, and processing is stopped, its
    signals applied, before a move: docs/scale.md), so a redelivery or a rewind brings nothing else of these keys
    there. A gap reaching an offset the ledger does not count as landed stays open: offsets a consumer group was
    moved over (``tools.reconcile --move-group-to-time``, docs/reliability.md) hold events no bucket was sent, and
    a rewind to them lands them then; so does every gap of a position ``landed`` does not name (no ledger read).
    Closed, a bucket's 32 ranges per partition are mostly one span (the landing counts the offsets one consumer
    passed over between its batches as landed, so a ledger keeps a gap only where the group was moved, or another
    consumer went on past offsets with no record; ``landed`` leaves out what it keeps as ``passed_over``: a
    consumer's jump may have passed over records, and a rewind lands them): kept, its keys would carry them into
    each new bucket, once per old bucket, and a move to an N 32 times smaller would hold ~32 origins x partitions
    x 32 ranges a bucket (~110 KB at 4 partitions), for good, counted toward ``MAX_BUCKET_BYTES``."""
    owed = bucket.get(OWED, {})
    origins = {}
    for where, ranges in bucket.get(APPLIED, {}).items():
        if not ranges:
            continue
        known = _merged(landed.get(where, []))
        closed = [[ranges[0][0], ranges[0][1]]]
        for low, high in ranges[1:]:
            if _covers(known, closed[-1][1] + 1, low - 1):
                closed[-1][1] = high
            else:
                closed.append([low, high])
        origins[where] = without(closed, owed.get(where, []))
    return origins


# Per bucket, per position, the offsets it owes (``_owed``): what an old layout's buckets owe (``owed_of``), or what
# each new bucket must owe once its keys moved in (``owed_into``).
Owed = dict[str, dict[str, OffsetRanges]]
_BUCKET_KEY = re.compile(r"~b([0-9]+)of([1-9][0-9]*)\Z")


def owed_of(buckets: Mapping[str, dict[str, Any] | None]) -> Owed:
    """Per bucket (read as ``readable`` gives them) that owes any, the offsets it owes per position: what a move
    carries into the new buckets (``owed_into``). Only offsets and positions an ``apply`` can name."""
    found = {home: _nameable(bucket.get(OWED) or {}) for home, bucket in sorted(buckets.items()) if bucket}
    return {home: owed for home, owed in found.items() if owed}


def _nameable(per_position: Mapping[str, OffsetRanges]) -> dict[str, OffsetRanges]:
    """Of one bucket's owed ranges (of ``_owed``'s shape), merged, those an ``apply`` can name: offsets of Kafka's
    range, at positions that are ``topic/partition/incarnation``."""
    owed = {}
    for where, ranges in per_position.items():
        kept = _merged([[low, high] for low, high in ranges if low >= 0 and high <= MAX_OFFSET])
        if kept and partition_of(where) is not None:
            owed[where] = kept
    return owed


def owed_into(owed: Mapping[str, Mapping[str, OffsetRanges]], buckets: int) -> Owed:
    """Per bucket of ``buckets`` (a move's new N), what it must owe once the keys moved in: every offset owed (``owed``:
    per old bucket, ``owed_of``) by an old bucket whose keys can hash into it.

    A key's bucket is its hash modulo N (``buckets.bucket_index``), so a key of old bucket ``i`` of ``n`` goes to new
    bucket ``j`` of ``m`` only when ``j`` and ``i`` are equal modulo ``gcd(n, m)`` (every such ``j`` is reached by
    some key): an owed event's key, whichever it is, hashes to a new bucket that owes its offset. Moved again, that
    bucket passes it on the same way. An old bucket named otherwise (not ``~b<i>of<n>``) feeds every new bucket."""
    by_residue: dict[int, dict[int, dict[str, OffsetRanges]]] = {}
    for home, per_position in owed.items():
        found = _BUCKET_KEY.match(home)
        divisor = math.gcd(int(found[2]), buckets) if found else 1
        residue = int(found[1]) % divisor if found else 0
        held = by_residue.setdefault(divisor, {}).setdefault(residue, {})
        for where, ranges in per_position.items():
            held[where] = union(held.get(where, []), ranges)
    into: Owed = {}
    combined: dict[tuple[int, ...], dict[str, OffsetRanges]] = {}
    for index in range(buckets):
        residues = tuple(index % divisor for divisor in by_residue)
        if residues not in combined:
            merged: dict[str, OffsetRanges] = {}
            for divisor, residue in zip(by_residue, residues, strict=True):
                for where, ranges in by_residue[divisor].get(residue, {}).items():
                    merged[where] = union(merged.get(where, []), ranges)
            combined[residues] = merged
        if combined[residues]:
            into[bucket_key(index, buckets)] = combined[residues]
    return into


def owed_signals(entity: str, into: Mapping[str, Mapping[str, OffsetRanges]]) -> list[Signal]:
    """The ``apply`` operations that make each bucket owe what ``into`` (``owed_into``) names: ranges alone (no
    events), a part per owed range whose every offset is owed, so the bucket marks applied no offset it does not owe
    (one part spanning them all would mark the offsets between, which an old bucket may never have applied: a
    rewind over offsets a group was moved over). Every part of a position names the span from its first gap to its
    last as ``holes``, so marking them closes none of its gaps, however many ranges. Cut as processing cuts a large
    ``apply`` (``aggregate.within_size``); in any order, and again, they change nothing more."""
    signals = []
    for home, per_position in sorted(into.items()):
        parts = []
        for where, ranges in sorted(per_position.items()):
            located = partition_of(where)
            if located is None or not ranges:
                continue
            (topic, partition), life = located
            between = [[ranges[0][1] + 1, ranges[-1][0] - 1]] if len(ranges) > 1 else []
            for low, high in ranges:
                part = {"topic": topic, "partition": partition, "incarnation": life, "range": [low, high], "keys": {}}
                part["owed"] = list(range(low, high + 1))
                if between:
                    part["holes"] = between
                parts.append(part)
        if parts:
            signals.append(Signal(entity, home, "apply", {"parts": parts}))
    return within_size(signals)


def not_owing(
    into: Mapping[str, Mapping[str, OffsetRanges]], bucket_states: Mapping[str, dict[str, Any] | None]
) -> list[str]:
    """The buckets of ``into`` (``owed_into``) that do not owe (yet) what it names: its newest ``KEPT_OWED`` ranges
    per position, as many as a bucket keeps (``owed_over``)."""
    return [
        home
        for home, per_position in sorted(into.items())
        if any(
            without(ranges[-KEPT_OWED:], ((bucket_states.get(home) or {}).get(OWED) or {}).get(where, []))
            for where, ranges in per_position.items()
        )
    ]


def owed_over(into: Mapping[str, Mapping[str, OffsetRanges]]) -> dict[str, int]:
    """Per position, the most ranges a bucket of ``into`` must owe when over ``KEPT_OWED``: the oldest of them count
    as applied there (``bucket_state``'s bound), their re-signals skipped."""
    over: dict[str, int] = {}
    for per_position in into.values():
        for where, ranges in per_position.items():
            if len(ranges) > KEPT_OWED:
                over[where] = max(over.get(where, 0), len(ranges))
    return over


def partition_of(position: str) -> tuple[TopicPartition, int] | None:
    """The topic-partition and life a position (``topic/partition/incarnation``) names; ``None`` for another form."""
    parts = position.rsplit("/", 2)
    if len(parts) != 3 or not parts[0]:
        return None
    try:
        partition, incarnation = int(parts[1]), int(parts[2])
    except ValueError:
        return None
    return TopicPartition(parts[0], partition), incarnation


def positions_of(buckets: Mapping[str, dict[str, Any] | None]) -> set[str]:
    """Every position some bucket applied offsets of (whose ledger ``origin_ranges`` may close gaps by)."""
    return {
        where for bucket in buckets.values() if bucket for where, ranges in bucket.get(APPLIED, {}).items() if ranges
    }


def _merged(ranges: OffsetRanges) -> OffsetRanges:
    merged: OffsetRanges = []
    for low, high in ranges:
        merged = add(merged, low, high)
    return merged


def _covers(ranges: OffsetRanges, low: int, high: int) -> bool:
    """Whether merged ``ranges`` hold every offset from ``low`` to ``high``."""
    return any(start <= low and high <= end for start, end in ranges)


def _union(*ranges: Mapping[str, OffsetRanges]) -> dict[str, OffsetRanges]:
    merged: dict[str, OffsetRanges] = {}
    for per_position in ranges:
        for where, spans in per_position.items():
            for low, high in spans:  # no gap closed: one may be an offset a bucket owes, or one no layout applied
                merged[where] = add(merged.get(where, []), low, high)
    return merged


def run_token(lake: LakeStore, after: int = 0) -> int:
    """A migration run's name, taken from the lake's counter (``shared.state.bucket_counts.next_run``, a conditional
    write) before the run sends any adopt: later than every run handed out or completed before, on any machine
    whatever its clock, and than ``after`` (the latest run the target buckets name)."""
    return next_run(lake, after)


def replaced_by(bucket: dict[str, Any] | None) -> int | None:
    """The run whose adopt last emptied the bucket (``None``: none did)."""
    run = (bucket or {}).get(REPLACED)
    return run if type(run) is int else None


def adopt_signals(
    entity: str,
    states: Mapping[str, Any],
    buckets: int,
    origins: Origins | None = None,
    *,
    replace: bool = False,
    run: int | None = None,
    renew: Collection[str] = (),
) -> list[Signal]:
    """``adopt`` operations moving ``states`` (key -> state) into their buckets: one per bucket, cut by size;
    each carries the ``origins`` its keys name. ``replace``: the buckets are of an N the lake does not record
    (no processing writes to them), so what they hold is stale: each of the ``buckets`` buckets is sent the
    ``run`` (``run_token``: required), an empty adopt where no key goes, and is emptied by its first adopt.
    ``renew`` (keys of ``states``, ``moved_on``): those go in adopts of their own that replace what their bucket
    holds for them (``replace`` true: the keys given only)."""
    if renew and replace:
        raise ValueError("a move that replaces whole buckets renews no key on its own")
    renewed = {key: states[key] for key in renew}
    others = {key: state for key, state in states.items() if key not in renewed}
    return _adopts(entity, others, buckets, origins, replace=replace, run=run) + [
        Signal(signal.entity, signal.key, signal.operation, signal.payload | {"replace": True})
        for signal in _adopts(entity, renewed, buckets, origins)
    ]


def _adopts(
    entity: str,
    states: Mapping[str, Any],
    buckets: int,
    origins: Origins | None = None,
    *,
    replace: bool = False,
    run: int | None = None,
) -> list[Signal]:
    by_bucket: dict[str, dict[str, Any]] = {}
    if replace:
        if run is None:
            raise ValueError("a move that replaces needs its run's token (run_token)")
        by_bucket = {bucket_key(index, buckets): {} for index in range(buckets)}
    for key, state in sorted(states.items()):
        by_bucket.setdefault(bucket_for(key, buckets), {})[key] = state
    token = run if replace else None
    empty = len(json.dumps(_adopt_payload({}, origins, token)))
    signals = []
    for home, moved in by_bucket.items():
        chunk: dict[str, Any] = {}
        carried: set[str] = set()  # the origins the chunk's adopt carries
        size = empty
        for key, state in moved.items():
            origin = _carried_origin(state, origins)
            added = _entry_bytes(key, state) + _origin_bytes(origin, origins, carried)
            if chunk and size + added > MAX_ADOPT_BYTES:
                signals.append(Signal(entity, home, "adopt", _adopt_payload(chunk, origins, token)))
                chunk, carried, size = {}, set(), empty
                added = _entry_bytes(key, state) + _origin_bytes(origin, origins, carried)
            chunk[key] = state
            size += added
            if origin is not None:
                carried.add(origin)
        signals.append(Signal(entity, home, "adopt", _adopt_payload(chunk, origins, token)))
    return signals


def _carried_origin(state: Any, origins: Origins | None) -> str | None:
    """The origin a moved state names (``MOVED_FROM``) whose ranges its adopt carries (``_adopt_payload``)."""
    origin = state.get(MOVED_FROM) if isinstance(state, dict) else None
    return origin if origins is not None and isinstance(origin, str) else None


def _origin_bytes(origin: str | None, origins: Origins | None, carried: set[str]) -> int:
    """What carrying ``origin``'s ranges adds to an adopt that carries ``carried``'s already, as sent."""
    if origin is None or origins is None or origin in carried:
        return 0
    return _entry_bytes(origin, origins.get(origin))


def _entry_bytes(key: str, value: Any) -> int:
    """What ``key: value`` adds to a JSON object as the Durable client writes it (``json.dumps``: ``"key": value, ``,
    non-ASCII escaped): an upper bound by the last separator."""
    return len(json.dumps({key: value})) - len("{}") + len(", ")


def overfull(entity: str, states: Mapping[str, Any], buckets: int, origins: Origins | None = None) -> dict[str, int]:
    """Per bucket of ``buckets``, its size as stored once this move's adopts are applied to it empty, where over
    ``MAX_BUCKET_BYTES``: a move into too few buckets, whose first apply would evict keys (their state dropped)."""
    held: dict[str, dict[str, Any]] = {}
    for signal in adopt_signals(entity, states, buckets, origins):
        bucket_state.adopt(held.setdefault(signal.key, {}), signal.payload)
    sizes = {home: bucket_state.stored_size(bucket) for home, bucket in held.items()}
    return {home: size for home, size in sorted(sizes.items()) if size > bucket_state.MAX_BUCKET_BYTES}


def moved_on(states: Mapping[str, Any], bucket_states: Mapping[str, dict[str, Any] | None], buckets: int) -> list[str]:
    """The keys of a move from per-key entities whose bucket holds them as an earlier run moved them, from a per-key
    state that has applied more since (a signal still queued for it then, applied after that run read it: the run
    said so and failed): the bucket has applied no event (nothing processed into it since, so what it holds is only
    what runs adopted), and the state given now applies every offset the one it holds does, and others. Such a key
    is moved again, replacing what its bucket holds (``adopt_signals`` with ``renew``); any other key held with
    another state stays a conflict (its bucket counted events for it)."""
    found = []
    for key, state in sorted(states.items()):
        bucket = bucket_states.get(bucket_for(key, buckets))
        held = key_state(bucket, key)
        if held is None or bucket is None or not isinstance(state, dict) or any(bucket.get(APPLIED, {}).values()):
            continue
        given = as_adopted(state)
        was, now = held.get(APPLIED), given.get(APPLIED)
        if (
            isinstance(was, dict)
            and isinstance(now, dict)
            and was != now
            and all(not without(ranges, now.get(where, [])) for where, ranges in was.items())
        ):
            found.append(key)
    return found


def _adopt_payload(states: dict[str, Any], origins: Origins | None, run: int | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"states": states} | ({"replace": run} if run is not None else {})
    named = {state[MOVED_FROM] for state in states.values() if isinstance(state, dict) and MOVED_FROM in state}
    if named and origins is not None:
        payload["origins"] = {origin: origins[origin] for origin in sorted(named)}
    return payload


@dataclass
class Verification:
    """What the buckets hold after a migration, against the states moved."""

    moved: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # not in its bucket (yet): the adopt has not been applied
    conflicts: list[str] = field(default_factory=list)  # its bucket holds other state for it
    source_changed: bool = False  # what was moved from changed during the move: it was not drained
    changed: list[str] = field(default_factory=list)  # what changed: the old buckets, or the keys (per-key entities)
    renewed: list[str] = field(default_factory=list)  # keys moved again over an earlier run's adopt (``moved_on``)
    not_upgraded: dict[str, str] = field(default_factory=dict)  # key -> why: moved as stored (``upgraded``)
    # bucket (or per-key entity) -> what the move did not carry out of it (``left_behind``): the run fails, named
    left_behind: dict[str, str] = field(default_factory=dict)
    not_emptied: list[str] = field(default_factory=list)  # buckets the run's first adopt has not emptied (yet)
    gaps_kept: dict[str, str] = field(default_factory=dict)  # position -> why no ledger closed its origins' gaps
    near_capacity: dict[str, int] = field(default_factory=dict)  # bucket -> its bytes, over NEAR_CAPACITY of the max
    not_owing: list[str] = field(default_factory=list)  # buckets that do not owe yet what the old ones owed
    # position -> the owed ranges a new bucket would hold past KEPT_OWED (``owed_over``): the move was refused, unsent
    owed_over: dict[str, int] = field(default_factory=dict)
    # bucket -> its bytes as stored after this run's adopts, past MAX_BUCKET_BYTES (``overfull``): refused, unsent
    overfull: dict[str, int] = field(default_factory=dict)
    run: int | None = None  # the run's token (a move that replaces): recorded once the move completes
    record_moved: int | None = None  # the N the record named instead of the one the run moved from (0: none)

    @property
    def complete(self) -> bool:
        return (
            not self.missing
            and not self.conflicts
            and not self.source_changed
            and not self.not_emptied
            and not self.not_owing
            and not self.owed_over
            and not self.overfull
            and self.record_moved is None
        )


def upgraded(
    upgrade: Callable[[dict[str, Any]], dict[str, Any]], states: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Each key's state in today's form, and why each one ``upgrade`` raised on (a shape no release wrote,
    or damaged) was not, nor one that is not a JSON object (``as_stored``): that one is kept as stored, so one key
    cannot stop a migration."""
    states_now: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for key, state in states.items():
        if not isinstance(state, dict):
            states_now[key] = state
            failed[key] = f"not a JSON object: {dump(state)}"[:200]
            continue
        try:
            states_now[key] = upgrade(state)
        except Exception as error:  # anything a state of another shape raises: the key is named, the rest go on
            states_now[key] = state
            failed[key] = f"{type(error).__name__}: {error}"[:200]
    return states_now, failed


def verify(
    states: Mapping[str, Any],
    bucket_states: Mapping[str, dict[str, Any] | None],
    buckets: int,
    origins: Origins | None = None,
    *,
    run: int | None = None,
) -> Verification:
    """Check every moved key, and the origin ranges it names, against its bucket's state (bucket key -> state);
    with ``run`` (a move that replaces), that each of the ``buckets`` buckets was emptied by that run. Buckets
    held over ``NEAR_CAPACITY`` of ``MAX_BUCKET_BYTES`` are named with their size as the entity SDK stores them
    (``bucket_state.stored_size``, what the bound is measured in)."""
    outcome = Verification()
    for key, state in sorted(states.items()):
        bucket = bucket_states.get(bucket_for(key, buckets))
        held = held_as_moved(bucket, key, state)
        origin = state.get(MOVED_FROM) if isinstance(state, dict) else None
        held_origin = (bucket or {}).get(ORIGINS, {}).get(origin) if origin else None
        if held is None or (origin and held_origin is None):
            outcome.missing.append(key)
        elif not held or (origin and origins is not None and held_origin != origins[origin]):
            outcome.conflicts.append(key)
        else:
            outcome.moved.append(key)
    if run is not None:
        homes = [bucket_key(index, buckets) for index in range(buckets)]
        outcome.not_emptied = [home for home in homes if replaced_by(bucket_states.get(home)) != run]
    limit = bucket_state.MAX_BUCKET_BYTES * NEAR_CAPACITY
    for home, bucket in sorted(bucket_states.items()):
        size = bucket_state.stored_size(bucket) if bucket else 0
        if size > limit:
            outcome.near_capacity[home] = size
    return outcome


def held_as_moved(bucket: dict[str, Any] | None, key: str, state: Any) -> bool | None:
    """Whether ``bucket`` holds ``key`` as an adopt of ``state`` leaves it (``None``: it does not hold the key as
    such a state): an object as adopted, a key state moved as stored (``as_stored``) as the text adopt writes."""
    if isinstance(state, dict):
        held = key_state(bucket, key)
        return None if held is None else held == as_adopted(state)
    text = key_text(bucket, key)
    return None if text is None else text == dump(as_adopted(state))


EXPORT_FORMAT = "streamingpoc-state-export/1"


class ExportError(ValueError):
    """A state export file that is not one this version wrote, or that does not match the app's sources."""


@dataclass(frozen=True)
class StateExport:
    """One source's keyed state as a backend held it: every key's state, named by the bucket it came from, and what
    each bucket owed (``owed_of``: written only when one owed anything, so a file without it reads as before)."""

    entity: str
    buckets: int
    states: dict[str, Any]  # an object, or a key state moved as stored (``as_stored``)
    origins: Origins
    owed: Owed = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body = {"entity": self.entity, "buckets": self.buckets, "states": self.states, "origins": self.origins}
        return body | ({"owed": self.owed} if self.owed else {})


def export_of(
    entity: str, buckets: int, bucket_states: Mapping[str, dict[str, Any] | None], landed: Landed | None = None
) -> StateExport:
    """The export of a source whose ``buckets`` buckets hold ``bucket_states`` (bucket key -> state); its origins'
    gaps closed over ``landed`` (``origin_ranges``)."""
    states, origins = unbucketed(bucket_states, landed)
    return StateExport(entity, buckets, states, origins, owed_of(bucket_states))


def export_bytes(sources: Mapping[str, StateExport]) -> bytes:
    body = {"format": EXPORT_FORMAT, "sources": {name: part.to_json() for name, part in sorted(sources.items())}}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def parse_export(data: bytes, entities: Mapping[str, str]) -> dict[str, StateExport]:
    """The per-source exports in ``data``; ``entities`` maps each keyed source to its entity name.

    Raises :class:`ExportError` naming what is wrong: not JSON, another format, a source this
    app does not keep state for, an entity that is not the source's, or a malformed part.
    """
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise ExportError(f"not a state export (not JSON: {error})") from error
    if not isinstance(body, dict) or body.get("format") != EXPORT_FORMAT:
        raise ExportError(f"not a state export: its format is not {EXPORT_FORMAT!r}")
    sources = body.get("sources")
    if not isinstance(sources, dict):
        raise ExportError("the export has no 'sources' object")
    return {str(name): _state_export(str(name), part, entities) for name, part in sources.items()}


def _state_export(name: str, part: Any, entities: Mapping[str, str]) -> StateExport:
    if name not in entities:
        raise ExportError(f"{name!r}: no keyed source of that name in this app")
    if not isinstance(part, dict) or part.get("entity") != entities[name]:
        raise ExportError(f"{name!r}: its entity is not {entities[name]!r}")
    buckets, states, origins, owed = part.get("buckets"), part.get("states"), part.get("origins"), part.get("owed", {})
    if type(buckets) is not int or buckets < 1:
        raise ExportError(f"{name!r}: 'buckets' is not a positive integer")
    if not isinstance(states, dict) or not all(_exported(state) for state in states.values()):
        raise ExportError(f"{name!r}: 'states' is not an object of key states")
    if not isinstance(origins, dict) or not all(_are_ranges(ranges) for ranges in origins.values()):
        raise ExportError(f"{name!r}: 'origins' is not an object of applied offset ranges per position")
    if not isinstance(owed, dict) or not all(_are_ranges(ranges) for ranges in owed.values()):
        raise ExportError(f"{name!r}: 'owed' is not an object of owed offset ranges per position")
    unnamed = sorted(key for key, state in states.items() if not _names_origin(state, origins))
    if unnamed:
        raise ExportError(f"{name!r}: {len(unnamed)} key states name no origin in the export, e.g. {unnamed[0]!r}")
    nameable = {home: found for home, per_position in owed.items() if (found := _nameable(per_position))}
    return StateExport(entities[name], buckets, states, origins, nameable)


def _exported(state: Any) -> bool:
    """Whether a key state is one an export writes: an object, or a damaged one as a move carries it (``as_stored``:
    what the bucket's adopt takes)."""
    return isinstance(state, dict) or as_stored(state) is state


def _names_origin(state: Any, origins: Mapping[str, Any]) -> bool:
    """Whether an exported key state names one of the export's origins, as every exported object does; a key state
    exported as stored (``as_stored``: not an object) names none."""
    if not isinstance(state, dict):
        return True
    origin = state.get(MOVED_FROM)
    return isinstance(origin, str) and origin in origins


def _are_ranges(per_position: Any) -> bool:
    """``{position: [[low, high], ...]}`` with integer offsets, low <= high."""
    return isinstance(per_position, dict) and all(
        isinstance(spans, list)
        and all(
            isinstance(span, list) and len(span) == 2 and all(type(end) is int for end in span) and span[0] <= span[1]
            for span in spans
        )
        for spans in per_position.values()
    )
