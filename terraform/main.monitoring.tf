resource "azurerm_log_analytics_workspace" "this" {
  name                = local.names.log_analytics
  resource_group_name = local.resource_group_name
  location            = var.location
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = local.tags
}

# Workspace-based Application Insights: the Functions host sends requests, traces and
# exceptions; the code's OpenTelemetry metrics (shared/metric_names.py) land in customMetrics.
resource "azurerm_application_insights" "this" {
  name                = local.names.application_insights
  resource_group_name = local.resource_group_name
  location            = var.location
  workspace_id        = azurerm_log_analytics_workspace.this.id
  application_type    = "other"
  # Local (connection string) ingestion stays on: shared/telemetry.py exports with
  # configure_azure_monitor(connection_string=...) and passes no Entra ID credential, so
  # disabling it would drop every custom metric the workbook and alerts read.
  local_authentication_disabled = false
  tags                          = local.tags
}

resource "azurerm_monitor_diagnostic_setting" "key_vault" {
  count = var.diagnostic_settings_enabled ? 1 : 0

  name                       = "to-log-analytics"
  target_resource_id         = azurerm_key_vault.this.id
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  enabled_log {
    category_group = "audit"
  }
  enabled_metric {
    category = "AllMetrics"
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
  enabled_metric {
    category = "AllMetrics"
  }
}
