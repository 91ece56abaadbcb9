locals {
  # The metric names the code emits (shared/metric_names.py, OpenTelemetry instruments that
  # land in Application Insights customMetrics with the attributes `source` and, for dead
  # letters, `reason`, for batch failures `error_class`). tests/terraform checks every name used here exists in the code.
  metrics = {
    events_received      = "streamingpoc.events.received"
    events_landed        = "streamingpoc.events.landed"
    events_deadlettered  = "streamingpoc.events.deadlettered"
    events_late          = "streamingpoc.events.late"
    anomalies            = "streamingpoc.anomalies"
    batch_duration       = "streamingpoc.batch.duration"
    batch_size           = "streamingpoc.batch.size"
    end_to_end_latency   = "streamingpoc.end_to_end.latency"
    lake_write_duration  = "streamingpoc.lake.write.duration"
    lake_bytes_written   = "streamingpoc.lake.bytes_written"
    lake_files_written   = "streamingpoc.lake.files_written"
    entity_signals       = "streamingpoc.entity.signals"
    compaction_hours     = "streamingpoc.compaction.hours"
    compaction_rows      = "streamingpoc.compaction.rows"
    compaction_files_in  = "streamingpoc.compaction.files_in"
    compaction_files_out = "streamingpoc.compaction.files_out"
    compaction_lag       = "streamingpoc.compaction.lag"
    compaction_drift     = "streamingpoc.compaction.drift"
    batch_failures       = "streamingpoc.batch.failures"
    consumer_lag         = "streamingpoc.consumer.lag"
    state_bucket_bytes   = "streamingpoc.state.bucket_bytes"
    state_evicted_keys   = "streamingpoc.state.evicted_keys"
  }

  # Counters arrive as per-interval sums (valueSum), histograms as sum/count/min/max per
  # interval, so sum(valueSum) is a count and sum(valueSum)/sum(valueCount) an average.
  # failed_invocations: batch_duration is recorded only once a batch landed, so its count is the
  # successful invocations; a full outer join keeps a source whose every invocation failed, and
  # the failure rate is failed / (successful + failed).
  workbook_queries = {
    throughput             = <<-KQL
      customMetrics
      | where name in ("${local.metrics.events_received}", "${local.metrics.events_landed}")
      | extend source = tostring(customDimensions.source), series = iff(name == "${local.metrics.events_received}", "received", "landed")
      | summarize events = sum(valueSum) by bin(timestamp, {TimeRange:grain}), series = strcat(source, " ", series)
      | render timechart
    KQL
    failures               = <<-KQL
      exceptions
      | where operation_Name != ""
      | summarize failed = dcount(operation_Id) by bin(timestamp, {TimeRange:grain}), function_name = operation_Name
      | render timechart
    KQL
    waiting_partitions     = <<-KQL
      customMetrics
      | where name == "${local.metrics.batch_failures}"
      | extend source = tostring(customDimensions.source), error_class = tostring(customDimensions.error_class)
      | summarize failed_attempts = sum(valueSum) by bin(timestamp, {TimeRange:grain}), series = strcat(source, " ", error_class)
      | render timechart
    KQL
    failed_invocations     = <<-KQL
      let failed = exceptions
          | where operation_Name startswith "process_"
          | summarize failed = dcount(operation_Id) by source = substring(operation_Name, 8);
      customMetrics
      | where name == "${local.metrics.batch_duration}"
      | summarize invocations = sum(valueCount), avg_duration_ms = round(sum(valueSum) / sum(valueCount), 1), max_duration_ms = max(valueMax) by source = tostring(customDimensions.source)
      | join kind=fullouter failed on source
      | extend source = coalesce(source, source1), invocations = coalesce(invocations, long(0)), failed = coalesce(failed, long(0))
      | extend failure_rate = round(100.0 * failed / (invocations + failed), 2)
      | project source, invocations, failed, failure_rate, avg_duration_ms, max_duration_ms
      | order by failed desc
    KQL
    dead_letters_by_reason = <<-KQL
      customMetrics
      | where name == "${local.metrics.events_deadlettered}"
      | extend source = tostring(customDimensions.source), reason = tostring(customDimensions.reason)
      | summarize dead_letters = sum(valueSum) by bin(timestamp, {TimeRange:grain}), series = strcat(source, " / ", reason)
      | render barchart
    KQL
    dead_letter_rate       = <<-KQL
      let received = customMetrics
          | where name == "${local.metrics.events_received}"
          | summarize received = sum(valueSum) by source = tostring(customDimensions.source);
      customMetrics
      | where name == "${local.metrics.events_deadlettered}"
      | summarize dead_letters = sum(valueSum) by source = tostring(customDimensions.source), reason = tostring(customDimensions.reason)
      | join kind=inner received on source
      | project source, reason, dead_letters, received, dead_letter_percent = round(100.0 * dead_letters / received, 3)
      | order by dead_letters desc
    KQL
    batch_latency          = <<-KQL
      customMetrics
      | where name in ("${local.metrics.batch_duration}", "${local.metrics.end_to_end_latency}")
      | extend source = tostring(customDimensions.source), series = iff(name == "${local.metrics.batch_duration}", "batch", "end-to-end")
      | summarize avg_ms = sum(valueSum) / sum(valueCount) by bin(timestamp, {TimeRange:grain}), series = strcat(source, " ", series)
      | render timechart
    KQL
    batch_size             = <<-KQL
      customMetrics
      | where name == "${local.metrics.batch_size}"
      | extend source = tostring(customDimensions.source)
      | summarize avg_records = sum(valueSum) / sum(valueCount), max_records = max(valueMax) by bin(timestamp, {TimeRange:grain}), source
      | render timechart
    KQL
    lake_writes            = <<-KQL
      customMetrics
      | where name in ("${local.metrics.lake_files_written}", "${local.metrics.lake_bytes_written}", "${local.metrics.lake_write_duration}")
      | extend source = tostring(customDimensions.source)
      | summarize files = sumif(valueSum, name == "${local.metrics.lake_files_written}"),
                  megabytes = round(sumif(valueSum, name == "${local.metrics.lake_bytes_written}") / 1048576.0, 2),
                  avg_write_ms = round(sumif(valueSum, name == "${local.metrics.lake_write_duration}") / sumif(valueCount, name == "${local.metrics.lake_write_duration}"), 1)
          by source
      | order by source asc
    KQL
    lake_files_over_time   = <<-KQL
      customMetrics
      | where name == "${local.metrics.lake_files_written}"
      | extend source = tostring(customDimensions.source)
      | summarize files = sum(valueSum) by bin(timestamp, {TimeRange:grain}), source
      | render timechart
    KQL
    compaction             = <<-KQL
      customMetrics
      | where name in ("${local.metrics.compaction_hours}", "${local.metrics.compaction_rows}", "${local.metrics.compaction_files_in}", "${local.metrics.compaction_files_out}", "${local.metrics.compaction_lag}")
      | extend source = tostring(customDimensions.source)
      | summarize hours = sumif(valueSum, name == "${local.metrics.compaction_hours}"),
                  rows = sumif(valueSum, name == "${local.metrics.compaction_rows}"),
                  raw_files_in = sumif(valueSum, name == "${local.metrics.compaction_files_in}"),
                  curated_files_out = sumif(valueSum, name == "${local.metrics.compaction_files_out}"),
                  max_lag_minutes = round(maxif(valueMax, name == "${local.metrics.compaction_lag}") / 60.0, 1)
          by source
      | order by source asc
    KQL
    schema_drift           = <<-KQL
      customMetrics
      | where name == "${local.metrics.compaction_drift}"
      | extend source = tostring(customDimensions.source), kind = tostring(customDimensions.kind)
      | summarize changes = sum(valueSum) by source, kind
      | where changes > 0
      | order by changes desc
    KQL
    compaction_lag         = <<-KQL
      customMetrics
      | where name == "${local.metrics.compaction_lag}"
      | extend source = tostring(customDimensions.source)
      | summarize lag_minutes = max(valueMax) / 60.0 by bin(timestamp, {TimeRange:grain}), source
      | render timechart
    KQL
    state                  = <<-KQL
      customMetrics
      | where name in ("${local.metrics.entity_signals}", "${local.metrics.events_late}", "${local.metrics.anomalies}")
      | extend source = tostring(customDimensions.source), metric = replace_string(name, "streamingpoc.", "")
      | summarize total = sum(valueSum) by source, metric
      | order by source asc, metric asc
    KQL
  }

  workbook_panels = [
    { name = "throughput", title = "Throughput: events received and landed per source", query = "throughput", visualization = "timechart", width = "50" },
    { name = "failures", title = "Failures: failed invocations per function", query = "failures", visualization = "timechart", width = "50" },
    { name = "waiting_partitions", title = "Waiting partitions: failed batch attempts per source and error class (the partition is retried, nothing skipped)", query = "waiting_partitions", visualization = "timechart", width = "50" },
    { name = "failed_invocations", title = "Batches, failed invocations and batch duration per source", query = "failed_invocations", visualization = "table", width = "50" },
    { name = "dead_letter_rate", title = "Dead letters per source and reason (share of received)", query = "dead_letter_rate", visualization = "table", width = "50" },
    { name = "dead_letters_by_reason", title = "Dead letters over time by source and reason", query = "dead_letters_by_reason", visualization = "barchart", width = "50" },
    { name = "batch_latency", title = "Batch latency: processing time and end-to-end latency (ms)", query = "batch_latency", visualization = "timechart", width = "50" },
    { name = "batch_size", title = "Records per invocation", query = "batch_size", visualization = "timechart", width = "50" },
    { name = "lake_files_over_time", title = "Lake files written per source", query = "lake_files_over_time", visualization = "timechart", width = "50" },
    { name = "lake_writes", title = "Lake writes per source: files, MB and write time", query = "lake_writes", visualization = "table", width = "50" },
    { name = "compaction", title = "Compaction per source: hours, rows, raw files in, curated files out, worst lag", query = "compaction", visualization = "table", width = "50" },
    { name = "compaction_lag", title = "Compaction lag: longest wait of an uncovered raw file (minutes)", query = "compaction_lag", visualization = "timechart", width = "50" },
    { name = "schema_drift", title = "Schema drift per source: new fields kept in _extra, new columns, type changes (python -m tools.query --drift)", query = "schema_drift", visualization = "table", width = "50" },
    { name = "state", title = "Keyed state: entity signals, late events and anomalies", query = "state", visualization = "table", width = "50" },
  ]

  workbook = {
    version = "Notebook/1.0"
    items = concat(
      [
        {
          type = 1
          name = "title"
          content = {
            json = "## StreamingPOC\nPer-source throughput, failures, dead letters, latency and lake writes, from the metrics the functions emit (`streamingpoc.*` in customMetrics) and the exceptions of failed executions (host.json drops a successful execution's request row and the code's exporter sends none, shared/telemetry.py)."
          }
        },
        {
          type = 9
          name = "parameters"
          content = {
            version = "KqlParameterItem/1.0"
            parameters = [
              {
                id         = "0d8e5a8e-5a39-4b43-9a4c-35f1e0b6a001"
                version    = "KqlParameterItem/1.0"
                name       = "TimeRange"
                label      = "Time range"
                type       = 4
                isRequired = true
                value      = { durationMs = 3600000 }
                typeSettings = {
                  allowCustom = true
                  selectableValues = [
                    { durationMs = 900000 },
                    { durationMs = 3600000 },
                    { durationMs = 14400000 },
                    { durationMs = 43200000 },
                    { durationMs = 86400000 },
                    { durationMs = 259200000 },
                    { durationMs = 604800000 },
                  ]
                }
              },
            ]
            style        = "pills"
            queryType    = 0
            resourceType = "microsoft.insights/components"
          }
        },
      ],
      [
        for panel in local.workbook_panels : {
          type        = 3
          name        = panel.name
          customWidth = panel.width
          content = {
            version                  = "KqlItem/1.0"
            title                    = panel.title
            query                    = local.workbook_queries[panel.query]
            size                     = 0
            queryType                = 0
            resourceType             = "microsoft.insights/components"
            visualization            = panel.visualization
            timeContext              = { durationMs = 3600000 }
            timeContextFromParameter = "TimeRange"
          }
        }
      ],
    )
    fallbackResourceIds = [azurerm_application_insights.this.id]
    "$schema"           = "https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json"
  }
}

# Shared workbook under the Application Insights resource (Workbooks blade).
resource "azurerm_application_insights_workbook" "this" {
  name                = uuidv5("url", "https://streamingpoc/workbooks/${var.prefix}-${local.suffix}")
  resource_group_name = local.resource_group_name
  location            = var.location
  display_name        = "StreamingPOC pipeline (${var.prefix}-${local.suffix})"
  description         = "Throughput, failures, dead letters, batch latency and lake writes per source."
  category            = "workbook"
  source_id           = lower(azurerm_application_insights.this.id)
  data_json           = jsonencode(local.workbook)
  tags                = local.tags
}
