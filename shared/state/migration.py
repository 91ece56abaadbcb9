"""Moving keyed state into key buckets once: from the per-key entities of the previous layout, or from
buckets of another N (``unbucketed``). What to send and how to check it; ``tools/migrate_state.py`` runs it.

A moved key's state is adopted by its bucket as it was (``shared.state.bucket_state.adopt``),
with its own applied offset ranges (a key moved out of a bucket takes its bucket's), so a batch
redelivered across the upgrade never counts an event twice, and one the previous layout had not
applied still counts. Adopting is idempotent (a second run changes nothing) and never overwrites
a key the bucket already holds with other state: such a key is a conflict, reported, never lost.

The migration is exact when the previous layout no longer changes while it runs: processing is
stopped first and the previous layout's entities have applied the signals they were sent
(docs/scale.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from shared.source_model import Row
from shared.state.aggregate import Signal
from shared.state.bucket_state import as_adopted, held_keys, key_state
from shared.state.buckets import bucket_for
from shared.state.offsets import APPLIED, applied_ranges, mark

MAX_ADOPT_BYTES = 200_000  # one adopt operation's states, JSON: well inside a queue message with its envelope


def keys_of(entity_key: Any, rows: Iterable[Row]) -> set[str]:
    """The entity keys a source's landed rows count for (what may have state in the previous layout)."""
    keys = set()
    for row in rows:
        try:
            keys.add(str(entity_key(row)))
        except (KeyError, TypeError, ValueError):  # a row without its key fields never reached an entity
            continue
    return keys


def unbucketed(buckets: Mapping[str, dict[str, Any] | None]) -> dict[str, dict[str, Any]]:
    """The key states a layout's buckets hold (bucket key -> state), each carrying its bucket's applied ranges
    as its own: in its new bucket, a moved key still skips every offset its old bucket applied."""
    states: dict[str, dict[str, Any]] = {}
    for bucket in buckets.values():
        if not bucket:
            continue
        ranges = bucket.get(APPLIED, {})
        for key in held_keys(bucket):
            state = key_state(bucket, key)
            if state is None:
                continue
            own = applied_ranges(state)
            for where, spans in ranges.items():
                for low, high in spans:
                    mark(own, where, low, high)
            states[key] = state
    return states


def adopt_signals(entity: str, states: Mapping[str, dict[str, Any]], buckets: int) -> list[Signal]:
    """``adopt`` operations moving ``states`` (key -> state) into their buckets: one per bucket, cut by size."""
    by_bucket: dict[str, dict[str, dict[str, Any]]] = {}
    for key, state in sorted(states.items()):
        by_bucket.setdefault(bucket_for(key, buckets), {})[key] = state
    signals = []
    for home, moved in by_bucket.items():
        chunk: dict[str, dict[str, Any]] = {}
        size = 0
        for key, state in moved.items():
            weight = len(orjson.dumps(state)) + len(key)
            if chunk and size + weight > MAX_ADOPT_BYTES:
                signals.append(Signal(entity, home, "adopt", {"states": chunk}))
                chunk, size = {}, 0
            chunk[key] = state
            size += weight
        signals.append(Signal(entity, home, "adopt", {"states": chunk}))
    return signals


@dataclass
class Verification:
    """What the buckets hold after a migration, against the states moved."""

    moved: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # not in its bucket (yet): the adopt has not been applied
    conflicts: list[str] = field(default_factory=list)  # its bucket holds other state for it

    @property
    def complete(self) -> bool:
        return not self.missing and not self.conflicts


def verify(
    states: Mapping[str, dict[str, Any]], bucket_states: Mapping[str, dict[str, Any] | None], buckets: int
) -> Verification:
    """Check every moved key against its bucket's state (``bucket_states``: bucket key -> state)."""
    outcome = Verification()
    for key, state in sorted(states.items()):
        held = key_state(bucket_states.get(bucket_for(key, buckets)), key)
        if held is None:
            outcome.missing.append(key)
        elif held != as_adopted(state):
            outcome.conflicts.append(key)
        else:
            outcome.moved.append(key)
    return outcome
