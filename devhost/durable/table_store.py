"""Entity state and pending signals in Azure Table storage (Azurite locally), like Durable's own tables.

Each entity is one partition: row ``state`` holds its state and rows ``op-<sequence>`` its
accepted signals, so saving a state and removing the signals it applied is one entity-group
transaction. Batches are capped at ``MAX_BATCH`` signals to fit one transaction.
"""

from __future__ import annotations

import itertools
import time
from typing import Any
from urllib.parse import quote, unquote

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from devhost.durable.store import PendingOperation

MAX_BATCH = 99
_STATE_ROW = "state"


def _partition(entity: str, key: str) -> str:
    return f"{quote(entity, safe='')}|{quote(key, safe='')}"


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
                "operation": operation,
                "input": payload,
            }
        )
        return PendingOperation(sequence, entity, key, operation, payload)

    def pending(self) -> list[PendingOperation]:
        rows = self._table.query_entities("RowKey ge 'op-' and RowKey lt 'op.'")
        operations = []
        for row in rows:
            entity, _, key = str(row["PartitionKey"]).partition("|")
            sequence = int(str(row["RowKey"])[3:])
            operations.append(
                PendingOperation(sequence, unquote(entity), unquote(key), row["operation"], row.get("input"))
            )
        return sorted(operations, key=lambda operation: operation.id)

    def load(self, entity: str, key: str) -> str | None:
        try:
            row = self._table.get_entity(_partition(entity, key), _STATE_ROW)
        except ResourceNotFoundError:
            return None
        return str(row["state"])

    def commit(self, entity: str, key: str, state: str | None, applied: list[int]) -> None:
        partition = _partition(entity, key)
        operations: list[tuple[Any, ...]] = [
            ("delete", {"PartitionKey": partition, "RowKey": f"op-{sequence:020d}"}) for sequence in applied
        ]
        if state is not None:
            row = {"PartitionKey": partition, "RowKey": _STATE_ROW, "state": state}
            operations.append(("upsert", row, {"mode": UpdateMode.REPLACE}))
        elif self.load(entity, key) is not None:
            operations.append(("delete", {"PartitionKey": partition, "RowKey": _STATE_ROW}))
        if operations:
            self._table.submit_transaction(operations)

    def close(self) -> None:
        self._table.close()
