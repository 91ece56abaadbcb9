"""(e) The workbook and alerts query exactly the metrics the code emits (shared/metric_names.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import hcl2

from shared import metric_names
from shared.metric_names import METRICS
from tests.terraform.conftest import TERRAFORM_DIR, terraform_output

METRIC = re.compile(r"streamingpoc(?:\.[a-z0-9_]+)+")
APPI_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test"
    "/providers/Microsoft.Insights/components/appi-test"
)
DIMENSION = re.compile(r"customDimensions\.([A-Za-z0-9_]+)")


def _all_text() -> str:
    return "\n".join(path.read_text() for path in sorted(TERRAFORM_DIR.rglob("*.tf")))


def _locals(file: str) -> dict[str, object]:
    merged: dict[str, object] = {}
    for block in hcl2.loads((TERRAFORM_DIR / file).read_text()).get("locals", []):
        merged.update(block)
    return merged


def test_every_metric_name_used_is_emitted_by_the_code() -> None:
    used = set(METRIC.findall(_all_text()))
    assert used, "no metric names found"
    assert sorted(used - set(METRICS)) == []


def test_metric_map_mirrors_metric_names_module() -> None:
    """local.metrics has one entry per constant of shared/metric_names.py, same name."""
    metrics = _locals("main.workbook.tf")["metrics"]
    assert isinstance(metrics, dict)
    terraform = {key.upper(): value.strip('"') for key, value in metrics.items() if not key.startswith("__")}
    code = {name: value for name, value in vars(metric_names).items() if name.isupper() and isinstance(value, str)}
    assert terraform == code


def test_queries_use_only_the_dimensions_the_code_records() -> None:
    assert set(DIMENSION.findall(_all_text())) <= {"source", "reason", "error_class", "kind"}


def test_workbook_shows_what_the_issue_asks_for() -> None:
    text = (TERRAFORM_DIR / "main.workbook.tf").read_text()
    queries = _locals("main.workbook.tf")["workbook_queries"]
    assert isinstance(queries, dict)
    expected = {
        "throughput": [metric_names.EVENTS_RECEIVED, metric_names.EVENTS_LANDED],
        "failures": ["exceptions", "dcount(operation_Id)"],
        "dead_letters_by_reason": [metric_names.EVENTS_DEADLETTERED, "customDimensions.reason"],
        "batch_latency": [metric_names.BATCH_DURATION],
        "lake_writes": [metric_names.LAKE_FILES_WRITTEN, metric_names.LAKE_BYTES_WRITTEN],
    }
    names = {v: k for k, v in _locals("main.workbook.tf")["metrics"].items()}  # type: ignore[union-attr]
    for panel, needles in expected.items():
        query = str(queries[panel])
        for needle in needles:
            key = names.get(f'"{needle}"')
            assert needle in query or (key and f"local.metrics.{key}" in query), (panel, needle)
        assert f'query = "{panel}"' in text, f"panel {panel} is not on the workbook"
    assert re.search(r"data_json\s*=\s*jsonencode\(local\.workbook\)", text)
    assert "customMetrics" in text and "by source" in text


# Which sources a join keeps of the metric's side (left: sources with a landed batch) and the failures' side.
JOIN_KEEPS = {
    "inner": lambda left, right: left & right,
    "leftouter": lambda left, right: left,
    "rightouter": lambda left, right: right,
    "fullouter": lambda left, right: left | right,
}


def _failed_invocations() -> str:
    queries = _locals("main.workbook.tf")["workbook_queries"]
    assert isinstance(queries, dict)
    return str(queries["failed_invocations"])


def test_a_source_whose_every_invocation_failed_stays_in_the_failed_invocations_table() -> None:
    """batch_duration, the table's count of invocations, is recorded only once a batch landed
    (shared/invocation.py): a source that only fails has failures and no batch_duration row."""
    query = _failed_invocations()
    join = re.search(r"\| join kind=(\w+) failed on source\n", query)
    assert join, query
    assert JOIN_KEEPS[join.group(1)]({"clickstream"}, {"clickstream", "mobile"}) == {"clickstream", "mobile"}
    after_join = query[join.end() : query.index("failure_rate =")]
    # A failures-only row has its key in source1 (the right side's) and no invocations: both filled in before
    # the rate, else the row has no name and a blank rate.
    for filled in (
        "source = coalesce(source, source1)",
        "invocations = coalesce(invocations, ",
        "failed = coalesce(failed, ",
    ):
        assert filled in after_join, filled


def _failure_rate(query: str, invocations: int, failed: int) -> float:
    """The query's failure_rate expression evaluated for one row (KQL and Python agree on this arithmetic)."""
    match = re.search(r"failure_rate = round\((.+), 2\)", query)
    assert match, query
    names = {"invocations": invocations, "failed": failed}
    return float(eval(match.group(1), {"__builtins__": {}, "coalesce": lambda value, _: value}, names))


def test_the_failure_rate_is_the_share_of_all_invocations_that_failed() -> None:
    query = _failed_invocations()
    assert _failure_rate(query, invocations=0, failed=3) == 100.0  # every invocation failed
    assert _failure_rate(query, invocations=10, failed=30) == 75.0  # not 300%: invocations counts only successes
    assert _failure_rate(query, invocations=10, failed=0) == 0.0


def test_alerts_cover_failures_dead_letters_and_unprocessed_events() -> None:
    text = (TERRAFORM_DIR / "main.alerts.tf").read_text()
    assert 'exceptions\n      | where operation_Name != ""' in text
    assert "local.metrics.events_deadlettered" in text and "local.metrics.events_received" in text
    assert '"IncomingMessages"' in text and '"OutgoingMessages"' in text


def test_rendered_workbook_queries_use_emitted_metrics(tmp_path: Path) -> None:
    """Render the workbook JSON with Terraform itself (the locals of main.workbook.tf, with a
    stand-in Application Insights ID) and check the KQL as the portal will run it."""
    text = (TERRAFORM_DIR / "main.workbook.tf").read_text()
    locals_only = text[: text.index('resource "azurerm_application_insights_workbook"')]
    assert "azurerm_application_insights.this.id" in locals_only
    (tmp_path / "workbook.tf").write_text(
        locals_only.replace("azurerm_application_insights.this.id", f'"{APPI_ID}"')
        + '\noutput "workbook" {\n  value = jsonencode(local.workbook)\n}\n'
    )
    workbook = json.loads(terraform_output(tmp_path)["workbook"])
    assert workbook["version"] == "Notebook/1.0" and workbook["fallbackResourceIds"] == [APPI_ID]
    panels = [item for item in workbook["items"] if item["type"] == 3]
    assert len(panels) >= 8
    used: set[str] = set()
    for panel in panels:
        content = panel["content"]
        assert content["timeContextFromParameter"] == "TimeRange" and content["query"].strip(), panel["name"]
        assert "${" not in content["query"], panel["name"]
        used |= set(METRIC.findall(content["query"]))
    assert used <= set(METRICS)
    required = {
        metric_names.EVENTS_RECEIVED,
        metric_names.EVENTS_LANDED,
        metric_names.EVENTS_DEADLETTERED,
        metric_names.BATCH_DURATION,
        metric_names.LAKE_FILES_WRITTEN,
        metric_names.LAKE_BYTES_WRITTEN,
    }
    assert required <= used, sorted(required - used)
