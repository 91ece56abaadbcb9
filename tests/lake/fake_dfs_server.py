"""A FAKE Data Lake Storage Gen2 account, in memory, on loopback: test use only.

Azurite implements Blob, Queue and Table but not the Data Lake (dfs) REST API, and no real
ADLS Gen2 account is reachable from CI. This server implements exactly the operations
``shared.lake.adls.AdlsLake`` makes through the real ``azure-storage-file-datalake`` client
(file system create; path create, append, flush, rename, read, properties, delete; list
paths) and, as a hierarchical-namespace account with multi-protocol access does, the Blob
endpoint's Put Blob on the same paths (with ``If-Match`` / ``If-None-Match: *``, parent
directories created implicitly), with the status codes and ``x-ms-error-code`` values the
service returns, so the SDKs run their real request and error paths. It does not check signatures or implement leases,
ACLs or continuation beyond what one page needs. ``fail_next(n, status)`` makes the next
``n`` requests fail, to exercise the transient-error path.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from devhost.services.azurite import ACCOUNT_KEY as AZURITE_KEY

ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = AZURITE_KEY  # any base64 key works: the fake does not check signatures


@dataclass
class _Path:
    is_directory: bool
    data: bytearray = field(default_factory=bytearray)
    etag: str = field(default_factory=lambda: f'"0x{uuid.uuid4().hex[:16].upper()}"')


@dataclass
class FakeDataLake:
    """The service's state: file system name -> path -> entry. ``requests`` logs (method, path, query)."""

    file_systems: dict[str, dict[str, _Path]] = field(default_factory=dict)
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, count: int, status: int = 503) -> None:
        with self.lock:
            self.failures.extend([status] * count)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    lake: FakeDataLake

    def log_message(self, format: str, *args: object) -> None:
        return

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        self.send_header("x-ms-version", "2021-08-06")
        self.send_header("Date", formatdate(usegmt=True))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str) -> None:
        body = json.dumps({"error": {"code": code, "message": code}}).encode()
        self._reply(status, body, {"x-ms-error-code": code, "Content-Type": "application/json"})

    def _target(self) -> tuple[str, str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        segments = [unquote(s) for s in parts.path.split("/") if s]
        if segments and segments[0] == ACCOUNT:
            segments = segments[1:]
        file_system = segments[0] if segments else ""
        return file_system, "/".join(segments[1:]), parse_qs(parts.query)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        body = self._body()
        file_system, path, query = self._target()
        with self.lake.lock:
            self.lake.requests.append((self.command, f"{file_system}/{path}", urlsplit(self.path).query))
            if self.lake.failures:
                self._error(self.lake.failures.pop(0), "ServerBusy")
                return
            handler = getattr(self, f"_{self.command.lower()}")
            handler(file_system, path, query, body)

    do_GET = do_PUT = do_PATCH = do_HEAD = do_DELETE = _dispatch

    def _paths(self, file_system: str) -> dict[str, _Path] | None:
        paths = self.lake.file_systems.get(file_system)
        if paths is None:
            self._error(404, "FilesystemNotFound")
        return paths

    def _put(self, file_system: str, path: str, query: dict[str, list[str]], _body: bytes) -> None:
        if query.get("restype") == ["container"] or query.get("resource") == ["filesystem"]:
            if file_system in self.lake.file_systems:
                self._error(409, "FilesystemAlreadyExists")
                return
            self.lake.file_systems[file_system] = {}
            self._reply(201, headers={"ETag": '"0x1"', "Last-Modified": formatdate(usegmt=True)})
            return
        paths = self._paths(file_system)
        if paths is None:
            return
        if self.headers.get("x-ms-blob-type"):
            self._put_blob(paths, path, _body)
            return
        source = self.headers.get("x-ms-rename-source")
        if source:
            self._rename(paths, file_system, path, unquote(urlsplit(source).path))
            return
        if self.headers.get("If-None-Match") == "*" and path in paths:
            self._error(409, "PathAlreadyExists")
            return
        is_directory = query.get("resource") == ["directory"]
        if is_directory and path in paths and paths[path].is_directory:
            entry = paths[path]
        else:
            entry = _Path(is_directory)
            paths[path] = entry
        self._make_parents(paths, path)
        self._reply(201, headers={"ETag": entry.etag, "Last-Modified": formatdate(usegmt=True)})

    def _put_blob(self, paths: dict[str, _Path], path: str, body: bytes) -> None:
        existing = paths.get(path)
        if_match, if_none_match = self.headers.get("If-Match"), self.headers.get("If-None-Match")
        if if_none_match == "*" and existing is not None:
            self._error(409, "BlobAlreadyExists")
            return
        if if_match is not None and (existing is None or existing.etag != if_match):
            self._error(412, "ConditionNotMet")
            return
        if existing is not None and existing.is_directory:
            self._error(409, "PathConflict")
            return
        entry = _Path(False, bytearray(body))
        paths[path] = entry
        self._make_parents(paths, path)
        self._reply(201, headers={"ETag": entry.etag, "Last-Modified": formatdate(usegmt=True)})

    def _make_parents(self, paths: dict[str, _Path], path: str) -> None:
        parent = path.rpartition("/")[0]
        while parent:
            paths.setdefault(parent, _Path(True))
            parent = parent.rpartition("/")[0]

    def _rename(self, paths: dict[str, _Path], file_system: str, path: str, source: str) -> None:
        segments = [s for s in source.split("/") if s]
        if segments and segments[0] == ACCOUNT:
            segments = segments[1:]
        if not segments or segments[0] != file_system:
            self._error(400, "InvalidSourceUri")
            return
        source_path = "/".join(segments[1:])
        if source_path not in paths:
            self._error(404, "SourcePathNotFound")
            return
        parent = path.rpartition("/")[0]
        if parent and parent not in paths:
            self._error(404, "RenameDestinationParentPathNotFound")
            return
        existing = paths.get(path)
        if_match, if_none_match = self.headers.get("If-Match"), self.headers.get("If-None-Match")
        if (if_none_match == "*" and existing is not None) or (
            if_match is not None and (existing is None or existing.etag != if_match)
        ):
            self._error(412 if if_match is not None else 409, "ConditionNotMet" if if_match else "PathAlreadyExists")
            return
        paths[path] = paths.pop(source_path)
        self._reply(201, headers={"ETag": paths[path].etag, "Last-Modified": formatdate(usegmt=True)})

    def _patch(self, file_system: str, path: str, query: dict[str, list[str]], body: bytes) -> None:
        paths = self._paths(file_system)
        if paths is None:
            return
        entry = paths.get(path)
        if entry is None or entry.is_directory:
            self._error(404, "PathNotFound")
            return
        action, position = query.get("action", [""])[0], int(query.get("position", ["0"])[0])
        if action == "append":
            if position != len(entry.data):
                self._error(400, "InvalidFlushPosition")
                return
            entry.data.extend(body)
            self._reply(202)
        elif action == "flush":
            if position != len(entry.data):
                self._error(400, "InvalidFlushPosition")
                return
            entry.etag = f'"0x{uuid.uuid4().hex[:16].upper()}"'
            self._reply(200, headers={"ETag": entry.etag, "Last-Modified": formatdate(usegmt=True)})
        else:
            self._error(400, "InvalidQueryParameterValue")

    def _properties(self, entry: _Path) -> dict[str, str]:
        return {
            "ETag": entry.etag,
            "Last-Modified": formatdate(usegmt=True),
            "x-ms-resource-type": "directory" if entry.is_directory else "file",
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
        }

    def _head(self, file_system: str, path: str, _query: dict[str, list[str]], _body: bytes) -> None:
        paths = self._paths(file_system)
        if paths is None:
            return
        entry = paths.get(path)
        if entry is None:
            self._error(404, "PathNotFound")
            return
        headers = self._properties(entry)
        self.send_response(200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(entry.data)))
        self.end_headers()

    def _get(self, file_system: str, path: str, query: dict[str, list[str]], _body: bytes) -> None:
        paths = self._paths(file_system)
        if paths is None:
            return
        if not path and query.get("resource") == ["filesystem"]:
            self._list(paths, query)
            return
        entry = paths.get(path)
        if entry is None or entry.is_directory:
            self._error(404, "PathNotFound" if entry is None else "PathIsADirectory")
            return
        data = bytes(entry.data)
        ranged = self.headers.get("x-ms-range") or self.headers.get("Range")
        headers = self._properties(entry)
        if ranged and ranged.startswith("bytes="):
            first_text, _, last_text = ranged[6:].partition("-")
            first = int(first_text)
            last = min(int(last_text) if last_text else len(data) - 1, len(data) - 1)
            if data and first >= len(data):
                self._error(416, "InvalidRange")
                return
            headers["Content-Range"] = f"bytes {first}-{max(last, first)}/{len(data)}" if data else "bytes */0"
            self._reply(206 if data else 200, data[first : last + 1], headers)
            return
        self._reply(200, data, headers)

    def _list(self, paths: dict[str, _Path], query: dict[str, list[str]]) -> None:
        directory = query.get("directory", [""])[0].strip("/")
        recursive = query.get("recursive", ["false"])[0] == "true"
        if directory and directory not in paths:
            self._error(404, "PathNotFound")
            return
        prefix = f"{directory}/" if directory else ""
        found = []
        for name, entry in sorted(paths.items()):
            if not name.startswith(prefix) or (not recursive and "/" in name[len(prefix) :]):
                continue
            item = {"name": name, "etag": entry.etag, "lastModified": formatdate(usegmt=True)}
            item |= {"isDirectory": "true"} if entry.is_directory else {"contentLength": str(len(entry.data))}
            found.append(item)
        self._reply(200, json.dumps({"paths": found}).encode(), {"Content-Type": "application/json"})

    def _delete(self, file_system: str, path: str, _query: dict[str, list[str]], _body: bytes) -> None:
        paths = self._paths(file_system)
        if paths is None:
            return
        if paths.pop(path, None) is None:
            self._error(404, "PathNotFound")
            return
        self._reply(200)


@contextmanager
def fake_dfs_server() -> Iterator[tuple[FakeDataLake, str]]:
    """The fake service and a connection string the real SDK can use to reach it."""
    lake = FakeDataLake()
    handler = type("Handler", (_Handler,), {"lake": lake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/{ACCOUNT}"
    connection_string = (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={endpoint};DfsEndpoint={endpoint};"
    )
    try:
        yield lake, connection_string
    finally:
        server.shutdown()
        server.server_close()
