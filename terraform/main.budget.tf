# A monthly cost budget on the resource group (issue 19): emails the alert recipients, or the
# subscription's owners when there are none, at 80% of the budget spent and at 100% forecast.
# var.monthly_budget_usd defaults to what `python -m tools.cost` recommends for this deployment
# (the 10 events/s month with 50% headroom; tests/unit/test_cost.py keeps the two equal).
resource "azurerm_consumption_budget_resource_group" "this" {
  count = var.monthly_budget_usd > 0 ? 1 : 0

  name              = "budget-${var.prefix}-${local.suffix}"
  resource_group_id = local.resource_group_id
  amount            = var.monthly_budget_usd
  time_grain        = "Monthly"

  time_period {
    # A budget starts on the first of a month; later plans keep the first start date.
    start_date = formatdate("YYYY-MM-01'T'00:00:00Z", timestamp())
  }

  notification {
    enabled        = true
    threshold      = 80
    operator       = "GreaterThanOrEqualTo"
    threshold_type = "Actual"
    contact_emails = var.alert_email_addresses
    contact_groups = local.action_group_ids
    contact_roles  = length(var.alert_email_addresses) > 0 ? [] : ["Owner"]
  }

  notification {
    enabled        = true
    threshold      = 100
    operator       = "GreaterThanOrEqualTo"
    threshold_type = "Forecasted"
    contact_emails = var.alert_email_addresses
    contact_groups = local.action_group_ids
    contact_roles  = length(var.alert_email_addresses) > 0 ? [] : ["Owner"]
  }

  lifecycle {
    ignore_changes = [time_period]
  }
}
