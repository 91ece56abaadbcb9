"""Avro records with a schema registry: the wire formats, the Avro codec, the registry clients.

- ``wire``: where a record's schema id travels: Confluent's framing (magic byte 0, a 4-byte id,
  then Avro binary) or Event Hubs Schema Registry's content type header (``avro/binary+<id>``).
- ``avro_binary``: Avro binary to and from the form the JSON converter sends (bytes as base64).
- ``client``: registries by id: a Confluent-compatible REST API (Confluent Cloud, Redpanda,
  Apicurio's ccompat API, the local host's own) and the Event Hubs Schema Registry (azure SDK).
- ``decoder``: a batch's values decoded with their writer schemas, fetched once per id and cached.
"""
