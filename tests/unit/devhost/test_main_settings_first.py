"""``devhost start`` refuses bad settings and options before it waits for a broker or starts anything (a review's
findings): one line, exit 2, at once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from devhost.services.processes import free_port


@pytest.fixture
def no_broker_waited_for(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The addresses the host waited for; none answers (as a port nothing listens on, without the 15 s)."""
    import devhost.runtime.host as host_module
    from devhost.services.broker import BrokerError

    waited: list[str] = []

    def nobody_answers(settings: dict[str, Any], timeout: float) -> None:
        waited.append(settings["bootstrap.servers"])
        raise BrokerError(f"broker {settings['bootstrap.servers']} did not answer in {timeout:.0f}s")

    monkeypatch.setattr(host_module, "wait_for_metadata", nobody_answers)
    for name in ("KAFKA_BROKER_LIST", "KAFKA_SECURITY_PROTOCOL", "LAKE_KIND", "LAKE_CONNECTION_STRING"):
        monkeypatch.delenv(name, raising=False)
    return waited


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    path = tmp_path / "local.settings.json"
    path.write_text('{"Values": {}}', encoding="utf-8")
    return path


def _start(settings: Path, *arguments: str) -> int:
    from devhost.__main__ import main

    return main(["start", "--settings", str(settings), "--port", str(free_port()), "--duration", "1", *arguments])


def test_a_bad_setting_is_refused_before_the_broker_is_waited_for(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    settings_file: Path,
    no_broker_waited_for: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """MAX_RECORD_BYTES=abc with --broker 127.0.0.1:1: 15 s, then "no broker answered", exit 1; never the setting."""
    monkeypatch.setenv("MAX_RECORD_BYTES", "abc")
    started = time.monotonic()
    assert _start(settings_file, "--broker", "127.0.0.1:1", "--lake", str(tmp_path / "lake")) == 2
    assert time.monotonic() - started < 10
    assert capsys.readouterr().err.splitlines() == [
        "devhost: invalid settings: MAX_RECORD_BYTES: Input should be a valid integer, unable to parse string as an "
        "integer (got 'abc')"
    ]
    assert no_broker_waited_for == []


def test_a_bad_source_setting_is_refused_before_the_broker_is_waited_for(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    settings_file: Path,
    no_broker_waited_for: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("USERS_FORMAT", "csv")
    assert _start(settings_file, "--broker", "127.0.0.1:1", "--lake", str(tmp_path / "lake")) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("devhost: invalid settings of source 'users': USERS_FORMAT: ")
    assert no_broker_waited_for == []


def test_plaintext_to_a_broker_off_this_machine_is_refused_before_connecting(
    tmp_path: Path, settings_file: Path, no_broker_waited_for: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """--broker 10.1.2.3:9092 tried PLAINTEXT (no TLS, no authentication) to a remote host for 15 s."""
    assert _start(settings_file, "--broker", "10.1.2.3:9092", "--lake", str(tmp_path / "lake")) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("devhost: invalid settings: KAFKA_SECURITY_PROTOCOL=PLAINTEXT (no TLS, no authentication)")
    assert line.endswith("names 10.1.2.3: use SASL_SSL"), line
    assert no_broker_waited_for == []


def test_a_malformed_lake_connection_string_is_refused_at_start_without_its_key(
    monkeypatch: pytest.MonkeyPatch,
    settings_file: Path,
    no_broker_waited_for: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The host ran with every batch failing as infrastructure, and exited 0."""
    monkeypatch.setenv("LAKE_KIND", "blob")
    monkeypatch.setenv("LAKE_CONNECTION_STRING", "garbage;AccountKey=S3CRETKEY")
    assert _start(settings_file, "--broker", "127.0.0.1:1") == 2
    printed = capsys.readouterr()
    (line,) = printed.err.splitlines()
    assert line.startswith("devhost: invalid settings: LAKE_CONNECTION_STRING: malformed: ")
    assert "S3CRETKEY" not in printed.err + printed.out
    assert no_broker_waited_for == []


def test_a_good_setting_still_waits_for_the_broker_it_names(
    tmp_path: Path, settings_file: Path, no_broker_waited_for: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _start(settings_file, "--broker", "127.0.0.1:1", "--lake", str(tmp_path / "lake")) == 1
    assert no_broker_waited_for == ["127.0.0.1:1"]
    assert capsys.readouterr().err.startswith("devhost: no broker answered at 127.0.0.1:1 (--broker)")


@pytest.mark.parametrize("where", ["lake", "lake/below"])
def test_a_lake_that_is_a_file_is_one_line_and_exit_2(
    where: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--lake <a regular file> ran with tracebacks and exited 0."""
    import devhost.runtime.host as host_module

    ran: list[Any] = []
    monkeypatch.setattr(host_module.LocalHost, "run", lambda host: ran.append(host) or 0)
    (tmp_path / "lake").write_text("not a lake")
    assert _start(tmp_path / "unused.json", "--broker", "embedded", "--lake", str(tmp_path / where)) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"devhost: --lake {tmp_path / where}"), line
    assert f"{tmp_path / 'lake'} is not a directory" in line
    assert ran == []


def test_a_lake_directory_to_be_created_is_taken(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import devhost.runtime.host as host_module

    ran: list[Any] = []
    monkeypatch.setattr(host_module.LocalHost, "run", lambda host: ran.append(host.options.lake) or 0)
    for lake in (tmp_path, tmp_path / "new" / "lake"):
        assert _start(tmp_path / "unused.json", "--broker", "embedded", "--lake", str(lake)) == 0
    assert ran == [tmp_path, tmp_path / "new" / "lake"]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("broker", ["127.0.0.1:99999", "127.0.0.1:", "127.0.0.1:abc"])
def test_a_broker_that_is_not_host_port_is_the_parsers_error(broker: str, capsys: pytest.CaptureFixture[str]) -> None:
    from devhost.__main__ import main

    with pytest.raises(SystemExit) as exited:
        main(["start", "--broker", broker])
    assert exited.value.code == 2
    assert "expected 'embedded' or HOST:PORT" in capsys.readouterr().err
