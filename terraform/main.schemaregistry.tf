# Avro sources (a Datagen config with the AvroConverter) with the namespace's Event Hubs Schema
# Registry (Standard or Premium tier, which var.eventhubs_sku requires anyway): one schema group,
# named in SCHEMA_REGISTRY_GROUP (modules/app_settings, SCHEMA_REGISTRY_KIND = "eventhubs").
# Processors read writer schemas by id with the app's identity: Schema Registry Reader on this
# schema group (each group is separately securable; the namespace's other groups stay out of
# reach), granted only when a source is Avro (sources/*.json with the AvroConverter): none is by
# default, and no other code reads the registry. The generator, Datagen's stand-in, registers its
# schema when the group lacks it, which needs Schema Registry Contributor: granted only with
# var.schema_registry_generator_registers, likewise only when a source is Avro, and also on the
# group only (Contributor on the namespace could also delete every other group).
resource "azurerm_eventhub_namespace_schema_group" "sources" {
  name                 = var.schema_group_name
  namespace_id         = azurerm_eventhub_namespace.this.id
  schema_compatibility = "Backward"
  schema_type          = "Avro"
}

locals {
  schema_registry_url = "https://${azurerm_eventhub_namespace.this.name}.servicebus.windows.net"
  avro_sources = sort([
    for name, config in local.datagen_configs : name if strcontains(lookup(config, "value.converter", ""), "AvroConverter")
  ])

  schema_registry_roles = merge(
    length(local.avro_sources) > 0 ? { reader = "Schema Registry Reader (Preview)" } : {},
    var.schema_registry_generator_registers && length(local.avro_sources) > 0 ? { contributor = "Schema Registry Contributor (Preview)" } : {},
  )
}

resource "azurerm_role_assignment" "schema_registry" {
  for_each = local.schema_registry_roles

  scope                = azurerm_eventhub_namespace_schema_group.sources.id
  role_definition_name = each.value
  principal_id         = local.function_app_principal_id
  principal_type       = "ServicePrincipal"
  description          = "StreamingPOC function app ${local.names.function_app}: schema registry ${each.key}"
}
