"""The local host's SQLite entity store: a signal leaves the inbox only with the state it produced."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from devhost.durable.store import SqliteEntityStore


def test_a_failed_state_write_leaves_the_signal_in_the_inbox(tmp_path: Path) -> None:
    """The inbox row and the state are written in one transaction. Deleted before it began, the signal was gone
    once the state write failed (a disk error, or the host killed there), and its state never saved."""
    path = tmp_path / "entities.db"
    store = SqliteEntityStore(path)
    signal = store.enqueue("device_activity", "~b0of1", "apply", '"{}"')
    other = sqlite3.connect(path, isolation_level=None)  # a state write that fails, as a full disk's would
    other.execute(
        "CREATE TRIGGER no_state BEFORE INSERT ON state BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )
    with pytest.raises(sqlite3.DatabaseError, match="disk is full"):
        store.commit("device_activity", "~b0of1", '{"count": 10}', [signal.id])
    assert store.pending() == [signal] and store.load("device_activity", "~b0of1") is None

    other.execute("DROP TRIGGER no_state")
    other.close()
    store.commit("device_activity", "~b0of1", '{"count": 10}', [signal.id])  # the retry
    assert store.pending() == [] and store.load("device_activity", "~b0of1") == '{"count": 10}'
    store.close()
