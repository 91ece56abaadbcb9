"""What the operator tools share: their settings, their arguments, and how they reach a broker or an entity API."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import re
import sys
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec

from shared.errors import ConfigurationError
from shared.hosts import LOOPBACK_HOSTS
from shared.settings import Settings, broker_address_problem, load_settings, load_source_settings
from shared.small_files import UnreadableFile, read_json_object
from shared.source_model import EPOCH, MAX_TIMESTAMP_MS, MILLISECOND

EXIT_BAD_ARGUMENTS = 2  # argparse's code
EXIT_BAD_SETTINGS = EXIT_BAD_ARGUMENTS  # a bad setting is the same kind of mistake
MAX_ERROR_TEXT = 300  # characters of a dependency's error quoted on a tool's one line
DEFAULT_SETTINGS_FILE = Path("local.settings.json")  # every tool's --settings default, which may be absent
MAKE_RUN_BROKER_HINT = "for the broker of `make run`, pass --broker $(cat .lake.state/broker)"
MISSING_LAKE = (  # why a tool refuses a local lake that is not an existing directory (tool_environment)
    "a local lake must be an existing directory (a mistyped path would be taken for an empty lake); "
    "nothing was read or written"
)

# librdkafka's own log, for a tool: a broker it cannot reach is reported once, by the tool, not as a flood of lines.
QUIET = logging.getLogger("streamingpoc.tools.rdkafka")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


Arguments = ParamSpec("Arguments")


class RefusedArgument(Exception):
    """An argument a tool refuses once it is parsed (e.g. by :func:`secure_url`): a bad argument, as argparse's."""


def tool_main(prog: str) -> Callable[[Callable[Arguments, int]], Callable[Arguments, int]]:
    """The tools' shared entry point: a ``main`` whose settings are refused (``ConfigurationError``, naming the app
    setting) prints one line, ``<prog>: invalid settings: ...``, and returns ``EXIT_BAD_SETTINGS``, not a traceback;
    one that refuses an argument (``RefusedArgument``) prints ``<prog>: <why>`` and returns ``EXIT_BAD_ARGUMENTS``."""

    def decorate(main: Callable[Arguments, int]) -> Callable[Arguments, int]:
        @functools.wraps(main)
        def run(*args: Arguments.args, **kwargs: Arguments.kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except ConfigurationError as error:
                print(settings_error_line(prog, error), file=sys.stderr)
                return EXIT_BAD_SETTINGS
            except RefusedArgument as error:
                print(f"{prog}: {error}", file=sys.stderr)
                return EXIT_BAD_ARGUMENTS

        return run

    return decorate


def one_line(message: object, limit: int | None = None) -> str:
    """A multi-line message on one line: ``invalid settings:`` and its indented problems, or a dependency's
    error (deltalake's carries terminal colours and one cause a line); cut to ``limit`` characters."""
    lines = [line for line in (_ANSI.sub("", line).strip(" \t\u21b3") for line in str(message).splitlines()) if line]
    text = ""
    for line in lines:
        text += line if not text else (f" {line}" if text.endswith(":") else f"; {line}")
    if limit is None or len(text) <= limit:
        return text
    if len(lines) > 1:  # a chain of causes: the first says what failed, the last why (e.g. "Connection refused")
        text = f"{lines[0]}; ...; {lines[-1]}"
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def settings_error_line(prog: str, error: ConfigurationError) -> str:
    """``<prog>: invalid settings: ...`` (``invalid settings of source 'x': ...`` when the message says so)."""
    text = one_line(error)
    return f"{prog}: {text}" if text.startswith("invalid settings") else f"{prog}: invalid settings: {text}"


def lake_target(settings: Settings) -> str:
    """The lake the settings name, for an error: its kind and where it is (a directory, or an endpoint and
    container); never the connection string, whose account key or SAS is a secret."""
    if settings.lake_kind == "local":
        return f"LAKE_KIND=local at {Path(settings.lake_local_root).resolve()}"
    where = settings.lake_account_url
    connection_string = settings.lake_connection_string.get_secret_value()
    if connection_string:
        parts = dict(item.split("=", 1) for item in connection_string.strip().strip(";").split(";") if "=" in item)
        if parts.get("UseDevelopmentStorage", "").lower() == "true":
            where = "http://127.0.0.1:10000/devstoreaccount1"
        elif parts.get("BlobEndpoint"):
            where = parts["BlobEndpoint"]
        elif parts.get("AccountName"):
            protocol = parts.get("DefaultEndpointsProtocol", "https")
            where = f"{protocol}://{parts['AccountName']}.blob.{parts.get('EndpointSuffix', 'core.windows.net')}"
        else:
            where = "the account of LAKE_CONNECTION_STRING"
    url = urllib.parse.urlsplit(where)
    if url.scheme and url.hostname:  # no user, password or query (a SAS) of the URL
        port = f":{url.port}" if url.port else ""
        where = f"{url.scheme}://{url.hostname}{port}{url.path.rstrip('/')}"
    return f"LAKE_KIND={settings.lake_kind} at {where}, container {settings.lake_file_system}"


def environment(settings_file: Path | None) -> dict[str, str]:
    """The app's settings as the tools read them: ``local.settings.json``'s Values, the environment over them.
    A settings file that is not a JSON object with an object of ``Values`` is a ``ConfigurationError``.

    The tools' default, ``local.settings.json`` (``DEFAULT_SETTINGS_FILE``), may be absent: the environment alone
    is read. Any other file (a ``--settings`` given) must exist: a mistyped name was read as no file, and the tool
    ran on the environment's settings and reported success. ``RefusedArgument``, one line, exit 2."""
    values: dict[str, str] = {}
    if settings_file is not None and settings_file != DEFAULT_SETTINGS_FILE and not settings_file.exists():
        raise RefusedArgument(
            f"--settings {settings_file} does not exist (without --settings, {DEFAULT_SETTINGS_FILE} is read when "
            "there is one); nothing was read or written"
        )
    if settings_file is not None and settings_file.exists():
        try:
            values = {k: str(v) for k, v in read_json_object(settings_file).get("Values", {}).items()}
        except (UnreadableFile, AttributeError) as error:
            why = "not a JSON object with an object of Values" if isinstance(error, AttributeError) else error
            raise ConfigurationError(f"{settings_file}: {one_line(why, MAX_ERROR_TEXT)}") from None
    return values | dict(os.environ)


def tool_environment(
    settings_file: Path | None, *, broker: str | None = None, lake: Path | None = None, source: str | None = None
) -> dict[str, str]:
    """:func:`environment`, with a tool's ``--broker`` and ``--lake`` (a local lake directory) over it.

    A local lake (``--lake``, or ``LAKE_KIND=local``'s ``LAKE_LOCAL_ROOT``) must be an existing directory: the
    local store creates what it writes, so a mistyped path (or the wrong working directory) would be read as an
    empty lake and written to (a lease, a ledger's mark) while the tool reported a clean run. It is refused before
    anything is read or written: ``RefusedArgument`` for ``--lake``, ``ConfigurationError`` for the setting (both
    exit 2 through :func:`tool_main`, one line naming the path). Settings refused otherwise (the global ones, and
    ``source``'s when named) are refused first, as the tool would refuse them."""
    values = environment(settings_file)
    if broker is not None:
        values["KAFKA_BROKER_LIST"] = broker
    if lake is not None:
        values |= {"LAKE_KIND": "local", "LAKE_LOCAL_ROOT": str(lake)}
    settings = load_settings(values)
    if source is not None:
        load_source_settings(source, values)
    if settings.lake_kind == "local" and not settings.lake_local_root.is_dir():
        root = settings.lake_local_root
        shown = str(root) if root.is_absolute() else f"{root} ({root.resolve()})"
        why = "does not exist" if not root.exists() else "is not a directory"
        if lake is not None:
            raise RefusedArgument(f"--lake {shown} {why}: {MISSING_LAKE}")
        raise ConfigurationError(f"LAKE_LOCAL_ROOT: the local lake {shown} {why}: {MISSING_LAKE}")
    return values


def parse_since(text: str) -> int:
    """An ISO time (``Z`` or an offset; UTC when it has none) as epoch milliseconds, from 1970 to the end of 9999
    (no lake hour is before 1970 or past 9999, and Kafka reads a negative time as a sentinel: -1 latest, -2
    earliest); argparse names the option and the refusal."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time such as 2026-11-27T10:00:00Z: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    epoch_ms = (moment - EPOCH) // MILLISECOND
    if not 0 <= epoch_ms <= MAX_TIMESTAMP_MS:
        raise argparse.ArgumentTypeError(f"{text!r} is not from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z")
    return epoch_ms


def broker_address(value: str) -> str:
    """A ``--broker`` argument: HOST:PORT, as each entry of KAFKA_BROKER_LIST (``shared.settings``)."""
    if problem := broker_address_problem(value):
        raise ValueError(problem)
    return value


def topic_problem(client: Any, topic: str, timeout: float, address: str = "") -> str | None:
    """Why the broker behind ``client`` (a confluent-kafka producer or consumer) cannot serve ``topic``: it did
    not answer with its metadata within ``timeout`` seconds, or has no such topic; None when it can. ``address``
    (its bootstrap servers) is named when given: "did not answer" alone leaves the operator guessing where."""
    from confluent_kafka import KafkaException

    at = f" at {address}" if address else ""
    try:
        found = client.list_topics(topic, timeout=timeout).topics.get(topic)
    except KafkaException as error:
        return f"the broker{at} did not answer: {error.args[0] if error.args else error}"
    if found is None or found.error is not None:
        return f"topic {topic}{' on ' + address if address else ''}: {found.error if found else 'not found'}"
    return None


def secure_url(url: str, option: str) -> str:
    """``url`` when it is HTTPS, or HTTP to this machine's own loopback (the local host); else ``RefusedArgument``
    naming ``option``: the tools send the Durable system key with each request. A URL with whitespace or a control
    character, or a port that is not a number, is refused too: ``http.client`` would refuse it at the first request
    with an error quoting the whole request, the key's query included."""
    try:
        parsed = urllib.parse.urlsplit(url)
    except ValueError as error:  # e.g. "Invalid IPv6 URL": it names no part of the URL
        raise RefusedArgument(f"{option} is not a URL: {error}") from None
    shown = urllib.parse.urlunsplit((parsed.scheme, parsed.hostname or "", parsed.path, "", ""))  # no key, no user
    if _UNSAFE_URL_CHARACTER.search(url):
        raise RefusedArgument(f"{option} must not contain whitespace or control characters: {shown!r}")
    try:
        parsed.port  # noqa: B018 (a port that is not a number raises)
    except ValueError:
        raise RefusedArgument(f"{option} has a port that is not a number from 0 to 65535: {shown}") from None
    secure = parsed.scheme == "https" and bool(parsed.hostname)
    if secure or (parsed.scheme == "http" and parsed.hostname in LOOPBACK_HOSTS):
        return url
    raise RefusedArgument(f"{option} must be https:// (or http:// to 127.0.0.1, localhost or [::1]): {shown}")


_UNSAFE_URL_CHARACTER = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")  # what http.client refuses in a request line, and more
