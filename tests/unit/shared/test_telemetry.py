"""Metrics: exact values for a known batch, read through an in-memory OpenTelemetry reader. Application
Insights with Entra ID: the exporter gets the app's managed identity when the authentication string
asks for it, and nothing else changes without it.

Application Insights itself cannot run here, so ``configure_azure_monitor`` is replaced by a
recorder of its arguments (``_RecordingConfigure``); the credential objects are the real ones.

What reaches Application Insights (issue 19) is checked with the real SDK instead: a worker process
configured by ``shared.telemetry.configure`` runs one processing invocation and sends its telemetry
over HTTP to a local server standing in for the ingestion endpoint (``_Ingestion``), which keeps every
envelope posted to ``/v2.1/track``. The worker runs in a subprocess because ``configure_azure_monitor``
installs process-wide providers and instrumentation.
"""

from __future__ import annotations

import gzip
import json
import os
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from azure.identity import ManagedIdentityCredential
from azure.monitor.opentelemetry import _constants as distro
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared import metric_names as names
from shared import telemetry as telemetry_module
from shared.settings import load_settings
from shared.telemetry import LATENCY_SAMPLES, BatchMetrics, Telemetry, sample
from tests.conftest import ROOT, python_json
from tests.unit.shared.conftest import metric_points
from tools.cost import LEVELS, deployed, level_of

CONNECTION = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://example.invalid/"


def test_a_known_batch_gives_exact_counts(reader_and_telemetry: tuple[InMemoryMetricReader, Telemetry]) -> None:
    reader, telemetry = reader_and_telemetry
    telemetry.record_batch(
        BatchMetrics(
            source="clickstream",
            received=10,
            landed=7,
            dead_letters={"not_json": 2, "schema": 1},
            duration_ms=12.5,
            event_times_ms=[1_000, 2_000, 3_000],
            landed_at_ms=5_000,
            bytes_written=4096,
            files_written=2,
            lake_write_ms=[3.0, 4.0],
        )
    )
    points = metric_points(reader)
    value = {name: {tuple(sorted(p.attributes.items())): p for p in pts} for name, pts in points.items()}
    source = (("source", "clickstream"),)
    assert value[names.EVENTS_RECEIVED][source].value == 10
    assert value[names.EVENTS_LANDED][source].value == 7
    assert value[names.EVENTS_DEADLETTERED][(("reason", "not_json"), ("source", "clickstream"))].value == 2
    assert value[names.EVENTS_DEADLETTERED][(("reason", "schema"), ("source", "clickstream"))].value == 1
    latency = value[names.END_TO_END_LATENCY][source]
    assert (latency.count, latency.sum, latency.min, latency.max) == (3, 9_000, 2_000, 4_000)
    assert value[names.BATCH_SIZE][source].sum == 10
    assert value[names.LAKE_WRITE_DURATION][source].count == 2
    assert value[names.LAKE_BYTES_WRITTEN][source].value == 4096
    assert value[names.LAKE_FILES_WRITTEN][source].value == 2


def test_state_counters(reader_and_telemetry: tuple[InMemoryMetricReader, Telemetry]) -> None:
    reader, telemetry = reader_and_telemetry
    telemetry.record_state("sensors", signals=40, late=3, anomalies=1)
    telemetry.record_state("sensors", signals=2)
    points = {name: pts[0].value for name, pts in metric_points(reader).items()}
    assert points == {names.ENTITY_SIGNALS: 42, names.EVENTS_LATE: 3, names.ANOMALIES: 1}


def test_every_declared_metric_is_an_instrument(reader_and_telemetry: tuple[InMemoryMetricReader, Telemetry]) -> None:
    _, telemetry = reader_and_telemetry
    gauges = {name for name, (kind, _, _) in names.METRICS.items() if kind == "gauge"}
    assert set(telemetry._instruments) == set(names.METRICS) - gauges
    assert gauges == {names.CONSUMER_LAG}  # observed by the local host, which knows the consumer's position


def test_latency_sampling_is_bounded_and_spread() -> None:
    values = list(range(10_000))
    sampled = sample(values, LATENCY_SAMPLES)
    assert len(sampled) == LATENCY_SAMPLES and sampled[0] == values[0] and sampled[-1] == values[-1]
    assert sample([1, 2], LATENCY_SAMPLES) == [1, 2]


class _RecordingConfigure:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> _RecordingConfigure:
    import azure.monitor.opentelemetry as monitor

    recording = _RecordingConfigure()
    monkeypatch.setattr(monitor, "configure_azure_monitor", recording)
    return recording


def test_aad_authentication_string_exports_with_the_system_assigned_identity(recorder: _RecordingConfigure) -> None:
    settings = load_settings(
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION,
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD",
        }
    )
    assert telemetry_module.configure(settings) is True
    (call,) = recorder.calls
    assert call["connection_string"] == CONNECTION
    assert isinstance(call["credential"], ManagedIdentityCredential)


def test_client_id_selects_a_user_assigned_identity() -> None:
    settings = load_settings({"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "ClientId=11111111-2222;Authorization=AAD"})
    options = telemetry_module.exporter_options(settings)
    credential = options["credential"]
    assert isinstance(credential, ManagedIdentityCredential)
    assert "11111111-2222" in repr(vars(credential._credential))  # the client id reaches the identity endpoint


def test_without_authentication_string_the_connection_string_alone_is_used(recorder: _RecordingConfigure) -> None:
    assert telemetry_module.configure(load_settings({"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION})) is True
    (call,) = recorder.calls
    assert "credential" not in call


def test_nothing_is_configured_without_a_connection_string(recorder: _RecordingConfigure) -> None:
    settings = load_settings({"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD"})
    assert telemetry_module.configure(settings) is False
    assert recorder.calls == []


def test_the_exporter_is_told_to_send_no_traces_instrumentation_counters_or_live_metrics() -> None:
    """The keywords are the installed distro's own (it ignores unknown ones), and every auto-instrumentation it
    knows is off: each would add a dependencies row per lake or HTTP call inside a sampled trace."""
    options = telemetry_module.exporter_options(load_settings({}), environ={})
    assert options == {
        distro.INSTRUMENTATION_OPTIONS_ARG: {name: {"enabled": False} for name in telemetry_module.INSTRUMENTATIONS},
        distro.ENABLE_PERFORMANCE_COUNTERS_ARG: False,
        distro.ENABLE_LIVE_METRICS_ARG: False,
        distro.SAMPLING_RATIO_ARG: 0.0,
    }
    assert set(distro._ALL_SUPPORTED_INSTRUMENTED_LIBRARIES) <= set(telemetry_module.INSTRUMENTATIONS)


def test_otel_traces_sampler_leaves_the_sampling_to_the_distro() -> None:
    environ = {"OTEL_TRACES_SAMPLER": "microsoft.fixed_percentage", "OTEL_TRACES_SAMPLER_ARG": "0.01"}
    options = telemetry_module.exporter_options(load_settings({}), environ=environ)
    assert distro.SAMPLING_RATIO_ARG not in options  # a ratio passed here would override the variable's sampler
    assert options[distro.ENABLE_PERFORMANCE_COUNTERS_ARG] is False


class _Ingestion(ThreadingHTTPServer):
    """Application Insights' ingestion endpoint on 127.0.0.1: keeps each envelope posted to /v2.1/track and
    accepts them all (and answers any GET, the target of the worker's own HTTP calls)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _IngestionHandler)
        self.envelopes: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def kinds(self) -> list[tuple[str, str]]:
        """(envelope type, its name: the metric's, the request's or dependency's, or the message), sorted."""
        with self.lock:
            found = []
            for envelope in self.envelopes:
                data = envelope["data"]["baseData"]
                name = data["metrics"][0]["name"] if "metrics" in data else data.get("name") or data.get("message")
                found.append((envelope["name"].removeprefix("Microsoft.ApplicationInsights."), str(name)))
            return sorted(found)


class _IngestionHandler(BaseHTTPRequestHandler):
    server: _Ingestion

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        items = json.loads(body) if self.path == "/v2.1/track" else []
        with self.server.lock:
            self.server.envelopes.extend(items)
        self._answer(json.dumps({"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []}))

    def do_GET(self) -> None:
        self._answer("{}")

    def _answer(self, text: str) -> None:
        payload = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def ingestion() -> Iterator[_Ingestion]:
    server = _Ingestion()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


# One processing invocation in a Functions worker: the root logger at INFO (the Python worker sets it so and
# forwards every record to the host, which applies host.json's levels: ``forwarded`` stands in for that), the
# exporter configured as at worker start, a generator's span whose traceparent the batch carries.
WORKER = textwrap.dedent(
    """
    import json, logging, os, sys, tempfile
    from opentelemetry import _logs, metrics, propagate, trace

    forwarded = []
    class ToHost(logging.Handler):
        def emit(self, record):
            forwarded.append((record.levelname, record.getMessage()))
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger().addHandler(ToHost())

    from shared import telemetry
    from shared.settings import load_settings
    connection = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=" + sys.argv[2]
    assert telemetry.configure(load_settings({"APPLICATIONINSIGHTS_CONNECTION_STRING": connection}))

    from shared.invocation import handle_batch
    from shared.lake import LocalLake
    from shared.sources import SOURCES
    from shared.tracing import processing_span, producing_span
    from tests.conftest import context_for, records_for

    source, root = SOURCES["clickstream"], tempfile.mkdtemp()
    if sys.argv[1] == "failure":  # a lake root that is a file: the lake is unavailable, the invocation raises
        root = os.path.join(root, "file")
        open(root, "w").close()
    with producing_span(source.name) as produced:
        carrier = {}
        propagate.inject(carrier)
    outcome = "landed"
    try:
        with processing_span(source.name, [carrier], message_count=5) as span:
            processed = span.get_span_context()
            if sys.argv[1] == "http":  # calls the auto-instrumentations would trace: the SDK's, requests', urllib's
                import urllib.request, requests
                from azure.core import PipelineClient
                from azure.core.rest import HttpRequest
                requests.get(sys.argv[2] + "requests", timeout=10)
                urllib.request.urlopen(sys.argv[2] + "urllib", timeout=10).read()
                PipelineClient(sys.argv[2]).send_request(HttpRequest("GET", sys.argv[2] + "azure-core"))
            handle_batch(context_for(source, LocalLake(root)), records_for(source, 5))
    except Exception as error:
        outcome = type(error).__name__
    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider()):
        provider.force_flush()  # exports synchronously: every envelope is posted before this returns
    print(json.dumps({
        "outcome": outcome,
        "forwarded": forwarded,
        "traceparent": carrier.get("traceparent"),
        "same_trace": processed.trace_id == produced.get_span_context().trace_id,
    }))
    sys.stdout.flush()
    os._exit(0)
    """
)


def _run_worker(ingestion: _Ingestion, mode: str, tmp_path: Path, **environ: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "APPLICATIONINSIGHTS_"))}
    env |= {
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",  # statsbeat goes to Microsoft's endpoint, not ours
        "TMPDIR": str(tmp_path),  # the exporter's retry files, if any
        "NO_PROXY": "127.0.0.1,localhost",
    } | environ
    return python_json(WORKER, mode, ingestion.url, cwd=ROOT, env=env)


def test_a_successful_invocation_sends_its_metrics_and_no_request_or_trace_rows(
    ingestion: _Ingestion, tmp_path: Path
) -> None:
    """host.json's levels do not govern the exporter: at the worker's INFO its log handler would send "landed
    batch" as a traces row, the CONSUMER span a requests row, the producer's span a dependencies row, and
    performance counters nine customMetrics rows a minute."""
    worker = _run_worker(ingestion, "success", tmp_path)
    assert worker["outcome"] == "landed"
    assert ["INFO", "landed batch"] in worker["forwarded"]  # logged at INFO, left to the host (which drops it)
    kinds = ingestion.kinds()
    assert ("Metric", names.EVENTS_LANDED) in kinds and ("Metric", names.BATCH_DURATION) in kinds
    assert [kind for kind in kinds if kind[0] != "Metric" or kind[1] not in names.METRICS] == []
    # The trace context still travels from the generator to the processing invocation (lineage), unexported.
    assert worker["traceparent"] and worker["traceparent"].startswith("00-") and worker["same_trace"]


def test_a_failed_invocation_sends_its_failure_metric_and_its_warnings_and_errors(
    ingestion: _Ingestion, tmp_path: Path
) -> None:
    """The host writes the failed execution's exception under the function's name, at Error, which host.json
    keeps and never samples (test_terraform_logging), and which the alerts count. The code's warnings and errors
    are exported too: the host drops a log with no invocation id, which is what the worker sends for a thread the
    invocation started (the landing runs in one), so "partition waiting" would otherwise never arrive. Its rows
    carry no operation name, so the alerts (operation_Name != "") do not count them twice; no INFO line."""
    worker = _run_worker(ingestion, "failure", tmp_path)
    assert worker["outcome"] == "LakeUnavailable"
    assert [message for level, message in worker["forwarded"] if message.startswith("partition waiting")]
    with ingestion.lock:
        messages = [e["data"]["baseData"] for e in ingestion.envelopes if e["name"].endswith("Message")]
    assert [m for m in messages if m["message"].startswith("partition waiting")]
    severities = {m.get("severityLevel") for m in messages}  # Application Insights: 2 Warning, 3 Error, 4 Critical
    assert severities and severities <= {2, 3, 4}, [(m.get("severityLevel"), m["message"][:40]) for m in messages]
    assert [kind for kind in ingestion.kinds() if kind[0] not in ("Metric", "Message", "Exception")] == []
    with ingestion.lock:
        failures = [e["data"]["baseData"] for e in ingestion.envelopes if e["name"].endswith("Metric")]
    (failure,) = [data for data in failures if data["metrics"][0]["name"] == names.BATCH_FAILURES]
    assert failure["properties"]["source"] == "clickstream" and failure["properties"]["error_class"]
    assert level_of(deployed(), "Function.process_clickstream") <= LEVELS["error"]


def test_otel_traces_sampler_opts_into_traces_of_the_two_spans_only(ingestion: _Ingestion, tmp_path: Path) -> None:
    """Sampled in, a trace is the generator's span (dependencies) and the invocation's (requests): no rows for
    the Azure SDK's, requests' or urllib's calls inside it, which the instrumentations would add."""
    worker = _run_worker(ingestion, "http", tmp_path, OTEL_TRACES_SAMPLER="always_on")
    assert worker["outcome"] == "landed"
    traced = [kind for kind in ingestion.kinds() if kind[0] in ("Request", "RemoteDependency")]
    assert traced == [("RemoteDependency", "generate clickstream"), ("Request", "process clickstream")]
