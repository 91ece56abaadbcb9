"""Durable entities on the local host: the batch context is what the Durable SDK reads."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devhost.durable.entity_runtime import Backoff, EntityRuntime, EntityStalled
from devhost.durable.store import SqliteEntityStore, StateTooLarge
from devhost.durable.table_store import MAX_STORED_BYTES, state_row, stored_bytes
from devhost.runtime.catalog import IndexedFunction
from devhost.runtime.function_stats import FunctionStats
from shared.state.bucket_state import key_state, operate
from shared.state.registry import ENTITY_KINDS


def test_entity_batch_context_is_what_the_durable_sdk_reads() -> None:
    import azure.durable_functions as df

    from devhost.durable.entity_runtime import batch_context
    from devhost.durable.store import PendingOperation

    def counter(context: df.DurableEntityContext) -> None:
        value = context.get_state(lambda: 0)
        if context.operation_name == "add":
            value += context.get_input()["amount"]
        context.set_state(value)
        context.set_result(value)

    handle = df.Entity.create(counter)
    operations = [
        PendingOperation(1, "counter", "k", "add", json.dumps(json.dumps({"amount": 2}))),  # as signal_entity posts it
        PendingOperation(2, "counter", "k", "add", json.dumps(json.dumps({"amount": 5}))),
        PendingOperation(3, "counter", "k", "get", None),
    ]
    result = json.loads(handle(batch_context("counter", "k", "10", operations)))
    assert result["entityExists"] is True and json.loads(result["entityState"]) == 17
    assert [json.loads(r["result"]) for r in result["results"]] == [12, 17, 17] and not any(
        r["isError"] for r in result["results"]
    )


# An entity's operations are applied in order. A batch whose commit fails stays at the head of its entity's
# queue and is retried there; nothing behind it is applied first. (A review found the runtime dropping the
# failed batch from memory until the next start while applying later signals: a bucket keeps 32 applied
# ranges per partition, so the held-back signal, applied after 40 later ones, was skipped as applied.)

MOBILE = ENTITY_KINDS["mobile"]
BUCKET = "~b0of1"
FAST = Backoff(first=0.001, cap=0.01, attempts=4)


class BucketInvoker:
    """Runs a batch context as the Durable SDK's entity function would, with the real bucket core."""

    def invoke(self, function: IndexedFunction, arguments: dict[str, Any], retry_count: int = 0) -> str:
        context = json.loads(next(iter(arguments.values())))
        state = json.loads(context["state"]) if context["state"] else {}
        results = []
        for op in context["batch"]:
            payload = json.loads(json.loads(op["input"]))
            state = operate(MOBILE.fold, MOBILE.reduce, context["self"]["key"], state, op["name"], payload).state
            results.append({"isError": False, "result": "null"})
        return json.dumps({"entityState": json.dumps(state), "entityExists": True, "results": results})


class FailingStore(SqliteEntityStore):
    """A store whose next ``failures`` commits raise ``error()`` (-1: every one, until set to 0)."""

    def __init__(self, path: Path, failures: int = 0, error: Callable[[], Exception] | None = None) -> None:
        super().__init__(path)
        self.failures = failures
        self.error = error or (lambda: OSError("503 Server Busy"))
        self.attempts = 0
        self.committed: list[list[int]] = []
        self.changed = threading.Condition()

    def commit(self, entity: str, key: str, state: str | None, applied: list[int]) -> None:
        with self.changed:
            self.attempts += 1
            self.changed.notify_all()
            if self.failures:
                self.failures -= self.failures > 0
                raise self.error()
        super().commit(entity, key, state, applied)
        self.committed.append(list(applied))

    async def until(self, condition: Callable[[], bool], timeout: float = 10) -> None:
        def wait() -> bool:
            with self.changed:
                return self.changed.wait_for(condition, timeout)

        assert await asyncio.get_running_loop().run_in_executor(None, wait), "condition not met in time"


def _runtime(store: SqliteEntityStore, backoff: Backoff = FAST) -> tuple[EntityRuntime, FunctionStats]:
    function = IndexedFunction(MOBILE.name, ({"type": "entityTrigger", "name": "context"},), lambda c: None, None)
    stats = FunctionStats(function.name, "entityTrigger")
    return EntityRuntime([function], store, BucketInvoker(), {function.name: stats}, backoff), stats


def _payload(low: int, offsets: list[int]) -> str:
    """A bucket signal of partition 0's batch ``low``-``low+9``, one event of device-1 per offset."""
    events = [[o, 1_700_000_000_000 + o, "tap", "home", "4.3.0", "iOS"] for o in offsets]
    part = {"topic": "mobile", "partition": 0, "incarnation": 0, "range": [low, low + 9], "keys": {"device-1": events}}
    return json.dumps(json.dumps({"parts": [part]}))  # as signal_entity posts it


async def _signal(runtime: EntityRuntime, low: int) -> None:
    await runtime.signal(MOBILE.name, BUCKET, "apply", _payload(low, [low + 5]))


async def _send(runtime: EntityRuntime, low: int) -> None:
    """One processing batch: its signal, then (as the next batch of the partition follows) the entity applies it."""
    await _signal(runtime, low)
    await asyncio.wait_for(runtime.drained(), 10)


def _events(store: SqliteEntityStore) -> int:
    text = store.load(MOBILE.name, BUCKET)
    return int((key_state(json.loads(text), "device-1") or {}).get("events", 0)) if text else 0


async def test_a_failed_commit_is_retried_in_place_in_the_same_run(tmp_path: Path) -> None:
    store = FailingStore(tmp_path / "entities.db", failures=1)
    runtime, stats = _runtime(store)
    await _send(runtime, 0)  # its commit fails once
    await _send(runtime, 10)
    assert _events(store) == 2  # the review's: 1, offset 5 waiting in the inbox for the next start
    assert store.pending() == [] and runtime.stalled() == {}
    assert stats.failures == 1 and stats.events == 2


async def test_signals_behind_a_failing_batch_wait_for_it_and_are_applied_after_it(tmp_path: Path) -> None:
    store = FailingStore(tmp_path / "entities.db", failures=-1)
    runtime, _ = _runtime(store, Backoff(first=0.001, cap=0.005, attempts=100_000))
    await _signal(runtime, 0)
    await store.until(lambda: store.attempts >= 2)  # failing and retrying
    await _signal(runtime, 10)
    await _signal(runtime, 20)
    seen = store.attempts
    await store.until(lambda: store.attempts >= seen + 3)  # retried with the later signals queued behind it
    assert store.committed == [] and _events(store) == 0  # nothing overtook the failing batch
    accepted = [operation.id for operation in store.pending()]
    assert len(accepted) == 3
    store.failures = 0
    await asyncio.wait_for(runtime.drained(), 10)
    assert [i for batch in store.committed for i in batch] == accepted  # each once, in arrival order
    assert _events(store) == 3 and store.pending() == []


class HeldStore(FailingStore):
    """A store whose commits wait for ``release``, each counted in ``held`` as it starts waiting."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.held = 0
        self.release = threading.Event()

    def commit(self, entity: str, key: str, state: str | None, applied: list[int]) -> None:
        with self.changed:
            self.held += 1
            self.changed.notify_all()
        assert self.release.wait(10), "never released"
        super().commit(entity, key, state, applied)


async def test_a_signal_accepted_while_a_batch_applies_is_applied_after_it_in_the_same_run(tmp_path: Path) -> None:
    """Only appends happen to the entity's queue while a batch applies. Dropping one more than the batch from it
    skipped the signal accepted meanwhile: it waited in the inbox until the next start, after later signals."""
    store = HeldStore(tmp_path / "entities.db")
    runtime, _ = _runtime(store)
    await _signal(runtime, 0)
    await store.until(lambda: store.held == 1)  # the first batch is committing
    await _signal(runtime, 10)  # accepted meanwhile
    first, second = (operation.id for operation in store.pending())
    store.release.set()
    await asyncio.wait_for(runtime.drained(), 10)
    assert store.committed == [[first], [second]]
    assert _events(store) == 2 and store.pending() == []


async def test_a_batch_failing_past_its_retries_stalls_its_entity_and_nothing_overtakes_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The review's run: a commit failing, 40 later batches of the partition, a restart. A stalled entity
    refuses a signal (processing retries its batch) and tries its held-back batch again; the signals it
    accepts wait behind that batch, in the inbox, until it applies."""
    store = FailingStore(tmp_path / "entities.db")
    runtime, stats = _runtime(store)
    await _send(runtime, 0)
    store.failures = -1
    with caplog.at_level(logging.ERROR, logger="devhost.durable"):
        await _send(runtime, 20)  # fails 4 times: stalled, left in the inbox
    assert store.attempts == 1 + FAST.attempts and stats.failures == FAST.attempts
    assert runtime.stalled()[f"{MOBILE.name}@{BUCKET}"]["waiting"] == 1
    assert any(f"{MOBILE.name}@{BUCKET}: stalled" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    refused = 0
    for batch in range(40):  # later batches with this device, not adjacent to each other: 40 ranges
        try:
            await _send(runtime, 40 + 20 * batch)
        except EntityStalled:
            refused += 1
            await _send(runtime, 40 + 20 * batch)  # processing retries the batch
    assert refused == 40  # the review's: each answered 202 and applied ahead of offset 25
    assert store.committed == [[1]] and _events(store) == 1  # nothing applied past the failing batch
    await runtime.stop()
    store.close()

    store = FailingStore(tmp_path / "entities.db")
    runtime, _ = _runtime(store)
    assert await runtime.resume() == 41
    await asyncio.wait_for(runtime.drained(), 10)
    assert _events(store) == 42  # the review's: 41, offset 25 in a gap the 32-range cap had closed
    assert store.pending() == []


async def test_an_entity_stalled_by_a_transient_failure_retries_when_signalled_again(tmp_path: Path) -> None:
    store = FailingStore(tmp_path / "entities.db", failures=-1)
    runtime, _ = _runtime(store)
    await _send(runtime, 0)
    assert f"{MOBILE.name}@{BUCKET}" in runtime.stalled()
    store.failures = 0  # the store is back
    with pytest.raises(EntityStalled):
        await _signal(runtime, 10)  # refused, not stored; the held-back batch is tried again
    await asyncio.wait_for(runtime.drained(), 10)
    assert runtime.stalled() == {} and _events(store) == 1 and store.pending() == []
    await _send(runtime, 10)  # the refused signal, sent again
    assert _events(store) == 2


async def test_a_state_too_large_stalls_its_entity_at_once_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bucket past what the Table store holds fails on every commit: not retried, logged as an error with
    the entity and the size, counted as a failure, and signals for it refused (so processing's partition
    waits, visibly) instead of piling up unapplied behind a 202."""
    oversized = "x" * MAX_STORED_BYTES  # its quotes take it past

    def too_large() -> Exception:
        try:
            state_row("p", oversized)
        except StateTooLarge as error:
            return error
        raise AssertionError("state_row took a state past MAX_STORED_BYTES")

    store = FailingStore(tmp_path / "entities.db", failures=-1, error=too_large)
    runtime, stats = _runtime(store)
    with caplog.at_level(logging.ERROR, logger="devhost.durable"):
        await _send(runtime, 0)
    assert store.attempts == 1 and stats.failures == 1  # not retried
    messages = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(f"{MOBILE.name}@{BUCKET}" in m and f"{stored_bytes(oversized):,} characters" in m for m in messages)
    stall = runtime.stalled()[f"{MOBILE.name}@{BUCKET}"]
    assert stall["permanent"] is True and stall["waiting"] == 1
    for _ in range(2):
        with pytest.raises(EntityStalled, match="stalled"):
            await _send(runtime, 10)
    assert store.attempts == 1 and len(store.pending()) == 1  # refused signals neither stored nor retrying it


async def test_stopping_ends_a_retrying_entity_at_once_and_leaves_its_signals_in_the_inbox(tmp_path: Path) -> None:
    store = FailingStore(tmp_path / "entities.db", failures=-1)
    runtime, _ = _runtime(store, Backoff(first=60, cap=60, attempts=10))
    await _signal(runtime, 0)
    await store.until(lambda: store.attempts >= 1)  # now waiting 60 s to retry
    await runtime.stop()
    await asyncio.wait_for(runtime.drained(), 5)  # not the 60 s backoff
    assert store.attempts == 1 and f"{MOBILE.name}@{BUCKET}" in runtime.stalled()
    assert len(store.pending()) == 1  # for resume() at the next start
    with pytest.raises(EntityStalled):
        await _signal(runtime, 10)  # stopping: no new round of retries
    await asyncio.wait_for(runtime.drained(), 5)
    assert store.attempts == 1


def test_a_round_of_retries_ends_well_inside_the_hosts_shutdown_drain() -> None:
    backoff = Backoff()
    waits = [backoff.delay(failures) for failures in range(1, backoff.attempts)]
    assert waits == sorted(waits) and max(waits) == backoff.cap
    assert sum(waits) < 30  # the host waits 60 s for entities to drain when it stops
