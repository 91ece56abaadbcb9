"""What the deployment costs a month, from cited list prices and the counts ``bench/cost.py`` measured.

    python -m tools.cost                 # the scenarios as a table, with what bounds each
    python -m tools.cost --json          # the same as one JSON object (scenarios, measured_inputs, ...)
    python -m tools.cost --prices        # every price with its page and the date it was read
    python -m tools.cost --results FILE  # another results file (e.g. a bench/cost.py variant)

The quantities are not constants: executions, entity operations, Flex Consumption billable
activity, storage requests (replayed against the store Terraform deploys), log records and files
per second come from ``bench/results/cost.json`` at the rates measured there (10, 100, 1,000
events/s), and are extrapolated beyond (marked ``extrapolated``). The deployed configuration
(instance memory, partitions, batching, logging, Durable backend, lake store, the lake's
diagnostic categories) is read from terraform/ and host.json. What is assumed, not measured or
published, is in ``ASSUMPTIONS`` with its reason; docs/cost.md explains the model.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "cost.json"
SECONDS_PER_MONTH = 730 * 3600  # Azure prices a month as 730 hours
HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class Price:
    value: float | None  # None: no list price found in any stored copy (the cost is reported as unpriced)
    unit: str
    page: str
    read: str  # when and how the figure was read


_CARRIED = "carried from the model of 2026-11-27; no stored copy with the figure found on 2026-12-04"
_MODAL = "modal.com/blog/azure-function-pricing-guide (2025-05-22), stored copy read 2026-12-04"
PRICES: dict[str, Price] = {
    "eventhubs_tu_hour": Price(
        0.030, "USD per Standard throughput unit-hour", "azure.microsoft.com/pricing/details/event-hubs", _CARRIED
    ),
    "eventhubs_ingress_million": Price(
        0.028, "USD per million ingress events (64 KB each)", "azure.microsoft.com/pricing/details/event-hubs", _CARRIED
    ),
    "eventhubs_capture_tu_hour": Price(
        0.10,
        "USD per throughput unit-hour of Capture (Standard)",
        "azure.microsoft.com/pricing/details/event-hubs; issue 19 (Capture and one TU about USD 95 a month)",
        _CARRIED,
    ),
    "flex_on_demand_gb_s": Price(0.000026, "USD per GB-s of on-demand execution", "Flex Consumption", _MODAL),
    "flex_executions_million": Price(0.40, "USD per million on-demand executions", "Flex Consumption", _MODAL),
    "flex_free_gb_s": Price(100_000, "GB-s free per month (on demand)", "Flex Consumption", _MODAL),
    "flex_free_executions": Price(250_000, "executions free per month (on demand)", "Flex Consumption", _MODAL),
    "flex_always_ready_baseline_gb_s": Price(
        0.000004, "USD per GB-s of always-ready baseline", "azure.microsoft.com/pricing/details/functions", _CARRIED
    ),
    "lake_capacity_gb_month": Price(
        0.019, "USD per GB-month, hot LRS", "azure.microsoft.com/pricing/details/storage/data-lake", _CARRIED
    ),
    "lake_write_10k": Price(
        0.065, "USD per 10,000 write operations, hot", "azure.microsoft.com/pricing/details/storage/data-lake", _CARRIED
    ),
    "lake_read_10k": Price(
        0.0052, "USD per 10,000 read operations, hot", "azure.microsoft.com/pricing/details/storage/data-lake", _CARRIED
    ),
    "lake_list_10k": Price(
        0.065,
        "USD per 10,000 list (iterative read) operations, taken at the write price (upper bound)",
        "azure.microsoft.com/pricing/details/storage/data-lake",
        _CARRIED,
    ),
    "lake_other_10k": Price(
        0.0052,
        "USD per 10,000 other operations (properties, create file system), taken at the read price",
        "azure.microsoft.com/pricing/details/storage/data-lake",
        _CARRIED,
    ),
    "queue_10k": Price(
        0.004, "USD per 10,000 queue operations", "azure.microsoft.com/pricing/details/storage/queues", _CARRIED
    ),
    "table_10k": Price(
        0.00036, "USD per 10,000 table transactions", "azure.microsoft.com/pricing/details/storage/tables", _CARRIED
    ),
    "logs_gb": Price(
        2.30,
        "USD per GB ingested, Analytics logs, pay-as-you-go (first 5 GB per billing account free, not counted)",
        "azure.microsoft.com/pricing/details/monitor",
        _CARRIED,
    ),
    "dts_consumption_action": Price(
        None,
        "USD per action dispatched (Consumption SKU)",
        "learn.microsoft.com .../durable-task-scheduler-billing (ms.date 2026-02-25) defers to the pricing page",
        "no list price in any stored copy (2026-12-04); the 2025-11-05 SKU page's examples use USD 0.003 per "
        "action, a figure at odds with the Dedicated SKU's capacity and not used here",
    ),
    "dts_dedicated_cu_month": Price(
        None,
        "USD per capacity unit-month (Dedicated SKU)",
        "learn.microsoft.com .../durable-task-scheduler-billing (ms.date 2026-02-25): 'fixed monthly cost per CU'",
        "no list price in any stored copy (2026-12-04)",
    ),
}
RULES = {
    "flex_minimum": "Flex Consumption: 'The minimum billable execution period for both execution modes is 1,000 ms. "
    "Past that, the billable activity period is rounded up to the nearest 100 ms.' (learn.microsoft.com "
    "azure-functions/flex-consumption-plan, Billing; MicrosoftDocs/azure-docs, read 2026-12-04)",
    "flex_memory": "Flex Consumption instance memory 512, 2048 or 4096 MB; on demand bills the memory provisioned "
    "while an instance executes (includes/functions-flex-consumption-billing-table.md, ms.date 2024-11-05)",
    "host_results": "Host.Results (requests) and Host.Aggregator are written at Information, failures included: "
    "'if you filter at Warning or above, you won't see any of this data' (azure-functions/configure-monitoring)",
    "dts_limits": "DTS Dedicated: up to 2,000 actions/s per CU, at most 3 CUs; Consumption: up to 500 actions/s; "
    "an entity operation is one action (durable-task-scheduler-billing, ms.date 2026-02-25)",
}
LIMITS = {
    "eventhubs_events_per_tu": 1000,  # ingress per Standard TU: 1 MB/s or 1,000 events/s (Event Hubs quotas)
    "eventhubs_bytes_per_tu": 1_000_000,
    "eventhubs_max_tu": 40,  # Standard, per namespace
    "eventhubs_partition_events": 1000,  # ~1 MB/s or 1,000 events/s per partition (Event Hubs scalability)
    "flex_max_instances": 1000,  # per app; the deployment caps at var.function_maximum_instance_count
    "storage_requests_per_s": 20_000,  # per standard storage account (scalability targets)
    "dts_dedicated_actions_per_cu": 2000,
    "dts_dedicated_max_cu": 3,
    "dts_consumption_actions": 500,
    "azure_storage_ops_per_partition": 64,  # ASSUMPTIONS['azure_storage_throughput']
}
ASSUMPTIONS = {
    "azure_storage_throughput": "Durable's Azure Storage backend: 64 entity operations/s per control-queue "
    "partition (the published single-entity figure times partitionCount, 4 by default): 256/s. Not measured here.",
    "azure_storage_transactions_per_op": "8 queue and table transactions per entity operation (enqueue, dequeue, "
    "delete, state and history rows). Durable's Azure Storage provider does not run here.",
    "storage_request_ms": "20 ms per storage request in Azure, added to each invocation's measured time (the local "
    "lake answers in microseconds); matters only once instances are busy more than 1 s at a time.",
    "log_row_bytes": "Application Insights row sizes: a request row 1,000 bytes, a trace row 500 bytes plus its "
    "message; a StorageBlobLogs row 1,200 bytes; a customMetrics row 300 bytes. Not measured here.",
    "metric_rows": "The code's OpenTelemetry metrics: 20 series per running function instance, exported once a "
    "minute, while traffic flows.",
    "host_traces_per_execution": "With Function at Information the host writes 2 trace rows per execution "
    "(Executing, Executed); with Host.Triggers.DurableTask at Information, 3 per entity operation.",
    "curated_requests_per_hour": "Compaction's Delta side: 10 writes and 10 reads per source and closed hour "
    "(data file, log entry, checkpoint reads); its raw side is measured.",
    "timers": "Idle: the generators are off and not registered; compact_<source> runs every 15 minutes, each run "
    "a billed second and one listing.",
}
STORAGE_REQUEST_S = 0.020  # ASSUMPTIONS['storage_request_ms']
ROW_BYTES = {"request": 1000, "trace": 500, "storage_log": 1200, "metric": 300}


# ------------------------------------------------------------------------------ deployed configuration


@dataclass(frozen=True)
class Config:
    """One deployment: Terraform's and host.json's defaults unless a scenario says otherwise."""

    memory_mb: int
    partitions: int
    subscriber_interval_s: int
    max_batch_size: int
    backend: str  # azure_storage | dts_consumption | dts_dedicated
    buckets: int | None
    store: str  # the LAKE_KIND Terraform deploys
    lake_diagnostic_categories: tuple[str, ...]
    logging: dict[str, str] = field(default_factory=dict)
    throughput_units: int = 1
    max_instances: int = 40

    @property
    def memory_gb(self) -> float:
        return self.memory_mb / 1024


def _variable_default(text: str, name: str) -> str | None:
    match = re.search(rf'variable "{name}" \{{.*?\n  default\s*=\s*(.+?)\n', text, re.DOTALL)
    return match.group(1).strip() if match else None


@cache
def deployed(root: Path = ROOT) -> Config:
    variables = (root / "terraform" / "variables.tf").read_text()
    host = json.loads((root / "host.json").read_text())
    kafka = {k.lower(): v for k, v in host.get("extensions", {}).get("kafka", {}).items()}
    settings = (root / "terraform" / "modules" / "app_settings" / "main.tf").read_text()
    store = re.search(r'LAKE_KIND\s*=\s*"(\w+)"', settings)
    categories = _variable_default(variables, "lake_diagnostic_log_categories") or '["StorageRead", "StorageWrite"]'
    return Config(
        memory_mb=int(_variable_default(variables, "function_instance_memory_mb") or 2048),
        partitions=int(_variable_default(variables, "eventhub_partition_count") or 4),
        subscriber_interval_s=int(kafka.get("subscriberintervalinseconds", 1)),
        max_batch_size=int(kafka.get("maxbatchsize", 64)),
        backend=(_variable_default(variables, "durable_backend") or '"azure_storage"').strip('"'),
        buckets=_buckets(),
        store=store.group(1) if store else "adls",
        lake_diagnostic_categories=tuple(json.loads(categories)),
        logging={k.lower(): v for k, v in host.get("logging", {}).get("logLevel", {}).items()},
        throughput_units=int(_variable_default(variables, "eventhubs_capacity") or 1),
        max_instances=int(_variable_default(variables, "function_maximum_instance_count") or 40),
    )


def _buckets() -> int | None:
    """Entity buckets per source when the code has that setting (issue 19, item 5); None: one entity per key."""
    try:
        from shared.settings import Settings, SourceSettings
    except ImportError:
        return None
    for model in (Settings, SourceSettings):
        for name, info in model.model_fields.items():
            if "bucket" in name and isinstance(info.default, int):
                return int(info.default)
    return None


PYTHON_LEVELS = {"DEBUG": 1, "INFO": 2, "WARNING": 3, "ERROR": 4, "CRITICAL": 5}
LEVELS = {"trace": 0, "debug": 1, "information": 2, "warning": 3, "error": 4, "critical": 5, "none": 6}


def level_of(config: Config, category: str) -> int:
    """The host.json level that applies to ``category``: the longest matching prefix, else default."""
    best, level = -1, config.logging.get("default", "Information")
    for name, value in config.logging.items():
        matches = category.lower() == name or category.lower().startswith(name + ".")
        if name != "default" and matches and len(name) > best:
            best, level = len(name), value
    return LEVELS[str(level).lower()]


# ------------------------------------------------------------------------------ measured load


@dataclass(frozen=True)
class Load:
    """Per second at one rate: what the app does (measured, or extrapolated from the highest measured rate)."""

    rate: float
    extrapolated: bool
    invocations_by_source: dict[str, float]
    kafka_instance_s: float  # Flex billable instance-seconds per second, Kafka triggers
    kafka_busy_per_invocation_s: dict[str, float]
    entity_ops: float
    entity_executions: float
    durable_instance_s: float
    requests: dict[str, float]  # landing requests by kind, on the deployed store
    compaction_requests: dict[str, float]
    raw_files: float
    bytes_written: float
    app_log_rows: dict[str, float]  # by level name
    app_log_bytes: dict[str, float]
    event_bytes: float

    @property
    def invocations(self) -> float:
        return sum(self.invocations_by_source.values())


def load_results(path: Path = RESULTS) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def _run_load(run: dict[str, Any], store: str) -> Load:
    seconds = run["seconds"]
    per = 1 / seconds
    kafka = {g: a for g, a in run["activity"].items() if g.startswith("function:process_")}
    busy = {
        g.removeprefix("function:process_"): a["busy_s"] / a["executions"] for g, a in kafka.items() if a["executions"]
    }
    durable = run["activity"].get("durable", {"billable_s": 0.0})
    requests = run["requests"][store] if "requests" in run else {"landing": {}, "compaction": {}}
    rows: dict[str, float] = {}
    sizes: dict[str, float] = {}
    for record in run["log_records"]:
        rows[record["level"]] = rows.get(record["level"], 0.0) + record["rows"] * per
        sizes[record["level"]] = sizes.get(record["level"], 0.0) + record["bytes"] * per
    return Load(
        rate=run["rate_ev_s"],
        extrapolated=False,
        invocations_by_source={s: n * per for s, n in run["invocations_by_source"].items()},
        kafka_instance_s=sum(a["billable_s"] for a in kafka.values()) * per,
        kafka_busy_per_invocation_s=busy,
        entity_ops=run["entity_operations"] * per,
        entity_executions=run["entity_executions"] * per,
        durable_instance_s=durable["billable_s"] * per,
        requests={k: v * per for k, v in requests["landing"].items()},
        compaction_requests={k: v * per for k, v in requests["compaction"].items()},
        raw_files=run["files_written"].get("raw", 0) * per,
        bytes_written=sum(run["bytes_written"].values()) * per,
        app_log_rows=rows,
        app_log_bytes=sizes,
        event_bytes=350.0,
    )


def measured_runs(results: dict[str, Any], state: bool) -> list[dict[str, Any]]:
    return sorted(
        (r for r in results["runs"] if r["lake"] == "local" and r.get("state", True) == state and "requests" in r),
        key=lambda r: r["rate_ev_s"],
    )


def distinct(batch: float, keys: float) -> float:
    """Expected distinct keys among ``batch`` uniform draws from ``keys``."""
    if keys <= 0 or batch <= 0:
        return 0.0
    return keys * (1 - math.exp(batch * math.log1p(-1 / keys))) if keys > 1 else 1.0


def effective_keys(ops_per_batch: float, batch: float) -> float:
    """The key space (entities) that explains the measured operations per partition-batch."""
    if ops_per_batch >= batch * 0.999:
        return 1e12
    low, high = 1.0, 1e12
    for _ in range(200):
        middle = math.sqrt(low * high)
        low, high = (middle, high) if distinct(batch, middle) < ops_per_batch else (low, middle)
    return low


def load_at(rate: float, state: bool, config: Config, results: dict[str, Any]) -> Load:
    """Measured where the rate was measured (within 5%); else scaled from the highest measured rate."""
    runs = measured_runs(results, state) or measured_runs(results, True)
    for run in runs:
        if abs(run["rate_ev_s"] - rate) <= 0.05 * rate:
            load = _run_load(run, config.store)
            return load if state or run.get("state", True) is False else _without_state(load)
    base_run = runs[-1]
    base = _run_load(base_run, config.store)
    if not state and base_run.get("state", True):
        base = _without_state(base)
    return extrapolate(base, base_run, rate, config)


def _without_state(load: Load) -> Load:
    return replace(load, entity_ops=0.0, entity_executions=0.0, durable_instance_s=0.0)


def extrapolate(base: Load, run: dict[str, Any], rate: float, config: Config) -> Load:
    """The base run's load at ``rate``: batches fill (up to maxBatchSize per window), files and requests follow
    invocations, entity operations follow distinct keys per partition-batch, instances follow busy time."""
    k = rate / base.rate
    sources = run["events_by_source"]
    invocations = {}
    for source, measured in base.invocations_by_source.items():
        events = sources.get(source, 0) / run["seconds"] * k
        invocations[source] = max(measured, events / config.max_batch_size) if events else 0.0
    scale = sum(invocations.values()) / base.invocations if base.invocations else k
    keyed_events = sum(n for s, n in sources.items() if s in _keyed_sources()) / run["seconds"]
    keyed_batches = sum(n for s, n in run["raw_files_by_source"].items() if s in _keyed_sources()) / run["seconds"]
    ops = 0.0
    if base.entity_ops and keyed_batches:
        keys = effective_keys(base.entity_ops / keyed_batches, keyed_events / keyed_batches)
        batches = keyed_batches * scale
        ops = batches * distinct(keyed_events * k / batches, keys)
    executions = ops * (base.entity_executions / base.entity_ops) if base.entity_ops else 0.0
    request_s = STORAGE_REQUEST_S
    requests_per_invocation = sum(base.requests.values()) / base.invocations if base.invocations else 0.0
    kafka_instance_s = 0.0
    for source, per_s in invocations.items():
        measured_busy = base.kafka_busy_per_invocation_s.get(source, 0.0)
        batch_growth = (sources.get(source, 0) / run["seconds"] * k / per_s) / (
            sources.get(source, 1) / run["seconds"] / max(base.invocations_by_source.get(source, 1e-9), 1e-9)
        )
        busy = measured_busy * batch_growth + requests_per_invocation / max(len(invocations), 1) * request_s
        kafka_instance_s += _instance_seconds(per_s, busy)
    durable_busy = 0.0
    if base.entity_executions:
        durable_busy = (run["activity"]["durable"]["busy_s"] / run["activity"]["durable"]["executions"]) + request_s
    return replace(
        base,
        rate=rate,
        extrapolated=True,
        invocations_by_source=invocations,
        kafka_instance_s=kafka_instance_s,
        entity_ops=ops,
        entity_executions=executions,
        durable_instance_s=_instance_seconds(executions, durable_busy) if executions else 0.0,
        requests={kind: n * scale for kind, n in base.requests.items()},
        compaction_requests={kind: n * scale for kind, n in base.compaction_requests.items()},
        raw_files=base.raw_files * scale,
        bytes_written=base.bytes_written * k,
        app_log_rows={level: n * scale for level, n in base.app_log_rows.items()},
        app_log_bytes={level: n * scale for level, n in base.app_log_bytes.items()},
    )


def _instance_seconds(executions_per_s: float, busy_s: float) -> float:
    """Flex billable instance-seconds per second for executions of ``busy_s`` arriving ``executions_per_s``:
    each keeps an instance billed at least 1 s; once they overlap the instances are busy throughout."""
    if executions_per_s * max(1.0, busy_s) >= 1:
        return max(1.0, executions_per_s * busy_s)
    return executions_per_s * max(1.0, math.ceil(busy_s * 10) / 10)


@cache
def _keyed_sources() -> frozenset[str]:
    from shared.state.registry import ENTITY_KINDS

    return frozenset(ENTITY_KINDS)


# ------------------------------------------------------------------------------ costs


@dataclass
class Month:
    lines: dict[str, float]
    quantities: dict[str, float]
    limits_exceeded: list[str]
    unpriced: list[str]

    @property
    def total(self) -> float:
        return sum(self.lines.values())


def _price(name: str) -> float:
    value = PRICES[name].value
    assert value is not None, name
    return value


def idle_load(config: Config, sources: int) -> dict[str, float]:
    """Per second with no events and the generators off: compaction timers only."""
    runs_per_s = sources / 900
    return {"executions": runs_per_s, "instance_s": runs_per_s * 1.0, "list_requests": runs_per_s}


def month(rate: float, state: bool, config: Config, results: dict[str, Any]) -> Month:
    sources = len(results["config"]["mix"])
    s = SECONDS_PER_MONTH
    idle = idle_load(config, sources)
    load = load_at(rate, state, config, results) if rate > 0 else None
    events = rate * s
    executions = idle["executions"] * s
    instance_s = idle["instance_s"] * s
    requests: dict[str, float] = {"list": idle["list_requests"] * s}
    quantities: dict[str, float] = {"events": events}
    exceeded: list[str] = []
    unpriced: list[str] = []
    log_bytes = 0.0
    lines: dict[str, float] = {}
    if load is not None:
        executions += (load.invocations + load.entity_executions) * s
        instance_s += (load.kafka_instance_s + load.durable_instance_s) * s
        for kind, n in (*load.requests.items(), *load.compaction_requests.items()):
            requests[kind] = requests.get(kind, 0.0) + n * s
        quantities |= {
            "invocations": load.invocations * s,
            "entity_operations": load.entity_ops * s,
            "entity_operations_per_event": load.entity_ops / rate,
            "raw_files": load.raw_files * s,
        }
        log_bytes += _log_bytes(load, config) * s
        exceeded += _limits(load, rate, config)
    tus = max(config.throughput_units, math.ceil(rate / LIMITS["eventhubs_events_per_tu"]))
    gb_s = instance_s * config.memory_gb
    quantities |= {"executions": executions, "flex_gb_s": gb_s, "throughput_units": tus}
    quantities |= {f"lake_{kind}_requests": n for kind, n in requests.items()}
    lines["Event Hubs throughput units"] = tus * HOURS_PER_MONTH * _price("eventhubs_tu_hour")
    lines["Event Hubs ingress"] = events / 1e6 * _price("eventhubs_ingress_million")
    lines["Functions execution time (Flex on demand)"] = max(0.0, gb_s - _price("flex_free_gb_s")) * _price(
        "flex_on_demand_gb_s"
    )
    lines["Functions executions"] = (
        max(0.0, executions - _price("flex_free_executions")) / 1e6 * _price("flex_executions_million")
    )
    lines["Lake requests"] = sum(
        requests.get(kind, 0.0) / 1e4 * _price(f"lake_{kind}_10k") for kind in ("write", "read", "list", "other")
    )
    if load is not None:
        curated = sources * HOURS_PER_MONTH * 10
        lines["Lake requests"] += curated / 1e4 * (_price("lake_write_10k") + _price("lake_read_10k"))
        stored_gb = load.bytes_written * s / 1e9
        lines["Lake capacity (a month of raw and curated, hot)"] = 2 * stored_gb * _price("lake_capacity_gb_month")
        lines["Lake diagnostic logs"] = _storage_log_gb(requests, config) * _price("logs_gb")
        lines["Durable backend"] = _durable(load, config, unpriced, quantities) if state else 0.0
    lines["Application Insights logs"] = log_bytes / 1e9 * _price("logs_gb")
    return Month(lines, quantities, exceeded, unpriced)


def _log_bytes(load: Load, config: Config) -> float:
    """Bytes a second the host and the app send to Application Insights under host.json's levels."""
    executions = load.invocations + load.entity_executions
    total = 0.0
    if level_of(config, "Host.Results") <= LEVELS["information"]:
        total += executions * ROW_BYTES["request"]
    if level_of(config, "Function.process_x") <= LEVELS["information"]:
        total += executions * 2 * ROW_BYTES["trace"]
    if level_of(config, "Host.Triggers.DurableTask") <= LEVELS["information"]:
        total += load.entity_ops * 3 * ROW_BYTES["trace"]
    threshold = level_of(config, "Function.process_x.User")  # the worker's logs: Function.<name>.User
    for level, rows in load.app_log_rows.items():
        if PYTHON_LEVELS.get(level, LEVELS["warning"]) >= threshold:
            total += rows * ROW_BYTES["trace"] + load.app_log_bytes.get(level, 0.0)
    functions = len(load.invocations_by_source) + (1 if load.entity_ops else 0)
    total += functions * 20 / 60 * ROW_BYTES["metric"]
    return total


def _storage_log_gb(requests: dict[str, float], config: Config) -> float:
    categories = {c.lower() for c in config.lake_diagnostic_categories}
    rows = 0.0
    if "storagewrite" in categories:
        rows += requests.get("write", 0.0)
    if "storageread" in categories:
        rows += requests.get("read", 0.0) + requests.get("list", 0.0) + requests.get("other", 0.0)
    if "storagedelete" in categories:
        rows += requests.get("delete", 0.0)
    return rows * ROW_BYTES["storage_log"] / 1e9


def _durable(load: Load, config: Config, unpriced: list[str], quantities: dict[str, float]) -> float:
    ops = load.entity_ops * SECONDS_PER_MONTH
    if config.backend == "azure_storage":
        transactions = ops * 8
        quantities["durable_storage_transactions"] = transactions
        return transactions / 1e4 * (_price("queue_10k") + _price("table_10k")) / 2
    if config.backend == "dts_consumption":
        unpriced.append(f"DTS Consumption: {ops:,.0f} actions a month (no list price found, see --prices)")
        return 0.0
    units = max(1, math.ceil(load.entity_ops / LIMITS["dts_dedicated_actions_per_cu"]))
    quantities["dts_capacity_units"] = units
    unpriced.append(f"DTS Dedicated: {units} capacity unit(s) (no list price found, see --prices)")
    return 0.0


def _limits(load: Load, rate: float, config: Config) -> list[str]:
    out = []
    tus = math.ceil(rate / LIMITS["eventhubs_events_per_tu"])
    if tus > LIMITS["eventhubs_max_tu"]:
        out.append(f"Event Hubs Standard: {tus} TUs needed, 40 at most per namespace")
    for source, per_s in load.invocations_by_source.items():
        busy = load.kafka_busy_per_invocation_s.get(source, 0.0) * per_s
        if busy > config.partitions:
            out.append(f"process_{source}: {busy:.1f} busy instances needed, one per partition ({config.partitions})")
    mix_rate = rate  # the largest source's share is under 30% of the mix
    if mix_rate * 0.3 / config.partitions > LIMITS["eventhubs_partition_events"]:
        out.append(
            f"Event Hubs partition ingress: about {mix_rate * 0.3 / config.partitions:,.0f} events/s per partition"
        )
    ops = load.entity_ops
    if config.backend == "azure_storage" and ops > 4 * LIMITS["azure_storage_ops_per_partition"]:
        out.append(f"Durable Azure Storage backend: {ops:,.0f} entity operations/s, about 256/s with 4 partitions")
    if config.backend == "dts_consumption" and ops > LIMITS["dts_consumption_actions"]:
        out.append(f"DTS Consumption: {ops:,.0f} actions/s, 500/s at most")
    cap = LIMITS["dts_dedicated_actions_per_cu"] * LIMITS["dts_dedicated_max_cu"]
    if config.backend == "dts_dedicated" and ops > cap:
        out.append(f"DTS Dedicated: {ops:,.0f} actions/s, {cap:,}/s at most (3 CUs)")
    requests = sum(load.requests.values())
    if requests > LIMITS["storage_requests_per_s"]:
        out.append(f"lake storage account: {requests:,.0f} requests/s, 20,000/s target")
    return out


# ------------------------------------------------------------------------------ scenarios


SCENARIOS: tuple[tuple[float, bool, dict[str, Any]], ...] = (
    (0, True, {}),
    (10, True, {}),
    (1000, True, {}),
    (10_000, True, {}),
    (1000, False, {}),
    (10_000, True, {"backend": "dts_dedicated", "partitions": 4}),
)


def scenarios(results: dict[str, Any], results_path: Path, base: Config | None = None) -> dict[str, Any]:
    base = base or deployed()
    rows = []
    for rate, state, changes in SCENARIOS:
        config = replace(base, **changes)
        result = month(rate, state, config, results)
        events = rate * SECONDS_PER_MONTH
        extrapolated = rate > max(r["rate_ev_s"] for r in results["runs"])
        rows.append(
            {
                "rate_ev_s": rate,
                "state": state,
                "usd_month": round(result.total, 2),
                "usd_per_1m_events": round(result.total / events * 1e6, 4) if events else None,
                "limits_exceeded": result.limits_exceeded,
                "unpriced": result.unpriced,
                "extrapolated": extrapolated,
                "config": _config_json(config) | {"differs_from_default": sorted(changes)},
                "lines": {name: round(value, 2) for name, value in result.lines.items()},
                "quantities": {name: round(value, 4) for name, value in result.quantities.items()},
            }
        )
    return {
        "scenarios": rows,
        "measured_inputs": _shown(results_path),
        "measured_at": results.get("measured_at"),
        "measured_commit": results.get("commit"),
        "store": base.store,
        "capture_usd_month": round(capture_month(base), 2),
        "recommended_budget_usd": recommended_budget(results),
        "backend_choice": backend_choice(results, base),
    }


def _shown(path: Path) -> str:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def _config_json(config: Config) -> dict[str, Any]:
    data = asdict(config)
    return {
        "durable_backend": data["backend"],
        "instance_memory_mb": data["memory_mb"],
        "partitions": data["partitions"],
        "subscriber_interval_s": data["subscriber_interval_s"],
        "max_batch_size": data["max_batch_size"],
        "buckets": data["buckets"],
        "lake_store": data["store"],
        "lake_diagnostic_categories": list(data["lake_diagnostic_categories"]),
    }


def capture_month(config: Config) -> float:
    """Event Hubs Capture for landing alone: one Standard TU and its Capture, ingress aside."""
    return (
        config.throughput_units * HOURS_PER_MONTH * (_price("eventhubs_tu_hour") + _price("eventhubs_capture_tu_hour"))
    )


def recommended_budget(results: dict[str, Any], base: Config | None = None) -> int:
    """The monthly budget Terraform defaults to: the 10 events/s month with 50% headroom, in tens of USD."""
    total = month(10, True, base or deployed(), results).total
    return int(math.ceil(total * 1.5 / 10) * 10)


def backend_choice(results: dict[str, Any], base: Config) -> dict[str, Any]:
    """The cheaper Durable backend at the proof-of-concept rate (10 events/s), and the break-even DTS prices."""
    storage = month(10, True, replace(base, backend="azure_storage"), results)
    cost = storage.lines.get("Durable backend", 0.0)
    ops = storage.quantities.get("entity_operations", 0.0)
    return {
        "default": "azure_storage",
        "azure_storage_usd_month_at_10_ev_s": round(cost, 2),
        "dts_consumption_cheaper_below_usd_per_million_actions": round(cost / ops * 1e6, 4) if ops else None,
        "dts_dedicated_cheaper_below_usd_per_cu_month": round(cost, 2),
        "why": "Azure Storage is priced and within its limits at the proof-of-concept rate and needs no extra "
        "resource; DTS Dedicated bills a capacity unit every hour of the month, DTS Consumption every action, "
        "and neither has a list price in a stored copy.",
    }


# ------------------------------------------------------------------------------ output


def table(document: dict[str, Any]) -> str:
    rows = document["scenarios"]
    header = ["USD per month"] + [
        f"{r['rate_ev_s']:,.0f} ev/s{'' if r['state'] else ' no state'}"
        + (f" {r['config']['durable_backend']}" if r["config"]["differs_from_default"] else "")
        for r in rows
    ]
    names = list(dict.fromkeys(name for r in rows for name in r["lines"]))
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] + ["---:"] * len(rows)) + " |"]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{r['lines'].get(name, 0.0):,.2f}" for r in rows) + " |")
    lines.append("| **total** | " + " | ".join(f"**{r['usd_month']:,.2f}**" for r in rows) + " |")
    lines.append(
        "| per 1M events | "
        + " | ".join("-" if r["usd_per_1m_events"] is None else f"{r['usd_per_1m_events']:,.3f}" for r in rows)
        + " |"
    )
    lines.append(
        "| entity ops per event | "
        + " | ".join(f"{r['quantities'].get('entity_operations_per_event', 0):.3f}" for r in rows)
        + " |"
    )
    lines.append("| extrapolated | " + " | ".join("yes" if r["extrapolated"] else "no" for r in rows) + " |")
    notes = []
    for r in rows:
        label = f"{r['rate_ev_s']:,.0f} ev/s{'' if r['state'] else ' no state'}"
        for item in r["limits_exceeded"]:
            notes.append(f"- {label}: limit exceeded: {item}")
        for item in r["unpriced"]:
            notes.append(f"- {label}: not in the total: {item}")
    return "\n".join([*lines, "", *notes])


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--prices", action="store_true", help="print every price with its page and read date")
    parser.add_argument("--results", type=Path, default=RESULTS, help="a bench/cost.py results file")
    args = parser.parse_args(argv)
    if args.prices:
        for name, item in PRICES.items():
            value = "no list price found" if item.value is None else f"{item.value:g}"
            print(f"{name}: {value} {item.unit} [{item.page}; {item.read}]")
        for rule in RULES.values():
            print(f"rule: {rule}")
        return 0
    document = scenarios(load_results(args.results), args.results)
    if args.json:
        print(json.dumps(document, indent=1))
    else:
        print(table(document))
        print(f"\nmeasured inputs: {document['measured_inputs']} ({document['measured_at']})")
        print(f"Event Hubs Capture, landing alone: {document['capture_usd_month']:,.2f} USD a month")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
