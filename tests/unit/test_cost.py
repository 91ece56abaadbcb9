"""tools.cost: the model's rules on hand-made inputs, and the checked-in results' provenance."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from typing import Any

import pytest

from bench.cost import billable_seconds, deployed_mix, sha256, shaping_digest, terraform_number
from tests.conftest import ROOT
from tools import cost

RESULTS = ROOT / "bench" / "results" / "cost.json"


def test_flex_bills_at_least_a_second_per_activity_period_in_100_ms_steps() -> None:
    assert billable_seconds([(0.0, 0.05)]) == (1.0, pytest.approx(0.05), 1)
    assert billable_seconds([(0.0, 0.05), (0.5, 0.6)])[0] == pytest.approx(1.5)  # overlapping minimums merge
    assert billable_seconds([(0.0, 0.05), (5.0, 5.05)])[0] == pytest.approx(2.0)  # apart: two periods
    assert billable_seconds([(0.0, 1.23)])[0] == pytest.approx(1.3)


def test_instances_are_billed_throughout_once_executions_overlap() -> None:
    assert cost._instance_seconds(0.1, 0.2) == pytest.approx(0.1)  # one billed second every ten
    assert cost._instance_seconds(5, 0.1) == pytest.approx(1.0)  # always active: one instance
    assert cost._instance_seconds(20, 0.5) == pytest.approx(10.0)  # ten busy instances


def test_distinct_keys_and_the_fitted_key_space() -> None:
    assert cost.distinct(1000, 100_000) == pytest.approx(995.0, rel=1e-3)
    assert cost.distinct(1000, 10) == pytest.approx(10.0, rel=1e-3)
    windows = {"mobile": (5.0, 500.0), "sensors": (5.0, 800.0), "orders": (5.0, 900.0)}  # orders keeps no state
    run = {  # a 60 s run: mobile's operations fit 64 buckets, sensors' 1,024
        "seconds": 60.0,
        "invocations": {"device_activity": cost.distinct(500, 64) * 12, "sensor_stats": cost.distinct(800, 1024) * 12},
    }
    fitted = cost._fitted_keys(windows, run)
    assert set(fitted) == {"mobile", "sensors"}
    assert fitted["mobile"] == pytest.approx(64, rel=1e-3) and fitted["sensors"] == pytest.approx(1024, rel=1e-3)


def test_host_json_levels_follow_the_longest_category() -> None:
    config = cost.deployed()
    assert cost.level_of(config, "Host.Results") == cost.LEVELS["warning"]
    assert cost.level_of(config, "Function.process_mobile.User") == cost.LEVELS["warning"]


def test_json_has_the_scenarios_the_issue_asks_for(capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(["--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["measured_inputs"] == "bench/results/cost.json"
    rows = {(r["rate_ev_s"], r["state"]): r for r in document["scenarios"] if not r["config"]["differs_from_default"]}
    assert set(rows) == {(0, True), (10, True), (1000, True), (10_000, True), (1000, False)}
    for row in document["scenarios"]:
        assert isinstance(row["usd_month"], float) and isinstance(row["limits_exceeded"], list)
        assert (row["usd_per_1m_events"] is None) == (row["rate_ev_s"] == 0)
        assert row["extrapolated"] == (row["rate_ev_s"] > 1000)
        assert {"durable_backend", "instance_memory_mb", "partitions", "subscriber_interval_s"} <= set(row["config"])
    assert rows[(1000, False)]["usd_month"] < rows[(1000, True)]["usd_month"]


def test_every_price_names_its_page_and_when_it_was_read() -> None:
    for name, price in cost.PRICES.items():
        assert price.page and price.read and price.unit, name
        assert price.value is not None or "no list price" in price.read, name


def test_the_terraform_budget_default_is_the_models_recommendation() -> None:
    variables = (ROOT / "terraform" / "variables.tf").read_text()
    recommended = cost.recommended_budget(cost.load_results())
    assert f'variable "monthly_budget_usd" {{\n  type        = number\n  default     = {recommended}\n' in variables


def test_results_were_measured_with_this_host_json_and_these_sources() -> None:
    """The commit is recorded for information; what decides the counts is host.json and the files that
    shape the bench. Refresh with `python bench/cost.py` when this fails."""
    results = json.loads(RESULTS.read_text())
    assert results["host_json"]["sha256"] == sha256(ROOT / "host.json")
    assert results["shaping_sources"] == shaping_digest()
    assert results["command"].startswith("python bench/cost.py") and results["commit"]
    assert results["config"]["partitions"] == terraform_number("eventhub_partition_count")
    mix = [{"source": p.name, "events_per_minute": p.events_per_minute, "state": p.state} for p in deployed_mix()]
    assert results["config"]["mix"] == mix


def test_cli_prints_the_table() -> None:
    out = subprocess.run([sys.executable, "-m", "tools.cost"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "| **total** |" in out.stdout and "Event Hubs Capture" in out.stdout


def test_every_tools_cost_flag_the_docs_and_terraform_mention_exists() -> None:
    known = {option for action in cost.parser()._actions for option in action.option_strings}
    texts = [*(ROOT / "terraform").rglob("*.tf"), *(ROOT / "docs").glob("*.md"), ROOT / "README.md"]
    mentioned = {
        (path.relative_to(ROOT).as_posix(), flag)
        for path in texts
        for command in re.findall(r"tools\.cost((?: --?[\w-]+(?: [\w./]+)*)+)", path.read_text())
        for flag in re.findall(r"(--[\w-]+)", command)
    }
    assert sorted((where, flag) for where, flag in mentioned if flag not in known) == []


def _results_with(buckets_by_run: list[dict[str, int]], chars_per_key: dict[str, float]) -> dict[str, Any]:
    results = json.loads(RESULTS.read_text())
    template = next(
        r for r in results["runs"] if r["lake"] == "local" and r.get("state", True) and r["rate_ev_s"] == 10
    )
    results["runs"] = [dict(template, buckets=buckets) for buckets in buckets_by_run]
    results["config"] = dict(results["config"], state_stored_chars_per_key=chars_per_key, keys_per_source=100_000)
    return results


def test_large_bucket_state_on_azure_storage_pays_a_blob_per_operation() -> None:
    config = replace(cost.deployed(), backend="azure_storage")
    small = {source: 8192 for source in config.buckets}
    large = {source: 256 for source in config.buckets}
    chars = {source: 600.0 for source in config.buckets}  # 100,000 keys: 7 KB in 8,192 buckets, 234 KB in 256
    results = _results_with([small, large], chars)
    assert cost.bucket_stored_chars("mobile", replace(config, buckets=small), results) == pytest.approx(7324, 1e-3)
    on_small = cost.month(10, True, replace(config, buckets=small), results)
    on_large = cost.month(10, True, replace(config, buckets=large), results)
    assert on_small.quantities["durable_state_blob_writes"] == 0
    writes = on_large.quantities["durable_state_blob_writes"]
    assert writes == pytest.approx(on_large.quantities["entity_operations"] * cost.BLOB_WRITES_PER_LARGE_STATE)
    assert on_large.lines["Durable backend"] > 5 * on_small.lines["Durable backend"]


def test_a_row_reads_the_run_measured_with_its_key_buckets() -> None:
    config = cost.deployed()
    own = cost.default_buckets("dts_dedicated", None, config.azure_storage_buckets)
    results = _results_with([config.buckets, own], {source: 600.0 for source in own})
    results["runs"][1] = dict(results["runs"][1], entity_operations=results["runs"][0]["entity_operations"] // 2)
    on_storage = cost.load_at(10, True, config, results)
    on_dts = cost.load_at(10, True, cost.with_backend(config, "dts_dedicated"), results)
    assert on_dts.entity_ops == pytest.approx(on_storage.entity_ops / 2, rel=0.02)
    assert not on_storage.extrapolated and not on_dts.extrapolated
