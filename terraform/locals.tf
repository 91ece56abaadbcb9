# Locals that depend on input variables only (no resources), so tests/terraform can evaluate
# them offline together with variables.tf and modules/app_settings.
locals {
  tags = merge(var.tags, {
    project    = "streamingpoc"
    managed-by = "terraform"
  })

  # One entry per source (shared/sources): the hub is the Kafka topic, the consumer group
  # belongs to the source's process_<source> function. The names are the code's defaults
  # (shared.settings.source_defaults), so local runs and Azure use the same topics.
  sources = {
    for name, source in var.sources : name => merge(source, {
      topic           = name
      consumer_group  = "${name}-processor"
      partition_count = coalesce(source.partition_count, var.eventhub_partition_count)
    })
  }

  # Event Hubs SAS rules for the Kafka endpoint (SASL PLAIN), keyed by the app setting that
  # holds the rule's connection string (as a Key Vault reference). Each rule carries exactly
  # the rights of the Kafka bindings that read its setting, never Manage
  # (functions/bindings.py kafka_auth):
  #   process_<source> Kafka triggers         read KAFKA_SASL_PASSWORD          -> Listen only
  #   generate_<source> Kafka output bindings read KAFKA_PRODUCER_SASL_PASSWORD -> Send only
  # Rules, secrets and app settings all follow from this map; tests/terraform checks each
  # binding's setting against the rights here.
  kafka_credentials = {
    KAFKA_SASL_PASSWORD = {
      rule_name = "functions-kafka-listen"
      listen    = true
      send      = false
    }
    KAFKA_PRODUCER_SASL_PASSWORD = {
      rule_name = "functions-kafka-send"
      listen    = false
      send      = true
    }
  }

  # App settings that the provider manages through dedicated site_config arguments: passing
  # them in app_settings as well would make every plan show a change.
  site_config_app_settings = ["APPLICATIONINSIGHTS_CONNECTION_STRING"]
}
