resource "azurerm_log_analytics_workspace" "this" {
  name                = local.names.log_analytics
  resource_group_name = local.resource_group_name
  location            = var.location
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  # Entra ID only: nothing here uses the workspace keys (Application Insights and the diagnostic
  # settings write by resource ID), so they are not kept usable.
  local_authentication_enabled = false
  tags                         = local.tags
}

# Workspace-based Application Insights: the Functions host sends requests, traces and
# exceptions; the code's OpenTelemetry metrics (shared/metric_names.py) land in customMetrics.
resource "azurerm_application_insights" "this" {
  name                = local.names.application_insights
  resource_group_name = local.resource_group_name
  location            = var.location
  workspace_id        = azurerm_log_analytics_workspace.this.id
  application_type    = "other"
  # Entra ID ingestion only: the Functions host and the code's exporter (shared/telemetry.py,
  # ManagedIdentityCredential) authenticate with the app's identity, as
  # APPLICATIONINSIGHTS_AUTHENTICATION_STRING = "Authorization=AAD" tells them; the identity
  # holds Monitoring Metrics Publisher on this resource (main.roles.tf). The connection string
  # only says where to send; without a token Application Insights refuses the telemetry.
  local_authentication_disabled = true
  tags                          = local.tags
}

# Diagnostic settings ship logs only. Platform metrics (AllMetrics, Transaction) are not copied to
# Log Analytics: no query reads the AzureMetrics table (the Event Hubs metric alerts read platform
# metrics from Azure Monitor directly; the other alerts and the workbook read Application
# Insights), and each row would be billed ingestion.
resource "azurerm_monitor_diagnostic_setting" "key_vault" {
  count = var.diagnostic_settings_enabled ? 1 : 0

  name                       = "to-log-analytics"
  target_resource_id         = azurerm_key_vault.this.id
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  enabled_log {
    category_group = "audit"
  }
}

# Includes KafkaUserErrorLogs and KafkaCoordinatorLogs: where SASL and consumer-group
# problems of the Kafka endpoint show up.
resource "azurerm_monitor_diagnostic_setting" "eventhubs" {
  count = var.diagnostic_settings_enabled ? 1 : 0

  name                           = "to-log-analytics"
  target_resource_id             = azurerm_eventhub_namespace.this.id
  log_analytics_workspace_id     = azurerm_log_analytics_workspace.this.id
  log_analytics_destination_type = "Dedicated" # resource-specific tables (AZMSKafkaUserErrorLogs...)

  enabled_log {
    category_group = "allLogs"
  }
}

# Who deleted what in the host storage account, which holds the function keys (azure-webjobs-secrets),
# the host's locks, Durable state and the app package (StorageBlobLogs, as the lake's).
resource "azurerm_monitor_diagnostic_setting" "host_blob" {
  count = var.diagnostic_settings_enabled ? 1 : 0

  name                       = "to-log-analytics"
  target_resource_id         = "${azurerm_storage_account.host.id}/blobServices/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  # StorageDelete only: the host reads and writes its blobs (lease renewals, key reads) many times a minute, each
  # a billed Log Analytics row under StorageRead/StorageWrite, while deletes are rare and what an audit needs.
  enabled_log {
    category = "StorageDelete"
  }
}
