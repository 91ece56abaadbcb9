"""Durable entities on the local host: accepted signals are stored, then applied one entity at a time.

Operations for one entity id run in arrival order, never concurrently, in batches (as the
Durable extension batches them); different entities run in parallel. The entity function is
called with the batch context JSON the extension sends and returns its new state as JSON.

A batch whose commit fails (the store unreachable, an Azurite 503) stays at the head of its entity's
queue and is tried again after a backoff (``Backoff``), later signals queued behind it: an entity never
applies a signal before an earlier one (a bucket keeps 32 applied ranges per partition, so a signal
applied after 32 later ones would be skipped as applied). When the retries run out, or at once for a
state the store cannot hold (``StateTooLarge``), or when the host stops, the entity **stalls**: its
signals stay in the store's inbox for the next start (``resume``), the failure is logged as an error and
counted in its function's failures, and new signals for it are refused (``EntityStalled``, an HTTP 503,
so the processing batch that sends one fails and its partition waits instead of running ahead). A
refused signal to an entity stalled by a transient error starts another round of retries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from devhost.durable.store import EntityStore, PendingOperation, StateTooLarge
from devhost.errors import DevHostError
from devhost.runtime.catalog import IndexedFunction
from devhost.runtime.function_stats import FunctionStats
from devhost.runtime.invoker import Invoker

log = logging.getLogger("devhost.durable")
MAX_BATCH = 99


@dataclass(frozen=True, slots=True)
class Backoff:
    """How a failed batch is retried in place: ``attempts`` tries in a row, waiting ``first`` seconds after
    the first failure and twice as long after each next one, at most ``cap`` (defaults: about 11 s in all,
    well inside the 60 s the host gives entities to drain at shutdown)."""

    first: float = 0.1
    cap: float = 5.0
    attempts: int = 8

    def delay(self, failures: int) -> float:
        return float(min(self.cap, self.first * 2 ** (failures - 1)))


@dataclass(frozen=True, slots=True)
class Stall:
    """Why an entity stopped applying signals in this run."""

    cause: str
    attempts: int
    since: float
    permanent: bool  # a state too large: retrying cannot help before the host starts again


class UnknownEntity(DevHostError):
    """No entity function of that name is registered."""


class EntityStalled(DevHostError):
    """The entity cannot apply signals in this run; a new one is refused rather than stored behind them."""


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
        backoff: Backoff | None = None,
    ) -> None:
        self.functions = {f.name.lower(): f for f in functions}
        self.store = store
        self.invoker = invoker
        self.stats = stats
        self.backoff = backoff or Backoff()
        self._queues: dict[tuple[str, str], list[PendingOperation]] = defaultdict(list)
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._stalled: dict[tuple[str, str], Stall] = {}
        self._stopping = asyncio.Event()
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
        entity_id = (entity.lower(), key)
        stall = self._stalled.get(entity_id)
        if stall is not None:
            if not stall.permanent and not self._stopping.is_set():
                del self._stalled[entity_id]  # another round of retries; this signal's sender retries it
                self._start(entity_id)
            raise EntityStalled(
                f"{entity_id[0]}@{key} stalled after {stall.attempts} failed attempts ({stall.cause}); "
                f"{len(self._queues.get(entity_id, ()))} accepted signals wait in the inbox"
            )
        loop = asyncio.get_running_loop()
        stored = await loop.run_in_executor(self._executor, self.store.enqueue, entity_id[0], key, operation, payload)
        self._schedule(stored)

    async def read(self, entity: str, key: str) -> Any:
        """The entity's state, or None when it does not exist."""
        if entity.lower() not in self.functions:
            raise UnknownEntity(entity)
        loop = asyncio.get_running_loop()
        state = await loop.run_in_executor(self._executor, self.store.load, entity.lower(), key)
        return None if state is None else json.loads(state)

    async def drained(self) -> None:
        """Wait until every accepted signal has been applied, or its entity has stalled (``stalled``)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def stop(self) -> None:
        """No more retries: an entity waiting to retry a failed batch stalls now, its signals left in the
        inbox for the next start. Entities whose commits succeed go on applying what is queued."""
        self._stopping.set()

    def stalled(self) -> dict[str, dict[str, Any]]:
        """The stalled entities (``<entity>@<key>``): the cause, failed attempts and signals waiting."""
        return {
            f"{entity}@{key}": {
                "cause": stall.cause,
                "attempts": stall.attempts,
                "since": stall.since,
                "permanent": stall.permanent,
                "waiting": len(self._queues.get((entity, key), ())),
            }
            for (entity, key), stall in self._stalled.items()
        }

    def _schedule(self, operation: PendingOperation) -> None:
        entity_id = (operation.entity, operation.key)
        self._queues[entity_id].append(operation)
        if entity_id not in self._running and entity_id not in self._stalled:
            self._start(entity_id)

    def _start(self, entity_id: tuple[str, str]) -> None:
        self._running[entity_id] = asyncio.get_running_loop().create_task(self._drain(entity_id))

    async def _drain(self, entity_id: tuple[str, str]) -> None:
        """Apply the entity's queue in order; a failed batch stays at its head and is retried in place."""
        loop = asyncio.get_running_loop()
        queue = self._queues[entity_id]  # one list for the entity's life here: ``_schedule`` appends to it
        failures = 0
        try:
            while queue:
                batch = queue[:MAX_BATCH]
                try:
                    await loop.run_in_executor(self._executor, self._apply, entity_id, batch)
                except Exception as error:
                    failures += 1
                    self._count_failure(entity_id)
                    if isinstance(error, StateTooLarge) or failures >= self.backoff.attempts:
                        self._stall(entity_id, error, failures)
                        return
                    delay = self.backoff.delay(failures)
                    log.warning(
                        "%s@%s: a batch of %d signals failed (attempt %d): %s; retrying in %.1f s, "
                        "the %d signals behind it wait",
                        *entity_id,
                        len(batch),
                        failures,
                        error,
                        delay,
                        len(queue) - len(batch),
                    )
                    if await self._stopped_within(delay):
                        self._stall(entity_id, error, failures)
                        return
                    continue
                del queue[: len(batch)]  # only appends happened meanwhile: the head is still this batch
                if failures:
                    log.warning("%s@%s: applied after %d failed attempts", *entity_id, failures)
                failures = 0
        finally:
            self._running.pop(entity_id, None)
            if not queue and entity_id not in self._stalled:
                self._queues.pop(entity_id, None)

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def _stall(self, entity_id: tuple[str, str], error: Exception, attempts: int) -> None:
        permanent = isinstance(error, StateTooLarge)
        self._stalled[entity_id] = Stall(str(error), attempts, time.time(), permanent)
        waiting = len(self._queues.get(entity_id, ()))
        after = f"{attempts} failed attempt{'s' if attempts > 1 else ''}"
        if self._stopping.is_set() and not permanent:
            after += ", the host stopping"
        until = "the host starts again" if permanent or self._stopping.is_set() else "a refused signal retries them"
        log.error(
            "%s@%s: stalled after %s (%s: %s); its %d accepted signals stay in the inbox until %s, "
            "and new signals for it are refused",
            *entity_id,
            after,
            type(error).__name__,
            error,
            waiting,
            until,
            exc_info=None if permanent else error,
        )

    def _count_failure(self, entity_id: tuple[str, str]) -> None:
        self.stats[self.functions[entity_id[0]].name].invoked(failed=True)

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
