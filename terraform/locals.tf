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
  sources = merge(local.datagen_sources, {
    for name, source in var.sources : name => merge(source, {
      topic           = try(local.datagen_configs[name]["kafka.topic"], name)
      consumer_group  = "${name}-processor"
      partition_count = coalesce(source.partition_count, var.eventhub_partition_count)
    })
  })

  # Kafka Connect Datagen configs in ../sources/*.json are sources too (shared/datagen reads the
  # same files): the hub is the config's kafka.topic, and the generator's defaults follow from
  # max.interval, tasks.max, iterations and random.seed exactly as shared/datagen/config.py derives
  # them. A var.sources entry of the same name overrides these settings (the topic stays).
  datagen_configs = {
    for file in fileset("${path.module}/../sources", "*.json") :
    trimsuffix(file, ".json") => jsondecode(file("${path.module}/../sources/${file}")).config
  }
  datagen_sources = {
    for name, config in local.datagen_configs : name => {
      topic                     = config["kafka.topic"]
      consumer_group            = "${name}-processor"
      format                    = "parquet"
      state_enabled             = false
      generator_enabled         = true
      generator_schedule        = "*/10 * * * * *"
      generator_events_per_tick = tonumber(lookup(config, "max.interval", 500)) <= 0 ? 100000 : max(1, min(100000, floor(tonumber(lookup(config, "tasks.max", 1)) * 20000 / tonumber(lookup(config, "max.interval", 500)) + 0.5)))
      generator_iterations      = max(0, tonumber(lookup(config, "iterations", -1))) * tonumber(lookup(config, "tasks.max", 1))
      generator_seed            = lookup(config, "random.seed", "") == "" ? null : tonumber(config["random.seed"])
      partition_count           = var.eventhub_partition_count
    }
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
