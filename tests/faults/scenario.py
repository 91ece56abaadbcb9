"""One fault scenario: the sensors pipeline with keyed state through the real local host and a real broker.

Records are produced while the faults happen (1% of them poison). At the end the raw rows' positions
(partition, incarnation, offset) must be exactly the valid records' positions, each once, the dead
letters' exactly the poison records', each once and as ``not_json``, and each sensor's entity count exact.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.generator_ticks import generate_messages
from shared.sources import SOURCES
from tests.integration.harness import DevHost, Run, committed_lag, landed_rows, produce, wait_for

POISON_EVERY = 100
RecordIdentity = tuple[int, int, int]  # partition, incarnation, offset
FAST = {"LANDING_LEASE_SECONDS": "5", "DEVHOST_RETRY_DELAY_SCALE": "0.05"}


def stop(host: DevHost) -> None:
    """Kill ``host`` if it still runs."""
    if host.process.poll() is None:
        host.kill()


class Scenario:
    """Produces, runs hosts, and checks the outcome of one fault test."""

    def __init__(self, broker: str, root: Path, **settings: str) -> None:
        self.broker = broker
        self.root = root
        self.run = Run()
        self.lake = root / "lake"
        self.topic = self.run.topic("sensors")
        self.group = f"sensors-processor-{self.run.suffix}"
        self.settings = self.run.settings(["sensors"]) | FAST | settings
        self.expected: Counter[str] = Counter()
        self.valid: set[RecordIdentity] = set()
        self.poison: set[RecordIdentity] = set()
        self.incarnation = 0  # the life of the topic's offsets: 1 after a second broker started them at 0 again
        self._produced = 0

    def host(self, *arguments: str, **extra: str) -> DevHost:
        return DevHost(self.broker, self.lake, self.settings | extra, "--no-timers", *arguments)

    def produce(self, count: int) -> None:
        """``count`` more records: sensor readings keyed by sensor, every 100th one not JSON."""
        messages = generate_messages(
            SOURCES["sensors"], count, now=datetime.now(UTC), seed=11, start_index=self._produced
        )
        records: list[tuple[str | None, bytes | None]] = []
        poisoned: list[bool] = []
        for index, message in enumerate(messages, start=self._produced):
            poisoned.append(index % POISON_EVERY == POISON_EVERY - 1)
            if poisoned[-1]:
                records.append((message.key, b"{not json"))
            else:
                records.append((message.key, message.value.encode()))
                self.expected[message.key] += 1
        self._produced += count
        positions: list[tuple[int, int]] = []
        produce(self.broker, self.topic, records, positions)
        for (partition, offset), poison in zip(positions, poisoned, strict=True):
            (self.poison if poison else self.valid).add((partition, self.incarnation, offset))

    def restart_broker(self, address: str) -> None:
        """The topic lives again on a new broker: its offsets start at 0 as a new incarnation."""
        self.broker = address
        self.incarnation += 1

    @contextmanager
    def producing(self, count: int, seconds: float) -> Iterator[None]:
        """Produce ``count`` records evenly over ``seconds`` in the background while the block runs."""
        chunks = max(1, int(seconds * 4))
        failure: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(chunks):
                    started = time.monotonic()
                    self.produce(count // chunks)
                    time.sleep(max(0.0, seconds / chunks - (time.monotonic() - started)))
            except BaseException as error:  # surfaced after the block
                failure.append(error)

        thread = threading.Thread(target=work, name="producer", daemon=True)
        thread.start()
        try:
            yield
        finally:
            thread.join(seconds + 60)
        assert not failure, failure
        assert not thread.is_alive(), "the producer did not finish"

    @contextmanager
    def hosting(self, *arguments: str, **extra: str) -> Iterator[DevHost]:
        """A local host for the block, killed on the way out if it still runs (a failed test leaves no process)."""
        host = self.host(*arguments, **extra)
        try:
            yield host
        finally:
            stop(host)

    def finish(self, host: DevHost, timeout: float = 120) -> None:
        """Wait until ``host`` has drained everything produced, then interrupt it: it must exit cleanly."""
        self.drained(host, timeout)
        assert host.interrupt() == 0, host.output()

    def drained(self, host: DevHost, timeout: float = 120) -> None:
        """Wait until the group has committed everything produced and every sensor's count is exact."""
        wait_for(lambda: committed_lag(self.broker, self.group, self.topic) == 0, timeout, "committed lag 0")
        wait_for(lambda: self._state_mismatches(host) == {}, 60, "exact entity counts")

    def _state_mismatches(self, host: DevHost) -> dict[str, tuple[int, Any]]:
        wrong = {}
        for key, count in self.expected.items():
            status, body = host.get(f"/api/state/sensors/{key}")
            found = body.get("count") if status == 200 and body else None
            if found != count:
                wrong[key] = (count, found)
        return wrong

    def assert_exactly_once(self) -> None:
        rows = landed_rows(self.lake, "raw", "sensors")
        positions = Counter((r["_partition"], r["_incarnation"], r["_offset"]) for r in rows)
        duplicates = {p: n for p, n in positions.items() if n > 1}
        assert not duplicates, f"{len(duplicates)} offsets landed more than once, e.g. {list(duplicates)[:5]}"
        lost, foreign = sorted(self.valid - positions.keys()), sorted(positions.keys() - self.valid)
        assert not lost and not foreign, (
            f"valid records not in raw/: {lost[:5]}; raw rows produced as none: {foreign[:5]}"
        )
        letters = landed_rows(self.lake, "deadletter", "sensors")
        lettered = Counter((r["_partition"], r["_incarnation"], r["_offset"]) for r in letters)
        assert set(lettered) == self.poison and max(lettered.values(), default=1) == 1, (
            f"dead letters {sorted(lettered)[:5]}... are not the {len(self.poison)} poison records once each"
        )
        assert {r["reason"] for r in letters} <= {"not_json"}, sorted({r["reason"] for r in letters})


def broker_pid(address: str) -> int:
    """The process id of the broker listening on ``address`` (from /proc: no extra tools needed)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"tcp://{address}".encode() in command and b"broker" in command:
            return int(entry.name)
    raise AssertionError(f"no broker process listens on {address}")


@contextmanager
def lake_outage(lake: Path) -> Iterator[None]:
    """Every lake read and write fails while the block runs: the lake's root is a file, its data aside."""
    aside = lake.with_name(lake.name + ".aside")
    os.replace(lake, aside)
    lake.write_text("the lake is down")
    try:
        yield
    finally:
        lake.unlink()
        os.replace(aside, lake)
