"""Kafka Connect Datagen as configuration: connector configs, Avro schemas and ``arg.properties``.

The source registry (``shared.sources``) loads configs through ``shared.datagen.source``; nothing
here imports the registry.
"""
