"""Prove nothing was lost: every offset the broker retains is in the lake once; or reposition a group.

python -m tools.reconcile orders                          # gaps and doubles, per partition and incarnation
python -m tools.reconcile orders --move-group-to-time 2026-11-27T10:00:00Z            # dry run
python -m tools.reconcile orders --move-group-to-time 2026-11-27T10:00:00Z --apply    # move it
python -m tools.reconcile orders --eventhubs-namespace evhns-spoc-x1y2                # in Azure

Settings (broker, lake, the source's topic and consumer group) come from ``local.settings.json``
(``--settings``) and the environment, as the app reads them. With ``--eventhubs-namespace`` the
Kafka endpoint of that namespace is used with your Azure login (OAUTHBEARER, ``DefaultAzureCredential``):
you need *Azure Event Hubs Data Receiver* on the source's hub, and to read the lake, *Storage Blob
Data Reader* (*Contributor* for ``--apply``, which marks the move in the landing ledgers; Terraform's
``redrive_operator_principal_id`` gets all three). A group is moved only while it has no members: stop the local
host, or in Azure disable ``process_<source>`` first (docs/operations in docs/datagen.md, "Reconcile and reposition").
"""

from __future__ import annotations

import argparse
import functools
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from shared import records
from shared.compaction.hours import parse_raw_path
from shared.compaction.quarantine import Quarantined, quarantined_files
from shared.compaction.rows import IDENTITY, scan_raw
from shared.errors import LakeError, LakeRefused, LakeUnavailable, TransientError
from shared.kafka_clients import client_config, eventhubs_token_callback
from shared.lake import open_lake
from shared.lake.base import LakeStore
from shared.landing.ledger import fingerprint
from shared.layout import DEADLETTER_AREA, LEDGER_AREA, RAW_AREA, ledger_path
from shared.reconcile import (
    Landed,
    Move,
    PartitionReport,
    current_lives,
    group_is_idle,
    in_ranges,
    landed_offsets,
    mark_moves,
    offset_for_time,
    reconcile,
)
from shared.settings import Settings, load_settings, load_source_settings, source_setting_name
from shared.sources import SOURCES
from tools.cli import (
    MAKE_RUN_BROKER_HINT,
    MAX_ERROR_TEXT,
    QUIET,
    broker_address,
    lake_target,
    one_line,
    parse_since,
    tool_environment,
    tool_main,
    topic_problem,
)

PROG = "python -m tools.reconcile"
TIMEOUT = 30.0
EXIT_BROKER_UNREACHABLE = 2  # the broker or the lake could not be reached (as argparse's code for bad arguments)
QUARANTINED = "quarantined"  # the reason of the rows of a raw file compaction quarantined
CHECK_TIMEOUT = 10.0  # seconds a broker has to answer before a tool says it cannot reach it
READ_THROUGH = 1000  # fingerprinted offsets this close are read in one pass, not each from its own


class BrokerUnreachable(Exception):
    """The broker did not answer, or has no such topic."""


class BrokerFailed(Exception):
    """The broker stopped answering, or answered a read with an error, part way through: nothing was decided."""


class MoveRefused(Exception):
    """The broker would not move a consumer group's offsets (a member joined, or the group is rebalancing)."""


class MoveUnknown(Exception):
    """The broker did not answer a move in time: the group may or may not have moved."""


class Broker:
    """What reconcile and reposition ask the broker, through confluent-kafka (works with Tansu and Event Hubs)."""

    def __init__(self, config: dict[str, Any]) -> None:
        from confluent_kafka import Consumer
        from confluent_kafka.admin import AdminClient

        self.address = str(config.get("bootstrap.servers", ""))  # named when it does not answer
        config = config | {"logger": QUIET}  # a broker it cannot reach is one clear line (``check``), not a flood
        self.admin = AdminClient(config)
        reader = config | {
            "group.id": f"streamingpoc-reconcile-{uuid.uuid4().hex[:8]}",  # never commits: leaves no trace
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
        self.consumer = Consumer(reader)

    def check(self, topic: str) -> None:
        """:class:`BrokerUnreachable` unless the broker answers with ``topic``'s metadata in ``CHECK_TIMEOUT``."""
        problem = topic_problem(self.consumer, topic, CHECK_TIMEOUT, self.address)
        if problem is not None:
            raise BrokerUnreachable(problem)

    def partitions(self, topic: str) -> list[int]:
        metadata = self.consumer.list_topics(topic, timeout=TIMEOUT)
        return sorted(metadata.topics[topic].partitions)

    def retained(self, topic: str, partition: int) -> tuple[int, int]:
        """``[low, end)``: the high watermark is checked by reading from the last offset it implies
        (Tansu answers the last record batch's base offset + 1, not the end)."""
        from confluent_kafka import TopicPartition

        low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=TIMEOUT)
        if high <= low:
            return low, high
        end = high
        for message in self._read(topic, partition, high - 1):
            end = max(end, message.offset() + 1)
        return low, end

    def timestamp_at(self, topic: str, partition: int, offset: int) -> int | None:
        """The timestamp of the first record this consumer is given at or after ``offset``, or None when there is
        none (``shared.reconcile.FetchTimestamp``): an offset holding no record (a transaction's commit marker, a
        record aborted or compacted away) answers for the next record, and a marker tail as the end does."""
        for message in self._read(topic, partition, offset, limit=1):
            return int(message.timestamp()[1])
        return None

    def _read(self, topic: str, partition: int, offset: int, limit: int | None = None) -> list[Any]:
        """Records from ``offset`` to the partition's end (or ``limit`` of them)."""
        from confluent_kafka import KafkaError, TopicPartition

        self.consumer.assign([TopicPartition(topic, partition, offset)])
        found: list[Any] = []
        while limit is None or len(found) < limit:
            message = self.consumer.poll(TIMEOUT)
            if message is None:
                raise BrokerFailed(f"{topic}/{partition}: nothing from offset {offset} within {TIMEOUT:.0f}s")
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    break
                raise BrokerFailed(f"{topic}/{partition}: {error}")
            if (message.offset() or 0) >= offset:
                found.append(message)
        self.consumer.unassign()
        return found

    def fingerprints(self, topic: str, partition: int, offsets: list[int]) -> dict[int, str]:
        """The landing's fingerprint (``shared.landing.ledger.fingerprint``) of the record at each of ``offsets`` as
        the processor is given it (the key as UTF-8 text, as the Kafka extension hands it over); an offset holding
        no record is left out. Offsets within ``READ_THROUGH`` of each other are read in one pass (a ledger keeps
        its newest fingerprints: the ends of the last batches, close together), others each from its own."""
        wanted, found = set(offsets), {}
        runs: list[list[int]] = []
        for offset in sorted(wanted):
            if runs and offset - runs[-1][1] <= READ_THROUGH:
                runs[-1][1] = offset
            else:
                runs.append([offset, offset])
        for first, last in runs:
            for message in self._through(topic, partition, first, last):
                offset = message.offset() or 0
                if offset in wanted:
                    key = message.key()
                    text = key.decode("utf-8", errors="replace") if isinstance(key, bytes) else key
                    read = records.KafkaRecord(topic, partition, offset, text, message.value(), message.timestamp()[1])
                    found[offset] = fingerprint(read)
        return found

    def records_in(self, topic: str, partition: int, gaps: list[tuple[int, int]]) -> set[int]:
        """The offsets within ``gaps`` (sorted inclusive ranges) that hold a record this consumer is given (as
        the processor's, read_committed): one pass from the first gap to the last, keeping only gap offsets."""
        if not gaps:
            return set()
        offsets = (message.offset() or 0 for message in self._through(topic, partition, gaps[0][0], gaps[-1][1]))
        return {offset for offset in offsets if in_ranges(gaps, offset)}

    def _through(self, topic: str, partition: int, first: int, last: int) -> Iterator[Any]:
        """The records this consumer is given from ``first`` up to ``last`` (inclusive) or the partition's end."""
        from confluent_kafka import KafkaError, TopicPartition

        self.consumer.assign([TopicPartition(topic, partition, first)])
        try:
            while True:
                message = self.consumer.poll(TIMEOUT)
                if message is None:
                    raise BrokerFailed(f"{topic}/{partition}: nothing from offset {first} within {TIMEOUT:.0f}s")
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return
                    raise BrokerFailed(f"{topic}/{partition}: {error}")
                if (message.offset() or 0) > last:  # None only on an error
                    return
                yield message
        finally:
            self.consumer.unassign()

    def broker_offsets_for_time(self, topic: str, partitions: list[int], at_ms: int) -> dict[int, int | None]:
        from confluent_kafka import TopicPartition

        try:
            answers = self.consumer.offsets_for_times([TopicPartition(topic, p, at_ms) for p in partitions], TIMEOUT)
        except Exception:  # a broker without a time index: the search finds the offsets
            return dict.fromkeys(partitions)
        return {answer.partition: None if answer.error else answer.offset for answer in answers}

    def group_state(self, group: str) -> str:
        described = _answer(self.admin.describe_consumer_groups([group])[group], f"describe consumer group {group}")
        return f"{described.state}{'' if not described.members else f' ({len(described.members)} members)'}"

    def committed(self, group: str, topic: str, partitions: list[int]) -> dict[int, int | None]:
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

        request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])]
        answer = _answer(self.admin.list_consumer_group_offsets(request)[group], f"committed offsets of {group}")
        return {tp.partition: tp.offset if tp.offset >= 0 else None for tp in answer.topic_partitions}

    def move(self, group: str, moves: list[Move]) -> None:
        from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition

        targets = [TopicPartition(m.topic, m.partition, m.target) for m in moves]
        answer = self.admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, targets)])
        try:
            result = answer[group].result(TIMEOUT)
        except KafkaException as error:  # the whole request refused, e.g. a member joined since the check
            raise MoveRefused(str(error.args[0] if error.args else error)) from error
        except TimeoutError as error:
            raise MoveUnknown(f"no answer within {TIMEOUT:.0f}s") from error
        failed = [tp for tp in result.topic_partitions if tp.error]
        if failed:
            errors = sorted({str(tp.error) for tp in failed})
            raise MoveRefused(f"partitions {[tp.partition for tp in failed]} not moved: {'; '.join(errors)}")

    def close(self) -> None:
        self.consumer.close()


def _answer(future: Any, what: str) -> Any:
    """An admin request's answer, or ``BrokerFailed`` when none came within ``TIMEOUT`` (a broker slow part way)."""
    try:
        return future.result(TIMEOUT)
    except TimeoutError as error:
        raise BrokerFailed(f"{what}: no answer within {TIMEOUT:.0f}s") from error


def broker_config(settings: Settings, source: str, env: dict[str, str], namespace: str | None) -> dict[str, Any]:
    """The app's broker settings (the processor's listen credential), or an Event Hubs namespace with your login."""
    if not namespace:
        password = load_source_settings(source, env).kafka_sasl_password.get_secret_value()
        return client_config(settings, password, source_setting_name(source, "kafka_sasl_password"))
    host = namespace if "." in namespace else f"{namespace}.servicebus.windows.net"
    return {
        "bootstrap.servers": f"{host}:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "OAUTHBEARER",
        "oauth_cb": eventhubs_token_callback(host),
    }


def run_reconcile(broker: Broker, settings: Settings, source: str, topic: str, group: str) -> int:
    """Reconcile ``topic`` with ``source``'s lake; offsets past ``group``'s committed ones count as pending."""
    partitions = broker.partitions(topic)
    retained = {records.TopicPartition(topic, p): broker.retained(topic, p) for p in partitions}
    answered = broker.committed(group, topic, partitions)
    committed = {records.TopicPartition(topic, p): offset for p, offset in answered.items()}
    lake = open_lake(settings)
    unreadable: list[str] = []
    raw = landed_offsets(lake, source, unreadable, areas=(RAW_AREA,))
    moved = quarantined_files(lake, source)  # after raw/: compaction copies, then deletes; never in neither
    quarantined = quarantined_offsets(lake, source, moved, unreadable)
    landed = counted_once(raw, quarantined, moved, unreadable)
    landed += landed_offsets(lake, source, unreadable, areas=(DEADLETTER_AREA,))
    lives = current_lives(
        lake, source, retained, landed, lambda tp, offsets: broker.fingerprints(*tp, offsets), unreadable
    )
    reports = reconcile(retained, landed, lives, committed, lambda tp, gaps: broker.records_in(*tp, gaps))
    print(report_table(source, topic, reports, unreadable, moved))
    return 0 if all(report.clean for report in reports) and not unreadable else 1


def counted_once(
    raw: list[Landed], quarantined: list[Landed], moved: Sequence[Quarantined], unreadable: list[str]
) -> list[Landed]:
    """Raw rows and quarantined rows with each file counted once: compaction copies a file to the quarantine, then
    deletes it from raw/, so one listed in raw/ (before the quarantine) may be in both. Read from raw/, its raw rows
    count (also a file put back); gone from raw/ when read, or unreadable there, its quarantined copy. ``unreadable``
    loses the entries of the copy not counted."""
    read = {row.path for row in raw}
    copies_left = {q.path for q in moved if q.raw_path in read}
    named = [f"{q.path} (quarantined" for q in moved if q.raw_path in read]
    named += [f"{q.raw_path}: " for q in moved if q.raw_path not in read]
    unreadable[:] = [entry for entry in unreadable if not entry.startswith(tuple(named))]
    return raw + [row for row in quarantined if row.path not in copies_left]


def quarantined_offsets(
    lake: LakeStore, source: str, moved: Sequence[Quarantined], unreadable: list[str]
) -> list[Landed]:
    """The rows of the raw files compaction quarantined (out of raw/, in deadletter/<source>/quarantine/), as dead
    letters of reason ``quarantined``. One whose rows cannot be read (the reason it was quarantined, often) is
    named in ``unreadable`` with that reason: its offsets count as missing."""
    found: list[Landed] = []
    for file in moved:
        raw = parse_raw_path(source, file.raw_path)
        try:
            if raw is None:
                raise ValueError(f"{file.raw_path} is not a raw file's name")
            identity, _ = scan_raw(raw.format, lake.read(file.path), path=file.path)
        except (TransientError, LakeRefused):  # the lake's outage or refusal, not the file's
            raise
        except Exception as error:  # any decoder's error: the file is damaged, as compaction found
            unreadable.append(f"{file.path} (quarantined: {file.why}): {type(error).__name__}: {error}")
            continue
        found += [
            Landed(
                str(row["_topic"]),
                int(row["_partition"]),
                int(row["_incarnation"]),
                int(row["_offset"]),
                file.path,
                QUARANTINED,
            )
            for row in identity.select(IDENTITY).to_pylist()
        ]
    return found


def report_table(
    source: str,
    topic: str,
    reports: list[PartitionReport],
    unreadable: Sequence[str] = (),
    quarantined: Sequence[Quarantined] = (),
) -> str:
    lines = [
        f"reconcile of {source} (topic {topic}): the broker's retained offsets against raw/ and deadletter/",
        f"{'partition':>9}  {'incarnation':>11}  {'retained':>21}  {'landed':>8}  {'dead':>6}  {'missing':>7}  "
        f"{'doubles':>7}  {'pending':>7}  {'no record':>9}",
    ]
    for r in reports:
        span = f"{r.low}-{r.end - 1} ({r.end - r.low})" if r.end > r.low else "none"
        lines.append(
            f"{r.partition:>9}  {r.incarnation:>11}  {span:>21}  {r.landed:>8}  {r.dead_lettered:>6}  "
            f"{r.missing:>7}  {len(r.doubles):>7}  {r.pending:>7}  {r.no_record:>9}"
        )
    for r in reports:
        if r.recreated_from is not None:
            lines.append(
                f"recreated: partition {r.partition} holds other records from offset {r.recreated_from} on than the "
                "lake landed there (its landing ledger's fingerprints differ): the topic was recreated and its new "
                "records have not landed yet; they count as pending, or missing below the group's committed offset"
            )
        if r.recreated_below is not None:
            lines.append(
                f"recreated: partition {r.partition} holds other records below offset {r.recreated_below} than the "
                "lake landed there (its landing ledger's fingerprints differ) although those above match: the topic "
                "was recreated and a consumer resumed at its old position, so the new records below it were never "
                "read; they count as missing"
            )
        ledger = ledger_path(source, records.TopicPartition(r.topic, r.partition))
        if not r.verified and any(entry.startswith(f"{ledger}: ") for entry in unreadable):
            lines.append(
                f"unverified: partition {r.partition}: its landing ledger cannot be read (named below), so whether "
                "the lake's rows are the broker's records (not a recreated topic's) was not checked"
            )
        elif not r.verified:
            lines.append(
                f"unverified: partition {r.partition}: no offset its landing ledger fingerprinted holds a record the "
                "broker retains, so "
                "whether the lake's rows are the broker's records (not a recreated topic's) was not checked"
            )
        for first, last in r.expired:
            lines.append(
                f"lost to retention: partition {r.partition} offsets {first}-{last} ({last - first + 1}): past the "
                "group's committed offset, deleted by the broker before the processor reached them"
            )
        if r.skipped_one_gone:
            shown = ", ".join(map(str, r.skipped_one_gone[:10])) + (", ..." if len(r.skipped_one_gone) > 10 else "")
            lines.append(
                f"not retained, one offset each: partition {r.partition} offsets {shown}: never landed and no longer "
                "retained; most likely a transactional producer's commit markers (not counted as missing)"
            )
        for first, last in r.skipped_gone:
            lines.append(
                f"not retained: partition {r.partition} offsets {first}-{last} ({last - first + 1}): the landing "
                "never landed them (a consumer jumped over them: an offset reset after retention, or a group moved "
                "by another tool) and the broker no longer retains them: lost to retention, unless they held no "
                "record (an aborted transaction's)"
            )
        for first, last in r.gaps:
            lines.append(f"missing: partition {r.partition} offsets {first}-{last} ({last - first + 1})")
        for first, last in r.raw_gone:
            lines.append(
                f"missing from raw/: partition {r.partition} offsets {first}-{last}: only a dead letter that is in "
                "raw/ too by design (entity_rejected, reprocess) names them; their raw rows are gone"
            )
        for offset, paths in sorted(r.doubles.items()):
            lines.append(f"double: partition {r.partition} offset {offset} in {', '.join(paths)}")
    ledgers = [entry for entry in unreadable if entry.startswith(f"{LEDGER_AREA}/")]
    lines += [
        f"unreadable (left out, its offsets count as missing): {file}" for file in unreadable if file not in ledgers
    ]
    lines += [f"unreadable landing ledger (its partition is not reconciled): {entry}" for entry in ledgers]
    lines += [
        f"quarantined by compaction (its rows count as dead, not in curated/): {q.raw_path} -> {q.path}: {q.why}"
        for q in quarantined
    ]
    clean = all(r.clean for r in reports) and not unreadable
    pending = sum(r.pending for r in reports)
    recreated = [str(r.partition) for r in reports if r.recreated_from is not None]
    if clean and recreated:
        lines.append(
            f"result: the topic was recreated (partition{'s' * (len(recreated) > 1)} {', '.join(recreated)}): its new "
            f"records have not all landed yet; {pending} are pending (not processed yet: run again once the processor "
            "caught up or stopped)"
        )
    elif clean and pending:
        lines.append(
            f"result: every retained offset up to the group's committed offsets is in the lake exactly once; {pending}"
            " past them are pending (not processed yet: run again once the processor caught up or stopped)"
        )
    elif clean and (unverified := [str(r.partition) for r in reports if not r.verified]):
        lines.append(
            "result: every retained offset is in the lake exactly once, if the lake's rows are the broker's records "
            f"(unverified: partition{'s' * (len(unverified) > 1)} {', '.join(unverified)})"
        )
    else:
        lines.append("result: every retained offset is in the lake exactly once" if clean else "result: NOT reconciled")
    return "\n".join(lines)


def run_move(
    broker: Broker, topic: str, group: str, at_ms: int, *, apply: bool, source: str, lake: LakeStore | None = None
) -> int:
    """Move ``group`` to ``at_ms`` (only with ``apply``, and ``lake``, ``source``'s; refused while it has members).
    Each partition's landing ledger is marked with the offset it is moved to first (``shared.reconcile.mark_moves``):
    the group is moved only once every mark is written. A dry run writes nothing, to the lake or the broker."""
    if apply and lake is None:
        raise ValueError("moving a group needs the lake, to mark the moves in its landing ledgers")
    state = broker.group_state(group)
    partitions = broker.partitions(topic)
    committed = broker.committed(group, topic, partitions)
    answers = broker.broker_offsets_for_time(topic, partitions, at_ms)
    moves = []
    for partition in partitions:
        low, end = broker.retained(topic, partition)
        target, how = offset_for_time(
            functools.partial(broker.timestamp_at, topic, partition), low, end, at_ms, answers.get(partition)
        )
        moves.append(Move(topic, partition, committed.get(partition), target, how))
    print(move_table(group, topic, moves, apply=apply))
    if not group_is_idle(state.split(" ")[0]):
        print(
            f"refused: consumer group {group} is {state}: it has members. Stop its processor first "
            "(the local host; in Azure disable process_<source>, docs/datagen.md) and run again."
        )
        return 2
    if apply and lake is not None:
        try:
            mark_moves(lake, source, moves)  # before the move: a live instance's memory must not outlast it
        except (TransientError, LakeError) as error:
            print(
                f"refused: the landing ledgers of {source} could not be marked with the offsets moved to "
                f"({type(error).__name__}: {error}); nothing was moved. Run again (the table above is what a rerun "
                "moves)."
            )
            return 2
        try:
            broker.move(group, moves)
        except MoveRefused as refusal:
            print(
                f"refused: the broker did not move consumer group {group} ({refusal}); it has members now, or had "
                "them when asked. Stop its processor and run again (the table above is what a rerun moves)."
            )
            return 2
        except MoveUnknown as unknown:
            print(
                f"unknown: the broker did not answer the move of consumer group {group} ({unknown}): it may or may "
                "not have moved. Run again without --apply to see its committed offsets, then again with it if they "
                "are not the targets above (the landing ledgers are marked already)."
            )
            return 2
        print(f"moved {group}: {len(moves)} partitions")
    return 0


def move_table(group: str, topic: str, moves: list[Move], *, apply: bool) -> str:
    mode = "" if apply else " (dry run: nothing changes; --apply moves)"
    lines = [f"move consumer group {group} of topic {topic}{mode}", "partition  committed  target  found by  change"]
    for m in moves:
        shift = m.shift
        change = (
            "-"
            if shift is None
            else "none"
            if shift == 0
            else f"skips {shift}"
            if shift > 0
            else f"reads {-shift} again"
        )
        committed = "none" if m.committed is None else str(m.committed)
        lines.append(f"{m.partition:>9}  {committed:>9}  {m.target:>6}  {m.how:>8}  {change}")
    return "\n".join(lines)


@tool_main(PROG)
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("source", choices=sorted(SOURCES), help="the source whose topic and lake to compare")
    parser.add_argument("--move-group-to-time", type=parse_since, metavar="TIME", help="ISO time to move the group to")
    parser.add_argument("--apply", action="store_true", help="with --move-group-to-time: move (default: dry run)")
    parser.add_argument("--eventhubs-namespace", help="an Event Hubs namespace (name or FQDN), with your Azure login")
    parser.add_argument("--settings", type=Path, default=Path("local.settings.json"), help="settings file (Values)")
    parser.add_argument("--broker", type=broker_address, help="HOST:PORT (default: settings; devhost prints its own)")
    parser.add_argument("--lake", type=Path, help="a local lake directory (default: settings)")
    args = parser.parse_args(argv)
    if args.apply and args.move_group_to_time is None:  # was ignored: a comparison ran and exited 0, nothing moved
        parser.error("--apply needs --move-group-to-time TIME (it applies the move; without one nothing would move)")
    env = tool_environment(args.settings, broker=args.broker, lake=args.lake, source=args.source)
    settings = load_settings(env)
    source_settings = load_source_settings(args.source, env)
    from confluent_kafka import KafkaException

    try:
        broker = Broker(broker_config(settings, args.source, env, args.eventhubs_namespace))
    except KafkaException as error:  # with --eventhubs-namespace, no token from the Azure login (e.g. no `az login`)
        why = one_line(error.args[0].str() if error.args else error, MAX_ERROR_TEXT)
        if args.eventhubs_namespace:
            why = f"cannot sign in to {args.eventhubs_namespace}: {why}; is there an Azure login (az login)?"
        print(f"reconcile of {args.source} stopped: {why}", file=sys.stderr)
        return EXIT_BROKER_UNREACHABLE
    origin = "--eventhubs-namespace" if args.eventhubs_namespace else "--broker" if args.broker else "KAFKA_BROKER_LIST"
    broker.address = f"{broker.address} ({origin})"
    try:
        broker.check(source_settings.topic)
    except BrokerUnreachable as error:
        broker.close()
        hint = "" if args.eventhubs_namespace else f"; {MAKE_RUN_BROKER_HINT}"
        print(f"reconcile of {args.source} stopped: {error}{hint}", file=sys.stderr)
        return EXIT_BROKER_UNREACHABLE
    try:
        if args.move_group_to_time is not None:
            return run_move(
                broker,
                source_settings.topic,
                source_settings.consumer_group,
                args.move_group_to_time,
                apply=args.apply,
                source=args.source,
                lake=open_lake(settings) if args.apply else None,  # a dry run does not even open it
            )
        return run_reconcile(broker, settings, args.source, source_settings.topic, source_settings.consumer_group)
    except (LakeUnavailable, LakeError) as error:  # unreachable, or refused (no permission): nothing was compared
        print(
            f"reconcile of {args.source} stopped: cannot read the lake ({lake_target(settings)}): "
            f"{one_line(error, MAX_ERROR_TEXT)}",
            file=sys.stderr,
        )
        return EXIT_BROKER_UNREACHABLE
    except (BrokerFailed, KafkaException) as error:  # it stopped answering part way: nothing decided, nothing moved
        first: Any = error.args[0] if isinstance(error, KafkaException) and error.args else error
        failure = first.str() if callable(getattr(first, "str", None)) else first  # a KafkaError's text
        outcome = "nothing was moved" if args.move_group_to_time is not None else "nothing was compared"
        print(
            f"reconcile of {args.source} stopped: the broker at {broker.address} failed part way "
            f"({one_line(failure, MAX_ERROR_TEXT)}); {outcome}. Run again once it answers",
            file=sys.stderr,
        )
        return EXIT_BROKER_UNREACHABLE
    finally:
        broker.close()


if __name__ == "__main__":
    sys.exit(main())
