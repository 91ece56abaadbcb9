"""The command line: a broker that does not answer, a bad setting, a port in use are one line with what to do, and
a non-zero exit; bad options are the parser's."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from shared.settings import load_settings, load_source_settings


def test_no_broker_at_the_settings_address_is_one_line_with_a_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import devhost.runtime.host as host_module
    from devhost.__main__ import main
    from devhost.services.broker import BrokerError

    def nobody_answers(settings: dict[str, Any], timeout: float) -> None:  # as wait_for_metadata after `timeout`
        raise BrokerError(
            f"broker {settings['bootstrap.servers']} did not answer in {timeout:.0f}s: Connection refused"
        )

    monkeypatch.setattr(host_module, "wait_for_metadata", nobody_answers)
    monkeypatch.setenv("KAFKA_BROKER_LIST", "127.0.0.1:9092")
    code = main(["start", "--lake", str(tmp_path / "lake")])
    error = capsys.readouterr().err
    assert code != 0
    assert error.splitlines() == [
        "devhost: no broker answered at 127.0.0.1:9092 (KAFKA_BROKER_LIST) in 15s: "
        "start one, or run with --broker embedded --lake .lake (what make run does)"
    ]


@pytest.mark.parametrize(
    ("problem", "line"),
    [
        (
            partial(load_settings, {"STATE_BUCKETS": "0"}),
            "devhost: invalid settings: STATE_BUCKETS: Input should be greater than or equal to 1 (got '0')",
        ),
        (
            partial(
                load_source_settings, "clickstream", {"CLICKSTREAM_FORMAT": "csv", "CLICKSTREAM_LAG_THRESHOLD": "0"}
            ),
            "devhost: invalid settings of source 'clickstream': CLICKSTREAM_FORMAT: Input should be 'parquet', "
            "'avro' or 'jsonl' (got 'csv'); CLICKSTREAM_LAG_THRESHOLD: Input should be greater than or equal to 1 "
            "(got '0')",
        ),
    ],
    ids=["a global setting", "a source's settings"],
)
def test_a_bad_app_setting_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str], problem: Any, line: str
) -> None:
    """Settings are read when function_app is imported (after the broker started): a pydantic traceback before."""
    import devhost.runtime.host as host_module
    from devhost.__main__ import main

    def run(_host: Any) -> int:
        problem()
        return 0

    monkeypatch.setattr(host_module.LocalHost, "run", run)
    assert main(["start", "--lake", str(tmp_path / "lake")]) == 2
    assert capsys.readouterr().err.splitlines() == [line]


def _start_embedded(tmp_path: Path, settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m devhost start`` with the embedded broker, as a newcomer runs it, with ``settings`` set."""
    from tests.conftest import ROOT

    return subprocess.run(
        [sys.executable, "-m", "devhost", "start", "--broker", "embedded", "--lake", str(tmp_path / "lake")],
        cwd=ROOT,
        env=os.environ | settings,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_bad_app_setting_is_refused_before_the_embedded_broker_is_started(tmp_path: Path) -> None:
    """End to end, as a newcomer runs it: one line, exit 2. The settings are checked before anything is started
    (the broker was started first, then stopped, once the app read them)."""
    done = _start_embedded(tmp_path, {"STATE_BUCKETS": "0"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "devhost: invalid settings: STATE_BUCKETS: Input should be greater than or equal to 1 (got '0')"
    ]
    assert "embedded broker at" not in done.stdout


def test_a_schedule_ncrontab_refuses_stops_the_host_at_once_with_one_line_and_exit_2(tmp_path: Path) -> None:
    """Weekday 8 has six fields of the right form but is outside NCrontab's ranges: it stopped the host with exit 1
    (a service failure) once the consumers had started; the settings now refuse it, naming the setting."""
    done = _start_embedded(tmp_path, {"CLICKSTREAM_GENERATOR_SCHEDULE": "0 0 0 * * 8"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "devhost: invalid settings of source 'clickstream': CLICKSTREAM_GENERATOR_SCHEDULE: '0 0 0 * * 8': "
        "day of week: '8' is outside 0-6"
    ]
    assert "listening on" not in done.stdout


def test_a_schedule_that_never_fires_stops_the_host_at_once_naming_its_timer(tmp_path: Path) -> None:
    """The 31st of February parses: its timer's thread died once running ("schedule never fires"), and the host
    ran on and exited 0 without that generator (a review's case). The source's settings refuse it now, naming the
    setting, as they do in Azure, where the Functions host takes it and the timer never runs."""
    done = _start_embedded(tmp_path, {"CLICKSTREAM_GENERATOR_SCHEDULE": "0 0 0 31 2 *"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "devhost: invalid settings of source 'clickstream': CLICKSTREAM_GENERATOR_SCHEDULE: '0 0 0 31 2 *':"
        " schedule never fires"
    ]


@pytest.mark.parametrize(
    ("host_json", "complaint"),
    [
        ('{"version": "2.0",}', "not JSON"),
        ('["version"]', "must be a JSON object, not list"),
        ('{"version": "2.0", "extensions": []}', "'extensions' must be an object, not []"),
        ('{"version": "2.0", "extensions": {"kafka": null}}', "'extensions.kafka' must be an object, not null"),
    ],
)
def test_a_host_json_that_is_not_an_object_of_objects_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], host_json: str, complaint: str
) -> None:
    """JSONDecodeError and AttributeError tracebacks, exit 1 (a review's cases); the settings file is read alike."""
    from devhost.__main__ import main

    path = tmp_path / "host.json"
    path.write_text(host_json)
    monkeypatch.setenv("DEVHOST_HOST_JSON", str(path))
    assert main(["start", "--lake", str(tmp_path / "lake"), "--settings", str(tmp_path / "host.json")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"devhost: {path}: ") and complaint in line


def test_a_settings_file_that_is_a_directory_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from devhost.__main__ import main

    assert main(["start", "--lake", str(tmp_path / "lake"), "--settings", str(tmp_path)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"devhost: {tmp_path}: cannot be read: not a regular file"]


def _line_saying(host: subprocess.Popen[str], words: str, timeout: float = 60) -> str:
    """The first line of the host's output holding ``words``; the last line read if none did in ``timeout`` s."""
    import time

    assert host.stdout is not None
    line, deadline = "", time.monotonic() + timeout
    while words not in line and time.monotonic() < deadline and host.poll() is None:
        line = host.stdout.readline()  # returns per line
    return line


def test_sigterm_while_starting_stops_the_embedded_broker(tmp_path: Path) -> None:
    """SIGTERM's default action ended the host before its stack ran: the broker it had started kept listening (a
    review's case). It unwinds as Ctrl-C does now: one line, exit 130, and the broker is gone."""
    import signal
    import socket

    from tests.conftest import ROOT

    command = [sys.executable, "-m", "devhost", "start", "--broker", "embedded", "--lake", str(tmp_path / "lake")]
    host = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        announced = _line_saying(host, "embedded broker at")
        assert "embedded broker at" in announced, "the host never announced its broker"
        host.send_signal(signal.SIGTERM)
        code = host.wait(timeout=60)
    finally:
        host.kill()
        host.wait()
    assert code == 130 and host.stderr is not None and "devhost: stopped while starting" in host.stderr.read()
    address, port = announced.split("embedded broker at ")[1].split()[0].rsplit(":", 1)
    with pytest.raises(OSError), socket.create_connection((address, int(port)), timeout=5):
        pass


def test_ctrl_c_right_after_listening_on_is_an_ordinary_stop(tmp_path: Path) -> None:
    """`listening on` promised a running host, but Ctrl-C while its runners and worker processes started unwound the
    start (exit 130, no summary): a harness that stops a host once it listens got that at random. The line now
    comes after the host takes Ctrl-C: a stop there is a run's stop, exit 0 with the summary."""
    import signal

    from tests.conftest import ROOT

    lake = str(tmp_path / "lake")
    command = [sys.executable, "-m", "devhost", "start", "--broker", "embedded", "--lake", lake, "--workers", "3"]
    host = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "listening on" in _line_saying(host, "listening on"), "the host never said it was listening"
        host.send_signal(signal.SIGINT)
        out, err = host.communicate(timeout=60)
    finally:
        host.kill()
        host.wait()
    assert host.returncode == 0, err
    assert "stopped while starting" not in err and "devhost: stopped with an error" not in out
    assert "invocations" in out and "process_clickstream" in out  # the exit summary, printed after the line


def _wait_for_a_worker_process(host_pid: int, timeout: float = 60) -> bool:
    """True once a child of ``host_pid`` runs multiprocessing's spawn (a worker starting), read from /proc."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                if parent == host_pid and b"spawn_main" in (stat.parent / "cmdline").read_bytes():
                    return True
            except (OSError, IndexError, ValueError):  # the process ended while it was read
                continue
        time.sleep(0.01)  # a poll's interval: the worker is looked for again until the deadline
    return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the worker processes in /proc")
def test_ctrl_c_to_the_whole_process_group_reaches_only_the_host(tmp_path: Path) -> None:
    """A terminal's Ctrl-C goes to its whole foreground group. It also killed the embedded broker at once (the host
    then drained against a dead broker: a thousand `Connection refused` lines, its final commits failed) and the
    worker processes still importing the app (no report from them, nothing said). The host is the only one that
    takes it now: every worker reports, the broker stays up until the host stops it."""
    import os
    import signal

    from tests.conftest import ROOT

    lake = str(tmp_path / "lake")
    command = [sys.executable, "-m", "devhost", "start", "--broker", "embedded", "--lake", lake, "--workers", "3"]
    host = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert "listening on" in _line_saying(host, "listening on"), "the host never said it was listening"
        assert _wait_for_a_worker_process(host.pid), "no worker process started"
        os.killpg(host.pid, signal.SIGINT)  # while that worker starts: it imports the app for a second or two
        out, err = host.communicate(timeout=90)
    finally:
        host.kill()
        host.wait()
    assert host.returncode == 0, out[-2000:] + err[-2000:]
    assert "Connection refused" not in out + err
    assert all(f"worker {number}: process_clickstream=" in out for number in range(3)), out[-2000:]


def test_a_port_in_use_is_one_line_naming_it_and_nothing_is_started(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was a 53-line OSError traceback, after the broker had been started."""
    import socket

    from devhost.__main__ import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["start", "--broker", "embedded", "--lake", str(tmp_path / "lake"), "--port", str(port)])
    out, err = capsys.readouterr()
    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith(f"devhost: cannot listen on 127.0.0.1:{port} (") and "--port" in line
    assert "embedded broker" not in out  # checked before anything was started


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--partitions", "0"], "argument --partitions: expected a positive integer, got '0'"),
        (["--partitions", "-1"], "argument --partitions: expected a positive integer, got '-1'"),
        (["--partitions", "101"], "argument --partitions: expected at most 100 (an event hub's most on Premium)"),
        (["--partitions", "2147483648"], "argument --partitions: expected at most 100"),  # an OverflowError traceback
        (["--workers", "33"], "argument --workers: expected at most 32 (each is a process holding the app)"),
        (["--partitions", "four"], "argument --partitions: expected a positive integer, got 'four'"),
        (["--port", "0"], "argument --port: expected a positive integer, got '0'"),
        (["--port", "70000"], "argument --port: expected a TCP port, 1 to 65535, got '70000'"),
        (["--log-level", "verbose"], "argument --log-level: invalid choice: 'VERBOSE'"),
        (["--duration", "nan"], "argument --duration: expected a positive, finite number of seconds, got 'nan'"),
        (["--duration", "0"], "argument --duration: expected a positive, finite number of seconds, got '0'"),
        (["--duration", "soon"], "argument --duration: expected a number of seconds, got 'soon'"),
    ],
)
def test_bad_options_are_refused_by_the_parser(
    arguments: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--partitions 0`` was taken (every generator then timed out); ``--log-level verbose`` raised ValueError."""
    from devhost.__main__ import main

    with pytest.raises(SystemExit) as raised:
        main(["start", *arguments])
    assert raised.value.code == 2
    assert complaint in capsys.readouterr().err


def test_the_log_level_is_taken_in_any_case() -> None:
    from devhost.__main__ import parser

    assert parser().parse_args(["start", "--log-level", "debug"]).log_level == "DEBUG"


@pytest.mark.parametrize("workers", ["0", "-3"])
def test_workers_below_one_are_refused_as_partitions_are(workers: str) -> None:
    from devhost.__main__ import parser

    with pytest.raises(SystemExit) as raised:
        parser().parse_args(["start", "--workers", workers])
    assert raised.value.code == 2
