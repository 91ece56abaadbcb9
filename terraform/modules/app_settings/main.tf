locals {
  # The one map of app settings. Names are exactly what shared/settings.py reads
  # (Settings field aliases, and <SOURCE>_<FIELD> for SourceSettings) plus the host settings
  # of shared.settings.PLATFORM_SETTINGS; tests/terraform checks both directions.
  app_settings = merge(
    {
      # Functions host and Durable Functions storage, by identity only. There is deliberately no
      # plain AzureWebJobsStorage: the host would prefer it to the identity, even empty (see
      # main.functionapp.tf, which applies exactly this map).
      AzureWebJobsStorage__accountName = var.host_storage_account_name
      AzureWebJobsStorage__credential  = "managedidentity"

      # Kafka: Event Hubs' Kafka endpoint over TLS. The triggers (the Kafka extension) use SASL
      # PLAIN with a listen-only connection string per source (below) or, with
      # kafka_sasl_mechanism = "OAUTHBEARER", a service principal's OIDC client credentials
      # (var.kafka_oauth; the client secret as a Key Vault reference, docs/deploy.md). The
      # generators' producer (shared/kafka_clients.py) uses the app's managed identity either way:
      # SASL OAUTHBEARER with an Entra ID token and the identity's Data Sender role, no key.
      KAFKA_BROKER_LIST              = var.kafka_bootstrap_servers
      KAFKA_SECURITY_PROTOCOL        = "SASL_SSL"
      KAFKA_SASL_MECHANISM           = var.kafka_sasl_mechanism
      KAFKA_SASL_USERNAME            = "$ConnectionString"
      KAFKA_OAUTH_CLIENT_ID          = var.kafka_oauth == null ? "" : var.kafka_oauth.client_id
      KAFKA_OAUTH_CLIENT_SECRET      = var.kafka_oauth == null ? "" : "@Microsoft.KeyVault(SecretUri=${var.kafka_oauth.client_secret_id})"
      KAFKA_OAUTH_TOKEN_ENDPOINT_URL = var.kafka_oauth == null ? "" : var.kafka_oauth.token_endpoint_url
      KAFKA_OAUTH_SCOPE              = var.kafka_oauth == null ? "" : var.kafka_oauth.scope
      KAFKA_PRODUCER_CREDENTIAL      = "managedidentity"

      # Lake: ADLS Gen2 with the app's managed identity; no connection string in Azure.
      LAKE_KIND              = "adls"
      LAKE_ACCOUNT_URL       = var.lake_account_url
      LAKE_FILE_SYSTEM       = var.lake_file_system
      LAKE_CONNECTION_STRING = ""
      LAKE_LOCAL_ROOT        = ".lake" # read only when LAKE_KIND=local; set to the model's default

      APPLICATIONINSIGHTS_CONNECTION_STRING     = var.application_insights_connection_string
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING = "Authorization=AAD" # the app's system-assigned identity
      MAX_RECORD_BYTES                          = tostring(var.max_record_bytes)
      STATE_BUCKETS                             = var.state_buckets == null ? "" : tostring(var.state_buckets) # a new deployment's N; the lake records it (docs/scale.md)
      NEW_SOURCE_STATE_BUCKETS                  = var.new_source_state_buckets == null ? "" : tostring(var.new_source_state_buckets)
      LANDING_LEASE_SECONDS                     = "150"

      # Compaction (compact_<source>): closed hours only in Azure.
      COMPACTION_GRACE_MINUTES  = tostring(var.compaction_grace_minutes)
      COMPACTION_TARGET_FILE_MB = tostring(var.compaction_target_file_mb)
      COMPACTION_OPEN_HOURS     = "false"

      # Avro sources: the namespace's Event Hubs Schema Registry with the app's identity (no
      # username or password); main.schemaregistry.tf creates the group and grants the roles.
      SCHEMA_REGISTRY_KIND     = "eventhubs"
      SCHEMA_REGISTRY_URL      = var.schema_registry_url
      SCHEMA_REGISTRY_GROUP    = var.schema_registry_group
      SCHEMA_REGISTRY_USERNAME = ""
      SCHEMA_REGISTRY_PASSWORD = ""
    },
    # <SOURCE>_KAFKA_SASL_PASSWORD (the triggers' listen-only connection strings): Key Vault
    # references only, never the value. Each names the secret's version, so a new version (a
    # rotated key, or kafka_sas_scope switched) changes the setting, the settings PUT runs again
    # and the app restarts on it; a versionless reference would keep the old value for up to a day.
    {
      for name, secret_id in var.kafka_password_secret_ids :
      name => "@Microsoft.KeyVault(SecretUri=${secret_id})"
    },
    # The Durable Task Scheduler backend, when chosen: host.json's storageProvider switched to
    # azureManaged by the host's own override syntax (AzureFunctionsJobHost__<path>), connected by
    # the app's system-assigned identity (no key exists). Nothing with the Azure Storage backend.
    var.durable_task_scheduler == null ? {} : {
      AzureFunctionsJobHost__extensions__durableTask__storageProvider__type                 = "azureManaged"
      AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName = "DURABLE_TASK_SCHEDULER_CONNECTION_STRING"
      AzureFunctionsJobHost__extensions__durableTask__hubName                               = var.durable_task_scheduler.task_hub
      DURABLE_TASK_SCHEDULER_CONNECTION_STRING                                              = "Endpoint=${trimsuffix(var.durable_task_scheduler.endpoint, "/")};Authentication=ManagedIdentity"
    },
    # Traces exported, when asked for: the Azure Monitor distro's own sampler, which keeps or drops a
    # trace by its id, so a generator's span and its processors' spans are kept together.
    var.trace_sampling_ratio == 0 ? {} : {
      OTEL_TRACES_SAMPLER     = "microsoft.fixed_percentage"
      OTEL_TRACES_SAMPLER_ARG = tostring(var.trace_sampling_ratio)
    },
    # <SOURCE>_<FIELD> for every source.
    merge([
      for name, source in var.sources : {
        "${upper(name)}_TOPIC"                     = source.topic
        "${upper(name)}_CONSUMER_GROUP"            = source.consumer_group
        "${upper(name)}_FORMAT"                    = source.format
        "${upper(name)}_STATE_ENABLED"             = tostring(source.state_enabled)
        "${upper(name)}_GENERATOR_ENABLED"         = tostring(source.generator_enabled)
        "${upper(name)}_GENERATOR_SCHEDULE"        = source.generator_schedule
        "${upper(name)}_GENERATOR_EVENTS_PER_TICK" = tostring(source.generator_events_per_tick)
        "${upper(name)}_GENERATOR_ITERATIONS"      = tostring(source.generator_iterations)
        "${upper(name)}_GENERATOR_SEED"            = source.generator_seed == null ? "" : tostring(source.generator_seed)
        "${upper(name)}_LAG_THRESHOLD"             = tostring(source.lag_threshold)
        "${upper(name)}_COMPACTION_SCHEDULE"       = source.compaction_schedule
        # A generator that is off has its timer function disabled (read by the host): otherwise
        # every tick would still be a billed execution that sends nothing (docs/cost.md, idle).
        "AzureWebJobs.generate_${name}.Disabled" = tostring(!source.generator_enabled)
        # Its Kafka trigger, off while keyed state moves or an upgrade needs processing stopped
        # (docs/scale.md): set here, the switch survives the next apply, which PUTs this whole map
        # and so drops one set by hand with the CLI.
        "AzureWebJobs.process_${name}.Disabled" = tostring(!source.processing_enabled)
      }
    ]...),
  )
}
