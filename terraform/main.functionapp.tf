# Storage of the Functions host and Durable Functions (blobs, queues, tables) and of the
# Flex Consumption deployment package; separate from the lake and reached by identity only.
resource "azurerm_storage_account" "host" {
  #checkov:skip=CKV_AZURE_59:The Flex Consumption app is not VNet-integrated and reaches its host storage over the public endpoint; access needs an Entra ID token and a data role (shared keys are off). See docs/deploy.md, Network exposure.
  #checkov:skip=CKV_AZURE_35:Same reason: a deny-by-default firewall would block the function app, whose outbound addresses are not fixed on Flex Consumption.
  #checkov:skip=CKV2_AZURE_33:No private endpoint for the same reason: private networking is out of scope for this deployment.
  #checkov:skip=CKV2_AZURE_1:Encrypted at rest with Microsoft-managed keys; the account holds only host state (leases, Durable queues and history) and the deployment package.
  #checkov:skip=CKV_AZURE_206:Replication is var.storage_replication_type: LRS by default for a proof of concept, ZRS in terraform/production.tfvars.example; geo-replication (GZRS/RAGZRS) is left to the user, since a second region doubles the storage cost.
  #checkov:skip=CKV_AZURE_33:Queue logging is set through the data plane, which Terraform does not use here (terraform.tf); the queues are Durable Functions' internal work items.
  name                     = local.names.host_storage
  resource_group_name      = local.resource_group_name
  location                 = var.location
  account_kind             = "StorageV2"
  account_tier             = "Standard"
  account_replication_type = var.storage_replication_type
  access_tier              = "Hot"

  https_traffic_only_enabled        = true
  min_tls_version                   = "TLS1_2"
  shared_access_key_enabled         = false
  default_to_oauth_authentication   = true
  allow_nested_items_to_be_public   = false
  public_network_access_enabled     = true
  infrastructure_encryption_enabled = true
  local_user_enabled                = false
  sftp_enabled                      = false
  cross_tenant_replication_enabled  = false

  sas_policy {
    expiration_period = "00.01:00:00"
    expiration_action = "Log"
  }

  blob_properties {
    delete_retention_policy {
      days = 7
    }
    container_delete_retention_policy {
      days = 7
    }
  }

  tags = local.tags
}

# Where `func azure functionapp publish` (or a zip deploy) puts the app package.
resource "azurerm_storage_container" "deployment" {
  #checkov:skip=CKV2_AZURE_21:Checkov only accepts the legacy Storage Insights link, which needs the account key (disabled here); the container holds only the app package, written by deployments.
  name                  = "app-package"
  storage_account_id    = azurerm_storage_account.host.id
  container_access_type = "private"
}

resource "azurerm_service_plan" "this" {
  #checkov:skip=CKV_AZURE_212:worker_count does not apply to Flex Consumption: instances scale per function between 0 and function_maximum_instance_count.
  #checkov:skip=CKV_AZURE_225:Zone redundancy is var.zone_redundancy_enabled, off by default for a proof of concept: on Flex Consumption it keeps two billed always-ready instances per function scale group (about USD 505-715 a month for this app, docs/cost.md); terraform/production.tfvars.example turns it on.
  name                   = local.names.service_plan
  resource_group_name    = local.resource_group_name
  location               = var.location
  os_type                = "Linux"
  sku_name               = "FC1"
  zone_balancing_enabled = var.zone_redundancy_enabled
  tags                   = local.tags
}

# Every app setting, from one place (modules/app_settings), matching shared/settings.py.
# Secrets are Key Vault references to a secret's version (azurerm_key_vault_secret.*.id): a new
# version (a rotated key, kafka_sas_scope switched, a new client secret) changes the settings, so
# the PUT below runs again and the app restarts on the new value at once.
module "app_settings" {
  source = "./modules/app_settings"

  kafka_bootstrap_servers   = local.kafka_bootstrap_servers
  kafka_password_secret_ids = { for name, secret in azurerm_key_vault_secret.kafka : name => secret.id }
  kafka_sasl_mechanism      = var.kafka_sasl_mechanism
  kafka_oauth = var.kafka_sasl_mechanism != "OAUTHBEARER" ? null : {
    client_id          = var.kafka_oauth.client_id
    client_secret_id   = azurerm_key_vault_secret.kafka_oauth_client_secret[0].id
    token_endpoint_url = coalesce(var.kafka_oauth.token_endpoint_url, "https://login.microsoftonline.com/${data.azurerm_client_config.current.tenant_id}/oauth2/v2.0/token")
    scope              = coalesce(var.kafka_oauth.scope, "https://${azurerm_eventhub_namespace.this.name}.servicebus.windows.net/.default")
  }
  lake_account_url          = trimsuffix(azurerm_storage_account.lake.primary_dfs_endpoint, "/")
  lake_file_system          = azurerm_storage_container.lake.name
  host_storage_account_name = azurerm_storage_account.host.name
  max_record_bytes          = var.max_record_bytes
  state_buckets             = var.state_buckets
  new_source_state_buckets  = local.new_source_state_buckets
  compaction_grace_minutes  = var.compaction_grace_minutes
  compaction_target_file_mb = var.compaction_target_file_mb
  schema_registry_url       = local.schema_registry_url
  schema_registry_group     = azurerm_eventhub_namespace_schema_group.sources.name
  durable_task_scheduler    = local.durable_task_scheduler_settings

  application_insights_connection_string = azurerm_application_insights.this.connection_string
  trace_sampling_ratio                   = var.trace_sampling_ratio

  sources = {
    for name, source in local.sources : name => {
      topic                     = azurerm_eventhub.source[name].name
      consumer_group            = source.consumer_group
      format                    = source.format
      state_enabled             = source.state_enabled
      generator_enabled         = source.generator_enabled
      processing_enabled        = try(source.processing_enabled, true) # locals.tf keeps only fields set
      generator_schedule        = source.generator_schedule
      generator_events_per_tick = source.generator_events_per_tick
      generator_iterations      = source.generator_iterations
      generator_seed            = source.generator_seed
      lag_threshold             = source.lag_threshold
      compaction_schedule       = source.compaction_schedule
    }
  }
}

resource "azurerm_function_app_flex_consumption" "this" {
  name                = local.names.function_app
  resource_group_name = local.resource_group_name
  location            = var.location
  service_plan_id     = azurerm_service_plan.this.id

  runtime_name           = "python"
  runtime_version        = "3.11"
  instance_memory_in_mb  = var.function_instance_memory_mb
  maximum_instance_count = var.function_maximum_instance_count

  # The deployment package is read with the app's own identity (role in main.roles.tf).
  storage_container_type      = "blobContainer"
  storage_container_endpoint  = "${azurerm_storage_account.host.primary_blob_endpoint}${azurerm_storage_container.deployment.name}"
  storage_authentication_type = "SystemAssignedIdentity"

  identity {
    type = "SystemAssigned"
  }

  # Durable Functions on Flex Consumption (docs/deploy.md): optional warm instance for the entities.
  dynamic "always_ready" {
    for_each = var.durable_always_ready_instances > 0 ? [var.durable_always_ready_instances] : []
    content {
      name           = "durable"
      instance_count = always_ready.value
    }
  }

  https_only                                     = true
  public_network_access_enabled                  = true
  webdeploy_publish_basic_authentication_enabled = false
  client_certificate_enabled                     = false

  site_config {
    application_insights_connection_string = module.app_settings.app_settings["APPLICATIONINSIGHTS_CONNECTION_STRING"]
    minimum_tls_version                    = "1.2"
    scm_minimum_tls_version                = "1.2"
    http2_enabled                          = true
  }

  tags = local.tags

  lifecycle {
    # azapi_resource_action.app_settings owns the app settings (below); this resource neither
    # sets nor watches them.
    ignore_changes = [app_settings]
  }
}

# The one owner of the function app's settings: one PUT of the whole set to the site's
# config/appsettings (ARM "Web Apps - Update Application Settings", which replaces every setting),
# after the site is created and again whenever azurerm updates it.
#
# Why not azurerm's app_settings: azurerm 4.x writes AzureWebJobsStorage itself, as a connection
# string with an empty AccountKey, whatever storage_authentication_type says (provider issues
# #29693, #30732, #33211; ExpandSiteConfigFunctionFlexConsumptionApp), and re-injects it on every
# update of the site. The host would use it instead of the identity-based
# AzureWebJobsStorage__accountName / __credential pair, and an empty value does not help either
# (azure-functions-host #11796: an empty string counts as present). So azurerm ignores the
# settings, and this PUT leaves the app with exactly module.app_settings.app_settings, which has
# no AzureWebJobsStorage key (tests/terraform/test_terraform_host_storage.py).
#
# replace_triggered_by runs the PUT again after any azurerm update of the site, which rewrites the
# settings with its own AzureWebJobsStorage; a changed setting runs it as an update (the Key Vault
# references name secret versions, so a new secret value is a changed setting). The action
# reads nothing back: a setting changed by hand outside Terraform stays until the next change
# here, or `terraform apply -replace=azapi_resource_action.app_settings` (docs/deploy.md).
#
# The app starts on these settings and resolves them with its own roles: its Key Vault
# references (Key Vault Secrets User on each secret), host storage, Application Insights and, with
# a Durable Task Scheduler backend (main.durable.tf), the task hub. A reference that fails at
# start stays unresolved until the references are read again (a restart, a settings change, or
# App Service's refresh within 24 hours), so the PUT waits for those roles to propagate
# (time_sleep.function_app_roles) rather than start the app on them too early.
resource "azapi_resource_action" "app_settings" {
  type        = "Microsoft.Web/sites@2024-04-01"
  resource_id = azurerm_function_app_flex_consumption.this.id
  action      = "config/appsettings"
  method      = "PUT"

  body = {
    properties = module.app_settings.app_settings
  }

  depends_on = [
    azurerm_role_assignment.function_app,
    azurerm_role_assignment.durable_task_data_contributor,
    time_sleep.function_app_roles,
  ]

  lifecycle {
    replace_triggered_by = [azurerm_function_app_flex_consumption.this]
  }
}
