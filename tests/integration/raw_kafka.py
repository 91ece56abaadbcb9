"""A Kafka Produce request written by hand, for records librdkafka will not send (a header key that is not UTF-8).

Produce v3 with one record batch (magic 2) of one record, to a partition of a one-broker cluster (Tansu): the
protocol as https://kafka.apache.org/protocol and the record format as Kafka's KIP-98 define them.
"""

from __future__ import annotations

import socket
import struct
import time

_CASTAGNOLI = 0x82F63B78


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CASTAGNOLI if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def _varint(value: int) -> bytes:
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        low, zigzag = zigzag & 0x7F, zigzag >> 7
        if not zigzag:
            return bytes(out) + bytes([low])
        out.append(low | 0x80)


def _sized(data: bytes | None) -> bytes:
    return _varint(-1) if data is None else _varint(len(data)) + data


def _record_batch(key: bytes | None, value: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    record = b"\x00" + _varint(0) + _varint(0) + _sized(key) + _sized(value) + _varint(len(headers))
    record += b"".join(_sized(name) + _sized(content) for name, content in headers)
    now_ms = int(time.time() * 1000)
    # attributes, last offset delta, first and max timestamp, producer id and epoch, base sequence, record count
    checked = struct.pack(">hiqqqhii", 0, 0, now_ms, now_ms, -1, -1, -1, 1) + _varint(len(record)) + record
    after_length = struct.pack(">ibI", 0, 2, _crc32c(checked)) + checked  # leader epoch, magic 2, CRC-32C
    return struct.pack(">qi", 0, len(after_length)) + after_length


def produce_raw(
    broker: str, topic: str, partition: int, key: bytes | None, value: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    """Append one record to ``topic``/``partition``; fails unless the broker acknowledged it with no error."""
    host, port = broker.rsplit(":", 1)
    batch = _record_batch(key, value, headers)
    name = topic.encode()
    body = struct.pack(">hhi", -1, -1, 10_000)  # no transactional id, acks=all, timeout
    body += struct.pack(">ih", 1, len(name)) + name + struct.pack(">iii", 1, partition, len(batch)) + batch
    client = b"streamingpoc-tests"
    request = struct.pack(">hhih", 0, 3, 1, len(client)) + client + body  # Produce v3, correlation id 1
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", _read(connection, 4))[0]
        answer = _read(connection, size)
    # correlation id, topics: 1, the topic's name, partitions: 1, partition, error code, ...
    offset = 4 + 4 + 2 + len(name) + 4 + 4
    (error,) = struct.unpack(">h", answer[offset : offset + 2])
    if error:
        raise AssertionError(f"the broker refused the record: Kafka error code {error}")


def _read(connection: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise AssertionError("the broker closed the connection")
        data += chunk
    return bytes(data)
