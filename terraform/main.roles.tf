# Least privilege for the function app's system-assigned identity: data roles only, each on
# the one resource that needs it.
locals {
  function_app_principal_id = azurerm_function_app_flex_consumption.this.identity[0].principal_id

  function_app_roles = merge(
    {
      # Writes batches and dead letters to the lake; nothing else in it.
      lake_blob_data = {
        scope = azurerm_storage_account.lake.id
        role  = "Storage Blob Data Contributor"
      }
      # Host storage: blobs (host locks, keys, Durable state and the deployment package) and
      # tables (the host's diagnostic events; Durable Functions' history on Azure Storage).
      # Storage Blob Data Owner is the role Microsoft documents for identity-based
      # AzureWebJobsStorage ("Connecting to host storage with an identity").
      host_blob_data = {
        scope = azurerm_storage_account.host.id
        role  = "Storage Blob Data Owner"
      }
      host_table_data = {
        scope = azurerm_storage_account.host.id
        role  = "Storage Table Data Contributor"
      }
    },
    # Queues hold Durable Functions' work items only on its Azure Storage backend; the app has no
    # queue trigger, so with the Durable Task Scheduler nothing reads or writes them.
    var.durable_backend == "azure_storage" ? {
      host_queue_data = {
        scope = azurerm_storage_account.host.id
        role  = "Storage Queue Data Contributor"
      }
    } : {},
    # Sends the host's and the code's telemetry with its Entra ID identity (local auth is off).
    {
      application_insights = {
        scope = azurerm_application_insights.this.id
        role  = "Monitoring Metrics Publisher"
      }
    },
    # Resolves its own Key Vault references: read access to those secrets only, not the vault.
    {
      for name, secret in azurerm_key_vault_secret.kafka : "key_vault_secret_${lower(name)}" => {
        scope = secret.resource_versionless_id
        role  = "Key Vault Secrets User"
      }
    },
  )
}

resource "azurerm_role_assignment" "function_app" {
  for_each = local.function_app_roles

  scope                = each.value.scope
  role_definition_name = each.value.role
  principal_id         = local.function_app_principal_id
  principal_type       = "ServicePrincipal"
  description          = "StreamingPOC function app ${local.names.function_app}: ${each.key}"
}

# Event Hubs: the Kafka endpoint authenticates with the SAS rules of main.eventhubs.tf, not
# Entra ID, so the app gets no Azure Event Hubs Data Sender/Receiver role (it would be unused).

# The identity running Terraform writes the connection-string secrets (RBAC-mode vault).
resource "azurerm_role_assignment" "deployer_key_vault" {
  scope                = azurerm_key_vault.this.id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = data.azurerm_client_config.current.object_id
  description          = "Lets the identity that runs Terraform manage StreamingPOC's secrets"
}
