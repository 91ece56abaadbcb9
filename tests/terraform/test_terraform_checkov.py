"""(c) checkov over terraform/: zero failed checks; every skip sits in its resource with a reason."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from tests.terraform.conftest import TERRAFORM_DIR
from tests.terraform.hcl_check import strip_comment

SKIP = re.compile(r"#checkov:skip=(?P<id>CKV2?_[A-Z]+_\d+)(?P<reason>:.*)?$")


@pytest.fixture(scope="module")
def report(checkov: list[str]) -> dict[str, Any]:
    result = subprocess.run(
        [
            *checkov,
            "--directory",
            str(TERRAFORM_DIR),
            "--framework",
            "terraform",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]  # 1 = some check failed
    data = json.loads(result.stdout)
    return dict(data[0] if isinstance(data, list) else data)


def test_checkov_has_no_failed_checks(report: dict[str, Any]) -> None:
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']}:{check['file_line_range'][0]}): "
        f"{check['check_name']}"
        for check in report["results"]["failed_checks"]
    ]
    assert failed == [], "\n".join(failed)
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] >= 25, report["summary"]


def test_every_skip_has_a_reason(report: dict[str, Any]) -> None:
    for check in report["results"]["skipped_checks"]:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason.strip()) >= 30, (check["check_id"], check["resource"])


def test_skip_comments_are_inside_resources_with_reasons() -> None:
    """checkov honours a skip only inside the resource it covers; a skip without reason is not allowed."""
    for path in sorted(TERRAFORM_DIR.rglob("*.tf")):
        depth = 0
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            found = SKIP.search(line)
            if found:
                assert depth >= 1, f"{path.name}:{number}: skip outside a resource"
                assert found["reason"] and len(found["reason"]) > 30, f"{path.name}:{number}: skip without a reason"
            code = strip_comment(line)
            depth += code.count("{") - code.count("}")


def test_the_lake_containers_logging_skip_says_what_is_logged_by_default() -> None:
    """CKV2_AZURE_21's skip on the lake's file system points at the diagnostic setting; that setting keeps
    var.lake_diagnostic_log_categories, deletes only by default, so the reason must not claim reads and writes
    are logged."""
    import hcl2

    (block,) = [
        b
        for b in hcl2.loads((TERRAFORM_DIR / "variables.tf").read_text())["variable"]
        if '"lake_diagnostic_log_categories"' in b
    ]
    defaults = [category.strip('"') for category in block['"lake_diagnostic_log_categories"']["default"]]
    text = (TERRAFORM_DIR / "main.lake.tf").read_text()
    container = text[text.index('resource "azurerm_storage_container" "lake"') :]
    (reason,) = [m["reason"] for m in map(SKIP.search, container.splitlines()) if m and m["id"] == "CKV2_AZURE_21"]
    assert defaults == ["StorageDelete"]
    assert "lake_diagnostic_log_categories" in reason, reason
    assert "reads and writes are logged" not in reason, reason
    assert "deletes only" in reason, reason
