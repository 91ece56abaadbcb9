"""What the local host indexes from the app: each function's trigger, bindings and retry policy."""

from __future__ import annotations

import collections.abc
import inspect
import itertools
import json
import os
import re
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import azure.functions as func

from devhost.errors import DevHostError

SUPPORTED_TRIGGERS = frozenset({"kafkaTrigger", "timerTrigger", "httpTrigger", "entityTrigger"})
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$")


class IndexingError(DevHostError):
    """A function uses a trigger or binding the local host does not implement."""


@dataclass(frozen=True)
class RetryPolicy:
    """The function's ``retry`` setting: fixed delay or exponential backoff, in seconds."""

    strategy: str
    max_retry_count: int
    delay: float = 0.0
    minimum_interval: float = 0.0
    maximum_interval: float = 0.0

    def attempts(self) -> Iterator[int]:
        """Attempt numbers from 0: the first call, then each retry (``max_retry_count`` -1: forever)."""
        return itertools.count() if self.max_retry_count < 0 else iter(range(1 + self.max_retry_count))

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based), times ``DEVHOST_RETRY_DELAY_SCALE`` (tests)."""
        if self.strategy == "fixed_delay":
            delay = self.delay
        else:
            delay = float(min(self.maximum_interval, self.minimum_interval * 2 ** (attempt - 1)))
        return delay * float(os.environ.get("DEVHOST_RETRY_DELAY_SCALE", "1"))


@dataclass(frozen=True)
class IndexedFunction:
    """One function as the host sees it: name, binding JSON, the user callable and its retry policy."""

    name: str
    bindings: tuple[dict[str, Any], ...]
    user_function: Callable[..., Any]
    retry: RetryPolicy | None

    @property
    def trigger(self) -> dict[str, Any]:
        return next(b for b in self.bindings if b["type"].endswith("Trigger"))

    @property
    def trigger_type(self) -> str:
        return str(self.trigger["type"])


def enabled(functions: list[IndexedFunction], settings: Mapping[str, str]) -> list[IndexedFunction]:
    """The functions the host runs: all but those an ``AzureWebJobs.<name>.Disabled`` setting of ``true`` or ``1``
    switches off, as the Functions host reads it (Terraform sets it for a generator that is off)."""
    return [f for f in functions if settings.get(f"AzureWebJobs.{f.name}.Disabled", "").strip().lower() not in _ON]


_ON = ("true", "1")


def parse_timespan(value: str) -> float:
    """``[d.]hh:mm:ss[.fff]`` as seconds."""
    match = _TIMESPAN.match(value.strip())
    if not match:
        raise IndexingError(f"not a timespan: {value!r}")
    days, hours, minutes, seconds, fraction = match.groups()
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    return total + (float(f"0.{fraction}") if fraction else 0.0)


def _retry_policy(settings: list[dict[str, Any]]) -> RetryPolicy | None:
    for setting in settings:
        if setting.get("setting_name") != "retry_policy":
            continue
        return RetryPolicy(
            strategy=str(setting["strategy"]),
            max_retry_count=int(setting["max_retry_count"]),
            delay=parse_timespan(setting["delay_interval"]) if setting.get("delay_interval") else 0.0,
            minimum_interval=parse_timespan(setting["minimum_interval"]) if setting.get("minimum_interval") else 0.0,
            maximum_interval=parse_timespan(setting["maximum_interval"]) if setting.get("maximum_interval") else 0.0,
        )
    return None


def index_app(app: func.FunctionApp) -> list[IndexedFunction]:
    """Every function of ``app``, as ``app.get_functions()`` hands it to the Functions host."""
    indexed = []
    for function in app.get_functions():
        document = json.loads(function.get_function_json())
        settings = [s.get_dict_repr() for s in getattr(function, "_settings", [])]
        entry = IndexedFunction(
            name=str(function.get_function_name()),
            bindings=tuple(document["bindings"]),
            user_function=function.get_user_function(),
            retry=_retry_policy(settings),
        )
        check_worker_annotations(entry)
        if entry.trigger_type not in SUPPORTED_TRIGGERS:
            raise IndexingError(
                f"{entry.name}: the local host does not run {entry.trigger_type} functions "
                f"(supported: {', '.join(sorted(SUPPORTED_TRIGGERS))}); orchestrations and activities need "
                "the Azure Functions host (`func start`)"
            )
        indexed.append(entry)
    return indexed


def check_worker_annotations(function: IndexedFunction) -> None:
    """Refuse what the Python worker refuses when it indexes a function, so that the app fails here as in Azure.

    The worker (``azure_functions_worker/functions.py``, ``validate_function_params``) reads the annotations with
    ``typing.get_type_hints`` and takes a binding's annotation only if it is a class or one of ``typing``'s generic
    aliases: ``list[X]`` is neither (azure-functions-python-worker#1034) and fails every function of the app. Then
    an input binding's converter must accept the annotation (``check_input_type_annotation``).
    """
    user_function = function.user_function
    parameters = inspect.signature(user_function).parameters
    hints = typing.get_type_hints(user_function)
    registry = func.get_binding_registry()  # type: ignore[no-untyped-call]
    for binding in function.bindings:
        name = binding.get("name")
        if name not in parameters or name not in hints or binding.get("direction") == "out":
            continue
        annotation = hints[name]
        if not isinstance(annotation, type) and not _typing_generic(annotation):
            raise IndexingError(
                f"{function.name}: binding {name} has invalid non-type annotation {annotation!r} (the Python "
                "worker takes classes and typing's generics only: write typing.List[...], not list[...])"
            )
        converter = registry.get(binding["type"])
        if annotation in (str, bytes) or converter is None:  # the worker's generic binding takes these as they come
            continue
        if not converter.check_input_type_annotation(annotation):
            raise IndexingError(
                f"{function.name}: the {binding['type']} binding {name} does not take the annotation {annotation!r}"
            )


def _typing_generic(annotation: Any) -> bool:
    """The worker's ``typing_inspect.is_generic_type``: one of ``typing``'s generic aliases, not a Union (Optional),
    tuple, ClassVar or Callable."""
    excluded = (typing.Union, tuple, typing.ClassVar, collections.abc.Callable)
    return isinstance(annotation, typing._GenericAlias) and typing.get_origin(annotation) not in excluded  # type: ignore[attr-defined]
