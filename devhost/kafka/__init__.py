"""The Kafka extension (in Azure it runs in the .NET Functions host): triggers, client settings, output binding."""
