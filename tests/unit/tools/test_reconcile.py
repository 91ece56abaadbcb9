"""``python -m tools.reconcile``: its report and how it says the broker cannot be reached."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared import formats
from shared.compaction.quarantine import quarantine, quarantine_directory
from shared.formats import decode
from shared.invocation import handle_batch
from shared.lake import LocalLake
from shared.landing.files import DEADLETTER_COLUMNS
from shared.landing.ledger import fingerprint
from shared.reconcile import Landed, reconcile
from shared.records import KafkaRecord, TopicPartition
from shared.settings import load_settings
from shared.sources import SOURCES
from tests.conftest import FIXED_NOW_MS, context_for
from tests.unit.tools.no_settings import NO_SETTINGS
from tools.reconcile import report_table


def test_a_clean_report_with_pending_offsets_says_so() -> None:
    (report,) = reconcile(
        {TopicPartition("t", 0): (0, 4)},
        [Landed("t", 0, 0, 0, "raw/a"), Landed("t", 0, 0, 1, "raw/a")],
        {},
        {TopicPartition("t", 0): 2},
    )
    table = report_table("s", "t", [report])
    assert "2 past them are pending" in table and "NOT reconciled" not in table


def test_reconcile_with_no_broker_to_reach_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools import reconcile as reconcile_cli

    monkeypatch.delenv("KAFKA_BROKER_LIST", raising=False)
    monkeypatch.setattr(reconcile_cli, "CHECK_TIMEOUT", 1.0)
    code = reconcile_cli.main(["orders", "--broker", "127.0.0.1:1", "--lake", str(tmp_path), "--settings", NO_SETTINGS])
    captured = capsys.readouterr()
    assert code == reconcile_cli.EXIT_BROKER_UNREACHABLE
    assert captured.err.startswith("reconcile of orders stopped: the broker at 127.0.0.1:1 (--broker) did not answer")
    assert captured.err.rstrip().endswith("for the broker of `make run`, pass --broker $(cat .lake.state/broker)")
    assert len(captured.err.splitlines()) == 1 and "FAIL" not in captured.out + captured.err


def test_with_no_broker_at_the_settings_address_the_line_names_that_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It said "the broker did not answer", not where it had asked: the settings' 127.0.0.1:9092 is not the broker
    ``make run`` starts, on a free port it writes to ``.lake.state/broker``."""
    from tools import reconcile as reconcile_cli

    monkeypatch.setenv("KAFKA_BROKER_LIST", "127.0.0.1:1")
    monkeypatch.setattr(reconcile_cli, "CHECK_TIMEOUT", 1.0)
    code = reconcile_cli.main(["orders", "--lake", str(tmp_path), "--settings", NO_SETTINGS])
    (line,) = capsys.readouterr().err.splitlines()
    assert code == reconcile_cli.EXIT_BROKER_UNREACHABLE
    assert line.startswith("reconcile of orders stopped: the broker at 127.0.0.1:1 (KAFKA_BROKER_LIST) did not answer")
    assert "--broker $(cat .lake.state/broker)" in line


def test_a_bad_setting_is_one_line_naming_it_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools import reconcile as reconcile_cli

    monkeypatch.setenv("STATE_BUCKETS", "0")
    assert reconcile_cli.main(["orders", "--settings", NO_SETTINGS]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "python -m tools.reconcile: invalid settings: STATE_BUCKETS: Input should be greater than or equal to 1 "
        "(got '0')"
    ]


def test_against_event_hubs_without_an_azure_login_is_one_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No ``az login``: the credential raises in librdkafka's OAuth callback and the client made in ``Broker``
    raises KafkaException (no token within librdkafka's own 10 seconds, which this test waits out)."""
    from azure.core.exceptions import ClientAuthenticationError

    from tools import reconcile as reconcile_cli

    def no_login(_host: str) -> Callable[[str], tuple[str, float]]:
        def token(_config: str) -> tuple[str, float]:
            raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")

        return token

    monkeypatch.setattr(reconcile_cli, "eventhubs_token_callback", no_login)
    argv = ["clickstream", "--lake", str(tmp_path), "--settings", NO_SETTINGS]
    code = reconcile_cli.main([*argv, "--eventhubs-namespace", "evhns-x1y2"])
    (line,) = capsys.readouterr().err.splitlines()
    assert code == reconcile_cli.EXIT_BROKER_UNREACHABLE
    assert line.startswith("reconcile of clickstream stopped: cannot sign in to evhns-x1y2: "), line


def test_an_unreachable_lake_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from shared.errors import LakeUnavailable
    from tools import reconcile as reconcile_cli

    class Answering(_Broker):
        address = "127.0.0.1:9092"

        def __init__(self, _config: object) -> None: ...

        def check(self, topic: str) -> None: ...

        def close(self) -> None: ...

    def unreachable(_settings: object) -> object:
        raise LakeUnavailable("list raw/orders: Connection refused")

    monkeypatch.setattr(reconcile_cli, "Broker", Answering)
    monkeypatch.setattr(reconcile_cli, "open_lake", unreachable)
    monkeypatch.setenv("LAKE_KIND", "blob")
    monkeypatch.setenv("LAKE_CONNECTION_STRING", "UseDevelopmentStorage=true")
    assert reconcile_cli.main(["orders", "--settings", NO_SETTINGS]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "reconcile of orders stopped: cannot read the lake (LAKE_KIND=blob at http://127.0.0.1:10000/devstoreaccount1,"
        " container lake): list raw/orders: Connection refused"
    ]


class _Broker:
    """A fake broker (named as such): partition 0 of ``t`` retains offsets 0-4; the group committed them all. The
    case is the lake's side (quarantined raw files); reconcile against Tansu is tests/integration/test_reconcile.py,
    whose broker cannot report retention as Kafka does (Tansu's high watermark is its last batch's base + 1)."""

    def partitions(self, topic: str) -> list[int]:
        return [0]

    def retained(self, topic: str, partition: int) -> tuple[int, int]:
        return 0, 5

    def committed(self, group: str, topic: str, partitions: list[int]) -> dict[int, int | None]:
        return {0: 5}

    def records_in(self, topic: str, partition: int, gaps: list[tuple[int, int]]) -> set[int]:
        return {offset for first, last in gaps for offset in range(first, last + 1)}


def test_the_rows_of_raw_files_compaction_quarantined_are_accounted_for_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A quarantined file is out of raw/: without looking in the quarantine its offsets were missing, unnamed."""
    from tools import reconcile as reconcile_cli

    lake = LocalLake(tmp_path)
    directory = "raw/orders/date=2026-11-24/hour=10"

    def rows(offsets: list[int], **columns: list[object]) -> bytes:
        sink = io.BytesIO()
        table = pa.table({"_topic": ["t"] * len(offsets), "_partition": [0] * len(offsets), "_offset": offsets})
        pq.write_table(table.append_column("_event_time", pa.array(offsets, pa.int64())), sink)
        return sink.getvalue()

    lake.write_atomic(f"{directory}/a.parquet", rows([0, 1]))
    lake.write_atomic(f"{directory}/b.parquet", rows([2, 3]))
    lake.write_atomic(f"{directory}/c.parquet", rows([4])[:20])
    unfit = quarantine(lake, "orders", f"{directory}/b.parquet", "rows carry columns ['Date']")
    damaged = quarantine(lake, "orders", f"{directory}/c.parquet", "cannot read raw file")
    monkeypatch.setattr(reconcile_cli, "open_lake", lambda settings: lake)

    code = reconcile_cli.run_reconcile(_Broker(), load_settings({}), "orders", "t", "g")  # type: ignore[arg-type]

    printed = capsys.readouterr().out
    assert code == 1
    partition = next(line.split() for line in printed.splitlines() if line.split()[:2] == ["0", "0"])
    assert partition[4:7] == ["2", "2", "1"], printed  # landed, dead (the unfit file's rows), missing
    assert f"unreadable (left out, its offsets count as missing): {damaged.path} (quarantined: cannot read" in printed
    assert f"{unfit.raw_path} -> {unfit.path}: rows carry columns ['Date']" in printed


ORDER = (
    b'{"ordertime":1,"orderid":%d,"itemid":"Item_1","orderunits":1.5,"address":{"city":"C","state":"S","zipcode":1}}'
)


def _orders(offsets: range, key: str = "", orderid: int = 0, timestamp_ms: int = FIXED_NOW_MS) -> list[KafkaRecord]:
    return [KafkaRecord("orders", 0, o, f"{key}{o}", ORDER % (orderid + o), timestamp_ms) for o in offsets]


class _Topic:
    """Partition 0 of ``orders`` retains ``records`` (its offsets ``[low, end)``); the group committed ``committed``.
    Answers as ``tools.reconcile.Broker`` does: every offset in a gap holds a record, and each asked offset's record
    is fingerprinted as the landing fingerprints it."""

    def __init__(self, records: list[KafkaRecord], committed: int | None) -> None:
        self.records = {record.offset: record for record in records}
        self.low, self.end = min(self.records), max(self.records) + 1
        self.committed_at = committed
        self.asked: list[int] = []

    def partitions(self, topic: str) -> list[int]:
        return [0]

    def retained(self, topic: str, partition: int) -> tuple[int, int]:
        return self.low, self.end

    def committed(self, group: str, topic: str, partitions: list[int]) -> dict[int, int | None]:
        return {0: self.committed_at}

    def records_in(self, topic: str, partition: int, gaps: list[tuple[int, int]]) -> set[int]:
        return {offset for first, last in gaps for offset in range(first, last + 1)}

    def fingerprints(self, topic: str, partition: int, offsets: list[int]) -> dict[int, str]:
        self.asked += offsets
        return {o: fingerprint(self.records[o]) for o in offsets if o in self.records}


def _run(
    lake: LocalLake, broker: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    from tools import reconcile as reconcile_cli

    monkeypatch.setattr(reconcile_cli, "open_lake", lambda settings: lake)
    code = reconcile_cli.run_reconcile(broker, load_settings({}), "orders", "orders", "g")  # type: ignore[arg-type]
    return code, capsys.readouterr().out


def _columns(printed: str) -> list[str]:
    """Partition 0's row of the table: partition, incarnation, retained (2 words), landed, dead, missing, ..."""
    return next(line.split() for line in printed.splitlines() if line.split()[:1] == ["0"])


def test_a_recreated_topic_whose_new_records_have_not_landed_is_not_reported_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The old life landed offsets 0-9. The topic is recreated (a fresh broker, an event hub replaced): its new life
    holds offsets 0-4, none landed yet. The ledger still names incarnation 0, whose files cover 0-4: compared by
    offset alone, every retained offset was in the lake exactly once. The broker's record at a fingerprinted offset
    says otherwise: the lake holds none of this life."""
    lake = LocalLake(tmp_path)
    handle_batch(context_for(SOURCES["orders"], lake), _orders(range(10)))
    new_life = _orders(range(5), key="n", orderid=10_000, timestamp_ms=FIXED_NOW_MS + 1)

    code, printed = _run(lake, _Topic(new_life, None), monkeypatch, capsys)  # the group never committed on it

    assert code == 0, printed  # nothing is lost: the processor has not read the new life yet
    assert _columns(printed)[1] == "1" and _columns(printed)[4:10] == ["0", "0", "0", "0", "5", "0"], printed
    assert "recreated: partition 0" in printed, printed
    assert printed.splitlines()[-1].startswith("result: the topic was recreated"), printed

    code, printed = _run(lake, _Topic(new_life, 3), monkeypatch, capsys)  # it did commit 3: 0-2 are lost
    assert code == 1 and "missing: partition 0 offsets 0-2 (3)" in printed and "NOT reconciled" in printed, printed

    code, printed = _run(lake, _Topic(_orders(range(10)), 10), monkeypatch, capsys)  # the same life: clean
    assert code == 0 and printed.endswith("result: every retained offset is in the lake exactly once\n"), printed


def test_a_new_lifes_records_that_have_not_landed_above_its_adopted_ones_are_not_counted_as_the_old_lifes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The old life landed 100-119; the new life's 0-99 landed as the old life (they touch no fingerprint) and
    its 100-129 have not landed yet: at 100-119 the lake holds the old life's records, not the broker's."""
    lake = LocalLake(tmp_path)
    context = context_for(SOURCES["orders"], lake)
    handle_batch(context, _orders(range(100, 120)))
    new = _orders(range(130), key="n", orderid=10_000, timestamp_ms=FIXED_NOW_MS + 1)
    for first, last in ((0, 50), (50, 100)):
        handle_batch(context, new[first:last])

    code, printed = _run(lake, _Topic(new, 100), monkeypatch, capsys)

    assert code == 0 and _columns(printed)[4:10] == ["100", "0", "0", "0", "30", "0"], printed
    assert "recreated: partition 0" in printed and "from offset 100" in printed, printed


def test_a_new_lifes_first_records_landed_before_the_restart_showed_are_no_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The old life's log started above 0 (retention, or the processor deployed later): it landed offsets 100-119.
    The topic is recreated: the new life's first batches (0-49, 50-99) touch no fingerprint and land as the old
    life, as the landing is designed to (``Ledger.landed_before_seen``); the restart shows at 100 and 100-129 land
    as incarnation 1. Every new-life record is in raw/ once; compared with incarnation 1's files only, 0-99 were
    missing."""
    lake = LocalLake(tmp_path)
    context = context_for(SOURCES["orders"], lake)
    handle_batch(context, _orders(range(100, 120)))
    new = _orders(range(130), key="n", orderid=10_000, timestamp_ms=FIXED_NOW_MS + 1)
    for first, last in ((0, 50), (50, 100), (100, 130)):
        handle_batch(context, new[first:last])
    identities = _new_life_identities(lake)
    assert identities == [(0, o) for o in range(100)] + [(1, o) for o in range(100, 130)]  # each landed once

    code, printed = _run(lake, _Topic(new, 130), monkeypatch, capsys)

    assert code == 0 and "missing:" not in printed, printed
    assert _columns(printed)[1] == "1" and _columns(printed)[4] == "130", printed

    other = _orders(range(130), key="x", orderid=20_000, timestamp_ms=FIXED_NOW_MS + 2)  # a third life, not landed
    code, printed = _run(lake, _Topic(other, None), monkeypatch, capsys)
    assert _columns(printed)[1:2] + _columns(printed)[4:10] == ["2", "0", "0", "0", "0", "130", "0"], printed


def _new_life_identities(lake: LocalLake) -> list[tuple[int, int]]:
    """(incarnation, offset) of every raw row of the new life's orders (order ids from 10,000)."""
    return sorted(
        (row["_incarnation"], row["_offset"])
        for path in lake.list_paths("raw/orders")
        for row in decode("parquet", lake.read(path))
        if row["orderid"] >= 10_000
    )


def _identity_rows(offsets: list[int]) -> bytes:
    sink = io.BytesIO()
    table = pa.table(
        {
            "_topic": ["orders"] * len(offsets),
            "_partition": [0] * len(offsets),
            "_incarnation": [0] * len(offsets),
            "_offset": offsets,
            "_event_time": pa.array([FIXED_NOW_MS] * len(offsets), pa.timestamp("ms", tz="UTC")),
        }
    )
    pq.write_table(table, sink)
    return sink.getvalue()


HOUR = "raw/orders/date=2026-11-24/hour=10"
FILE_A = f"{HOUR}/orders+0+i0+{0:020d}+{1:020d}.parquet"
FILE_B = f"{HOUR}/orders+0+i0+{2:020d}+{3:020d}.parquet"


class _CompactingLake(LocalLake):
    """Compaction moves a file while reconcile runs: ``between`` happens just before the second of the listings of
    raw/ and of the quarantine, whichever is second; ``hooks`` maps a listed prefix to what happens just before it."""

    between: Callable[[], object] | None = None
    hooks: dict[str, Callable[[], object]]
    listed: set[str]

    def list_paths(self, prefix: str) -> list[str]:
        hook = self.hooks.pop(prefix, None)
        if hook is not None:
            hook()
        both = {"raw/orders", quarantine_directory("orders")}
        if prefix in both:
            self.listed.add(prefix)
            if self.listed == both and self.between is not None:
                self.between()
                self.between = None
        return super().list_paths(prefix)


def _two_raw_files(tmp_path: Path) -> tuple[_CompactingLake, LocalLake]:
    lake = _CompactingLake(tmp_path)
    lake.hooks, lake.listed = {}, set()
    lake.write_atomic(FILE_A, _identity_rows([0, 1]))
    lake.write_atomic(FILE_B, _identity_rows([2, 3]))
    return lake, LocalLake(tmp_path)  # the second: compaction's own client


def test_a_file_quarantined_while_reconcile_runs_is_no_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Compaction moves a file between reconcile's listings of raw/ and of the quarantine. Listed quarantine first,
    then raw/, it was in neither: a gap. Listed raw/ first, it is in one or both (copied, then deleted)."""
    lake, compaction = _two_raw_files(tmp_path)
    lake.between = lambda: quarantine(compaction, "orders", FILE_B, "rows carry columns ['Date']")

    code, printed = _run(lake, _Topic(_orders(range(4)), 4), monkeypatch, capsys)

    assert lake.between is None and not lake.exists(FILE_B)
    assert code == 0 and "missing:" not in printed and "unreadable" not in printed, printed
    assert _columns(printed)[4:8] == ["4", "0", "0", "0"], printed  # landed (read in raw/), dead, missing, doubles


def test_a_file_being_quarantined_while_reconcile_runs_is_no_double(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Quarantine copies, then deletes: reconcile reading between the two finds the rows in raw/ and in the
    quarantine. Both are the one file (the copy names its ``raw_path``): counted once."""
    lake, compaction = _two_raw_files(tmp_path)
    held: list[str] = []
    monkeypatch.setattr(compaction, "delete", held.append)  # quarantine runs up to its delete, which waits
    quarantine(compaction, "orders", FILE_B, "rows carry columns ['Date']")
    lake.hooks = {"deadletter/orders": lambda: LocalLake.delete(compaction, held.pop())}  # raw/ was read: it lands

    code, printed = _run(lake, _Topic(_orders(range(4)), 4), monkeypatch, capsys)

    assert held == [] and not lake.exists(FILE_B)
    assert code == 0 and "double:" not in printed and "unreadable" not in printed, printed
    assert _columns(printed)[4:8] == ["4", "0", "0", "0"], printed  # still in raw/ when read: landed


def test_a_raw_file_gone_between_its_listing_and_its_read_is_not_unreadable_when_its_quarantined_copy_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Compaction moves a file after reconcile listed raw/ and before it read the file: the read fails, but the
    quarantine, listed after, holds the file's rows."""
    lake, compaction = _two_raw_files(tmp_path)
    real_read = LocalLake.read

    def read(path: str) -> bytes:
        if path == FILE_B and lake.exists(FILE_B):
            quarantine(compaction, "orders", FILE_B, "rows carry columns ['Date']")
        return real_read(lake, path)

    monkeypatch.setattr(lake, "read", read)

    code, printed = _run(lake, _Topic(_orders(range(4)), 4), monkeypatch, capsys)

    assert code == 0 and "unreadable" not in printed and "missing:" not in printed, printed
    assert _columns(printed)[4:8] == ["2", "2", "0", "0"], printed


def test_a_deleted_raw_file_shows_as_missing_also_where_an_entity_refused_a_records_update(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/datagen.md: a deleted raw file shows as missing. Offset 2's entity refused its update
    (``entity_rejected``: in raw/ and deadletter/ by design) and its raw file is deleted: the letter alone is no
    proof it is in raw/ (redrive only re-signals such letters from their raw rows: it never lands it again)."""
    lake = LocalLake(tmp_path)
    for first, last in ((0, 2), (2, 3), (3, 5)):  # offset 2 landed alone (a batch of one)
        handle_batch(context_for(SOURCES["orders"], lake), _orders(range(first, last)))
    row = {
        "_topic": "orders",
        "_partition": 0,
        "_incarnation": 0,
        "_offset": 2,
        "_key": "2",
        "_kafka_timestamp": FIXED_NOW_MS,
        "reason": "entity_rejected",
        "detail": "landed in raw/, but ...",
        "raw_base64": base64.b64encode(ORDER % 2).decode(),
        "dead_lettered_at": FIXED_NOW_MS,
    }
    letter = f"deadletter/orders/date=2026-11-24/hour=10/orders+0+i0+{2:020d}+{2:020d}.entity_rejected.jsonl.gz"
    lake.write_atomic(letter, formats.encode("jsonl", DEADLETTER_COLUMNS, [row], record_name="x"))
    code, printed = _run(lake, _Topic(_orders(range(5)), 5), monkeypatch, capsys)
    assert code == 0 and _columns(printed)[4:7] == ["5", "1", "0"], printed  # in raw/ and deadletter/: no double

    for path in lake.list_paths("raw/orders"):
        if f"+{2:020d}+{2:020d}." in path:
            lake.delete(path)  # deleted by hand, or lost
    code, printed = _run(lake, _Topic(_orders(range(5)), 5), monkeypatch, capsys)

    assert code == 1 and "missing: partition 0 offsets 2-2 (1)" in printed, printed
    assert _columns(printed)[4:7] == ["4", "0", "1"], printed


def _quarantined_orders(tmp_path: Path) -> tuple[LocalLake, str]:
    """Offsets 0-3 in raw/; offset 4 in a damaged file compaction quarantined: its path."""
    lake = LocalLake(tmp_path)
    directory = "raw/orders/date=2026-11-24/hour=10"
    lake.write_atomic(f"{directory}/a.parquet", _identity_rows([0, 1, 2, 3]))
    lake.write_atomic(f"{directory}/c.parquet", _identity_rows([4])[:20])
    return lake, quarantine(lake, "orders", f"{directory}/c.parquet", "cannot read raw file").path


def test_a_quarantined_file_whose_name_the_lake_refuses_is_named_unreadable_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An operator keeps a copy beside a quarantined file, as a file manager names copies, with its sidecar: reading
    the sidecar raised ``UnsafePath`` out of reconcile (a review proved it)."""
    lake, moved = _quarantined_orders(tmp_path)
    copy = tmp_path / moved.rpartition("/")[0] / "c (1).parquet.0000.quarantined"
    copy.write_bytes((tmp_path / moved).read_bytes())
    Path(f"{copy}.json").write_bytes((tmp_path / f"{moved}.json").read_bytes())

    code, printed = _run(lake, _Topic(_orders(range(5)), 5), monkeypatch, capsys)

    unreadable = [line for line in printed.splitlines() if line.startswith("unreadable")]
    assert code == 1 and _columns(printed)[4:7] == ["4", "0", "1"], printed  # landed, dead, missing (the damaged)
    assert len(unreadable) == 2 and any("c (1).parquet" in line for line in unreadable), printed
    assert printed.splitlines()[-1].startswith("result:"), printed


class _SidecarsGoneOnceListed(LocalLake):
    """Each sidecar is deleted just after the quarantine is listed (an operator cleaning up, the lifecycle rule)."""

    def list_paths(self, prefix: str) -> list[str]:
        listed = super().list_paths(prefix)
        for path in listed:
            if path.endswith(".quarantined.json"):
                self.delete(path)
        return listed


def test_a_sidecar_deleted_between_the_listing_and_its_read_is_no_reason_recorded_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, moved = _quarantined_orders(tmp_path)

    code, printed = _run(_SidecarsGoneOnceListed(tmp_path), _Topic(_orders(range(5)), 5), monkeypatch, capsys)

    assert code == 1 and _columns(printed)[4:7] == ["4", "0", "1"], printed
    assert f"{moved} (quarantined: no reason recorded" in printed, printed
    assert printed.splitlines()[-1].startswith("result:"), printed


def test_a_file_with_a_long_name_being_quarantined_while_reconcile_runs_is_counted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its quarantined copy's name is cut to fit the lake: the copy is matched to the raw file by its sidecar's
    ``raw_path``, not by its name, so the file read in raw/ and its copy are still the one file."""
    lake, compaction = _two_raw_files(tmp_path)
    long_b = f"{HOUR}/{'b' * 240}.parquet"
    lake.write_atomic(long_b, lake.read(FILE_B))
    lake.delete(FILE_B)
    held: list[str] = []
    monkeypatch.setattr(compaction, "delete", held.append)  # quarantine runs up to its delete, which waits
    moved = quarantine(compaction, "orders", long_b, "rows carry columns ['Date']")
    assert long_b.rpartition("/")[2] not in moved.path  # cut
    lake.hooks = {"deadletter/orders": lambda: LocalLake.delete(compaction, held.pop())}  # raw/ was read: it lands

    code, printed = _run(lake, _Topic(_orders(range(4)), 4), monkeypatch, capsys)

    assert code == 0 and "double:" not in printed and "unreadable" not in printed, printed
    assert _columns(printed)[4:8] == ["4", "0", "0", "0"], printed
    assert f"{long_b} -> {moved.path}" in printed, printed


def test_a_new_lifes_records_landed_below_where_its_restart_showed_after_it_showed_are_no_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As above, but the new life's group started at 50: 50-99 land as the old life, the restart shows at 100, then
    a rewind to 0 lands 0-49 as incarnation 1, below where the restart showed. The life's lowest row is then 0, so
    inferring the restart point from it adopted nothing and reported 50-99 missing; the ledger stores it."""
    lake = LocalLake(tmp_path)
    context = context_for(SOURCES["orders"], lake)
    handle_batch(context, _orders(range(100, 120)))
    new = _orders(range(130), key="n", orderid=10_000, timestamp_ms=FIXED_NOW_MS + 1)
    for first, last in ((50, 100), (100, 130), (0, 130), (20, 130)):
        handle_batch(context, new[first:last])
    identities = _new_life_identities(lake)
    assert identities == sorted([(0, o) for o in range(50, 100)] + [(1, o) for o in [*range(50), *range(100, 130)]])

    code, printed = _run(lake, _Topic(new, 130), monkeypatch, capsys)

    assert code == 0 and "missing:" not in printed and "doubled" not in printed, printed
    assert _columns(printed)[1] == "1" and _columns(printed)[4] == "130", printed


def test_with_no_committed_offset_a_hole_below_landed_rows_is_a_gap_not_pending() -> None:
    """Review 15: a group with no committed offset on a partition (expired after 7 days empty, or renamed) made
    every missing offset pending, a hole below rows that landed included: reported clean, exit 0."""
    landed = [Landed("t", 0, 0, offset, "raw/a") for offset in (0, 1, 4, 5)]
    (report,) = reconcile({TopicPartition("t", 0): (0, 8)}, landed, {}, {TopicPartition("t", 0): None})
    assert (report.gaps, report.pending) == ([(2, 3)], 2)
    (nothing,) = reconcile({TopicPartition("t", 0): (0, 3)}, [], {}, {TopicPartition("t", 0): None})
    assert (nothing.gaps, nothing.pending) == ([], 3), "nothing landed yet: all of it is pending"


def test_offsets_the_broker_deleted_before_the_processor_reached_them_are_reported_lost() -> None:
    """Review 15: the group committed 50, the broker retains from 100 (retention), the lake landed up to 49 and 60:
    50-59 and 61-99 can never land (the group resets to 100), and the report said clean with 50 pending."""
    landed = [Landed("t", 0, 0, offset, "raw/a") for offset in [*range(50), 60]]
    (report,) = reconcile({TopicPartition("t", 0): (100, 110)}, landed, {}, {TopicPartition("t", 0): 50})
    assert report.expired == [(50, 59), (61, 99)] and not report.clean
    table = report_table("s", "t", [report])
    assert "lost to retention: partition 0 offsets 50-59 (10)" in table and "NOT reconciled" in table


def test_a_topic_recreated_under_a_consumer_that_resumed_at_its_old_position_is_not_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review 17: a live librdkafka consumer can commit its old position into a recreated topic, so the processor
    resumes there and never reads the new life's records below it; the landing sees nothing (the batch follows the
    ledger). Reconcile matched the rows above by fingerprint, ignored those that differ below, counted the old
    life's rows at 0-49 as the new records and said clean (exit 0)."""
    lake = LocalLake(tmp_path)
    context = context_for(SOURCES["orders"], lake)
    handle_batch(context, _orders(range(0, 25)))
    handle_batch(context, _orders(range(25, 50)))
    new_life = _orders(range(0, 70), key="n", orderid=10_000, timestamp_ms=FIXED_NOW_MS + 60_000)
    handle_batch(context, new_life[50:70])
    code, printed = _run(lake, _Topic(new_life, 70), monkeypatch, capsys)
    assert code == 1 and "result: NOT reconciled" in printed
    assert "holds other records below offset 50" in printed
    assert "missing: partition 0 offsets 0-49 (50)" in printed


@pytest.mark.parametrize("resumed_by", ["the same process", "a new process"])
def test_records_retention_deleted_before_the_processor_reached_them_stay_reported_after_it_reset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], resumed_by: str
) -> None:
    """Review 17: retention deleted 0-99 while the processor was stalled at 50; its consumer reset to the log start
    (100) and committed 110. Reported while the group was below the log start, then clean (exit 0): the ledger took
    the jump for offsets with no record (same process), or kept a hole nobody read (new process)."""
    lake = LocalLake(tmp_path)
    context = context_for(SOURCES["orders"], lake)
    handle_batch(context, _orders(range(0, 25)))
    handle_batch(context, _orders(range(25, 50)))
    retained = [record for record in _orders(range(0, 110)) if record.offset >= 100]
    code, printed = _run(lake, _Topic(retained, 50), monkeypatch, capsys)
    assert code == 1 and "lost to retention: partition 0 offsets 50-99 (50)" in printed
    if resumed_by == "a new process":
        context = context_for(SOURCES["orders"], LocalLake(tmp_path))
    handle_batch(context, _orders(range(100, 110)))
    code, printed = _run(lake, _Topic(retained, 110), monkeypatch, capsys)
    assert code == 1 and "result: NOT reconciled" in printed
    assert "not retained: partition 0 offsets 50-99 (50)" in printed


class _TransactionalTopic(_Topic):
    """A topic whose commit markers hold no record: ``records_in`` answers only offsets that hold one, as the broker
    does."""

    def records_in(self, topic: str, partition: int, gaps: list[tuple[int, int]]) -> set[int]:
        return {offset for first, last in gaps for offset in range(first, last + 1) if offset in self.records}


def test_a_transactional_topic_idle_past_retention_is_reconciled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review 17: each transaction (5 records) ends with a commit marker, which the consumer passes over between
    batches. Once retention deleted all but the last transaction, the markers below it made the partition NOT
    reconciled for good, although every record is in the lake once. One-offset ranges are named, not missing."""
    lake = LocalLake(tmp_path)
    context = context_for(SOURCES["orders"], lake)
    for start in range(0, 24, 6):  # records 6t..6t+4, the marker at 6t+5
        handle_batch(context, _orders(range(start, start + 5)))
    code, printed = _run(lake, _TransactionalTopic(_orders(range(18, 23)), 24), monkeypatch, capsys)
    assert code == 0 and "result: every retained offset is in the lake exactly once" in printed
    assert "not retained, one offset each: partition 0 offsets 5, 11, 17" in printed


def test_commit_markers_after_a_retention_reset_do_not_push_the_loss_out_of_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review 17: the retention reset above (50-99 never read), then nine transactions each followed by a marker:
    the markers took the ledger's passed-over slots and the loss was reported clean."""
    lake = LocalLake(tmp_path)
    context = context_for(SOURCES["orders"], lake)
    handle_batch(context, _orders(range(0, 25)))
    handle_batch(context, _orders(range(25, 50)))
    start = 100
    for _ in range(9):
        handle_batch(context, _orders(range(start, start + 5)))
        start += 6
    retained = [record for record in _orders(range(0, start)) if record.offset >= 100 and record.offset % 6 != 3]
    code, printed = _run(lake, _TransactionalTopic(retained, start), monkeypatch, capsys)
    assert code == 1 and "not retained: partition 0 offsets 50-99 (50)" in printed
