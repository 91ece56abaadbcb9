# Least privilege for the function app's system-assigned identity: data roles only, each on
# the one resource that needs it.
locals {
  function_app_principal_id = azurerm_function_app_flex_consumption.this.identity[0].principal_id

  function_app_roles = merge(
    {
      # Writes batches and dead letters to the lake's file system; nothing else in the account.
      # On the container, not the account: Terraform creates it (main.lake.tf), and the app only
      # checks that it exists (shared/lake, Get Container Properties) and never creates one. The
      # container's id is its Resource Manager ID (it is created by storage_account_id).
      lake_blob_data = {
        scope = azurerm_storage_container.lake.id
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
    # The generators produce with the app's identity (shared/kafka_clients.py, SASL OAUTHBEARER
    # on the Kafka endpoint): send on each source's own hub, nothing on the namespace.
    {
      for name, hub in azurerm_eventhub.source : "eventhubs_sender_${name}" => {
        scope = hub.id
        role  = "Azure Event Hubs Data Sender"
      }
    },
    # Resolves its own Key Vault references: read access to those secrets only, not the vault.
    {
      for name, secret in azurerm_key_vault_secret.kafka : "key_vault_secret_${lower(name)}" => {
        scope = secret.resource_versionless_id
        role  = "Key Vault Secrets User"
      }
    },
    # With kafka_sasl_mechanism = "OAUTHBEARER": the service principal's client secret too.
    {
      for secret in azurerm_key_vault_secret.kafka_oauth_client_secret : "key_vault_secret_kafka_oauth_client_secret" => {
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

# The app's settings (azapi_resource_action.app_settings, main.functionapp.tf) wait this long after
# the app's roles are created: the app starts on them and resolves its Key Vault references, host
# storage and telemetry with these roles, and a new assignment can take up to 10 minutes to reach
# Key Vault's data plane (as for Terraform's own role, main.keyvault.tf). A Key Vault reference
# that fails at start stays unresolved until the app restarts, its settings change or App Service
# refreshes its references (within 24 hours). The wait runs again whenever an assignment is added
# or replaced (a new source's secret).
resource "time_sleep" "function_app_roles" {
  create_duration = "${var.key_vault_role_propagation_seconds}s"

  triggers = {
    role_assignment_ids = join(",", sort(concat(
      [for assignment in azurerm_role_assignment.function_app : assignment.id],
      [for assignment in azurerm_role_assignment.durable_task_data_contributor : assignment.id],
    )))
  }
}

# Event Hubs: the Kafka triggers authenticate with the listen-only SAS rules of
# main.eventhubs.tf (the extension has no managed-identity mode), so the app gets no Azure Event
# Hubs Data Receiver role (it would be unused); it sends with Data Sender on each hub (above).

# The identity running Terraform writes the connection-string secrets (RBAC-mode vault).
resource "azurerm_role_assignment" "deployer_key_vault" {
  scope                = azurerm_key_vault.this.id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = data.azurerm_client_config.current.object_id
  description          = "Lets the identity that runs Terraform manage StreamingPOC's secrets"
}
