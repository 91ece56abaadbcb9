variable "subscription_id" {
  type        = string
  default     = null
  description = "Azure subscription to deploy into. Null uses ARM_SUBSCRIPTION_ID from the environment."

  validation {
    condition     = var.subscription_id == null || can(regex("^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$", var.subscription_id))
    error_message = "subscription_id must be a subscription GUID (or null to use ARM_SUBSCRIPTION_ID)."
  }
}

variable "location" {
  type        = string
  default     = "swedencentral"
  description = "Azure region for every resource. It must offer the Flex Consumption plan: `az functionapp list-flexconsumption-locations`."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]+$", var.location))
    error_message = "location must be a region name such as swedencentral or eastus2 (lowercase, no spaces)."
  }
}

variable "prefix" {
  type        = string
  default     = "spoc"
  description = "Short prefix of every resource name; a random suffix makes names globally unique (storage accounts, Key Vault, function app)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.prefix))
    error_message = "prefix must be 2-10 lowercase letters or digits, starting with a letter (storage account names allow nothing else)."
  }
}

variable "resource_group_name" {
  type        = string
  default     = null
  description = "Name of an existing resource group to deploy into. Null creates `rg-<prefix>-<suffix>`."

  validation {
    condition     = var.resource_group_name == null || can(regex("^[-\\w._()]{1,89}[-\\w_()]$", var.resource_group_name))
    error_message = "resource_group_name must be 1-90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'."
  }
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags added to every resource, on top of `project` and `managed-by` (which they cannot replace): at most 48, names of 1-128 characters without < > % & \\ ? / (a storage account's limit, the tightest here), values of at most 256."

  validation {
    condition     = length(var.tags) <= 48
    error_message = "tags takes at most 48 entries: Azure allows 50 per resource and every resource also gets project and managed-by."
  }
  validation {
    condition = alltrue([for name, value in var.tags :
      length(name) >= 1 && length(name) <= 128 && !can(regex("[<>%&\\\\?/]", name)) && length(value) <= 256
    ])
    error_message = "tags names must be 1-128 characters without < > % & \\ ? / and values at most 256 characters (Azure's tag rules; a storage account takes names of 128 at most)."
  }
  validation {
    # Tag names are case-insensitive in Azure; locals.tf sets these two after var.tags, so one given here was dropped.
    condition     = !anytrue([for name in keys(var.tags) : contains(["project", "managed-by"], lower(name))])
    error_message = "tags cannot set project or managed-by: every resource carries project = streamingpoc and managed-by = terraform."
  }
}

variable "sources" {
  type = map(object({
    # No defaults here: a field left out is null, so locals.tf can tell it from one set to any
    # value and give it the base's (local.source_field_defaults, or a Datagen config's).
    # processing_enabled has no base there: main.functionapp.tf's module call takes one left out as true.
    format                    = optional(string)
    state_enabled             = optional(bool)
    generator_enabled         = optional(bool)
    processing_enabled        = optional(bool)
    generator_schedule        = optional(string)
    generator_events_per_tick = optional(number)
    generator_iterations      = optional(number)
    generator_seed            = optional(number)
    partition_count           = optional(number)
    lag_threshold             = optional(number)
    compaction_schedule       = optional(string)
  }))
  # The hand-written sources with every field written out: locals.tf's source_field_defaults, but
  # users at 5 events per tick (bench/cost.py and tools/cost.py read the generators' rates here).
  default = {
    clickstream = {
      format                    = "parquet"
      state_enabled             = true
      generator_enabled         = true
      generator_schedule        = "0 * * * * *"
      generator_events_per_tick = 100
      generator_iterations      = 0
      lag_threshold             = 1000
      compaction_schedule       = "0 */15 * * * *"
    }
    mobile = {
      format                    = "parquet"
      state_enabled             = true
      generator_enabled         = true
      generator_schedule        = "0 * * * * *"
      generator_events_per_tick = 100
      generator_iterations      = 0
      lag_threshold             = 1000
      compaction_schedule       = "0 */15 * * * *"
    }
    sensors = {
      format                    = "parquet"
      state_enabled             = true
      generator_enabled         = true
      generator_schedule        = "0 * * * * *"
      generator_events_per_tick = 100
      generator_iterations      = 0
      lag_threshold             = 1000
      compaction_schedule       = "0 */15 * * * *"
    }
    users = {
      format                    = "parquet"
      state_enabled             = true
      generator_enabled         = true
      generator_schedule        = "0 * * * * *"
      generator_events_per_tick = 5
      generator_iterations      = 0
      lag_threshold             = 1000
      compaction_schedule       = "0 */15 * * * *"
    }
  }
  description = <<-EOT
    The streams, keyed by the source names the code registers (shared/sources): the hand-written
    clickstream, mobile, sensors and users, each of which must be here, and optionally a Datagen
    config's name (sources/*.json, e.g. orders); any other key is refused. Each gets an
    event hub (the Kafka topic), a consumer group for its process_<source> function and the
    <SOURCE>_* app settings: lake `format` (parquet, avro or jsonl), `state_enabled` (keyed
    state in Durable entities; false only lands), the generator's switch (off also disables
    generate_<source>, AzureWebJobs.generate_<source>.Disabled, so its timer is not billed),
    `processing_enabled` (default true; false disables its Kafka trigger process_<source>,
    AzureWebJobs.process_<source>.Disabled = true: events wait in the hub, offsets stay committed;
    set it here, not with `az functionapp config appsettings set`, which the next apply undoes, for
    a migration of keyed state or an upgrade that needs processing stopped, docs/scale.md),
    NCRONTAB `generator_schedule` (six fields, seconds first; once a minute here, where the
    code's local default is every 10 s: in Azure every tick is a billed execution of its own
    scale group, and its events cost what events cost; `python -m tools.cost --json` gives the
    defaults' rate and their timers' month under generators_default), events per tick, total events
    (`generator_iterations`, 0 = unbounded) and `generator_seed` (null = random).
    A field left out (or null) takes its default: for a hand-written source
    local.source_field_defaults (the values of the default map above, but 100 events per tick for
    users too), for a Datagen config's name what Terraform derives from that config (Parquet,
    state off, every 10 s, events per tick, iterations and seed from max.interval, tasks.max,
    iterations and random.seed): `orders = { partition_count = 4 }` changes only the partitions.
    Every source a Datagen config defines is deployed whether or not it is listed here.
    `partition_count` overrides `eventhub_partition_count` for that hub: it caps how far
    process_<source> scales out (one instance per partition at most). `lag_threshold` is the
    Kafka trigger's target of unprocessed events per instance (<SOURCE>_LAG_THRESHOLD):
    instances = lag / lag_threshold, rounded up, at most partition_count.
    `compaction_schedule` is the NCRONTAB of compact_<source> (raw hours -> curated Delta table); it must run
    every hour of every day, at least every 30 minutes (refused at plan otherwise): the compaction-lag alert
    takes a source with no run reported in its last hour (telemetry arrives minutes late) for not running.
  EOT

  validation {
    # The code's rule for a source name (shared/datagen/config.py SOURCE_NAME: a Datagen config's file name).
    condition     = length(var.sources) > 0 && alltrue([for name in keys(var.sources) : can(regex("^[a-z][a-z0-9_]{0,39}$", name))])
    error_message = "sources needs at least one entry; names must be 1-40 lowercase letters, digits or '_', starting with a letter, as source names in the code (shared/datagen/config.py): they become function names (process_<source>), <SOURCE>_* setting names and hub names."
  }
  validation {
    # The code registers these (shared/sources, tests/terraform checks the list): their functions are deployed
    # whatever this map says, so each needs its hub, credentials and settings. Stop one's generator instead.
    condition     = length(setsubtract(["clickstream", "mobile", "sensors", "users"], keys(var.sources))) == 0
    error_message = "sources must keep every source the code registers (clickstream, mobile, sensors, users): their functions are deployed anyway. Set generator_enabled = false to stop one's generator."
  }
  validation {
    # Only the code's sources: the hand-written ones (shared/sources, tests/terraform checks the list) and the
    # Datagen configs (sources/*.json). Any other key would get a hub, a credential, a secret, a role and app
    # settings that no function reads (a typo such as clikstream).
    condition = alltrue([for name in keys(var.sources) :
      contains(["clickstream", "mobile", "sensors", "users"], name) || contains(keys(local.datagen_configs), name)
    ])
    error_message = "sources names a source the code does not have: ${join(", ", sort([for name in keys(var.sources) : name if !contains(concat(["clickstream", "mobile", "sensors", "users"], keys(local.datagen_configs)), name)]))}. Keys must be the hand-written sources (clickstream, mobile, sensors, users) or the name of a Datagen config in sources/*.json (${join(", ", sort(keys(local.datagen_configs)))})."
  }
  validation {
    # The app's own rules for a Datagen config (shared/datagen/config.py SOURCE_NAME, TOPIC_NAME; settings' sources
    # kept apart): one it refuses stops every function from loading after an apply that succeeded, and two sources
    # of one topic would make two hubs of one name, an apply that fails half way. Every deployed source is checked:
    # those of var.sources and of sources/*.json.
    condition = alltrue([for name in setunion(keys(var.sources), keys(local.datagen_configs)) :
      !contains(keys(local.datagen_configs), name) || (
        can(regex("^[a-z][a-z0-9_]{0,39}$", name)) && !contains(["clickstream", "mobile", "sensors", "users"], name) &&
        can(regex("^[A-Za-z0-9]([A-Za-z0-9._-]{0,254}[A-Za-z0-9])?$", try(tostring(local.datagen_configs[name]["kafka.topic"]), "")))
      )
    ])
    error_message = "sources/*.json: each Datagen config's file name must be 1-40 lowercase letters, digits or '_', starting with a letter, and none of clickstream, mobile, sensors or users; its config's kafka.topic a topic (event hub) name: 1-256 letters, digits, '.', '_' or '-', starting and ending with a letter or digit."
  }
  validation {
    condition = length(distinct([for name in setunion(keys(var.sources), keys(local.datagen_configs)) :
      try(tostring(local.datagen_configs[name]["kafka.topic"]), name)
    ])) == length(setunion(keys(var.sources), keys(local.datagen_configs)))
    error_message = "Two sources share a topic (each would produce to the other's hub and dead-letter its records): ${join(", ", [for name in sort(setunion(keys(var.sources), keys(local.datagen_configs))) : "${name} -> ${try(tostring(local.datagen_configs[name]["kafka.topic"]), name)}"])}."
  }
  validation {
    condition     = alltrue([for source in values(var.sources) : source.format == null || contains(["parquet", "avro", "jsonl"], coalesce(source.format, "parquet"))])
    error_message = "format must be parquet, avro or jsonl."
  }
  validation {
    # The app's own check of both (shared/settings.py _NCRONTAB_FIELD: six fields, each a comma-separated list of
    # *, a number or a three-letter name, or a range of them, each with an optional /step). A value it refuses
    # stops every function of the app from loading, after an apply that succeeded.
    condition = alltrue(flatten([for source in values(var.sources) : [
      for schedule in [source.generator_schedule, source.compaction_schedule] :
      schedule == null || can(regex("^\\s*(\\*|(\\*|[0-9]+|[A-Za-z]{3})(-(\\*|[0-9]+|[A-Za-z]{3}))?)(/[0-9]+)?(,(\\*|(\\*|[0-9]+|[A-Za-z]{3})(-(\\*|[0-9]+|[A-Za-z]{3}))?)(/[0-9]+)?)*(\\s+(\\*|(\\*|[0-9]+|[A-Za-z]{3})(-(\\*|[0-9]+|[A-Za-z]{3}))?)(/[0-9]+)?(,(\\*|(\\*|[0-9]+|[A-Za-z]{3})(-(\\*|[0-9]+|[A-Za-z]{3}))?)(/[0-9]+)?)*){5}\\s*$", schedule))
    ]]))
    error_message = "generator_schedule and compaction_schedule must be NCRONTAB expressions with six fields (seconds first), e.g. \"*/10 * * * * *\" or \"0 */15 * * * *\"; each field a list of *, numbers, three-letter names or ranges, each with an optional /step."
  }
  validation {
    # The values, as the Functions host's NCrontab reads them when it loads the app (the app's settings check them
    # with shared/ncrontab.py): one out of its field's range stops every function of the app from loading too. Each
    # item of a field is * (the field's whole range), a value or a range a-b, with an optional step /n; "5/15" runs
    # from 5 to the field's end, so a and b are what is checked (NCrontab swaps a range given high to low and takes a
    # step of 0 as 1, so neither is refused). What the check above refuses may show here as well.
    condition = alltrue([
      for item in flatten([for source in values(var.sources) : [
        for schedule in [source.generator_schedule, source.compaction_schedule] : [
          for index, field in local.ncrontab_fields : [
            for text in split(",", regexall("\\S+", schedule)[index]) : {
              field = field
              step  = try(split("/", text)[1], "1")
              # a name the field does not have (and anything else but digits) is -1, outside every range
              ends = split("/", text)[0] == "*" ? [field.low, field.high] : [
                for token in split("-", split("/", text)[0]) :
                can(regex("^[0-9]+$", token)) ? tonumber(token) : lookup(field.names, lower(token), -1)
              ]
            }
          ]
        ] if try(length(regexall("\\S+", schedule)), 0) == 6
      ]]) :
      try(
        tonumber(item.step) >= 0 &&
        alltrue([for value in item.ends : value >= item.field.low && value <= item.field.high]),
        false
      )
    ])
    error_message = "generator_schedule and compaction_schedule take in their six fields (seconds first) only second 0-59, minute 0-59, hour 0-23, day of month 1-31, month 1-12 or Jan-Dec, day of week 0-6 or Sun-Sat (Sunday is 0; 7 is refused), names in any case (as NCrontab reads them, a range given high to low is the same range and a step of 0 is 1)."
  }
  validation {
    # A schedule whose days of the month none of its months has (the 30th of February) never fires: the Functions
    # host takes it and its timer never runs; the app's settings refuse it (shared/ncrontab.py next_after). It fires
    # when its lowest day is within the longest of its months (February as 29 days). Malformed values are the checks'
    # above.
    condition = alltrue([
      for schedule in flatten([for source in values(var.sources) : [source.generator_schedule, source.compaction_schedule]]) :
      schedule == null || try(
        min([for text in split(",", regexall("\\S+", schedule)[3]) :
          split("/", text)[0] == "*" ? 1 : min([for token in split("-", split("/", text)[0]) : tonumber(token)]...)
          ]...) <= max([
          for month in flatten([for text in split(",", regexall("\\S+", schedule)[4]) : [
            for ends in [[for token in split("-", split("/", text)[0]) :
              can(regex("^[0-9]+$", token)) ? tonumber(token) : lookup(local.ncrontab_fields[4].names, lower(token), 0)
            ]] :
            split("/", text)[0] == "*" ? range(1, 13, max(1, try(tonumber(split("/", text)[1]), 1))) : range(
              min(ends...),
              (length(ends) > 1 ? max(ends...) : length(split("/", text)) > 1 ? 12 : ends[0]) + 1,
              max(1, try(tonumber(split("/", text)[1]), 1))
            )
          ]]) : [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        ]...),
        true
      )
    ])
    error_message = "generator_schedule and compaction_schedule must fire: a day of the month none of its months has (the 30th of February, the 31st of April) never does."
  }
  validation {
    # The compaction-lag alert (main.alerts.tf) takes a source with no run reported in its last hour for not running,
    # and telemetry arrives minutes late: compact_<source> must run every hour of every day, its minutes at most 30
    # apart (the gap after the last minute wraps to the first of the next hour). Malformed values are the checks' above.
    condition = alltrue([
      for schedule in [for source in values(var.sources) : source.compaction_schedule if source.compaction_schedule != null] :
      try(length(regexall("\\S+", schedule)) != 6, true) || try(
        # every hour, day, month and day of the week: * or their whole range, as any spelling of it runs the same
        alltrue([for index, whole in { 2 = ["0-23"], 3 = ["1-31"], 4 = ["1-12", "jan-dec"], 5 = ["0-6", "sun-sat"] } :
          contains(concat(["*", "*/1"], whole, [for range in whole : "${range}/1"]), lower(regexall("\\S+", schedule)[index]))
        ]) &&
        alltrue(flatten([
          for minutes in [flatten([for text in split(",", regexall("\\S+", schedule)[1]) : [
            for ends in [split("/", text)[0] == "*" ? [0, 59] : [for token in split("-", split("/", text)[0]) : tonumber(token)]] :
            range(
              min(ends...),
              (length(ends) > 1 ? max(ends...) : length(split("/", text)) > 1 || split("/", text)[0] == "*" ? 59 : ends[0]) + 1,
              max(1, try(tonumber(split("/", text)[1]), 1))
            )
            ]])] : [
            for minute in minutes : min(concat([for later in minutes : later if later > minute], [min(minutes...) + 60])...) - minute <= 30
          ]
        ])),
        false
      )
    ])
    error_message = "compaction_schedule must run compact_<source> every hour of every day, at least every 30 minutes (hour, day, month and day-of-week fields * or their whole range; e.g. \"0 */15 * * * *\"): the compaction-lag alert takes a source with no run reported in its last hour for not running."
  }
  validation {
    condition = alltrue([for source in values(var.sources) :
      source.generator_events_per_tick == null || try(source.generator_events_per_tick >= 0 && source.generator_events_per_tick <= 100000 && floor(source.generator_events_per_tick) == source.generator_events_per_tick, false)
    ])
    error_message = "generator_events_per_tick must be a whole number from 0 to 100000."
  }
  validation {
    condition     = alltrue([for source in values(var.sources) : source.generator_iterations == null || try(source.generator_iterations >= 0 && floor(source.generator_iterations) == source.generator_iterations, false)])
    error_message = "generator_iterations must be a whole number >= 0 (0 means unbounded)."
  }
  validation {
    condition = alltrue([for source in values(var.sources) :
      source.generator_seed == null || try(floor(source.generator_seed) == source.generator_seed && source.generator_seed >= -9223372036854775808 && source.generator_seed < 9223372036854775808, false)
    ])
    error_message = "generator_seed must be null or a whole number from -2^63 to 2^63-1 (a signed 64-bit integer)."
  }
  validation {
    condition     = alltrue([for source in values(var.sources) : source.partition_count == null || try(source.partition_count >= 1 && source.partition_count <= 32 && floor(source.partition_count) == source.partition_count, false)])
    error_message = "partition_count must be null or a whole number from 1 to 32."
  }
  validation {
    condition     = alltrue([for source in values(var.sources) : source.lag_threshold == null || try(source.lag_threshold >= 1 && source.lag_threshold < 9223372036854775808 && floor(source.lag_threshold) == source.lag_threshold, false)])
    error_message = "lag_threshold must be a whole number from 1 to 2^63-1 (unprocessed events per instance; the extension reads a long)."
  }
}

# The fields of an NCRONTAB schedule, seconds first, and the values each takes (shared/ncrontab.py, which follows
# the Functions host's NCrontab): month and day-of-week names, in any case, stand for their numbers; the other
# fields take numbers only. var.sources checks its schedules against it. Constants only: a validation may use locals,
# but not one computed from the variable it validates (Terraform reports a cycle).
locals {
  ncrontab_fields = [
    { name = "second", low = 0, high = 59, names = {} },
    { name = "minute", low = 0, high = 59, names = {} },
    { name = "hour", low = 0, high = 23, names = {} },
    { name = "day of month", low = 1, high = 31, names = {} },
    { name = "month", low = 1, high = 12, names = { jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6, jul = 7, aug = 8, sep = 9, oct = 10, nov = 11, dec = 12 } },
    { name = "day of week", low = 0, high = 6, names = { sun = 0, mon = 1, tue = 2, wed = 3, thu = 4, fri = 5, sat = 6 } },
  ]
}

variable "redrive_operator_principal_id" {
  type        = string
  default     = null
  description = "Object ID of the user or group that runs `python -m tools.redrive` and `python -m tools.reconcile` against Azure: gets Azure Event Hubs Data Sender and Data Receiver (reconcile reads records and moves a processor's group) on each source's event hub, Storage Blob Data Contributor on the lake's file system (read dead letters and ledgers, record what was redriven, mark a group's move in the ledgers) and, while a source is Avro, Schema Registry Reader on the schema group (decode its dead letters). Null grants nothing."

  validation {
    condition     = var.redrive_operator_principal_id == null || can(regex("^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$", var.redrive_operator_principal_id))
    error_message = "redrive_operator_principal_id must be an object ID (GUID) or null."
  }
}

variable "schema_group_name" {
  type        = string
  default     = "streamingpoc"
  description = "Event Hubs Schema Registry group that Avro sources register their schemas in (SCHEMA_REGISTRY_GROUP)."

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$", var.schema_group_name))
    error_message = "schema_group_name must be 1-50 letters, digits, '.', '_' or '-', starting with a letter or digit."
  }
}

variable "schema_registry_generator_registers" {
  type        = bool
  default     = true
  description = "Grant the app Schema Registry Contributor so that generators register Avro schemas themselves, as Datagen does; granted only while a source is Avro (sources/*.json with the AvroConverter). False keeps the app at Schema Registry Reader; then register each schema before its generator runs (docs/datagen.md)."
}

variable "zone_redundancy_enabled" {
  type        = bool
  default     = false
  description = <<-EOT
    Spread the Flex Consumption plan's instances over availability zones. Off by default because
    of its cost: with zone redundancy the platform keeps at least two always-ready instances for
    every per-function scale group (this app has 12 to 17: each Kafka trigger and timer is its
    own group, plus the http and durable groups) and bills them as always ready whether or not
    events arrive: the always-ready baseline of `python -m tools.cost --prices` (USD 0.000004 per
    GB-s) is about USD 21 a month per instance at 2048 MB, so about USD 42 per group and USD
    505-715 a month in all (docs/cost.md). Needs a region with zones and zone-redundant storage
    (storage_replication_type ZRS, GZRS or RAGZRS).
  EOT

  validation {
    condition     = !var.zone_redundancy_enabled || contains(["ZRS", "GZRS", "RAGZRS"], var.storage_replication_type)
    error_message = "zone_redundancy_enabled needs zone-redundant storage: storage_replication_type ZRS, GZRS or RAGZRS."
  }
}

variable "eventhubs_sku" {
  type        = string
  default     = "Standard"
  description = "Event Hubs namespace tier. The Kafka endpoint needs Standard or Premium (Basic has none)."

  validation {
    condition     = contains(["Standard", "Premium"], var.eventhubs_sku)
    error_message = "eventhubs_sku must be Standard or Premium."
  }
}

variable "eventhubs_capacity" {
  type        = number
  default     = 1
  description = "Throughput units (Standard, 1-40) or processing units (Premium: 1, 2, 4, 8 or 16) of the namespace."

  validation {
    condition     = var.eventhubs_capacity >= 1 && var.eventhubs_capacity <= 40 && floor(var.eventhubs_capacity) == var.eventhubs_capacity
    error_message = "eventhubs_capacity must be a whole number from 1 to 40."
  }
  validation {
    condition     = var.eventhubs_sku != "Premium" || contains([1, 2, 4, 8, 16], var.eventhubs_capacity)
    error_message = "A Premium namespace takes 1, 2, 4, 8 or 16 processing units."
  }
  validation {
    # One event hub per source: a Standard namespace holds 10, a Premium one 100 per processing unit.
    condition     = length(local.sources) <= (var.eventhubs_sku == "Standard" ? 10 : 100 * var.eventhubs_capacity)
    error_message = "More sources (one event hub each, sources plus sources/*.json) than the namespace holds: 10 on Standard, 100 per processing unit on Premium. Use Premium or fewer sources."
  }
  validation {
    # A Premium namespace holds at most 200 partitions per processing unit, over all its event hubs.
    condition     = var.eventhubs_sku != "Premium" || sum([for source in values(local.sources) : source.partition_count]) <= 200 * var.eventhubs_capacity
    error_message = "The sources' partitions (all event hubs together) pass the 200 per processing unit a Premium namespace holds: more processing units, or fewer partitions."
  }
}

variable "eventhubs_maximum_throughput_units" {
  type        = number
  default     = 0
  description = "Standard only: auto-inflate up to this many throughput units; 0 turns auto-inflate off."

  validation {
    condition     = var.eventhubs_maximum_throughput_units == 0 || (var.eventhubs_maximum_throughput_units >= var.eventhubs_capacity && var.eventhubs_maximum_throughput_units <= 40 && floor(var.eventhubs_maximum_throughput_units) == var.eventhubs_maximum_throughput_units)
    error_message = "eventhubs_maximum_throughput_units must be 0 (off) or a whole number between eventhubs_capacity and 40."
  }
  validation {
    condition     = var.eventhubs_maximum_throughput_units == 0 || var.eventhubs_sku == "Standard"
    error_message = "Auto-inflate exists on the Standard tier only."
  }
}

variable "eventhub_partition_count" {
  type        = number
  default     = 1
  description = "Partitions per event hub (topic): the processing parallelism of each source. Fixed once the hub exists on Standard. 1 is the proof-of-concept default chosen by measurement (bench/cost.py, docs/scale.md): every partition with data in a batch window costs a file and a ledger write, so at 10 events/s four partitions cost about four times the lake requests of one; one partition takes about 1,000 events/s of one source. Plan 4 or more (production.tfvars.example) before the rate grows: Standard hubs cannot add partitions later."

  validation {
    condition     = var.eventhub_partition_count >= 1 && var.eventhub_partition_count <= 32 && floor(var.eventhub_partition_count) == var.eventhub_partition_count
    error_message = "eventhub_partition_count must be a whole number from 1 to 32."
  }
}

variable "eventhub_message_retention_days" {
  type        = number
  default     = 1
  description = "Days an event hub keeps events (Standard: 1-7, Premium: up to 90)."

  validation {
    condition     = var.eventhub_message_retention_days >= 1 && var.eventhub_message_retention_days <= 90 && floor(var.eventhub_message_retention_days) == var.eventhub_message_retention_days
    error_message = "eventhub_message_retention_days must be a whole number from 1 to 90."
  }
  validation {
    condition     = var.eventhubs_sku == "Premium" || var.eventhub_message_retention_days <= 7
    error_message = "The Standard tier keeps events for at most 7 days."
  }
}

variable "kafka_sas_scope" {
  type        = string
  default     = "event_hub"
  description = <<-EOT
    Where the Kafka triggers' SAS rules live. "event_hub" (default): one listen-only rule on each
    source's hub for its processor, so each credential reaches one hub with one right.
    "namespace": one listen-only rule on the namespace shared by all sources (it reaches every
    hub); a fallback should the Kafka endpoint refuse a hub-level connection string (see
    docs/deploy.md, Kafka credentials). The generators use no rule: they send with the app's
    identity (Azure Event Hubs Data Sender on each source's hub).
  EOT

  validation {
    condition     = contains(["event_hub", "namespace"], var.kafka_sas_scope)
    error_message = "kafka_sas_scope must be event_hub or namespace."
  }
}

variable "kafka_sasl_mechanism" {
  type        = string
  default     = "PLAIN"
  description = <<-EOT
    How the Kafka triggers authenticate (app setting KAFKA_SASL_MECHANISM). "PLAIN" (default): the
    listen-only SAS connection strings of kafka_sas_scope, as Key Vault references. "OAUTHBEARER":
    OIDC client credentials of a service principal, given by kafka_oauth and
    kafka_oauth_client_secret (docs/deploy.md, Kafka credentials); the SAS rules and secrets stay.
    The generators send with the app's identity either way.
  EOT

  validation {
    condition     = contains(["PLAIN", "OAUTHBEARER"], var.kafka_sasl_mechanism)
    error_message = "kafka_sasl_mechanism must be PLAIN or OAUTHBEARER."
  }
}

variable "kafka_oauth" {
  type = object({
    client_id          = string
    token_endpoint_url = optional(string)
    scope              = optional(string)
  })
  default     = null
  description = <<-EOT
    With kafka_sasl_mechanism = "OAUTHBEARER" (and only then): the service principal the Kafka
    triggers authenticate as. client_id: its application (client) ID (KAFKA_OAUTH_CLIENT_ID).
    token_endpoint_url (KAFKA_OAUTH_TOKEN_ENDPOINT_URL): null takes
    https://login.microsoftonline.com/<tenant of the identity running Terraform>/oauth2/v2.0/token.
    scope (KAFKA_OAUTH_SCOPE): null takes https://<namespace>.servicebus.windows.net/.default.
    Its client secret is kafka_oauth_client_secret.
  EOT

  validation {
    condition     = var.kafka_oauth == null || try(can(regex("^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$", var.kafka_oauth.client_id)), false)
    error_message = "kafka_oauth.client_id must be an application (client) ID (GUID)."
  }
  validation {
    condition     = var.kafka_oauth == null || try(var.kafka_oauth.token_endpoint_url == null || can(regex("^https://[^/\\s]+/\\S*$", var.kafka_oauth.token_endpoint_url)), false)
    error_message = "kafka_oauth.token_endpoint_url must be null or an https:// URL (the client secret is posted to it)."
  }
  validation {
    condition     = var.kafka_oauth == null || try(var.kafka_oauth.scope == null || can(regex("^https://\\S+/\\.default$", var.kafka_oauth.scope)), false)
    error_message = "kafka_oauth.scope must be null or https://<resource>/.default (e.g. https://<namespace>.servicebus.windows.net/.default)."
  }
  validation {
    condition     = (var.kafka_oauth != null) == (var.kafka_sasl_mechanism == "OAUTHBEARER")
    error_message = "kafka_oauth must be set with kafka_sasl_mechanism = \"OAUTHBEARER\", and only then (PLAIN would ignore it)."
  }
}

variable "kafka_oauth_client_secret" {
  type        = string
  default     = null
  sensitive   = true
  description = "With kafka_sasl_mechanism = \"OAUTHBEARER\" (and only then): the client secret of kafka_oauth's service principal. Terraform writes it to the Key Vault (secret kafka-oauth-client-secret) like the SAS connection strings, grants the app Key Vault Secrets User on that secret only, and sets KAFKA_OAUTH_CLIENT_SECRET to a Key Vault reference to its current version: the value is in the Terraform state (as the SAS keys are), never in an app setting or output. Pass it as TF_VAR_kafka_oauth_client_secret rather than in a file."

  validation {
    condition     = (var.kafka_sasl_mechanism == "OAUTHBEARER") == try(trimspace(var.kafka_oauth_client_secret) != "", false)
    error_message = "kafka_oauth_client_secret must be set (not blank) with kafka_sasl_mechanism = \"OAUTHBEARER\", and only then."
  }
}

variable "storage_replication_type" {
  type        = string
  default     = "LRS"
  description = "Replication of both storage accounts (lake and Functions host): LRS, ZRS, GRS, RAGRS, GZRS or RAGZRS. LRS (the proof-of-concept default) keeps three copies in one datacenter; ZRS survives a zone outage for about 25% more per GB and is what zone_redundancy_enabled needs."

  validation {
    condition     = contains(["LRS", "ZRS", "GRS", "RAGRS", "GZRS", "RAGZRS"], var.storage_replication_type)
    error_message = "storage_replication_type must be LRS, ZRS, GRS, RAGRS, GZRS or RAGZRS."
  }
}

variable "lake_file_system" {
  type        = string
  default     = "lake"
  description = "ADLS Gen2 file system (container) that holds raw/ and deadletter/ (LAKE_FILE_SYSTEM)."

  validation {
    condition     = length(var.lake_file_system) <= 63 && can(regex("^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$", var.lake_file_system))
    error_message = "lake_file_system must be 3-63 lowercase letters, digits or single hyphens, starting and ending with a letter or digit."
  }
}

variable "lake_cool_after_days" {
  type        = number
  default     = 30
  description = "Move dead letters (deadletter/) to the Cool tier this many days after their last modification. Raw files are deleted after raw_retention_days; curated/ stays hot."

  validation {
    condition     = var.lake_cool_after_days >= 1 && var.lake_cool_after_days <= 99999 && floor(var.lake_cool_after_days) == var.lake_cool_after_days
    error_message = "lake_cool_after_days must be a whole number from 1 to 99999."
  }
}

variable "lake_delete_after_days" {
  type        = number
  default     = null
  description = "Delete dead letters this many days after their last modification; null keeps them forever."

  validation {
    condition     = var.lake_delete_after_days == null || try(var.lake_delete_after_days > var.lake_cool_after_days && var.lake_delete_after_days <= 99999 && floor(var.lake_delete_after_days) == var.lake_delete_after_days, false)
    error_message = "lake_delete_after_days must be null or a whole number greater than lake_cool_after_days (at most 99999)."
  }
}

variable "function_instance_memory_mb" {
  type        = number
  default     = 2048
  description = "Memory per Flex Consumption instance: 512, 2048 or 4096 MB."

  validation {
    condition     = contains([512, 2048, 4096], var.function_instance_memory_mb)
    error_message = "function_instance_memory_mb must be 512, 2048 or 4096."
  }
}

variable "function_maximum_instance_count" {
  type        = number
  default     = 40
  description = "Upper bound of the Flex Consumption scale-out (instances), which caps cost. A Kafka trigger never scales past its hub's partition count, so the instances the processors can use add up to the partitions of all hubs; a cap below the largest partition count leaves partitions without an instance of their own."

  validation {
    condition     = var.function_maximum_instance_count >= 40 && var.function_maximum_instance_count <= 1000 && floor(var.function_maximum_instance_count) == var.function_maximum_instance_count
    error_message = "function_maximum_instance_count must be a whole number from 40 to 1000 (azurerm 4.55-4.57, which terraform.tf allows, refuse less)."
  }
  validation {
    condition     = var.function_maximum_instance_count >= max([for source in values(var.sources) : coalesce(source.partition_count, var.eventhub_partition_count)]...)
    error_message = "function_maximum_instance_count is below a hub's partition count: that source's processor could never run one instance per partition. Raise the cap or lower partition_count / eventhub_partition_count."
  }
}

variable "durable_always_ready_instances" {
  type        = number
  default     = 0
  description = <<-EOT
    Always-ready instances of the Flex Consumption `durable` scale group, where all Durable
    entity functions run. Microsoft recommends 1 for Durable Functions on Flex Consumption: entity
    signals then find a warm instance instead of waiting for a cold start. Off by default for its
    cost: an always-ready instance bills the baseline around the clock, function_instance_memory_mb
    / 1024 GB x 2,628,000 s a month x USD 0.000004 per GB-s, about USD 21 a month at 2,048 MB (East
    US price in docs/cost.md), plus its execution time at the always-ready rate while it runs. With
    zone_redundancy_enabled the platform keeps two per group anyway. See docs/deploy.md.
  EOT

  validation {
    condition     = var.durable_always_ready_instances >= 0 && floor(var.durable_always_ready_instances) == var.durable_always_ready_instances
    error_message = "durable_always_ready_instances must be a whole number >= 0 (0 = none, 1 = Microsoft's recommendation)."
  }
  validation {
    condition     = var.durable_always_ready_instances <= var.function_maximum_instance_count
    error_message = "durable_always_ready_instances cannot exceed function_maximum_instance_count."
  }
}

variable "compaction_grace_minutes" {
  type        = number
  default     = 15
  description = "Minutes after an hour ends before compact_<source> compacts it (room for late raw files; later ones recompact the hour)."

  validation {
    condition     = var.compaction_grace_minutes >= 0 && var.compaction_grace_minutes <= 1440 && floor(var.compaction_grace_minutes) == var.compaction_grace_minutes
    error_message = "compaction_grace_minutes must be a whole number from 0 to 1440."
  }
}

variable "compaction_target_file_mb" {
  type        = number
  default     = 128
  description = "Target size of a curated Delta file (COMPACTION_TARGET_FILE_MB); an hour smaller than this is one file."

  validation {
    condition     = var.compaction_target_file_mb >= 1 && var.compaction_target_file_mb <= 4096 && floor(var.compaction_target_file_mb) == var.compaction_target_file_mb
    error_message = "compaction_target_file_mb must be a whole number from 1 to 4096."
  }
}

variable "raw_retention_days" {
  type        = number
  default     = 7
  description = "Delete raw/ files this many days after they landed. Compaction reads them within hours (the compaction-lag alert fires after compaction_lag_alert_minutes), keeps the rows of deleted files, and finds what it covered in the Delta log, which it keeps 30 days: so at most 29."

  validation {
    condition     = var.raw_retention_days >= 1 && var.raw_retention_days <= 29 && floor(var.raw_retention_days) == var.raw_retention_days
    error_message = "raw_retention_days must be a whole number from 1 to 29 (below the curated tables' 30-day Delta log retention)."
  }
}

variable "compaction_lag_alert_minutes" {
  type        = number
  default     = 120
  description = "Alert when a raw file of a closed hour has waited more than this many minutes to be compacted (since the later of its hour's end and its landing)."

  validation {
    condition     = var.compaction_lag_alert_minutes >= 30 && floor(var.compaction_lag_alert_minutes) == var.compaction_lag_alert_minutes
    error_message = "compaction_lag_alert_minutes must be a whole number of at least 30."
  }
  validation {
    # A healthy run reports the lag of an hour it is about to compact: at least the grace, plus up to one
    # compaction interval. At or below that the alert fires every hour.
    condition     = var.compaction_lag_alert_minutes > var.compaction_grace_minutes + 60
    error_message = "compaction_lag_alert_minutes must be more than compaction_grace_minutes + 60: a healthy compaction reports a lag of the grace plus up to one compaction interval."
  }
  validation {
    # Past raw_retention_days the uncompacted files are deleted (their rows lost) and the lag drops: the alert must
    # fire with time left to fix compaction before that.
    condition     = var.compaction_lag_alert_minutes <= var.raw_retention_days * 720
    error_message = "compaction_lag_alert_minutes must be at most half of raw_retention_days (in minutes): the alert has to fire while there is time to fix compaction before raw files are deleted."
  }
}

variable "max_record_bytes" {
  type        = number
  default     = 1048576
  description = "Records larger than this are dead-lettered as `oversized` (MAX_RECORD_BYTES)."

  validation {
    condition     = var.max_record_bytes > 0 && floor(var.max_record_bytes) == var.max_record_bytes
    error_message = "max_record_bytes must be a positive whole number."
  }
}

variable "state_buckets" {
  type        = number
  default     = null
  nullable    = true
  description = "STATE_BUCKETS: key buckets (entities) per keyed source for a new deployment; null: for sources new to the lake NEW_SOURCE_STATE_BUCKETS = 8,192 on the Azure Storage backend (a bucket's state stays in its table row up to about 100,000 keys a source; larger states go to a blob per operation), each source's own N on the Durable Task Scheduler (256; mobile and sensors 512: buckets up to 256 KB). A deployment keeps the N its lake records (_state/buckets.json): changing it is a migration (docs/scale.md)."

  validation {
    condition     = var.state_buckets == null || try(var.state_buckets >= 1 && var.state_buckets <= 65536 && floor(var.state_buckets) == var.state_buckets, false)
    error_message = "state_buckets must be null or a whole number from 1 to 65536."
  }
}

variable "trace_sampling_ratio" {
  type        = number
  default     = 0
  description = "Share of end-to-end traces exported to Application Insights (0 to 1; 0.01 is 1%), chosen by trace id so each is whole: the generator's span as a dependencies row, each invocation's as a requests row. 0 (the default) exports none; spans still carry traceparent from generator to processor. Above 0 the app gets OTEL_TRACES_SAMPLER = microsoft.fixed_percentage and OTEL_TRACES_SAMPLER_ARG; `python -m tools.cost` prices a request row per sampled invocation."

  validation {
    condition     = var.trace_sampling_ratio >= 0 && var.trace_sampling_ratio <= 1
    error_message = "trace_sampling_ratio must be from 0 (no traces) to 1 (every trace)."
  }
}

variable "log_retention_days" {
  type        = number
  default     = 30
  description = "Retention of the Log Analytics workspace behind Application Insights (30-730 days)."

  validation {
    condition     = var.log_retention_days >= 30 && var.log_retention_days <= 730 && floor(var.log_retention_days) == var.log_retention_days
    error_message = "log_retention_days must be a whole number from 30 to 730."
  }
}

variable "key_vault_soft_delete_retention_days" {
  type        = number
  default     = 90
  description = "Days a deleted Key Vault (and its secrets) can be recovered. Purge protection keeps it that long."

  validation {
    condition     = var.key_vault_soft_delete_retention_days >= 7 && var.key_vault_soft_delete_retention_days <= 90 && floor(var.key_vault_soft_delete_retention_days) == var.key_vault_soft_delete_retention_days
    error_message = "key_vault_soft_delete_retention_days must be a whole number from 7 to 90."
  }
}

variable "key_vault_role_propagation_seconds" {
  type        = number
  default     = 600
  description = "Seconds Terraform waits after creating its own Key Vault Secrets Officer role assignment before it writes the secrets: Microsoft documents up to 10 minutes before a new role assignment takes effect in Key Vault, and until then writes fail with 403 ForbiddenByRbac. Only the first apply (or one that replaces the assignment) waits; the wait overlaps the Event Hubs deployment. The app's settings wait as long after the app's own role assignments (Key Vault Secrets User on each secret, storage, Application Insights, the Durable task hub) are created or change, since the app resolves its Key Vault references when it starts on them. 0 skips both waits."

  validation {
    condition     = var.key_vault_role_propagation_seconds >= 0 && var.key_vault_role_propagation_seconds <= 1800 && floor(var.key_vault_role_propagation_seconds) == var.key_vault_role_propagation_seconds
    error_message = "key_vault_role_propagation_seconds must be a whole number from 0 to 1800."
  }
}

variable "alerts_enabled" {
  type        = bool
  default     = true
  description = "Whether the alert rules evaluate. They are created either way, so they can be switched on later."
}

variable "alert_email_addresses" {
  type        = list(string)
  default     = []
  description = "Who is emailed when an alert fires. Empty: alerts only show in the portal (no action group)."

  validation {
    condition     = alltrue([for address in var.alert_email_addresses : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", address))])
    error_message = "alert_email_addresses must be email addresses."
  }
}

variable "function_failure_threshold" {
  type        = number
  default     = 5
  description = "Alert when one function fails more than this many invocations within 15 minutes (retries count)."

  validation {
    condition     = var.function_failure_threshold >= 0 && floor(var.function_failure_threshold) == var.function_failure_threshold
    error_message = "function_failure_threshold must be a whole number >= 0."
  }
}

variable "dead_letter_rate_threshold" {
  type        = number
  default     = 0.01
  description = "Alert when a source dead-letters more than this fraction of the records it received within 15 minutes."

  validation {
    condition     = var.dead_letter_rate_threshold > 0 && var.dead_letter_rate_threshold <= 1
    error_message = "dead_letter_rate_threshold must be a fraction in (0, 1]."
  }
}

variable "diagnostic_settings_enabled" {
  type        = bool
  default     = true
  description = "Send Key Vault audit logs, lake access logs and Event Hubs logs (including Kafka user errors) and metrics to the Log Analytics workspace."
}

variable "durable_backend" {
  type        = string
  default     = "azure_storage"
  description = "Backend of the Durable entities: azure_storage (the host storage account; the cheaper one for the proof of concept by `python -m tools.cost`), dts_consumption or dts_dedicated (the Durable Task Scheduler, main.durable.tf; needed past about 250 entity operations/s, i.e. keyed state at 1,000 events/s and above, docs/scale.md)."

  validation {
    condition     = contains(["azure_storage", "dts_consumption", "dts_dedicated"], var.durable_backend)
    error_message = "durable_backend must be azure_storage, dts_consumption or dts_dedicated."
  }
}

variable "dts_capacity_units" {
  type        = number
  default     = 1
  description = "Capacity units of a dts_dedicated scheduler: 2,000 actions (entity operations) per second each, 1-3 (3 for high availability)."

  validation {
    condition     = var.dts_capacity_units >= 1 && var.dts_capacity_units <= 3 && floor(var.dts_capacity_units) == var.dts_capacity_units
    error_message = "dts_capacity_units must be 1, 2 or 3."
  }
}

variable "monthly_budget_usd" {
  type        = number
  default     = 290
  description = "Monthly cost budget of the resource group in USD, alerting at 80% spent and 100% forecast; 0 creates none. The default is `python -m tools.cost --json`'s recommended_budget_usd for the defaults (the 10 events/s month with 50% headroom)."

  validation {
    condition     = var.monthly_budget_usd >= 0
    error_message = "monthly_budget_usd must be 0 (no budget) or a positive amount."
  }
}

variable "lake_diagnostic_log_categories" {
  type        = list(string)
  default     = ["StorageDelete"]
  description = "Log categories of the lake's diagnostic setting. StorageDelete (who removed what) by default: StorageRead and StorageWrite write one Log Analytics row per storage request, which `python -m tools.cost` prices (docs/cost.md); failed requests show in the Transaction metric, kept. Add StorageRead/StorageWrite to audit access."

  validation {
    condition     = alltrue([for category in var.lake_diagnostic_log_categories : contains(["StorageRead", "StorageWrite", "StorageDelete"], category)])
    error_message = "lake_diagnostic_log_categories may hold StorageRead, StorageWrite and StorageDelete."
  }
}
