"""Logs that cost what they are worth (issue 19): host.json writes no request row for a success, still logs
failures, and every alert and workbook query under terraform/ reads only telemetry that host.json keeps."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import ROOT
from tools.cost import LEVELS, deployed, level_of

TERRAFORM = ROOT / "terraform"
# What each Application Insights table holds and which host.json category decides whether rows get there.
# customMetrics here are the code's OpenTelemetry metrics (shared/telemetry.py), which host.json's log
# levels do not filter; Host.Aggregator's would be customMetrics too, and no query reads those.
TABLE_CATEGORY = {
    "requests": ("Host.Results", "information"),  # a success's at Information (dropped); a failure's at Error
    "exceptions": ("Function.process_clickstream", "error"),  # a failed execution's exception, at Error
    "traces": ("Function.process_clickstream.User", "warning"),  # kept at the category's level and above
}
TABLES = re.compile(r"(?m)^\s*(?:let\s+\w+\s*=\s*)?(requests|exceptions|traces|customMetrics|dependencies)\b")


def queries() -> dict[str, str]:
    """Every KQL text under terraform/ (alert rules and workbook queries), by file and position."""
    found = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        for index, match in enumerate(re.finditer(r"<<-KQL\n(.*?)\n\s*KQL", path.read_text(), re.DOTALL)):
            found[f"{path.name}#{index}"] = match.group(1)
    return found


def dropped_tables(query: str) -> list[str]:
    """Tables a query reads that host.json keeps nothing (or not enough) of."""
    config = deployed()
    dropped = []
    for table in TABLES.findall(query):
        if table not in TABLE_CATEGORY:
            continue
        category, written_at = TABLE_CATEGORY[table]
        if level_of(config, category) > LEVELS[written_at]:
            dropped.append(table)
        elif table == "traces" and "severityLevel" not in query:
            dropped.append("traces without a severityLevel filter (only warnings and errors are kept)")
    return dropped


def test_successful_executions_write_no_request_rows() -> None:
    assert level_of(deployed(), "Host.Results") > LEVELS["information"]
    assert level_of(deployed(), "Function.process_mobile") > LEVELS["information"]  # no Executing/Executed traces


def test_failures_are_still_logged_and_never_sampled() -> None:
    config = deployed()
    for function in ("process_clickstream", "compact_orders", "device_activity", "generate_users"):
        assert level_of(config, f"Function.{function}") <= LEVELS["error"], function
        assert level_of(config, f"Function.{function}.User") <= LEVELS["warning"], function  # stalls, restarts
    sampling = json.loads((ROOT / "host.json").read_text())["logging"]["applicationInsights"]["samplingSettings"]
    assert "Exception" in sampling["excludedTypes"].split(";")


def test_every_alert_and_workbook_query_reads_what_host_json_keeps() -> None:
    found = queries()
    assert len(found) >= 15  # the alert rules and the workbook's panels
    problems = {name: dropped for name, query in found.items() if (dropped := dropped_tables(query))}
    assert problems == {}


def test_the_failure_alert_and_panels_count_failed_invocations_from_exceptions() -> None:
    alerts = (TERRAFORM / "main.alerts.tf").read_text()
    workbook = (TERRAFORM / "main.workbook.tf").read_text()
    assert "exceptions\n      | where operation_Name" in alerts and "dcount(operation_Id)" in alerts
    assert workbook.count("dcount(operation_Id)") >= 2


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("requests\n| where success == false", ["requests"]),
        ("traces\n| where message has 'partition waiting'", ["traces without a severityLevel filter"]),
        ("customMetrics\n| where name == 'x'", []),
    ],
)
def test_the_check_sees_queries_that_would_go_blank(query: str, expected: list[str]) -> None:
    assert [item.split(" (")[0] for item in dropped_tables(query)] == expected


def test_diagnostic_settings_send_no_platform_metrics_to_log_analytics() -> None:
    """AllMetrics/Transaction rows land in the AzureMetrics table, which no alert, workbook, tool or doc reads
    (the Event Hubs metric alerts read platform metrics from Azure Monitor): billed ingestion for nothing."""
    import hcl2

    settings = {
        f"{path.name}:{name}": body
        for path in sorted(TERRAFORM.glob("*.tf"))
        for block in hcl2.loads(path.read_text()).get("resource", [])
        for name, body in block.get('"azurerm_monitor_diagnostic_setting"', {}).items()
    }
    assert len(settings) >= 4, sorted(settings)
    assert [name for name, body in settings.items() if "enabled_metric" in body or "metric" in body] == []
    logs = {
        name for name, body in settings.items() if body.get("enabled_log") or "enabled_log" in str(body.get("dynamic"))
    }
    assert logs == set(settings), "a setting with nothing to send"
    # Readers would be a KQL query here (alerts, workbook), a tool or a doc; comments do not read.
    readers = [*queries().values()]
    readers += [path.read_text() for path in (ROOT / "tools").rglob("*.py")]
    readers += [path.read_text() for path in (ROOT / "docs").rglob("*.md")]
    assert not [text for text in readers if "AzureMetrics" in text], "something reads AzureMetrics: keep the metrics"
