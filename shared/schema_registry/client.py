"""Schema registries by id: a Confluent-compatible REST API, or the Event Hubs Schema Registry.

Both answer three ways, and the difference matters: a schema (cached by the caller), *no such id*
(:class:`UnknownSchema`, the record's own problem: dead letter ``unknown_schema``), or no answer
(:class:`RegistryUnavailable`, infrastructure: the batch waits and is retried, nothing is lost).
A registry that refuses the app (401/403, a URL that answers 404 without the registry's own error
code) raises :class:`RegistryRefused`: it will not heal by itself, and the partition waits, loudly.
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Protocol

from shared.errors import RegistryRefused, RegistryUnavailable
from shared.schema_registry.wire import RegistryKind

SCHEMA_NOT_FOUND = 40403  # Confluent's error_code for an unknown id; Redpanda and Apicurio ccompat use it too
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
TRANSIENT_STATUS = frozenset({408, 425, 429})
TIMEOUT_SECONDS = 10.0


class UnknownSchema(LookupError):
    """The registry answered that it holds no schema with this id."""


class SchemaRegistry(Protocol):
    """What processing and the generator need of a registry."""

    kind: RegistryKind

    def schema_text(self, schema_id: str) -> tuple[str, str]:
        """``(format, schema)`` of ``schema_id`` (format ``AVRO``, ``PROTOBUF``...); raises :class:`UnknownSchema`."""
        ...

    def register(self, subject: str, schema: str) -> str:
        """The id of ``schema`` under ``subject``, registering it when the registry lacks it."""
        ...


class ConfluentRegistry:
    """Confluent Schema Registry's REST API: Confluent Cloud, Redpanda, Apicurio (``/apis/ccompat/v7``), the local host.

    ``url`` is the registry's base URL (a path prefix is kept); ``username``/``password`` are HTTP
    basic credentials (a Confluent Cloud API key and secret), sent only over https or to loopback.
    """

    kind: RegistryKind = "confluent"

    def __init__(self, url: str, *, username: str = "", password: str = "", timeout: float = TIMEOUT_SECONDS) -> None:
        parsed = urllib.parse.urlsplit(url.strip())
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise RegistryRefused(f"SCHEMA_REGISTRY_URL {url!r} is not an http(s) URL")
        if username and parsed.scheme != "https" and parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise RegistryRefused("SCHEMA_REGISTRY_URL must be https when SCHEMA_REGISTRY_USERNAME is set")
        self.url = url.strip().rstrip("/")
        self.timeout = timeout
        self._authorization = (
            "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii") if username else None
        )

    def schema_text(self, schema_id: str) -> tuple[str, str]:
        if not schema_id.isdigit():
            raise UnknownSchema(f"{schema_id!r} is not a Confluent schema id")
        status, document = self._call("GET", f"/schemas/ids/{schema_id}")
        if status == 404 and document.get("error_code") == SCHEMA_NOT_FOUND:
            raise UnknownSchema(f"the registry has no schema {schema_id}")
        self._check(status, document, f"schema {schema_id}")
        schema = document.get("schema")
        if not isinstance(schema, str):
            raise RegistryRefused(f"{self.url}: schema {schema_id}: the answer has no schema text")
        return str(document.get("schemaType") or "AVRO").upper(), schema

    def register(self, subject: str, schema: str) -> str:
        path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions"
        status, document = self._call("POST", path, {"schema": schema})
        self._check(status, document, f"register under {subject}")
        if not isinstance(document.get("id"), int):
            raise RegistryRefused(f"{self.url}: register under {subject}: the answer has no id")
        return str(document["id"])

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Accept": f"{CONTENT_TYPE}, application/json", "Content-Type": CONTENT_TYPE},
        )
        if self._authorization:
            request.add_header("Authorization", self._authorization)
        try:
            with _NO_REDIRECTS.open(request, timeout=self.timeout) as response:  # the scheme is checked in __init__
                return response.status, _json(response.read())
        except urllib.error.HTTPError as error:
            return error.code, _json(error.read())
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError, http.client.HTTPException) as error:
            raise RegistryUnavailable(f"schema registry {self.url} did not answer: {error}") from error

    def _check(self, status: int, document: dict[str, Any], what: str) -> None:
        if 200 <= status < 300:
            return
        message = f"schema registry {self.url}: {what}: HTTP {status} {document.get('message', '')}".strip()
        if status >= 500 or status in TRANSIENT_STATUS:
            raise RegistryUnavailable(message)
        raise RegistryRefused(message)


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A registry answers where it was asked: a redirect (its 3xx) is refused, never followed with the
    credentials to another host or scheme."""

    def redirect_request(self, *_: Any) -> None:
        return None


_NO_REDIRECTS = urllib.request.build_opener(_RefuseRedirects)


def _json(data: bytes) -> dict[str, Any]:
    try:
        document = json.loads(data or b"{}")
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


class EventHubsRegistry:
    """The Event Hubs Schema Registry of a namespace, through ``azure-schemaregistry`` with the app's identity.

    Reading needs *Schema Registry Reader* on the namespace (Terraform grants it); registering a
    schema the group lacks needs *Schema Registry Contributor*: without it, the generator finds the
    schema's id only when someone registered it (docs/datagen.md).
    """

    kind: RegistryKind = "eventhubs"

    def __init__(self, namespace: str, group: str, *, client: Any = None) -> None:
        host = urllib.parse.urlsplit(namespace).hostname if "://" in namespace else namespace.strip().strip("/")
        if not host:
            raise RegistryRefused(f"SCHEMA_REGISTRY_URL {namespace!r} names no Event Hubs namespace")
        if not group:
            raise RegistryRefused("SCHEMA_REGISTRY_GROUP must name the schema group")
        self.namespace, self.group = host, group
        if client is None:
            from azure.identity import DefaultAzureCredential
            from azure.schemaregistry import SchemaRegistryClient

            client = SchemaRegistryClient(host, DefaultAzureCredential())
        self._client = client

    def schema_text(self, schema_id: str) -> tuple[str, str]:
        schema = self._sdk(lambda: self._client.get_schema(schema_id), f"schema {schema_id}")
        schema_format = schema.properties.format
        return str(getattr(schema_format, "value", schema_format)).upper(), str(schema.definition)

    def register(self, subject: str, schema: str) -> str:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            found = self._client.get_schema_properties(self.group, subject, schema, "Avro")
        except ResourceNotFoundError:
            found = self._sdk(lambda: self._client.register_schema(self.group, subject, schema, "Avro"), subject)
        except Exception as error:
            raise _sdk_error(error, self.namespace, f"look up {subject}") from error
        return str(found.id)

    def _sdk(self, call: Any, what: str) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return call()
        except ResourceNotFoundError as error:
            raise UnknownSchema(f"schema group {self.group} of {self.namespace}: no {what}") from error
        except Exception as error:
            raise _sdk_error(error, self.namespace, what) from error


def _sdk_error(error: Exception, namespace: str, what: str) -> Exception:
    """An azure-core error as this project's: 401/403 and credential failures refuse, the rest waits."""
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
