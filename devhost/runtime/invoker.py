"""Calls user functions the way the Python worker does: async ones on one event loop, sync ones in threads."""

from __future__ import annotations

import asyncio
import inspect
import threading
import uuid
from concurrent.futures import Future
from typing import Any

import azure.functions as func
from azure.functions._abc import RetryContext

from devhost.kafka.output import OutputProducers
from devhost.runtime.catalog import IndexedFunction, IndexingError


class WorkerLoop:
    """The worker's event loop, on its own thread. Async functions (e.g. with a durable client) run here."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="worker-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coroutine: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def close(self) -> None:
        """Close what functions left open on the loop, then stop it."""
        try:
            self.submit(_close_durable_http_session()).result(timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)


async def _close_durable_http_session() -> None:
    # The durable SDK keeps one module-level aiohttp session per worker and has no public close;
    # the Python worker never needs one because it exits with the process.
    from azure.durable_functions.models.utils import http_utils

    session = getattr(http_utils, "_client_session", None)
    if session is not None and not session.closed:
        await session.close()


class _Out(func.Out[Any]):
    """The holder the worker passes for an output binding: the function sets, the host reads."""

    def __init__(self) -> None:
        self.value: Any = None

    def set(self, val: Any) -> None:
        self.value = val

    def get(self) -> Any:
        return self.value


class Invoker:
    """Invokes a function with its trigger's argument plus every other binding; blocks the caller.

    Output bindings get a ``func.Out`` each; after the function returns, Kafka outputs are
    produced (and acknowledged) before the invocation counts as done. A durable client input
    gets the binding JSON whose ``rpcBaseUrl`` points at this host.
    """

    def __init__(self, worker_loop: WorkerLoop, producers: OutputProducers, durable_client_json: str = "") -> None:
        self.worker_loop = worker_loop
        self.producers = producers
        self.durable_client_json = durable_client_json

    def invoke(self, function: IndexedFunction, trigger_arguments: dict[str, Any], retry_count: int = 0) -> Any:
        """Run ``function`` to completion and return its result; its exception propagates.

        ``retry_count`` is the attempt's number under the function's retry policy (0: first call),
        shown to the function as ``context.retry_context`` like the Python worker does.
        """
        arguments = dict(trigger_arguments)
        outputs: dict[str, tuple[dict[str, Any], _Out]] = {}
        for binding in function.bindings:
            name = binding["name"]
            if name in arguments or name == "$return":
                continue
            if binding["direction"] == "OUT":
                outputs[name] = (binding, _Out())
                arguments[name] = outputs[name][1]
            elif binding["type"] == "durableClient":
                if not self.durable_client_json:
                    raise IndexingError(f"{function.name}: durable client binding needs the entity runtime")
                arguments[name] = self.durable_client_json
            elif not binding["type"].endswith("Trigger"):
                raise IndexingError(f"{function.name}: the local host does not implement {binding['type']} bindings")
        user_function = function.user_function
        if "context" in inspect.signature(user_function).parameters and "context" not in arguments:
            max_retries = function.retry.max_retry_count if function.retry else 0
            arguments["context"] = _Context(function.name, _RetryContext(retry_count, max_retries))
        if inspect.iscoroutinefunction(user_function):
            result = self.worker_loop.submit(user_function(**arguments)).result()
        else:
            result = user_function(**arguments)
        for binding, holder in outputs.values():
            if binding["type"] == "kafka":
                self.producers.send(binding, holder.get())
        return result


class _RetryContext(RetryContext):
    def __init__(self, retry_count: int, max_retry_count: int) -> None:
        self._retry_count = retry_count
        self._max_retry_count = max_retry_count

    @property
    def retry_count(self) -> int:
        return self._retry_count

    @property
    def max_retry_count(self) -> int:
        return self._max_retry_count

    @property
    def exception(self) -> Any:
        return None


class _Context(func.Context):
    """The invocation context the worker passes to a function that asks for ``context``."""

    def __init__(self, function_name: str, retry_context: RetryContext) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._retry_context = retry_context

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return ""

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return self._retry_context

    @property
    def thread_local_storage(self) -> Any:
        return threading.local()
