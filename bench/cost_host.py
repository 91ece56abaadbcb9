"""The local host with the cost benchmark's counters (bench only, never deployed).

    python -m bench.cost_host COUNTERS.json start [devhost start options]

Runs ``python -m devhost start`` unchanged, with three counting wrappers installed first:

- every ``LakeStore`` call the app makes (method, path, bytes, outcome, start and end time): the
  call log that ``bench/cost.py`` replays against each store to count real storage requests;
- every function execution (name, trigger, start, end, success): what Flex Consumption bills;
- every log record of the app's loggers (``streamingpoc.*`` and any other at WARNING or above),
  by logger and level, with its bytes: the rows the Python worker would forward to Application
  Insights.

On exit it writes them, with each function's invocation and event counts (entity functions
count operations as events), to COUNTERS.json.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

APP_LOGGER = "streamingpoc"


class Counters:
    """What the wrappers saw; appended to from many threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str, int, str, float, float]] = []
        self.executions: list[tuple[str, str, float, float, bool]] = []
        self.log_rows: Counter[tuple[str, str]] = Counter()
        self.log_bytes: Counter[tuple[str, str]] = Counter()

    def call(self, method: str, path: str, size: int, outcome: str, started: float) -> None:
        with self.lock:
            self.calls.append((method, path, size, outcome, started, time.time()))


COUNTERS = Counters()


class CountingLake:
    """Wraps the app's lake client; records each call, changes nothing."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.max_request_seconds: float = inner.max_request_seconds  # landing leases are derived from it

    def create(self, path: str, data: bytes) -> bool:
        started = time.time()
        created = bool(self.inner.create(path, data))
        COUNTERS.call("create", path, len(data), "created" if created else "exists", started)
        return created

    def write_atomic(self, path: str, data: bytes) -> None:
        started = time.time()
        self.inner.write_atomic(path, data)
        COUNTERS.call("write_atomic", path, len(data), "ok", started)

    def write_if(self, path: str, data: bytes, version: str | None) -> str:
        started = time.time()
        try:
            written = str(self.inner.write_if(path, data, version))
        except Exception:
            COUNTERS.call("write_if", path, len(data), "conflict" if version else "exists", started)
            raise
        COUNTERS.call("write_if", path, len(data), "create" if version is None else "replace", started)
        return written

    def read_versioned(self, path: str) -> tuple[bytes, str] | None:
        started = time.time()
        found = self.inner.read_versioned(path)
        COUNTERS.call("read_versioned", path, len(found[0]) if found else 0, "hit" if found else "miss", started)
        return found  # type: ignore[no-any-return]

    def read(self, path: str) -> bytes:
        started = time.time()
        data = self.inner.read(path)
        COUNTERS.call("read", path, len(data), "ok", started)
        return data  # type: ignore[no-any-return]

    def exists(self, path: str) -> bool:
        started = time.time()
        found = bool(self.inner.exists(path))
        COUNTERS.call("exists", path, 0, "hit" if found else "miss", started)
        return found

    def delete(self, path: str) -> None:
        started = time.time()
        self.inner.delete(path)
        COUNTERS.call("delete", path, 0, "ok", started)

    def list_paths(self, prefix: str) -> list[str]:
        started = time.time()
        paths = list(self.inner.list_paths(prefix))
        COUNTERS.call("list_paths", prefix, len(paths), "ok", started)
        return paths

    def list_modified(self, prefix: str) -> dict[str, int | None]:
        started = time.time()
        paths = dict(self.inner.list_modified(prefix))
        COUNTERS.call("list_paths", prefix, len(paths), "ok", started)  # the same listing requests
        return paths


class LogCounter(logging.Handler):
    """Counts records by logger and level, with the bytes of their message and extra fields."""

    STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("devhost"):
            return  # the local host's own logs: the Functions host writes its own, modelled in tools.cost
        extra = {k: v for k, v in record.__dict__.items() if k not in self.STANDARD}
        size = len(record.getMessage()) + len(json.dumps(extra, default=str)) if extra else len(record.getMessage())
        key = (record.name, record.levelname)
        with COUNTERS.lock:
            COUNTERS.log_rows[key] += 1
            COUNTERS.log_bytes[key] += size


def install() -> None:
    """Wrap the lake factory and the invoker before the app is imported."""
    import shared.lake as lake_module
    from devhost.runtime.invoker import Invoker

    real_open = lake_module.open_lake
    lake_module.open_lake = lambda settings: CountingLake(real_open(settings))
    real_invoke = Invoker.invoke

    def invoke(self: Invoker, function: Any, arguments: dict[str, Any], retry_count: int = 0) -> Any:
        started, succeeded = time.time(), False
        try:
            result = real_invoke(self, function, arguments, retry_count)
            succeeded = True
            return result
        finally:
            with COUNTERS.lock:
                COUNTERS.executions.append((function.name, function.trigger_type, started, time.time(), succeeded))

    Invoker.invoke = invoke  # type: ignore[method-assign,assignment]


def peak_rss_mb() -> float | None:
    """The process's peak resident memory (VmHWM): every function runs in this one process here."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def main(argv: list[str]) -> int:
    output, devhost_args = Path(argv[0]), argv[1:]
    install()
    from devhost.__main__ import parser
    from devhost.runtime.host import LocalHost, StartOptions

    arguments = parser().parse_args(devhost_args)
    logging.basicConfig(level=arguments.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger(APP_LOGGER).setLevel(logging.INFO)  # counted, not printed: the console keeps its level
    for handler in logging.getLogger().handlers:
        handler.setLevel(arguments.log_level.upper())
    logging.getLogger().addHandler(LogCounter(logging.INFO))
    host = LocalHost(
        StartOptions(
            settings=arguments.settings,
            broker=arguments.broker,
            lake=arguments.lake,
            storage=arguments.storage,
            timers=arguments.timers,
            workers=1,
            port=arguments.port,
            partitions=arguments.partitions,
            final_timers=tuple(prefix for prefix in arguments.final_timers.split(",") if prefix),
        )
    )
    code = host.run()
    with COUNTERS.lock:
        document = {
            "calls": COUNTERS.calls,
            "executions": COUNTERS.executions,
            "log_records": [
                {"logger": name, "level": level, "rows": rows, "bytes": COUNTERS.log_bytes[(name, level)]}
                for (name, level), rows in sorted(COUNTERS.log_rows.items())
            ],
            "functions": {name: stats.as_dict() for name, stats in host.stats.functions.items()},
            "peak_rss_mb": peak_rss_mb(),
        }
    output.write_text(json.dumps(document))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
