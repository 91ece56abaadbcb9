"""Metrics through OpenTelemetry: App Insights in Azure, an in-memory reader in tests.

``configure`` is called once per worker; without APPLICATIONINSIGHTS_CONNECTION_STRING it
does nothing and the instruments are the API's no-ops. With APPLICATIONINSIGHTS_AUTHENTICATION_STRING
(``Authorization=AAD``) it exports with the app's managed identity, so the Application Insights
resource can refuse key-based (local) ingestion. Everything is recorded per batch,
never per event, so telemetry stays cheap; end-to-end latency is sampled (at most
``LATENCY_SAMPLES`` evenly spaced events per batch).

The exporter sends these metrics (customMetrics), and the code's warnings and errors (traces and
exceptions rows with no operation name), and nothing else by default (issue 19: a successful execution
writes no request or trace rows; ``exporter_options``). host.json's log levels do not govern it, so its
log handler is set to WARNING: the host drops the logs of threads an invocation starts (no invocation
id), so warnings and errors go this way too; one logged on the invocation's own task is a row twice. A
failed execution's exception is the host's row with the function's name, which the alerts and the
workbook count. Spans (``shared.tracing``) are
created and their ``traceparent`` travels, but no trace is exported unless OTEL_TRACES_SAMPLER asks.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from opentelemetry import metrics

from shared import metric_names as names
from shared.settings import Settings, telemetry_identity

T = TypeVar("T")
LATENCY_SAMPLES = 8  # an SDK histogram record costs ~10 us; see bench/telemetry_overhead.py
log = logging.getLogger("streamingpoc.telemetry")

# The exporter's defaults that would write rows per execution, all off (azure-monitor-opentelemetry 1.8):
TRACE_SAMPLING_RATIO = 0.0  # share of traces exported: a sampled invocation is a requests row (tools.cost prices it)
TRACE_SAMPLER_VARIABLE = "OTEL_TRACES_SAMPLER"  # set (with OTEL_TRACES_SAMPLER_ARG), the distro's own sampler applies
TRACE_SAMPLER_SETTINGS = (TRACE_SAMPLER_VARIABLE, "OTEL_TRACES_SAMPLER_ARG")  # Terraform's var.trace_sampling_ratio
# Its auto-instrumentations: a dependencies row per lake, Key Vault or HTTP call inside a sampled trace.
INSTRUMENTATIONS = (
    "azure_sdk",
    "django",
    "fastapi",
    "flask",
    "httpx",
    "httpx2",
    "psycopg2",
    "requests",
    "urllib",
    "urllib3",
)
LOGGER_NAME = "streamingpoc"  # where the distro attaches its log handler (the root logger when not named)


@dataclass(frozen=True, slots=True)
class BatchMetrics:
    """What one processing invocation reports."""

    source: str
    received: int
    landed: int
    dead_letters: Mapping[str, int]
    duration_ms: float
    event_times_ms: Sequence[int]
    landed_at_ms: int
    bytes_written: int
    files_written: int
    lake_write_ms: Sequence[float] = field(default_factory=tuple)


class Telemetry:
    """The instruments of ``shared.metric_names`` on one meter."""

    def __init__(self, meter: metrics.Meter) -> None:
        counter, histogram = meter.create_counter, meter.create_histogram
        kinds = {name: kind for name, (kind, _, _) in names.METRICS.items()}
        self._instruments = {
            name: (counter if kinds[name] == "counter" else histogram)(name, unit=unit, description=description)
            for name, (_, unit, description) in names.METRICS.items()
            if kinds[name] != "gauge"  # gauges are observed by whoever knows the value (the local host's lag)
        }

    def _add(self, name: str, amount: float, attributes: Mapping[str, str]) -> None:
        if amount:
            self._instruments[name].add(amount, attributes)  # type: ignore[union-attr]

    def _record(self, name: str, value: float, attributes: Mapping[str, str]) -> None:
        self._instruments[name].record(value, attributes)  # type: ignore[union-attr]

    def record_batch(self, batch: BatchMetrics) -> None:
        """Called once per processing invocation, after its files landed."""
        source = {"source": batch.source}
        self._add(names.EVENTS_RECEIVED, batch.received, source)
        self._add(names.EVENTS_LANDED, batch.landed, source)
        for reason, count in sorted(batch.dead_letters.items()):
            self._add(names.EVENTS_DEADLETTERED, count, {"source": batch.source, "reason": reason})
        self._record(names.BATCH_DURATION, batch.duration_ms, source)
        self._record(names.BATCH_SIZE, batch.received, source)
        for event_ms in sample(batch.event_times_ms, LATENCY_SAMPLES):
            self._record(names.END_TO_END_LATENCY, max(0, batch.landed_at_ms - event_ms), source)
        for write_ms in batch.lake_write_ms:
            self._record(names.LAKE_WRITE_DURATION, write_ms, source)
        self._add(names.LAKE_BYTES_WRITTEN, batch.bytes_written, source)
        self._add(names.LAKE_FILES_WRITTEN, batch.files_written, source)

    def record_state(self, source: str, *, signals: int, late: int = 0, anomalies: int = 0) -> None:
        """Called once per invocation that signalled entities."""
        attributes = {"source": source}
        self._add(names.ENTITY_SIGNALS, signals, attributes)
        self._add(names.EVENTS_LATE, late, attributes)
        self._add(names.ANOMALIES, anomalies, attributes)

    def record_bucket(self, source: str, *, size: int | None, evicted: int) -> None:
        """Called once per entity operation on a bucket: its size when measured, and the keys it evicted."""
        attributes = {"source": source}
        if size is not None:
            self._record(names.STATE_BUCKET_BYTES, size, attributes)
        if evicted:
            self._add(names.STATE_EVICTED_KEYS, evicted, attributes)

    def record_compaction_lag(self, source: str, lag_ms: int) -> None:
        """Called once per compaction run, after planning and before any work, so a failing run still reports."""
        self._record(names.COMPACTION_LAG, lag_ms / 1000, {"source": source})

    def record_compaction(self, source: str, *, hours: int, rows: int, files_in: int, files_out: int) -> None:
        """Called once per compaction run, with what its commits wrote."""
        attributes = {"source": source}
        self._add(names.COMPACTION_HOURS, hours, attributes)
        self._add(names.COMPACTION_ROWS, rows, attributes)
        self._add(names.COMPACTION_FILES_IN, files_in, attributes)
        self._add(names.COMPACTION_FILES_OUT, files_out, attributes)

    def record_drift(self, source: str, *, new_fields: int, new_columns: int, type_changes: int) -> None:
        """Called once per compacted hour whose rows drifted from the curated schema."""
        for kind, count in (("new_field", new_fields), ("new_column", new_columns), ("type_change", type_changes)):
            self._add(names.COMPACTION_DRIFT, count, {"source": source, "kind": kind})

    def record_dead_letters(self, source: str, reasons: Mapping[str, int]) -> None:
        """Called when records already counted as received are dead-lettered later (``entity_rejected``)."""
        for reason, count in sorted(reasons.items()):
            self._add(names.EVENTS_DEADLETTERED, count, {"source": source, "reason": reason})

    def record_failure(self, source: str, error_class: str) -> None:
        """Called once per failed processing invocation (its partition waits and is retried)."""
        self._add(names.BATCH_FAILURES, 1, {"source": source, "error_class": error_class})


def sample(values: Sequence[T], limit: int) -> Sequence[T]:
    """At most ``limit`` evenly spaced values, first and last included (all of them when there are few)."""
    if len(values) <= limit:
        return values
    step = (len(values) - 1) / (limit - 1)
    return [values[round(index * step)] for index in range(limit)]


def count_reasons(reasons: Sequence[str]) -> dict[str, int]:
    return dict(Counter(str(reason) for reason in reasons))


_telemetry: Telemetry | None = None


def telemetry() -> Telemetry:
    """The process-wide instruments, on whatever meter provider ``configure`` installed."""
    global _telemetry
    if _telemetry is None:
        _telemetry = Telemetry(metrics.get_meter("streamingpoc"))
    return _telemetry


def configure(settings: Settings) -> bool:
    """Export to Application Insights when a connection string is set. Called once per worker."""
    connection_string = settings.applicationinsights_connection_string.get_secret_value()
    if not connection_string:
        return False
    from azure.monitor.opentelemetry import configure_azure_monitor

    options = exporter_options(settings)
    logger = logging.getLogger(LOGGER_NAME)
    handlers = list(logger.handlers)
    configure_azure_monitor(connection_string=connection_string, logger_name=LOGGER_NAME, **options)
    for handler in [handler for handler in logger.handlers if handler not in handlers]:
        # The distro's log handler has no level and the worker's root logger is at INFO: every "landed batch"
        # line would be a traces row. It is kept for warnings and errors: the host drops a user log that carries
        # no invocation id, and the Python worker knows none for a thread the invocation started
        # (asyncio.to_thread: the landing, a stateless batch), so those reach Application Insights only this way.
        # One logged on the invocation's own task is a row twice (the host's, and this one, with no operation name).
        handler.setLevel(logging.WARNING)
    how = "the app's managed identity" if "credential" in options else "the connection string"
    log.info("telemetry exported to Application Insights with %s", how)
    return True


def exporter_options(settings: Settings, environ: Mapping[str, str] = os.environ) -> dict[str, object]:
    """Extra ``configure_azure_monitor`` arguments: what it sends besides the metrics, and with which identity.

    - Traces: sampled at ``TRACE_SAMPLING_RATIO`` (none): the tracer provider still gives spans their ids,
      so ``traceparent`` goes from producer to processing (``shared.tracing``), and a processing span, a
      CONSUMER span, is never a requests row. ``OTEL_TRACES_SAMPLER=microsoft.fixed_percentage`` with
      ``OTEL_TRACES_SAMPLER_ARG=0.01`` exports 1% of traces, decided per trace id, so the generator's and the
      processor's spans of one trace are kept together; the distro reads those variables itself.
    - No auto-instrumentation (``INSTRUMENTATIONS``), performance counters or live metrics.
    - Credential: ``Authorization=AAD`` means the system-assigned identity (``ManagedIdentityCredential()``);
      ``ClientId=<id>;Authorization=AAD`` a user-assigned one. Application Insights then accepts the
      telemetry only if that identity holds Monitoring Metrics Publisher on the resource.
    """
    options: dict[str, object] = {
        "instrumentation_options": {name: {"enabled": False} for name in INSTRUMENTATIONS},
        "enable_performance_counters": False,
        "enable_live_metrics": False,
    }
    if TRACE_SAMPLER_VARIABLE not in environ:
        options["sampling_ratio"] = TRACE_SAMPLING_RATIO
    authentication = settings.applicationinsights_authentication_string
    if not authentication:
        return options
    from azure.identity import ManagedIdentityCredential

    client_id = telemetry_identity(authentication)
    credential = ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
    return options | {"credential": credential}
