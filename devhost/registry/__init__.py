"""The local host's schema registry: the Confluent Schema Registry REST subset the pipeline uses.

No registry server installs from the package indexes here (Karapace is not on PyPI; Confluent's,
Apicurio's and Redpanda's need Java or Docker), so the local host serves these routes itself, as
it serves the Durable HTTP API, under ``/registry``; schemas persist in SQLite beside the lake.
With Docker, docker-compose.yml's Redpanda serves the real one (``SCHEMA_REGISTRY_URL``).
"""
