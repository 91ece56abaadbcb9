"""A batch's Avro values decoded with their writer schemas, each schema fetched once per id and cached
(the most recently used ``MAX_SCHEMAS``, within ``MAX_SCHEMA_TEXT_BYTES``: others are fetched again).

Runs before validation (``shared.validation``) for sources whose values are Avro. A record without
a usable schema id, or whose body does not decode, is a dead letter ``not_avro``; one whose id the
registry does not hold, or which this code cannot use (docs/datagen.md), ``unknown_schema``; one that
would decode to more than ``MAX_REPEATED_VALUES`` array items and map entries, or values outside them (its
schema's, refused), or once its batch's records decoded to ``MAX_BATCH_REPEATED_VALUES``, ``oversized``; one
whose schema gives a field another logical type than the source's (timestamp-millis read as
timestamp-micros), or that does not resolve to the source's by Avro's rules (bytes that are not UTF-8 read
as a string, a union branch the source lacks, a long read as an int), ``schema``. A registry that does not answer raises
(``RegistryUnavailable``): the batch waits and is retried, nothing is dead-lettered for it, and the
answers it got are kept, so each retry gets further.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NoReturn

import orjson

from shared.dead_letters import DeadLetter, Reason
from shared.errors import ConfigurationError, RegistryRefused, RegistryUnavailable
from shared.records import KafkaRecord
from shared.schema_registry.avro_binary import (
    BadSchema,
    Oversized,
    OversizedSchema,
    ParsedSchema,
    Unresolved,
    changed_meaning,
    decode_as,
    parse_reader_schema,
    parse_writer_schema,
    repeat_counter,
    with_writer_names,
    without_generator_hints,
)
from shared.schema_registry.client import (
    ConfluentRegistry,
    EventHubsRegistry,
    SchemaRegistry,
    UnknownSchema,
    redacted,
)
from shared.schema_registry.wire import NotAvro, confluent_split, schema_id_of_content_type
from shared.settings import Settings
from shared.source_model import Source

MAX_UNKNOWN_IDS = 4096  # unknown schema ids a decoder remembers (each asked again after UNKNOWN_RETRY_SECONDS)
UNKNOWN_RETRY_SECONDS = 60.0  # an id the registry did not hold is asked again after this long
# Schemas a decoder keeps besides unknown ids, the least recently used forgotten past either bound (and fetched
# again when a record names them): junk values name real ids too, in a registry other teams share (Confluent ids
# are small sequential integers), and a parsed schema takes about ten times its text (up to MAX_ANSWER_BYTES).
# A batch's own schemas, and those of stopped batches to be retried, are kept whatever their number and size.
MAX_SCHEMAS = 2048
MAX_SCHEMA_TEXT_BYTES = 16 * 2**20  # the schemas' texts (their characters), with their references
# Registry time one batch attempt spends fetching schemas: a call starts only within it (the first of an
# attempt always), so an attempt spends at most this plus one call (tests/unit/test_poll_interval.py);
# the ids left are fetched by the next attempt.
REGISTRY_SECONDS_PER_BATCH = 5.0
# A batch attempt that stopped (RegistryUnavailable) keeps the ids it asked about from being forgotten until
# it completes (another batch's bound on unknown ids would otherwise take what it learnt, and a batch of more
# than MAX_UNKNOWN_IDS ids never complete): at most this many such batches, each at most this long after its
# last attempt (maxPollIntervalMs: by then the partition went to another worker).
MAX_RETRYING_BATCHES = 32
RETRYING_SECONDS = 900.0
# What a batch's records may decode to together beyond their bytes, in weighted array items and map entries
# (each record at most MAX_REPEATED_VALUES, shared.schema_registry.avro_binary): a record counts only the items
# past one per byte of its body (``amplified``). Data takes a byte or more a value (a union's branch, a length,
# a boolean), so a real record's count stays within its bytes and a clean batch counts nothing, however big
# (10,000 records of 250 doubles: 0); what counts is items that decode to far more than they take on the wire
# (records of one boolean, or of null fields: a dict of hundreds of bytes from one byte), about 130 bytes each
# once decoded, so ~260 MB. Past it, the batch's further records are dead letters ``oversized`` (redrivable).
MAX_BATCH_REPEATED_VALUES = 2_000_000
# How a source reads the records of each writer schema (:class:`_Resolution`), kept per source schema: at most
# this many writer schemas each (past it, forgotten and worked out again).
MAX_RESOLUTIONS = 4096


def amplified(repeats: int, body: bytes | memoryview) -> int:
    """What of a record's weighted items counts toward its batch's bound: those past one per byte of its body."""
    return max(0, repeats - len(body))


@dataclass(slots=True)
class DecodedBatch:
    """Records whose value decoded, their values (the JSON converter's form) and texts, and the rest."""

    records: list[KafkaRecord] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)  # each decoded value as JSON text, for ``_received``
    letters: list[DeadLetter] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Refused:
    reason: Reason
    detail: str


@dataclass(frozen=True, slots=True)
class _Resolution:
    """How a source reads the records of one writer schema, worked out once per schema id: ``reader``, the
    source's schema to resolve them to (None: read as written; the writer's type names among its aliases
    where they differ: :func:`with_writer_names`); ``changed``, why none is read (a field of another logical
    type: :func:`changed_meaning`, matched with the writer's names among ``reader``'s aliases, as fastavro
    resolves them). A record that does not resolve to ``reader`` is a dead letter of its own (``schema``)."""

    writer: ParsedSchema
    reader: ParsedSchema | None
    changed: str | None = None


@dataclass(frozen=True, slots=True)
class _Reader:
    """A source's schema, ``parsed`` to resolve records to (None: read them as written), and ``as_written``:
    parsed as a writer's schema is (without defaults), to tell the records written with it, which need no
    resolving (None when it does not parse as one). ``resolutions``: by writer schema id, how its records
    are read (the decoder's, under its lock)."""

    parsed: ParsedSchema | None
    as_written: ParsedSchema | None
    resolutions: dict[str, _Resolution] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, schema: Any) -> _Reader:
        try:
            parsed = parse_reader_schema(schema)
        except BadSchema:
            return _AS_WRITTEN
        try:
            # As the generator registers it (no arg.properties): its records are then read as written, once.
            return cls(parsed, parse_writer_schema(orjson.dumps(without_generator_hints(schema)).decode()))
        except BadSchema:
            return cls(parsed, None)


_AS_WRITTEN = _Reader(None, None)


class AvroDecoder:
    """Decodes values for one registry; its schema cache is shared by every batch of the worker."""

    def __init__(self, registry: SchemaRegistry, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.clock = clock
        self._schemas: dict[str, ParsedSchema | _Refused] = {}
        self._unknown_since: dict[str, float] = {}
        # The ids of ``_schemas`` not in ``_unknown_since``, least recently used first: the bytes of their texts.
        self._text_bytes: dict[str, int] = {}
        self._readers: dict[str, _Reader] = {}  # by the reader schema's JSON text
        self._retrying: dict[frozenset[str], float] = {}  # stopped batches' ids: when they last stopped
        # Ids the registry refused (RegistryRefused, no answer kept), when: asked after the ids never asked, so
        # that a later attempt reaches an id it serves (after which a 40301 refusal is the id's own answer).
        self._refused_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def decode(self, records: list[KafkaRecord], values: list[bytes], reader_schema: Any = None) -> DecodedBatch:
        """Decode ``values`` (of ``records``) as ``reader_schema`` reads them (the source's schema; None: as
        written); fetches the schemas of ids not seen yet, once each."""
        reader = self._reader(reader_schema)
        located = [self._locate(record, value) for record, value in zip(records, values, strict=True)]
        schemas = self._fetch({found[0] for found in located if isinstance(found, tuple)})
        resolutions, counters = self._prepare(reader, schemas)
        batch = DecodedBatch()
        repeats = 0  # the batch's weighted array items and map entries so far
        for record, found in zip(records, located, strict=True):
            if isinstance(found, NotAvro):
                batch.letters.append(DeadLetter(record, Reason.NOT_AVRO, str(found)))
                continue
            schema_id, body = found
            schema = schemas[schema_id]
            if isinstance(schema, _Refused):
                batch.letters.append(DeadLetter(record, schema.reason, schema.detail))
                continue
            resolution = resolutions[schema_id]
            if resolution.changed is not None:
                batch.letters.append(DeadLetter(record, Reason.SCHEMA, f"schema {schema_id}: {resolution.changed}"))
                continue
            if repeats >= MAX_BATCH_REPEATED_VALUES:
                detail = (
                    f"its batch's records decoded to {repeats:,} array items and map entries, past the batch's"
                    f" {MAX_BATCH_REPEATED_VALUES:,}: redrive it"
                )
                batch.letters.append(DeadLetter(record, Reason.OVERSIZED, detail))
                continue
            try:
                value, sent = decode_as(schema, resolution.reader, body)
                if (count := counters[schema_id]) is not None:
                    repeats += amplified(count(sent, body), body)
                received = received_text(sent)
            except Unresolved as problem:
                if (count := counters[schema_id]) is not None:
                    repeats += amplified(count(problem.sent, body), body)
                batch.letters.append(DeadLetter(record, Reason.SCHEMA, f"schema {schema_id}: {problem}"))
                continue
            except Oversized as problem:
                repeats += amplified(problem.counted, body)
                batch.letters.append(DeadLetter(record, Reason.OVERSIZED, f"schema {schema_id}: {problem}"))
                continue
            except NotAvro as problem:
                batch.letters.append(DeadLetter(record, Reason.NOT_AVRO, f"schema {schema_id}: {problem}"))
                continue
            except (RecursionError, TypeError) as problem:  # nested past what JSON text is written for (254 levels)
                detail = f"schema {schema_id}: the record cannot be written as JSON: {problem}"
                batch.letters.append(DeadLetter(record, Reason.NOT_AVRO, detail))
                continue
            batch.records.append(record)
            batch.values.append(value)
            batch.received.append(received)
        return batch

    def _prepare(
        self, reader: _Reader, schemas: dict[str, ParsedSchema | _Refused]
    ) -> tuple[dict[str, _Resolution], dict[str, Any]]:
        """How ``reader`` reads each usable schema's records, and their repeat counters. A schema either step fails
        on (one the checks at parse let through) is refused in ``schemas``: its records are dead letters, not the
        batch's failure, which would come back on every retry and stop the partition."""
        resolutions: dict[str, _Resolution] = {}
        counters: dict[str, Any] = {}
        for schema_id, schema in list(schemas.items()):
            if isinstance(schema, _Refused):
                continue
            try:
                resolutions[schema_id] = self._resolution(reader, schema_id, schema)
                counters[schema_id] = repeat_counter(schema)
            except MemoryError:  # the worker's state: the batch is retried
                raise
            except Exception as error:
                detail = f"schema {schema_id}: its records cannot be read: {type(error).__name__}: {error}"[:500]
                schemas[schema_id] = _Refused(Reason.UNKNOWN_SCHEMA, detail)
        return resolutions, counters

    def _reader(self, schema: Any) -> _Reader:
        """``schema`` parsed once; records are read as written when there is none or it does not parse."""
        if schema is None:
            return _AS_WRITTEN
        text = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS).decode()
        with self._lock:
            if text not in self._readers:
                self._readers[text] = _Reader.of(schema)
            return self._readers[text]

    def _resolution(self, reader: _Reader, schema_id: str, schema: ParsedSchema) -> _Resolution:
        """How ``reader`` reads the records of ``schema`` (id ``schema_id``), worked out on its first batch."""
        if reader.parsed is None:
            return _Resolution(schema, None)
        with self._lock:
            found = reader.resolutions.get(schema_id)
        if found is not None and found.writer is schema:
            return found
        if schema == reader.as_written:  # written with the source's own schema: read as written
            found = _Resolution(schema, None)
        else:
            renamed = with_writer_names(schema, reader.parsed)
            found = _Resolution(schema, renamed, changed_meaning(schema, renamed))
        with self._lock:
            if len(reader.resolutions) >= MAX_RESOLUTIONS:
                reader.resolutions.clear()
            reader.resolutions[schema_id] = found
        return found

    def _locate(self, record: KafkaRecord, value: bytes) -> tuple[str, bytes | memoryview] | NotAvro:
        try:
            if self.registry.kind == "eventhubs":
                return schema_id_of_content_type(record.content_type), value
            return confluent_split(value)
        except NotAvro as problem:
            return problem

    def _fetch(self, schema_ids: set[str]) -> dict[str, ParsedSchema | _Refused]:
        """The schemas of ``schema_ids``, this batch's own (another batch may evict them from the cache meanwhile).

        Ids never asked are fetched first; then unknown ones due to be asked again, best effort: if the
        registry does not answer, the answer on hand serves. Each answer is kept (stamped when it came)
        even when a later call fails, so a retried batch starts where it stopped: a registry that
        rate-limits still lets it through. Calls start only within ``REGISTRY_SECONDS_PER_BATCH`` of the first.
        """
        start = self.clock()
        with self._lock:
            schemas = {schema_id: self._schemas[schema_id] for schema_id in schema_ids if schema_id in self._schemas}
            for schema_id in schemas.keys() & self._text_bytes.keys():  # used again: forgotten last
                self._text_bytes[schema_id] = self._text_bytes.pop(schema_id)
            refused_at = {schema_id: self._refused_at.get(schema_id, -math.inf) for schema_id in schema_ids}
            new = sorted(schema_ids - schemas.keys(), key=lambda schema_id: (refused_at[schema_id], schema_id))
            asked = {schema_id: self._unknown_since[schema_id] for schema_id in schema_ids & self._unknown_since.keys()}
        due = sorted((i for i, since in asked.items() if start - since >= UNKNOWN_RETRY_SECONDS), key=asked.__getitem__)
        key = frozenset(schema_ids)
        refused: list[str] = []
        refusal: RegistryRefused | None = None
        try:
            for count, schema_id in enumerate(new):  # RegistryUnavailable propagates: the batch waits
                if count and self.clock() - start >= REGISTRY_SECONDS_PER_BATCH:
                    if refusal is not None and len(refused) == count:
                        raise refusal  # refused everything asked: the app's problem, as below (not a slow registry)
                    self._out_of_time(count - len(refused), len(new))
                try:
                    schemas[schema_id] = self._store(schema_id, self._resolve(schema_id))
                except RegistryRefused as error:
                    refused.append(schema_id)
                    self._refused(schema_id)
                    refusal = error
            # Asked again once the others were: a refusal of one id may be a dead letter once the registry has
            # served this app another schema (the client's 40301 rule); a refusal of everything still waits.
            for count, schema_id in enumerate(refused):
                if self.clock() - start >= REGISTRY_SECONDS_PER_BATCH:
                    self._out_of_time(len(new) - len(refused) + count, len(new))
                schemas[schema_id] = self._store(schema_id, self._resolve(schema_id))
        except Exception:
            if schemas:  # what it has learnt stays until the batch gets through
                with self._lock:
                    self._retrying.pop(key, None)
                    self._retrying[key] = self.clock()
                    while len(self._retrying) > MAX_RETRYING_BATCHES:
                        del self._retrying[next(iter(self._retrying))]
            raise
        for schema_id in due:
            if self.clock() - start >= REGISTRY_SECONDS_PER_BATCH:
                break
            try:
                schemas[schema_id] = self._store(schema_id, self._resolve(schema_id))
            except RegistryUnavailable:
                break
        with self._lock:
            self._retrying.pop(key, None)
            self._forget_oldest_unknown(keep=schema_ids)
            self._forget_least_used(keep=schema_ids)
        return schemas

    @staticmethod
    def _out_of_time(answered: int, asked: int) -> NoReturn:
        raise RegistryUnavailable(
            f"schema registry: {answered} of {asked} schemas answered within {REGISTRY_SECONDS_PER_BATCH:.0f} s;"
            " the rest on the next attempt"
        )

    def _refused(self, schema_id: str) -> None:
        with self._lock:
            self._refused_at.pop(schema_id, None)
            self._refused_at[schema_id] = self.clock()
            while len(self._refused_at) > MAX_UNKNOWN_IDS:
                del self._refused_at[next(iter(self._refused_at))]

    def _store(self, schema_id: str, answer: tuple[ParsedSchema | _Refused, int]) -> ParsedSchema | _Refused:
        schema, text_bytes = answer
        answered = self.clock()
        with self._lock:
            self._refused_at.pop(schema_id, None)
            self._schemas[schema_id] = schema
            self._text_bytes.pop(schema_id, None)
            if isinstance(schema, _Refused) and schema.reason == Reason.UNKNOWN_SCHEMA:
                self._unknown_since[schema_id] = answered
            else:
                self._unknown_since.pop(schema_id, None)
                self._text_bytes[schema_id] = text_bytes
        return schema

    def _forget_least_used(self, keep: set[str]) -> None:
        """Keep at most ``MAX_SCHEMAS`` schemas (besides unknown ids), of ``MAX_SCHEMA_TEXT_BYTES`` together, the
        most recently used, besides this batch's (``keep``) and those of batch attempts that stopped and will be
        retried (``_retrying``): as :meth:`_forget_oldest_unknown` keeps unknown ids."""
        total = sum(self._text_bytes.values())
        if len(self._text_bytes) <= MAX_SCHEMAS and total <= MAX_SCHEMA_TEXT_BYTES:
            return
        keep = keep.union(*self._retrying) if self._retrying else keep
        for schema_id in [schema_id for schema_id in self._text_bytes if schema_id not in keep]:
            if len(self._text_bytes) <= MAX_SCHEMAS and total <= MAX_SCHEMA_TEXT_BYTES:
                break
            total -= self._text_bytes.pop(schema_id)
            del self._schemas[schema_id]

    def _forget_oldest_unknown(self, keep: set[str]) -> None:
        """Keep at most ``MAX_UNKNOWN_IDS`` unknown ids besides this batch's (``keep``, which it reads next)
        and those of batch attempts that stopped and will be retried (``_retrying``, so that each attempt
        gets further): junk values name random ids, and a worker must not remember each for good (a
        forgotten one is only asked again)."""
        now = self.clock()
        for stopped, when in list(self._retrying.items()):
            if now - when > RETRYING_SECONDS:
                del self._retrying[stopped]
        if len(self._unknown_since) <= MAX_UNKNOWN_IDS:
            return
        keep = keep.union(*self._retrying) if self._retrying else keep
        older = sorted((since, schema_id) for schema_id, since in self._unknown_since.items() if schema_id not in keep)
        for _, schema_id in older[: max(0, len(self._unknown_since) - MAX_UNKNOWN_IDS)]:
            del self._unknown_since[schema_id]
            self._schemas.pop(schema_id, None)

    def _resolve(self, schema_id: str) -> tuple[ParsedSchema | _Refused, int]:
        """The schema of ``schema_id``, or why its records are dead letters; and the bytes of its text, with its
        references (0 for a refusal).

        A schema the registry holds but this code cannot use (not Avro, not parsed by fastavro, refused
        as recursive or with zero-width array items, references missing or past their bound; ``oversized``
        when its records hold too many values whatever their bytes) is the record's problem, not the app's:
        its records are dead letters (kept, redrivable), and the partition flows on. Waiting instead would
        let one junk value naming such an id stop a partition.
        """
        try:
            found = self.registry.schema(schema_id)
            if found.format != "AVRO":
                return _Refused(Reason.NOT_AVRO, f"schema {schema_id} is {found.format}, not Avro"), 0
            text_bytes = sum(map(len, (found.text, *found.references)))
            return parse_writer_schema(found.text, found.references), text_bytes
        except UnknownSchema as unknown:
            return _Refused(Reason.UNKNOWN_SCHEMA, str(unknown)), 0
        except OversizedSchema as problem:
            return _Refused(Reason.OVERSIZED, f"schema {schema_id}: {problem}"), 0
        except BadSchema as problem:
            return _Refused(Reason.UNKNOWN_SCHEMA, f"schema {schema_id}: {problem}"), 0


def registry_url(source: Source, settings: Settings) -> str:
    """The registry of ``source``: ``SCHEMA_REGISTRY_URL``, else the URL its Datagen config names (reached with no
    credentials: :func:`registry_for`)."""
    url = settings.schema_registry_url.strip() or source.registry_url
    if not url:
        raise ConfigurationError(f"{source.name} is Avro: set SCHEMA_REGISTRY_URL (or the config's registry URL)")
    return url


def registry_for(source: Source, settings: Settings) -> SchemaRegistry:
    """The worker's client for ``source``'s registry (one per registry, shared by its sources)."""
    return _clients(*_client_key(source, settings))[0]


def decoder_for(source: Source, settings: Settings) -> AvroDecoder:
    """The worker's decoder for ``source``'s registry: schemas fetched by one batch serve the next."""
    return _clients(*_client_key(source, settings))[1]


def _client_key(source: Source, settings: Settings) -> tuple[str, str, str, str, str]:
    """What tells ``source``'s registry client apart: kind, URL, credentials and group.

    Credentials go only to the registry they were configured for, ``SCHEMA_REGISTRY_URL``: never to a registry
    a config under ``sources/`` names (any file there could name any host). So with ``SCHEMA_REGISTRY_URL`` empty,
    ``SCHEMA_REGISTRY_USERNAME``/``_PASSWORD`` set are refused, and so is ``SCHEMA_REGISTRY_KIND=eventhubs``,
    whose client signs in with the app's identity (``ConfigurationError``, naming the settings and the URL the
    config names, redacted); a config-named registry is reached with no credentials."""
    username = settings.schema_registry_username
    password = settings.schema_registry_password.get_secret_value()
    url = registry_url(source, settings)
    if not settings.schema_registry_url.strip():
        named = f"{source.name}'s config names {redacted(url)!r}"
        if settings.schema_registry_kind == "eventhubs":
            raise ConfigurationError(
                f"SCHEMA_REGISTRY_KIND=eventhubs needs SCHEMA_REGISTRY_URL (https://<namespace>.servicebus.windows.net)"
                f": the app's identity signs in only to the registry that setting names, never to one a config under "
                f"sources/ names ({named})"
            )
        if username or password:
            raise ConfigurationError(
                "SCHEMA_REGISTRY_USERNAME/SCHEMA_REGISTRY_PASSWORD are set but SCHEMA_REGISTRY_URL is empty: the "
                "credentials go only to the registry SCHEMA_REGISTRY_URL names, never to one a config under sources/ "
                f"names ({named}); set SCHEMA_REGISTRY_URL to the registry they belong to"
            )
    return settings.schema_registry_kind, url, username, password, settings.schema_registry_group


@lru_cache(maxsize=16)
def _clients(kind: str, url: str, username: str, password: str, group: str) -> tuple[SchemaRegistry, AvroDecoder]:
    """A registry's client and the decoder that caches its schemas, kept together and as long as this cache keeps
    them (decoders kept by their client's ``id()`` elsewhere outlived their clients: every configuration a worker
    saw, rotated credentials, kept its decoder and schemas)."""
    registry: SchemaRegistry = (
        EventHubsRegistry(url, group)
        if kind == "eventhubs"
        else ConfluentRegistry(url, username=username, password=password)
    )
    return registry, AvroDecoder(registry)


_NON_FINITE = {
    "nan": orjson.Fragment(b"NaN"),
    "inf": orjson.Fragment(b"Infinity"),
    "-inf": orjson.Fragment(b"-Infinity"),
}


def received_text(sent: Any) -> bytes:
    """A decoded record as JSON text for ``_received``, the only copy of an Avro record kept: orjson's, but with a
    NaN or an infinity written as the token a JSON producer sends (``NaN``, ``Infinity``, ``-Infinity``, which the
    JSON path reads) where orjson writes null, so it is not taken for a null."""
    text = orjson.dumps(sent)
    return orjson.dumps(_non_finite_as_tokens(sent)) if b"null" in text else text


def _non_finite_as_tokens(value: Any) -> Any:
    if type(value) is float:
        return value if math.isfinite(value) else _NON_FINITE[repr(value)]
    if type(value) is dict:
        return {name: _non_finite_as_tokens(item) for name, item in value.items()}
    if type(value) is list:
        return [_non_finite_as_tokens(item) for item in value]
    return value
