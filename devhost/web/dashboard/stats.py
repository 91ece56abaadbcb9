"""Per-source live figures for the dashboard, read from the metrics the code itself emits.

The local host installs an OpenTelemetry ``MeterProvider`` with an in-memory reader; this
module turns what that reader collects into plain JSON. Rates come from the difference
between two snapshots, percentiles from histogram buckets.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
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
    """Snapshots of the reader; ``snapshot`` adds events/s since the previous call."""

    reader: InMemoryMetricReader
    started: float = field(default_factory=time.time)
    _previous: tuple[float, dict[str, float]] | None = None

    def snapshot(
        self, lag: Mapping[str, int] | None = None, waiting: Mapping[str, Mapping[str, Any]] | None = None
    ) -> dict[str, Any]:
        """Called once a second by the dashboard. ``waiting``: per source, partitions whose batch keeps failing."""
        now = time.time()
        sources = read_sources(self.reader)
        for name in {*(lag or {}), *(waiting or {})} - set(sources):
            sources[name] = _empty()  # a source stuck on its first batch has no metrics yet, but is shown
        received = {name: float(entry["received"]) for name, entry in sources.items()}
        if self._previous is not None:
            then, before = self._previous
            elapsed = max(now - then, 1e-6)
            for name, entry in sources.items():
                entry["events_per_s"] = round((received[name] - before.get(name, 0.0)) / elapsed, 1)
        else:
            for entry in sources.values():
                entry["events_per_s"] = 0.0
        for name, entry in sources.items():
            if lag is not None:  # given explicitly; otherwise the consumer-lag gauge read above
                entry["lag"] = lag.get(name)
            entry["waiting"] = dict((waiting or {}).get(name, {}))
        self._previous = (now, received)
        return {"now": now, "uptime_s": round(now - self.started, 1), "sources": sources}
