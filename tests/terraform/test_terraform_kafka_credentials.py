"""The Kafka triggers' credentials as Terraform gives them to the app, and how a change reaches it.

- Rotation: the ``<SOURCE>_KAFKA_SASL_PASSWORD`` settings are Key Vault references to a secret's *version*
  (``SecretUri=https://<vault>/secrets/<name>/<version>``, a form App Service documents). A new secret value is
  a new version, so the settings map changes, ``azapi_resource_action.app_settings`` runs its PUT again (azapi
  performs the action on every update of ``body``) and the app restarts on it. A versionless reference left
  the map identical: no PUT, no restart, and App Service re-reads such a reference only within a day, so
  ``kafka_sas_scope = "namespace"`` (new secret values, the hub rules deleted) left the processors with
  invalid connection strings for up to a day.
- OAUTHBEARER: the mechanism and the ``KAFKA_OAUTH_*`` values are Terraform inputs (``kafka_sasl_mechanism``,
  ``kafka_oauth``, ``kafka_oauth_client_secret``). The settings PUT replaces every setting, so one set by hand
  (``az functionapp config appsettings set``) was silently undone by the next apply that changed a setting.
  The client secret goes to the Key Vault like the SAS connection strings and the setting is a versioned
  reference to it; the value is in no setting.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import pytest

from shared.settings import load_settings
from shared.sources import SOURCES
from tests.conftest import ROOT
from tests.terraform.conftest import TERRAFORM_DIR, TerraformFailed, harness_dir, terraform_output

VERSIONED_REFERENCE = re.compile(
    r"@Microsoft\.KeyVault\(SecretUri=https://[^/]+\.vault\.azure\.net/secrets/(?P<name>[0-9A-Za-z-]+)/[0-9a-f]{32}\)"
)
CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
CLIENT_SECRET = "not-a-real-client-secret~0123456789"
OAUTH = {
    "kafka_sasl_mechanism": "OAUTHBEARER",
    "kafka_oauth": f'{{ client_id = "{CLIENT_ID}" }}',
    "kafka_oauth_client_secret": CLIENT_SECRET,
}


def _module_call() -> dict[str, Any]:
    (module,) = hcl2.loads((TERRAFORM_DIR / "main.functionapp.tf").read_text())["module"]
    return dict(module['"app_settings"'])


def _refused(tmp_path: Path, variables: dict[str, str]) -> str:
    with pytest.raises(TerraformFailed) as failure:
        terraform_output(harness_dir(tmp_path), vars=variables)
    return " ".join(str(failure.value).split())


# --- rotation -------------------------------------------------------------------------------------------


def test_the_root_gives_the_settings_the_secrets_versioned_ids() -> None:
    """``azurerm_key_vault_secret.id`` carries the version; ``versionless_id`` would hide a new value."""
    passed = _module_call()["kafka_password_secret_ids"]
    assert passed == "${{for name, secret in azurerm_key_vault_secret.kafka : name => secret.id}}", passed


def test_password_settings_reference_a_secret_version(evaluated: dict[str, Any]) -> None:
    values: dict[str, str] = evaluated["app_settings"]
    for source in SOURCES:
        setting = f"{source.upper()}_KAFKA_SASL_PASSWORD"
        found = VERSIONED_REFERENCE.fullmatch(values[setting])
        assert found, f"{setting} = {values[setting]!r} names no secret version: a new value would not reach the app"
        assert found["name"] == f"eventhubs-{source}-kafka-sasl-password"


def test_the_module_refuses_versionless_secret_ids() -> None:
    """A versionless ID would silently bring the day-long delay back."""
    variables = (TERRAFORM_DIR / "modules" / "app_settings" / "variables.tf").read_text()
    (block,) = [b for b in hcl2.loads(variables)["variable"] if '"kafka_password_secret_ids"' in b]
    (validation,) = block['"kafka_password_secret_ids"']["validation"]
    pattern = re.search(r'regex\("(.+?)", id\)', validation["condition"])
    assert pattern, validation["condition"]
    regex = pattern.group(1).replace("\\\\", "\\")
    assert re.fullmatch(regex, "https://kv.vault.azure.net/secrets/eventhubs-x/0123456789abcdef0123456789abcdef")
    assert not re.fullmatch(regex, "https://kv.vault.azure.net/secrets/eventhubs-x")
    assert not re.fullmatch(regex, "https://kv.vault.azure.net/secrets/eventhubs-x/")


# --- OAUTHBEARER as Terraform inputs ----------------------------------------------------------------------


def test_plain_is_the_default_and_leaves_the_oauth_settings_empty(evaluated: dict[str, Any]) -> None:
    values = evaluated["app_settings"]
    assert values["KAFKA_SASL_MECHANISM"] == "PLAIN"
    assert [
        values[f"KAFKA_OAUTH_{name}"] for name in ("CLIENT_ID", "CLIENT_SECRET", "TOKEN_ENDPOINT_URL", "SCOPE")
    ] == [
        "",
        "",
        "",
        "",
    ]


def test_oauthbearer_inputs_become_settings_the_app_accepts(tmp_path: Path) -> None:
    values: dict[str, str] = terraform_output(harness_dir(tmp_path), vars=OAUTH)["app_settings"]
    assert values["KAFKA_SASL_MECHANISM"] == "OAUTHBEARER"
    assert values["KAFKA_OAUTH_CLIENT_ID"] == CLIENT_ID
    secret = VERSIONED_REFERENCE.fullmatch(values["KAFKA_OAUTH_CLIENT_SECRET"])
    assert secret and secret["name"] == "kafka-oauth-client-secret"
    assert not [name for name, value in values.items() if CLIENT_SECRET in value], "the client secret in a setting"
    # Defaults: the tenant of the identity running Terraform, the namespace's own scope.
    assert re.fullmatch(
        r"https://login\.microsoftonline\.com/[0-9a-f-]{36}/oauth2/v2\.0/token",
        values["KAFKA_OAUTH_TOKEN_ENDPOINT_URL"],
    )
    assert values["KAFKA_OAUTH_SCOPE"] == "https://evhns-test.servicebus.windows.net/.default"
    settings = load_settings(values)  # the model's checks: all four set, https token endpoint, SASL_SSL
    assert settings.kafka_sasl_mechanism == "OAUTHBEARER"
    assert settings.kafka_oauth_client_secret.get_secret_value() == values["KAFKA_OAUTH_CLIENT_SECRET"]


@pytest.mark.parametrize("scope", ["event_hub", "namespace"])
def test_oauthbearer_leaves_no_sas_rule_secret_or_password_setting(tmp_path: Path, scope: str) -> None:
    """No OAUTHBEARER binding reads a password: the listen rules, their secrets (and the app's read access to them)
    and the password settings were kept anyway, live keys nothing used (a security review's finding)."""
    outputs = terraform_output(harness_dir(tmp_path), vars=OAUTH | {"kafka_sas_scope": scope})
    assert outputs["kafka_credentials"] == {} and outputs["kafka_namespace_rules"] == {}
    assert not [name for name in outputs["app_settings"] if name.endswith("_KAFKA_SASL_PASSWORD")]


def test_the_namespaces_sas_authentication_is_on_only_for_plain() -> None:
    """With OAUTHBEARER every client of the namespace authenticates with Entra ID, so no SAS key, the root
    ``RootManageSharedAccessKey`` included, is accepted."""
    (namespace,) = hcl2.loads((TERRAFORM_DIR / "main.eventhubs.tf").read_text())["resource"][0][
        '"azurerm_eventhub_namespace"'
    ].values()
    assert namespace["local_authentication_enabled"] == '${var.kafka_sasl_mechanism == "PLAIN"}'


def test_oauthbearer_takes_an_explicit_token_endpoint_and_scope(tmp_path: Path) -> None:
    oauth = (
        f'{{ client_id = "{CLIENT_ID}", token_endpoint_url = "https://login.microsoftonline.com/contoso.onmicrosoft.com'
        '/oauth2/v2.0/token", scope = "https://eventhubs.azure.net/.default" }'
    )
    values = terraform_output(harness_dir(tmp_path), vars=OAUTH | {"kafka_oauth": oauth})["app_settings"]
    assert values["KAFKA_OAUTH_TOKEN_ENDPOINT_URL"].startswith("https://login.microsoftonline.com/contoso.")
    assert values["KAFKA_OAUTH_SCOPE"] == "https://eventhubs.azure.net/.default"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"kafka_sasl_mechanism": "SCRAM-SHA-256"}, "kafka_sasl_mechanism must be PLAIN or OAUTHBEARER"),
        (
            {"kafka_sasl_mechanism": "OAUTHBEARER", "kafka_oauth_client_secret": CLIENT_SECRET},
            "kafka_oauth must be set with kafka_sasl_mechanism",
        ),
        (
            {"kafka_sasl_mechanism": "OAUTHBEARER", "kafka_oauth": OAUTH["kafka_oauth"]},
            "kafka_oauth_client_secret must be set (not blank)",
        ),
        (OAUTH | {"kafka_oauth_client_secret": "  "}, "kafka_oauth_client_secret must be set (not blank)"),
        ({"kafka_oauth": OAUTH["kafka_oauth"]}, "kafka_oauth must be set with kafka_sasl_mechanism"),
        ({"kafka_oauth_client_secret": CLIENT_SECRET}, "kafka_oauth_client_secret must be set (not blank)"),
        (OAUTH | {"kafka_oauth": '{ client_id = "my-app" }'}, "kafka_oauth.client_id must be an application"),
        (
            OAUTH
            | {
                "kafka_oauth": f'{{ client_id = "{CLIENT_ID}", token_endpoint_url = '
                '"http://login.microsoftonline.com/t/oauth2/v2.0/token" }'
            },
            "kafka_oauth.token_endpoint_url must be null or an https:// URL",
        ),
        (
            OAUTH
            | {"kafka_oauth": f'{{ client_id = "{CLIENT_ID}", scope = "https://evhns-x.servicebus.windows.net" }}'},
            "kafka_oauth.scope must be null or https://<resource>/.default",
        ),
    ],
)
def test_oauth_inputs_the_app_would_refuse_are_refused_at_plan(
    tmp_path: Path, variables: dict[str, str], message: str
) -> None:
    assert message in _refused(tmp_path, variables)


def test_the_client_secret_is_sensitive_and_kept_in_the_key_vault_with_the_apps_read_role() -> None:
    variables = hcl2.loads((TERRAFORM_DIR / "variables.tf").read_text())["variable"]
    (secret,) = [b['"kafka_oauth_client_secret"'] for b in variables if '"kafka_oauth_client_secret"' in b]
    assert secret["sensitive"] is True
    assert _module_call()["kafka_oauth"].count("azurerm_key_vault_secret.kafka_oauth_client_secret[0].id") == 1
    keyvault = re.sub(r"\s+", " ", (TERRAFORM_DIR / "main.keyvault.tf").read_text())
    assert 'resource "azurerm_key_vault_secret" "kafka_oauth_client_secret" { count = var.kafka_sasl_mechanism == ' in (
        keyvault
    )
    assert "value = var.kafka_oauth_client_secret" in keyvault
    roles = re.sub(r"\s+", " ", (TERRAFORM_DIR / "main.roles.tf").read_text())
    assert (
        "for secret in azurerm_key_vault_secret.kafka_oauth_client_secret : "
        '"key_vault_secret_kafka_oauth_client_secret" => { scope = secret.resource_versionless_id '
        'role = "Key Vault Secrets User" }'
    ) in roles
    outputs = (TERRAFORM_DIR / "outputs.tf").read_text()
    assert "kafka_oauth_client_secret" not in outputs


def test_the_docs_switch_to_oauthbearer_through_terraform_not_the_cli() -> None:
    """``az functionapp config appsettings set`` is undone by the next apply: the docs must not route through it."""
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    start = deploy.index("**Option: OAUTHBEARER with a service principal.**")
    passage = " ".join(deploy[start : deploy.index("\n## ", start)].split())
    for found in re.finditer(r"appsettings set", passage):  # only as the warning that the next apply undoes it
        assert "next apply" in passage[found.start() : found.start() + 200], passage[found.start() - 100 :][:300]
    for name in ("kafka_sasl_mechanism", "kafka_oauth", "kafka_oauth_client_secret"):
        assert f"`{name}" in passage, name
