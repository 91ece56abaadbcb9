"""Security and deploy defaults a review asked for: no schema registry role without an Avro source, the Durable
Task Scheduler's provider registered when it is used, Log Analytics by Entra ID only, and variables refused
where Azure or the pinned provider would refuse them at apply. A second review: the generators send with the app's
identity (Data Sender per hub, no SAS rule or secret), every role on the narrowest resource that serves (a hub,
the schema group, the lake's file system), and the host storage account's deletes logged."""

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


# Role grants as the configuration writes them: ``{scope = X, role = "R"}`` entries of the role maps (locals that
# azurerm_role_assignment resources iterate), as hcl2 renders expressions, and resources naming both directly.
_GRANT = re.compile(r'scope = ([^,}]+), role = "([^"]+)"')
DATA_SENDER = "Azure Event Hubs Data Sender"
HUB_GRANTS = re.compile(
    r'\{for (\w+), (\w+) in azurerm_eventhub\.source : "eventhubs_sender_\$\{\1\}" => '
    r'\{scope = \2\.id, role = "Azure Event Hubs Data Sender"\}\}'
)


def _local(file: str, name: str) -> str:
    (value,) = [block[name] for block in hcl2.loads((TERRAFORM_DIR / file).read_text())["locals"] if name in block]
    return str(value)


def _grants() -> list[tuple[str, str, str]]:
    """(file, scope expression, role) of every role grant in the configuration."""
    found = []
    for path in sorted(TERRAFORM_DIR.glob("*.tf")):
        parsed = hcl2.loads(path.read_text())
        for block in parsed.get("locals", []):
            for value in block.values():
                found += [(path.name, scope.strip(), role) for scope, role in _GRANT.findall(str(value))]
        for block in parsed.get("resource", []):
            for body in block.get('"azurerm_role_assignment"', {}).values():
                role = str(body.get("role_definition_name", "")).strip('"')
                if not role.startswith("${each."):
                    found.append((path.name, str(body["scope"]).strip('"${}'), role))
    return found


def test_the_generators_have_no_send_rule_secret_or_password_setting(evaluated: dict[str, Any]) -> None:
    """The generators produce through shared/kafka_clients.py with the app's identity: every SAS rule, Key Vault
    secret and password setting left is a trigger's, listen-only (the extension needs SASL PLAIN)."""
    credentials: dict[str, dict[str, Any]] = evaluated["kafka_credentials"]
    assert credentials and all(c["listen"] and not c["send"] for c in credentials.values())
    assert set(credentials) == {f"{source.upper()}_KAFKA_SASL_PASSWORD" for source in evaluated["sources"]}
    assert not [name for name in evaluated["app_settings"] if "PRODUCER_SASL" in name]
    assert "send = true" not in re.sub(r"\s+", " ", (TERRAFORM_DIR / "locals.tf").read_text())


def test_the_producer_the_app_ends_with_sends_with_its_identity_and_no_key(
    evaluated: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Terraform's app settings, read as the worker reads them: SASL OAUTHBEARER with a token callback."""
    import azure.identity

    from shared import kafka_clients
    from shared.settings import load_settings

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", lambda: object())  # nothing asks Entra ID
    kafka_clients._identity_token_callback.cache_clear()
    try:
        config = kafka_clients.producer_config(load_settings(evaluated["app_settings"]))
    finally:
        kafka_clients._identity_token_callback.cache_clear()
    assert (config["security.protocol"], config["sasl.mechanism"]) == ("sasl_ssl", "OAUTHBEARER")
    assert callable(config["oauth_cb"])
    assert [key for key in config if key.startswith("sasl.")] == ["sasl.mechanism"], "no password or client secret"


def test_the_app_has_data_sender_on_each_sources_hub_and_nowhere_else() -> None:
    assert HUB_GRANTS.search(_local("main.roles.tf", "function_app_roles"))
    senders = [(file, scope) for file, scope, role in _grants() if role == DATA_SENDER]
    assert senders and all(scope == "hub.id" for _, scope in senders), senders


def test_schema_registry_roles_are_on_the_schema_group_not_the_namespace() -> None:
    assignment = _resource("main.schemaregistry.tf", "azurerm_role_assignment", "schema_registry")
    assert assignment["scope"] == "${azurerm_eventhub_namespace_schema_group.sources.id}"


def test_the_redrive_operator_sends_per_hub_and_reaches_only_the_lakes_file_system_and_the_schema_group() -> None:
    """Reconcile's operator had no role to read the hubs with (the docs named Receiver, Terraform granted none)."""
    roles = _local("main.redrive.tf", "redrive_operator_roles")
    assert HUB_GRANTS.search(roles), roles
    assert _GRANT.findall(roles) == [
        ("hub.id", DATA_SENDER),
        ("hub.id", "Azure Event Hubs Data Receiver"),
        ("azurerm_storage_container.lake.id", "Storage Blob Data Contributor"),
        ("azurerm_eventhub_namespace_schema_group.sources.id", "Schema Registry Reader (Preview)"),
    ]


def test_the_redrive_operator_reads_the_schema_group_while_a_source_is_avro() -> None:
    """tools.redrive decodes an Avro source's dead letters (``decoder_for``) through the Event Hubs Schema Registry
    that Terraform's SCHEMA_REGISTRY_KIND=eventhubs names, with the operator's own login (DefaultAzureCredential):
    granted only Data Sender and the lake, every schema lookup of the operator Terraform names was a 403. Reader,
    as the app's (main.schemaregistry.tf): on the schema group, only while a source is Avro."""
    roles = re.sub(r"\s+", " ", _local("main.redrive.tf", "redrive_operator_roles"))
    assert "Schema Registry Reader" in roles, (
        "redrive_operator_roles grants no Schema Registry Reader, yet tools.redrive decodes Avro sources "
        f"through the Event Hubs Schema Registry with the operator's identity: {roles}"
    )
    assert roles.count("Schema Registry") == 1, roles  # no Contributor: a redrive registers nothing
    reader = (
        "length(local.avro_sources) > 0 ? {schema_registry_reader = {scope = "
        'azurerm_eventhub_namespace_schema_group.sources.id, role = "Schema Registry Reader (Preview)"}} : {}'
    )
    assert reader in roles, roles


def test_the_apps_lake_role_is_on_the_lakes_file_system() -> None:
    """The store only checks that the file system exists (shared/lake: Get Container Properties), Terraform
    creates it: nothing needs a right on the whole lake account."""
    roles = _local("main.roles.tf", "function_app_roles")
    assert (
        'lake_blob_data = {scope = azurerm_storage_container.lake.id, role = "Storage Blob Data Contributor"}' in roles
    )
    assert _resource("main.lake.tf", "azurerm_storage_container", "lake")["name"] == "${var.lake_file_system}"


def test_no_role_is_granted_on_the_namespace_or_the_lake_account() -> None:
    broad = {"azurerm_eventhub_namespace.this.id", "azurerm_storage_account.lake.id"}
    grants = _grants()
    assert len(grants) >= 10, grants  # the parser sees the role maps
    assert [grant for grant in grants if grant[1] in broad] == []


def test_the_host_storage_account_logs_deletes_to_log_analytics() -> None:
    """It holds the function keys (azure-webjobs-secrets): who deleted what is kept, as for the lake; reads and
    writes are not (a row per host request: cost)."""
    setting = _resource("main.monitoring.tf", "azurerm_monitor_diagnostic_setting", "host_blob")
    assert setting["target_resource_id"].strip('"') == "${azurerm_storage_account.host.id}/blobServices/default"
    assert setting["count"] == "${var.diagnostic_settings_enabled ? 1 : 0}"
    assert setting["log_analytics_workspace_id"] == "${azurerm_log_analytics_workspace.this.id}"
    assert [log["category"].strip('"') for log in setting["enabled_log"]] == ["StorageDelete"]


def test_every_storage_account_has_a_blob_diagnostic_setting() -> None:
    accounts, targets = set(), set()
    for path in TERRAFORM_DIR.glob("*.tf"):
        for block in hcl2.loads(path.read_text()).get("resource", []):
            for name in block.get('"azurerm_storage_account"', {}):
                accounts.add(name.strip('"'))
            for body in block.get('"azurerm_monitor_diagnostic_setting"', {}).values():
                targets.add(body["target_resource_id"].strip('"'))
    assert accounts == {"lake", "host"}
    assert {f"${{azurerm_storage_account.{name}.id}}/blobServices/default" for name in accounts} <= targets
