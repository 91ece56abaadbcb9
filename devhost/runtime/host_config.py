"""What the local host reads before it starts: app settings and host.json, as ``func start`` does."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devhost.errors import DevHostError
from shared.small_files import UnreadableFile, read_json_object

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_SETTING_REF = re.compile(r"%([A-Za-z0-9_.:-]+)%")


class HostConfigError(DevHostError):
    """Settings or host.json are missing something a function needs; the message says what."""


@dataclass(frozen=True)
class KafkaOptions:
    """The Kafka extension options of host.json (``extensions.kafka``) the local host honours.

    Defaults are the extension's (4.3.x): note ``commitOnFailure`` true and ``maxRetries`` 5.
    """

    max_batch_size: int = 64
    commit_on_failure: bool = True
    max_retries: int = 5
    subscriber_interval_seconds: float = 1.0
    auto_commit_interval_ms: int = 200
    max_poll_interval_ms: int = 300_000
    auto_offset_reset: str = "earliest"

    @classmethod
    def from_host_json(cls, host: Mapping[str, Any]) -> KafkaOptions:
        """Read ``extensions.kafka`` (names case-insensitive, as the extension binds them); wrong types are errors."""
        kafka = {str(name).lower(): value for name, value in host.get("extensions", {}).get("kafka", {}).items()}
        reset = str(kafka.get("autooffsetreset", "Earliest"))
        return cls(
            max_batch_size=_number(kafka, "maxBatchSize", cls.max_batch_size, minimum=1),
            commit_on_failure=_flag(kafka, "commitOnFailure", cls.commit_on_failure),
            max_retries=_number(kafka, "maxRetries", cls.max_retries, minimum=-1),
            subscriber_interval_seconds=_whole_seconds(kafka, "subscriberIntervalInSeconds", 1),
            auto_commit_interval_ms=_number(kafka, "autoCommitIntervalMs", cls.auto_commit_interval_ms, minimum=1),
            max_poll_interval_ms=_number(kafka, "maxPollIntervalMs", cls.max_poll_interval_ms, minimum=1),
            auto_offset_reset="latest" if reset.lower() == "latest" else "earliest",
        )


def _flag(options: Mapping[str, Any], name: str, default: bool) -> bool:
    value = options.get(name.lower(), default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise HostConfigError(f"host.json extensions.kafka.{name} must be true or false, not {value!r}")


def _number(options: Mapping[str, Any], name: str, default: int, *, minimum: int) -> int:
    """A whole number: the extension's options are ints, and binding 0.9 or "0.9" to one fails the host's start
    (``int(0.9)`` made ``maxRetries`` 0 here: a failed batch skipped after one round)."""
    value = options.get(name.lower(), default)
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    number = int(text) if re.fullmatch(r"\s*[+-]?[0-9]+\s*", text) else None
    if number is None or number < minimum:
        raise HostConfigError(f"host.json extensions.kafka.{name} must be an integer >= {minimum}, not {value!r}")
    return number


def _whole_seconds(options: Mapping[str, Any], name: str, default: int) -> int:
    """A whole number of seconds >= 1: the extension's option is an int that refuses 0 at startup
    (``KafkaOptions.SubscriberIntervalInSeconds``), and binding 1.5 or "1.5" to it fails the host's start."""
    value = options.get(name.lower(), default)
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not re.fullmatch(r"\s*\+?[0-9]+\s*", text) or int(text) < 1:
        raise HostConfigError(
            f"host.json extensions.kafka.{name} must be a whole number of seconds, at least 1, not {value!r}: "
            "the Kafka extension refuses anything else at startup"
        )
    return int(text)


@dataclass(frozen=True)
class HostConfig:
    """App settings (file, then environment on top) and host.json."""

    settings: dict[str, str]
    kafka: KafkaOptions = field(default_factory=KafkaOptions)

    def resolve(self, value: str) -> str:
        """Replace ``%NAME%`` binding references with app-setting values, like the host does."""

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.settings:
                raise HostConfigError(f"app setting {name} is referenced by a binding but not set")
            return self.settings[name]

        return _SETTING_REF.sub(lookup, value)


def load_settings_file(path: Path | None) -> dict[str, str]:
    """The ``Values`` of local.settings.json; an explicit path must exist, the default may not."""
    target = path or PROJECT_ROOT / "local.settings.json"
    if not target.exists():
        if path is not None:
            raise HostConfigError(f"settings file {path} does not exist")
        return {}
    values = _object_at(target, "Values", _json_object(target).get("Values", {}))
    return {str(name): "" if value is None else str(value) for name, value in values.items()}


def load_host_config(
    settings_path: Path | None = None,
    overrides: Mapping[str, str] | None = None,
    host_json: Path | None = None,
) -> HostConfig:
    """Settings file, then environment variables, then the command line's overrides.

    host.json is the project's, or the one ``DEVHOST_HOST_JSON`` names (tests shorten timeouts with it).
    """
    settings = load_settings_file(settings_path)
    settings.update(os.environ)
    settings.update(overrides or {})
    host_json = host_json or Path(os.environ.get("DEVHOST_HOST_JSON") or PROJECT_ROOT / "host.json")
    host = _json_object(host_json) if host_json.exists() else {}
    extensions = _object_at(host_json, "extensions", host.get("extensions", {}))
    _object_at(host_json, "extensions.kafka", extensions.get("kafka", {}))
    return HostConfig(settings=settings, kafka=KafkaOptions.from_host_json(host))


def _object_at(path: Path, name: str, value: Any) -> dict[str, Any]:
    """``value``, the section ``name`` of the file at ``path``, when it is a JSON object; else a ``HostConfigError``."""
    if not isinstance(value, dict):
        raise HostConfigError(f"{path}: '{name}' must be an object, not {json.dumps(value)[:40]}")
    return value


def _json_object(path: Path) -> dict[str, Any]:
    """A settings file or host.json as its JSON object; anything else is a ``HostConfigError`` naming the file."""
    try:
        return read_json_object(path)
    except UnreadableFile as error:
        raise HostConfigError(f"{path}: {error}") from None
