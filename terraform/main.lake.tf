# ADLS Gen2: hierarchical namespace, identity-only access (no shared keys, no SAS, no
# anonymous reads), HTTPS and TLS 1.2 only.
resource "azurerm_storage_account" "lake" {
  #checkov:skip=CKV_AZURE_59:The Flex Consumption app is not VNet-integrated and reaches the lake over its public endpoint; access needs an Entra ID token and a data role (shared keys are off). See docs/deploy.md, Network exposure.
  #checkov:skip=CKV_AZURE_35:Same reason: a deny-by-default firewall would block the function app, whose outbound addresses are not fixed on Flex Consumption.
  #checkov:skip=CKV2_AZURE_33:No private endpoint for the same reason: private networking is out of scope for this deployment.
  #checkov:skip=CKV2_AZURE_1:Encrypted at rest with Microsoft-managed keys; customer-managed keys (a key, a vault key policy and an identity) are not required for this proof of concept.
  #checkov:skip=CKV_AZURE_206:Replication is var.storage_replication_type: LRS by default for a proof of concept, ZRS in terraform/production.tfvars.example; geo-replication (GZRS/RAGZRS) is left to the user, since a second region doubles the storage cost.
  #checkov:skip=CKV_AZURE_33:Queue service logging does not apply: the lake uses no queues (and the provider's data plane is off, see terraform.tf).
  name                     = local.names.lake_storage
  resource_group_name      = local.resource_group_name
  location                 = var.location
  account_kind             = "StorageV2"
  account_tier             = "Standard"
  account_replication_type = var.storage_replication_type
  access_tier              = "Hot"
  is_hns_enabled           = true

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

# The lake's file system (a container of an HNS account is its file system). Created through
# ARM, so Terraform needs no data-plane access to the account.
resource "azurerm_storage_container" "lake" {
  #checkov:skip=CKV2_AZURE_21:Checkov only accepts the legacy Storage Insights link, which needs the account key (disabled here). Blob logging is the diagnostic setting below instead, which keeps var.lake_diagnostic_log_categories: by default deletes only (StorageDelete), not reads or writes (StorageRead, StorageWrite: a billed row per request, added by the user).
  name                  = var.lake_file_system
  storage_account_id    = azurerm_storage_account.lake.id
  container_access_type = "private"
}

# Who deleted what in the lake (StorageBlobLogs, DFS operations included); reads and writes on request.
resource "azurerm_monitor_diagnostic_setting" "lake_blob" {
  count = var.diagnostic_settings_enabled ? 1 : 0

  name                       = "to-log-analytics"
  target_resource_id         = "${azurerm_storage_account.lake.id}/blobServices/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  # One row per storage request for each category kept: var.lake_diagnostic_log_categories
  # keeps deletes only by default (tools.cost prices the others).
  dynamic "enabled_log" {
    for_each = toset(var.lake_diagnostic_log_categories)

    content {
      category = enabled_log.value
    }
  }
}

# Raw micro-batches are deleted raw_retention_days after they landed: compact_<source> has copied
# their rows into curated/<source> (a Delta table, kept) long before, and the compaction-lag alert
# fires if it has not. Dead letters cool after N days (optionally expire). The generator's
# progress files (_generator/) and curated/ are not touched.
resource "azurerm_storage_management_policy" "lake" {
  storage_account_id = azurerm_storage_account.lake.id

  dynamic "rule" {
    for_each = toset(["raw", "deadletter"])

    content {
      name    = "${rule.key}-lifecycle"
      enabled = true

      filters {
        blob_types   = ["blockBlob"]
        prefix_match = ["${azurerm_storage_container.lake.name}/${rule.key}/"]
      }

      actions {
        base_blob {
          tier_to_cool_after_days_since_modification_greater_than = rule.key == "raw" ? null : var.lake_cool_after_days
          delete_after_days_since_modification_greater_than       = rule.key == "raw" ? var.raw_retention_days : var.lake_delete_after_days
        }
      }
    }
  }
}
