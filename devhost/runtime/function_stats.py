"""Per-function counters, the live terminal line and the summary printed on exit."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

# The triggers whose invocations carry events the host counts: a batch of records, a batch of entity operations.
COUNTS_EVENTS = frozenset({"kafkaTrigger", "entityTrigger"})


@dataclass
class FunctionStats:
    """What one function did on this host. Updated by its runner thread, read by the printer."""

    name: str
    trigger: str
    invocations: int = 0
    events: int = 0
    failures: int = 0
    lag: int | None = None
    waiting: dict[int, dict[str, Any]] = field(default_factory=dict)  # partition -> its failing batch
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def invoked(self, events: int = 0, *, failed: bool = False) -> None:
        with self._lock:
            self.invocations += 1
            self.events += events
            self.failures += int(failed)

    def merge(self, other: dict[str, Any]) -> None:
        """Add another worker's figures for the same function."""
        with self._lock:
            self.invocations += int(other["invocations"])
            self.events += int(other["events"])
            self.failures += int(other["failures"])

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trigger": self.trigger,
            "invocations": self.invocations,
            "events": self.events,
            "failures": self.failures,
            "lag": self.lag,
            "waiting": {str(partition): dict(batch) for partition, batch in self.waiting.items()},
        }


class HostStats:
    """Every function's stats, keyed by function name."""

    def __init__(self) -> None:
        self.functions: dict[str, FunctionStats] = {}

    def add(self, name: str, trigger: str) -> FunctionStats:
        return self.functions.setdefault(name, FunctionStats(name, trigger))

    def live_line(self) -> str:
        parts = []
        for stats in self.functions.values():
            if stats.trigger == "kafkaTrigger":
                lag = "?" if stats.lag is None else str(stats.lag)
                line = f"{stats.name}: {stats.events} ev/{stats.invocations} inv lag {lag} fail {stats.failures}"
                for partition, batch in sorted(stats.waiting.items()):
                    line += (
                        f" WAITING p{partition} offsets {batch['first_offset']}-{batch['last_offset']}"
                        f" attempts {batch['attempts']}"
                    )
                parts.append(line)
            elif stats.invocations:
                parts.append(f"{stats.name}: {stats.invocations} inv fail {stats.failures}")
        return " | ".join(parts)

    def status_line(self, width: int) -> str:
        """The live line of a terminal, at most ``width`` characters: Kafka-triggered functions first
        (``<name> <events> ev lag <lag>``, failures and waiting partitions when there are any), then the others
        that ran (``<name> <invocations> inv``). Parts that do not fit are counted at the end (``+3 more``)."""
        kafka = [s for s in self.functions.values() if s.trigger == "kafkaTrigger"]
        others = [s for s in self.functions.values() if s.trigger != "kafkaTrigger" and s.invocations]
        parts = [_compact(stats) for stats in kafka]
        parts += [f"{s.name} {s.invocations} inv" + (f" fail {s.failures}" if s.failures else "") for s in others]
        line = ""
        for index, part in enumerate(parts):
            candidate = f"{line} | {part}" if line else part
            left = len(parts) - index - 1
            if len(candidate) + (len(f" +{left} more") if left else 0) <= width:
                line = candidate
                continue
            more = f" +{len(parts) - index} more"
            return line + more if line else (part[: max(0, width - len(more))] + more)[:width]
        return line

    def summary(self) -> str:
        """The table printed on exit. ``events`` are the records a Kafka-triggered function was given and the
        operations an entity applied; other triggers (timers, HTTP) count none, so theirs is ``-`` (a generator's
        tick produced records all the same: they are its topic's processor's events), as ``lag`` is ``-`` for
        every function that does not consume a topic."""
        width = max((len(name) for name in self.functions), default=8)
        lines = [f"{'function':<{width}}  {'trigger':<13} {'invocations':>11} {'events':>9} {'failures':>8} {'lag':>6}"]
        for stats in self.functions.values():
            lag = "-" if stats.lag is None else str(stats.lag)
            events = str(stats.events) if stats.trigger in COUNTS_EVENTS else "-"
            lines.append(
                f"{stats.name:<{width}}  {stats.trigger:<13} {stats.invocations:>11} {events:>9} "
                f"{stats.failures:>8} {lag:>6}"
            )
        return "\n".join(lines)


def _compact(stats: FunctionStats) -> str:
    """One Kafka-triggered function on the live line of a terminal."""
    text = f"{stats.name} {stats.events} ev lag {'?' if stats.lag is None else stats.lag}"
    if stats.failures:
        text += f" fail {stats.failures}"
    with stats._lock:
        waiting = sorted(stats.waiting.items())
    for partition, batch in waiting:
        text += f" WAITING p{partition} offsets {batch['first_offset']}-{batch['last_offset']}"
        text += f" attempts {batch['attempts']}"
    return text
