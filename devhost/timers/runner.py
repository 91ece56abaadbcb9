"""Runs timer-triggered functions on their NCRONTAB schedule (UTC), like the Functions host."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime

from azure.functions import meta
from azure.functions.timer import TimerRequestConverter

from devhost.runtime.catalog import IndexedFunction
from devhost.runtime.function_stats import FunctionStats
from devhost.runtime.host_config import HostConfig
from devhost.runtime.invoker import Invoker
from shared.ncrontab import Schedule

log = logging.getLogger("devhost.timers")


def timer_request(past_due: bool, last: datetime | None, next_due: datetime) -> object:
    """The ``func.TimerRequest`` the worker builds from the host's timer info."""
    info = {
        "Schedule": {"AdjustForDST": True},
        "ScheduleStatus": {
            "Last": (last or datetime.min.replace(tzinfo=UTC)).isoformat(),
            "Next": next_due.isoformat(),
            "LastUpdated": datetime.now(UTC).isoformat(),
        },
        "IsPastDue": past_due,
    }
    return TimerRequestConverter.decode(meta.Datum(type="json", value=json.dumps(info)), trigger_metadata={})


class Clock:
    """The wall clock a timer runs on; tests give one whose waits move time instead of passing it."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, seconds: float) -> bool:
        """Wait ``seconds``; True when the host is stopping."""
        return self.stop.wait(seconds)


class TimerRunner:
    """One timer function. A tick missed while the previous run was busy fires once, with ``past_due``
    (more than a second after it was due, as the Functions host's timer trigger reports it)."""

    def __init__(
        self,
        function: IndexedFunction,
        config: HostConfig,
        invoker: Invoker,
        stats: FunctionStats,
        stop: threading.Event,
        clock: Clock | None = None,
    ) -> None:
        self.function = function
        self.binding = function.trigger
        self.schedule = Schedule.parse(config.resolve(self.binding["schedule"]))
        self.invoker = invoker
        self.stats = stats
        self.stop = stop
        self.clock = clock or Clock(stop)

    def run(self) -> None:
        clock = self.clock
        last: datetime | None = None
        due = self.schedule.next_after(clock.now())
        if self.binding.get("runOnStartup"):
            self._fire(past_due=False, last=None, next_due=due)
        while not clock.wait(max(0.0, (due - clock.now()).total_seconds())):
            now = clock.now()
            self._fire(past_due=(now - due).total_seconds() > 1.0, last=last, next_due=self.schedule.next_after(now))
            last, due = due, self.schedule.next_after(due)
            now = clock.now()
            while (following := self.schedule.next_after(due)) < now:
                due = following

    def run_once(self) -> None:
        """One more invocation outside the schedule: the host's final run of compaction timers at shutdown."""
        self._fire(past_due=False, last=None, next_due=self.schedule.next_after(self.clock.now()))

    def _fire(self, *, past_due: bool, last: datetime | None, next_due: datetime) -> None:
        """One tick: the function, then its retry policy's retries until one succeeds or the host stops."""
        request = timer_request(past_due, last, next_due)
        policy = self.function.retry
        for attempt in policy.attempts() if policy else range(1):
            if attempt and policy and self.clock.wait(policy.delay_before(attempt)):
                return
            try:
                self.invoker.invoke(self.function, {self.binding["name"]: request}, retry_count=attempt)
            except Exception:
                self.stats.invoked(failed=True)
                log.exception("%s: timer invocation failed (attempt %d)", self.function.name, attempt + 1)
                continue
            self.stats.invoked()
            return
