"""Registered schemas and subject versions, persisted in one SQLite file.

Ids are global and stable: the same schema (its type and its text compared in canonical form) keeps
its id under every subject, as in Confluent Schema Registry, where the type is part of what a schema
is: ``"string"`` registered as AVRO and as JSON are two schemas with two ids. A subject's versions
count from 1.

A file of an earlier version (``PRAGMA user_version`` 0, schemas unique by text alone) is migrated
when opened: its schemas keep their ids (records in topics and the lake carry them).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

STORE_VERSION = 1  # PRAGMA user_version: 1 since a schema's type is part of its identity


@dataclass(frozen=True, slots=True)
class Registered:
    subject: str
    version: int
    id: int
    schema: str
    schema_type: str


def canonical(schema: str, schema_type: str | None = "AVRO") -> str:
    """Two texts of one schema compare equal: an Avro or JSON schema as compact JSON with sorted keys, a Protobuf
    one (not JSON) as its text without the whitespace around it. ``schema_type`` None: JSON if it parses."""
    if schema_type == "PROTOBUF":
        return schema.strip()
    try:
        return json.dumps(json.loads(schema), sort_keys=True, separators=(",", ":"))
    except ValueError:
        if schema_type is None:
            return schema.strip()
        raise


class RegistryStore:
    """Schemas by id and subjects' versions; ``path`` None keeps them in memory (tests)."""

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:" if path is None else path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._create_or_migrate()
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _create_or_migrate(self) -> None:
        """The tables of ``STORE_VERSION``; the schemas of a file of an earlier version copied in, ids and all."""
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version >= STORE_VERSION:
            return
        earlier = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schemas'").fetchone()
        if earlier:  # CREATE TABLE IF NOT EXISTS would keep its UNIQUE (canonical): a JSON schema given an Avro id
            self._db.execute("ALTER TABLE schemas RENAME TO schemas_unique_by_text")
        self._db.execute(
            "CREATE TABLE schemas (id INTEGER PRIMARY KEY AUTOINCREMENT, canonical TEXT NOT NULL,"
            " schema TEXT NOT NULL, schema_type TEXT NOT NULL, UNIQUE (canonical, schema_type))"
        )
        if earlier:
            self._db.execute(
                "INSERT INTO schemas (id, canonical, schema, schema_type)"
                " SELECT id, canonical, schema, schema_type FROM schemas_unique_by_text"
            )
            self._db.execute("DROP TABLE schemas_unique_by_text")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS versions (subject TEXT, version INTEGER, schema_id INTEGER,"
            " PRIMARY KEY (subject, version), UNIQUE (subject, schema_id))"
        )
        self._db.execute(f"PRAGMA user_version = {STORE_VERSION}")

    def register(self, subject: str, schema: str, schema_type: str = "AVRO") -> Registered:
        """The subject's version of ``schema``, added (with a new id if the schema is new) when it lacks it."""
        key = canonical(schema, schema_type)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT id FROM schemas WHERE canonical = ? AND schema_type = ?", (key, schema_type)
                ).fetchone()
                schema_id = row[0] if row else self._insert_schema(key, schema, schema_type)
                found = self._db.execute(
                    "SELECT version FROM versions WHERE subject = ? AND schema_id = ?", (subject, schema_id)
                ).fetchone()
                if found:
                    version = found[0]
                else:
                    (latest,) = self._db.execute(
                        "SELECT COALESCE(MAX(version), 0) FROM versions WHERE subject = ?", (subject,)
                    ).fetchone()
                    version = latest + 1
                    self._db.execute("INSERT INTO versions VALUES (?, ?, ?)", (subject, version, schema_id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return Registered(subject, version, schema_id, schema, schema_type)

    def _insert_schema(self, key: str, schema: str, schema_type: str) -> int:
        cursor = self._db.execute(
            "INSERT INTO schemas (canonical, schema, schema_type) VALUES (?, ?, ?)", (key, schema, schema_type)
        )
        return int(cursor.lastrowid or 0)

    def schema(self, schema_id: int) -> tuple[str, str] | None:
        """``(schema, schema_type)`` of an id, or None."""
        with self._lock:
            row = self._db.execute("SELECT schema, schema_type FROM schemas WHERE id = ?", (schema_id,)).fetchone()
        return None if row is None else (row[0], row[1])

    def subjects(self) -> list[str]:
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT DISTINCT subject FROM versions ORDER BY subject")]

    def versions(self, subject: str) -> list[int]:
        with self._lock:
            rows = self._db.execute("SELECT version FROM versions WHERE subject = ? ORDER BY version", (subject,))
            return [row[0] for row in rows]

    def version(self, subject: str, version: int | None) -> Registered | None:
        """One version of a subject (None: the latest)."""
        query = (
            "SELECT v.version, s.id, s.schema, s.schema_type FROM versions v JOIN schemas s ON s.id = v.schema_id"
            " WHERE v.subject = ?"
        )
        with self._lock:
            if version is None:
                row = self._db.execute(query + " ORDER BY v.version DESC LIMIT 1", (subject,)).fetchone()
            else:
                row = self._db.execute(query + " AND v.version = ?", (subject, version)).fetchone()
        return None if row is None else Registered(subject, row[0], row[1], row[2], row[3])

    def lookup(self, subject: str, schema: str, schema_type: str | None = None) -> Registered | None:
        """The subject's version holding ``schema`` of ``schema_type`` (None: of any type, its first), or None."""
        query = (
            "SELECT v.version, s.id, s.schema, s.schema_type FROM versions v JOIN schemas s ON s.id = v.schema_id"
            " WHERE v.subject = ? AND s.canonical = ? AND s.schema_type = COALESCE(?, s.schema_type)"
            " ORDER BY v.version LIMIT 1"
        )
        with self._lock:
            row = self._db.execute(query, (subject, canonical(schema, schema_type), schema_type)).fetchone()
        return None if row is None else Registered(subject, row[0], row[1], row[2], row[3])

    def close(self) -> None:
        with self._lock:
            self._db.close()
