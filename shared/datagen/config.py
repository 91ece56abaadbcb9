"""Kafka Connect Datagen connector configs, read and checked.

A config file is the JSON a user POSTs to Kafka Connect (``{"name": ..., "config": {...}}``).
Every problem raises :class:`DatagenConfigError` naming the file and the option.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fastavro

from shared.datagen.avro import (
    MAX_RECORD_JSON_BYTES,
    AvroType,
    SchemaProblem,
    largest_json,
    lone_surrogate,
    parse_schema,
)
from shared.errors import ConfigurationError
from shared.layout import NAME_BYTES, longest_file_name_bytes
from shared.small_files import read_small_text

QUICKSTART_DIR = Path(__file__).resolve().parent / "quickstarts"
# Datagen's quickstarts: schema file and default schema.keyfield.
QUICKSTARTS: dict[str, tuple[str, str]] = {
    "clickstream": ("clickstream.avsc", "ip"),
    "clickstream_users": ("clickstream_users.avsc", "user_id"),
    "clickstream_codes": ("clickstream_codes.avsc", "code"),
    "pageviews": ("pageviews.avsc", "viewtime"),
    "users": ("users.avsc", "userid"),
    "users_": ("users_.avsc", "userid"),
    "orders": ("orders.avsc", "orderid"),
    "ratings": ("ratings.avsc", "rating_id"),
    "stock_trades": ("stock_trades.avsc", "symbol"),
    "fleet_mgmt_sensors": ("fleet_mgmt_sensors.avsc", "vehicle_id"),
    "inventory": ("inventory.avsc", "id"),
    "purchases": ("purchases.avsc", "id"),
    "transactions": ("transactions.avsc", "transaction_id"),
}
CONNECTOR_CLASSES = ("io.confluent.kafka.connect.datagen.DatagenConnector", "DatagenConnector")
JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"
AVRO_CONVERTER = "io.confluent.connect.avro.AvroConverter"
REGISTRY_URL_OPTION = "value.converter.schema.registry.url"
REGISTRY_SECRET_OPTIONS = (
    "value.converter.schema.registry.basic.auth.user.info",
    "value.converter.basic.auth.user.info",
)
KEY_CONVERTERS = (JSON_CONVERTER, "org.apache.kafka.connect.storage.StringConverter")
SCHEMA_OPTIONS = ("quickstart", "schema.string", "schema.filename")
KNOWN_OPTIONS = frozenset(
    {
        "connector.class",
        "name",
        "kafka.topic",
        *SCHEMA_OPTIONS,
        "schema.keyfield",
        "max.interval",
        "iterations",
        "random.seed",
        "tasks.max",
        "key.converter",
        "value.converter",
        "key.converter.schemas.enable",
        "value.converter.schemas.enable",
        REGISTRY_URL_OPTION,
        "value.converter.basic.auth.credentials.source",
        *REGISTRY_SECRET_OPTIONS,
    }
)
# A URL whose authority has user information (user:secret@), with or without a scheme.
_USERINFO = re.compile(r"^\s*(?:[A-Za-z][A-Za-z0-9+.-]*:)?(?://)?[^/?#@]*@")
SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}\Z")
TOPIC_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,254}[A-Za-z0-9])?\Z")  # Kafka and Event Hubs both accept
DEFAULT_MAX_INTERVAL_MS = 500
TICK_SECONDS = 10  # the default generator schedule, */10 * * * * *
MAX_EVENTS_PER_TICK = 100_000


MAX_OPTION_INTEGER = 2**63 - 1  # Kafka Connect reads these options as Java longs


class DatagenConfigError(ConfigurationError):
    """A connector config this stand-in refuses; the message names the file and the option."""

    def __init__(self, file: str, option: str, message: str) -> None:
        self.file, self.option = file, option
        super().__init__(f"{file}: {option}: {message}")


@dataclass(frozen=True)
class DatagenConfig:
    """One checked connector config."""

    source: str  # the file name without .json: the source's name
    file: str
    connector: str  # the connector's name as Kafka Connect knows it
    topic: str
    schema: AvroType
    schema_json: Any
    keyfield: str | None
    max_interval_ms: int
    iterations: int  # total across tasks; 0 = unlimited
    seed: int | None
    tasks: int
    quickstart: str | None
    value_format: str = "json"  # json (JsonConverter, schemas off) or avro (AvroConverter with a registry)
    registry_url: str = ""  # value.converter.schema.registry.url of an Avro config

    @property
    def events_per_tick(self) -> int:
        """``max.interval``: Datagen sleeps a random 0..max.interval ms before each record, so a task
        sends 2000 / max.interval records a second on average; a tick of the default 10 s schedule
        sends that many times ten, times ``tasks.max`` (max.interval <= 0 sends the most a tick allows)."""
        if self.max_interval_ms <= 0:
            return MAX_EVENTS_PER_TICK
        per_tick = math.floor(self.tasks * TICK_SECONDS * 2000 / self.max_interval_ms + 0.5)  # as Terraform does
        return max(1, min(MAX_EVENTS_PER_TICK, per_tick))


def load_quickstart(name: str) -> Any:
    try:
        filename, _ = QUICKSTARTS[name]
    except KeyError:
        raise KeyError(f"unknown quickstart {name!r}; known: {', '.join(sorted(QUICKSTARTS))}") from None
    return json.loads((QUICKSTART_DIR / filename).read_text())


def quickstart_config(name: str, *, seed: int | None = None) -> DatagenConfig:
    """The config of ``{"quickstart": name}`` with Datagen's defaults (for the CLI and tests)."""
    source = name.rstrip("_")
    document: dict[str, Any] = {
        "name": f"datagen-{source}",
        "config": {"connector.class": CONNECTOR_CLASSES[0], "kafka.topic": source, "quickstart": name},
    }
    if seed is not None:
        document["config"]["random.seed"] = seed
    return parse_config(document, source=source, file=f"<quickstart {name}>", folder=QUICKSTART_DIR)


def read_config(path: Path) -> DatagenConfig:
    file = f"{path.parent.name}/{path.name}"
    source = path.name.removesuffix(".json")
    if not SOURCE_NAME.match(source):
        raise DatagenConfigError(
            file, "file name", "must be <source>.json with a lowercase letter, then lowercase letters, digits or _"
        )
    try:
        document = json.loads(read_text(path))
    except OSError as error:  # a directory, a dangling link, a device: named, not a traceback at indexing
        raise DatagenConfigError(file, "<document>", f"cannot be read: {error.strerror or error}") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as error:  # RecursionError: nested too deep
        raise DatagenConfigError(file, "<document>", f"not JSON: {error}") from None
    return parse_config(document, source=source, file=file, folder=path.parent)


MAX_CONFIG_BYTES = 8 << 20  # a config or schema file: far past any real one, so a device or a mistake is not read whole


def read_text(path: Path) -> str:
    """A config or schema file's text: a regular file of at most ``MAX_CONFIG_BYTES`` (``read_small_text``)."""
    return read_small_text(path, MAX_CONFIG_BYTES)


def _text(file: str, option: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DatagenConfigError(file, option, f"must be a string, got {json.dumps(value)}")
    return str(value).strip()


def _integer(file: str, option: str, value: Any, *, minimum: int | None = None) -> int:
    text = _text(file, option, value)
    try:
        number = int(text)
    except ValueError:
        raise DatagenConfigError(file, option, f"must be a whole number, got {text!r}") from None
    if minimum is not None and number < minimum:
        raise DatagenConfigError(file, option, f"must be at least {minimum}, got {number}")
    if abs(number) > MAX_OPTION_INTEGER:
        raise DatagenConfigError(file, option, f"must be at most {MAX_OPTION_INTEGER:,} in size, got {text[:40]!r}")
    return number


def _flag(file: str, option: str, value: Any) -> bool:
    text = _text(file, option, value).lower()
    if text not in ("true", "false"):
        raise DatagenConfigError(file, option, f"must be true or false, got {text!r}")
    return text == "true"


def parse_config(document: Any, *, source: str, file: str, folder: Path) -> DatagenConfig:
    """Check one connector config document (the POST body) and read its schema."""
    if not isinstance(document, dict):
        raise DatagenConfigError(file, "<document>", 'must be an object {"name": ..., "config": {...}}')
    for key in document:
        if key not in ("name", "config"):
            raise DatagenConfigError(file, key, 'unknown top-level key; a connector is {"name": ..., "config": {...}}')
    if "config" not in document or not isinstance(document["config"], dict):
        raise DatagenConfigError(file, "config", "missing: the connector's options go in a config object")
    if "name" not in document:
        raise DatagenConfigError(file, "name", "missing: Kafka Connect needs the connector's name")
    connector = _text(file, "name", document["name"])
    config: dict[str, Any] = document["config"]
    _check_text(file, "name", document["name"])
    for option, value in config.items():
        if option != "schema.string":  # its text is checked once parsed, naming where in the schema
            _check_text(file, f"config.{option}", [option, value])
    for option in config:
        if option not in KNOWN_OPTIONS:
            raise DatagenConfigError(
                file, f"config.{option}", f"unknown option; Datagen options here: {', '.join(sorted(KNOWN_OPTIONS))}"
            )
    if "name" in config and _text(file, "config.name", config["name"]) != connector:
        raise DatagenConfigError(file, "config.name", f"conflicts with the connector name {connector!r}")
    connector_class = _text(file, "config.connector.class", config.get("connector.class", ""))
    if connector_class not in CONNECTOR_CLASSES:
        raise DatagenConfigError(
            file, "config.connector.class", f"must be {CONNECTOR_CLASSES[0]}, got {connector_class!r}"
        )
    value_format, registry_url = _check_converters(file, config)
    topic = _text(file, "config.kafka.topic", config.get("kafka.topic", ""))
    if not TOPIC_NAME.match(topic):
        raise DatagenConfigError(file, "config.kafka.topic", f"{topic!r} is not a usable topic (event hub) name")
    if (longest := longest_file_name_bytes(topic)) > NAME_BYTES:
        raise DatagenConfigError(
            file,
            "config.kafka.topic",
            f"is {len(topic)} characters: the files landed for it would take names of up to {longest} bytes, "
            f"{NAME_BYTES} at most ({len(topic) - (longest - NAME_BYTES)} characters at most)",
        )
    given = [option for option in SCHEMA_OPTIONS if _text(file, f"config.{option}", config.get(option, ""))]
    if not given:
        raise DatagenConfigError(file, "config.quickstart", f"one of {', '.join(SCHEMA_OPTIONS)} is required")
    if len(given) > 1:
        raise DatagenConfigError(file, f"config.{given[1]}", f"conflicts with config.{given[0]}; give only one")
    schema_option = given[0]
    quickstart = None
    if schema_option == "quickstart":
        quickstart = _text(file, "config.quickstart", config["quickstart"]).lower()
        if quickstart not in QUICKSTARTS:
            raise DatagenConfigError(
                file, "config.quickstart", f"unknown quickstart {quickstart!r}; known: {', '.join(sorted(QUICKSTARTS))}"
            )
        schema_json = load_quickstart(quickstart)
    elif schema_option == "schema.string":
        try:
            schema_json = json.loads(_text(file, "config.schema.string", config["schema.string"]))
        except (ValueError, RecursionError) as error:
            raise DatagenConfigError(file, "config.schema.string", f"not a JSON Avro schema: {error}") from None
    else:
        schema_json = _schema_file(file, folder, _text(file, "config.schema.filename", config["schema.filename"]))
    try:
        schema = parse_schema(schema_json)
    except SchemaProblem as problem:
        raise DatagenConfigError(file, f"config.{schema_option}", str(problem)) from None
    except RecursionError:  # a backstop: the schema's and its regexes' nesting are bounded well below it
        raise DatagenConfigError(
            file, f"config.{schema_option}", "nests too deep to read (Python's recursion limit)"
        ) from None
    where = _lone_surrogate_at(schema_json)
    if where is not None:  # a name, doc or default: an Avro source could not even register its schema
        raise DatagenConfigError(file, f"config.{schema_option}", f"{where} holds a lone surrogate, which is not text")
    try:  # what Avro itself refuses (duplicate enum symbols, names that are not names, bad defaults...)
        fastavro.parse_schema(schema_json)
    except Exception as error:  # fastavro raises several kinds for a bad schema
        raise DatagenConfigError(file, f"config.{schema_option}", f"not a valid Avro schema: {error}") from None
    keyfield = _text(file, "config.schema.keyfield", config.get("schema.keyfield", "")) or (
        QUICKSTARTS[quickstart][1] if quickstart else ""
    )
    if keyfield:
        _check_keyfield(file, schema, keyfield)
    tasks = _integer(file, "config.tasks.max", config.get("tasks.max", 1), minimum=1)
    iterations = _integer(file, "config.iterations", config.get("iterations", -1))
    seed_text = config.get("random.seed")
    return DatagenConfig(
        source=source,
        file=file,
        connector=connector,
        topic=topic,
        schema=schema,
        schema_json=schema_json,
        keyfield=keyfield or None,
        max_interval_ms=_integer(file, "config.max.interval", config.get("max.interval", DEFAULT_MAX_INTERVAL_MS)),
        iterations=max(0, iterations) * tasks,
        seed=None if seed_text in (None, "") else _integer(file, "config.random.seed", seed_text),
        tasks=tasks,
        quickstart=quickstart,
        value_format=value_format,
        registry_url=registry_url,
    )


def _check_converters(file: str, config: dict[str, Any]) -> tuple[str, str]:
    """The value format (``json`` or ``avro``) and, for Avro, the registry URL the config names."""
    value_converter = _text(file, "config.value.converter", config.get("value.converter", JSON_CONVERTER))
    for option in REGISTRY_SECRET_OPTIONS:
        if option in config:
            raise DatagenConfigError(
                file,
                f"config.{option}",
                "a secret does not belong in a file under sources/: set SCHEMA_REGISTRY_USERNAME and "
                "SCHEMA_REGISTRY_PASSWORD (a Key Vault reference in Azure)",
            )
    registry_url = _text(file, f"config.{REGISTRY_URL_OPTION}", config.get(REGISTRY_URL_OPTION, ""))
    if _USERINFO.match(registry_url):  # Confluent's basic.auth.credentials.source=URL: https://key:secret@host
        raise DatagenConfigError(
            file,
            f"config.{REGISTRY_URL_OPTION}",
            "credentials in the URL (user:secret@host) are refused: a secret does not belong in a file under"
            " sources/: set SCHEMA_REGISTRY_USERNAME and SCHEMA_REGISTRY_PASSWORD (a Key Vault reference in Azure)",
        )
    if value_converter == AVRO_CONVERTER:
        if not registry_url:
            raise DatagenConfigError(
                file, f"config.{REGISTRY_URL_OPTION}", f"{AVRO_CONVERTER} needs the schema registry's URL"
            )
        if (problem := _url_problem(registry_url)) is not None:
            raise DatagenConfigError(file, f"config.{REGISTRY_URL_OPTION}", f"{registry_url!r} {problem}")
        value_format = "avro"
    elif value_converter == JSON_CONVERTER:
        if registry_url:
            raise DatagenConfigError(
                file, f"config.{REGISTRY_URL_OPTION}", f"is for {AVRO_CONVERTER}; the value converter is JSON"
            )
        if "value.converter.schemas.enable" in config and _flag(
            file, "config.value.converter.schemas.enable", config["value.converter.schemas.enable"]
        ):
            raise DatagenConfigError(
                file, "config.value.converter.schemas.enable", "conflicts with plain JSON records: set it to false"
            )
        value_format = "json"
    else:
        raise DatagenConfigError(
            file,
            "config.value.converter",
            f"this stand-in sends what {JSON_CONVERTER} (schemas.enable=false) or {AVRO_CONVERTER} with a schema "
            f"registry sends; got {value_converter!r}",
        )
    key_converter = _text(file, "config.key.converter", config.get("key.converter", KEY_CONVERTERS[1]))
    if key_converter not in KEY_CONVERTERS:
        raise DatagenConfigError(
            file, "config.key.converter", f"must be one of {', '.join(KEY_CONVERTERS)}; got {key_converter!r}"
        )
    if "key.converter.schemas.enable" in config and _flag(
        file, "config.key.converter.schemas.enable", config["key.converter.schemas.enable"]
    ):
        raise DatagenConfigError(
            file, "config.key.converter.schemas.enable", "conflicts with plain string keys: set it to false"
        )
    return value_format, registry_url.rstrip("/")


def _check_text(file: str, option: str, value: Any) -> None:
    """Refuse a lone surrogate (JSON reads ``"\\ud800"``): it is not text, so nothing holding it can be sent."""
    surrogate = lone_surrogate(value)
    if surrogate is not None:
        raise DatagenConfigError(file, option, f"holds a lone surrogate {surrogate!r}, which is not text")


def _lone_surrogate_at(value: Any) -> str | None:
    """Where in a JSON value (``fields[0].default``) a string or key first holds a lone surrogate; None if nowhere."""
    pending: list[tuple[Any, str]] = [(value, "")]
    while pending:
        item, where = pending.pop()
        if isinstance(item, str):
            if lone_surrogate(item) is not None:
                return where or "the schema"
        elif isinstance(item, dict):
            for key in item:
                if lone_surrogate(key) is not None:
                    return where or "a key"
            pending.extend(reversed([(child, f"{where}.{key}" if where else key) for key, child in item.items()]))
        elif isinstance(item, list):
            pending.extend(reversed([(child, f"{where}[{number}]") for number, child in enumerate(item)]))
    return None


def _url_problem(url: str) -> str | None:
    """What keeps ``url`` from naming a registry to call (``None``: nothing): checked when the config is read, not
    found by every generator tick failing."""
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in url):
        return "holds a control character"
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when out of range or not a number
    except ValueError as error:
        return f"is not a URL: {error}"
    if parts.scheme not in ("http", "https"):
        return "is not an http(s) URL"
    if not parts.hostname:
        return "names no host"
    if port == 0:
        return "names port 0"
    return None


def _schema_file(file: str, folder: Path, name: str) -> Any:
    if "\0" in name:
        raise DatagenConfigError(file, "config.schema.filename", f"{name!r} holds a NUL character")
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise DatagenConfigError(file, "config.schema.filename", f"{name!r} must be a file inside {folder.name}/")
    try:
        return json.loads(read_text(path))
    except FileNotFoundError:
        raise DatagenConfigError(file, "config.schema.filename", f"{name!r} does not exist in {folder.name}/") from None
    except OSError as error:  # a directory, unreadable, ...: still the option's fault, named as such
        reason = error.strerror or type(error).__name__
        raise DatagenConfigError(file, "config.schema.filename", f"{name!r} cannot be read: {reason}") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise DatagenConfigError(
            file, "config.schema.filename", f"{name!r} is not a JSON Avro schema: {error}"
        ) from None


def _check_keyfield(file: str, schema: AvroType, keyfield: str) -> None:
    fields = {f.name: f.type for f in schema.fields}
    if keyfield not in fields:
        raise DatagenConfigError(
            file, "config.schema.keyfield", f"{keyfield!r} is not a field of the schema ({', '.join(fields)})"
        )
    kinds = {branch.kind for branch in fields[keyfield].non_null}
    if not kinds <= {"boolean", "int", "long", "float", "double", "string", "enum"}:
        raise DatagenConfigError(
            file, "config.schema.keyfield", f"{keyfield!r} must be a primitive field to be a message key"
        )
    # The key is a copy of the field's text, sent besides the record: the two together must fit the record bound
    # (which leaves the rest of a message's 1,000,000 bytes for the headers and framing), or no record is ever sent.
    key, record = largest_json(fields[keyfield]), largest_json(schema)
    if key + record > MAX_RECORD_JSON_BYTES:
        raise DatagenConfigError(
            file,
            "config.schema.keyfield",
            f"{keyfield!r} is each message's key, sent besides its record: a key of up to {key:,} bytes and a record "
            f"of up to {record:,} bytes of JSON make {key + record:,}, over {MAX_RECORD_JSON_BYTES:,} bytes, the most "
            "a generated message may have (a Kafka message holds 1,000,000): shorten the field or key by another",
        )
