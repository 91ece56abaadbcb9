"""What a bucket owes (``_owed``: a refused ``apply``, which ``tools.redrive`` re-signals) survives a move to another
N: the new buckets owe it too, so a later move or 32 later ranges never close a gap over it. Against the real entity
handler (``bucket_state.operate``), as processing, the migration and the redrive send to it."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from shared.records import OffsetSpan, TopicPartition
from shared.state.aggregate import owing, signals_for
from shared.state.bucket_state import KEPT_OWED, key_state, operate
from shared.state.buckets import bucket_for, bucket_key
from shared.state.migration import (
    adopt_signals,
    not_owing,
    owed_into,
    owed_of,
    owed_signals,
    unbucketed,
    upgraded,
    verify,
)
from shared.state.offsets import KEPT_RANGES
from shared.state.registry import ENTITY_KINDS

T = 1_795_478_400_000


class Source:
    """One keyed source's buckets in memory, operated on by the real entity handler, every payload as JSON."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.kind = ENTITY_KINDS[name]
        self.buckets: dict[str, dict[str, Any]] = {}
        self.n = 1
        self.runs = 0

    def send(self, key: str, operation: str, payload: dict[str, Any], into: dict[str, Any] | None = None) -> None:
        held = self.buckets if into is None else into
        state = json.loads(json.dumps(held.get(key, {})))
        outcome = operate(self.kind.fold, self.kind.reduce, key, state, operation, json.loads(json.dumps(payload)))
        assert outcome.refused is None, outcome.refused
        held[key] = outcome.state

    def batch(self, rows: list[dict[str, Any]], low: int, high: int, *, refused: bool = False) -> None:
        """One batch as processing signals it (``refused``: the entity API refused it, so ``owing`` is sent)."""
        spans = {TopicPartition(self.name, 0): OffsetSpan(low, high)}
        for signal in signals_for(self.name, [dict(row) for row in rows], spans, buckets=self.n, now_ms=T + 10**9):
            signal = owing(signal) if refused else signal
            self.send(signal.key, signal.operation, signal.payload)

    def redrive(self, row: dict[str, Any]) -> None:
        """``tools.redrive``'s re-signal of one raw row: a signal carrying its own offset only."""
        self.batch([row], row["_offset"], row["_offset"])

    def move(self, n: int, landed: dict[str, Any]) -> None:
        """``tools.migrate_state --to-buckets n``: adopts into the new (empty) buckets, verified, then what the old
        buckets owe; processing resumes on the new N."""
        self.runs += 1
        moved, origins = unbucketed(self.buckets, landed)
        states, _ = upgraded(self.kind.upgrade, moved)
        new: dict[str, dict[str, Any]] = {}
        for signal in adopt_signals(self.kind.name, states, n, origins, replace=True, run=self.runs):
            self.send(signal.key, signal.operation, signal.payload, new)
        assert verify(states, new, n, origins, run=self.runs).complete
        into = owed_into(owed_of(self.buckets), n)
        for signal in owed_signals(self.kind.name, into):
            self.send(signal.key, signal.operation, signal.payload, new)
        assert not not_owing(into, new)
        self.buckets, self.n = new, n

    def state(self, key: str) -> dict[str, Any]:
        return key_state(self.buckets.get(bucket_for(key, self.n)), key) or {}


def _user(offset: int) -> dict[str, Any]:
    row = {"user_id": 7, "username": f"u{offset}", "first_name": "f", "last_name": "l", "city": "A", "level": "Gold"}
    meta = {"_topic": "users", "_partition": 0, "_incarnation": 0, "_offset": offset, "_event_time": T + offset}
    return row | {"registered_at": 1} | meta


def _tap(device: str, offset: int) -> dict[str, Any]:
    row = {"device_id": device, "event_type": "tap", "screen": "home", "app_version": "1.0", "os": "iOS"}
    return row | {"_topic": "mobile", "_partition": 0, "_incarnation": 0, "_offset": offset, "_event_time": T + offset}


def test_an_owed_event_counts_once_when_redriven_after_two_moves() -> None:
    """Schedule (a), a review's: users/0 offsets 0-2 all user 7. N=1: 0 applied, 1 refused (owed); 1 -> 2; 2 applied
    and 0 redelivered; 2 -> 3 (the ledger counts 0-2 landed, closing the new bucket's gap at 1). The redrive's
    re-signal of 1 counts once (before: skipped as applied, the event lost)."""
    users = Source("users")
    rows = [_user(offset) for offset in range(3)]
    users.batch(rows[0:1], 0, 0)
    users.batch(rows[1:2], 1, 1, refused=True)
    assert users.buckets["~b0of1"]["_owed"] == {"users/0/0": [[1, 1]]}
    users.move(2, {"users/0/0": [[0, 1]]})
    users.batch(rows[2:3], 2, 2)
    users.batch(rows[0:1], 0, 0)  # redelivered (a rebalance): skipped, its origin applied it
    users.move(3, {"users/0/0": [[0, 2]]})
    for _ in range(2):  # the redrive, then again (its log was not confirmed)
        users.redrive(rows[1])
    assert users.state("7")["updates"] == 3
    assert users.state("7")["profile"]["username"] == "u2"  # the latest event's, not the redriven one's


def test_an_owed_event_counts_once_when_redriven_after_a_move_and_more_than_32_later_ranges() -> None:
    """Schedule (b): N=1 applies 0, is refused 1 (owed); 1 -> 2; 0 redelivered, then 40 sparse batches of d1, each
    with a gap before it: past 32 ranges the new bucket closes its oldest gaps, never over the offset it owes."""
    mobile = Source("mobile")
    mobile.batch([_tap("d1", 0)], 0, 0)
    mobile.batch([_tap("d1", 1)], 1, 1, refused=True)
    mobile.move(2, {"mobile/0/0": [[0, 1]]})
    mobile.batch([_tap("d1", 0)], 0, 0)
    for batch in range(2, 42):
        mobile.batch([_tap("d1", batch * 10)], batch * 10, batch * 10)
    assert len(mobile.buckets[bucket_for("d1", 2)]["_applied"]["mobile/0/0"]) <= KEPT_RANGES
    mobile.redrive(_tap("d1", 1))
    mobile.redrive(_tap("d1", 1))
    assert mobile.state("d1")["events"] == 1 + 40 + 1


def test_a_move_run_again_and_an_owed_signal_delivered_again_count_the_owed_event_once() -> None:
    """The move is run again (its owed applies sent twice), and one of them is delivered again after the redrive
    applied the event: an offset the bucket applied is never owed again."""
    mobile = Source("mobile")
    mobile.batch([_tap("d1", 0)], 0, 0)
    mobile.batch([_tap("d1", 5), _tap("d2", 6)], 5, 6, refused=True)
    old = mobile.buckets
    mobile.move(4, {"mobile/0/0": [[0, 6]]})
    first = json.loads(json.dumps(mobile.buckets))
    mobile.buckets, mobile.n = old, 1
    mobile.move(4, {"mobile/0/0": [[0, 6]]})  # run again: its own run replaces the buckets, owed again
    assert {home: bucket.get("_owed") for home, bucket in mobile.buckets.items()} == {
        home: bucket.get("_owed") for home, bucket in first.items()
    }
    late = owed_signals(mobile.kind.name, owed_into(owed_of(old), 4))
    mobile.redrive(_tap("d1", 5))
    for signal in late:  # delivered again, after the redrive
        mobile.send(signal.key, signal.operation, signal.payload)
    mobile.redrive(_tap("d1", 5))
    mobile.redrive(_tap("d2", 6))
    assert (mobile.state("d1")["events"], mobile.state("d2")["events"]) == (2, 1)


@pytest.mark.parametrize(("old", "new"), [(1, 3), (4, 2), (2, 8), (4, 6), (6, 4), (8, 3)])
def test_each_key_s_new_bucket_owes_what_its_old_bucket_owed(old: int, new: int) -> None:
    """A new bucket owes what the old buckets whose keys can hash into it owed (a key's bucket is its hash modulo
    N), so whichever key an owed offset is of, the bucket it moves to owes it; with N powers of two, a bucket of a
    larger N owes what one old bucket owed, not what all did."""
    owed = {bucket_key(index, old): {"mobile/0/0": [[index * 10, index * 10]]} for index in range(old)}
    into = owed_into(owed, new)
    for key in (f"device-{i}" for i in range(300)):
        offset = _index(bucket_for(key, old)) * 10
        assert [offset, offset] in into[bucket_for(key, new)]["mobile/0/0"]
    fed = {home: len(per_position["mobile/0/0"]) for home, per_position in into.items()}
    assert fed == {bucket_key(index, new): max(1, old // math.gcd(old, new)) for index in range(new)}
    assert owed_into({"not-a-bucket": {"mobile/0/0": [[3, 3]]}}, 3) == {
        bucket_key(index, 3): {"mobile/0/0": [[3, 3]]} for index in range(3)
    }


def _index(home: str) -> int:
    return int(home.removeprefix("~b").split("of")[0])


def test_owing_many_scattered_offsets_marks_applied_only_what_is_owed_and_closes_no_gap_between_them() -> None:
    """An old bucket owes 40 offsets, 100 apart (40 refused batches; the offsets between were never landed: a group
    moved over them). The new bucket marks the 40 owed offsets and no gap between them, past 32 ranges too: an event
    a rewind lands there later, of a key no layout held, counts; each owed event counts once."""
    mobile = Source("mobile")
    for batch in range(40):
        mobile.batch([_tap("d1", batch * 100)], batch * 100, batch * 100, refused=True)
    owed = mobile.buckets["~b0of1"]["_owed"]["mobile/0/0"]
    assert len(owed) == 40 <= KEPT_OWED
    mobile.move(2, {})
    for home in (bucket_key(0, 2), bucket_key(1, 2)):
        assert mobile.buckets[home]["_applied"]["mobile/0/0"] == owed == mobile.buckets[home]["_owed"]["mobile/0/0"]
    mobile.batch([_tap("fresh", 150)], 150, 150)  # a rewind lands an offset the group was moved over
    for batch in range(40):
        mobile.redrive(_tap("d1", batch * 100))
    mobile.redrive(_tap("d1", 0))
    assert (mobile.state("fresh")["events"], mobile.state("d1")["events"]) == (1, 40)


def test_owed_signals_are_cut_within_the_size_processing_keeps_an_apply_to() -> None:
    from shared.state.aggregate import MAX_SIGNAL_BYTES

    into = {"~b0of1": {"mobile/0/0": [[1_000_000_000_000, 1_000_000_020_000]]}}
    signals = owed_signals(ENTITY_KINDS["mobile"].name, into)
    assert len(signals) > 1 and all(len(json.dumps(signal.payload)) <= MAX_SIGNAL_BYTES for signal in signals)
    bucket: dict[str, Any] = {}
    kind = ENTITY_KINDS["mobile"]
    for signal in reversed(signals):  # in any order
        outcome = operate(kind.fold, kind.reduce, signal.key, bucket, signal.operation, signal.payload)
        assert outcome.refused is None
        bucket = outcome.state
    assert bucket["_owed"] == bucket["_applied"] == into["~b0of1"]
    assert not not_owing(into, {"~b0of1": bucket}) and not_owing(into, {"~b0of1": {}}) == ["~b0of1"]


def test_a_new_bucket_that_must_owe_more_ranges_than_a_bucket_keeps_is_named() -> None:
    from shared.state.migration import owed_over

    scattered = [[offset * 10, offset * 10] for offset in range(KEPT_OWED + 6)]
    into = owed_into(
        {bucket_key(0, 2): {"mobile/0/0": scattered[::2]}, bucket_key(1, 2): {"mobile/0/0": scattered[1::2]}}, 1
    )
    assert owed_over(into) == {"mobile/0/0": KEPT_OWED + 6}
    assert owed_over(owed_into({bucket_key(0, 2): {"mobile/0/0": scattered[::2]}}, 1)) == {}
