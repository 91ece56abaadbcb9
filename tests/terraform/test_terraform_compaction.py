"""Compaction in Terraform: its app settings, the raw retention rule, its workbook panels and lag alert."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import pytest

from shared import metric_names
from shared.settings import load_settings, load_source_settings
from shared.sources import SOURCES
from tests.terraform.conftest import TERRAFORM_DIR, TerraformFailed, harness_dir, terraform_output

COMPACTION_METRICS = {
    metric_names.COMPACTION_HOURS,
    metric_names.COMPACTION_ROWS,
    metric_names.COMPACTION_FILES_IN,
    metric_names.COMPACTION_FILES_OUT,
    metric_names.COMPACTION_LAG,
}


def test_azure_compacts_closed_hours_only_on_the_codes_default_schedule(evaluated: dict[str, Any]) -> None:
    settings = evaluated["app_settings"]
    model = load_settings(settings)
    assert (model.compaction_open_hours, model.compaction_grace_minutes, model.compaction_target_file_mb) == (
        False,
        15,
        128,
    )
    for source in SOURCES:
        assert load_source_settings(source, settings).compaction_schedule == "0 */15 * * * *"


def test_raw_files_are_deleted_after_the_retention_and_curated_is_left_alone() -> None:
    text = (TERRAFORM_DIR / "main.lake.tf").read_text()
    assert 'rule.key == "raw" ? var.raw_retention_days : var.lake_delete_after_days' in text
    assert "curated" not in re.findall(r"toset\(\[([^\]]*)\]\)", text)[0]
    (variable,) = [
        v['"raw_retention_days"']
        for v in hcl2.loads((TERRAFORM_DIR / "variables.tf").read_text())["variable"]
        if '"raw_retention_days"' in v
    ]
    assert variable["default"] == 7


def test_raw_retention_must_stay_below_the_delta_log_retention(tmp_path: Path) -> None:
    with pytest.raises(TerraformFailed) as failure:
        terraform_output(harness_dir(tmp_path), vars={"raw_retention_days": "30"})
    assert "below the curated tables' 30-day Delta log retention" in " ".join(str(failure.value).split())


def test_workbook_shows_every_compaction_metric() -> None:
    text = (TERRAFORM_DIR / "main.workbook.tf").read_text()
    (locals_block,) = [block for block in hcl2.loads(text)["locals"] if "workbook_queries" in block]
    names = {value.strip('"'): key for key, value in locals_block["metrics"].items() if not key.startswith("__")}
    queries = str(locals_block["workbook_queries"]["compaction"]) + str(
        locals_block["workbook_queries"]["compaction_lag"]
    )
    for metric in COMPACTION_METRICS:
        assert f"local.metrics.{names[metric]}" in queries, metric
    assert 'query = "compaction"' in text and 'query = "compaction_lag"' in text


def test_one_alert_on_compaction_lag_over_two_hours() -> None:
    text = (TERRAFORM_DIR / "main.alerts.tf").read_text()
    block = text[text.index('"compaction_lag"') :]
    block = block[: block.index("\nresource ")] if "\nresource " in block else block
    assert (
        "local.metrics.compaction_lag" in block
        and "threshold               = var.compaction_lag_alert_minutes" in block
    )
    assert "lag_minutes = max(valueMax) / 60.0" in block  # the metric is in seconds
    variables = hcl2.loads((TERRAFORM_DIR / "variables.tf").read_text())["variable"]
    (threshold,) = [v['"compaction_lag_alert_minutes"'] for v in variables if '"compaction_lag_alert_minutes"' in v]
    assert threshold["default"] == 120


def test_the_compaction_lag_alert_takes_a_source_that_reports_nothing_for_not_running(tmp_path: Path) -> None:
    """Rendered by Terraform (the alert's query with the variables' and locals' own values): every source is
    expected, and one with no lag reported in the window gets a lag past any threshold the variables allow."""
    alerts = (TERRAFORM_DIR / "main.alerts.tf").read_text()
    block = alerts[alerts.index('"compaction_lag" {') :]
    query = block[block.index("<<-KQL") : block.index("    KQL\n") + len("    KQL\n")]
    (not_running,) = re.findall(r"compaction_not_running_minutes = (\d+)", alerts)
    workbook = (TERRAFORM_DIR / "main.workbook.tf").read_text()
    directory = harness_dir(tmp_path)
    locals_only = workbook[: workbook.index('resource "azurerm_application_insights_workbook"')]
    (directory / "workbook.tf").write_text(locals_only.replace("azurerm_application_insights.this.id", '"appi"'))
    (directory / "alert.tf").write_text(
        f"locals {{\n  compaction_not_running_minutes = {not_running}\n}}\n"
        f'output "compaction_lag_query" {{\n  value = {query}}}\n'
    )
    rendered = terraform_output(directory)["compaction_lag_query"]
    assert 'datatable(source: string) ["clickstream", "mobile", "orders", "sensors", "users"];' in rendered
    assert f'where name == "{metric_names.COMPACTION_LAG}"' in rendered
    assert "join kind=leftouter reported on source" in rendered
    assert f"lag_minutes = coalesce(lag_minutes, real({not_running}))" in rendered
    assert int(not_running) > 29 * 24 * 60 / 2, "past the largest compaction_lag_alert_minutes the variables allow"


def _compaction_schedule_refusal(tmp_path: Path, schedule: str) -> str | None:
    """The plan's complaint about ``schedule`` as clickstream's compaction_schedule; None when it is taken."""
    entries = {name: "{}" for name in ("clickstream", "mobile", "sensors", "users")}
    entries["clickstream"] = f'{{ compaction_schedule = "{schedule}" }}'
    sources = "{ " + ", ".join(f"{name} = {entry}" for name, entry in entries.items()) + " }"
    try:
        terraform_output(harness_dir(tmp_path), vars={"sources": sources})
    except TerraformFailed as failure:
        return " ".join(str(failure).split())
    return None


@pytest.mark.parametrize(
    "schedule",
    [
        "0 */15 * * * *",
        "0 0,30 * * * *",
        "0 10/20 * * * *",
        "*/10 */5 * * * *",
        "0 5-55/25 * * * *",
        "0 * */1 * * *",
        "0 */15 0-23 * * *",  # each other field spelled as its whole range (a review: these were refused)
        "0 */15 * 1-31 * *",
        "0 */15 * * Jan-Dec *",
        "0 */15 * * * SUN-SAT",
        "0 */15 * * * 0-6/1",
    ],
)
def test_a_compaction_schedule_that_runs_every_half_hour_is_taken(tmp_path: Path, schedule: str) -> None:
    assert _compaction_schedule_refusal(tmp_path, schedule) is None


@pytest.mark.parametrize(
    "schedule",
    [
        "0 0 * * * *",  # hourly: a run reported late leaves an hour without one
        "0 0,40 * * * *",  # 40 minutes from 0 to 40
        "0 0-10 * * * *",  # 50 minutes from 10 to the next hour's 0
        "0 45/10 * * * *",  # 45, 55: 50 minutes to the next hour's 45
        "0 */15 8-18 * * *",  # office hours only: the alert fires every night
        "0 */15 * * * 1-5",  # weekdays only
        "0 */15 * 1 * *",  # the first of the month only
    ],
)
def test_a_compaction_schedule_the_lag_alert_would_take_for_not_running_is_refused(
    tmp_path: Path, schedule: str
) -> None:
    """The docs said to keep compaction_schedule at least every 30 minutes; an hourly one passed the plan, and the
    compaction-lag alert (no run reported in its last hour: not running) then fired for a healthy source."""
    refusal = _compaction_schedule_refusal(tmp_path, schedule)
    assert refusal is not None and "compaction_schedule must run compact_<source> every hour of every day" in refusal


def _alert(name: str) -> dict[str, Any]:
    resources = hcl2.loads((TERRAFORM_DIR / "main.alerts.tf").read_text())["resource"]
    (found,) = [body[f'"{name}"'] for resource in resources for body in resource.values() if f'"{name}"' in body]
    return dict(found)


def test_any_compaction_failure_in_the_hour_fires_its_own_alert() -> None:
    """compact_<source> runs every 15 minutes without retries: it never reaches the function-failures rule's 5
    failures in 15 minutes, and a run that quarantines a file fails once with the lag back at 0 (a review found no
    alert for it, where the docs promised one)."""
    rule = _alert("compaction_failures")
    (criteria,) = rule["criteria"]
    assert 'where operation_Name startswith "compact_"' in criteria["query"]
    assert (criteria["operator"], criteria["threshold"], rule["window_duration"]) == ('"GreaterThan"', 0, '"PT1H"')
    assert rule["evaluation_frequency"] == '"PT15M"'  # compaction's own schedule: each run is seen


def test_no_unprocessed_alert_for_a_source_whose_processing_is_stopped_on_purpose() -> None:
    """processing_enabled = false is what docs/deploy.md prescribes for a migration; the severity-1 alert fired
    throughout it."""
    rule = _alert("eventhubs_unprocessed")
    assert "try(source.processing_enabled, true)" in rule["for_each"], rule["for_each"]
