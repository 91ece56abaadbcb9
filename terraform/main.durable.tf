# The Durable Task Scheduler (DTS) backend option for the Durable entities (issue 19). Off by
# default: var.durable_backend = "azure_storage" keeps Durable Functions on the host storage
# account, the cheaper backend for the proof-of-concept profile by `python -m tools.cost`
# (docs/cost.md: DTS has no list price in a stored copy, Dedicated bills capacity units every
# hour, and the Azure Storage backend costs about USD 32 a month at 10 events/s). From about
# 1,000 events/s with keyed state the Azure Storage backend is past its throughput (docs/scale.md)
# and "dts_dedicated" is the way on. azurerm has no resource for DTS; azapi creates it, its body
# checked against the Microsoft.DurableTask ARM reference (tests/terraform/test_terraform_durable.py).
locals {
  durable_task_scheduler = var.durable_backend == "azure_storage" ? {} : {
    this = var.durable_backend == "dts_dedicated" ? { name = "Dedicated", capacity = var.dts_capacity_units } : { name = "Consumption" }
  }
  durable_task_hub_name = "streamingpoc"
}

resource "azapi_resource" "durable_task_scheduler" {
  for_each = local.durable_task_scheduler

  type      = "Microsoft.DurableTask/schedulers@2025-11-01"
  name      = "dts-${var.prefix}-${local.suffix}"
  parent_id = local.resource_group_id
  location  = var.location
  body = {
    properties = {
      # The data plane takes Entra ID tokens only (no keys); the app reaches it over its public
      # endpoint like the storage accounts (docs/deploy.md, Network exposure).
      ipAllowlist = ["0.0.0.0/0"]
      sku         = each.value
    }
  }
  response_export_values = ["properties.endpoint"]
  tags                   = local.tags
}

resource "azapi_resource" "durable_task_hub" {
  for_each = local.durable_task_scheduler

  type      = "Microsoft.DurableTask/schedulers/taskHubs@2025-11-01"
  name      = local.durable_task_hub_name
  parent_id = azapi_resource.durable_task_scheduler[each.key].id
  body = {
    properties = {}
  }
}

# The app's identity reads and writes orchestration and entity state in its one task hub only: a
# role on the scheduler would reach every task hub in it (Microsoft Learn, "Configure managed
# identity for Durable Task Scheduler", Set the scope).
resource "azurerm_role_assignment" "durable_task_data_contributor" {
  for_each = local.durable_task_scheduler

  scope                = azapi_resource.durable_task_hub[each.key].id
  role_definition_name = "Durable Task Data Contributor"
  principal_id         = azurerm_function_app_flex_consumption.this.identity[0].principal_id
  principal_type       = "ServicePrincipal"
}

locals {
  # What modules/app_settings needs to point the app at the scheduler (main.functionapp.tf);
  # null with the Azure Storage backend.
  durable_task_scheduler_settings = var.durable_backend == "azure_storage" ? null : {
    endpoint = azapi_resource.durable_task_scheduler["this"].output.properties.endpoint
    task_hub = local.durable_task_hub_name
  }
}
