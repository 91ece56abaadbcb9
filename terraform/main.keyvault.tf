# Holds the Event Hubs connection strings the Kafka triggers use as SASL password, one listen-only
# per source (local.kafka_credentials); the generators have none (they send with the app's
# identity). The app reads them through Key Vault references (@Microsoft.KeyVault(SecretUri=...)),
# so no app setting, output or log ever carries the value.
resource "azurerm_key_vault" "this" {
  #checkov:skip=CKV_AZURE_189:The Flex Consumption app is not VNet-integrated, so Key Vault references resolve over the public endpoint; access is Entra ID RBAC only (see docs/deploy.md, Network exposure).
  #checkov:skip=CKV_AZURE_109:Same reason: a deny-by-default firewall would block the app's Key Vault references; App Service is not a trusted service for the bypass.
  #checkov:skip=CKV2_AZURE_32:No private endpoint for the same reason: private networking (VNet integration and private endpoints) is out of scope for this deployment.
  name                       = local.names.key_vault
  resource_group_name        = local.resource_group_name
  location                   = var.location
  tenant_id                  = data.azurerm_client_config.current.tenant_id
  sku_name                   = "standard"
  rbac_authorization_enabled = true
  purge_protection_enabled   = true
  soft_delete_retention_days = var.key_vault_soft_delete_retention_days

  public_network_access_enabled = true
  network_acls {
    default_action = "Allow"
    bypass         = "AzureServices"
  }

  tags = local.tags
}

resource "azurerm_key_vault_secret" "kafka" {
  for_each = local.kafka_credentials
  #checkov:skip=CKV_AZURE_41:The value is an Event Hubs SAS rule key, rotated by regenerating the rule key, not by date; Key Vault does not stop serving expired secrets, so an expiry would only be a label.

  name         = "eventhubs-${lower(replace(each.key, "_", "-"))}"
  key_vault_id = azurerm_key_vault.this.id
  value        = local.kafka_connection_strings[each.key]
  content_type = "Event Hubs connection string (Kafka SASL PLAIN password of ${each.value.source}, listen only)"
  tags         = local.tags

  # Terraform's identity writes the secret through the data plane: wait until its role works.
  depends_on = [time_sleep.deployer_key_vault_role]
}

# With kafka_sasl_mechanism = "OAUTHBEARER": the Kafka triggers' service principal's client secret,
# which KAFKA_OAUTH_CLIENT_SECRET references (by version, as the SAS secrets) and nothing else holds.
resource "azurerm_key_vault_secret" "kafka_oauth_client_secret" {
  count = var.kafka_sasl_mechanism == "OAUTHBEARER" ? 1 : 0
  #checkov:skip=CKV_AZURE_41:The value is a client secret whose expiry Entra ID keeps on the app registration; Key Vault does not stop serving expired secrets, so an expiry here would only be a label. Rotate it by setting kafka_oauth_client_secret to the new one.

  name         = "kafka-oauth-client-secret"
  key_vault_id = azurerm_key_vault.this.id
  value        = var.kafka_oauth_client_secret
  content_type = "Entra ID client secret (Kafka SASL OAUTHBEARER of the triggers)"
  tags         = local.tags

  depends_on = [time_sleep.deployer_key_vault_role]
}

# A new role assignment takes up to 10 minutes to reach Key Vault's data plane ("Provide access
# to Key Vault keys, certificates, and secrets with Azure RBAC", Known limits and performance);
# until then secret writes fail with 403 ForbiddenByRbac, which azurerm does not retry. So the
# secrets wait this long after Terraform's own Key Vault Secrets Officer assignment is created.
# The wait runs once, when the assignment is created (again only if it is replaced), and overlaps
# the Event Hubs namespace and rules that the secrets' values come from.
resource "time_sleep" "deployer_key_vault_role" {
  create_duration = "${var.key_vault_role_propagation_seconds}s"

  triggers = {
    role_assignment_id = azurerm_role_assignment.deployer_key_vault.id
  }
}
