"""Schema registries by id: a Confluent-compatible REST API, or the Event Hubs Schema Registry.

Both answer three ways, and the difference matters: a schema (cached by the caller), *no such id*
(:class:`UnknownSchema`, the record's own problem: dead letter ``unknown_schema``), or no answer
(:class:`RegistryUnavailable`, infrastructure: the batch waits and is retried, nothing is lost).
A registry that refuses the app (401/403, a URL that answers 404 without the registry's own error
code) raises :class:`RegistryRefused`: it will not heal by itself, and the partition waits, loudly.
One 403 is the record's instead: Confluent's 40301 for one schema id, once the registry has served this
client a schema (:meth:`ConfluentRegistry.schema`).
Every call is bounded: the Confluent client by an overall deadline (``TIMEOUT_SECONDS`` for one
schema with its references, however slowly the registry sends its answer) and a size (``MAX_ANSWER_BYTES``),
the Event Hubs client by an overall deadline too, the longest ``REQUEST_LIMITS`` allows (the lake's own timeouts
and retries, ``shared.lake.connection``), as its timeouts bound each read, not the call.
A registry URL never carries credentials (``https://key:secret@host`` is refused), and error messages name
the URL redacted (:func:`redacted`), as they reach logs and the dashboard.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import http.client
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from shared.errors import RegistryRefused, RegistryUnavailable
from shared.hosts import LOOPBACK_HOSTS
from shared.schema_registry.avro_binary import BadSchema
from shared.schema_registry.wire import EVENT_HUBS_ID, RegistryKind

SCHEMA_NOT_FOUND = 40403  # Confluent's error_code for an unknown id; Redpanda and Apicurio ccompat use it too
PERMISSION_DENIED = 40301  # Confluent's error_code for a 403 of its access control: this key may not read that
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
TRANSIENT_STATUS = frozenset({408, 425, 429})
TIMEOUT_SECONDS = 10.0  # one schema lookup (with its references) or registration, start to end
MAX_REFERENCES = 32  # distinct schemas one schema may reference, directly or through others
MAX_REFERENCE_DEPTH = 8  # references of references... this deep at most
# The most of one answer read: a schema is one Kafka record of the registry's own topic (1 MB by default), so
# an answer past this is no registry's schema but a broken registry or proxy, refused (RegistryRefused: it
# will not heal by itself) before it fills the worker's memory. An error answer is read up to MAX_ERROR_BYTES.
MAX_ANSWER_BYTES = 8 * 2**20
MAX_ERROR_BYTES = 64 * 2**10
MAX_CONFLUENT_ID = 2**31 - 1  # a Java Integer: the registry's ids run from 1 to this
# The Event Hubs client's limits: the lake's (shared.lake.connection.REQUEST_LIMITS, which this layer
# cannot import; tests/unit/test_poll_interval.py checks they match), and no retry on a status answer,
# which would sleep for whatever Retry-After the answer names: a 429 or 503 fails the batch, which waits.
REQUEST_LIMITS: dict[str, Any] = {
    "connection_timeout": 5,
    "read_timeout": 15,
    "retry_total": 2,
    "retry_connect": 2,
    "retry_read": 2,
    "retry_status": 0,
    "retry_backoff_factor": 1,  # azure-core: no wait before the first retry, 2 s before the second
    "retry_backoff_max": 4,
}
# Event Hubs calls given up on at their deadline but still running: past this many, calls fail at once.
MAX_ABANDONED_CALLS = 4

_T = TypeVar("_T")


def event_hubs_max_call_seconds(limits: dict[str, Any]) -> float:
    """The longest one Event Hubs Schema Registry call takes with azure-core's retry policy and these limits:
    every try timing out, every backoff (none before the first retry, then factor x 2^n) at its longest."""
    retries = limits["retry_total"]
    backoffs = sum(min(limits["retry_backoff_max"], limits["retry_backoff_factor"] * 2**n) for n in range(1, retries))
    return float((retries + 1) * (limits["connection_timeout"] + limits["read_timeout"]) + backoffs)


class UnknownSchema(LookupError):
    """The registry answered that it holds no schema with this id (or none a schema it holds refers to)."""


@dataclass(frozen=True, slots=True)
class RegistrySchema:
    """A schema as the registry holds it: its format, its text, and the texts of the schemas it references
    (Confluent schema references), each after those it references itself."""

    format: str
    text: str
    references: tuple[str, ...] = ()


class SchemaRegistry(Protocol):
    """What processing and the generator need of a registry."""

    kind: RegistryKind
    max_call_seconds: float  # the longest one call (one schema with its references) takes

    def schema(self, schema_id: str) -> RegistrySchema:
        """``schema_id``'s schema (``AVRO``, ``PROTOBUF``...) and references; :class:`UnknownSchema` if none."""
        ...

    def register(self, subject: str, schema: str) -> str:
        """The id of ``schema`` under ``subject``, registering it when the registry lacks it."""
        ...


class ConfluentRegistry:
    """Confluent Schema Registry's REST API: Confluent Cloud, Redpanda, Apicurio (``/apis/ccompat/v7``), the local host.

    ``url`` is the registry's base URL (a path prefix is kept); ``username``/``password`` are HTTP
    basic credentials (a Confluent Cloud API key and secret). https, or http to this machine only.
    """

    kind: RegistryKind = "confluent"

    def __init__(self, url: str, *, username: str = "", password: str = "", timeout: float = TIMEOUT_SECONDS) -> None:
        parsed = urllib.parse.urlsplit(url.strip())
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise RegistryRefused(f"SCHEMA_REGISTRY_URL {redacted(url)!r} is not an http(s) URL")
        if "@" in url:  # anywhere: a secret holding / ? or # ends urlsplit's netloc before its @
            raise RegistryRefused(
                f"SCHEMA_REGISTRY_URL {redacted(url)!r} carries credentials (user:secret@): not supported, and a"
                " secret does not belong in a URL; set SCHEMA_REGISTRY_USERNAME and SCHEMA_REGISTRY_PASSWORD (an @ in"
                " a path or query: write it %40)"
            )
        if parsed.scheme != "https" and parsed.hostname not in LOOPBACK_HOSTS:
            raise RegistryRefused(
                f"schema registry {redacted(url)!r} must be https:// (http only to 127.0.0.1, localhost or ::1):"
                " over http the schemas records are read with, and any credentials, cross the network in clear"
            )
        self.url = url.strip().rstrip("/")
        self.shown = redacted(self.url)  # the URL as error messages name it
        self._direct = parsed.scheme == "http"  # loopback only: never through a proxy, which would see it in clear
        self.timeout = self.max_call_seconds = timeout
        self._authorization = (
            "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii") if username else None
        )
        self._served_id: str | None = None  # a schema id served before: asked again, it proves the key may read

    def schema_text(self, schema_id: str) -> tuple[str, str]:
        """``(format, text)`` of ``schema_id``."""
        found = self.schema(schema_id)
        return found.format, found.text

    def schema(self, schema_id: str) -> RegistrySchema:
        """The schema and, fetched by subject and version, the schemas it references, recursively.

        A reference the registry does not hold is :class:`UnknownSchema`; more than ``MAX_REFERENCES``
        or deeper than ``MAX_REFERENCE_DEPTH`` is :class:`BadSchema`: both the schema's, not the app's.

        A 403 with Confluent's ``error_code`` 40301 (Confluent Cloud's role-based access: the schema is
        registered only under subjects this key may not read, another team's) is :class:`UnknownSchema` too,
        when a schema this client was served before is served again now: the key still reads, so the refusal
        is about this id, which a junk value can name. Otherwise it is :class:`RegistryRefused`, as every
        other 403: a key that may read nothing (never could, or lost its role since) would dead-letter every
        record instead of waiting for its role.
        """
        if not schema_id.isdigit() or not 0 < int(schema_id) <= MAX_CONFLUENT_ID:
            raise UnknownSchema(f"{schema_id[:40]!r} is not a Confluent schema id (1 to {MAX_CONFLUENT_ID})")
        deadline = time.monotonic() + self.timeout
        status, document = self._call("GET", f"/schemas/ids/{schema_id}", deadline=deadline)
        if status == 404 and document.get("error_code") == SCHEMA_NOT_FOUND:
            raise UnknownSchema(f"the registry has no schema {schema_id}")
        if status == 403 and document.get("error_code") == PERMISSION_DENIED and self._still_reads(schema_id, deadline):
            denied = str(document.get("message", ""))[:500]
            raise UnknownSchema(f"the registry refuses schema {schema_id} to this app: HTTP 403 {denied}".strip())
        self._check(status, document, f"schema {schema_id}")
        texts: list[str] = []
        self._references(document, f"schema {schema_id}", deadline, texts, set(), 1)
        found = RegistrySchema(
            str(document.get("schemaType") or "AVRO").upper(), _text(document, self.shown), tuple(texts)
        )
        self._served_id = schema_id
        return found

    def _still_reads(self, refused_id: str, deadline: float) -> bool:
        """Whether the schema this client was served last is served now (one GET; a failure is a no)."""
        if self._served_id is None or self._served_id == refused_id:
            return False
        try:
            status, _ = self._call("GET", f"/schemas/ids/{self._served_id}", deadline=deadline)
        except (RegistryUnavailable, RegistryRefused):
            return False
        return status == 200

    def _references(
        self, document: dict[str, Any], what: str, deadline: float, texts: list[str], seen: set[str], depth: int
    ) -> None:
        """Appends the texts of ``document``'s references to ``texts``, each after its own references."""
        references = document.get("references") or []
        if not isinstance(references, list):
            raise RegistryRefused(f"{self.shown}: {what}: its references are not a list")
        if references and depth > MAX_REFERENCE_DEPTH:
            raise BadSchema(f"{what}: references nested deeper than {MAX_REFERENCE_DEPTH}: not supported")
        for reference in references:
            subject, version = _reference(reference, self.shown, what)
            key = f"{subject}/{version}"
            if key in seen:
                continue
            seen.add(key)
            if len(seen) > MAX_REFERENCES:
                raise BadSchema(f"{what}: more than {MAX_REFERENCES} referenced schemas: not supported")
            path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions/{version}"
            status, found = self._call("GET", path, deadline=deadline)
            if status == 404 and found.get("error_code") in (40401, 40402, SCHEMA_NOT_FOUND):
                raise UnknownSchema(f"{what} references {subject} version {version}, which the registry does not hold")
            self._check(status, found, f"{what}: reference {subject} version {version}")
            self._references(found, f"{what}: reference {subject}", deadline, texts, seen, depth + 1)
            texts.append(_text(found, self.shown))

    def register(self, subject: str, schema: str) -> str:
        path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions"
        status, document = self._call("POST", path, {"schema": schema}, deadline=time.monotonic() + self.timeout)
        self._check(status, document, f"register under {subject}")
        schema_id = document.get("id")
        if type(schema_id) is not int or not 1 <= schema_id <= MAX_CONFLUENT_ID:  # true is an int to isinstance
            raise RegistryRefused(f"{self.shown}: register under {subject}: the answer has no id from 1 to 2**31-1")
        return str(schema_id)

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, deadline: float
    ) -> tuple[int, dict[str, Any]]:
        """One request, over by ``deadline`` (monotonic) however slowly the registry answers."""
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Accept": f"{CONTENT_TYPE}, application/json", "Content-Type": CONTENT_TYPE},
        )
        if self._authorization:
            request.add_header("Authorization", self._authorization)
        watch = _Deadline(deadline)
        try:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no time left")
            opener = watch.opener(direct=self._direct)  # the scheme is checked in __init__
            with opener.open(request, timeout=remaining) as response:
                status, data = response.status, _read(response, MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as error:
            try:
                status, data = error.code, _read(error.fp, MAX_ERROR_BYTES)
            except (TimeoutError, OSError, http.client.HTTPException) as cut:
                raise RegistryUnavailable(f"schema registry {self.shown} did not answer: {cut}") from cut
            finally:
                error.close()
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError, http.client.HTTPException) as error:
            raise RegistryUnavailable(f"schema registry {self.shown} did not answer{watch.why()}: {error}") from error
        finally:
            watch.cancel()
        if watch.expired:
            raise RegistryUnavailable(f"schema registry {self.shown} did not answer{watch.why()}")
        if len(data) > MAX_ANSWER_BYTES:
            raise RegistryRefused(
                f"schema registry {self.shown}: {method} {path}: an answer of more than {MAX_ANSWER_BYTES >> 20} MiB,"
                " which no registry's schema is: a broken registry or proxy"
            )
        return status, _json(data)

    def _check(self, status: int, document: dict[str, Any], what: str) -> None:
        if 200 <= status < 300:
            return
        message = f"schema registry {self.shown}: {what}: HTTP {status} {document.get('message', '')}"[:1000].strip()
        if status >= 500 or status in TRANSIENT_STATUS:
            raise RegistryUnavailable(message)
        raise RegistryRefused(message)


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A registry answers where it was asked: a redirect (its 3xx) is refused, never followed with the
    credentials to another host or scheme."""

    def redirect_request(self, *_: Any) -> None:
        return None


class _Deadline:
    """Ends one request at its deadline: the socket is shut down then, so a registry (or a proxy) that
    sends a byte now and then cannot hold the call past it (a socket timeout bounds only each read)."""

    def __init__(self, deadline: float) -> None:
        self.deadline, self.expired = deadline, False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def opener(self, *, direct: bool) -> urllib.request.OpenerDirector:
        """``direct``: no proxy, whatever ``http_proxy`` says (build_opener adds the environment's otherwise)."""
        handlers: list[Any] = [_RefuseRedirects, _WatchedHttp(self), _WatchedHttps(self)]
        if direct:
            handlers.append(urllib.request.ProxyHandler({}))
        return urllib.request.build_opener(*handlers)

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def cancel(self) -> None:
        self._timer.cancel()

    def why(self) -> str:
        return " within its timeout" if self.expired else ""

    def connection(self, http_class: Any) -> Any:
        watch = self

        class Watched(http_class):  # type: ignore[misc]
            def connect(self) -> None:
                super().connect()
                watch.watch(self.sock)

        return Watched


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the plain socket's shutdown: also under TLS, from another thread
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watching(urllib.request.AbstractHTTPHandler):
    """An HTTP(S) handler whose connections the call's deadline watches (mixed in before the handler)."""

    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return super().do_open(self.deadline.connection(http_class), req, **kwargs)


class _WatchedHttp(_Watching, urllib.request.HTTPHandler):
    pass


class _WatchedHttps(_Watching, urllib.request.HTTPSHandler):
    pass


def _read(response: Any, most: int) -> bytes:
    """At most ``most`` bytes of ``response``'s body; ``IncompleteRead`` when it ends before its length says."""
    data = response.read(most) if response is not None else b""
    if len(data) < most and getattr(response, "length", None):  # http.client's read(n) returns what came
        raise http.client.IncompleteRead(data, response.length)
    return bytes(data)


_USERINFO = re.compile(r"[^/?#\s@]*@")


def redacted(url: str) -> str:
    """``url`` as messages may name it: without user information (``user:secret@``), query or fragment. Everything
    between ``://`` and the last ``@`` is user information: a secret may hold ``/``, ``?`` or ``#``."""
    text = url.strip()
    scheme, separator, rest = text.partition("://")
    if separator and "@" in rest:
        text = f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    text = _USERINFO.sub("***@", text)
    return re.split(r"[?#]", text, maxsplit=1)[0][:300]


def _text(document: dict[str, Any], url: str) -> str:
    schema = document.get("schema")
    if not isinstance(schema, str):
        raise RegistryRefused(f"{url}: the answer has no schema text")
    return schema


def _reference(reference: Any, url: str, what: str) -> tuple[str, str]:
    """A reference's subject and version (``latest`` for -1), or :class:`RegistryRefused` for one not of that form."""
    subject = reference.get("subject") if isinstance(reference, dict) else None
    version = reference.get("version") if isinstance(reference, dict) else None
    if not isinstance(subject, str) or not subject or not isinstance(version, int) or isinstance(version, bool):
        raise RegistryRefused(f"{url}: {what}: a reference without a subject and version: {reference!r}"[:500])
    if version == -1:
        return subject, "latest"
    if version < 1:
        raise RegistryRefused(f"{url}: {what}: reference {subject} has version {version}")
    return subject, str(version)


def _json(data: bytes) -> dict[str, Any]:
    try:
        document = json.loads(data or b"{}")
    except (ValueError, RecursionError):  # RecursionError: nested past what the parser takes, no registry's answer
        return {}
    return document if isinstance(document, dict) else {}


class EventHubsRegistry:
    """The Event Hubs Schema Registry of a namespace, through ``azure-schemaregistry`` with the app's identity.

    Reading needs *Schema Registry Reader* on the schema group (Terraform grants it to the app, and to the
    redrive operator, while a source is Avro); registering a schema the group lacks needs *Schema Registry
    Contributor*: without it, the generator finds the schema's id only when someone registered it
    (docs/datagen.md).
    """

    kind: RegistryKind = "eventhubs"

    def __init__(
        self,
        namespace: str,
        group: str,
        *,
        client: Any = None,
        max_call_seconds: float | None = None,
    ) -> None:
        if "@" in namespace:
            raise RegistryRefused(
                f"SCHEMA_REGISTRY_URL {redacted(namespace)!r} carries user information: the Event Hubs Schema"
                " Registry is reached with the app's identity, never with credentials in the URL"
            )
        host = urllib.parse.urlsplit(namespace).hostname if "://" in namespace else namespace.strip().strip("/")
        if not host:
            raise RegistryRefused(f"SCHEMA_REGISTRY_URL {redacted(namespace)!r} names no Event Hubs namespace")
        if not group:
            raise RegistryRefused("SCHEMA_REGISTRY_GROUP must name the schema group")
        self.namespace, self.group = host, group
        self.max_call_seconds = (
            event_hubs_max_call_seconds(REQUEST_LIMITS) if max_call_seconds is None else max_call_seconds
        )
        self._abandoned = 0  # calls past their deadline whose threads still run
        self._lock = threading.Lock()
        if client is None:
            from azure.identity import DefaultAzureCredential
            from azure.schemaregistry import SchemaRegistryClient

            client = SchemaRegistryClient(host, DefaultAzureCredential(), **REQUEST_LIMITS)
        self._client = client

    def schema_text(self, schema_id: str) -> tuple[str, str]:
        """``(format, text)`` of ``schema_id``."""
        found = self.schema(schema_id)
        return found.format, found.text

    def schema(self, schema_id: str) -> RegistrySchema:
        """``schema_id``'s schema (Event Hubs schemas have no references).

        An id not of the service's form (``wire``: 32 hex digits), or one the service answers 400
        ``InvalidRequest`` for (its answer to an id that is not one of its ids), is unknown: the record's
        problem, never the app's.
        """
        if not EVENT_HUBS_ID.match(schema_id):
            raise UnknownSchema(f"{schema_id[:80]!r} is not an Event Hubs schema id (32 hex digits)")
        what = f"schema {schema_id}"
        schema = self._bounded(what, lambda: self._sdk(lambda: self._client.get_schema(schema_id), what, by_id=True))
        schema_format = schema.properties.format
        return RegistrySchema(str(getattr(schema_format, "value", schema_format)).upper(), str(schema.definition))

    def register(self, subject: str, schema: str) -> str:
        return self._bounded(f"register under {subject}", lambda: self._register(subject, schema))

    def _register(self, subject: str, schema: str) -> str:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            found = self._client.get_schema_properties(self.group, subject, schema, "Avro")
        except ResourceNotFoundError:
            found = self._sdk(lambda: self._client.register_schema(self.group, subject, schema, "Avro"), subject)
        except Exception as error:
            raise _sdk_error(error, self.namespace, f"look up {subject}") from error
        return str(found.id)

    def _bounded(self, what: str, call: Callable[[], _T]) -> _T:
        """``call()``, or :class:`RegistryUnavailable` once it has run ``max_call_seconds``.

        Not _Deadline's socket shutdown: azure-core's sockets sit in urllib3's pools with no hook to the one a call
        is blocked on, and the call also sleeps between tries and may fetch a token through the credential's own
        transport. So the call runs in a thread of its own, and one past its deadline is left to end there: it
        holds only its own pooled connection (the pool opens another for the next call).
        """
        with self._lock:
            if self._abandoned >= MAX_ABANDONED_CALLS:
                raise RegistryUnavailable(
                    f"Event Hubs Schema Registry {self.namespace}: {what}: not called, {self._abandoned} earlier calls"
                    f" past their {self.max_call_seconds:g} s are still waiting for an answer"
                )
        outcome: Future[_T] = Future()
        abandoned = False

        def run() -> None:
            try:
                outcome.set_result(call())
            except BaseException as error:
                outcome.set_exception(error)
            finally:
                with self._lock:
                    if abandoned:
                        self._abandoned -= 1

        context = contextvars.copy_context()  # the caller's trace context, for the SDK's spans
        threading.Thread(target=context.run, args=(run,), name="eventhubs-registry-call", daemon=True).start()
        try:
            return outcome.result(timeout=self.max_call_seconds)
        except TimeoutError:
            with self._lock:
                abandoned = not outcome.done()
                if abandoned:
                    self._abandoned += 1
            if not abandoned:
                return outcome.result()
            raise RegistryUnavailable(
                f"Event Hubs Schema Registry {self.namespace}: {what}: no answer within {self.max_call_seconds:g} s"
            ) from None

    def _sdk(self, call: Any, what: str, *, by_id: bool = False) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return call()
        except ResourceNotFoundError as error:
            if not _service_error_codes(error):  # no answer of the registry's: a gateway, proxy or wrong endpoint
                raise RegistryRefused(
                    f"Event Hubs Schema Registry {self.namespace}: {what}: HTTP 404 without the service's error code"
                    " (is the namespace's endpoint right, and reachable without a proxy in between?)"
                ) from error
            where = self.namespace if by_id else f"schema group {self.group} of {self.namespace}"  # by id: any group
            raise UnknownSchema(f"{where}: no {what}") from error
        except Exception as error:
            if by_id and _invalid_request(error):
                refused = f"{self.namespace}: {what}: the service refuses the id (400 InvalidRequest)"
                raise UnknownSchema(refused) from error
            raise _sdk_error(error, self.namespace, what) from error


def _service_error_codes(error: Exception) -> set[str]:
    """The error codes an Azure service puts in its error answers (the body's ``error.code``, the
    ``x-ms-error-code`` header); none for an answer no Azure service sent (a gateway's or a proxy's page)."""
    code = getattr(getattr(error, "error", None), "code", None)
    response = getattr(error, "response", None)
    header = response.headers.get("x-ms-error-code") if response is not None else None
    return {str(found) for found in (code, header) if found}


def _invalid_request(error: Exception) -> bool:
    """Whether ``error`` is the service's 400 ``InvalidRequest``: what it answers a GET of an id not its own."""
    return getattr(error, "status_code", None) == 400 and "InvalidRequest" in _service_error_codes(error)


def _sdk_error(error: Exception, namespace: str, what: str) -> Exception:
    """An azure-core error as this project's: 401/403 and credential failures refuse, the rest waits.

    Every 403 refuses, unlike the Confluent client's 40301 for one schema: nothing here tells a schema group
    the app may not read from a role it lost (not checked against the service, which cannot run here)."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    message = f"Event Hubs Schema Registry {namespace}: {what}: {type(error).__name__}: {error}"[:1000]
    status = getattr(error, "status_code", None)
    if isinstance(error, ClientAuthenticationError) or status in (401, 403):
        return RegistryRefused(message)
    if (
        isinstance(error, HttpResponseError)
        and status is not None
        and 400 <= status < 500
        and status
        not in (
            408,
            429,
        )
    ):
        return RegistryRefused(message)
    return RegistryUnavailable(message)
