"""The dashboard's figures come from the code's own metrics, read from an in-memory reader."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from devhost.web.dashboard.stats import LiveStats, read_sources
from shared.telemetry import BatchMetrics, Telemetry


def _batch(source: str, received: int, landed: int, dead: dict[str, int], latencies: list[int]) -> BatchMetrics:
    return BatchMetrics(
        source=source,
        received=received,
        landed=landed,
        dead_letters=dead,
        duration_ms=5.0,
        event_times_ms=[10_000 - latency for latency in latencies],
        landed_at_ms=10_000,
        bytes_written=100,
        files_written=1,
    )


def test_figures_per_source_match_what_was_recorded() -> None:
    reader = InMemoryMetricReader()
    telemetry = Telemetry(MeterProvider(metric_readers=[reader]).get_meter("test"))
    telemetry.record_batch(_batch("mobile", 10, 8, {"schema": 2}, [20] * 98 + [900, 900]))
    telemetry.record_batch(_batch("mobile", 5, 5, {}, [20] * 5))
    telemetry.record_batch(_batch("sensors", 3, 2, {"not_json": 1}, [7]))
    sources = read_sources(reader)
    mobile, sensors = sources["mobile"], sources["sensors"]
    assert (mobile["received"], mobile["landed"], mobile["dead_letters"], mobile["files"]) == (15, 13, 2, 2)
    assert mobile["dead_letter_reasons"] == {"schema": 2}
    assert mobile["latency_p50_ms"] == 25.0  # bucket upper bound holding the median (20 ms)
    assert mobile["latency_p99_ms"] == 900.0  # capped at the observed max
    assert (sensors["received"], sensors["dead_letter_reasons"]) == (3, {"not_json": 1})


class _Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_live_stats_turn_counters_into_rates_and_attach_lag() -> None:
    reader = InMemoryMetricReader()
    telemetry = Telemetry(MeterProvider(metric_readers=[reader]).get_meter("test"))
    clock = _Clock()
    live = LiveStats(reader, clock=clock)
    telemetry.record_batch(_batch("clickstream", 100, 100, {}, [5]))
    live.sample()
    first = live.snapshot({"clickstream": 40})
    telemetry.record_batch(_batch("clickstream", 300, 300, {}, [5]))
    clock.now = 1.0
    second = live.snapshot({"clickstream": 0})
    assert first["sources"]["clickstream"]["lag"] == 40
    assert second["sources"]["clickstream"]["received"] == 400
    assert second["sources"]["clickstream"]["events_per_s"] == 300.0


def test_events_per_second_is_a_rolling_window_sampled_by_the_host_not_by_the_dashboards() -> None:
    """Batches land every 10 s: the rate over the last 30 s, whenever and however often dashboards ask."""
    reader = InMemoryMetricReader()
    telemetry = Telemetry(MeterProvider(metric_readers=[reader]).get_meter("test"))
    clock = _Clock()
    live = LiveStats(reader, clock=clock)

    def rate() -> float:
        return float(live.snapshot()["sources"]["sensors"]["events_per_s"])

    for second in range(0, 31):  # the host samples once a second; 100 events land at 5, 15 and 25 s
        clock.now = float(second)
        if second % 10 == 5:
            telemetry.record_batch(_batch("sensors", 100, 100, {}, [5]))
        live.sample()
        if second in (6, 7):
            assert rate() > 0, f"between batches too ({second} s)"
    assert rate() == 10.0  # 300 events in the 30 s since the sample at 0 s
    assert rate() == 10.0, "a second dashboard asking at once sees the same rate"
    for second in range(31, 66):  # nothing more lands
        clock.now = float(second)
        live.sample()
    assert rate() == 0.0, "nothing landed in the last 30 s"
