"""Durable Functions in Terraform.

- The Durable Task Scheduler option (issue 19, item 5): azapi resources whose bodies match the
  Microsoft.DurableTask ARM reference, the app's role, the app settings it needs, and the default
  backend being the one tools.cost chooses.
- On Flex Consumption, the optional always-ready instance of the `durable` group (issue 22):
  Microsoft advises one always-ready instance for the `durable` scale group; it is billed around
  the clock, so it is a variable, off by default (docs/deploy.md gives the cost). The block itself
  is checked against the azurerm schema by test_terraform_schema.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import pytest

from shared.settings import PLATFORM_SETTINGS, app_setting_names
from shared.sources import SOURCES
from tests.conftest import ROOT
from tests.terraform.conftest import TERRAFORM_DIR, TerraformFailed, harness_dir, terraform_output
from tests.terraform.test_terraform_deploy_defaults import _variables
from tests.terraform.test_terraform_settings import host_settings
from tools import cost

TERRAFORM = ROOT / "terraform"
# Microsoft.DurableTask REST API 2025-11-01: schedulers take properties.ipAllowlist (required) and
# properties.sku {name: Consumption | Dedicated, capacity for Dedicated}; task hubs have no settable property.
API_VERSION = "2025-11-01"
SKU_NAMES = {"Consumption", "Dedicated"}
DATA_CONTRIBUTOR = "Durable Task Data Contributor"


def _plain(value: Any) -> Any:
    """python-hcl2 keeps the quotes of strings and keys; the checks compare plain values."""
    if isinstance(value, dict):
        return {str(k).strip('"'): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value.strip('"') if isinstance(value, str) else value


def durable() -> dict[str, Any]:
    with (TERRAFORM / "main.durable.tf").open() as handle:
        document = _plain(hcl2.load(handle))
    return {
        f"{kind}.{name}": body
        for block in document["resource"]
        for kind, named in block.items()
        for name, body in named.items()
    }


def test_azapi_is_pinned_as_agreed() -> None:
    text = (TERRAFORM / "terraform.tf").read_text()
    assert 'azapi = { source = "Azure/azapi", version = "~> 2.8" }' in text


def test_scheduler_and_task_hub_bodies_match_the_arm_reference() -> None:
    resources = durable()
    scheduler = resources["azapi_resource.durable_task_scheduler"]
    assert scheduler["type"] == f"Microsoft.DurableTask/schedulers@{API_VERSION}"
    properties = scheduler["body"]["properties"]
    assert set(properties) == {"ipAllowlist", "sku"}
    text = (TERRAFORM / "main.durable.tf").read_text()
    skus = set(re.findall(r'name = "(\w+)"', text)) & SKU_NAMES
    assert skus == SKU_NAMES and "capacity = var.dts_capacity_units" in text
    hub = resources["azapi_resource.durable_task_hub"]
    assert hub["type"] == f"Microsoft.DurableTask/schedulers/taskHubs@{API_VERSION}"
    assert hub["body"] == {"properties": {}}


def test_the_apps_identity_gets_the_data_role_on_its_task_hub_only() -> None:
    """On the scheduler the role would reach every task hub in it; the app uses one (its hubName setting)."""
    resources = durable()
    role = resources["azurerm_role_assignment.durable_task_data_contributor"]
    assert role["role_definition_name"] == DATA_CONTRIBUTOR
    assert resources["azapi_resource.durable_task_hub"]["name"] == "${local.durable_task_hub_name}"
    assert role["scope"] == "${azapi_resource.durable_task_hub[each.key].id}"
    assert "azurerm_function_app_flex_consumption.this.identity[0].principal_id" in role["principal_id"]


DTS_SETTINGS = {
    "AzureFunctionsJobHost__extensions__durableTask__storageProvider__type",
    "AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName",
    "AzureFunctionsJobHost__extensions__durableTask__hubName",
    "DURABLE_TASK_SCHEDULER_CONNECTION_STRING",
}


@pytest.mark.parametrize("backend", ["dts_consumption", "dts_dedicated"])
def test_choosing_dts_reaches_the_apps_settings_by_identity(tmp_path: Path, backend: str) -> None:
    """The settings the app ends with (the module's map, PUT whole by main.functionapp.tf) switch the
    storage provider to the scheduler, connected by the app's identity, and only names the host reads."""
    settings = terraform_output(harness_dir(tmp_path), vars={"durable_backend": backend})["app_settings"]
    assert set(settings) >= DTS_SETTINGS
    assert settings["AzureFunctionsJobHost__extensions__durableTask__storageProvider__type"] == "azureManaged"
    named = settings["AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName"]
    assert settings[named] == "Endpoint=https://dts-test-abcd.westeurope.durabletask.io;Authentication=ManagedIdentity"
    assert settings["AzureFunctionsJobHost__extensions__durableTask__hubName"] == "streamingpoc"
    assert not [name for name, value in settings.items() if "AccountKey" in value]
    code = set(app_setting_names(list(SOURCES)))
    assert sorted(set(settings) - code - host_settings(list(SOURCES))) == []
    assert DTS_SETTINGS <= PLATFORM_SETTINGS


def test_the_azure_storage_backend_sets_none_of_them(evaluated: dict[str, Any]) -> None:
    assert not DTS_SETTINGS & set(evaluated["app_settings"])


def test_the_root_passes_the_schedulers_endpoint_and_hub_to_the_settings() -> None:
    (module,) = hcl2.loads((TERRAFORM_DIR / "main.functionapp.tf").read_text())["module"]
    assert module['"app_settings"']["durable_task_scheduler"] == "${local.durable_task_scheduler_settings}"
    text = re.sub(r"\s+", " ", (TERRAFORM / "main.durable.tf").read_text())
    assert (
        'durable_task_scheduler_settings = var.durable_backend == "azure_storage" ? null : { '
        'endpoint = azapi_resource.durable_task_scheduler["this"].output.properties.endpoint '
        "task_hub = local.durable_task_hub_name }"
    ) in text
    assert "name = local.durable_task_hub_name parent_id = azapi_resource.durable_task_scheduler[each.key].id" in text
    (action,) = [
        block['"azapi_resource_action"']['"app_settings"']
        for block in hcl2.loads((TERRAFORM_DIR / "main.functionapp.tf").read_text())["resource"]
        if '"azapi_resource_action"' in block
    ]
    assert "${azurerm_role_assignment.durable_task_data_contributor}" in action["depends_on"]


def test_the_default_backend_is_the_one_the_cost_model_chooses() -> None:
    variables = (TERRAFORM / "variables.tf").read_text()
    default = re.search(r'variable "durable_backend" \{.*?default\s*=\s*"(\w+)"', variables, re.DOTALL)
    assert default
    choice = cost.backend_choice(cost.load_results(), cost.deployed())
    assert default.group(1) == choice["default"] == cost.deployed().backend


def test_the_durable_group_gets_always_ready_instances_only_when_asked() -> None:
    assert _variables()["durable_always_ready_instances"] == 0
    block = re.search(
        r'dynamic "always_ready" \{\s*for_each = var\.durable_always_ready_instances > 0 \? '
        r"\[var\.durable_always_ready_instances\] : \[\]\s*"
        r'content \{\s*name\s*= "durable"\s*instance_count = always_ready\.value\s*\}',
        (TERRAFORM_DIR / "main.functionapp.tf").read_text(),
    )
    assert block, "main.functionapp.tf no longer maps durable_always_ready_instances to the durable group"


def test_one_instance_is_accepted(tmp_path: Path) -> None:
    terraform_output(harness_dir(tmp_path), vars={"durable_always_ready_instances": "1"})


@pytest.mark.parametrize(("value", "message"), [("1.5", "whole number"), ("41", "function_maximum_instance_count")])
def test_impossible_counts_are_refused(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(TerraformFailed) as failure:
        terraform_output(harness_dir(tmp_path), vars={"durable_always_ready_instances": value})
    assert message in str(failure.value)
