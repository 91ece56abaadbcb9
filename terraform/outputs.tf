output "resource_group_name" {
  value       = local.resource_group_name
  description = "Resource group that holds the deployment."
}

output "function_app_name" {
  value       = azurerm_function_app_flex_consumption.this.name
  description = "Function app to publish the code to: `func azure functionapp publish <name>`."
}

output "function_app_default_hostname" {
  value       = azurerm_function_app_flex_consumption.this.default_hostname
  description = "Host name of the function app."
}

output "lake_url" {
  value       = "${trimsuffix(azurerm_storage_account.lake.primary_dfs_endpoint, "/")}/${azurerm_storage_container.lake.name}"
  description = "ADLS Gen2 URL of the lake file system (raw/ and deadletter/)."
}

output "lake_storage_account_name" {
  value       = azurerm_storage_account.lake.name
  description = "Storage account of the lake."
}

output "eventhubs_namespace_name" {
  value       = azurerm_eventhub_namespace.this.name
  description = "Event Hubs namespace whose Kafka endpoint the functions use."
}

output "kafka_bootstrap_servers" {
  value       = local.kafka_bootstrap_servers
  description = "Kafka endpoint of the namespace (SASL_SSL: PLAIN with user `$ConnectionString` for the triggers, OAUTHBEARER with the app's identity for the generators)."
}

output "event_hubs" {
  value       = { for name, hub in azurerm_eventhub.source : name => { topic = hub.name, consumer_group = local.sources[name].consumer_group, partitions = hub.partition_count } }
  description = "Per source: the event hub (Kafka topic), the Kafka consumer group of its processing function (created by the Kafka client, namespace-wide) and the partition count that caps its scale-out."
}

output "application_insights_name" {
  value       = azurerm_application_insights.this.name
  description = "Application Insights resource to watch in the portal (its Workbooks blade holds the pipeline workbook)."
}

output "workbook_id" {
  value       = azurerm_application_insights_workbook.this.id
  description = "Resource ID of the pipeline workbook."
}

output "key_vault_name" {
  value       = azurerm_key_vault.this.name
  description = "Key Vault holding the Event Hubs connection strings (values are never output)."
}
