"""Entity state and pending signals in Azure Table storage (Azurite locally), like Durable's own tables.

Each entity is one partition: row ``state`` holds its state and rows ``op-<sequence>`` its
accepted signals, so saving a state and removing the signals it applied is one entity-group
transaction. Batches are capped at ``MAX_BATCH`` signals to fit one transaction.

A string property holds at most 32K UTF-16 characters, and a key bucket's state is often more
(``shared.state.bucket_state``), so a state is cut into ``state``, ``state1``, ``state2`` ...
properties of the same row (an entity holds at most 1 MiB, about ``MAX_STATE_CHARS``); the
Durable extension's own Azure Storage provider moves large states to blobs instead.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from typing import Any
from urllib.parse import quote, unquote

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from devhost.durable.store import PendingOperation, StateTooLarge

MAX_BATCH = 99
_STATE_ROW = "state"
CHUNK_CHARS = 30_000
MAX_STATE_CHARS = 16 * CHUNK_CHARS  # 16 chunks of <= 60 KB (UTF-16): inside the 1 MiB an entity may hold
MAX_PARTITION_CHARS = 512  # a Table key is at most 1 KiB (UTF-16)


__all__ = ["CHUNK_CHARS", "MAX_STATE_CHARS", "StateTooLarge", "TableEntityStore", "state_of", "state_row"]


def state_row(partition: str, state: str) -> dict[str, Any]:
    """The row holding ``state``, cut into properties that each fit a Table string."""
    if len(state) > MAX_STATE_CHARS:
        raise StateTooLarge(len(state), MAX_STATE_CHARS, "the local Table store")
    chunks = [state[start : start + CHUNK_CHARS] for start in range(0, len(state), CHUNK_CHARS)] or [""]
    row: dict[str, Any] = {"PartitionKey": partition, "RowKey": _STATE_ROW, "chunks": len(chunks)}
    for index, chunk in enumerate(chunks):
        row["state" if index == 0 else f"state{index}"] = chunk
    return row


def state_of(row: dict[str, Any]) -> str:
    """The state a row holds (rows written before chunking have ``state`` alone)."""
    count = int(row.get("chunks") or 1)
    return "".join(str(row["state" if index == 0 else f"state{index}"]) for index in range(count))


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
        sequence = next(self._sequence)
        self._table.create_entity(
            {
                "PartitionKey": _partition(entity, key),
                "RowKey": f"op-{sequence:020d}",
                "entity": entity,
                "key": key,
                "operation": operation,
                "input": payload,
            }
        )
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
            operations.append(PendingOperation(sequence, entity, key, row["operation"], row.get("input")))
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
            self._table.submit_transaction(operations)

    def close(self) -> None:
        self._table.close()
