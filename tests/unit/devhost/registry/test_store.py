"""The local registry's store: a schema is its type and its text, and a file of an earlier version keeps its ids."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from devhost.registry.store import STORE_VERSION, RegistryStore


def test_the_same_text_registered_as_json_schema_is_not_given_the_avro_schemas_id() -> None:
    """Confluent's registry gives ``"string"`` as AVRO and ``"string"`` as JSON two ids (the type is part of what a
    schema is): given the Avro one's id, the JSON producer's consumers would be told by ``/schemas/ids/{id}`` that
    it is Avro."""
    store = RegistryStore(None)
    try:
        avro = store.register("a-value", '"string"', "AVRO")
        as_json = store.register("b-value", '"string"', "JSON")
        assert avro.id != as_json.id
        assert store.schema(avro.id) == ('"string"', "AVRO")
        assert store.schema(as_json.id) == ('"string"', "JSON")
        assert store.register("c-value", ' "string" ', "JSON").id == as_json.id  # the same schema keeps its id
        both = store.register("a-value", '"string"', "JSON")
        assert (both.id, both.version) == (as_json.id, 2)
        assert store.lookup("a-value", '"string"', "JSON") == both
        found = store.lookup("a-value", '"string"', "AVRO")
        assert found is not None and (found.id, found.version) == (avro.id, 1)
        assert store.lookup("b-value", '"string"', "AVRO") is None
    finally:
        store.close()


def test_a_file_of_the_earlier_version_opens_and_keeps_its_ids(tmp_path: Path) -> None:
    """A registry file written before the type was part of a schema's identity (its schemas unique by text alone):
    ``CREATE TABLE IF NOT EXISTS`` would keep that constraint and refuse the JSON schema below; the store moves
    the schemas into the new table instead, each with its id (records in topics and the lake carry them)."""
    path = tmp_path / "registry.sqlite"
    earlier = sqlite3.connect(path, isolation_level=None)
    earlier.execute(
        "CREATE TABLE schemas (id INTEGER PRIMARY KEY AUTOINCREMENT, canonical TEXT UNIQUE,"
        " schema TEXT NOT NULL, schema_type TEXT NOT NULL)"
    )
    earlier.execute(
        "CREATE TABLE versions (subject TEXT, version INTEGER, schema_id INTEGER,"
        " PRIMARY KEY (subject, version), UNIQUE (subject, schema_id))"
    )
    earlier.execute(
        "INSERT INTO schemas VALUES (1, '\"int\"', '\"int\"', 'AVRO'), (7, '\"string\"', '\"string\"', 'AVRO')"
    )
    earlier.execute("INSERT INTO versions VALUES ('a-value', 1, 1), ('a-value', 2, 7)")
    earlier.close()

    store = RegistryStore(path)
    try:
        assert store.schema(7) == ('"string"', "AVRO")
        again = store.register("a-value", '"string"', "AVRO")
        assert (again.id, again.version) == (7, 2)
        as_json = store.register("b-value", '"string"', "JSON")
        assert as_json.id == 8 and store.schema(as_json.id) == ('"string"', "JSON")
    finally:
        store.close()
    reopened = RegistryStore(path)  # migrated once: opened again, it is as it was left
    try:
        assert reopened.versions("a-value") == [1, 2] and reopened.schema(as_json.id) == ('"string"', "JSON")
    finally:
        reopened.close()
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA user_version").fetchone() == (STORE_VERSION,)
        tables = {row[0] for row in check.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"schemas", "versions", "sqlite_sequence"}
    finally:
        check.close()
