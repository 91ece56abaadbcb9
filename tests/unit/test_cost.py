"""tools.cost: the arithmetic of the monthly cost model, checked against hand-computed figures."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.conftest import ROOT
from tools import cost
from tools.cost import PRICES, SECONDS_PER_MONTH, Config, monthly_cost

MONTH = 730 * 3600


def _price(name: str) -> float:
    return PRICES[name].value


def test_a_month_is_730_hours() -> None:
    assert SECONDS_PER_MONTH == MONTH == 2_628_000


@pytest.mark.parametrize(
    ("rate", "expected"),
    [(0.0, 1.0), (10.0, 1.0), (1000.0, 62.5), (10_000.0, 625.0), (1e6, 1000.0)],
)
def test_batch_size_is_a_partitions_second_of_events_between_1_and_max_batch(rate: float, expected: float) -> None:
    assert cost.batch_size(Config(events_per_second=rate)) == expected  # 4 sources x 4 partitions


def test_invocations_stop_growing_once_every_partition_fires_each_window() -> None:
    assert cost.invocations_per_second(Config(events_per_second=10)) == 10
    assert cost.invocations_per_second(Config(events_per_second=1000)) == 16
    assert cost.invocations_per_second(Config(events_per_second=10_000)) == 16
    assert cost.invocations_per_second(Config(events_per_second=100_000)) == 100  # batches of 1,000


def test_entity_operations_are_distinct_keys_per_invocation() -> None:
    # 200 keys over 4 partitions: at most 50 distinct keys per invocation.
    assert cost.entity_ops_per_second(Config(events_per_second=1000)) == 16 * 50
    assert cost.entity_ops_per_second(Config(events_per_second=10)) == 10  # one event per invocation
    assert cost.entity_ops_per_second(Config(events_per_second=1000, state=False)) == 0


@pytest.mark.parametrize(
    ("config", "units"),
    [
        (Config(events_per_second=0), 1),
        (Config(events_per_second=1000), 1),
        (Config(events_per_second=1500), 2),  # 1,000 events/s per TU
        (Config(events_per_second=900, event_bytes=2500), 3),  # 2.25 MB/s, 1 MB/s per TU
        (Config(events_per_second=0, throughput_units=4), 4),
    ],
)
def test_throughput_units(config: Config, units: int) -> None:
    assert cost.throughput_units(config) == units


def test_idle_without_timers_is_one_throughput_unit() -> None:
    idle = monthly_cost(Config(timers=0))
    assert idle.total == pytest.approx(730 * _price("eventhubs_tu_hour")) == pytest.approx(21.90)
    assert idle.dominant() == "Event Hubs throughput units"


def test_idle_timers_cost_executions_beyond_the_free_grant_and_their_logs() -> None:
    idle = monthly_cost(Config(timer_period_s=10))
    runs = 4 * MONTH / 10  # four timers every 10 s (the code's local default)
    assert idle.lines["Functions executions"] == pytest.approx((runs - 250_000) / 1e6 * 0.40)
    gb_s = runs * 0.050 * 2  # 50 ms at 2 GB each
    assert idle.lines["Functions execution time"] == pytest.approx((gb_s - 100_000) * 0.000026)
    assert idle.lines["Application Insights logs"] == pytest.approx(runs * 1.0 / 1e6 * 2.30)
    once_a_minute = monthly_cost(Config())  # Terraform's schedule: 175,200 runs, inside the free grants
    assert once_a_minute.lines["Functions executions"] == once_a_minute.lines["Functions execution time"] == 0


def test_generators_arrive_in_bursts_of_one_tick() -> None:
    config = cost.with_generators(Config(), 60)
    assert config.events_per_second == pytest.approx(305 / 60)
    assert cost.batch_size(config) == pytest.approx(305 / 16)  # a tick's events over 16 partitions
    assert cost.invocations_per_second(config) == pytest.approx(16 / 60)


def test_docs_show_the_current_table() -> None:
    """docs/cost.md carries the default table as tools.cost prints it; rerun and paste when prices change."""
    doc = (ROOT / "docs" / "cost.md").read_text()
    assert cost.table([10, 1000, 10_000], Config()) in doc


def test_zone_redundancy_bills_two_always_ready_instances_per_scale_group() -> None:
    lines = monthly_cost(Config(zone_redundant=True)).lines
    assert lines["Functions always ready (zone redundancy)"] == pytest.approx(2 * 10 * 2.0 * MONTH * 0.000004)
    assert lines["Functions always ready (zone redundancy)"] == pytest.approx(420.48)
    assert monthly_cost(Config()).lines["Functions always ready (zone redundancy)"] == 0


def test_ingress_lake_writes_and_capacity_scale_with_events_and_files() -> None:
    config = Config(events_per_second=10, state=False)
    lines = monthly_cost(config).lines
    events = 10 * MONTH
    assert lines["Event Hubs ingress"] == pytest.approx(events / 1e6 * 0.028)
    files = 10 * MONTH  # one file per invocation, one event per invocation at this rate
    assert lines["Lake writes"] == pytest.approx(files * 4 / 1e4 * 0.065)
    assert lines["Lake capacity (raw and curated)"] == pytest.approx(2 * events * 80 / 1e9 * 0.019)
    curated = 4 * 730 * 2  # a data file and a Delta log entry per source and hour
    assert lines["Lake compaction (raw reads, curated writes)"] == pytest.approx(
        files * 2 / 1e4 * 0.0052 + curated * 4 / 1e4 * 0.065
    )
    zrs = monthly_cost(replace(config, zone_redundant=True)).lines
    assert zrs["Lake writes"] == pytest.approx(lines["Lake writes"] * 1.25)


def test_instance_time_is_capped_by_overlap_once_executions_overlap() -> None:
    # 10 ev/s: invocations never overlap, the wall time of each is billed.
    quiet = Config(events_per_second=10, state=False, timers=0)
    assert cost.instance_seconds(quiet) == pytest.approx(10 * MONTH * (0.040 + 25e-6))
    # 1,000 ev/s with state: entity operations overlap on one instance, billed as one busy instance.
    busy = Config(events_per_second=1000, timers=0)
    kafka = 16 * MONTH * 0.040 + 1000 * MONTH * 25e-6
    assert cost.instance_seconds(busy) == pytest.approx(kafka + MONTH)


def test_per_million_events_is_the_cost_above_idle_per_event() -> None:
    config = Config(events_per_second=1000)
    expected = (monthly_cost(config).total - monthly_cost(Config()).total) / (1000 * MONTH) * 1e6
    assert cost.per_million_events(config) == pytest.approx(expected)
    assert cost.per_million_events(Config()) == 0


def test_best_lever_is_the_largest_single_cut() -> None:
    config = Config(events_per_second=1000)
    name, total = cost.best_lever(config)
    assert total < monthly_cost(config).total
    for change in cost.LEVERS.values():
        assert monthly_cost(replace(config, **change)).total >= total  # type: ignore[arg-type]
    assert total == pytest.approx(monthly_cost(replace(config, **cost.LEVERS[name])).total)  # type: ignore[arg-type]


def test_cli_prints_the_three_rate_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main([]) == 0
    out = capsys.readouterr().out
    assert "| USD per month | idle | 10 ev/s | 1,000 ev/s | 10,000 ev/s |" in out
    assert out.count("dominates") == 4 and "per 1M events" in out
    assert cost.main(["--prices"]) == 0
    assert "azure.microsoft.com/pricing/details/event-hubs" in capsys.readouterr().out
