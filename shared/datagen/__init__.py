"""Kafka Connect Datagen as configuration: connector configs, Avro schemas and ``arg.properties``.

The source registry (``shared.sources``) is imported first so that entering through any module
of this package finds the registry complete (the registry itself loads configs through here).
"""

import shared.sources  # noqa: F401
