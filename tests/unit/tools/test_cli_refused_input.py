"""A bad setting or argument is one line and exit 2, never a traceback nor a run on other settings than meant
(a review's findings, each command as the reviewer ran it)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from tests.unit.tools.no_settings import NO_SETTINGS

KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
WINDOW = ["--from", "2026-11-24T10:00Z", "--to", "2026-11-24T12:00Z"]
# Each tool, as a lake setting reaches it, and its name on its one line
TOOLS: dict[str, tuple[list[str], str]] = {
    "redrive": (["users", "--dry-run"], "python -m tools.redrive"),
    "reprocess": (["users", *WINDOW], "python -m tools.reprocess"),
    "migrate_state": (["--export", "state.json"], "migrate_state"),
}
WITH_A_LAKE = {  # the tools that take --lake, and their arguments
    "redrive": ["clickstream", "--dry-run"],
    "reprocess": ["clickstream", *WINDOW],
    "reconcile": ["clickstream", "--broker", "127.0.0.1:1"],
    "query": ["--drift", "clickstream"],
}


def _main(tool: str) -> Callable[[list[str]], int]:
    module = importlib.import_module(f"tools.{tool}")
    return cast("Callable[[list[str]], int]", module.cli if tool == "migrate_state" else module.main)


@pytest.mark.parametrize("tool", sorted(TOOLS))
@pytest.mark.parametrize("connection_string", ["garbage", f"garbage;AccountKey={KEY}"], ids=["garbage", "with a key"])
def test_a_malformed_lake_connection_string_is_one_line_naming_it_and_exit_2(
    tool: str,
    connection_string: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """It was the storage SDK's ``ValueError: Connection string is either blank or malformed.`` as a traceback."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAKE_KIND", "blob")
    monkeypatch.setenv("LAKE_CONNECTION_STRING", connection_string)
    arguments, prog = TOOLS[tool]
    assert _main(tool)([*arguments, "--settings", NO_SETTINGS]) == 2
    printed = capsys.readouterr()
    (line,) = printed.err.splitlines()
    assert line.startswith(f"{prog}: invalid settings: LAKE_CONNECTION_STRING: malformed: "), line
    assert KEY not in printed.err + printed.out and "garbage" not in line


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_an_account_url_that_is_not_a_url_is_one_line_naming_it_and_exit_2(
    tool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """LAKE_KIND=adls LAKE_ACCOUNT_URL=garbage: forty lines of DefaultAzureCredential's attempts, then exit 4."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAKE_KIND", "adls")
    monkeypatch.setenv("LAKE_ACCOUNT_URL", "garbage")
    monkeypatch.delenv("LAKE_CONNECTION_STRING", raising=False)
    arguments, prog = TOOLS[tool]
    assert _main(tool)([*arguments, "--settings", NO_SETTINGS]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{prog}: invalid settings: LAKE_ACCOUNT_URL must be an https:// URL with a host name")
    assert line.endswith("got 'garbage'"), line


@pytest.mark.parametrize("tool", sorted(WITH_A_LAKE))
def test_a_settings_file_named_that_does_not_exist_is_one_line_and_exit_2(
    tool: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped --settings was read as no file: the tool ran on the environment's settings and exited 0."""
    (tmp_path / "lake").mkdir()
    typo = tmp_path / "local.setings.json"
    code = _main(tool)([*WITH_A_LAKE[tool], "--lake", str(tmp_path / "lake"), "--settings", str(typo)])
    printed = capsys.readouterr()
    assert (code, printed.out) == (2, "")
    assert printed.err.splitlines() == [
        f"python -m tools.{tool}: --settings {typo} does not exist (without --settings, local.settings.json is read "
        "when there is one); nothing was read or written"
    ]
    assert [path.name for path in (tmp_path / "lake").iterdir()] == []


def test_migrate_state_refuses_a_settings_file_named_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "nonexistent.json"
    assert _main("migrate_state")(["--settings", str(typo), "--export", str(tmp_path / "state.json")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"migrate_state: --settings {typo} does not exist (without --settings, local.settings.json is read when "
        "there is one); nothing was read or written"
    ]


def test_without_settings_an_absent_local_settings_json_is_no_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default may be absent (the environment alone is read), given as --settings' default or by name."""
    from tools.cli import DEFAULT_SETTINGS_FILE, tool_environment

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORDERS_TOPIC", "orders-from-the-environment")
    (tmp_path / "lake").mkdir()
    for settings in (DEFAULT_SETTINGS_FILE, Path("local.settings.json"), None):
        assert tool_environment(settings, lake=Path("lake"))["ORDERS_TOPIC"] == "orders-from-the-environment"


@pytest.mark.parametrize("brokers", ["127.0.0.1:abc", "127.0.0.1"])
def test_a_broker_list_entry_that_is_not_host_port_is_one_line_and_exit_2(
    brokers: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """KAFKA_BROKER_LIST=127.0.0.1:abc was taken: a dry run that reaches no broker exited 0."""
    from tools import redrive

    monkeypatch.setenv("KAFKA_BROKER_LIST", brokers)
    assert redrive.main(["users", "--dry-run", "--lake", str(tmp_path), "--settings", NO_SETTINGS]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("python -m tools.redrive: invalid settings: KAFKA_BROKER_LIST must be HOST:PORT entries")
    assert line.endswith(f"got {brokers!r}"), line


@pytest.mark.parametrize("broker", ["127.0.0.1:65536", "127.0.0.1:", "[::1]"])
def test_a_broker_argument_that_is_not_host_port_is_the_parsers_error(
    broker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools import redrive

    with pytest.raises(SystemExit) as exited:
        redrive.main(["users", "--dry-run", "--broker", broker, "--settings", NO_SETTINGS])
    assert exited.value.code == 2
    assert "argument --broker" in capsys.readouterr().err


def test_ipv6_and_event_hubs_brokers_are_host_port() -> None:
    from tools.cli import broker_address

    for broker in ("[::1]:9092", "evhns-x1y2.servicebus.windows.net:9093", "localhost:19092"):
        assert broker_address(broker) == broker


def test_reconcile_apply_without_a_time_to_move_to_is_the_parsers_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--apply`` alone was ignored: the comparison ran and exited 0, and the operator took the group as moved."""
    from tools import reconcile

    with pytest.raises(SystemExit) as exited:
        reconcile.main(["clickstream", "--apply", "--lake", str(tmp_path), "--settings", NO_SETTINGS])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "python -m tools.reconcile: error: --apply needs --move-group-to-time TIME (it applies the move; without one "
        "nothing would move)"
    )


def test_a_refused_datagen_config_is_one_line_and_exit_2_from_every_tool(tmp_path: Path) -> None:
    """A config in sources/ that the code refuses is refused while shared.sources is imported, before a tool's own
    error handling runs: every tool but two (--help included) ended in a DatagenConfigError traceback, exit 1."""
    import shutil
    import subprocess
    import sys

    from tests.conftest import ROOT

    copy = tmp_path / "repo"
    skipped = shutil.ignore_patterns(".*", "node_modules", "__pycache__", "tests", "bench", "docs", "terraform")
    shutil.copytree(ROOT, copy, ignore=skipped)
    (copy / "sources" / "typo.json").write_text('{"name": "typo", "quickstart": "nope", "config": {}}')
    for tool in ("redrive", "reconcile", "reprocess", "migrate_state", "docs"):
        ran = subprocess.run(
            [sys.executable, "-m", f"tools.{tool}", "--help"], cwd=copy, capture_output=True, text=True, timeout=120
        )
        assert ran.returncode == 2, (tool, ran.stderr[-1500:])
        assert ran.stderr.splitlines() == [
            'error: sources/typo.json: quickstart: unknown top-level key; a connector is {"name": ..., "config": {...}}'
        ], tool


@pytest.mark.parametrize("kind", ["device", "fifo", "large", "nested"])
def test_a_settings_or_results_file_that_is_no_small_regular_file_is_one_line_not_read_whole(
    tmp_path: Path, kind: str
) -> None:
    """--settings /dev/zero was read whole (a MemoryError under a limit, else all of memory), a FIFO blocked for
    ever; so did tools.cost --results. Only a regular file of at most 8 MiB is read. JSON nested past the parser's
    depth was a ``RecursionError`` traceback."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    path = Path("/dev/zero") if kind == "device" else tmp_path / "settings.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "large":
        path.write_bytes(b" " * (9 << 20))
    elif kind == "nested":
        path.write_bytes(b"[" * 100_000)
    for command in (
        ["tools.query", "--settings", str(path), "--drift", "users"],
        ["tools.cost", "--results", str(path)],
    ):
        ran = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert ran.returncode == 2, (command, ran.stderr[-1000:])
        (line,) = ran.stderr.splitlines()
        why = {"large": "larger than 8,388,608 bytes", "nested": "not JSON: depth limit exceeded"}
        assert why.get(kind, "not a regular file") in line, line


@pytest.mark.parametrize(
    ("tool", "argv"),
    [
        ("reconcile", ["clickstream", "--move-group-to-time", "1026-11-27T10:00:00Z"]),
        ("reprocess", ["clickstream", "--from", "0001-01-01T00:30+01:00", "--to", "0001-01-01T03:00Z"]),
        ("reprocess", ["clickstream", "--from", "2026-11-27T10:00Z", "--to", "9999-12-31T23:30-01:00"]),
        ("redrive", ["users", "--dry-run", "--since", "not-a-time"]),
    ],
    ids=["reconcile-before-1970", "reprocess-year-0", "reprocess-year-10000", "redrive-not-iso"],
)
def test_a_time_outside_1970_to_9999_or_not_iso_is_the_parsers_error(
    tool: str, argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review 2026-12-07: a typo'd year before 1970 reached the broker as a negative ListOffsets time (-1 and -2
    are Kafka's latest and earliest) and was reported as a broker failure, every run; reprocess windows reaching
    year 0 or 10000 were a ValueError traceback."""
    import importlib

    module = importlib.import_module(f"tools.{tool}")
    with pytest.raises(SystemExit) as exited:
        module.main([*argv, "--lake", str(tmp_path), "--settings", NO_SETTINGS])
    assert exited.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert "is not from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z" in last or "not an ISO time" in last, last
