"""Security and deploy defaults a review asked for: no schema registry role without an Avro source, the Durable
Task Scheduler's provider registered when it is used, Log Analytics by Entra ID only, and variables refused
where Azure or the pinned provider would refuse them at apply."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import pytest

from tests.terraform.conftest import TERRAFORM_DIR, TerraformFailed, harness_dir, terraform_output


def _resource(file: str, kind: str, name: str) -> dict[str, Any]:
    for block in hcl2.loads((TERRAFORM_DIR / file).read_text()).get("resource", []):
        for found_kind, named in block.items():
            for found_name, body in named.items():
                if (found_kind.strip('"'), found_name.strip('"')) == (kind, name):
                    return dict(body)
    raise AssertionError(f"{kind}.{name} not in {file}")


def test_schema_registry_contributor_is_granted_only_while_a_source_is_avro() -> None:
    """Contributor reads, writes and deletes schema groups and schemas; no default source is Avro."""
    assert not [
        path for path in (TERRAFORM_DIR.parent / "sources").glob("*.json") if "AvroConverter" in path.read_text()
    ]
    text = (TERRAFORM_DIR / "main.schemaregistry.tf").read_text()
    assert "var.schema_registry_generator_registers && length(local.avro_sources) > 0" in text


def test_schema_registry_reader_is_granted_only_while_a_source_is_avro() -> None:
    """Reader reads every schema group of the namespace; only Avro sources read the registry
    (ProcessingContext.decoder, the generator's Avro messages), and no default source is Avro."""
    blocks = hcl2.loads((TERRAFORM_DIR / "main.schemaregistry.tf").read_text())["locals"]
    (roles,) = [
        re.sub(r"\s+", " ", block["schema_registry_roles"]) for block in blocks if "schema_registry_roles" in block
    ]
    assert roles.count("Schema Registry Reader") == 1, roles
    assert 'length(local.avro_sources) > 0 ? {reader = "Schema Registry Reader (Preview)"} : {}' in roles, roles


def test_the_durable_task_schedulers_provider_is_registered_when_it_is_used() -> None:
    """azapi registers no provider and azurerm's default set lacks Microsoft.DurableTask."""
    providers = (TERRAFORM_DIR / "terraform.tf").read_text()
    registered = (
        'resource_providers_to_register = var.durable_backend == "azure_storage" ? [] : ["Microsoft.DurableTask"]'
    )
    assert registered in providers


def test_the_log_analytics_workspace_takes_entra_id_only() -> None:
    workspace = _resource("main.monitoring.tf", "azurerm_log_analytics_workspace", "this")
    assert workspace.get("local_authentication_enabled") is False


@pytest.mark.parametrize(
    "values",
    [{"function_maximum_instance_count": "20"}, {"lake_file_system": "a" + "-b" * 40}],
    ids=["scale-out cap under azurerm 4.55's 40", "file system name over 63 characters"],
)
def test_values_azure_would_refuse_at_apply_are_refused_at_plan(tmp_path: Path, values: dict[str, str]) -> None:
    with pytest.raises(TerraformFailed):
        terraform_output(harness_dir(tmp_path), vars=values)
