# Alerts on the three ways the pipeline goes wrong: functions fail, records are rejected, or
# events pile up unread. Queries use the code's metric names (local.metrics, main.workbook.tf).

resource "azurerm_monitor_action_group" "this" {
  count = length(var.alert_email_addresses) > 0 ? 1 : 0

  name                = local.names.action_group
  resource_group_name = local.resource_group_name
  short_name          = substr("spoc${local.suffix}", 0, 12)

  dynamic "email_receiver" {
    for_each = toset(var.alert_email_addresses)

    content {
      name                    = "email-${index(var.alert_email_addresses, email_receiver.value)}"
      email_address           = email_receiver.value
      use_common_alert_schema = true
    }
  }

  tags = local.tags
}

locals {
  action_group_ids = azurerm_monitor_action_group.this[*].id
  # The compaction-lag alert's lag for a source whose compaction reported nothing in its window (not running):
  # past any threshold compaction_lag_alert_minutes may take (at most half of 29 days), and plainly not a lag.
  compaction_not_running_minutes = 999999
}

# Failed invocations per function, from the exceptions a failed execution logs at Error under its operation
# id. (host.json keeps Host.Results at Warning: no request row for a success; a failure's, written at Error, is
# kept, but this counts the exceptions.)
resource "azurerm_monitor_scheduled_query_rules_alert_v2" "function_failures" {
  name                 = "${local.names.alert}-function-failures"
  display_name         = "StreamingPOC: function failures"
  description          = "A function failed more than ${var.function_failure_threshold} invocations in 15 minutes. Processing failures are transient (storage or broker unavailable) and retried; see the workbook's Failures panel and the exceptions table."
  resource_group_name  = local.resource_group_name
  location             = var.location
  scopes               = [azurerm_application_insights.this.id]
  enabled              = var.alerts_enabled
  severity             = 2
  evaluation_frequency = "PT5M"
  window_duration      = "PT15M"

  criteria {
    query                   = <<-KQL
      exceptions
      | where operation_Name != ""
      | summarize failures = dcount(operation_Id) by function_name = operation_Name
    KQL
    time_aggregation_method = "Total"
    metric_measure_column   = "failures"
    operator                = "GreaterThan"
    threshold               = var.function_failure_threshold

    dimension {
      name     = "function_name"
      operator = "Include"
      values   = ["*"]
    }

    failing_periods {
      minimum_failing_periods_to_trigger_alert = 1
      number_of_evaluation_periods             = 1
    }
  }

  auto_mitigation_enabled = true

  dynamic "action" {
    for_each = length(local.action_group_ids) > 0 ? [1] : []

    content {
      action_groups = local.action_group_ids
    }
  }

  tags = local.tags
}

# Share of received records that went to the dead-letter area, per source.
resource "azurerm_monitor_scheduled_query_rules_alert_v2" "dead_letter_rate" {
  name                 = "${local.names.alert}-dead-letter-rate"
  display_name         = "StreamingPOC: dead-letter rate"
  description          = "A source dead-lettered more than ${var.dead_letter_rate_threshold * 100}% of the records it received in 15 minutes (bad JSON, schema violations, oversized records). Dead letters keep the raw bytes under deadletter/ in the lake; the workbook shows them by reason."
  resource_group_name  = local.resource_group_name
  location             = var.location
  scopes               = [azurerm_application_insights.this.id]
  enabled              = var.alerts_enabled
  severity             = 2
  evaluation_frequency = "PT5M"
  window_duration      = "PT15M"

  criteria {
    query                   = <<-KQL
      let received = customMetrics
          | where name == "${local.metrics.events_received}"
          | summarize received = sum(valueSum) by source = tostring(customDimensions.source);
      customMetrics
      | where name == "${local.metrics.events_deadlettered}"
      | summarize dead_letters = sum(valueSum) by source = tostring(customDimensions.source)
      | join kind=inner received on source
      | where received > 0
      | project source, dead_letter_rate = dead_letters / received
    KQL
    time_aggregation_method = "Maximum"
    metric_measure_column   = "dead_letter_rate"
    operator                = "GreaterThan"
    threshold               = var.dead_letter_rate_threshold

    dimension {
      name     = "source"
      operator = "Include"
      values   = ["*"]
    }

    failing_periods {
      minimum_failing_periods_to_trigger_alert = 1
      number_of_evaluation_periods             = 1
    }
  }

  auto_mitigation_enabled = true

  dynamic "action" {
    for_each = length(local.action_group_ids) > 0 ? [1] : []

    content {
      action_groups = local.action_group_ids
    }
  }

  tags = local.tags
}

# Compaction falling behind: a closed hour of raw files is still not in the curated table
# (compact_<source> failing, e.g. a raw file it cannot read or a column whose type changed, or
# not running). Raw files are deleted after raw_retention_days, so this must not go unnoticed.
# Every run reports its source's lag (0 when it is up to date) before any work; a source with no
# report in the window (its timer not firing, or every run failing before planning) is taken as
# not running, with a lag of local.compaction_not_running_minutes.
resource "azurerm_monitor_scheduled_query_rules_alert_v2" "compaction_lag" {
  name                 = "${local.names.alert}-compaction-lag"
  display_name         = "StreamingPOC: compaction lag"
  description          = "A raw file of a closed hour has waited more than ${var.compaction_lag_alert_minutes} minutes (since the later of its hour's end and its landing) to be compacted into curated/<source>, or compact_<source> reported nothing for an hour (shown as a lag of ${local.compaction_not_running_minutes} minutes: not running). See the workbook's Compaction panels and the compact_<source> failures."
  resource_group_name  = local.resource_group_name
  location             = var.location
  scopes               = [azurerm_application_insights.this.id]
  enabled              = var.alerts_enabled
  severity             = 2
  evaluation_frequency = "PT15M"
  window_duration      = "PT1H"

  criteria {
    query                   = <<-KQL
      let expected = datatable(source: string) [${join(", ", [for name in sort(keys(local.sources)) : jsonencode(name)])}];
      let reported = customMetrics
      | where name == "${local.metrics.compaction_lag}"
      | summarize lag_minutes = max(valueMax) / 60.0 by source = tostring(customDimensions.source);
      expected
      | join kind=leftouter reported on source
      | project source, lag_minutes = coalesce(lag_minutes, real(${local.compaction_not_running_minutes}))
    KQL
    time_aggregation_method = "Maximum"
    metric_measure_column   = "lag_minutes"
    operator                = "GreaterThan"
    threshold               = var.compaction_lag_alert_minutes

    dimension {
      name     = "source"
      operator = "Include"
      values   = ["*"]
    }

    failing_periods {
      minimum_failing_periods_to_trigger_alert = 1
      number_of_evaluation_periods             = 1
    }
  }

  auto_mitigation_enabled = true

  dynamic "action" {
    for_each = length(local.action_group_ids) > 0 ? [1] : []

    content {
      action_groups = local.action_group_ids
    }
  }

  tags = local.tags
}

# A failed compaction run: an hour not compacted, a raw file quarantined or left out (shared/compaction/job.py).
# compact_<source> runs every 15 minutes without a retry policy, so it never reaches function_failure_threshold
# failures in the function-failures rule's 15 minutes; and a run that quarantines a file fails once with the lag
# back at 0, which the compaction-lag rule does not see. Any failure in the hour fires this one.
resource "azurerm_monitor_scheduled_query_rules_alert_v2" "compaction_failures" {
  name                 = "${local.names.alert}-compaction-failures"
  display_name         = "StreamingPOC: compaction failures"
  description          = "compact_<source> failed in the last hour: an hour not compacted, or a raw file quarantined (moved under deadletter/<source>/quarantine/ with its reason) or left out; the exception names it. A lake outage is retried by the next run. See the exceptions table and the workbook's Compaction panels."
  resource_group_name  = local.resource_group_name
  location             = var.location
  scopes               = [azurerm_application_insights.this.id]
  enabled              = var.alerts_enabled
  severity             = 2
  evaluation_frequency = "PT15M"
  window_duration      = "PT1H"

  criteria {
    query                   = <<-KQL
      exceptions
      | where operation_Name startswith "compact_"
      | summarize failures = dcount(operation_Id) by function_name = operation_Name
    KQL
    time_aggregation_method = "Total"
    metric_measure_column   = "failures"
    operator                = "GreaterThan"
    threshold               = 0

    dimension {
      name     = "function_name"
      operator = "Include"
      values   = ["*"]
    }

    failing_periods {
      minimum_failing_periods_to_trigger_alert = 1
      number_of_evaluation_periods             = 1
    }
  }

  auto_mitigation_enabled = true

  dynamic "action" {
    for_each = length(local.action_group_ids) > 0 ? [1] : []

    content {
      action_groups = local.action_group_ids
    }
  }

  tags = local.tags
}

# A key bucket nearing the size its backend holds (shared/state/bucket_state.py MAX_BUCKET_BYTES, 240,000
# bytes; docs/scale.md): past it the bucket evicts the keys updated least recently. The remedy is a larger N
# (python -m tools.migrate_state --to-buckets). Evictions count in the same query, so one past the bound fires too.
resource "azurerm_monitor_scheduled_query_rules_alert_v2" "state_bucket_full" {
  name                 = "${local.names.alert}-state-bucket-full"
  display_name         = "StreamingPOC: key bucket near capacity"
  description          = "A key bucket's state passed 80% of the 240,000 bytes it may hold, or a bucket evicted keys: raise the source's bucket count (python -m tools.migrate_state --to-buckets, docs/scale.md)."
  resource_group_name  = local.resource_group_name
  location             = var.location
  scopes               = [azurerm_application_insights.this.id]
  enabled              = var.alerts_enabled
  severity             = 2
  evaluation_frequency = "PT15M"
  window_duration      = "PT1H"

  criteria {
    query                   = <<-KQL
      customMetrics
      | where name in ("${local.metrics.state_bucket_bytes}", "${local.metrics.state_evicted_keys}")
      | extend fullness = iff(name == "${local.metrics.state_evicted_keys}", 100.0, valueMax * 100.0 / 240000)
      | summarize fullness_percent = max(fullness) by source = tostring(customDimensions.source)
    KQL
    time_aggregation_method = "Maximum"
    metric_measure_column   = "fullness_percent"
    operator                = "GreaterThan"
    threshold               = 80

    dimension {
      name     = "source"
      operator = "Include"
      values   = ["*"]
    }

    failing_periods {
      minimum_failing_periods_to_trigger_alert = 1
      number_of_evaluation_periods             = 1
    }
  }

  auto_mitigation_enabled = true

  dynamic "action" {
    for_each = length(local.action_group_ids) > 0 ? [1] : []

    content {
      action_groups = local.action_group_ids
    }
  }

  tags = local.tags
}

# A partition waiting on a failure that will not heal by itself (403, missing container or
# entity function, unsafe path): its batch is retried forever so nothing is skipped, and this
# alert says so. The processing logs name the partition, offsets, attempts and cause once a minute.
resource "azurerm_monitor_scheduled_query_rules_alert_v2" "partition_waiting" {
  name                 = "${local.names.alert}-partition-waiting"
  display_name         = "StreamingPOC: partition waiting on infrastructure"
  description          = "A processing function failed batches with an infrastructure error (not transient) in the last 15 minutes: its partition waits until someone fixes the cause. Find 'partition waiting' in traces for source, partition, offsets and cause; the Event Hubs backlog grows meanwhile."
  resource_group_name  = local.resource_group_name
  location             = var.location
  scopes               = [azurerm_application_insights.this.id]
  enabled              = var.alerts_enabled
  severity             = 1
  evaluation_frequency = "PT5M"
  window_duration      = "PT15M"

  criteria {
    query                   = <<-KQL
      customMetrics
      | where name == "${local.metrics.batch_failures}" and tostring(customDimensions.error_class) == "infrastructure"
      | summarize failed_attempts = sum(valueSum) by source = tostring(customDimensions.source)
    KQL
    time_aggregation_method = "Total"
    metric_measure_column   = "failed_attempts"
    operator                = "GreaterThan"
    threshold               = 0

    dimension {
      name     = "source"
      operator = "Include"
      values   = ["*"]
    }

    failing_periods {
      minimum_failing_periods_to_trigger_alert = 1
      number_of_evaluation_periods             = 1
    }
  }

  auto_mitigation_enabled = true

  dynamic "action" {
    for_each = length(local.action_group_ids) > 0 ? [1] : []

    content {
      action_groups = local.action_group_ids
    }
  }

  tags = local.tags
}

# Unprocessed events, per hub: events arrive but nothing reads them (the source's processing
# function is stalled, failing before it commits, or its trigger is not running). One rule
# per hub because a multi-condition metric alert cannot split by "all values" of a dimension.
resource "azurerm_monitor_metric_alert" "eventhubs_unprocessed" {
  # not for a source whose processing is stopped on purpose (processing_enabled = false, docs/deploy.md)
  for_each = { for name, source in local.sources : name => source if try(source.processing_enabled, true) }

  name                = "${local.names.alert}-unprocessed-${each.key}"
  description         = "Events arrived on event hub ${each.value.topic} in the last 15 minutes but none were read: process_${each.key} is not consuming."
  resource_group_name = local.resource_group_name
  scopes              = [azurerm_eventhub_namespace.this.id]
  enabled             = var.alerts_enabled
  severity            = 1
  frequency           = "PT5M"
  window_size         = "PT15M"
  auto_mitigate       = true

  criteria {
    metric_namespace = "Microsoft.EventHub/namespaces"
    metric_name      = "IncomingMessages"
    aggregation      = "Total"
    operator         = "GreaterThan"
    threshold        = 0

    dimension {
      name     = "EntityName"
      operator = "Include"
      values   = [azurerm_eventhub.source[each.key].name]
    }
  }

  criteria {
    metric_namespace = "Microsoft.EventHub/namespaces"
    metric_name      = "OutgoingMessages"
    aggregation      = "Total"
    operator         = "LessThan"
    threshold        = 1

    dimension {
      name     = "EntityName"
      operator = "Include"
      values   = [azurerm_eventhub.source[each.key].name]
    }
  }

  dynamic "action" {
    for_each = local.action_group_ids

    content {
      action_group_id = action.value
    }
  }

  tags = local.tags
}

# Backlog building up: the namespace rejects requests because its throughput units are used
# up, so producers and consumers fall behind.
resource "azurerm_monitor_metric_alert" "eventhubs_throttled" {
  name                = "${local.names.alert}-eventhubs-throttled"
  description         = "Event Hubs throttled requests in the last 15 minutes: raise eventhubs_capacity or eventhubs_maximum_throughput_units."
  resource_group_name = local.resource_group_name
  scopes              = [azurerm_eventhub_namespace.this.id]
  enabled             = var.alerts_enabled
  severity            = 2
  frequency           = "PT5M"
  window_size         = "PT15M"
  auto_mitigate       = true

  criteria {
    metric_namespace = "Microsoft.EventHub/namespaces"
    metric_name      = "ThrottledRequests"
    aggregation      = "Total"
    operator         = "GreaterThan"
    threshold        = 0
  }

  dynamic "action" {
    for_each = local.action_group_ids

    content {
      action_group_id = action.value
    }
  }

  tags = local.tags
}
