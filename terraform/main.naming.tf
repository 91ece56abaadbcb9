resource "random_string" "suffix" {
  length  = 6
  lower   = true
  upper   = false
  numeric = true
  special = false
}

locals {
  suffix = random_string.suffix.result

  # Every name derives from var.prefix and the random suffix (CAF abbreviations).
  # Storage accounts: 3-24 lowercase letters and digits; Key Vault: 3-24; function app: <= 32
  # so its host ID stays unique (see variables.tf for the prefix limits that guarantee this).
  names = {
    resource_group       = "rg-${var.prefix}-${local.suffix}"
    log_analytics        = "log-${var.prefix}-${local.suffix}"
    application_insights = "appi-${var.prefix}-${local.suffix}"
    eventhubs_namespace  = "evhns-${var.prefix}-${local.suffix}"
    lake_storage         = "st${var.prefix}lake${local.suffix}"
    host_storage         = "st${var.prefix}func${local.suffix}"
    key_vault            = "kv-${var.prefix}-${local.suffix}"
    service_plan         = "asp-${var.prefix}-${local.suffix}"
    function_app         = "func-${var.prefix}-${local.suffix}"
    action_group         = "ag-${var.prefix}-${local.suffix}"
    alert                = "alert-${var.prefix}-${local.suffix}"
  }
}
