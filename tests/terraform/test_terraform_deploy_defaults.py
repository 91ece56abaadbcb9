"""The deployment's defaults: cheap and identity-based.

- The defaults are the proof of concept (no zone redundancy, LRS, one throughput unit, no
  auto-inflate); terraform/production.tfvars.example is the production-leaning profile.
- Host storage and Application Insights go by the app's identity, with the roles Microsoft
  documents for them (how the app's settings avoid a plain ``AzureWebJobsStorage``:
  test_terraform_host_storage.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2

from tests.terraform.conftest import TERRAFORM_DIR, harness_dir, terraform_output


def _variables() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for block in hcl2.loads((TERRAFORM_DIR / "variables.tf").read_text())["variable"]:
        for name, body in block.items():
            default = body.get("default")
            found[name.strip('"')] = default.strip('"') if isinstance(default, str) else default
    return found


def test_defaults_are_the_cheap_proof_of_concept() -> None:
    defaults = _variables()
    assert defaults["zone_redundancy_enabled"] is False, "zone redundancy bills ~20 always-ready instances"
    assert defaults["storage_replication_type"] == "LRS"
    assert defaults["eventhubs_sku"] == "Standard" and defaults["eventhubs_capacity"] == 1
    assert defaults["eventhubs_maximum_throughput_units"] == 0
    assert defaults["kafka_sas_scope"] == "event_hub"


def test_production_profile_is_valid_and_zone_redundant(tmp_path: Path) -> None:
    values = terraform_output(harness_dir(tmp_path), var_files=[str(TERRAFORM_DIR / "production.tfvars.example")])
    assert values["sources"]["clickstream"]["lag_threshold"] == 5000
    assert values["app_settings"]["CLICKSTREAM_LAG_THRESHOLD"] == "5000"
    assert values["sources"]["users"]["partition_count"] == 2
    text = (TERRAFORM_DIR / "production.tfvars.example").read_text()
    assert re.search(r"^zone_redundancy_enabled\s*=\s*true", text, re.MULTILINE)
    assert re.search(r'^storage_replication_type\s*=\s*"ZRS"', text, re.MULTILINE)


def test_docs_tell_how_to_check_the_host_after_deploy() -> None:
    deploy = (TERRAFORM_DIR.parent / "docs" / "deploy.md").read_text()
    assert "/admin/host/status" in deploy and '"Running"' in deploy


def _roles() -> str:
    return (TERRAFORM_DIR / "main.roles.tf").read_text()


def test_host_storage_role_is_blob_data_owner_as_documented() -> None:
    pattern = r"host_blob_data = \{\s*scope = azurerm_storage_account\.host\.id\s*role\s*= \"([^\"]+)\""
    found = re.search(pattern, _roles())
    assert found and found.group(1) == "Storage Blob Data Owner"


def test_application_insights_takes_entra_id_only(evaluated: dict[str, Any]) -> None:
    monitoring = (TERRAFORM_DIR / "main.monitoring.tf").read_text()
    assert re.search(r"local_authentication_disabled = true", monitoring)
    assert re.search(
        r"scope = azurerm_application_insights\.this\.id\s*role\s*= \"Monitoring Metrics Publisher\"", _roles()
    )
    assert evaluated["app_settings"]["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "Authorization=AAD"
