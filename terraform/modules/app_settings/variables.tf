variable "kafka_bootstrap_servers" {
  type        = string
  description = "Kafka bootstrap servers of the Event Hubs namespace, `<namespace>.servicebus.windows.net:9093`."

  validation {
    condition     = can(regex("^[^:,\\s]+:9093$", var.kafka_bootstrap_servers))
    error_message = "kafka_bootstrap_servers must be one host:9093 (the Event Hubs Kafka endpoint)."
  }
}

variable "kafka_password_secret_ids" {
  type        = map(string)
  description = "App-setting name -> Key Vault secret ID, with its version, of the Event Hubs connection string that setting holds (SASL PLAIN password). The version makes a new secret value a new setting, so the app is restarted on it."

  validation {
    condition     = alltrue([for id in values(var.kafka_password_secret_ids) : can(regex("^https://[^/]+/secrets/[^/]+/[0-9a-fA-F]{32}$", id))])
    error_message = "kafka_password_secret_ids values must be versioned Key Vault secret IDs (https://<vault>.vault.azure.net/secrets/<name>/<version>)."
  }
}

variable "kafka_sasl_mechanism" {
  type        = string
  description = "KAFKA_SASL_MECHANISM: how the Kafka triggers authenticate, PLAIN (the per-source SAS connection strings) or OAUTHBEARER (var.kafka_oauth)."

  validation {
    condition     = contains(["PLAIN", "OAUTHBEARER"], var.kafka_sasl_mechanism)
    error_message = "kafka_sasl_mechanism must be PLAIN or OAUTHBEARER."
  }
}

variable "kafka_oauth" {
  type = object({
    client_id          = string
    client_secret_id   = string
    token_endpoint_url = string
    scope              = string
  })
  default     = null
  description = "With kafka_sasl_mechanism = OAUTHBEARER (and only then): the service principal's KAFKA_OAUTH_CLIENT_ID, the versioned Key Vault secret ID of its client secret (KAFKA_OAUTH_CLIENT_SECRET becomes a Key Vault reference to it), KAFKA_OAUTH_TOKEN_ENDPOINT_URL and KAFKA_OAUTH_SCOPE."

  validation {
    condition     = (var.kafka_oauth != null) == (var.kafka_sasl_mechanism == "OAUTHBEARER")
    error_message = "kafka_oauth must be set with kafka_sasl_mechanism = OAUTHBEARER, and only then."
  }
  validation {
    condition     = var.kafka_oauth == null || try(trimspace(var.kafka_oauth.client_id) != "" && can(regex("^https://[^/]+/secrets/[^/]+/[0-9a-fA-F]{32}$", var.kafka_oauth.client_secret_id)) && can(regex("^https://[^/\\s]+/\\S*$", var.kafka_oauth.token_endpoint_url)) && can(regex("^https://\\S+$", var.kafka_oauth.scope)), false)
    error_message = "kafka_oauth needs a client_id, a versioned Key Vault secret ID as client_secret_id, and https:// token_endpoint_url and scope."
  }
}

variable "lake_account_url" {
  type        = string
  description = "ADLS Gen2 endpoint of the lake account, `https://<account>.dfs.core.windows.net`."

  validation {
    condition     = can(regex("^https://[a-z0-9]+\\.dfs\\.[^/]+$", var.lake_account_url))
    error_message = "lake_account_url must be an https DFS endpoint without a trailing slash."
  }
}

variable "lake_file_system" {
  type        = string
  description = "File system (container) of the lake."
}

variable "host_storage_account_name" {
  type        = string
  description = "Storage account of the Functions host and Durable Functions, reached with the app's identity."
}

variable "application_insights_connection_string" {
  type        = string
  sensitive   = true
  description = "Connection string of Application Insights (host telemetry and the code's OpenTelemetry metrics)."
}

variable "trace_sampling_ratio" {
  type        = number
  default     = 0
  description = "Share of traces the Azure Monitor distro exports (OTEL_TRACES_SAMPLER_ARG); 0 sets neither OTEL setting."
}

variable "max_record_bytes" {
  type        = number
  description = "MAX_RECORD_BYTES: larger records are dead-lettered as oversized."
}

variable "state_buckets" {
  type        = number
  default     = null
  description = "STATE_BUCKETS: key buckets per keyed source for a new deployment; null: each source's own."
}

variable "new_source_state_buckets" {
  type        = number
  default     = null
  description = "NEW_SOURCE_STATE_BUCKETS: N for a keyed source new to the lake when STATE_BUCKETS is unset; null: each source's own."
}

variable "compaction_grace_minutes" {
  type        = number
  description = "COMPACTION_GRACE_MINUTES: an hour of raw files is compacted this long after it ends."
}

variable "compaction_target_file_mb" {
  type        = number
  description = "COMPACTION_TARGET_FILE_MB: target size of a curated Delta file."
}

variable "schema_registry_url" {
  type        = string
  description = "Event Hubs Schema Registry endpoint of the namespace, `https://<namespace>.servicebus.windows.net`."

  validation {
    condition     = can(regex("^https://[^/]+\\.servicebus\\.windows\\.net$", var.schema_registry_url))
    error_message = "schema_registry_url must be https://<namespace>.servicebus.windows.net."
  }
}

variable "schema_registry_group" {
  type        = string
  description = "Schema group of the Avro sources (SCHEMA_REGISTRY_GROUP)."
}

variable "sources" {
  type = map(object({
    topic                     = string
    consumer_group            = string
    format                    = string
    state_enabled             = bool
    generator_enabled         = bool
    processing_enabled        = bool
    generator_schedule        = string
    generator_events_per_tick = number
    generator_iterations      = number
    generator_seed            = optional(number)
    lag_threshold             = number
    compaction_schedule       = string
  }))
  description = "Per-source settings (shared.settings.SourceSettings), keyed by source name."
}

variable "durable_task_scheduler" {
  type = object({
    endpoint = string
    task_hub = string
  })
  default     = null
  description = "The Durable Task Scheduler of the Durable entities (the root module's durable_backend dts_consumption or dts_dedicated): the scheduler's endpoint and its task hub. null keeps host.json's Azure Storage backend on the host storage account."

  validation {
    condition     = var.durable_task_scheduler == null || can(regex("^https://[^/;]+/?$", var.durable_task_scheduler.endpoint))
    error_message = "durable_task_scheduler.endpoint must be the scheduler's https endpoint."
  }
  validation {
    condition     = var.durable_task_scheduler == null || can(regex("^[A-Za-z0-9-]{3,64}$", var.durable_task_scheduler.task_hub))
    error_message = "durable_task_scheduler.task_hub must be 3-64 letters, digits or hyphens."
  }
}
