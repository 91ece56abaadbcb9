"""A lake that fails or pauses its n-th call in a chosen way, invocations retried as the trigger does, and an
exactly-once check of raw/, dead letters and entity counts: the world the landing's fault tests run in.

Not a test module (no ``test_`` prefix): tests/unit/shared/landing/test_restarts.py and
tests/faults/test_lake_call_faults.py use it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.errors import LakeError, LakeRefused, LakeUnavailable, TransientError, WriteConflict
from shared.formats import decode
from shared.invocation import handle_batch_with_state
from shared.lake import LocalLake
from shared.landing.guard import guard_for
from shared.landing.partition import PartitionLanding, PartitionWaiting
from shared.records import KafkaRecord
from shared.settings import load_settings
from shared.sources import SOURCES
from shared.state.aggregate import Signal
from shared.state.lookups import StateJoiner
from tests.conftest import FIXED_NOW_MS, context_for, records_for
from tests.unit.shared.conftest import ApplyingGateway

MOBILE = SOURCES["mobile"]
LEASE = load_settings({}).landing_lease_seconds
METHODS = ("create", "write_atomic", "read", "list_paths", "exists", "delete", "read_versioned", "write_if")
KINDS = ("transient", "permanent", "refused", "conflict", "lost", "lost_conflict")


class Injected(Exception):
    """Marks nothing: the kinds raise the project's own errors."""


def _error(kind: str, what: str) -> Exception:
    if kind in ("transient", "lost"):
        return LakeUnavailable(f"injected: {what}")
    if kind == "permanent":
        return LakeError(f"injected: {what}")
    if kind == "refused":
        return LakeRefused(f"injected: {what}")
    return WriteConflict(f"injected: {what}")


class FaultLake(LocalLake):
    """A lake client whose ``fail_at``-th call (counted from 1 since ``arm``) fails as ``kind``:
    before its effect (transient, permanent, refused, conflict), or after it (``lost``: LakeUnavailable,
    ``lost_conflict``: what the SDK's own retry of a write that took effect answers). ``pause_at``: before the
    ``pause_at``-th call, ``on_pause`` runs (another instance's work, while this one is paused)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls: list[tuple[str, str]] = []
        self.fail_at: int | None = None
        self.kind = "transient"
        self.pause_at: int | None = None
        self.on_pause: Callable[[], None] = lambda: None
        self.counting = False

    def arm(self, fail_at: int | None = None, kind: str = "transient", pause_at: int | None = None) -> None:
        self.calls, self.fail_at, self.kind, self.pause_at, self.counting = [], fail_at, kind, pause_at, True

    def disarm(self) -> None:
        self.fail_at, self.pause_at, self.counting = None, None, False

    def _call(self, method: str, path: str, run: Callable[[], Any]) -> Any:
        if not self.counting:
            return run()
        self.calls.append((method, path))
        n = len(self.calls)
        if self.pause_at is not None and n == self.pause_at:
            self._pause()
        if self.fail_at is not None and n == self.fail_at:
            self.fail_at = None
            kind = self.kind
            if kind in ("lost", "lost_conflict"):
                result = run()
                if kind == "lost_conflict":
                    if method == "write_if":
                        raise WriteConflict(f"injected after effect: {method} {path}")
                    if method == "create":
                        return False  # the SDK's retry finds the blob there
                    return result
                raise LakeUnavailable(f"injected after effect: {method} {path}")
            raise _error(kind, f"{method} {path}")
        return run()

    def _pause(self) -> None:
        self.pause_at = None
        hook, self.on_pause = self.on_pause, (lambda: None)
        hook()

    def before_check(self) -> None:
        """A landing is about to check its deadline before its next request: a pause here is before the check
        (a process paused before it sends a request), never between the check and the request."""
        if self.counting and self.pause_at is not None and len(self.calls) + 1 == self.pause_at:
            self._pause()

    def create(self, path: str, data: bytes) -> bool:
        return self._call("create", path, lambda: LocalLake.create(self, path, data))

    def write_atomic(self, path: str, data: bytes) -> None:
        return self._call("write_atomic", path, lambda: LocalLake.write_atomic(self, path, data))

    def read(self, path: str) -> bytes:
        return self._call("read", path, lambda: LocalLake.read(self, path))

    def list_paths(self, prefix: str) -> list[str]:
        return self._call("list_paths", prefix, lambda: LocalLake.list_paths(self, prefix))

    def exists(self, path: str) -> bool:
        return self._call("exists", path, lambda: LocalLake.exists(self, path))

    def delete(self, path: str) -> None:
        return self._call("delete", path, lambda: LocalLake.delete(self, path))

    def read_versioned(self, path: str) -> tuple[bytes, str] | None:
        return self._call("read_versioned", path, lambda: LocalLake.read_versioned(self, path))

    def write_if(self, path: str, data: bytes, version: str | None) -> str:
        return self._call("write_if", path, lambda: LocalLake.write_if(self, path, data, version))


_original_check = PartitionLanding._check


def _check_after_pause(self: PartitionLanding, deadline: Any) -> None:
    before = getattr(self.lake, "before_check", None)
    if before is not None:
        before()
    _original_check(self, deadline)


PartitionLanding._check = _check_after_pause  # type: ignore[method-assign]


class FlakyGateway(ApplyingGateway):
    """The entity core, whose ``fail_signal``-th signal (from 1) fails as the backend being down (a 503)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_signal: int | None = None
        self.signals = 0
        self.before_signal: Callable[[], None] | None = None

    async def signal(self, signal: Signal) -> None:
        if self.before_signal is not None:
            hook, self.before_signal = self.before_signal, None
            await asyncio.to_thread(hook)
        self.signals += 1
        if self.fail_signal is not None and self.signals == self.fail_signal:
            self.fail_signal = None
            raise Exception("The operation failed with an unexpected status code 503")
        await super().signal(signal)


class World:
    """One lake directory, a shared wall clock, one entity backend; instances are lake clients on it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.clock = [FIXED_NOW_MS / 1000]
        self.gateway = FlakyGateway()
        self.joiners: dict[int, StateJoiner] = {}
        self.failures: list[str] = []
        self.settings: dict[str, str] = {}

    def instance(self) -> FaultLake:
        lake = FaultLake(self.root)
        guard_for(lake, LEASE).clock = lambda: self.clock[0]
        self.joiners[id(lake)] = StateJoiner()
        return lake

    def deliver_once(self, lake: FaultLake, records: list[KafkaRecord]) -> None:
        context = context_for(MOBILE, lake, settings=self.settings)
        asyncio.run(handle_batch_with_state(context, records, self.gateway, self.joiners[id(lake)]))

    def deliver(self, lake: FaultLake, records: list[KafkaRecord], attempts: int = 8) -> None:
        """Deliver until it succeeds, as the trigger retries (waiting out a lease when told to wait)."""
        for _ in range(attempts):
            try:
                self.deliver_once(lake, records)
                return
            except PartitionWaiting as error:
                self.failures.append(f"{type(error).__name__}: {error}")
                self.clock[0] += LEASE + 1
            except (TransientError, LakeError) as error:
                self.failures.append(f"{type(error).__name__}: {error}")
                self.clock[0] += 2
        raise AssertionError(f"stuck after {attempts} attempts: {self.failures[-attempts:]}")

    def raw(self) -> list[dict[str, Any]]:
        return [row for p in sorted(self.root.glob("raw/**/*.parquet")) for row in decode("parquet", p.read_bytes())]

    def letters(self) -> list[dict[str, Any]]:
        files = sorted(self.root.glob("deadletter/**/[!.]*.gz"))
        return [row for p in files for row in decode("jsonl", p.read_bytes())]

    def counted(self) -> dict[str, int]:
        return {key: state.get("events", 0) for key, state in self.gateway.key_states("device_activity").items()}


def poisoned(records: list[KafkaRecord], every: int = 7) -> list[KafkaRecord]:
    for record in records:
        if record.offset % every == 3:
            record.value = b"{not json"
    return records


def life(
    count: int, *, seed: int = 1, first_offset: int = 0, shift_ms: int = 0, partition: int = 0
) -> list[KafkaRecord]:
    records = poisoned(records_for(MOBILE, count, first_offset=first_offset, seed=seed, partition=partition))
    for record in records:
        record.timestamp_ms = FIXED_NOW_MS + shift_ms
    return records


def expected_counts(records: list[KafkaRecord]) -> Counter[str]:
    return Counter(r.key for r in records if r.value != b"{not json")  # mobile's Kafka key is its device


def check(world: World, lives: list[list[KafkaRecord]], where: str, *, counts: bool = True) -> None:
    """Every valid record of every life in raw/ once, every poison one dead-lettered once, counts exact (unless
    ``counts`` is False: a window known to count records twice, docs/reliability.md)."""
    raw, letters = world.raw(), world.letters()
    by_position = Counter((row["_partition"], row["_incarnation"], row["_offset"]) for row in raw)
    doubled = {p: n for p, n in by_position.items() if n > 1}
    assert not doubled, f"{where}: raw rows twice {sorted(doubled)[:6]}"
    identities = Counter((row["_partition"], row["_offset"], row["_kafka_timestamp"]) for row in raw)
    twice = {i: n for i, n in identities.items() if n > 1}
    assert not twice, f"{where}: records in raw/ twice (offset, kafka ts) {sorted(twice)[:6]}"
    expected = {
        (r.partition, r.offset, r.timestamp_ms) for records in lives for r in records if r.value != b"{not json"
    }
    assert set(identities) == expected, (
        f"{where}: raw lost {sorted(expected - set(identities))[:6]}, foreign {sorted(set(identities) - expected)[:6]}"
    )
    lettered = Counter(
        (row["_partition"], row["_offset"], row["_kafka_timestamp"]) for row in letters if row["reason"] == "not_json"
    )
    poison = {(r.partition, r.offset, r.timestamp_ms) for records in lives for r in records if r.value == b"{not json"}
    assert set(lettered) == poison and max(lettered.values(), default=1) == 1, (
        f"{where}: dead letters {sorted(lettered.items())[:6]} are not the poison records once each"
    )
    other = [row for row in letters if row["reason"] != "not_json"]
    assert not other, f"{where}: unexpected dead letters {[(r['_offset'], r['reason']) for r in other][:6]}"
    if not counts:
        return
    wanted = Counter[str]()
    for records in lives:
        wanted += expected_counts(records)
    got = world.counted()
    wrong = {key: (wanted[key], got.get(key)) for key in set(wanted) | set(got) if wanted[key] != got.get(key, 0)}
    assert not wrong, f"{where}: entity counts (expected, got) {sorted(wrong.items())[:6]}"


class Faults:
    """Faults by the run's global lake call number (every instance's calls counted together, from ``start``)."""

    def __init__(self, plan: dict[int, str]) -> None:
        self.plan = dict(plan)
        self.count = 0
        self.log: list[tuple[int, str, str]] = []


class GlobalFaultLake(FaultLake):
    faults: Faults | None = None

    def _call(self, method: str, path: str, run: Callable[[], Any]) -> Any:
        faults = self.faults
        if faults is None:
            return run()
        faults.count += 1
        n = faults.count
        faults.log.append((n, method, path))
        kind = faults.plan.pop(n, None)
        if kind is None:
            return run()
        if kind in ("lost", "lost_conflict"):
            result = run()
            if kind == "lost_conflict":
                if method == "write_if":
                    raise WriteConflict(f"injected after effect: {method} {path}")
                return False if method == "create" else result
            raise LakeUnavailable(f"injected after effect: {method} {path}")
        raise _error(kind, f"{method} {path}")


class GlobalWorld(World):
    def __init__(self, root: Path, faults: Faults | None, crash_on_failure: bool) -> None:
        super().__init__(root)
        self.faults = faults
        self.crash_on_failure = crash_on_failure
        self.current: GlobalFaultLake | None = None

    def instance(self) -> GlobalFaultLake:  # type: ignore[override]
        lake = GlobalFaultLake(self.root)
        guard_for(lake, LEASE).clock = lambda: self.clock[0]
        self.joiners[id(lake)] = StateJoiner()
        return lake

    def arm(self) -> None:
        GlobalFaultLake.faults = self.faults

    def run(self, records: list[KafkaRecord], attempts: int = 10) -> None:
        """The current owner delivers ``records`` until it succeeds; a failure kills it when ``crash_on_failure``."""
        for _ in range(attempts):
            if self.current is None:
                self.current = self.instance()
            try:
                self.deliver_once(self.current, records)
                return
            except Exception as error:
                self.failures.append(f"{type(error).__name__}: {error}")
                self.clock[0] += LEASE + 1 if isinstance(error, PartitionWaiting) else 2
                if self.crash_on_failure:
                    self.current = None
        raise AssertionError(f"stuck after {attempts} attempts: {self.failures[-attempts:]}")
