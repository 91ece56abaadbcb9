# Locals that depend on input variables only (no resources), so tests/terraform can evaluate
# them offline together with variables.tf and modules/app_settings.
locals {
  tags = merge(var.tags, {
    project    = "streamingpoc"
    managed-by = "terraform"
  })

  # One entry per source (shared/sources): the hub is the Kafka topic; consumer_group is the
  # Kafka consumer group of its process_<source> function. Kafka consumer groups are created by
  # the clients themselves and span the namespace; they are not Event Hubs consumer groups, so
  # nothing is created for them here. The names are the code's defaults
  # (shared.settings.source_defaults), so local runs and Azure use the same topics and groups.
  sources = {
    for name, source in var.sources : name => merge(source, {
      topic           = name
      consumer_group  = "${name}-processor"
      partition_count = coalesce(source.partition_count, var.eventhub_partition_count)
    })
  }

  # Kafka SASL PLAIN credentials, keyed by the app setting that holds the connection string (a
  # Key Vault reference). One per source and role, each with exactly the right its bindings
  # need, never Manage (functions/bindings.py kafka_auth):
  #   process_<source> Kafka trigger         reads <SOURCE>_KAFKA_SASL_PASSWORD          -> Listen
  #   generate_<source> Kafka output binding reads <SOURCE>_KAFKA_PRODUCER_SASL_PASSWORD -> Send
  # With kafka_sas_scope = "event_hub" each credential is a rule on that source's hub (its
  # connection string carries EntityPath=<hub>); with "namespace" the credentials of one role
  # share a namespace rule (kafka_namespace_rules). Rules, secrets and app settings all follow
  # from these maps; tests/terraform checks each binding's setting against the rights here.
  kafka_credentials = merge([
    for name in keys(var.sources) : {
      "${upper(name)}_KAFKA_SASL_PASSWORD" = {
        source    = name
        rule_name = "${name}-processor-listen"
        listen    = true
        send      = false
      }
      "${upper(name)}_KAFKA_PRODUCER_SASL_PASSWORD" = {
        source    = name
        rule_name = "${name}-generator-send"
        listen    = false
        send      = true
      }
    }
  ]...)

  kafka_namespace_rules = var.kafka_sas_scope == "namespace" ? {
    listen = { rule_name = "functions-kafka-listen", listen = true, send = false }
    send   = { rule_name = "functions-kafka-send", listen = false, send = true }
  } : {}

  # App settings that the provider manages through dedicated site_config arguments: passing
  # them in app_settings as well would make every plan show a change.
  site_config_app_settings = ["APPLICATIONINSIGHTS_CONNECTION_STRING"]
}
