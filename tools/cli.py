"""What the operator tools share: their settings, their arguments, and how they reach a broker or an entity API."""

from __future__ import annotations

import json
import logging
import os
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

# librdkafka's own log, for a tool: a broker it cannot reach is reported once, by the tool, not as a flood of lines.
QUIET = logging.getLogger("streamingpoc.tools.rdkafka")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


def environment(settings_file: Path | None) -> dict[str, str]:
    """The app's settings as the tools read them: ``local.settings.json``'s Values, the environment over them."""
    values: dict[str, str] = {}
    if settings_file is not None and settings_file.exists():
        values = {k: str(v) for k, v in json.loads(settings_file.read_text()).get("Values", {}).items()}
    return values | dict(os.environ)


def tool_environment(
    settings_file: Path | None, *, broker: str | None = None, lake: Path | None = None
) -> dict[str, str]:
    """:func:`environment`, with a tool's ``--broker`` and ``--lake`` (a local lake directory) over it."""
    values = environment(settings_file)
    if broker is not None:
        values["KAFKA_BROKER_LIST"] = broker
    if lake is not None:
        values |= {"LAKE_KIND": "local", "LAKE_LOCAL_ROOT": str(lake)}
    return values


def parse_since(text: str) -> int:
    """An ISO time (``Z`` or an offset; UTC when it has none) as epoch milliseconds."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def broker_address(value: str) -> str:
    """A ``--broker`` argument: HOST:PORT."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return value


def topic_problem(client: Any, topic: str, timeout: float) -> str | None:
    """Why the broker behind ``client`` (a confluent-kafka producer or consumer) cannot serve ``topic``: it did
    not answer with its metadata within ``timeout`` seconds, or has no such topic; None when it can."""
    from confluent_kafka import KafkaException

    try:
        found = client.list_topics(topic, timeout=timeout).topics.get(topic)
    except KafkaException as error:
        return f"the broker did not answer: {error.args[0] if error.args else error}"
    if found is None or found.error is not None:
        return f"topic {topic}: {found.error if found else 'not found'}"
    return None


def secure_url(url: str, option: str) -> str:
    """``url`` when it is HTTPS, or HTTP to this machine's own loopback (the local host); else a clear exit:
    the tools send the Durable system key with each request."""
    parsed = urllib.parse.urlsplit(url)
    secure = parsed.scheme == "https" and bool(parsed.hostname)
    if secure or (parsed.scheme == "http" and parsed.hostname in LOOPBACK_HOSTS):
        return url
    raise SystemExit(f"{option} must be https:// (or http:// to 127.0.0.1, localhost or [::1]): {url}")
