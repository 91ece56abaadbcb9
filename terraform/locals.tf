# Locals that depend on input variables only (no resources), so tests/terraform can evaluate
# them offline together with variables.tf and modules/app_settings.
locals {
  tags = merge(var.tags, {
    project    = "streamingpoc"
    managed-by = "terraform"
  })

  # Key buckets for a keyed source new to the lake (NEW_SOURCE_STATE_BUCKETS), unless
  # var.state_buckets sets every source's. On the Azure Storage backend, small buckets: an entity
  # state over 60 KB (UTF-16) leaves its table row for a blob that every operation rewrites, so
  # 100,000 keys a source are spread over 8,192 (docs/scale.md). On the Durable Task Scheduler,
  # null: each source's own N, buckets of up to 256 KB. Sources the lake already knows keep theirs.
  azure_storage_state_buckets = 8192
  new_source_state_buckets    = var.state_buckets == null && var.durable_backend == "azure_storage" ? local.azure_storage_state_buckets : null

  # One entry per source (shared/sources): the hub is the Kafka topic; consumer_group is the
  # Kafka consumer group of its process_<source> function. Kafka consumer groups are created by
  # the clients themselves and span the namespace; they are not Event Hubs consumer groups, so
  # nothing is created for them here. The names are the code's defaults
  # (shared.settings.source_defaults), so local runs and Azure use the same topics and groups.
  # A var.sources entry is merged field by field onto its base: each field it sets (not null) wins,
  # every other field keeps the base's value. The base of a Datagen config's name is the block
  # derived from its sources/*.json below (so `orders = { partition_count = 4 }` changes only the
  # partitions), that of a hand-written source local.source_field_defaults. The topic stays.
  sources = merge(local.datagen_sources, {
    for name, source in var.sources : name => merge(
      try(local.datagen_sources[name], merge(local.source_field_defaults, {
        topic           = name
        consumer_group  = "${name}-processor"
        partition_count = var.eventhub_partition_count
      })),
      { for field, value in source : field => value if value != null },
    )
  })

  # What a field left unset (or null) in a hand-written source's var.sources entry deploys.
  # variables.tf's default map spells these out, users at 5 a tick (tests/terraform checks they agree).
  source_field_defaults = {
    format                    = "parquet"
    state_enabled             = true
    generator_enabled         = true
    generator_schedule        = "0 * * * * *"
    generator_events_per_tick = 100
    generator_iterations      = 0
    generator_seed            = null
    lag_threshold             = 1000
    compaction_schedule       = "0 */15 * * * *"
  }

  # Kafka Connect Datagen configs in ../sources/*.json are sources too (shared/datagen reads the
  # same files): the hub is the config's kafka.topic, and the generator's defaults follow from
  # max.interval, tasks.max, iterations and random.seed exactly as shared/datagen/config.py derives
  # them. A var.sources entry of the same name changes only the fields it sets (above).
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
      lag_threshold             = 1000
      compaction_schedule       = "0 */15 * * * *"
    }
  }

  # Kafka SASL PLAIN credentials, keyed by the app setting that holds the connection string (a
  # Key Vault reference): one per source, for its process_<source> Kafka trigger, which reads
  # <SOURCE>_KAFKA_SASL_PASSWORD and needs Listen only, never Manage (functions/bindings.py
  # kafka_auth). The Functions Kafka extension authenticates with SASL PLAIN (or OIDC client
  # credentials), not with the app's managed identity, so the triggers keep these keys.
  # The generators have none: generate_<source> produces through shared/kafka_clients.py
  # (confluent-kafka, not a Kafka output binding) with the app's managed identity (SASL
  # OAUTHBEARER, KAFKA_PRODUCER_CREDENTIAL = "managedidentity") and its Azure Event Hubs Data
  # Sender role on each source's hub (main.roles.tf), so no send rule or secret exists for them.
  # With kafka_sas_scope = "event_hub" each credential is a rule on that source's hub (its
  # connection string carries EntityPath=<hub>); with "namespace" they share one listen-only
  # namespace rule (kafka_namespace_rules). Rules, secrets and app settings all follow from these
  # maps; tests/terraform checks each binding's setting against the rights here. With
  # kafka_sasl_mechanism = "OAUTHBEARER" no binding reads a password: none exist, and the
  # namespace's SAS authentication is off (main.eventhubs.tf).
  kafka_credentials = var.kafka_sasl_mechanism != "PLAIN" ? {} : {
    for name in keys(local.sources) : "${upper(name)}_KAFKA_SASL_PASSWORD" => {
      source    = name
      rule_name = "${name}-processor-listen"
      listen    = true
      send      = false
    }
  }

  kafka_namespace_rules = var.kafka_sas_scope == "namespace" && var.kafka_sasl_mechanism == "PLAIN" ? {
    listen = { rule_name = "functions-kafka-listen", listen = true, send = false }
  } : {}
}
