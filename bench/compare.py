"""The local host beside Quix Streams doing the same job, in one run on the same broker and records.

    python bench/compare.py [--records 600000] [--rounds 1] [--mix bench|clean] [--profile]

``--records`` Datagen-shaped clickstream records, produced once to an embedded Tansu broker (4
partitions). ``--mix bench`` (the default): 5% invalid (not JSON, not UTF-8, schema violations,
null values), each with a ``traceparent`` header, a new one every 100 records as the timer
generator stamps one per tick. ``--mix clean``: Datagen's records alone, no invalid record and no
trace header. Then, alternating the order each round and each with a fresh consumer group:

- **bare**: a confluent-kafka consumer reading every record (what the broker delivers here);
- **quix**: ``bench/quix_app.py`` under ``.venv-quix``: Quix Streams 3.28 validating with the
  app's pydantic model, the app's transform and lineage, Parquet (zstd) and dead letters through
  its ``LocalFileSink``;
- **host, state off / on**: ``python -m devhost start --no-timers`` landing Parquet (zstd), with
  ``CLICKSTREAM_STATE_ENABLED`` false / true (on: profile lookups, one entity signal per key and
  batch, entities applied in the host), one worker.

Events/s run from the first committed offset to the last (with state on, until the entities
applied every event), so start-up and group joins are left out; CPU per event is the process
tree's user + system time over the same span (the bare consumer's own process). Every run is
checked: each valid record landed once (distinct partition and offset), each invalid one
dead-lettered once, entity page views sum to the valid events; a failed check exits 1.
``--profile`` adds one uncounted run of the host per state mode under py-spy and splits its CPU
per event by where the code lives (see ``CATEGORIES``). What both sides run with is pinned and
printed with the result (``PINNED``): the host's host.json batching (the shipped defaults), its
telemetry, one worker, Quix's checkpoint interval (the host's batch window: each side writes a file
per partition per window). Targets (issue 21): state off >= 1.5x Quix's events/s and <= 0.6x its
CPU per event; state on >= 1.3x its events/s; on both mixes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from statistics import median

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    CommitWatcher,
    Produced,
    Profiler,
    Run,
    bare_consumer,
    check_counts,
    local_host,
    measure_then_stop,
    produce,
    run_checked,
)
from devhost.services.broker import embedded_broker, ensure_topics

PARTITIONS = 4
MIXES = {"bench": {"tick": 100, "invalid_every": None}, "clean": {"tick": None, "invalid_every": 0}}
SHIPPED = json.loads((ROOT / "host.json").read_text())
PINNED: dict[str, object] = {}  # what both sides run with, set by pin() from the command line
PINNED_HOST_JSON = Path(tempfile.gettempdir()) / f"bench-compare-host-{uuid.uuid4().hex[:8]}.json"


def pin(batch_size: int | None, window_seconds: int | None) -> None:
    """The host's batching (the shipped host.json unless given) in a host.json of its own; Quix checkpoints
    once per the host's batch window, so both write a file per partition per window."""
    host = json.loads(json.dumps(SHIPPED))
    kafka = host["extensions"]["kafka"]
    kafka["maxBatchSize"] = batch_size or kafka["maxBatchSize"]
    kafka["subscriberIntervalInSeconds"] = window_seconds or kafka["subscriberIntervalInSeconds"]
    PINNED_HOST_JSON.write_text(json.dumps(host))
    PINNED.update(
        {
            "host maxBatchSize": kafka["maxBatchSize"],
            "host subscriberIntervalInSeconds": kafka["subscriberIntervalInSeconds"],
            "host telemetry": "on (OpenTelemetry SDK, in-memory reader)",
            "host workers": 1,
            "quix commit_interval (s)": float(kafka["subscriberIntervalInSeconds"]),
        }
    )


TICK = 100  # records per generator tick, one traceparent each (CLICKSTREAM_GENERATOR_EVENTS_PER_TICK's default)
QUIX_PYTHON = ROOT / ".venv-quix" / "bin" / "python"
PROFILE_RATE = 250  # py-spy samples per second per thread
RUNNERS = ("bare", "quix", "host, state off", "host, state on")
# Where a sampled stack's CPU goes: the innermost frame whose file matches, first pattern first.
# Third-party code (pydantic, pyarrow, orjson, confluent_kafka) counts for the project code that called it.
CATEGORIES: tuple[tuple[str, str], ...] = (
    (
        "Durable extension emulation + entity functions (devhost HTTP API, entities)",
        r"/devhost/(durable/|web/(server|routes)\.py)|/functions/entities\.py",
    ),
    ("Kafka extension emulation (devhost)", r"/devhost/"),
    ("Functions SDK conversion (azure.functions)", r"/azure/functions/"),
    (
        "keyed state (shared/state: signals, lookups, reducers; durable client)",
        r"/shared/state/|/functions/state_client\.py|/durable_functions/",
    ),
    ("lake write (plan, encode, atomic write)", r"/shared/(landing/|formats\.py|layout\.py|lake/)"),
    ("core (validate + transform)", r"/shared/((validation|transform|lineage|batch)\.py|sources/)"),
    ("glue (functions/, shared/invocation, tracing, telemetry)", r"/functions/|/shared/"),
)


def quix(broker: str, produced: Produced) -> Run:
    """``bench/quix_app.py`` from its first commit to its last; then checks its files."""
    (topic,) = produced.ends
    group = f"clickstream-quix-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="bench-quix-") as directory:
        output = Path(directory)
        command = [str(QUIX_PYTHON), str(ROOT / "bench" / "quix_app.py"), "--broker", broker, "--topic", topic]
        command += ["--group", group, "--output", str(output)]
        command += ["--commit-interval", str(PINNED["quix commit_interval (s)"])]
        log_path = Path(tempfile.gettempdir()) / f"bench-quix-{group}.log"
        with log_path.open("wb") as log:
            app = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        watcher = CommitWatcher(broker, {topic: group}, produced.ends)
        rate, cpu_us = measure_then_stop(app, watcher, produced.total, signal.SIGTERM, "quix app", log_path)
        files = check_quix_output(output, produced)
    log_path.unlink(missing_ok=True)
    return Run(rate, cpu_us, files)


def check_quix_output(output: Path, produced: Produced) -> int:
    """The same check as the host's: valid records landed once, invalid ones dead-lettered once."""
    (source,) = produced.valid
    landed: set[tuple[int, int]] = set()
    rows = files = dead = 0
    for path in (output / "raw").rglob("*.parquet"):
        table = pq.read_table(path, columns=["_partition", "_offset"])
        landed.update(zip(table["_partition"].to_pylist(), table["_offset"].to_pylist(), strict=True))
        rows += table.num_rows
        files += 1
    for path in (output / "deadletter").rglob("*.jsonl.gz"):
        dead += len(gzip.decompress(path.read_bytes()).splitlines())
        files += 1
    check_counts(source, rows, len(landed), dead, produced)
    return files


def run_one(name: str, broker: str, produced: Produced) -> Run:
    if name == "bare":
        return bare_consumer(broker, produced)
    if name == "quix":
        return quix(broker, produced)
    return local_host(broker, produced, telemetry=True, state=name.endswith("on"), host_json=PINNED_HOST_JSON)


def breakdown(samples: Path) -> tuple[Counter[str], int]:
    """Samples per category from py-spy's raw (collapsed) output, and the total."""
    counts: Counter[str] = Counter()
    frame_file = re.compile(r"\(([^()]*?)(?::\d+)?\)$")
    for line in samples.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not number.isdigit():
            continue
        category = "other Python (event loop, threads, start-up)"
        for frame in reversed(stack.split(";")):
            match = frame_file.search(frame)
            path = match.group(1) if match else ""
            found = next((name for name, pattern in CATEGORIES if re.search(pattern, path)), None)
            if found:
                category = found
                break
        counts[category] += int(number)
    return counts, sum(counts.values())


def profile_host(broker: str, produced: Produced, counted_cpu_us: float, keep: Path | None, *, state: bool) -> None:
    """One uncounted host run under py-spy; prints its CPU per event by category."""
    samples = keep or Path(tempfile.gettempdir()) / f"bench-profile-{uuid.uuid4().hex[:8]}.txt"
    profiler = Profiler(0, samples, PROFILE_RATE)
    profiled = local_host(broker, produced, telemetry=True, state=state, profile=profiler, host_json=PINNED_HOST_JSON)
    counts, _ = breakdown(samples)
    if keep is None:
        samples.unlink(missing_ok=True)
    per_event = {name: count / PROFILE_RATE / produced.total * 1e6 for name, count in counts.most_common()}
    mode = "on" if state else "off"
    print(f"\nprofile (py-spy, GIL holders, host state {mode}, uncounted run: {profiled.rate:,.0f} ev/s, ", end="")
    print(f"{profiled.cpu_us_per_event:.1f} us CPU/event; counted runs: {counted_cpu_us:.1f} us):")
    print(f"{'where':<58} {'us/event':>9} {'share':>7}")
    for name, us in per_event.items():
        print(f"{name:<58} {us:>9.2f} {us / profiled.cpu_us_per_event:>7.1%}")
    rest = profiled.cpu_us_per_event - sum(per_event.values())
    name = "without the GIL (librdkafka threads, zstd/Arrow, syscalls)"
    print(f"{name:<58} {rest:>9.2f} {rest / profiled.cpu_us_per_event:>7.1%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=600_000)
    parser.add_argument("--rounds", type=int, default=1, help="runs of each runner, the order reversed each round")
    parser.add_argument("--mix", choices=sorted(MIXES), default="bench", help="the records produced (see above)")
    parser.add_argument("--batch-size", type=int, help="the host's maxBatchSize (default: host.json's)")
    parser.add_argument(
        "--window-seconds", type=int, help="the host's subscriberIntervalInSeconds (default: host.json's)"
    )
    parser.add_argument("--profile", action="store_true", help="split the host's CPU per event with py-spy")
    parser.add_argument("--profile-only", action="store_true", help="only the profiled run (while developing)")
    parser.add_argument("--profile-output", type=Path, help="keep py-spy's raw stacks in this file")
    parser.add_argument("--only", action="append", choices=RUNNERS, help="run only these runners (while developing)")
    args = parser.parse_args()
    pin(args.batch_size, args.window_seconds)
    if not QUIX_PYTHON.exists():
        print(f"{QUIX_PYTHON} is missing: run `make .venv-quix/bin/python`", file=sys.stderr)
        return 2
    topics = {"clickstream": f"clickstream-cmp-{uuid.uuid4().hex[:6]}"}
    runs: dict[str, list[Run]] = {name: [] for name in RUNNERS}
    with embedded_broker() as broker:
        ensure_topics({"bootstrap.servers": broker}, topics.values(), PARTITIONS)
        started = time.perf_counter()
        mix = MIXES[args.mix]
        produced = produce(broker, topics, args.records, tick=mix["tick"], invalid_every=mix["invalid_every"])
        headers = f"a traceparent per {mix['tick']}" if mix["tick"] else "no headers"
        print(
            f"produced {produced.total:,} clickstream records, mix {args.mix} ({produced.invalid['clickstream']:,} "
            f"invalid, {headers}) in {time.perf_counter() - started:.0f}s to {broker}"
        )
        print("pinned: " + ", ".join(f"{name} {value}" for name, value in PINNED.items()))
        bare_consumer(broker, produced)  # the broker's first full read is slower: warm it, uncounted
        if args.profile_only:
            for state in (False, True):
                if not args.only or f"host, state {'on' if state else 'off'}" in args.only:
                    profile_host(broker, produced, 0.0, args.profile_output, state=state)
            return 0
        for number in range(args.rounds):
            chosen = [name for name in RUNNERS if not args.only or name in args.only]
            for name in chosen if number % 2 == 0 else reversed(chosen):
                run = run_one(name, broker, produced)
                runs[name].append(run)
                print(f"  {name:<16} {run.rate:>10,.0f} ev/s {run.cpu_us_per_event:>7.1f} us/ev {run.files:>6} files")
        summary = {name: Run(median([r.rate for r in v]), median([r.cpu_us_per_event for r in v]), v[0].files)
                   for name, v in runs.items() if v}  # fmt: skip
        for state, mode in ((False, "off"), (True, "on")) if args.profile else ():
            if f"host, state {mode}" in summary:
                keep = args.profile_output and args.profile_output.with_suffix(f".state-{mode}.txt")
                profile_host(broker, produced, summary[f"host, state {mode}"].cpu_us_per_event, keep, state=state)
    if "quix" not in summary or "host, state off" not in summary:
        return 0
    baseline = summary["quix"]
    print(f"\n{args.records:,} records, mix {args.mix}, median of {args.rounds} round(s); every run checked")
    print("pinned: " + ", ".join(f"{name} {value}" for name, value in PINNED.items()))
    print(f"{'runner':<16} {'events/s':>10} {'CPU us/ev':>10} {'files':>6} {'ev/s / quix':>12} {'CPU / quix':>11}")
    for name, run in summary.items():
        print(
            f"{name:<16} {run.rate:>10,.0f} {run.cpu_us_per_event:>10.1f} {run.files:>6} "
            f"{run.rate / baseline.rate:>12.2f} {run.cpu_us_per_event / baseline.cpu_us_per_event:>11.2f}"
        )
    host = summary["host, state off"]
    met = host.rate >= 1.5 * baseline.rate and host.cpu_us_per_event <= 0.6 * baseline.cpu_us_per_event
    verdict = "met" if met else "MISSED"
    print(f"target (host, state off: >= 1.5x quix events/s and <= 0.6x its CPU per event): {verdict}")
    if "host, state on" in summary:
        verdict = "met" if summary["host, state on"].rate >= 1.3 * baseline.rate else "MISSED"
        print(f"target (host, state on: >= 1.3x quix events/s): {verdict}")
    return 0


if __name__ == "__main__":
    run_checked(main)
