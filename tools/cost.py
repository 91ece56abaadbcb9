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

Exit codes: 0 done; 2 bad arguments, a ``--results`` file that is missing, not JSON or not bench/cost.py's (a key
the model reads missing, named) among them (one line naming it).
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
from itertools import pairwise
from pathlib import Path
from typing import Any

from shared.small_files import UnreadableFile, read_json_object

PROG = "python -m tools.cost"
EXIT_BAD_ARGUMENTS = 2  # argparse's own: a --results file that cannot be read is one too
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
    "flex_always_ready_execution_gb_s": Price(
        0.000016,
        "USD per GB-s while an always-ready instance executes (no free grant)",
        "azure.microsoft.com/pricing/details/functions (meter 'Always Ready Execution Time')",
        "no stored Microsoft copy with the USD figure (2026-12-05); a stored third-party table of the meters in "
        "EUR (On Demand 0.000025, Always Ready Execution Time 0.0000149, Baseline 0.0000038 per GB-s) gives the "
        "same ratios to the on-demand and baseline prices used here",
    ),
    "flex_always_ready_executions_million": Price(
        0.40,
        "USD per million executions on always-ready instances (no free grant)",
        "azure.microsoft.com/pricing/details/functions (meter 'Always Ready Total Executions')",
        "same stored third-party table: EUR 0.370439 per million, equal to its on-demand executions price",
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
    "azure_storage_large_state": "An entity's state is saved after each batch as the input of its next "
    "execution; a table property over 60 KB as UTF-16 (30,720 characters: AzureTableTrackingStore."
    "MaxTablePropertySizeInBytes = 60 * 1024, Azure/durabletask src/DurableTask.AzureStorage) goes gzipped to a "
    "blob in <taskhub>-largemessages instead, written anew each batch (CompressAndUploadAsBytesAsync, "
    "BlockBlobClient.OpenWriteAsync: Put Blob, Put Block, Put Block List: 3 write requests, at least) and read "
    "back when the entity is loaded (1 read; a bucket is touched once per window, so it is not kept in memory; "
    "the old blob's delete is free). A bucket's stored size is its keys' steady-state states escaped twice (the "
    "bucket's JSON is a string inside the scheduler state), measured by bench/state_scale.stored_chars_per_key. "
    "Priced at the lake's hot write and read prices. Read from the library's code, not measured here.",
    "azure_storage_transactions_per_op": "8 queue and table transactions per entity operation (enqueue, dequeue, "
    "delete, state and history rows). Durable's Azure Storage provider does not run here.",
    "storage_request_ms": "20 ms per storage request in Azure, added to each extrapolated invocation's time (the "
    "local lake answers in microseconds), at the measured run's requests per invocation; matters only once "
    "instances are busy more than 1 s at a time.",
    "log_row_bytes": "Application Insights row sizes: a request row 1,000 bytes, a trace row 500 bytes plus its "
    "message; a StorageBlobLogs row 1,200 bytes; a customMetrics row 300 bytes. Not measured here.",
    "metric_rows": "The code's OpenTelemetry metrics: 20 series per running function instance, exported once a "
    "minute, while traffic flows. Its exporter's performance counters and live metrics are off (shared/telemetry.py).",
    "trace_rows": "The code's exporter sends no logs (the host does, under host.json's levels) and a trace only as "
    "sampled (Config.trace_sampling: Terraform's trace_sampling_ratio, 0 by default, which sets OTEL_TRACES_SAMPLER): "
    "a sampled processing invocation is one request row (its CONSUMER span), its auto-instrumentation is off. The "
    "generators' sampled ticks (a dependencies row each, and a customMetrics row per export) are not counted.",
    "host_traces_per_execution": "With Function at Information the host writes 2 trace rows per execution "
    "(Executing, Executed); with Host.Triggers.DurableTask at Information, 3 per entity operation.",
    "curated_requests_per_hour": "Compaction's Delta side: 10 writes and 10 reads per source and closed hour "
    "(data file, log entry, checkpoint reads); its raw side is measured.",
    "compaction_listing": "Each compact_<source> run lists the source's whole raw/ prefix (shared/compaction/job.py): "
    "one list request per 5,000 paths (the List Paths page), over the files of raw_retention_days.",
    "compaction_time": "Compaction bills 1 s per run, or its rows at 84,000 rows/s when longer (1M rows in 11.85 s "
    "wall on Azurite, bench/README.md, the bounded job of issue 22).",
    "durable_busy": "Entity executions in Azure take their measured time in the Python worker; the host's storage "
    "round trips for entity state overlap across entities (the host dispatches many work items at once), so no "
    "per-request latency is added to them.",
    "partitions_variant": "A row with more partitions than the measured run: an invocation writes a file and a "
    "ledger per partition it holds; a source's partitions are shared evenly by the instances its busy time needs "
    "(at least one). Invocations and entity operations do not change (batches mix partitions).",
    "host_memory": "The Functions host (.NET, the Kafka extension and librdkafka) takes 200 MB of an instance "
    "beside the Python worker; not measured here. An instance size is flagged when compaction's measured peak for "
    "the busiest source-hour plus this exceeds it.",
    "lifecycle_deletes": "raw/ files are deleted by the lake's lifecycle rule after raw_retention_days: one delete "
    "(free) and, with StorageDelete on, one StorageBlobLogs row per raw file.",
    "timers": "Idle: no events and the generators off, which Terraform makes disabled functions "
    "(AzureWebJobs.generate_<source>.Disabled), so their timers do not tick; compact_<source> runs every 15 "
    "minutes, each run a billed second and one listing. Generators on: their timer executions are priced "
    "separately (generators_default).",
}
STORAGE_REQUEST_S = 0.020  # ASSUMPTIONS['storage_request_ms']
AZURE_STORAGE_INLINE_CHARS = 60 * 1024 // 2  # ASSUMPTIONS['azure_storage_large_state']: 60 KB of UTF-16
BLOB_WRITES_PER_LARGE_STATE = 3  # ASSUMPTIONS['azure_storage_large_state']
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
    buckets: dict[str, int]
    store: str  # the LAKE_KIND Terraform deploys
    lake_diagnostic_categories: tuple[str, ...]
    logging: dict[str, str] = field(default_factory=dict)
    throughput_units: int = 1
    max_instances: int = 40
    durable_always_ready: int = 0  # always-ready instances of the durable scale group
    raw_retention_days: int = 7
    compaction_runs_per_hour: float = 4.0
    state_buckets: int | None = None  # var.state_buckets; None: N by backend (default_buckets)
    azure_storage_buckets: int = 8192  # terraform/locals.tf azure_storage_state_buckets
    trace_sampling: float = 0.0  # share of traces the code's exporter sends (ASSUMPTIONS['trace_rows'])

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
    backend = (_variable_default(variables, "durable_backend") or '"azure_storage"').strip('"')
    setting = _variable_default(variables, "state_buckets")
    state_buckets = None if setting in (None, "null") else int(setting)
    locals_tf = (root / "terraform" / "locals.tf").read_text()
    azure_storage = re.search(r"azure_storage_state_buckets\s*=\s*(\d+)", locals_tf)
    azure_storage_buckets = int(azure_storage.group(1)) if azure_storage else 8192
    from shared.telemetry import TRACE_SAMPLING_RATIO

    return Config(
        memory_mb=int(_variable_default(variables, "function_instance_memory_mb") or 2048),
        partitions=int(_variable_default(variables, "eventhub_partition_count") or 4),
        subscriber_interval_s=int(kafka.get("subscriberintervalinseconds", 1)),
        max_batch_size=int(kafka.get("maxbatchsize", 64)),
        backend=backend,
        buckets=default_buckets(backend, state_buckets, azure_storage_buckets),
        store=store.group(1) if store else "adls",
        lake_diagnostic_categories=tuple(json.loads(categories)),
        logging={k.lower(): v for k, v in host.get("logging", {}).get("logLevel", {}).items()},
        throughput_units=int(_variable_default(variables, "eventhubs_capacity") or 1),
        max_instances=int(_variable_default(variables, "function_maximum_instance_count") or 40),
        durable_always_ready=int(_variable_default(variables, "durable_always_ready_instances") or 0),
        raw_retention_days=int(_variable_default(variables, "raw_retention_days") or 7),
        compaction_runs_per_hour=_runs_per_hour(_source_field_default(variables, "compaction_schedule")),
        state_buckets=state_buckets,
        azure_storage_buckets=azure_storage_buckets,
        trace_sampling=float(_variable_default(variables, "trace_sampling_ratio") or TRACE_SAMPLING_RATIO),
    )


def _source_field_default(text: str, name: str) -> str:
    """A field's default in ``var.sources``' object type, e.g. ``compaction_schedule``."""
    match = re.search(rf'{name}\s*=\s*optional\(string,\s*"([^"]+)"\)', text)
    return match.group(1) if match else "0 */15 * * * *"


def _runs_per_hour(schedule: str) -> float:
    """Runs an hour of an NCRONTAB schedule whose minute field is ``*/N`` or a list (seconds field fixed)."""
    minute = schedule.split()[1]
    if minute.startswith("*/"):
        return 60 / int(minute[2:])
    return float(len(minute.split(","))) if minute != "*" else 60.0


def default_buckets(backend: str, state_buckets: int | None, azure_storage_buckets: int) -> dict[str, int]:
    """Key buckets per keyed source a new deployment takes: ``STATE_BUCKETS`` if set; else, as Terraform sets it
    (terraform/locals.tf), ``azure_storage_buckets`` on the Azure Storage backend (small buckets: their state
    stays in its table row, ASSUMPTIONS['azure_storage_large_state']) and each source's own N (up to 256 KB a
    bucket) on DTS."""
    from shared.state.registry import ENTITY_KINDS

    if state_buckets is None and backend == "azure_storage":
        state_buckets = azure_storage_buckets
    return {source: state_buckets or kind.buckets for source, kind in sorted(ENTITY_KINDS.items())}


def with_backend(config: Config, backend: str) -> Config:
    """The deployment on another Durable backend, with the key buckets Terraform gives that backend."""
    buckets = default_buckets(backend, config.state_buckets, config.azure_storage_buckets)
    return replace(config, backend=backend, buckets=buckets)


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
    entity_ops_by_source: dict[str, float]
    entity_executions: float
    durable_instance_s: float
    requests: dict[str, float]  # landing requests by kind, on the deployed store
    compaction_requests: dict[str, float]  # compaction's reads of raw files (its listing is paged in month())
    raw_files_by_source: dict[str, float]
    bytes_written: float
    app_log_rows: dict[str, float]  # by level name
    app_log_bytes: dict[str, float]
    notes: tuple[str, ...] = ()  # what the row's figures rest on beyond its measured run (month() lists them)

    @property
    def invocations(self) -> float:
        return sum(self.invocations_by_source.values())

    @property
    def raw_files(self) -> float:
        return sum(self.raw_files_by_source.values())


class UnreadableResults(Exception):
    """The results file cannot be read, is not JSON, or is not what bench/cost.py writes."""


def load_results(path: Path = RESULTS) -> dict[str, Any]:
    """A bench/cost.py results file; ``UnreadableResults`` (naming why) for one that is missing, not JSON, or without
    the ``runs`` and ``config`` the model reads."""
    try:
        document = read_json_object(path)
    except UnreadableFile as error:
        raise UnreadableResults(str(error)) from error
    if not isinstance(document.get("runs"), list):
        raise UnreadableResults("not a bench/cost.py results file (no list of runs)")
    if not isinstance(document.get("config"), dict):
        raise UnreadableResults("not a bench/cost.py results file (no config)")
    _check_model_inputs(document)
    return document


CONFIG_KEYS = ("mix", "keys_per_source", "partitions")  # what the model reads of a results file's config
MIX_KEYS = ("source", "events_per_minute")  # of each source in config.mix
RUN_KEYS = (  # of each run (requests, state and buckets are optional: older files lack them)
    "rate_ev_s",
    "lake",
    "seconds",
    "activity",
    "log_records",
    "invocations",
    "invocations_by_source",
    "events_by_source",
    "entity_operations",
    "entity_executions",
    "raw_files_by_source",
    "bytes_written",
)


def _check_model_inputs(document: dict[str, Any]) -> None:
    """``UnreadableResults`` naming the first key the model reads that the file lacks (a results file of another
    writer or version): the config's, its mix's, a run's; and at least one local run with its requests."""

    def refuse(why: str) -> UnreadableResults:
        return UnreadableResults(f"not a bench/cost.py results file ({why})")

    config = document["config"]
    for key in CONFIG_KEYS:
        if key not in config:
            raise refuse(f"config has no {key!r}")
    if not isinstance(config["mix"], list) or not config["mix"]:
        raise refuse("config's 'mix' is not a list of sources")
    for number, part in enumerate(config["mix"], 1):
        missing = [key for key in MIX_KEYS if key not in part] if isinstance(part, dict) else ["source"]
        if missing:
            raise refuse(f"config's 'mix' source {number} has no {missing[0]!r}")
    for number, run in enumerate(document["runs"], 1):
        if not isinstance(run, dict):
            raise refuse(f"run {number} is not an object")
        missing = [key for key in RUN_KEYS if key not in run]
        if missing:
            raise refuse(f"run {number} has no {missing[0]!r}")
    if problem := _unmeasurable(document, "the file"):
        raise refuse(problem)
    for number, run in enumerate(document["runs"], 1):
        for key in ("rate_ev_s", "seconds"):
            if type(run[key]) not in (int, float) or run[key] <= 0:
                raise refuse(f"run {number}'s {key!r} is not a number above 0: {run[key]!r}")
    if not measured_runs(document, True):
        raise refuse("no run of the local lake with state and its 'requests'")


MAX_MEASURED = 1e15  # far above any count or size a run measures, far below what a month's product overflows


def _unmeasurable(value: Any, where: str) -> str | None:
    """Where ``value`` holds a number no measurement gives (negative, not finite, past ``MAX_MEASURED``): a count
    of -60 seconds priced a month at USD -32.97, and 1e308 overflowed into a traceback."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return None if 0 <= value <= MAX_MEASURED else f"{where} holds {value!r}, not a measured count or size"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if problem := _unmeasurable(item, f"{where}[{key!r}]" if where != "the file" else repr(key)):
            return problem
    return None


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
        entity_ops_by_source={
            _entity_sources()[name]: n * per for name, n in run["invocations"].items() if name in _entity_sources()
        },
        entity_executions=run["entity_executions"] * per,
        durable_instance_s=durable["billable_s"] * per,
        requests={k: v * per for k, v in requests["landing"].items()},
        compaction_requests={k: v * per for k, v in requests["compaction"].items() if k != "list"},
        raw_files_by_source={s: n * per for s, n in run["raw_files_by_source"].items()},
        bytes_written=sum(run["bytes_written"].values()) * per,
        app_log_rows=rows,
        app_log_bytes=sizes,
    )


def measured_runs(results: dict[str, Any], state: bool, buckets: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """The local-lake runs with or without state, by rate; with ``buckets``, only runs with those key buckets
    (a run from before runs recorded their N counts as any)."""
    return sorted(
        (
            r
            for r in results["runs"]
            if r["lake"] == "local"
            and r.get("state", True) == state
            and "requests" in r
            and (buckets is None or not state or r.get("buckets") in (None, buckets))
        ),
        key=lambda r: r["rate_ev_s"],
    )


def distinct(batch: float, keys: float) -> float:
    """Expected distinct keys among ``batch`` uniform draws from ``keys``."""
    if keys <= 0 or batch <= 0:
        return 0.0
    return keys * (1 - math.exp(batch * math.log1p(-1 / keys))) if keys > 1 else 1.0


def touched(events: float, keys: float, buckets: int | None) -> float:
    """Expected entities an invocation of ``events`` uniform events over ``keys`` keys sends an operation to:
    the buckets its distinct keys fall in (``buckets`` None: one entity per key)."""
    return distinct(distinct(events, keys), buckets) if buckets else distinct(events, keys)


def measured_buckets(run: dict[str, Any]) -> dict[str, int] | None:
    """N per keyed source in a run (None in result files from before runs recorded it)."""
    recorded = run.get("buckets")
    return {source: int(n) for source, n in recorded.items()} if recorded else None


def load_at(rate: float, state: bool, config: Config, results: dict[str, Any]) -> Load:
    """Measured where the rate was measured (within 5%) with the row's key buckets; else scaled from the highest
    measured rate with them (or, with key buckets no run had, re-derived from the run's key space). Then
    adjusted to the row's partitions (ASSUMPTIONS['partitions_variant'])."""
    runs = (
        measured_runs(results, state, config.buckets)
        or measured_runs(results, state)
        or measured_runs(results, True, config.buckets)
        or measured_runs(results, True)
    )
    base_run = runs[-1]
    for run in runs:
        if abs(run["rate_ev_s"] - rate) <= 0.05 * rate:
            base_run = run
            break
    base = _run_load(base_run, config.store)
    if not state and base_run.get("state", True):
        base = _without_state(base)
    run_buckets = measured_buckets(base_run)
    same = not state or run_buckets in (None, config.buckets)
    if abs(base_run["rate_ev_s"] - rate) <= 0.05 * rate and same:
        load = base
    else:
        stateless = measured_runs(results, False)
        keys = float(results["config"]["keys_per_source"]) if run_buckets else None
        load = extrapolate(base, base_run, rate, config, stateless[-1] if stateless else None, run_buckets, keys)
    if state and run_buckets is None:
        load = replace(load, notes=("entity operations from a run that did not record its key buckets (an older "
                                    "results file): they may be another N's",))  # fmt: skip
    return _with_partitions(load, config.partitions, results["config"]["partitions"])


def _without_state(load: Load) -> Load:
    return replace(load, entity_ops=0.0, entity_ops_by_source={}, entity_executions=0.0, durable_instance_s=0.0)


def _with_partitions(load: Load, partitions: int, measured: int) -> Load:
    """Landing requests when a row has other partitions than the measured run: an invocation writes a file and
    a ledger per partition it holds, and a source's partitions are shared by the instances its busy time needs."""
    if partitions == measured or not load.invocations:
        return load
    held = 0.0
    for source, per_s in load.invocations_by_source.items():
        busy = load.kafka_busy_per_invocation_s.get(source, 0.0) * per_s
        instances = min(partitions, max(1, math.ceil(busy)))
        held += per_s * partitions / instances
    ratio = held / load.invocations / measured
    return replace(
        load,
        requests={kind: n * ratio for kind, n in load.requests.items()},
        compaction_requests={kind: n * ratio for kind, n in load.compaction_requests.items()},
        raw_files_by_source={source: n * ratio for source, n in load.raw_files_by_source.items()},
    )


def extrapolate(
    base: Load,
    run: dict[str, Any],
    rate: float,
    config: Config,
    stateless: dict[str, Any] | None = None,
    run_buckets: dict[str, int] | None = None,
    keys_per_source: float | None = None,
) -> Load:
    """The base run's load at ``rate``, per source and batch window: a window (the measured seconds per
    invocation) holds ``rate / base rate`` times the events, split into invocations of at most maxBatchSize;
    each keyed invocation sends one operation per bucket it touches (the key space fitted to the measured
    operations); files and requests follow invocations. An invocation's busy time is ``busy_model``'s, plus
    the lake's latency per request (ASSUMPTIONS['storage_request_ms'])."""
    k = rate / base.rate
    windows = _windows(run)
    if keys_per_source and base.entity_ops:  # the run's key space is known: uniform keys, as produced
        keys = {source: keys_per_source for source in windows if entity_for_source(source)}
    else:
        keys = _fitted_keys(windows, run) if base.entity_ops else {}
    model = busy_model(run, stateless)
    requests_per_invocation = sum(base.requests.values()) / base.invocations if base.invocations else 0.0
    invocations: dict[str, float] = {}
    busy_per_invocation: dict[str, float] = {}
    ops = kafka_instance_s = 0.0
    ops_by_source: dict[str, float] = {}
    for source, (window, events) in windows.items():
        per_window = events * k
        full, rest = divmod(per_window, config.max_batch_size)
        count = full + (1 if rest else 0)
        invocations[source] = count / window
        source_ops = 0.0
        if source in keys:
            n = config.buckets.get(source) if run_buckets else None
            source_ops = full * touched(config.max_batch_size, keys[source], n) + touched(rest, keys[source], n)
            ops += source_ops / window
            ops_by_source[source] = source_ops / window
        busy = model.of(source, per_window / count, source_ops / count)
        busy_per_invocation[source] = busy + requests_per_invocation * STORAGE_REQUEST_S
        kafka_instance_s += _instance_seconds(invocations[source], busy_per_invocation[source])
    executions = ops * (base.entity_executions / base.entity_ops) if base.entity_ops else 0.0
    durable_busy = 0.0
    if base.entity_executions:
        durable_busy = run["activity"]["durable"]["busy_s"] / run["activity"]["durable"]["executions"]
    scale = sum(invocations.values()) / base.invocations
    return replace(
        base,
        rate=rate,
        extrapolated=True,
        invocations_by_source=invocations,
        kafka_instance_s=kafka_instance_s,
        kafka_busy_per_invocation_s=busy_per_invocation,
        entity_ops=ops,
        entity_ops_by_source=ops_by_source,
        entity_executions=executions,
        durable_instance_s=_instance_seconds(executions, durable_busy) if executions else 0.0,
        requests={kind: n * scale for kind, n in base.requests.items()},
        compaction_requests={kind: n * scale for kind, n in base.compaction_requests.items()},
        raw_files_by_source={source: n * scale for source, n in base.raw_files_by_source.items()},
        bytes_written=base.bytes_written * k,
        app_log_rows={level: n * scale for level, n in base.app_log_rows.items()},
        app_log_bytes={level: n * scale for level, n in base.app_log_bytes.items()},
    )


@dataclass(frozen=True)
class Busy:
    """Seconds a process_<source> invocation is busy: fixed + per event x events + per operation x operations."""

    fixed: float
    per_event: float
    per_operation: dict[str, float]

    def of(self, source: str, events: float, operations: float) -> float:
        return self.fixed + self.per_event * events + self.per_operation.get(source, 0.0) * operations


def busy_model(run: dict[str, Any], stateless: dict[str, Any] | None) -> Busy:
    """Fixed and per-event time from the state-off run (a least-squares line through its sources' invocations:
    landing alone); what the state-on run spent beyond that, per operation of each source's entity (signals
    and bucket reads follow buckets touched, not events). Without a state-off run, the base run's line."""
    fixed, per_event = _line(stateless or run)
    per_operation: dict[str, float] = {}
    if stateless is not None and run.get("state", True):
        for source, count in run["invocations_by_source"].items():
            kind = entity_for_source(source)
            operations = run["invocations"].get(kind, 0) if kind else 0
            if not operations or not count:
                continue
            busy = run["activity"].get(f"function:process_{source}", {}).get("busy_s", 0.0)
            landing = count * fixed + per_event * run["events_by_source"].get(source, 0)
            per_operation[source] = max(0.0, busy - landing) / operations
    return Busy(fixed, per_event, per_operation)


def _line(run: dict[str, Any]) -> tuple[float, float]:
    """(seconds per invocation, seconds per event) fitted to every source's mean invocation of ``run``."""
    points = []
    for source, count in run["invocations_by_source"].items():
        busy = run["activity"].get(f"function:process_{source}", {}).get("busy_s")
        if count and busy is not None:
            points.append((run["events_by_source"].get(source, 0) / count, busy / count))
    if len(points) < 2:
        events, busy = points[0] if points else (1.0, 0.0)
        return 0.0, busy / max(events, 1.0)
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0
    slope = max(0.0, slope)
    return max(0.0, mean_y - slope * mean_x), slope


def entity_for_source(source: str) -> str | None:
    from shared.state.registry import entity_for

    kind = entity_for(source)
    return kind.name if kind else None


def _windows(run: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Per source in a measured run: seconds per invocation (its batch window) and events per invocation."""
    return {
        source: (run["seconds"] / count, run["events_by_source"].get(source, 0) / count)
        for source, count in run["invocations_by_source"].items()
        if count
    }


def _fitted_keys(windows: dict[str, tuple[float, float]], run: dict[str, Any]) -> dict[str, float]:
    """Per keyed source, the entities (buckets touched at most) that explain its measured operations a second:
    for a run that did not record its key buckets (one that did has a known key space, keys_per_source)."""
    fitted = {}
    for source, (window, events) in windows.items():
        kind = entity_for_source(source)
        ops_per_s = run["invocations"].get(kind, 0) / run["seconds"] if kind else 0.0
        if not ops_per_s:
            continue
        low, high = 1.0, 1e12
        for _ in range(200):
            middle = math.sqrt(low * high)
            low, high = (middle, high) if distinct(events, middle) / window < ops_per_s else (low, middle)
        fitted[source] = low
    return fitted


def _instance_seconds(executions_per_s: float, busy_s: float) -> float:
    """Flex billable instance-seconds per second for executions of ``busy_s`` arriving ``executions_per_s``:
    each keeps an instance billed at least 1 s; once they overlap the instances are busy throughout."""
    if executions_per_s * max(1.0, busy_s) >= 1:
        return max(1.0, executions_per_s * busy_s)
    return executions_per_s * max(1.0, math.ceil(busy_s * 10) / 10)


# ------------------------------------------------------------------------------ costs


@dataclass
class Month:
    lines: dict[str, float]
    quantities: dict[str, float]
    limits_exceeded: list[str]
    unpriced: list[str]
    extrapolated: bool = False  # the load was derived, not measured at this rate and these key buckets

    @property
    def total(self) -> float:
        return sum(self.lines.values())


def _price(name: str) -> float:
    value = PRICES[name].value
    assert value is not None, name
    return value


LIST_PAGE = 5000  # paths per List Paths response
COMPACTION_ROWS_PER_S = 84_000  # ASSUMPTIONS['compaction_time']
CURATED_BYTES_PER_ROW = 22.4  # bench/README.md, Memory: 1M rows with _received -> a 22.4 MB curated file
# Compaction's peak RSS by rows in the busiest source-hour (bench/README.md: a small hour of 1,000 files,
# then 1M rows with _received, and 10M rows measured before _received); linear in between.
COMPACTION_PEAK_MB = ((0, 302.0), (1_000_000, 570.0), (10_000_000, 683.0))
HOST_MEMORY_MB = 200  # ASSUMPTIONS['host_memory']


@dataclass(frozen=True)
class Flex:
    """Flex Consumption per second: instance-seconds and executions of each billing mode."""

    on_demand_instance_s: float
    on_demand_executions: float
    always_ready_instance_s: float  # while always-ready instances execute
    always_ready_executions: float
    always_ready_instances: int


def flex(load: Load | None, config: Config, sources: int, rate: float) -> Flex:
    """Kafka triggers, compaction timers and the durable group; the durable group's activity goes to its
    always-ready instances first (billed at the always-ready rates), the rest on demand."""
    runs = sources * config.compaction_runs_per_hour / 3600
    compaction_s = max(runs * 1.0, rate / COMPACTION_ROWS_PER_S)
    on_demand_s, executions = compaction_s, runs
    durable_s = durable_executions = 0.0
    if load is not None:
        on_demand_s += load.kafka_instance_s
        executions += load.invocations
        durable_s, durable_executions = load.durable_instance_s, load.entity_executions
    ready = config.durable_always_ready
    on_ready_s = min(durable_s, float(ready))
    share = on_ready_s / durable_s if durable_s else 0.0
    return Flex(
        on_demand_instance_s=on_demand_s + durable_s - on_ready_s,
        on_demand_executions=executions + durable_executions * (1 - share),
        always_ready_instance_s=on_ready_s,
        always_ready_executions=durable_executions * share,
        always_ready_instances=ready,
    )


def compaction_lists(load: Load | None, config: Config, sources: int) -> float:
    """List requests a second: every run pages through the source's retained raw files."""
    runs_per_source = config.compaction_runs_per_hour / 3600
    if load is None:
        return sources * runs_per_source
    retained_s = config.raw_retention_days * 86_400
    pages = sum(max(1, math.ceil(files * retained_s / LIST_PAGE)) for files in load.raw_files_by_source.values())
    return (pages + sources - len(load.raw_files_by_source)) * runs_per_source


def compaction_peak_mb(rows_per_hour: float) -> float:
    points = COMPACTION_PEAK_MB
    for (low_rows, low_mb), (high_rows, high_mb) in pairwise(points):
        if rows_per_hour <= high_rows:
            return low_mb + (high_mb - low_mb) * (rows_per_hour - low_rows) / (high_rows - low_rows)
    return points[-1][1]


def month(rate: float, state: bool, config: Config, results: dict[str, Any]) -> Month:
    sources = len(results["config"]["mix"])
    s = SECONDS_PER_MONTH
    load = load_at(rate, state, config, results) if rate > 0 else None
    events = rate * s
    requests: dict[str, float] = {"list": compaction_lists(load, config, sources) * s}
    quantities: dict[str, float] = {"events": events}
    exceeded: list[str] = []
    unpriced: list[str] = []
    lines: dict[str, float] = {}
    if load is not None:
        for kind, n in (*load.requests.items(), *load.compaction_requests.items()):
            requests[kind] = requests.get(kind, 0.0) + n * s
        requests["delete"] = requests.get("delete", 0.0) + load.raw_files * s  # ASSUMPTIONS['lifecycle_deletes']
        quantities |= {
            "invocations": load.invocations * s,
            "entity_operations": load.entity_ops * s,
            "entity_operations_per_event": load.entity_ops / rate,
            "raw_files": load.raw_files * s,
        }
        exceeded += _limits(load, rate, config, results)
    tus = max(config.throughput_units, math.ceil(rate / LIMITS["eventhubs_events_per_tu"]))
    lines["Event Hubs throughput units"] = tus * HOURS_PER_MONTH * _price("eventhubs_tu_hour")
    lines["Event Hubs ingress"] = events / 1e6 * _price("eventhubs_ingress_million")
    lines |= _functions_lines(flex(load, config, sources, rate), config, quantities)
    quantities |= {"throughput_units": tus} | {f"lake_{kind}_requests": n for kind, n in requests.items()}
    lines["Lake requests"] = sum(
        requests.get(kind, 0.0) / 1e4 * _price(f"lake_{kind}_10k") for kind in ("write", "read", "list", "other")
    )
    if load is not None:
        curated = sources * HOURS_PER_MONTH * 10  # ASSUMPTIONS['curated_requests_per_hour']
        lines["Lake requests"] += curated / 1e4 * (_price("lake_write_10k") + _price("lake_read_10k"))
        raw_gb = load.bytes_written * config.raw_retention_days * 86_400 / 1e9
        curated_gb = rate * s * CURATED_BYTES_PER_ROW / 1e9
        lines["Lake capacity (raw retained, first month of curated, hot)"] = (raw_gb + curated_gb) * _price(
            "lake_capacity_gb_month"
        )
        lines["Lake diagnostic logs"] = _storage_log_gb(requests, config) * _price("logs_gb")
        lines["Durable backend"] = _durable(load, config, results, unpriced, quantities) if state else 0.0
        unpriced.extend(load.notes)
    lines["Application Insights logs"] = (_log_bytes(load, config) if load else 0.0) * s / 1e9 * _price("logs_gb")
    return Month(lines, quantities, exceeded, unpriced, load is not None and load.extrapolated)


def _functions_lines(usage: Flex, config: Config, quantities: dict[str, float]) -> dict[str, float]:
    s = SECONDS_PER_MONTH
    gb_s = usage.on_demand_instance_s * config.memory_gb * s
    executions = usage.on_demand_executions * s
    quantities |= {"flex_on_demand_gb_s": gb_s, "executions": executions}
    lines = {
        "Functions execution time (Flex on demand)": max(0.0, gb_s - _price("flex_free_gb_s"))
        * _price("flex_on_demand_gb_s"),
        "Functions executions": max(0.0, executions - _price("flex_free_executions"))
        / 1e6
        * _price("flex_executions_million"),
    }
    if usage.always_ready_instances:
        baseline = usage.always_ready_instances * config.memory_gb * s
        busy = usage.always_ready_instance_s * config.memory_gb * s
        ready_executions = usage.always_ready_executions * s
        quantities |= {"flex_always_ready_baseline_gb_s": baseline, "flex_always_ready_execution_gb_s": busy}
        quantities["executions"] += ready_executions
        lines["Functions always ready (durable group)"] = (
            baseline * _price("flex_always_ready_baseline_gb_s")
            + busy * _price("flex_always_ready_execution_gb_s")
            + ready_executions / 1e6 * _price("flex_always_ready_executions_million")
        )
    return lines


def _log_bytes(load: Load, config: Config) -> float:
    """Bytes a second sent to Application Insights: the host's rows and the app's logs under host.json's levels,
    and what the code's exporter sends, which host.json does not govern: its metrics and sampled traces."""
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
    total += load.invocations * config.trace_sampling * ROW_BYTES["request"]  # ASSUMPTIONS['trace_rows']
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


def _durable(
    load: Load, config: Config, results: dict[str, Any], unpriced: list[str], quantities: dict[str, float]
) -> float:
    ops = load.entity_ops * SECONDS_PER_MONTH
    if config.backend == "azure_storage":
        transactions = ops * 8
        quantities["durable_storage_transactions"] = transactions
        blob_ops = _ops_on_blob_state(load, config, results, unpriced) * SECONDS_PER_MONTH
        quantities["durable_state_blob_writes"] = blob_ops * BLOB_WRITES_PER_LARGE_STATE
        quantities["durable_state_blob_reads"] = blob_ops
        return transactions / 1e4 * (_price("queue_10k") + _price("table_10k")) / 2 + blob_ops / 1e4 * (
            BLOB_WRITES_PER_LARGE_STATE * _price("lake_write_10k") + _price("lake_read_10k")
        )
    if config.backend == "dts_consumption":
        unpriced.append(f"DTS Consumption: {ops:,.0f} actions a month (no list price found, see --prices)")
        return 0.0
    units = max(1, math.ceil(load.entity_ops / LIMITS["dts_dedicated_actions_per_cu"]))
    quantities["dts_capacity_units"] = units
    unpriced.append(f"DTS Dedicated: {units} capacity unit(s) (no list price found, see --prices)")
    return 0.0


@cache
def _entity_sources() -> dict[str, str]:
    from shared.state.registry import ENTITY_KINDS

    return {kind.name: source for source, kind in ENTITY_KINDS.items()}


def bucket_stored_chars(source: str, config: Config, results: dict[str, Any]) -> float | None:
    """A bucket's state as the Azure Storage backend stores it (characters, at steady state); None if unknown."""
    per_key = results["config"].get("state_stored_chars_per_key", {}).get(source)
    if per_key is None:
        return None
    return float(per_key) * float(results["config"]["keys_per_source"]) / config.buckets.get(source, 1)


def _ops_on_blob_state(load: Load, config: Config, results: dict[str, Any], unpriced: list[str]) -> float:
    """Entity operations per second on buckets whose state the Azure Storage backend keeps in a blob."""
    on_blobs = 0.0
    for source, ops in load.entity_ops_by_source.items():
        chars = bucket_stored_chars(source, config, results)
        if chars is None:
            unpriced.append(f"Durable Azure Storage backend: {source}'s state size is not in the results")
        elif chars > AZURE_STORAGE_INLINE_CHARS:
            on_blobs += ops
    return on_blobs


def _limits(load: Load, rate: float, config: Config, results: dict[str, Any]) -> list[str]:
    out = []
    tus = math.ceil(rate / LIMITS["eventhubs_events_per_tu"])
    if tus > LIMITS["eventhubs_max_tu"]:
        out.append(f"Event Hubs Standard: {tus} TUs needed, {LIMITS['eventhubs_max_tu']} at most per namespace")
    for source, per_s in load.invocations_by_source.items():
        busy = load.kafka_busy_per_invocation_s.get(source, 0.0) * per_s
        if busy > config.partitions:
            out.append(f"process_{source}: {busy:.2f} busy instances needed, one per partition ({config.partitions})")
    mix = results["config"]["mix"]
    largest = max(mix, key=lambda p: p["events_per_minute"])
    share = largest["events_per_minute"] / sum(p["events_per_minute"] for p in mix)
    per_partition = rate * share / config.partitions
    if per_partition > LIMITS["eventhubs_partition_events"]:
        out.append(
            f"Event Hubs partition ingress: {largest['source']} at {per_partition:,.0f} events/s per partition "
            f"({config.partitions} partitions), about {LIMITS['eventhubs_partition_events']:,}/s each"
        )
    rows_per_hour = rate * share * 3600
    peak = compaction_peak_mb(rows_per_hour)
    if peak + HOST_MEMORY_MB > config.memory_mb:
        out.append(
            f"instance memory: compaction of {rows_per_hour:,.0f} rows in the busiest source-hour peaks near "
            f"{peak:,.0f} MB, plus the host (assumed {HOST_MEMORY_MB} MB), over {config.memory_mb} MB"
        )
    ops = load.entity_ops
    storage_cap = 4 * LIMITS["azure_storage_ops_per_partition"]
    if config.backend == "azure_storage" and ops > storage_cap:
        out.append(f"Durable Azure Storage backend: {ops:,.0f} entity operations/s, about {storage_cap}/s assumed")
    if config.backend == "dts_consumption" and ops > LIMITS["dts_consumption_actions"]:
        out.append(f"DTS Consumption: {ops:,.0f} actions/s, {LIMITS['dts_consumption_actions']}/s at most")
    cap = LIMITS["dts_dedicated_actions_per_cu"] * LIMITS["dts_dedicated_max_cu"]
    if config.backend == "dts_dedicated" and ops > cap:
        out.append(f"DTS Dedicated: {ops:,.0f} actions/s, {cap:,}/s at most (3 CUs)")
    requests = sum(load.requests.values())
    if requests > LIMITS["storage_requests_per_s"]:
        out.append(f"lake storage account: {requests:,.0f} requests/s, 20,000/s target")
    return out


# ------------------------------------------------------------------------------ scenarios


OWN_BUCKETS = "each source's own"  # a row's key buckets: each keyed source's own N (registry), as on DTS

# The rows at the deployed defaults, then costed options (each row names what differs).
SCENARIOS: tuple[tuple[float, bool, dict[str, Any]], ...] = (
    (0, True, {}),
    (10, True, {}),
    (1000, True, {}),
    (10_000, True, {}),
    (1000, False, {}),
    (10, True, {"durable_always_ready": 1}),
    (10, True, {"memory_mb": 512}),
    (1000, True, {"buckets": OWN_BUCKETS}),
    (1000, True, {"backend": "dts_dedicated"}),
    (10_000, True, {"backend": "dts_dedicated", "partitions": 4}),
    (100_000, True, {"backend": "dts_dedicated", "partitions": 32}),
)


def _own_buckets(changes: dict[str, Any], base: Config) -> dict[str, Any]:
    if changes.get("buckets") != OWN_BUCKETS:
        return {}
    return {"buckets": default_buckets("dts_dedicated", None, base.azure_storage_buckets)}


def scenarios(results: dict[str, Any], results_path: Path, base: Config | None = None) -> dict[str, Any]:
    base = measured_batching(base or deployed(), results)
    rows = []
    measured = sorted({r["rate_ev_s"] for r in results["runs"]})
    for rate, state, changes in SCENARIOS:
        config = replace(base, **(changes | _own_buckets(changes, base)))
        if "backend" in changes:
            config = with_backend(config, changes["backend"])
        result = month(rate, state, config, results)
        events = rate * SECONDS_PER_MONTH
        capture = capture_month(rate)
        rows.append(
            {
                "rate_ev_s": rate,
                "state": state,
                "usd_month": round(result.total, 2),
                "usd_per_1m_events": round(result.total / events * 1e6, 4) if events else None,
                "limits_exceeded": result.limits_exceeded,
                "unpriced": result.unpriced,
                "extrapolated": result.extrapolated or rate > max(measured),
                "capture_usd_month": round(capture, 2),
                "capture_usd_per_1m_events": round(capture / events * 1e6, 4) if events else None,
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
        "measured_rates_ev_s": measured,
        "store": base.store,
        "capture_usd_month": round(capture_month(0), 2),
        "recommended_budget_usd": recommended_budget(results),
        "backend_choice": backend_choice(results, base),
        "generators_default": generators_default(results, base),
    }


def measured_batching(config: Config, results: dict[str, Any]) -> Config:
    """The configuration with the batching the results were measured with (a ``--host-json`` variant's)."""
    batching = results.get("host_json", {})
    return replace(
        config,
        subscriber_interval_s=int(batching.get("subscriber_interval_s", config.subscriber_interval_s)),
        max_batch_size=int(batching.get("max_batch_size", config.max_batch_size)),
    )


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
        "durable_always_ready_instances": data["durable_always_ready"],
        "lake_store": data["store"],
        "lake_diagnostic_categories": list(data["lake_diagnostic_categories"]),
    }


def capture_month(rate: float) -> float:
    """Event Hubs Capture landing the same stream alone: the TUs the rate needs (at least one), each with its
    Capture, and the ingress."""
    tus = max(1, math.ceil(rate / LIMITS["eventhubs_events_per_tu"]))
    hourly = _price("eventhubs_tu_hour") + _price("eventhubs_capture_tu_hour")
    return tus * HOURS_PER_MONTH * hourly + rate * SECONDS_PER_MONTH / 1e6 * _price("eventhubs_ingress_million")


def recommended_budget(results: dict[str, Any], base: Config | None = None) -> int:
    """The monthly budget Terraform defaults to: the 10 events/s month with 50% headroom, in tens of USD."""
    total = month(10, True, base or deployed(), results).total
    return int(math.ceil(total * 1.5 / 10) * 10)


def backend_choice(results: dict[str, Any], base: Config) -> dict[str, Any]:
    """The Durable backend for the proof-of-concept rate (10 events/s): the cheapest priced one within its
    limits, and the DTS prices below which DTS would be cheaper."""
    storage = month(10, True, with_backend(base, "azure_storage"), results)
    cost = storage.lines.get("Durable backend", 0.0)
    ops = storage.quantities.get("entity_operations", 0.0)
    within = not any("Durable" in item for item in storage.limits_exceeded)
    dts_priced = PRICES["dts_consumption_action"].value is not None or PRICES["dts_dedicated_cu_month"].value
    return {
        "default": "azure_storage" if within and not dts_priced else "undecided: price DTS and compare",
        "azure_storage_usd_month_at_10_ev_s": round(cost, 2),
        "azure_storage_within_its_throughput_at_10_ev_s": within,
        "dts_consumption_cheaper_below_usd_per_million_actions": round(cost / ops * 1e6, 4) if ops else None,
        "dts_dedicated_cheaper_below_usd_per_cu_month": round(cost, 2),
        "why": "Azure Storage is priced and within its throughput at the proof-of-concept rate and needs no extra "
        "resource; DTS Dedicated bills a capacity unit every hour of the month, DTS Consumption every action, "
        "and neither has a list price in a stored copy.",
    }


def generators_default(results: dict[str, Any], base: Config) -> dict[str, Any]:
    """What the Terraform generators produce at their defaults, and what their own timer executions add
    (each tick an execution of generate_<source>, its own scale group: at least 1 s billed)."""
    from bench.cost import ticks_per_minute

    rate = sum(p["events_per_minute"] for p in results["config"]["mix"]) / 60
    ticks = sum(ticks_per_minute(schedule) for schedule in generator_schedules()) / 60
    gb_s = ticks * SECONDS_PER_MONTH * base.memory_gb
    timers = gb_s * _price("flex_on_demand_gb_s") + ticks * SECONDS_PER_MONTH / 1e6 * _price("flex_executions_million")
    return {
        "rate_ev_s": round(rate, 2),
        "ticks_per_s": round(ticks, 4),
        "timer_usd_month": round(timers, 2),
        "note": "the events themselves cost about what the 10 events/s row shows; the timers come on top "
        "(no free grant assumed left)",
    }


def generator_schedules() -> list[str]:
    """Each source's default generator schedule as Terraform deploys it (Datagen configs: every 10 s)."""
    from bench.cost import _terraform_sources_default
    from shared.sources import CONFIG_SOURCES

    fields, defaults = _terraform_sources_default()
    schedules = [str((fields | dict(overrides))["generator_schedule"]) for overrides in defaults.values()]
    return schedules + ["*/10 * * * * *"] * len(CONFIG_SOURCES)


# ------------------------------------------------------------------------------ output


def table(document: dict[str, Any]) -> str:
    rows = document["scenarios"]
    header = ["USD per month"] + [_label(r) for r in rows]
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
    lines.append("| Event Hubs Capture alone | " + " | ".join(f"{r['capture_usd_month']:,.2f}" for r in rows) + " |")
    notes = []
    for r in rows:
        label = _label(r)
        for item in r["limits_exceeded"]:
            notes.append(f"- {label}: limit exceeded: {item}")
        for item in r["unpriced"]:
            notes.append(f"- {label}: not in the total: {item}")
    return "\n".join([*lines, "", *notes])


OPTION_LABELS = {
    "durable_backend": "{}",
    "instance_memory_mb": "{} MB",
    "partitions": "{} partitions",
    "durable_always_ready_instances": "{} always ready",
}


def _label(row: dict[str, Any]) -> str:
    """The column of a row: its rate and state, and what differs from the default deployment."""
    label = f"{row['rate_ev_s']:,.0f} ev/s{'' if row['state'] else ' no state'}"
    config = row["config"]
    names = {
        "backend": "durable_backend",
        "memory_mb": "instance_memory_mb",
        "durable_always_ready": "durable_always_ready_instances",
    }
    for changed in config["differs_from_default"]:
        key = names.get(changed, changed)
        if key == "buckets":
            label += " own N" if len(set(config[key].values())) > 1 else f" {next(iter(config[key].values()))} buckets"
            continue
        label += " " + OPTION_LABELS.get(key, key + "={}").format(config[key])
    return label


def parser() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    options.add_argument("--json", action="store_true", help="print one JSON object")
    options.add_argument("--prices", action="store_true", help="print every price with its page and read date")
    options.add_argument("--results", type=Path, default=RESULTS, help="a bench/cost.py results file")
    return options


def _scenarios_of(results: dict[str, Any], path: Path) -> dict[str, Any]:
    """``scenarios``, with a value deeper in the file than ``load_results`` checks missing or of another type
    (a nested key, a string for a number) ``UnreadableResults`` naming it, not a traceback."""
    try:
        return scenarios(results, path)
    except KeyError as error:
        raise UnreadableResults(f"not a bench/cost.py results file (no {error.args[0]!r})") from error
    except (AttributeError, IndexError, TypeError, ValueError, ZeroDivisionError, OverflowError) as error:
        why = (str(error).splitlines() or [""])[0][:200]
        raise UnreadableResults(f"not a bench/cost.py results file ({type(error).__name__}: {why})") from error


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    if args.prices:
        for name, item in PRICES.items():
            value = "no list price found" if item.value is None else f"{item.value:g}"
            print(f"{name}: {value} {item.unit} [{item.page}; {item.read}]")
        for rule in RULES.values():
            print(f"rule: {rule}")
        return 0
    try:
        document = _scenarios_of(load_results(args.results), args.results)
    except UnreadableResults as error:  # a bad --results is a bad argument: argparse's code, one line
        print(f"{PROG}: cannot read --results {args.results}: {error}", file=sys.stderr)
        return EXIT_BAD_ARGUMENTS
    if args.json:
        print(json.dumps(document, indent=1))
    else:
        print(table(document))
        print(f"\nmeasured inputs: {document['measured_inputs']} ({document['measured_at']})")
        print(f"Event Hubs Capture, landing alone (one TU, idle): {document['capture_usd_month']:,.2f} USD a month")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
