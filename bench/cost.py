"""The cost model's measured inputs: the local host at 10, 100 and 1,000 events/s, everything counted.

    python bench/cost.py                      # refresh bench/results/cost.json (about eight minutes)
    python bench/cost.py --rates 10 --seconds 20 --lakes local --output /tmp/try.json
    python bench/cost.py --host-json /tmp/host.json --partitions 1 --output /tmp/variant.json

For each rate and lake (the local directory, then Azurite through the Blob API), one run:

1. fresh topics on an embedded Tansu broker, ``--partitions`` each (Terraform's
   ``eventhub_partition_count`` by default), for every source in the registry and ``sources/``;
2. ``python -m bench.cost_host`` (the local host with counting wrappers) consuming them with the
   repository's ``host.json`` (or ``--host-json``) and Terraform's per-source defaults (keyed state
   on for the hand-written sources, off for Datagen configs), generators off;
3. a producer at the rate for ``--seconds``, split as the Terraform generators' default mix, each
   keyed source's entity key drawn uniformly from ``--keys`` keys (100,000: the issue's scenario);
4. a clean stop once every record is committed; the host drains its entities and writes its counters.

From the counters: executions and entity operations per function, Flex Consumption's billable
activity per scale group (each execution keeps its instance billed for at least 1,000 ms, periods
rounded up to 100 ms: Microsoft's rule), log records by level, files, and the end-to-end latency of
every landed event (Kafka timestamp to the moment its raw file was written), p50 and p99. The lake
calls are then replayed, in order, against each store the app can deploy (``adls``, the one
Terraform deploys, on the fake DFS server of tests/lake, which also answers its Put Blob writes
through the Blob endpoint; ``blob`` on Azurite) through the real SDK clients, counting every HTTP
request by kind: so the Azure request counts follow whatever ``shared/lake`` does when it is re-run.
Data files are recorded as ``create`` calls (Put Blob if absent), ledgers as ``write_if`` (Put
Blob at a version), the ledger's first read as ``read_versioned``.

Every run checks that each produced record landed once (distinct partition and offset), or exits 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
from confluent_kafka import Producer

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import CheckFailed, CommitWatcher, run_checked  # noqa: E402
from bench.state_scale import stored_chars_per_key  # noqa: E402
from devhost.services.azurite import start_azurite  # noqa: E402
from devhost.services.broker import embedded_broker, ensure_topics  # noqa: E402
from devhost.services.processes import free_port  # noqa: E402
from shared.generator_ticks import generate_messages  # noqa: E402
from shared.sources import CONFIG_SOURCES, SOURCES  # noqa: E402
from shared.state.registry import ENTITY_KINDS, entity_for  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "cost.json"
TERRAFORM_VARIABLES = ROOT / "terraform" / "variables.tf"
HOST_JSON = ROOT / "host.json"
MINIMUM_BILLABLE_S = 1.0  # Flex Consumption: "The minimum billable execution period ... is 1,000 ms"
BILLING_STEP_S = 0.1  # "... rounded up to the nearest 100 ms"
# What shapes the counts besides host.json: the code the bench drives and the settings it reads.
# (Terraform's defaults it reads, partitions and the mix, are recorded under "config" and compared
# with variables.tf by the test instead: the file also holds unrelated defaults.)
# The provenance test recomputes this digest; a change to any of these files makes it fail until
# the results are refreshed.
SHAPING_SOURCES = (
    "bench/cost.py",
    "bench/cost_host.py",
    "terraform/locals.tf",
    "devhost/kafka/trigger.py",
    "shared/invocation.py",
    "shared/landing/files.py",
    "shared/landing/guard.py",
    "shared/landing/ledger.py",
    "shared/landing/partition.py",
    "shared/lake/adls.py",
    "shared/lake/blob.py",
    "shared/lake/local.py",
    "shared/state/aggregate.py",
    "shared/state/bucket_counts.py",
    "shared/state/buckets.py",
    "shared/state/lookups.py",
    "shared/state/registry.py",
    "shared/settings.py",
    "functions/processing.py",
    "functions/entities.py",
    "functions/state_client.py",
    "sources/*.json",
)


# ---------------------------------------------------------------- what the deployment defaults are


@dataclass(frozen=True)
class SourceProfile:
    name: str
    events_per_minute: float  # the Terraform generator's default: events per tick x ticks per minute
    state: bool  # <SOURCE>_STATE_ENABLED as Terraform sets it


def _terraform_sources_default() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The field defaults of ``var.sources``'s object type and its default map, from variables.tf."""
    import hcl2

    with TERRAFORM_VARIABLES.open() as handle:
        document = hcl2.load(handle)
    block = next(v for v in document["variable"] if any(k.strip('"') == "sources" for k in v))
    sources = next(value for key, value in block.items() if key.strip('"') == "sources")
    fields: dict[str, Any] = {}
    for name, raw in re.findall(r"(\w+)\s*=\s*optional\(\w+,\s*([^)]+)\)", sources["type"]):
        fields[name] = json.loads(raw.replace("\\", "")) if raw.startswith('"') else json.loads(raw)
    unquoted = {  # python-hcl2 keeps a string's quotes
        name: {field: value.strip('"') if isinstance(value, str) else value for field, value in source.items()}
        for name, source in sources["default"].items()
    }
    return fields, unquoted


def terraform_number(name: str) -> int:
    """The default of a numeric variable in variables.tf."""
    text = TERRAFORM_VARIABLES.read_text()
    match = re.search(rf'variable "{name}" \{{.*?default\s*=\s*(\d+)', text, re.DOTALL)
    if not match:
        raise CheckFailed(f"no numeric default for variable {name} in {TERRAFORM_VARIABLES}")
    return int(match.group(1))


def ticks_per_minute(schedule: str) -> float:
    """Ticks a minute of the six-field NCRONTAB forms the defaults use: ``*/N * ...`` or ``S * * * * *``."""
    seconds = schedule.split()[0]
    if seconds.startswith("*/"):
        return 60 / int(seconds[2:])
    if seconds == "*":
        return 60.0
    if schedule.split()[1] == "*":
        return float(len(seconds.split(",")))
    raise CheckFailed(f"cannot rate schedule {schedule!r}")


def deployed_mix() -> list[SourceProfile]:
    """Every source's share of the traffic as Terraform deploys the generators, and whether it keeps state.

    Hand-written sources take ``var.sources``' defaults; Datagen configs (``sources/*.json``) take the
    code's derived defaults with state off and a tick every 10 s, as terraform/locals.tf sets them.
    """
    fields, defaults = _terraform_sources_default()
    profiles = []
    for name, overrides in defaults.items():
        values = fields | dict(overrides)
        rate = float(values["generator_events_per_tick"]) * ticks_per_minute(str(values["generator_schedule"]))
        profiles.append(SourceProfile(name, rate, bool(values["state_enabled"])))
    for source in CONFIG_SOURCES:
        per_tick = float(source.setting_defaults.get("generator_events_per_tick", 100))
        profiles.append(SourceProfile(source.name, per_tick * ticks_per_minute("*/10 * * * * *"), False))
    return profiles


# ---------------------------------------------------------------- producing at a rate


def keyed(source: str, value: bytes, key_space: int, rng: random.Random) -> tuple[str, bytes]:
    """The record with its entity key drawn uniformly from ``key_space`` keys (keyed sources only)."""
    event = orjson.loads(value)
    number = rng.randrange(1, key_space + 1)
    if source == "clickstream":
        event["userid"] = number
        return str(number), orjson.dumps(event)
    field, text = {
        "mobile": ("device_id", f"device-{number:06d}"),
        "sensors": ("sensor_id", f"sensor-{number:06d}"),
        "users": ("user_id", number),
    }[source]
    event[field] = text
    return str(text), orjson.dumps(event)


class RateProducer:
    """Produces the mix at ``rate`` events/s for ``seconds``, in 50 ms steps, on its own thread."""

    STEP_S = 0.05

    def __init__(self, broker: str, topics: dict[str, str], mix: list[SourceProfile], key_space: int) -> None:
        self.broker, self.topics, self.mix, self.key_space = broker, topics, mix, key_space
        self.produced: Counter[str] = Counter()
        self.ends: dict[str, dict[int, int]] = {topic: {} for topic in topics.values()}
        self.errors: list[str] = []

    def run(self, rate: float, seconds: float) -> None:
        producer = Producer({"bootstrap.servers": self.broker, "linger.ms": 5, "batch.size": 1_048_576})
        total = sum(p.events_per_minute for p in self.mix)
        shares = {p.name: p.events_per_minute / total for p in self.mix}
        pools: dict[str, Iterator[Any]] = {}
        rng = random.Random(7)
        owed: dict[str, float] = defaultdict(float)
        started = time.monotonic()

        def delivered(error: object, message: Any) -> None:
            if error is not None:
                self.errors.append(str(error))
                return
            ends = self.ends[message.topic()]
            ends[message.partition()] = max(ends.get(message.partition(), 0), message.offset() + 1)

        step = 0
        while time.monotonic() - started < seconds:
            for name, share in shares.items():
                owed[name] += rate * share * self.STEP_S
                while owed[name] >= 1:
                    owed[name] -= 1
                    message = next(pools.setdefault(name, self._messages(name)))
                    key, value = message.key, message.value.encode()
                    if entity_for(name) is not None:
                        key, value = keyed(name, value, self.key_space, rng)
                    producer.produce(self.topics[name], value, key, on_delivery=delivered)
                    self.produced[name] += 1
            producer.poll(0)
            step += 1
            time.sleep(max(0.0, started + step * self.STEP_S - time.monotonic()))
        if producer.flush(60):
            self.errors.append("records left unsent after 60 s")

    def _messages(self, name: str) -> Iterator[Any]:
        batch = 0
        while True:
            now = datetime.now(UTC)
            yield from generate_messages(SOURCES[name], 1000, now=now, seed=batch, start_index=batch * 1000)
            batch += 1


# ---------------------------------------------------------------- one measured run


@dataclass
class RunSpec:
    rate: float
    seconds: float
    lake: str  # local | azurite
    partitions: int
    key_space: int
    host_json: Path
    state: bool = True  # False: every <SOURCE>_STATE_ENABLED=false (the state-off row)
    state_buckets: int | None = None  # STATE_BUCKETS; None: each keyed source's own N

    @property
    def buckets(self) -> dict[str, int]:
        return {source: self.state_buckets or kind.buckets for source, kind in sorted(ENTITY_KINDS.items())}


def host_environment(
    topics: dict[str, str], groups: dict[str, str], mix: list[SourceProfile], spec: RunSpec
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LAKE_", "KAFKA_SECURITY")) and k != "OTEL_SDK_DISABLED"
    }
    states = {profile.name: profile.state for profile in mix}
    for name in SOURCES:
        upper = name.upper()
        env[f"{upper}_GENERATOR_ENABLED"] = "false"
        env[f"{upper}_STATE_ENABLED"] = "true" if spec.state and states.get(name) else "false"
        env[f"{upper}_TOPIC"] = topics[name]
        env[f"{upper}_CONSUMER_GROUP"] = groups[name]
    env["DEVHOST_HOST_JSON"] = str(spec.host_json)
    env["STATE_BUCKETS"] = ""
    env["NEW_SOURCE_STATE_BUCKETS"] = str(spec.state_buckets or "")  # as Terraform sets it
    return env


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def measure(spec: RunSpec, broker: str, mix: list[SourceProfile], azurite: Any | None) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:6]
    topics = {name: f"{name}-cost-{suffix}" for name in SOURCES}
    groups = {name: f"{name}-cost-{suffix}" for name in SOURCES}
    ensure_topics({"bootstrap.servers": broker}, topics.values(), spec.partitions)
    env = host_environment(topics, groups, mix, spec)
    with tempfile.TemporaryDirectory(prefix="bench-cost-") as directory:
        work = Path(directory)
        command = [sys.executable, "-m", "bench.cost_host", str(work / "counters.json"), "start"]
        command += ["--broker", broker, "--no-timers", "--final-timers", "", "--port", str(free_port())]
        command += ["--partitions", str(spec.partitions)]
        container = f"cost-{suffix}"
        if spec.lake == "local":
            command += ["--lake", str(work / "lake")]
        else:
            assert azurite is not None, "the azurite lake needs Azurite"
            env |= {"LAKE_KIND": "blob", "LAKE_CONNECTION_STRING": azurite.connection_string}
            env |= {"LAKE_FILE_SYSTEM": container, "LAKE_LOCAL_ROOT": str(work / "lake")}
        log_path = work / "host.log"
        with log_path.open("wb") as log:
            host = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            kafka_functions = len(SOURCES)
            wait_for(
                lambda: log_path.read_text(errors="replace").count(" assigned ") >= kafka_functions, 90, "assignments"
            )
            producer = RateProducer(broker, topics, mix, spec.key_space)
            started = time.time()
            producer.run(spec.rate, spec.seconds)
            produced_s = time.time() - started
            if producer.errors:
                raise CheckFailed(f"produce failed: {producer.errors[:3]}")
            expected = sum(sum(ends.values()) for ends in producer.ends.values())
            watcher = CommitWatcher(broker, {topics[s]: groups[s] for s in SOURCES}, producer.ends)
            try:
                wait_for(
                    lambda: host.poll() is not None or watcher.committed() >= expected, 300, "every offset committed"
                )
            finally:
                watcher.close()
        finally:
            host.send_signal(signal.SIGINT)
            code = host.wait(180)
        if code != 0:
            raise CheckFailed(f"host exited {code}: {log_path.read_text(errors='replace')[-3000:]}")
        counters = json.loads((work / "counters.json").read_text())
        read_file = _file_reader(spec.lake, work / "lake", azurite, container)
        latency = check_and_time(counters["calls"], read_file, producer.produced, topics)
    return summarise(spec, counters, producer.produced, produced_s, latency)


def _file_reader(lake: str, root: Path, azurite: Any | None, container: str) -> Callable[[str], bytes]:
    if lake == "local":
        return lambda path: (root / path).read_bytes()
    from azure.storage.blob import ContainerClient

    assert azurite is not None, "the azurite lake needs Azurite"
    client = ContainerClient.from_connection_string(azurite.connection_string, container)
    return lambda path: client.download_blob(path).readall()


def check_and_time(
    calls: list[list[Any]], read_file: Callable[[str], bytes], produced: Counter[str], topics: dict[str, str]
) -> list[float]:
    """Every produced record landed once; returns each landed event's latency (ms), Kafka timestamp to file."""
    import io

    landed: dict[str, set[tuple[int, int]]] = defaultdict(set)
    latencies: list[float] = []
    for method, path, _size, outcome, _started, ended in calls:
        if (method, outcome) != ("create", "created") or not path.startswith("raw/") or not path.endswith(".parquet"):
            continue
        table = pq.read_table(io.BytesIO(read_file(path)), columns=["_partition", "_offset", "_kafka_timestamp"])
        source = path.split("/")[1]
        pairs = list(zip(table["_partition"].to_pylist(), table["_offset"].to_pylist(), strict=True))
        if landed[source] & set(pairs):
            raise CheckFailed(f"{source}: offsets landed twice ({path})")
        landed[source].update(pairs)
        latencies.extend(ended * 1000 - stamp.timestamp() * 1000 for stamp in table["_kafka_timestamp"].to_pylist())
    for source, count in produced.items():
        if len(landed[source]) != count:
            raise CheckFailed(f"{source}: produced {count}, landed {len(landed[source])} distinct offsets")
    return latencies


def billable_seconds(intervals: list[tuple[float, float]]) -> tuple[float, float, int]:
    """Flex Consumption's billable activity of one instance: each execution keeps it active for at
    least ``MINIMUM_BILLABLE_S``; overlapping activity merges; each period rounds up to 100 ms.
    Returns (billable seconds, busy seconds, periods)."""
    billable = busy = 0.0
    periods = 0
    current: list[float] | None = None
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        busy += end - start
        active_until = max(end, start + MINIMUM_BILLABLE_S)
        if current is not None and start <= current[1]:
            current[1] = max(current[1], active_until)
        else:
            if current is not None:
                merged.append((current[0], current[1]))
            current = [start, active_until]
    if current is not None:
        merged.append((current[0], current[1]))
    for start, end in merged:
        periods += 1
        billable += math.ceil(round((end - start) / BILLING_STEP_S, 6)) * BILLING_STEP_S
    return billable, busy, periods


def scale_group(name: str, trigger: str) -> str:
    """Flex Consumption's per-function scaling: Durable triggers share ``durable``, HTTP ``http``, others their own."""
    if trigger in ("entityTrigger", "orchestrationTrigger", "activityTrigger"):
        return "durable"
    if trigger == "httpTrigger":
        return "http"
    return f"function:{name}"


def summarise(
    spec: RunSpec, counters: dict[str, Any], produced: Counter[str], produced_s: float, latency: list[float]
) -> dict[str, Any]:
    groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
    triggers: dict[str, str] = {}
    for name, trigger, started, ended, _ok in counters["executions"]:
        groups[scale_group(name, trigger)].append((started, ended))
        triggers[name] = trigger
    activity = {}
    for group, intervals in sorted(groups.items()):
        billable, busy, periods = billable_seconds(intervals)
        activity[group] = {
            "executions": len(intervals),
            "billable_s": round(billable, 3),
            "busy_s": round(busy, 3),
            "periods": periods,
        }
    functions = counters["functions"]
    entity_functions = [n for n, f in functions.items() if f["trigger"] == "entityTrigger"]
    calls = Counter(call[0] for call in counters["calls"])
    files: Counter[str] = Counter()
    written: Counter[str] = Counter()
    raw_by_source: Counter[str] = Counter()
    for method, path, size, outcome, *_ in counters["calls"]:
        if (method, outcome) in (("create", "created"), ("write_atomic", "ok")):
            files[path.split("/")[0]] += 1
            written[path.split("/")[0]] += size
            if path.startswith("raw/"):
                raw_by_source[path.split("/")[1]] += 1
    latency_sorted = sorted(latency)
    return {
        "rate_ev_s": spec.rate,
        "lake": spec.lake,
        "buckets": spec.buckets if spec.state else None,
        "seconds": round(produced_s, 2),
        "events": sum(produced.values()),
        "events_by_source": dict(sorted(produced.items())),
        "invocations": {n: f["invocations"] for n, f in sorted(functions.items()) if f["invocations"]},
        "kafka_invocations": sum(f["invocations"] for f in functions.values() if f["trigger"] == "kafkaTrigger"),
        "entity_operations": sum(functions[n]["events"] for n in entity_functions),
        "entity_executions": sum(functions[n]["invocations"] for n in entity_functions),
        "failures": sum(f["failures"] for f in functions.values()),
        "activity": activity,
        "lake_calls": dict(sorted(calls.items())),
        "files_written": dict(sorted(files.items())),
        "bytes_written": dict(sorted(written.items())),
        "raw_files_by_source": dict(sorted(raw_by_source.items())),
        "invocations_by_source": {
            n.removeprefix("process_"): f["invocations"]
            for n, f in sorted(functions.items())
            if n.startswith("process_")
        },
        "state": spec.state,
        "peak_rss_mb": counters.get("peak_rss_mb"),
        "log_records": counters["log_records"],
        "latency_ms": {
            "samples": len(latency_sorted),
            "p50": round(_quantile(latency_sorted, 0.50), 1),
            "p99": round(_quantile(latency_sorted, 0.99), 1),
            "max": round(latency_sorted[-1], 1) if latency_sorted else None,
        },
        "call_log": counters["calls"],  # replayed below, then dropped
    }


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1] if len(values) > 1 else values[0]


# ---------------------------------------------------------------- replaying the calls against each store


class RequestCounter:
    """An azure-core ``raw_request_hook``: counts every HTTP request the SDK sends, by kind, per lake call."""

    def __init__(self) -> None:
        self.current = "setup"
        self.by_call: dict[str, Counter[str]] = defaultdict(Counter)

    def __call__(self, request: Any) -> None:
        http = request.http_request
        self.by_call[self.current][request_kind(http.method, http.url, http.headers)] += 1


def request_kind(method: str, url: str, headers: Any) -> str:
    """Billing class of one storage request: write, read, list, other or delete (delete is free)."""
    query = url.partition("?")[2]
    if method == "DELETE":
        return "delete"
    if method == "HEAD":
        return "other"
    if method == "GET":
        return "list" if "comp=list" in query or "resource=filesystem" in query else "read"
    if method == "PUT" and ("restype=container" in query or "resource=filesystem" in query):
        return "other"  # container / file system create: once per process
    return "write"


@contextmanager
def stores() -> Iterator[dict[str, Callable[[RequestCounter], Any]]]:
    """Factories of each deployable store on its backend: ``adls`` on the fake DFS server, ``blob`` on Azurite."""
    from shared.lake.adls import AdlsLake
    from shared.lake.blob import BlobLake
    from shared.settings import load_settings
    from tests.lake.fake_dfs_server import fake_dfs_server

    with (
        fake_dfs_server() as (_fake, dfs),
        tempfile.TemporaryDirectory(prefix="bench-azurite-") as location,
        start_azurite(Path(location), reuse_running=False) as azurite,
    ):

        def adls(hook: RequestCounter) -> Any:
            settings = load_settings({"LAKE_CONNECTION_STRING": dfs, "LAKE_FILE_SYSTEM": f"r{uuid.uuid4().hex[:10]}"})
            return AdlsLake.from_settings(settings, raw_request_hook=hook, retry_total=0)

        def blob(hook: RequestCounter) -> Any:
            settings = load_settings(
                {
                    "LAKE_CONNECTION_STRING": azurite.connection_string,
                    "LAKE_FILE_SYSTEM": f"r{uuid.uuid4().hex[:10]}",
                }
            )
            return BlobLake.from_settings(settings, raw_request_hook=hook, retry_total=0)

        yield {"adls": adls, "blob": blob}


def replay(calls: list[list[Any]], factory: Callable[[RequestCounter], Any]) -> dict[str, Any]:
    """The recorded lake calls, in order, on a fresh client of one store; then what compaction reads
    (one listing of each source's raw/ prefix, one read per raw file). Returns requests by kind and by call."""
    from shared.errors import WriteConflict

    counter = RequestCounter()
    store = factory(counter)
    versions: dict[str, str | None] = {}
    raw_hours: set[str] = set()
    raw_files: list[str] = []
    for method, path, size, outcome, _started, _ended in calls:
        counter.current = method
        if method in ("create", "write_atomic"):
            getattr(store, method)(path, b"\0" * size)
            if method == "create" and outcome == "created" and path.startswith("raw/"):
                raw_files.append(path)
                raw_hours.add(path.rsplit("/", 1)[0])
        elif method == "write_if":
            try:
                versions[path] = store.write_if(
                    path, b"\0" * size, versions.get(path) if outcome == "replace" else None
                )
            except WriteConflict:
                versions[path] = None
        elif method == "read_versioned":
            found = store.read_versioned(path)
            versions[path] = found[1] if found else None
        elif method in ("read", "exists", "delete", "list_paths"):
            with suppress(Exception):  # a path the replay did not create: still one request
                getattr(store, method)(path)
    counter.current = "compaction_list"
    for source in sorted({hour.split("/")[1] for hour in raw_hours}):
        store.list_paths(f"raw/{source}")  # what one compact_<source> run lists (tools.cost pages it by retention)
    counter.current = "compaction_read"
    for path in raw_files:
        store.read(path)
    by_call = {call: dict(kinds) for call, kinds in sorted(counter.by_call.items())}
    totals: Counter[str] = Counter()
    for call, kinds in counter.by_call.items():
        if call not in ("setup", "compaction_list", "compaction_read"):
            totals.update(kinds)
    compaction: Counter[str] = Counter()
    for call in ("compaction_list", "compaction_read"):
        compaction.update(counter.by_call.get(call, {}))
    return {"landing": dict(sorted(totals.items())), "compaction": dict(sorted(compaction.items())), "by_call": by_call}


# ---------------------------------------------------------------- provenance and the results file


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shaping_digest(root: Path = ROOT) -> dict[str, str]:
    """sha256 of every file that shapes the counts (``SHAPING_SOURCES``), by path."""
    digests = {}
    for pattern in SHAPING_SOURCES:
        for path in sorted(root.glob(pattern)):
            digests[path.relative_to(root).as_posix()] = sha256(path)
    return digests


def deployed_state_buckets() -> int | None:
    """STATE_BUCKETS as Terraform deploys it by default (terraform/locals.tf: by the default Durable backend)."""
    from tools.cost import deployed

    buckets = set(deployed().buckets.values())
    return buckets.pop() if len(buckets) == 1 else None


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def host_json_options(path: Path) -> dict[str, Any]:
    kafka = {k.lower(): v for k, v in json.loads(path.read_text()).get("extensions", {}).get("kafka", {}).items()}
    return {
        "subscriber_interval_s": int(kafka.get("subscriberintervalinseconds", 1)),
        "max_batch_size": int(kafka.get("maxbatchsize", 64)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[10, 100, 1000], help="events/s, all sources together"
    )
    parser.add_argument("--seconds", type=float, default=30, help="how long each run produces")
    parser.add_argument("--lakes", nargs="+", choices=["local", "azurite"], default=["local", "azurite"])
    parser.add_argument(
        "--partitions", type=int, default=None, help="per topic (default: Terraform's eventhub_partition_count)"
    )
    parser.add_argument("--no-state-rates", type=float, nargs="*", default=[1000], help="also with state off")
    parser.add_argument(
        "--own-buckets-rates",
        type=float,
        nargs="*",
        default=[1000],
        help="also with each source's own N (the Durable Task Scheduler's default) where the default differs",
    )
    parser.add_argument("--keys", type=int, default=100_000, help="distinct entity keys per keyed source")
    parser.add_argument("--host-json", type=Path, default=HOST_JSON)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    partitions = args.partitions or terraform_number("eventhub_partition_count")
    mix = deployed_mix()
    runs = []
    with embedded_broker() as broker, contextmanager_azurite("azurite" in args.lakes) as azurite:
        default_n = deployed_state_buckets()
        plan = [(lake, rate, True, default_n) for lake in args.lakes for rate in args.rates]
        plan += [("local", rate, False, default_n) for rate in args.no_state_rates if "local" in args.lakes]
        if default_n is not None:
            plan += [("local", rate, True, None) for rate in args.own_buckets_rates if "local" in args.lakes]
        for lake, rate, state, state_buckets in plan:
            spec = RunSpec(
                rate, args.seconds, lake, partitions, args.keys, args.host_json.resolve(), state, state_buckets
            )
            run = measure(spec, broker, mix, azurite)
            runs.append(run)
            latency = run["latency_ms"]
            print(
                f"{lake:>7} {rate:>7,.0f} ev/s{'' if state else ' (state off)'}"
                f"{'' if state_buckets == default_n else ' (own N)'}: {run['events']:,} events, "
                f"{run['kafka_invocations']} invocations, "
                f"{run['entity_operations']} entity ops, "
                f"latency p50 {latency['p50']:,.0f} ms p99 {latency['p99']:,.0f} ms",
                flush=True,
            )
    with stores() as factories:
        for run in runs:
            calls = run.pop("call_log")
            if run["lake"] == "local":  # the same calls as on Azurite; one replay per rate is enough
                run["requests"] = {kind: replay(calls, factory) for kind, factory in factories.items()}
    document = {
        "schema": 1,
        "what": "bench/cost.py: counts per run of the local host (see its docstring); read by tools.cost",
        "command": " ".join(["python", "bench/cost.py", *sys.argv[1:]]),
        "commit": commit(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, shared with other jobs",
        "host_json": {"path": os.path.relpath(args.host_json.resolve(), ROOT), "sha256": sha256(args.host_json)}
        | host_json_options(args.host_json),
        "shaping_sources": shaping_digest(),
        "config": {
            "partitions": partitions,
            "keys_per_source": args.keys,
            "state_stored_chars_per_key": {source: round(stored_chars_per_key(source), 1) for source in ENTITY_KINDS},
            "mix": [{"source": p.name, "events_per_minute": p.events_per_minute, "state": p.state} for p in mix],
            "seconds_per_run": args.seconds,
        },
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
    print(f"wrote {args.output}")
    return 0


@contextmanager
def contextmanager_azurite(wanted: bool) -> Iterator[Any]:
    if not wanted:
        yield None
        return
    with (
        tempfile.TemporaryDirectory(prefix="bench-cost-azurite-") as location,
        start_azurite(Path(location), reuse_running=False) as azurite,
    ):
        yield azurite


if __name__ == "__main__":
    run_checked(main)
