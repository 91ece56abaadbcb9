"""A :class:`Source` built from a Datagen connector config, and the folder of configs as sources."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from faker import Faker
from pydantic import BaseModel, TypeAdapter, ValidationError

from shared.datagen.avro import NO_DEFAULT, AvroType, SchemaProblem, avro_bytes, check_largest_record
from shared.datagen.config import DatagenConfig, DatagenConfigError, read_config
from shared.datagen.generate import RecordGenerator
from shared.datagen.model import annotation, build_model, json_form_default, landed_columns
from shared.schema_registry.avro_binary import encode, parse_writer_schema
from shared.source_model import Row, Source, record_validator

# Trial records generated when a config is indexed (a few from the start of the sequence, a few far into
# it), at a fixed time with a fixed seed: a config whose generator fails, or makes a record its own model
# refuses, would fail every tick forever, so it fails at indexing instead.
TRIAL_RECORDS = ((0, 8), (2**40, 2))  # (first record index, count)
TRIAL_NOW = datetime(2026, 1, 1, tzinfo=UTC)


def config_source(config: DatagenConfig) -> Source:
    """The source a connector config describes: its wire model, columns, transform, key and generator.

    Datagen records carry no trusted time of their own, so rows land by their Kafka timestamp
    (``_event_time_source = "kafka"``).
    """
    model_name = "".join(part.capitalize() for part in config.source.split("_")) + "Record"
    try:
        model, names = build_model(config.schema, model_name)
        columns, transform = landed_columns(config.schema, names)
    except SchemaProblem as problem:
        raise DatagenConfigError(config.file, "schema", str(problem)) from None
    _check_options(config, model)
    _check_defaults(config)
    generator = RecordGenerator(config.schema)
    keyfield = config.keyfield

    def entity_key(row: Row) -> str | None:
        if keyfield is None:
            return None
        value = row.get(keyfield)
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def generate_from(fake: Faker, count: int, now: datetime, start_index: int) -> list[BaseModel]:
        return [model.model_validate(record) for record in generator.records(fake.random, count, now, start_index)]

    def generate(fake: Faker, count: int, now: datetime) -> list[BaseModel]:
        return generate_from(fake, count, now, 0)

    def event_time_ms(event: Row) -> None:
        return None

    _try_generating(config, model, generator, transform)
    defaults = {
        "topic": config.topic,
        "state_enabled": "false",
        "generator_events_per_tick": str(config.events_per_tick),
        "generator_iterations": str(config.iterations),
    }
    if config.seed is not None:
        defaults["generator_seed"] = str(config.seed)
    return Source(
        name=config.source,
        model=model,
        columns=columns,
        transform=transform,
        event_time_ms=event_time_ms,
        entity_key=entity_key,
        generate=generate,
        generate_from=generate_from,
        setting_defaults=defaults,
        value_format="avro" if config.value_format == "avro" else "json",
        avro_schema=config.schema_json if config.value_format == "avro" else None,
        registry_url=config.registry_url,
    )


def _check_options(config: DatagenConfig, model: type[BaseModel]) -> None:
    """Every ``options`` value must be one the schema accepts, or the records carrying it would fail; and the
    largest record is sized again with each option as a record sends it (validated, then dumped: ``0`` on a
    ``double`` is ``0.0``, a record option has its defaults filled in), which may be larger than as written; for an
    Avro source, at the most it may take in the Avro body when that is more (``0.0``: 3 bytes of JSON, 8 of Avro).
    Every other value's JSON bound is at least its Avro one (numbers at their longest, strings with quotes)."""
    sent: dict[int, int] = {}
    for node in _nodes(config.schema):
        options: list[Any] = node.props.get("options", [])
        adapter = None if node is config.schema else TypeAdapter(annotation(node))
        for number, option in enumerate(options):
            try:
                if adapter is None:
                    dumped = model.model_validate(option).model_dump_json(by_alias=True).encode()
                else:
                    dumped = adapter.dump_json(adapter.validate_python(option), by_alias=True)
                size = len(dumped)
                if config.value_format == "avro":
                    size = max(size, avro_bytes(node, orjson.loads(dumped)))
            except ValueError as error:
                where = (
                    f"{node.path} arg.properties.options[{number}]"
                    if node.path
                    else f"arg.properties.options[{number}]"
                )
                raise DatagenConfigError(config.file, "schema", f"{where}: {_problem(error)}") from None
            sent[id(node)] = max(sent.get(id(node), 0), size)
    try:
        check_largest_record(config.schema, sent, avro=config.value_format == "avro")
    except SchemaProblem as problem:
        raise DatagenConfigError(config.file, "schema", str(problem)) from None


def _check_defaults(config: DatagenConfig) -> None:
    """Every top-level field's ``default`` must be a value its model accepts: a record sent without the field
    is landed with it (a timestamp default past year 9999 would land, and then fail its hour's compaction)."""
    for item in config.schema.fields:
        if item.default is NO_DEFAULT:
            continue
        try:
            TypeAdapter(annotation(item.type)).validate_python(json_form_default(item.default, item.type))
        except (ValueError, SchemaProblem) as error:
            raise DatagenConfigError(
                config.file, "schema", f"{item.name} default {json.dumps(item.default)[:80]} {_problem(error)}"
            ) from None


def _try_generating(config: DatagenConfig, model: type[BaseModel], generator: RecordGenerator, transform: Any) -> None:
    """Generate a few records as a tick does, send them as the tick would (JSON, or an Avro body) and validate
    them as the processor does: the backstop behind the checks of ``arg.properties``."""
    rnd = random.Random(f"{config.source}:indexing")
    validate = record_validator(model).validate_json
    start = 0
    try:
        avro = None
        if config.value_format == "avro":  # what the generator's encoder parses: it must take the schema
            avro = parse_writer_schema(orjson.dumps(config.schema_json).decode())
        for start, count in TRIAL_RECORDS:
            for record in generator.records(rnd, count, TRIAL_NOW, start):
                event = model.model_validate(record)  # what the generator does with each record
                text = event.model_dump_json(by_alias=True)  # what it sends
                transform(validate(text))  # what the processor lands
                if avro is not None:
                    encode(avro, orjson.loads(text))
    except Exception as error:  # whatever fails here would fail on every tick, retried forever
        raise DatagenConfigError(
            config.file, "schema", f"a trial record of its generator (number {start:,} or after) {_problem(error)}"
        ) from None


def _problem(error: Exception) -> str:
    """What is wrong, in a line: pydantic's issues as ``field: message``, anything else with its type."""
    if isinstance(error, ValidationError):
        issues = [
            f"{'.'.join(map(str, issue['loc']))}: {issue['msg']}" if issue["loc"] else issue["msg"]
            for issue in error.errors()
        ]
        return f"is refused: {'; '.join(issues)}"[:400]
    return f"fails: {type(error).__name__}: {' '.join(str(error).split())}"[:400]


def _nodes(node: AvroType) -> list[AvroType]:
    found = [node]
    for item in node.fields:
        found.extend(_nodes(item.type))
    for branch in node.branches:
        found.extend(_nodes(branch))
    if node.items is not None:
        found.extend(_nodes(node.items))
    return found


def load_config_sources(folder: Path, existing: Iterable[Source]) -> list[Source]:
    """Every ``<folder>/*.json`` as a source, checked against the hand-written ``existing`` ones.

    A name or a topic taken by another source fails, naming the file and the option.
    """
    if not folder.is_dir():
        return []
    names = {source.name: "a hand-written source" for source in existing}
    topics = {source.setting_defaults.get("topic", source.name): source.name for source in existing}
    sources = []
    for path in sorted(folder.glob("*.json")):
        config = read_config(path)
        if config.source in names:
            raise DatagenConfigError(
                config.file, "file name", f"source {config.source!r} is already {names[config.source]}"
            )
        if config.topic in topics:
            raise DatagenConfigError(
                config.file,
                "config.kafka.topic",
                f"{config.topic!r} is already the topic of source {topics[config.topic]!r}",
            )
        source = config_source(config)
        names[source.name] = config.file
        topics[config.topic] = source.name
        sources.append(source)
    return sources
