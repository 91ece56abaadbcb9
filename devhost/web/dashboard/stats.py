"""Per-source live figures for the dashboard, read from the metrics the code itself emits.

The local host installs an OpenTelemetry ``MeterProvider`` with an in-memory reader; this
module turns what that reader collects into plain JSON. Events/s is the rate over the last
``RATE_WINDOW_S`` seconds of counts the host samples every second (so it does not depend on how
often, or by how many, the dashboard is polled); percentiles come from histogram buckets.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, NumberDataPoint

from shared import metric_names as names

COUNTERS = {
    names.EVENTS_RECEIVED: "received",
    names.EVENTS_LANDED: "landed",
    names.EVENTS_DEADLETTERED: "dead_letters",
    names.LAKE_FILES_WRITTEN: "files",
    names.LAKE_BYTES_WRITTEN: "bytes",
    names.ENTITY_SIGNALS: "entity_signals",
    names.EVENTS_LATE: "late",
    names.ANOMALIES: "anomalies",
}
RATE_WINDOW_S = 30.0  # events/s is averaged over this long: batches land every 10 s locally
SAMPLE_INTERVAL_S = 1.0


def percentile(point: HistogramDataPoint, fraction: float) -> float | None:
    """Upper bound of the bucket holding the given fraction of observations (max for the last)."""
    if not point.count:
        return None
    target = fraction * point.count
    seen = 0
    for index, count in enumerate(point.bucket_counts):
        seen += count
        if seen >= target:
            bounds = point.explicit_bounds
            return float(min(bounds[index], point.max)) if index < len(bounds) else float(point.max)
    return float(point.max)


def read_sources(reader: InMemoryMetricReader) -> dict[str, dict[str, Any]]:
    """Cumulative figures per source: counters, dead letters by reason, latency p50/p99, lag (a gauge)."""
    sources: dict[str, dict[str, Any]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    attributes = dict(point.attributes or {})
                    source = str(attributes.get("source", "?"))
                    entry = sources.setdefault(source, _empty())
                    if metric.name in COUNTERS and isinstance(point, NumberDataPoint):
                        entry[COUNTERS[metric.name]] += point.value
                        if metric.name == names.EVENTS_DEADLETTERED:
                            reason = str(attributes.get("reason", "?"))
                            entry["dead_letter_reasons"][reason] = point.value
                    elif metric.name == names.CONSUMER_LAG and isinstance(point, NumberDataPoint):
                        entry["lag"] = int(point.value)
                    elif metric.name == names.END_TO_END_LATENCY and isinstance(point, HistogramDataPoint):
                        entry["latency_p50_ms"] = percentile(point, 0.50)
                        entry["latency_p99_ms"] = percentile(point, 0.99)
    return sources


def _empty() -> dict[str, Any]:
    return {key: 0 for key in COUNTERS.values()} | {
        "dead_letter_reasons": {},
        "latency_p50_ms": None,
        "latency_p99_ms": None,
        "lag": None,
    }


@dataclass
class LiveStats:
    """Snapshots of the reader. ``sample`` (the host calls it every second, ``sample_until``) keeps the events
    received per source over the last ``window_s`` seconds; ``snapshot`` gives the rate over that window."""

    reader: InMemoryMetricReader
    started: float = field(default_factory=time.time)
    clock: Callable[[], float] = time.monotonic
    window_s: float = RATE_WINDOW_S
    _samples: deque[tuple[float, dict[str, float]]] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def sample(self) -> None:
        """Record the events received so far per source; forget samples older than the window."""
        now = self.clock()
        received = {name: float(entry["received"]) for name, entry in read_sources(self.reader).items()}
        with self._lock:
            self._samples.append((now, received))
            while self._samples and self._samples[0][0] < now - self.window_s:
                self._samples.popleft()

    def sample_until(self, stop: threading.Event, interval: float = SAMPLE_INTERVAL_S) -> None:
        """Sample every ``interval`` seconds until ``stop`` is set (the host runs this in a thread of its own)."""
        self.sample()
        while not stop.wait(interval):
            self.sample()

    def snapshot(
        self, lag: Mapping[str, int] | None = None, waiting: Mapping[str, Mapping[str, Any]] | None = None
    ) -> dict[str, Any]:
        """Called once a second by each dashboard. ``waiting``: per source, partitions whose batch keeps failing."""
        now = time.time()
        sources = read_sources(self.reader)
        for name in {*(lag or {}), *(waiting or {})} - set(sources):
            sources[name] = _empty()  # a source stuck on its first batch has no metrics yet, but is shown
        rates = self._rates({name: float(entry["received"]) for name, entry in sources.items()})
        for name, entry in sources.items():
            entry["events_per_s"] = rates.get(name, 0.0)
            if lag is not None:  # given explicitly; otherwise the consumer-lag gauge read above
                entry["lag"] = lag.get(name)
            entry["waiting"] = dict((waiting or {}).get(name, {}))
        return {"now": now, "uptime_s": round(now - self.started, 1), "sources": sources}

    def _rates(self, received: Mapping[str, float]) -> dict[str, float]:
        """Events/s per source from the oldest sample still in the window to ``received`` (read now)."""
        now = self.clock()
        with self._lock:
            oldest = next(((t, counts) for t, counts in self._samples if t >= now - self.window_s), None)
        if oldest is None or now - oldest[0] <= 0:
            return {}
        then, before = oldest
        return {name: round((count - before.get(name, 0.0)) / (now - then), 1) for name, count in received.items()}
