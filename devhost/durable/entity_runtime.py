"""Durable entities on the local host: accepted signals are stored, then applied one entity at a time.

Operations for one entity id run in arrival order, never concurrently, in batches (as the
Durable extension batches them); different entities run in parallel. The entity function is
called with the batch context JSON the extension sends and returns its new state as JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from devhost.durable.store import EntityStore, PendingOperation
from devhost.errors import DevHostError
from devhost.runtime.catalog import IndexedFunction
from devhost.runtime.function_stats import FunctionStats
from devhost.runtime.invoker import Invoker

log = logging.getLogger("devhost.durable")
MAX_BATCH = 99


class UnknownEntity(DevHostError):
    """No entity function of that name is registered."""


def batch_context(entity: str, key: str, state: str | None, operations: list[PendingOperation]) -> str:
    """The JSON the Durable extension hands an entity function for one batch.

    An operation's ``input`` is the signal's HTTP body as posted: the durable client sends
    ``json.dumps(value)`` as a JSON string, so it is JSON text of JSON text.
    """
    return json.dumps(
        {
            "self": {"name": entity, "key": key},
            "state": state,
            "exists": state is not None,
            "batch": [
                {"name": op.operation, "input": op.input if op.input is not None else "null"} for op in operations
            ],
        }
    )


class EntityRuntime:
    """Runs on the host's event loop; ``signal`` and ``read`` are what the durable HTTP API calls."""

    def __init__(
        self,
        functions: list[IndexedFunction],
        store: EntityStore,
        invoker: Invoker,
        stats: dict[str, FunctionStats],
    ) -> None:
        self.functions = {f.name.lower(): f for f in functions}
        self.store = store
        self.invoker = invoker
        self.stats = stats
        self._queues: dict[tuple[str, str], list[PendingOperation]] = defaultdict(list)
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="entity")

    async def resume(self) -> int:
        """Schedule the signals a previous run accepted but did not apply. Called once at start."""
        pending = self.store.pending()
        for operation in pending:
            self._schedule(operation)
        return len(pending)

    async def signal(self, entity: str, key: str, operation: str, payload: str | None) -> None:
        if entity.lower() not in self.functions:
            raise UnknownEntity(entity)
        loop = asyncio.get_running_loop()
        stored = await loop.run_in_executor(self._executor, self.store.enqueue, entity.lower(), key, operation, payload)
        self._schedule(stored)

    async def read(self, entity: str, key: str) -> Any:
        """The entity's state, or None when it does not exist."""
        if entity.lower() not in self.functions:
            raise UnknownEntity(entity)
        loop = asyncio.get_running_loop()
        state = await loop.run_in_executor(self._executor, self.store.load, entity.lower(), key)
        return None if state is None else json.loads(state)

    async def drained(self) -> None:
        """Wait until every accepted signal has been applied."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    def _schedule(self, operation: PendingOperation) -> None:
        entity_id = (operation.entity, operation.key)
        self._queues[entity_id].append(operation)
        if entity_id not in self._running:
            self._running[entity_id] = asyncio.get_running_loop().create_task(self._drain(entity_id))

    async def _drain(self, entity_id: tuple[str, str]) -> None:
        loop = asyncio.get_running_loop()
        try:
            while queue := self._queues[entity_id]:
                batch, self._queues[entity_id] = queue[:MAX_BATCH], queue[MAX_BATCH:]
                await loop.run_in_executor(self._executor, self._apply, entity_id, batch)
        except Exception:  # the store refused the new state: its signals stay accepted, applied on the next start
            log.exception("%s@%s: accepted signals not applied until the host starts again", *entity_id)
        finally:
            self._queues.pop(entity_id, None)
            self._running.pop(entity_id, None)

    def _apply(self, entity_id: tuple[str, str], batch: list[PendingOperation]) -> None:
        entity, key = entity_id
        function = self.functions[entity]
        state = self.store.load(entity, key)
        context = batch_context(entity, key, state, batch)
        result = json.loads(self.invoker.invoke(function, {function.trigger["name"]: context}))
        for operation, outcome in zip(batch, result.get("results", []), strict=False):
            if outcome.get("isError"):
                log.error("%s@%s %s failed: %s", entity, key, operation.operation, outcome.get("result"))
        new_state = result.get("entityState") if result.get("entityExists") else None
        self.store.commit(entity, key, new_state, [operation.id for operation in batch])
        self.stats[function.name].invoked(len(batch), failed=any(o.get("isError") for o in result.get("results", [])))
