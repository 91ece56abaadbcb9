"""Where the local host keeps entity state and accepted-but-unapplied signals.

A signal is written here before the host answers 202, and removed in the same transaction
that saves the state it produced, so a killed host loses nothing and applies nothing twice.
SQLite (a file next to the lake) by default; Azure Table storage when Azurite is used.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from devhost.errors import DevHostError


@dataclass(frozen=True, slots=True)
class PendingOperation:
    id: int
    entity: str
    key: str
    operation: str
    input: str | None


class StateTooLarge(DevHostError):
    """An entity state beyond what the store can hold. Retrying does not help: the entity stalls (``EntityRuntime``)."""

    def __init__(self, size: int, limit: int, store: str = "the store") -> None:
        super().__init__(f"entity state of {size:,} characters; {store} holds {limit:,}")
        self.size = size
        self.limit = limit


class SignalTooLarge(DevHostError):
    """A signal whose input is beyond what the store can hold (far past the app's ``MAX_SIGNAL_BYTES``)."""


class StoreUnavailable(DevHostError):
    """The entity store failed a request (Azurite down, a refused write): the sender retries."""


class EntityStore(Protocol):
    def enqueue(self, entity: str, key: str, operation: str, payload: str | None) -> PendingOperation: ...

    def pending(self) -> list[PendingOperation]: ...

    def load(self, entity: str, key: str) -> str | None: ...

    def commit(self, entity: str, key: str, state: str | None, applied: list[int]) -> None: ...

    def close(self) -> None: ...


class SqliteEntityStore:
    """One SQLite file; WAL mode so a commit survives the process being killed."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS state (entity TEXT, key TEXT, state TEXT, PRIMARY KEY (entity, key))"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY AUTOINCREMENT, entity TEXT, key TEXT,"
            " operation TEXT, input TEXT)"
        )

    def enqueue(self, entity: str, key: str, operation: str, payload: str | None) -> PendingOperation:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO inbox (entity, key, operation, input) VALUES (?, ?, ?, ?)",
                (entity, key, operation, payload),
            )
            return PendingOperation(int(cursor.lastrowid or 0), entity, key, operation, payload)

    def pending(self) -> list[PendingOperation]:
        with self._lock:
            rows = self._db.execute("SELECT id, entity, key, operation, input FROM inbox ORDER BY id").fetchall()
        return [PendingOperation(*row) for row in rows]

    def load(self, entity: str, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT state FROM state WHERE entity = ? AND key = ?", (entity, key)).fetchone()
        return None if row is None else str(row[0])

    def commit(self, entity: str, key: str, state: str | None, applied: list[int]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if state is None:
                    self._db.execute("DELETE FROM state WHERE entity = ? AND key = ?", (entity, key))
                else:
                    self._db.execute(
                        "INSERT INTO state (entity, key, state) VALUES (?, ?, ?)"
                        " ON CONFLICT (entity, key) DO UPDATE SET state = excluded.state",
                        (entity, key, state),
                    )
                self._db.executemany("DELETE FROM inbox WHERE id = ?", [(i,) for i in applied])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()
