"""The first apply waits for Terraform's own Key Vault role before writing the secrets, and the app's settings
wait for the app's own roles before the app starts on them.

A new role assignment can take up to 10 minutes to reach Key Vault's data plane (Microsoft Learn,
"Provide access to Key Vault keys, certificates, and secrets with Azure RBAC", known limits), and
azurerm does not retry the 403 ForbiddenByRbac meanwhile. The secrets therefore depend on a
``time_sleep`` that starts when the assignment is created (and again only when it is replaced).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import pytest

from tests.terraform.conftest import TERRAFORM_DIR, TerraformFailed, harness_dir, terraform_output
from tests.terraform.test_terraform_deploy_defaults import _variables


def _resource(kind: str, name: str) -> dict[str, Any]:
    for resource in hcl2.loads((TERRAFORM_DIR / "main.keyvault.tf").read_text())["resource"]:
        if f'"{kind}"' in resource:
            return dict(resource[f'"{kind}"'][f'"{name}"'])
    raise AssertionError(f"{kind}.{name} is not in main.keyvault.tf")


def test_secrets_wait_for_the_deployers_role_to_propagate() -> None:
    secrets = _resource("azurerm_key_vault_secret", "kafka")
    assert secrets["depends_on"] == ["${time_sleep.deployer_key_vault_role}"]
    wait = _resource("time_sleep", "deployer_key_vault_role")
    assert wait["triggers"] == {"role_assignment_id": "${azurerm_role_assignment.deployer_key_vault.id}"}
    assert wait["create_duration"].strip('"') == "${var.key_vault_role_propagation_seconds}s"
    assert _variables()["key_vault_role_propagation_seconds"] == 600  # the documented bound


@pytest.mark.parametrize("seconds", ["-1", "1801", "2.5"])
def test_the_wait_must_be_whole_seconds_up_to_half_an_hour(tmp_path: Path, seconds: str) -> None:
    with pytest.raises(TerraformFailed) as failure:
        terraform_output(harness_dir(tmp_path), vars={"key_vault_role_propagation_seconds": seconds})
    assert "key_vault_role_propagation_seconds must be" in str(failure.value)


def _resources(kind: str, name: str) -> dict[str, Any]:
    for path in sorted(TERRAFORM_DIR.glob("*.tf")):
        for resource in hcl2.loads(path.read_text()).get("resource", []):
            if f'"{kind}"' in resource and f'"{name}"' in resource[f'"{kind}"']:
                return dict(resource[f'"{kind}"'][f'"{name}"'])
    raise AssertionError(f"{kind}.{name} is not in terraform/")


def test_the_settings_put_waits_for_the_apps_own_roles_to_propagate() -> None:
    """The app starts on the PUT and resolves its Key Vault references (Key Vault Secrets User on each secret),
    host storage and telemetry with its roles; a reference that fails at start stays unresolved until the next
    restart or refresh. So the PUT comes after every role of the app and a wait like the deployer's."""
    action = _resources("azapi_resource_action", "app_settings")
    assert set(action["depends_on"]) >= {
        "${azurerm_role_assignment.function_app}",
        "${azurerm_role_assignment.durable_task_data_contributor}",
        "${time_sleep.function_app_roles}",
    }
    wait = _resources("time_sleep", "function_app_roles")
    assert wait["create_duration"].strip('"') == "${var.key_vault_role_propagation_seconds}s"
    triggers = re.sub(r"\s+", " ", str(wait["triggers"]["role_assignment_ids"]))
    assert "for assignment in azurerm_role_assignment.function_app : assignment.id" in triggers
    assert "for assignment in azurerm_role_assignment.durable_task_data_contributor : assignment.id" in triggers
    # The Key Vault roles are among those the wait follows (main.roles.tf, function_app_roles).
    roles = re.sub(r"\s+", " ", (TERRAFORM_DIR / "main.roles.tf").read_text())
    assert '"key_vault_secret_${lower(name)}" => { scope = secret.resource_versionless_id' in roles
    # The time provider is declared (time_sleep.deployer_key_vault_role uses it already).
    assert re.search(r'time = \{\s*source\s*= "hashicorp/time"', (TERRAFORM_DIR / "terraform.tf").read_text())
