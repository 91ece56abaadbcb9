"""Timer functions fired on schedule, on a virtual clock; a tick missed while busy fires once, past due."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import azure.functions as func

from devhost.kafka.output import OutputProducers
from devhost.runtime.catalog import IndexedFunction
from devhost.runtime.function_stats import FunctionStats
from devhost.runtime.host_config import HostConfig, KafkaOptions
from devhost.runtime.invoker import Invoker, WorkerLoop
from devhost.timers.runner import Clock, TimerRunner


class VirtualClock(Clock):
    """Time that moves only when the runner waits or a function works: a starved CPU changes nothing."""

    def __init__(self, stop: threading.Event, start: datetime) -> None:
        super().__init__(stop)
        self.moment = start

    def now(self) -> datetime:
        return self.moment

    def wait(self, seconds: float) -> bool:
        self.moment += timedelta(seconds=seconds)
        return self.stop.is_set()

    def work(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


def _run_timer(
    busy_seconds: list[float], start: datetime, schedule: str = "* * * * * *"
) -> list[tuple[datetime, bool]]:
    """Run a timer on a virtual clock; the n-th invocation works ``busy_seconds[n]``."""
    fired: list[tuple[datetime, bool]] = []
    stop = threading.Event()
    clock = VirtualClock(stop, start)

    def tick(timer: func.TimerRequest) -> None:
        fired.append((clock.now(), timer.past_due))
        clock.work(busy_seconds[len(fired) - 1])
        if len(fired) == len(busy_seconds):
            stop.set()

    function = IndexedFunction(
        "tick", ({"type": "timerTrigger", "direction": "IN", "name": "timer", "schedule": schedule},), tick, None
    )
    config = HostConfig({}, KafkaOptions())
    loop = WorkerLoop()
    invoker = Invoker(loop, OutputProducers(config))
    try:
        TimerRunner(function, config, invoker, FunctionStats("tick", "t"), stop, clock).run()
    finally:
        loop.close()
    return fired


def test_timer_fires_on_schedule_with_a_timer_request() -> None:
    start = datetime(2026, 12, 4, 10, 0, 0, 300_000, tzinfo=UTC)
    fired = _run_timer([0.01] * 4, start)
    assert [moment for moment, _ in fired] == [start.replace(microsecond=0) + timedelta(seconds=n) for n in range(1, 5)]
    assert not any(past_due for _, past_due in fired)


def test_a_tick_missed_while_the_function_was_busy_fires_once_past_due() -> None:
    start = datetime(2026, 12, 4, 10, 0, 0, tzinfo=UTC)
    fired = _run_timer([7.5, 0.01, 0.01], start, "*/5 * * * * *")  # busy 7.5 s: the tick at 10 s is missed
    moments = [(moment - start).total_seconds() for moment, _ in fired]
    assert moments == [5.0, 12.5, 15.0] and [past_due for _, past_due in fired] == [False, True, False]
