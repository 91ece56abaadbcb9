# Versions are pinned to what the offline checks validate against: azurerm 4.55 is the
# provider version of the schema in @cdktf/provider-azurerm 14.23.1, time 0.13 that of
# @cdktf/provider-time 11.0.1 (tests/terraform). azapi (the function app's settings,
# main.functionapp.tf) is checked against the azapi 2.13 schema of cdktn-provider-azapi 1.0.0;
# azapi 2.8 is the first whose embedded schemas hold Microsoft.DurableTask@2025-11-01 (before it,
# plan refuses the api-version of main.durable.tf).
terraform {
  required_version = ">= 1.9, < 2.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.55"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
    # Microsoft.DurableTask (the Durable Task Scheduler option, main.durable.tf) has no azurerm
    # resource; the function app's settings are written through azapi too (main.functionapp.tf).
    azapi = { source = "Azure/azapi", version = "~> 2.8" }
    time = {
      source  = "hashicorp/time"
      version = "~> 0.13"
    }
  }
}

provider "azurerm" {
  # Null falls back to ARM_SUBSCRIPTION_ID (azurerm 4.x requires one of the two).
  subscription_id = var.subscription_id
  # Shared keys are off on both storage accounts: never fall back to them.
  storage_use_azuread = true
  # The Durable Task Scheduler (azapi) is not among azurerm's default registrations: a fresh
  # subscription would refuse the scheduler with MissingSubscriptionRegistration.
  resource_providers_to_register = var.durable_backend == "azure_storage" ? [] : ["Microsoft.DurableTask"]

  features {
    key_vault {
      # Purge protection is on: a destroyed vault stays soft-deleted for its retention period.
      purge_soft_delete_on_destroy    = false
      recover_soft_deleted_key_vaults = true
    }
    storage {
      # Containers, file systems and lifecycle rules are managed through ARM only, so the
      # identity running Terraform needs no data-plane role on the storage accounts.
      data_plane_available = false
    }
  }
}
