# Dead-letter redrive (python -m tools.redrive) and reconcile (python -m tools.reconcile) run by
# an operator, not by the app: a redrive sends through azure-eventhub with the operator's Entra
# ID login, so the operator (and only when named) gets the data-plane Sender role on each
# source's hub (what a redrive sends to; not the namespace), no SAS key, and blob access to the
# lake's file system (not the whole account). Reconcile reads each hub's records and its
# processor's committed offsets, and --move-group-to-time moves them: Receiver on each hub.
# An Avro source's dead letters are decoded with the Event Hubs Schema Registry, with the same
# login: Schema Registry Reader on the schema group, granted as the app's own is
# (main.schemaregistry.tf): only while a source is Avro, and on the group only.
locals {
  redrive_operator_roles = var.redrive_operator_principal_id == null ? {} : merge(
    {
      for name, hub in azurerm_eventhub.source : "eventhubs_sender_${name}" => {
        scope = hub.id
        role  = "Azure Event Hubs Data Sender"
      }
    },
    {
      for name, hub in azurerm_eventhub.source : "eventhubs_receiver_${name}" => {
        scope = hub.id
        role  = "Azure Event Hubs Data Receiver"
      }
    },
    {
      lake_blob_data = {
        scope = azurerm_storage_container.lake.id
        role  = "Storage Blob Data Contributor"
      }
    },
    length(local.avro_sources) > 0 ? {
      schema_registry_reader = {
        scope = azurerm_eventhub_namespace_schema_group.sources.id
        role  = "Schema Registry Reader (Preview)"
      }
    } : {},
  )
}

resource "azurerm_role_assignment" "redrive_operator" {
  for_each = local.redrive_operator_roles

  scope                = each.value.scope
  role_definition_name = each.value.role
  principal_id         = var.redrive_operator_principal_id
  description          = "StreamingPOC dead-letter redrive operator: ${each.key}"
}
