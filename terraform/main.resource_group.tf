resource "azurerm_resource_group" "this" {
  count = var.resource_group_name == null ? 1 : 0

  name     = local.names.resource_group
  location = var.location
  tags     = local.tags
}

data "azurerm_resource_group" "existing" {
  count = var.resource_group_name == null ? 0 : 1

  name = var.resource_group_name
}

data "azurerm_client_config" "current" {}

locals {
  resource_group_name = var.resource_group_name == null ? azurerm_resource_group.this[0].name : data.azurerm_resource_group.existing[0].name
  resource_group_id   = var.resource_group_name == null ? azurerm_resource_group.this[0].id : data.azurerm_resource_group.existing[0].id
}
