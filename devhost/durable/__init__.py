"""The Durable Functions extension, entities only: signals applied in order per entity, state and signals stored."""
