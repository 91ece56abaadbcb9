"""Per-batch state lookups: each bucket read once, then cached."""

from __future__ import annotations

import json
from typing import Any

from shared.state.aggregate import Signal
from shared.state.buckets import bucket_for
from shared.state.lookups import StateJoiner


class RecordingGateway:
    """In-memory stand-in for the entity API, counting reads (a test double for a pure-logic test)."""

    def __init__(self, states: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.states = states
        self.reads: list[tuple[str, str]] = []

    async def read(self, entity: str, key: str) -> dict[str, Any] | None:
        self.reads.append((entity, key))
        return self.states.get((entity, key))

    async def signal(self, signal: Signal) -> None:
        raise AssertionError("not used")


async def test_lookups_read_each_bucket_once_then_cached() -> None:
    profile = {"profile": {"username": "u7", "city": "Raleigh", "level": "Gold"}}
    gateway = RecordingGateway({("user_profile", bucket_for("7", 4)): {"keys": {"7": json.dumps(profile)}}})
    joiner = StateJoiner()
    users = [7, 9, *range(100, 140)]
    rows = [{"userid": u, "user_known": True} for u in users for _ in range(5)]
    await joiner.join(gateway, "clickstream", rows, {"users": 4})
    await joiner.join(gateway, "clickstream", [dict(r) for r in rows], {"users": 4})
    assert sorted(gateway.reads) == [("user_profile", f"~b{i}of4") for i in range(4)]  # per bucket, then cached
    assert rows[0]["city"] == "Raleigh" and rows[5]["city"] is None


def test_a_profile_whose_stored_state_is_unreadable_reads_as_no_profile() -> None:
    from shared.state.bucket_state import key_state

    assert key_state({"keys": {"42": '{"profile": {"username": '}}, "42") is None  # truncated text: no state, no error
