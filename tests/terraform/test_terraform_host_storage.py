"""Host storage by identity only: the app ends with no plain ``AzureWebJobsStorage`` setting.

azurerm 4.x writes ``AzureWebJobsStorage`` itself for Flex Consumption apps, as a connection
string with an empty key, whatever ``storage_authentication_type`` says, on create and on every
update (provider issues #29693, #30732, #33211; read in ``ExpandSiteConfigFunctionFlexConsumptionApp``
and the resource's Update, which merges it into the settings it writes). The host prefers it to
the identity-based ``__accountName``/``__credential`` pair, even empty (azure-functions-host
#11796). So one owner writes the settings: ``azapi_resource_action.app_settings`` PUTs the whole
set (``config/appsettings`` replaces every setting) after the site is created and after every
azurerm update of it, and azurerm ignores ``app_settings``.

What is checked here, offline: the set that is PUT (the module's map, evaluated by Terraform) has
no plain ``AzureWebJobsStorage``; the wiring that makes that set the app's final one; the azapi
arguments against the azapi schema's oldest pinned version; and the azurerm version the
workaround was read against. What cannot be checked here: the calls in Azure. docs/deploy.md
says how to check the host after a deploy.
"""

from __future__ import annotations

import re
from typing import Any

import hcl2

from tests.terraform.conftest import CDKTF_PACKAGES, TERRAFORM_DIR
from tests.terraform.hcl_check import strip_comment
from tests.terraform.provider_schema import ProviderSchema

# azurerm version and storage arguments the injection was read against (provider source, 4.55).
CHECKED_AZURERM = "4.55"
CHECKED_CDKTF_PACKAGE = "@cdktf/provider-azurerm@14.23.1"
FLEX_STORAGE_ARGUMENTS = {
    "storage_access_key",
    "storage_authentication_type",
    "storage_container_endpoint",
    "storage_container_type",
    "storage_user_assigned_identity_id",
}
# azapi_resource_action's arguments in azapi v2.5.0 (docs/resources/resource_action.md at that tag), older
# than the oldest version `~> 2.8` admits (what 2.5 has, 2.8 has); the schema test checks them against 2.13.
AZAPI_2_5_RESOURCE_ACTION = {
    "type",
    "resource_id",
    "action",
    "body",
    "headers",
    "locks",
    "method",
    "query_parameters",
    "response_export_values",
    "retry",
    "sensitive_response_export_values",
    "timeouts",
    "when",
}
META = {"lifecycle", "depends_on", "count", "for_each", "provider"}


def _text(value: Any) -> str:
    return str(value).strip('"')


def _resources(kind: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(TERRAFORM_DIR.glob("*.tf")):
        for resource in hcl2.loads(path.read_text()).get("resource", []):
            for name, body in resource.get(f'"{kind}"', {}).items():
                found[name.strip('"')] = body
    return found


def test_the_settings_the_app_ends_with_have_no_plain_azurewebjobsstorage(evaluated: dict[str, Any]) -> None:
    settings: dict[str, str] = evaluated["app_settings"]
    assert "AzureWebJobsStorage" not in settings
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__accountName"] == "sttestfunc"
    assert not [name for name, value in settings.items() if "AccountKey" in value or "DefaultEndpoints" in value]


def test_azapi_puts_the_whole_module_map_and_is_the_only_owner() -> None:
    (site,) = _resources("azurerm_function_app_flex_consumption").values()
    assert "app_settings" not in site, "azurerm must not write app settings: it injects AzureWebJobsStorage"
    (lifecycle,) = site["lifecycle"]
    assert lifecycle["ignore_changes"] == ["app_settings"]

    actions = _resources("azapi_resource_action")
    assert list(actions) == ["app_settings"]
    action = actions["app_settings"]
    assert _text(action["type"]).startswith("Microsoft.Web/sites@")
    assert action["resource_id"] == "${azurerm_function_app_flex_consumption.this.id}"
    assert (_text(action["action"]), _text(action["method"])) == ("config/appsettings", "PUT")
    assert action["body"] == {"properties": "${module.app_settings.app_settings}"}, "not exactly the module's map"
    (action_lifecycle,) = action["lifecycle"]
    assert action_lifecycle["replace_triggered_by"] == ["${azurerm_function_app_flex_consumption.this}"]

    code = "\n".join(
        strip_comment(line) for path in TERRAFORM_DIR.rglob("*.tf") for line in path.read_text().splitlines()
    )
    assert len(re.findall(r"config/appsettings|Microsoft\.Web/sites/config", code)) == 1, "a second writer"
    for kind in ("azapi_resource", "azapi_update_resource"):
        for name, body in _resources(kind).items():
            assert not _text(body.get("type", "")).startswith("Microsoft.Web/sites"), f"{kind}.{name} writes the site"


def test_site_config_agrees_with_the_put_so_azurerm_sees_no_change(evaluated: dict[str, Any]) -> None:
    """azurerm reads APPLICATIONINSIGHTS_CONNECTION_STRING back into site_config: both must carry it."""
    (site,) = _resources("azurerm_function_app_flex_consumption").values()
    (site_config,) = site["site_config"]
    reference = '${module.app_settings.app_settings["APPLICATIONINSIGHTS_CONNECTION_STRING"]}'
    assert site_config["application_insights_connection_string"] == reference
    assert evaluated["app_settings"]["APPLICATIONINSIGHTS_CONNECTION_STRING"]


def test_azapi_arguments_exist_at_the_pinned_minimum() -> None:
    assert re.search(
        r'azapi = \{ source = "Azure/azapi", version = "~> 2\.8" \}', (TERRAFORM_DIR / "terraform.tf").read_text()
    )
    for name, body in _resources("azapi_resource_action").items():
        used = set(body) - META - {"__start_line__", "__end_line__", "__is_block__"}
        assert used <= AZAPI_2_5_RESOURCE_ACTION, (name, sorted(used - AZAPI_2_5_RESOURCE_ACTION))


def test_the_workaround_is_pinned_to_the_checked_azurerm(provider_schemas: dict[str, ProviderSchema]) -> None:
    pinned = re.search(r'azurerm = \{[^}]*version\s*=\s*"~> ([0-9.]+)"', (TERRAFORM_DIR / "terraform.tf").read_text())
    assert pinned and pinned.group(1) == CHECKED_AZURERM, (
        "azurerm was bumped: re-check whether azurerm_function_app_flex_consumption still injects a key-less "
        "AzureWebJobsStorage (issues #29693, #30732, #33211); if not, its app_settings could own the settings again; "
        "then update CHECKED_AZURERM and docs/deploy.md"
    )
    assert CDKTF_PACKAGES["azurerm"] == CHECKED_CDKTF_PACKAGE
    flex = provider_schemas["azurerm"].schema("resource:azurerm_function_app_flex_consumption")
    assert flex is not None
    storage = {name for name in flex.attributes if name.startswith("storage_")}
    assert storage == FLEX_STORAGE_ARGUMENTS, "new storage arguments: one may stop the injection"
