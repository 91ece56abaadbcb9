"""What the deployment costs a month, at idle and per million events, from list prices.

    python -m tools.cost                          # the table for 10, 1,000 and 10,000 events/s
    python -m tools.cost --rates 50 500           # other rates
    python -m tools.cost --zone-redundant --no-state --memory-mb 512 --partitions 2

A model, not a bill: list prices (``PRICES``: named, dated, with their source) times the
quantities this app produces at a given event rate, from this project's measurements
(bench/README.md: CPU per event and per entity operation) and its design (one lake file per
partition per invocation, one entity operation per distinct key per invocation). Every
assumption is a field of :class:`Config` with its source in the comment; docs/cost.md explains
them and prints the table.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

SECONDS_PER_MONTH = 730 * 3600  # Azure prices a month as 730 hours
HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class Price:
    value: float
    unit: str
    source: str


# USD, East US, pay-as-you-go list prices, as published on the pages named (checked 2026-11-27
# from stored copies where the source says so; the others are the public price pages' figures
# as of 2025 and must be re-checked in the Azure pricing calculator for the region used).
PRICES: dict[str, Price] = {
    "eventhubs_tu_hour": Price(
        0.030, "USD per throughput unit-hour", "azure.microsoft.com/pricing/details/event-hubs (Standard, 2025)"
    ),
    "eventhubs_ingress_million": Price(
        0.028, "USD per million ingress events (64 KB each)", "azure.microsoft.com/pricing/details/event-hubs (2025)"
    ),
    "flex_on_demand_gb_s": Price(
        0.000026,
        "USD per GB-s of on-demand execution",
        "azure.microsoft.com/pricing/details/functions; confirmed in modal.com 'Azure Functions pricing' (2025-05-22)",
    ),
    "flex_executions_million": Price(
        0.40, "USD per million executions", "azure.microsoft.com/pricing/details/functions"
    ),
    "flex_free_gb_s": Price(
        100_000, "GB-s free per month (on demand)", "azure.microsoft.com/pricing/details/functions"
    ),
    "flex_free_executions": Price(
        250_000, "executions free per month (on demand)", "azure.microsoft.com/pricing/details/functions"
    ),
    "flex_always_ready_baseline_gb_s": Price(
        0.000004, "USD per GB-s of always-ready baseline", "azure.microsoft.com/pricing/details/functions (2025)"
    ),
    "lake_capacity_gb_month": Price(
        0.019, "USD per GB-month, ADLS Gen2 hot LRS", "azure.microsoft.com/pricing/details/storage/data-lake (2025)"
    ),
    "lake_write_10k": Price(
        0.065, "USD per 10,000 write operations, hot", "azure.microsoft.com/pricing/details/storage/data-lake (2025)"
    ),
    "lake_read_10k": Price(
        0.0052, "USD per 10,000 read operations, hot", "azure.microsoft.com/pricing/details/storage/data-lake (2025)"
    ),
    "queue_10k": Price(0.004, "USD per 10,000 queue operations", "azure.microsoft.com/pricing/details/storage/queues"),
    "table_10k": Price(
        0.00036, "USD per 10,000 table transactions", "azure.microsoft.com/pricing/details/storage/tables"
    ),
    "logs_gb": Price(
        2.30,
        "USD per GB ingested (Analytics logs, pay-as-you-go; first 5 GB a month free per billing account, not counted)",
        "azure.microsoft.com/pricing/details/monitor (2025)",
    ),
}
ZRS_FACTOR = 1.25  # ZRS over LRS capacity and write prices on the storage price pages (about +25%)


@dataclass(frozen=True)
class Config:
    """One deployment and load. Defaults are terraform/variables.tf's and the measured figures."""

    events_per_second: float = 0.0
    sources: int = 4  # var.sources: clickstream, mobile, sensors, users
    partitions: int = 4  # per hub, var.eventhub_partition_count
    memory_mb: int = 2048  # var.function_instance_memory_mb
    zone_redundant: bool = False  # var.zone_redundancy_enabled
    scale_groups: int = 10  # per-function scale groups: 4 Kafka triggers, 4 timers, durable, http
    state: bool = True  # <SOURCE>_STATE_ENABLED
    keys_per_source: int = 200  # distinct entity keys (the generators use 40-500: users, sensors, devices)
    throughput_units: int = 1  # var.eventhubs_capacity; more are bought when the rate needs them
    event_bytes: int = 400  # Kafka record size (a clickstream event is ~350 B of JSON)
    stored_bytes_per_event: int = 80  # Parquet (zstd) in the lake, per event
    # bench/README.md, e2e: 24.3 us of CPU per event for the whole local host (consumer, glue,
    # core, lake write) with one worker; in Azure the .NET host does the consumer part.
    cpu_us_per_event: float = 25.0
    # bench/README.md, state: ~69 us of CPU per entity operation (load, reduce, save, JSON).
    cpu_us_per_entity_op: float = 69.0
    invocation_overhead_ms: float = 40.0  # fixed wall time per invocation: lake round trips (assumed)
    entity_op_ms: float = 10.0  # wall time of one entity operation (storage round trips, assumed)
    batch_window_s: float = 1.0  # host.json subscriberIntervalInSeconds: a batch holds ~1 s of a partition
    burst_period_s: float = 0.0  # events arrive in bursts this far apart (a generator tick), 0 = evenly
    max_batch: int = 1000  # host.json maxBatchSize
    files_per_batch: float = 1.0  # one Parquet file per partition per invocation (no dead letters)
    writes_per_file: int = 4  # ADLS atomic write: create, append, flush, rename
    # Compaction (DESIGN.md: curated/<source> Delta table per closed hour): reads each raw file
    # of the hour once (2 read operations: properties and content) and writes a data file and a
    # Delta log entry per source and hour; curated data takes about as much room as raw.
    compaction: bool = True
    reads_per_raw_file: int = 2
    curated_files_per_hour: int = 2
    storage_ops_per_entity_op: int = 8  # Durable (Azure Storage): queue put/get/delete, history and state rows
    log_kb_per_execution: float = 1.0  # requests row (not sampled) plus what adaptive sampling keeps of traces
    timers: int = 4  # generate_<source> timers fire even with the generator switched off
    timer_period_s: float = 60.0  # <SOURCE>_GENERATOR_SCHEDULE in Terraform: once a minute
    timer_execution_ms: float = 50.0
    generator_on: bool = False  # the generators produce part of the rate (their cost is counted in it)

    @property
    def memory_gb(self) -> float:
        return self.memory_mb / 1024


@dataclass(frozen=True)
class Breakdown:
    """Monthly cost per component, USD."""

    lines: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.lines.values())

    def dominant(self) -> str:
        return max(self.lines, key=lambda name: self.lines[name])


def batch_size(config: Config) -> float:
    """Events per invocation: what one partition receives in a batch window, between 1 and maxBatchSize."""
    per_partition = config.events_per_second / (config.sources * config.partitions)
    window = max(config.batch_window_s, config.burst_period_s)
    return min(float(config.max_batch), max(1.0, per_partition * window))


def invocations_per_second(config: Config) -> float:
    if config.events_per_second <= 0:
        return 0.0
    return config.events_per_second / batch_size(config)


def entity_ops_per_second(config: Config) -> float:
    """One operation per distinct key per invocation: at most the batch, at most the keys a partition sees."""
    if not config.state or config.events_per_second <= 0:
        return 0.0
    keys_per_partition = config.keys_per_source / config.partitions
    return invocations_per_second(config) * min(batch_size(config), max(1.0, keys_per_partition))


def throughput_units(config: Config) -> int:
    """Standard TUs: 1 MB/s or 1,000 events/s of ingress each (egress 2 MB/s is never the bound here)."""
    by_events = math.ceil(config.events_per_second / 1000)
    by_bytes = math.ceil(config.events_per_second * config.event_bytes / 1_000_000)
    return max(config.throughput_units, by_events, by_bytes)


def instance_seconds(config: Config) -> float:
    """Seconds of instance time billed in a month: when instances are executing something.

    Flex Consumption bills an on-demand instance's memory while it executes functions, however
    many executions overlap on it. So each scale group costs the sum of its executions' wall
    time while they rarely overlap, and at most the instances its CPU needs (one core each)
    once they do: the Kafka triggers (one group per source) and the entity functions.
    """
    seconds = SECONDS_PER_MONTH
    events = config.events_per_second * seconds
    invocations = invocations_per_second(config) * seconds
    entity_ops = entity_ops_per_second(config) * seconds
    timer_runs = config.timers * seconds / config.timer_period_s

    def capped(wall: float, cpu: float, groups: int) -> float:
        return min(wall, max(cpu, groups * seconds))

    kafka_cpu = events * config.cpu_us_per_event / 1e6
    kafka_wall = invocations * config.invocation_overhead_ms / 1000 + kafka_cpu
    entity_cpu = entity_ops * config.cpu_us_per_entity_op / 1e6
    entity_wall = entity_ops * config.entity_op_ms / 1000 + entity_cpu
    timers = timer_runs * config.timer_execution_ms / 1000
    return capped(kafka_wall, kafka_cpu, config.sources) + capped(entity_wall, entity_cpu, 1) + timers


def monthly_cost(config: Config) -> Breakdown:
    """Every component of one month at a constant rate."""
    price = {name: item.value for name, item in PRICES.items()}
    seconds = SECONDS_PER_MONTH
    events = config.events_per_second * seconds
    invocations = invocations_per_second(config) * seconds
    entity_ops = entity_ops_per_second(config) * seconds
    timer_runs = config.timers * seconds / config.timer_period_s

    busy_seconds = instance_seconds(config)
    gb_seconds = busy_seconds * config.memory_gb
    executions = invocations + entity_ops + timer_runs
    billable_gb_s = max(0.0, gb_seconds - price["flex_free_gb_s"])
    billable_executions = max(0.0, executions - price["flex_free_executions"])

    storage_factor = ZRS_FACTOR if config.zone_redundant else 1.0
    files = invocations * config.files_per_batch
    stored_gb = events * config.stored_bytes_per_event / 1e9  # the first month's data, kept hot
    curated_files = config.sources * HOURS_PER_MONTH * config.curated_files_per_hour if events else 0.0

    lines = {
        "Event Hubs throughput units": throughput_units(config) * HOURS_PER_MONTH * price["eventhubs_tu_hour"],
        "Event Hubs ingress": events / 1e6 * price["eventhubs_ingress_million"],
        "Functions execution time": billable_gb_s * price["flex_on_demand_gb_s"],
        "Functions executions": billable_executions / 1e6 * price["flex_executions_million"],
        "Functions always ready (zone redundancy)": (
            2 * config.scale_groups * config.memory_gb * seconds * price["flex_always_ready_baseline_gb_s"]
            if config.zone_redundant
            else 0.0
        ),
        "Lake writes": files * config.writes_per_file / 1e4 * price["lake_write_10k"] * storage_factor,
        "Lake compaction (raw reads, curated writes)": (
            (
                files * config.reads_per_raw_file / 1e4 * price["lake_read_10k"]
                + curated_files * config.writes_per_file / 1e4 * price["lake_write_10k"]
            )
            * storage_factor
            if config.compaction
            else 0.0
        ),
        "Lake capacity (raw and curated)": stored_gb
        * (2 if config.compaction else 1)
        * price["lake_capacity_gb_month"]
        * storage_factor,
        "Durable state storage": entity_ops
        * config.storage_ops_per_entity_op
        / 1e4
        * (price["queue_10k"] + price["table_10k"])
        / 2,
        "Application Insights logs": executions * config.log_kb_per_execution / 1e6 * price["logs_gb"],
    }
    return Breakdown(lines)


def per_million_events(config: Config) -> float:
    """What a million more events cost on top of idle, at this rate."""
    if config.events_per_second <= 0:
        return 0.0
    events = config.events_per_second * SECONDS_PER_MONTH
    idle = monthly_cost(replace(config, events_per_second=0.0)).total
    return (monthly_cost(config).total - idle) / events * 1e6


LEVERS: dict[str, dict[str, object]] = {
    "keyed state off (<SOURCE>_STATE_ENABLED=false)": {"state": False},
    "host logs per execution off (host.json logLevel Function/Host.Results=Warning)": {"log_kb_per_execution": 0.1},
    "512 MB instances (function_instance_memory_mb)": {"memory_mb": 512},
    "one partition per hub (bigger batches at low rates)": {"partitions": 1},
    "host.json subscriberIntervalInSeconds 1 -> 10 (10x bigger batches, up to 9 s more latency)": {
        "batch_window_s": 10.0
    },
    "zone redundancy off": {"zone_redundant": False},
}


def best_lever(config: Config) -> tuple[str, float]:
    """The single setting change that cuts the monthly total most, and the total it leaves."""
    options = []
    for name, change in LEVERS.items():
        changed = replace(config, **change)  # type: ignore[arg-type]
        if changed != config:
            options.append((monthly_cost(changed).total, name))
    total, name = min(options)
    return name, total


def table(rates: Sequence[float], base: Config) -> str:
    idle = monthly_cost(replace(base, events_per_second=0.0))
    rows = [replace(base, events_per_second=rate) for rate in rates]
    costs = [monthly_cost(row) for row in rows]
    header = ["USD per month", "idle", *(f"{rate:,.0f} ev/s" for rate in rates)]
    body = [[name, idle.lines[name], *(cost.lines[name] for cost in costs)] for name in idle.lines]
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |",
    ]
    for name, *values in body:
        lines.append(f"| {name} | " + " | ".join(f"{value:,.2f}" for value in values) + " |")
    lines.append("| **total** | " + " | ".join(f"**{c.total:,.2f}**" for c in [idle, *costs]) + " |")
    lines.append("| per 1M events | - | " + " | ".join(f"{per_million_events(row):,.3f}" for row in rows) + " |")
    lines.append("| events per invocation | - | " + " | ".join(f"{batch_size(row):,.1f}" for row in rows) + " |")
    lines.append("")
    for label, config, cost in [
        ("idle", replace(base, events_per_second=0.0), idle),
        *zip([f"{rate:,.0f} ev/s" for rate in rates], rows, costs, strict=True),
    ]:
        lever, after = best_lever(config)
        share = cost.lines[cost.dominant()] / cost.total if cost.total else 0.0
        cut = 1 - after / cost.total if cost.total else 0.0
        lines.append(
            f"- {label}: {cost.dominant()} dominates ({share:.0%}); biggest single cut: {lever} "
            f"-> {after:,.2f} ({cut:.0%} less{'' if cut >= 0.5 else ', not half'})"
        )
    return "\n".join(lines)


GENERATOR_EVENTS_PER_TICK = (100, 100, 100, 5)  # terraform/variables.tf sources: clickstream, mobile, sensors, users


def with_generators(base: Config, period_s: float) -> Config:
    """The load of the deployed generators alone: every source's tick every ``period_s``, as one burst."""
    rate = sum(GENERATOR_EVENTS_PER_TICK) / period_s
    return replace(base, events_per_second=rate, burst_period_s=period_s, timer_period_s=period_s)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[10, 1000, 10_000], help="events per second")
    parser.add_argument("--zone-redundant", action="store_true", help="zone_redundancy_enabled = true")
    parser.add_argument("--no-state", action="store_true", help="<SOURCE>_STATE_ENABLED=false for every source")
    parser.add_argument("--memory-mb", type=int, choices=(512, 2048, 4096), default=2048)
    parser.add_argument("--partitions", type=int, default=4, help="partitions per hub")
    parser.add_argument("--sources", type=int, default=4)
    parser.add_argument("--keys", type=int, default=200, help="distinct entity keys per source")
    parser.add_argument(
        "--generators",
        type=float,
        nargs="+",
        metavar="SECONDS",
        help="also print the month with only the generators running, one tick every SECONDS (60 = the default)",
    )
    parser.add_argument("--prices", action="store_true", help="print the list prices used and their sources")
    args = parser.parse_args(argv)
    if args.prices:
        for name, item in PRICES.items():
            print(f"{name}: {item.value:g} {item.unit} [{item.source}]")
        return 0
    base = Config(
        sources=args.sources,
        partitions=args.partitions,
        memory_mb=args.memory_mb,
        zone_redundant=args.zone_redundant,
        state=not args.no_state,
        keys_per_source=args.keys,
    )
    print(table(args.rates, base))
    for period in args.generators or []:
        config = with_generators(base, period)
        month = monthly_cost(config)
        print(
            f"- generators only, a tick every {period:g} s ({config.events_per_second:,.1f} ev/s in bursts): "
            f"{month.total:,.2f} USD a month, {month.dominant()} first"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
