"""Local stand-ins for Azure services, run as child processes: a Kafka broker (Tansu) and Azurite (Storage)."""
