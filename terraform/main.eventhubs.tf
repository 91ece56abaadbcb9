# The Kafka endpoint (<namespace>.servicebus.windows.net:9093) is on for every Standard and
# Premium namespace; Basic has none, which var.eventhubs_sku rules out.
resource "azurerm_eventhub_namespace" "this" {
  name                = local.names.eventhubs_namespace
  resource_group_name = local.resource_group_name
  location            = var.location
  sku                 = var.eventhubs_sku
  capacity            = var.eventhubs_capacity
  minimum_tls_version = "1.2"

  auto_inflate_enabled     = var.eventhubs_maximum_throughput_units > 0
  maximum_throughput_units = var.eventhubs_maximum_throughput_units > 0 ? var.eventhubs_maximum_throughput_units : null

  # SAS (local) authentication stays on only for kafka_sasl_mechanism = "PLAIN": the Functions
  # Kafka extension (the triggers) authenticates with SASL PLAIN (user "$ConnectionString", a SAS
  # connection string as password) or OAUTHBEARER with OIDC client credentials of a service
  # principal; it has no managed-identity mode. PLAIN's keys live only in Key Vault
  # (main.keyvault.tf); each rule is on one hub, Listen only. With OAUTHBEARER nothing here reads a
  # key (the generators and tools.redrive use Entra ID too), so no SAS key, the root one included,
  # is accepted.
  local_authentication_enabled = var.kafka_sasl_mechanism == "PLAIN"
  # The Flex Consumption app is not VNet-integrated here, so it reaches the namespace over its
  # public endpoint (TLS 1.2+, SAS- or Entra ID-authenticated). See docs/deploy.md, "Network exposure".
  public_network_access_enabled = true

  tags = local.tags
}

locals {
  kafka_bootstrap_servers = "${azurerm_eventhub_namespace.this.name}.servicebus.windows.net:9093"
}

# One event hub (Kafka topic) per source.
resource "azurerm_eventhub" "source" {
  for_each = local.sources

  name              = each.value.topic
  namespace_id      = azurerm_eventhub_namespace.this.id
  partition_count   = each.value.partition_count
  message_retention = var.eventhub_message_retention_days
}

# No Event Hubs consumer groups: the Kafka triggers join Kafka consumer groups
# (<SOURCE>_CONSUMER_GROUP), which the Kafka endpoint creates on first use, keeps apart from
# Event Hubs consumer groups and scopes to the whole namespace, so their names carry the source.

# Dead letters go to the lake's deadletter/ area with their raw bytes (shared/landing.py),
# not to a hub, so there is no dead-letter event hub.

# SAS rules for the Kafka triggers (SASL PLAIN). kafka_sas_scope = "event_hub": one listen-only
# rule per credential of local.kafka_credentials, on that source's hub only. None for the
# generators: they send with the app's identity (Azure Event Hubs Data Sender, main.roles.tf).
resource "azurerm_eventhub_authorization_rule" "kafka" {
  for_each = var.kafka_sas_scope == "event_hub" ? local.kafka_credentials : {}

  name                = each.value.rule_name
  namespace_name      = azurerm_eventhub_namespace.this.name
  eventhub_name       = azurerm_eventhub.source[each.value.source].name
  resource_group_name = local.resource_group_name
  listen              = each.value.listen
  send                = each.value.send
  manage              = false
}

# kafka_sas_scope = "namespace": one listen-only rule for all hubs.
resource "azurerm_eventhub_namespace_authorization_rule" "kafka" {
  for_each = local.kafka_namespace_rules

  name                = each.value.rule_name
  namespace_name      = azurerm_eventhub_namespace.this.name
  resource_group_name = local.resource_group_name
  listen              = each.value.listen
  send                = each.value.send
  manage              = false
}

locals {
  # The connection string each credential's secret holds.
  kafka_connection_strings = {
    for setting, credential in local.kafka_credentials : setting => (
      var.kafka_sas_scope == "event_hub"
      ? azurerm_eventhub_authorization_rule.kafka[setting].primary_connection_string
      : azurerm_eventhub_namespace_authorization_rule.kafka["listen"].primary_connection_string
    )
  }
}
