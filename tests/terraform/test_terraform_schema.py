"""(b) Schema conformance: every resource and data type, argument and nested block used under
terraform/ exists in azurerm 4.x (and random 3.x), per the provider schemas that the npm
bindings @cdktf/provider-* are generated from (see provider_schema.py and hcl_check.py)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.terraform.conftest import TERRAFORM_DIR
from tests.terraform.hcl_check import check_configuration
from tests.terraform.provider_schema import ProviderSchema


def test_configuration_matches_provider_schemas(provider_schemas: dict[str, ProviderSchema]) -> None:
    errors = check_configuration(TERRAFORM_DIR, provider_schemas)
    assert errors == [], "\n".join(errors)


# Providers whose pin is shared with other work and older than the only offline schema: the pin
# must admit the checked version, and test_terraform_host_storage.py checks that every argument
# used exists at the pinned minimum.
PINNED_BELOW_THE_SCHEMA = {"azapi"}


def test_pinned_provider_versions_are_the_checked_ones(provider_schemas: dict[str, ProviderSchema]) -> None:
    """terraform.tf pins `~> <major>.<minor>` of the very version whose schema the test read."""
    text = (TERRAFORM_DIR / "terraform.tf").read_text()
    for name, schema in provider_schemas.items():
        pinned = re.search(rf'{name}\s*=\s*\{{[^}}]*version\s*=\s*"~> ([0-9.]+)"', text, re.DOTALL)
        assert pinned, f"{name} is not pinned with ~> in terraform.tf"
        if name in PINNED_BELOW_THE_SCHEMA:
            wanted = [int(part) for part in pinned.group(1).split(".")]
            checked = [int(part) for part in schema.provider_version.split(".")][: len(wanted)]
            assert checked[0] == wanted[0] and checked >= wanted, (name, pinned.group(1), schema.provider_version)
            continue
        assert schema.provider_version.startswith(pinned.group(1) + "."), (
            name,
            pinned.group(1),
            schema.provider_version,
        )
    assert provider_schemas["azurerm"].provider_version.startswith("4.")


MISTAKES = [
    pytest.param(
        "main.lake.tf",
        "  https_traffic_only_enabled ",
        "  https_trafic_only_enabled  ",
        "unsupported argument 'https_trafic_only_enabled'",
        id="misspelled-argument",
    ),
    pytest.param(
        "main.lake.tf",
        "  https_traffic_only_enabled ",
        "  enable_https_traffic_only  ",
        "unsupported argument 'enable_https_traffic_only'",
        id="argument-removed-in-4x",
    ),
    pytest.param(
        "main.functionapp.tf",
        "minimum_tls_version                    =",
        "min_tls_version                        =",
        "site_config: unsupported argument 'min_tls_version'",
        id="misspelled-nested-argument",
    ),
    pytest.param(
        "main.lake.tf",
        "delete_retention_policy {",
        "delete_retention_polcy {",
        "blob_properties: unsupported block 'delete_retention_polcy'",
        id="misspelled-nested-block",
    ),
    pytest.param(
        "main.lake.tf",
        'dynamic "rule" {',
        'dynamic "rules" {',
        "dynamic block 'rules' is not a block here",
        id="misspelled-dynamic-block",
    ),
    pytest.param(
        "main.keyvault.tf",
        'resource "azurerm_key_vault" "this"',
        'resource "azurerm_keyvault" "this"',
        "the provider has no resource type 'azurerm_keyvault'",
        id="unknown-resource-type",
    ),
    pytest.param(
        "main.eventhubs.tf",
        "  partition_count   = each.value.partition_count\n",
        "",
        "missing required argument 'partition_count'",
        id="missing-required-argument",
    ),
    pytest.param(
        "terraform.tf",
        "data_plane_available",
        "data_plane_availble",
        "provider azurerm.features.storage: unsupported argument 'data_plane_availble'",
        id="provider-features",
    ),
    pytest.param(
        "main.functionapp.tf",
        '  method      = "PUT"',
        '  verb        = "PUT"',
        "resource azapi_resource_action.app_settings: unsupported argument 'verb'",
        id="azapi-argument",
    ),
    pytest.param(
        "main.keyvault.tf",
        "  create_duration =",
        "  create_durtion  =",
        "resource time_sleep.deployer_key_vault_role: unsupported argument 'create_durtion'",
        id="time-argument",
    ),
    pytest.param(
        "outputs.tf",
        "azurerm_storage_account.lake.primary_dfs_endpoint",
        "azurerm_storage_account.lake.primary_dfs_endpont",
        "azurerm_storage_account has no attribute 'primary_dfs_endpont'",
        id="unknown-attribute-reference",
    ),
    pytest.param(
        "main.functionapp.tf",
        "max_record_bytes          = var.max_record_bytes",
        "max_record_bytes          = var.max_record_byte",
        "reference to undeclared variable var.max_record_byte",
        id="undeclared-variable",
    ),
    pytest.param(
        "main.functionapp.tf",
        "  max_record_bytes          = var.max_record_bytes",
        "  max_records_bytes         = var.max_record_bytes",
        "module has no input variable 'max_records_bytes'",
        id="unknown-module-input",
    ),
]


@pytest.mark.parametrize(("file", "old", "new", "expected"), MISTAKES)
def test_checker_catches_mistakes(
    provider_schemas: dict[str, ProviderSchema], tmp_path: Path, file: str, old: str, new: str, expected: str
) -> None:
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM_DIR, copy, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
    path = copy / file
    text = path.read_text()
    assert old in text, f"the mutation no longer applies to {file}: {old!r}"
    path.write_text(text.replace(old, new, 1))
    errors = check_configuration(copy, provider_schemas)
    assert any(expected in error for error in errors), errors
