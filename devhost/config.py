"""What the local host reads before it starts: app settings and host.json, as ``func start`` does."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_SETTING_REF = re.compile(r"%([A-Za-z0-9_.:-]+)%")


class HostConfigError(Exception):
    """Settings or host.json are missing something a function needs; the message says what."""


@dataclass(frozen=True)
class KafkaOptions:
    """The Kafka extension options of host.json (``extensions.kafka``) the local host honours."""

    max_batch_size: int = 64
    commit_on_failure: bool = True
    max_retries: int = 5
    subscriber_interval_seconds: float = 1.0

    @classmethod
    def from_host_json(cls, host: Mapping[str, Any]) -> KafkaOptions:
        kafka = host.get("extensions", {}).get("kafka", {})
        return cls(
            max_batch_size=int(kafka.get("maxBatchSize", cls.max_batch_size)),
            commit_on_failure=bool(kafka.get("commitOnFailure", cls.commit_on_failure)),
            max_retries=int(kafka.get("maxRetries", cls.max_retries)),
            subscriber_interval_seconds=float(kafka.get("subscriberIntervalInSeconds", 1)),
        )


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
    document = json.loads(target.read_text(encoding="utf-8"))
    values = document.get("Values", {})
    if not isinstance(values, dict):
        raise HostConfigError(f"{target}: 'Values' must be an object")
    return {str(name): "" if value is None else str(value) for name, value in values.items()}


def load_host_config(
    settings_path: Path | None = None,
    overrides: Mapping[str, str] | None = None,
    host_json: Path = PROJECT_ROOT / "host.json",
) -> HostConfig:
    """Settings file, then environment variables, then the command line's overrides."""
    settings = load_settings_file(settings_path)
    settings.update(os.environ)
    settings.update(overrides or {})
    host = json.loads(host_json.read_text(encoding="utf-8")) if host_json.exists() else {}
    return HostConfig(settings=settings, kafka=KafkaOptions.from_host_json(host))
