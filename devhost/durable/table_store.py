"""Entity state and pending signals in Azure Table storage (Azurite locally), like Durable's own tables.

Each entity is one partition: row ``state`` holds its state and rows ``op-<sequence>`` its
accepted signals, so saving a state and removing the signals it applied is one entity-group
transaction. Batches are capped at ``MAX_BATCH`` signals to fit one transaction.

A string property holds at most 32K UTF-16 characters, and a key bucket's state is often more
(``shared.state.bucket_state``), so a state is cut into ``state``, ``state1``, ``state2`` ...
properties of the same row (an entity holds at most 1 MiB, ``MAX_STORED_BYTES``), and a
signal's input (up to 256 KiB) into ``input``, ``input1`` ... of its row; the Durable
extension's own Azure Storage provider moves large states and messages to blobs instead.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from typing import Any
from urllib.parse import quote, unquote

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from devhost.durable.store import PendingOperation, SignalTooLarge, StateTooLarge, StoreUnavailable

MAX_BATCH = 99
_STATE_ROW = "state"
CHUNK_CHARS = 30_000
# Azurite measures a row as JSON text with non-ASCII escaped (6 bytes a character, 12 past U+FFFF), against 1 MiB:
# a state of 174,689 CJK characters is the most it stores (a review's search), 480,000 of ASCII.
MAX_STORED_BYTES = 1_000_000
MAX_PARTITION_CHARS = 512  # a Table key is at most 1 KiB (UTF-16)


__all__ = ["CHUNK_CHARS", "MAX_STORED_BYTES", "StateTooLarge", "TableEntityStore", "state_of", "state_row"]


def stored_bytes(text: str) -> int:
    """What Azurite counts of a string against an entity's 1 MiB: its JSON, non-ASCII escaped (never less than its
    UTF-16 units, so a text within the limit fits the properties it is cut into)."""
    return len(json.dumps(text))


def utf16_units(text: str) -> int:
    """What Table storage counts of a string: UTF-16 code units (a character past U+FFFF, an emoji, is two)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def state_row(partition: str, state: str) -> dict[str, Any]:
    """The row holding ``state``, cut into properties that each fit a Table string."""
    if (stored := stored_bytes(state)) > MAX_STORED_BYTES:
        raise StateTooLarge(stored, MAX_STORED_BYTES, "the local Table store (escaped as JSON)")
    return {"PartitionKey": partition, "RowKey": _STATE_ROW, **_chunked("state", "chunks", state)}


def state_of(row: dict[str, Any]) -> str:
    """The state a row holds (rows written before chunking have ``state`` alone)."""
    return _joined(row, "state", "chunks")


def _chunked(name: str, count: str, text: str) -> dict[str, Any]:
    """``text`` as properties ``name``, ``name1``, ... that each fit a Table string, and their ``count``."""
    step = CHUNK_CHARS if utf16_units(text) == len(text) else CHUNK_CHARS // 2  # at most two units a character
    chunks = [text[start : start + step] for start in range(0, len(text), step)] or [""]
    return {
        count: len(chunks),
        **{name if index == 0 else f"{name}{index}": chunk for index, chunk in enumerate(chunks)},
    }


def _joined(row: dict[str, Any], name: str, count: str) -> str:
    return "".join(str(row[name if index == 0 else f"{name}{index}"]) for index in range(int(row.get(count) or 1)))


def _partition(entity: str, key: str) -> str:
    """The entity's partition key: its name and key, escaped; a key whose escaped form would not fit a Table key
    (``%3A`` for each ``:``) as ``*`` and its digest, a character no escaped key holds."""
    partition = f"{quote(entity, safe='')}|{quote(key, safe='')}"
    if len(partition) <= MAX_PARTITION_CHARS:
        return partition
    return f"{quote(entity, safe='')}|*{hashlib.sha256(key.encode()).hexdigest()}"


class TableEntityStore:
    def __init__(self, connection_string: str, table: str = "DevhostEntities") -> None:
        service = TableServiceClient.from_connection_string(connection_string)
        self._table = service.create_table_if_not_exists(table)
        self._sequence = itertools.count(time.time_ns())

    def enqueue(self, entity: str, key: str, operation: str, payload: str | None) -> PendingOperation:
        """Store a signal; its input is cut as a state is (a signal may be up to 256 KiB: ``MAX_SIGNAL_BYTES``)."""
        if payload is not None and (stored := stored_bytes(payload)) > MAX_STORED_BYTES:
            limit = f"the local store holds {MAX_STORED_BYTES:,}"
            raise SignalTooLarge(f"entity signal input of {stored:,} bytes as stored; {limit}")
        sequence = next(self._sequence)
        row = {
            "PartitionKey": _partition(entity, key),
            "RowKey": f"op-{sequence:020d}",
            "entity": entity,
            "key": key,
            "operation": operation,
        }
        try:
            self._table.create_entity(row | ({} if payload is None else _chunked("input", "input_chunks", payload)))
        except HttpResponseError as error:
            refused = f"the local entity store refused a signal: {error}".splitlines()[0]
            if error.status_code == 400:  # a value or row Table storage cannot hold: sending it again cannot help
                raise SignalTooLarge(refused) from error
            raise StoreUnavailable(refused) from error
        except AzureError as error:
            raise StoreUnavailable(f"the local entity store failed: {error}".splitlines()[0]) from error
        return PendingOperation(sequence, entity, key, operation, payload)

    def pending(self) -> list[PendingOperation]:
        rows = self._table.query_entities("RowKey ge 'op-' and RowKey lt 'op.'")
        operations = []
        for row in rows:
            sequence = int(str(row["RowKey"])[3:])
            if "key" in row:
                entity, key = str(row["entity"]), str(row["key"])
            else:  # a row written before they were stored: its partition key is the escaped name and key
                escaped_entity, _, escaped_key = str(row["PartitionKey"]).partition("|")
                entity, key = unquote(escaped_entity), unquote(escaped_key)
            payload = _joined(row, "input", "input_chunks") if row.get("input") is not None else None
            operations.append(PendingOperation(sequence, entity, key, row["operation"], payload))
        return sorted(operations, key=lambda operation: operation.id)

    def load(self, entity: str, key: str) -> str | None:
        try:
            row = self._table.get_entity(_partition(entity, key), _STATE_ROW)
        except ResourceNotFoundError:
            return None
        return state_of(row)

    def commit(self, entity: str, key: str, state: str | None, applied: list[int]) -> None:
        partition = _partition(entity, key)
        operations: list[tuple[Any, ...]] = [
            ("delete", {"PartitionKey": partition, "RowKey": f"op-{sequence:020d}"}) for sequence in applied
        ]
        if state is not None:
            operations.append(("upsert", state_row(partition, state), {"mode": UpdateMode.REPLACE}))
        elif self.load(entity, key) is not None:
            operations.append(("delete", {"PartitionKey": partition, "RowKey": _STATE_ROW}))
        if operations:
            try:
                self._table.submit_transaction(operations)
            except HttpResponseError as error:
                if "EntityTooLarge" in str(error) and state is not None:  # past what this code measures: permanent
                    raise StateTooLarge(stored_bytes(state), MAX_STORED_BYTES, "the local Table store") from error
                raise

    def close(self) -> None:
        self._table.close()
