"""``tools.migrate_state`` meets a bad argument or a damaged lake: one line, the exit code its docstring names, never
a traceback, and never the Durable system key (a review's cases). Real local lake files; the Durable HTTP API is the
in-memory fake of test_migrate_state where those tests use it (it cannot run here), or the real client where the
request is refused before anything is sent."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from shared.lake import LocalLake
from shared.state.aggregate import Signal
from shared.state.bucket_counts import RECORD_PATH
from tests.unit.tools.no_settings import NO_SETTINGS
from tests.unit.tools.test_migrate_state import (
    FakeEntityApi,
    _deployment,
    _events,
    _main_argv,
    _per_key_deployment,
    _use,
)
from tools import migrate_state
from tools import redrive as redrive_cli
from tools.cli import RefusedArgument, secure_url

SYSTEM_KEY = "sEcReT-sYsTeM-kEy-0123456789"


def _real_durable_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A lake recording 4 mobile buckets, the tool's own HTTP client, the system key in the environment."""
    LocalLake(tmp_path).create(RECORD_PATH, orjson.dumps({"buckets": {"mobile": 4}}))
    monkeypatch.setenv("LAKE_KIND", "local")
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path))
    monkeypatch.setenv("DURABLE_SYSTEM_KEY", SYSTEM_KEY)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:1/runtime/webhooks/durable task",
        "https://127.0.0.1:1/runtime/webhooks/durabletask\t",
        "https://127.0.0.1:1/runtime/webhooks/durable\ntask",
        "https://127.0.0.1:1/runtime/webhooks/durable\x00task",
        "https://127.0.0.1:1/runtime/webhooks/durable\x7ftask",
    ],
    ids=["space", "tab", "newline", "nul", "del"],
)
def test_a_durable_url_with_whitespace_or_a_control_character_is_a_bad_argument_never_quoting_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    """It passed the https check; http.client refused it at the first request with InvalidURL, whose message (in a
    traceback, exit 1) quoted the request's path and query: ``?code=<DURABLE_SYSTEM_KEY>``."""
    _real_durable_api(monkeypatch, tmp_path)
    code = migrate_state.cli(_main_argv(tmp_path, "--durable-url", url, "--export", str(tmp_path / "state.json")))
    out, err = capsys.readouterr()
    assert code == 2, err
    (line,) = err.splitlines()
    assert line.startswith("migrate_state: --durable-url must not contain whitespace or control characters"), line
    assert SYSTEM_KEY not in out + err and "code=" not in out + err
    assert not (tmp_path / "state.json").exists()


def test_a_durable_url_no_request_can_be_made_of_is_one_line_exit_2_never_quoting_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A character a request line cannot hold that the argument check takes (not ASCII): urllib raises a
    ValueError at the first request, caught there and named without the query."""
    _real_durable_api(monkeypatch, tmp_path)
    url = "https://127.0.0.1:1/runtime/webhooks/durabletäsk"
    code = migrate_state.cli(_main_argv(tmp_path, "--durable-url", url, "--export", str(tmp_path / "state.json")))
    out, err = capsys.readouterr()
    assert code == 2, err
    (line,) = err.splitlines()
    assert line.startswith("migrate_state: --durable-url 'https://127.0.0.1/runtime/webhooks/durabletäsk' cannot be")
    assert SYSTEM_KEY not in out + err and "code=" not in out + err


def test_a_durable_url_the_check_passes_but_http_client_refuses_is_one_line_exit_2_never_quoting_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever the argument check misses: InvalidURL (its message quotes the request, key included) is caught
    where the request is made, as one line without the query."""
    _real_durable_api(monkeypatch, tmp_path)
    monkeypatch.setattr(migrate_state, "secure_url", lambda url, option: url)  # the check, missing a case
    url = "https://127.0.0.1:1/runtime/webhooks/durable task"
    code = migrate_state.cli(_main_argv(tmp_path, "--durable-url", url, "--export", str(tmp_path / "state.json")))
    out, err = capsys.readouterr()
    assert code == 2, err
    (line,) = err.splitlines()
    assert line.startswith("migrate_state: --durable-url 'https://127.0.0.1/runtime/webhooks/durable task' cannot")
    assert SYSTEM_KEY not in out + err and "code=" not in out + err


@pytest.mark.parametrize(
    "url",
    ["https://h.example/a b", "https://h.example/a\r\nHost: x", "https://h.example:abc/", "https://h.example:70000/"],
)
def test_the_tools_that_send_the_system_key_refuse_a_url_no_request_can_be_made_of(url: str) -> None:
    with pytest.raises(RefusedArgument, match="--functions-url") as refused:
        redrive_cli.DurableHttpSignaller(f"{url}?code={SYSTEM_KEY}", SYSTEM_KEY)
    assert SYSTEM_KEY not in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(RefusedArgument, match="--durable-url"):
        migrate_state.DurableHttp(url, SYSTEM_KEY)
    assert secure_url("https://h.example:8443/runtime/webhooks/durabletask", "--x").endswith("durabletask")


class NeverApplies(FakeEntityApi):
    """Adopts accepted (202) and never applied: the keys stay missing until ``--wait`` runs out."""

    def signal(self, signal: Signal) -> None:
        pass


@pytest.mark.timeout(30)
@pytest.mark.parametrize("wait", ["nan", "inf", "-inf", "-1"])
def test_a_wait_that_is_not_a_number_of_seconds_from_0_is_a_bad_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], wait: str
) -> None:
    """``--wait nan``: the deadline (now + nan) never passed, so a key still missing kept the run polling for ever."""
    api = NeverApplies()
    _deployment(tmp_path, api)
    _use(monkeypatch, tmp_path, api)
    polls: list[float] = []

    def poll(seconds: float) -> None:  # the move's poll, instead of sleeping: a run that polls on is stopped
        polls.append(seconds)
        if len(polls) > 5:
            raise AssertionError(f"--wait {wait}: still polling after {len(polls)} polls")

    monkeypatch.setattr(migrate_state.time, "sleep", poll)
    argv = ["--settings", NO_SETTINGS, "--sources", "mobile", "--to-buckets", "3", f"--wait={wait}"]
    code = migrate_state.cli(argv)
    (line,) = capsys.readouterr().err.splitlines()
    assert code == 2
    assert line.startswith("migrate_state: --wait must be a number of seconds, 0 or more"), line
    assert not polls and _events(api, "device-3", 4) == 1  # refused before anything was sent


class CountsReads(FakeEntityApi):
    """Counts the buckets read; ``during`` runs at the first read (the export is under way)."""

    def __init__(self, during: Any = None) -> None:
        super().__init__()
        self.reads = 0
        self.during = during

    def read(self, entity: str, key: str) -> dict[str, Any] | None:
        self.reads += 1
        if self.during is not None:
            self.during, during = None, self.during
            during()
        return super().read(entity, key)


@pytest.mark.parametrize("where", ["missing directory", "a directory", "a file as directory"])
def test_an_export_path_that_cannot_be_written_is_refused_before_anything_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    """It was found only after every bucket was read: FileNotFoundError or IsADirectoryError in a traceback (and
    a ``<dir>.partial`` left beside a directory)."""
    api = CountsReads()
    _deployment(tmp_path, api)
    _use(monkeypatch, tmp_path, api)
    (tmp_path / "afile").write_text("x")
    path = {
        "missing directory": tmp_path / "no" / "such" / "state.json",
        "a directory": tmp_path / "out",
        "a file as directory": tmp_path / "afile" / "state.json",
    }[where]
    (tmp_path / "out").mkdir()
    code = migrate_state.cli(_main_argv(tmp_path, "--export", str(path)))
    (line,) = capsys.readouterr().err.splitlines()
    assert code == 2
    assert line.startswith(f"migrate_state: --export {path}"), line
    assert api.reads == 0
    assert not list(tmp_path.glob("*.partial")) and not (tmp_path / "no").exists()


@pytest.mark.parametrize("meanwhile", ["its directory removed", "a directory made at the path"])
def test_an_export_that_cannot_be_written_after_the_read_is_one_line_exit_2_and_leaves_no_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], meanwhile: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    path = out / "state.json"
    api = CountsReads(during=(lambda: shutil.rmtree(out)) if meanwhile.startswith("its") else path.mkdir)
    _deployment(tmp_path, api)
    _use(monkeypatch, tmp_path, api)
    code = migrate_state.cli(_main_argv(tmp_path, "--export", str(path)))
    (line,) = capsys.readouterr().err.splitlines()
    assert code == 2
    assert line.startswith(f"migrate_state: cannot write {path}: "), line
    assert not (out / "state.json.partial").exists()


def _raw_file(key: str, offset: int) -> bytes:
    row = {"device_id": key, "_topic": "mobile", "_partition": 0, "_offset": offset, "_event_time": 1_700_000_000_000}
    return gzip.compress(orjson.dumps(row) + b"\n")


def _damaged_table(tmp_path: Path, damage: str) -> None:
    table = tmp_path / "curated" / "mobile"
    if damage == "garbage log":
        (table / "_delta_log").mkdir(parents=True)
        (table / "_delta_log" / "00000000000000000000.json").write_text("garbage")
        return
    write_deltalake(str(table), pa.table({"device_id": ["device-3"]}))
    write_deltalake(str(table), pa.table({"device_id": ["device-0"]}), mode="append")
    data = sorted(table.glob("*.parquet"), key=lambda file: file.stat().st_mtime_ns)[-1]
    data.write_bytes(data.read_bytes()[:20])  # truncated


@pytest.mark.parametrize("damage", ["garbage log", "truncated data file"])
def test_a_damaged_curated_table_is_named_in_one_line_its_raw_keys_move_and_the_move_from_per_key_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    """lake_rows caught only TableNotFoundError: a DeltaError or ArrowInvalid ended the run in a traceback."""
    api = _per_key_deployment()
    api.queued.clear()
    lake = LocalLake(tmp_path)
    lake.create(RECORD_PATH, orjson.dumps({"buckets": {"mobile": 4}}))
    lake.create("raw/mobile/date=2026-12-01/hour=00/p0-10-19.jsonl.gz", _raw_file("device-2", 10))
    _damaged_table(tmp_path, damage)
    _use(monkeypatch, tmp_path, api)
    assert migrate_state.cli(_main_argv(tmp_path)) == 1
    out, err = capsys.readouterr()
    assert err == ""
    (named,) = [line for line in out.splitlines() if "curated/mobile" in line]
    assert named.startswith("  cannot read curated/mobile: ") and "<unknown>" not in named, named  # no backtrace
    assert _events(api, "device-2", 4) == 1  # the raw file's key moved


def test_a_raw_file_whose_name_the_lake_refuses_is_named_the_others_are_read_and_the_run_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """UnsafePath (a copy's "c (1).parquet") stopped the whole run, exit 2, where a damaged raw file is passed over."""
    api = _per_key_deployment()
    api.queued.clear()
    lake = LocalLake(tmp_path)
    lake.create(RECORD_PATH, orjson.dumps({"buckets": {"mobile": 4}}))
    lake.create("raw/mobile/date=2026-12-01/hour=00/p0-10-19.jsonl.gz", _raw_file("device-2", 10))
    odd = tmp_path / "raw/mobile/date=2026-12-01/hour=00/c (1).parquet"
    odd.write_bytes(b"x")
    _use(monkeypatch, tmp_path, api)
    assert migrate_state.cli(_main_argv(tmp_path)) == 1
    out, err = capsys.readouterr()
    assert err == ""
    (named,) = [line for line in out.splitlines() if "c (1).parquet" in line]
    assert named.startswith("  cannot read raw file raw/mobile/date=2026-12-01/hour=00/c (1).parquet: "), named
    assert _events(api, "device-2", 4) == 1


def _answering(get_status: int, get_body: bytes, post_status: int) -> tuple[Any, str]:
    """A real HTTP server on a free loopback port answering every GET and POST the same way, and its Durable URL."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(get_status, get_body)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._answer(post_status, b"")

        def log_message(self, *_: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/runtime/webhooks/durabletask"


@pytest.mark.parametrize(
    ("get_status", "get_body", "post_status", "complaint"),
    [
        (200, b"<html>sign in</html>", 202, "user_profile@~b0of4 answered what is not JSON"),
        (404, b"", 200, "signal user_profile@~b0of2 answered 200, not 202"),
    ],
    ids=["a login page", "a signal not accepted"],
)
def test_a_durable_url_that_does_not_answer_as_the_durable_api_is_one_line_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    get_status: int,
    get_body: bytes,
    post_status: int,
    complaint: str,
) -> None:
    """Review 2026-12-07: a page that is not JSON was a JSONDecodeError traceback, a signal answered 200 a
    RuntimeError traceback, each exit 1, where the docstring promises one line and exit 2."""
    LocalLake(tmp_path).create(RECORD_PATH, orjson.dumps({"buckets": {"users": 4}}))
    monkeypatch.setenv("LAKE_KIND", "local")
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path))
    server, url = _answering(get_status, get_body, post_status)
    try:
        argv = _main_argv(tmp_path, "--durable-url", url, "--sources", "users", "--to-buckets", "2", "--wait", "1")
        code = migrate_state.cli(argv)
    finally:
        server.shutdown()
    err = capsys.readouterr().err
    assert code == 2, err
    (line,) = err.splitlines()
    assert line.startswith("migrate_state: --durable-url does not answer as the Durable HTTP API") and complaint in line


def test_sources_given_no_value_or_absent_from_the_import_file_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review 2026-12-07: ``--sources $EMPTY`` exported no source and exit 0, and importing that file, even naming a
    source, skipped it with exit 0: a backend switch moved no state and every step said it succeeded."""
    _real_durable_api(monkeypatch, tmp_path)
    with pytest.raises(SystemExit) as refused:
        migrate_state.main(_main_argv(tmp_path, "--export", str(tmp_path / "state.json"), "--sources"))
    assert refused.value.code == 2 and not (tmp_path / "state.json").exists()
    empty = tmp_path / "empty.json"
    empty.write_bytes(orjson.dumps({"format": "streamingpoc-state-export/1", "sources": {}}))
    url = "http://127.0.0.1:9/runtime/webhooks/durabletask"  # nothing is asked of it
    for named in (["--sources", "mobile"], []):  # named, and every keyed source by default
        capsys.readouterr()
        argv = ["--settings", NO_SETTINGS, "--durable-url", url, "--import", str(empty), *named]
        assert migrate_state.cli(argv) == 2
        assert "holds no state of" in capsys.readouterr().err
