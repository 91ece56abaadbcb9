"""Website clickstream, shaped exactly like kafka-connect-datagen's ``clickstream`` quickstart.

Datagen (JSON converter, schemas disabled) sends ``userid`` as an int (-1 for an unknown
user), ``status`` and ``bytes`` as strings, ``time`` as a string and ``_time`` as a long.
Datagen's ``_time`` counts up from 1 ms, so the pipeline falls back to the Kafka record
timestamp for it; this module's generator stamps current times instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.compute as pc
from faker import Faker
from pydantic import BaseModel, ConfigDict, Field

from shared.source_model import INT64_MAX, Column, NoBoolean, Row, Source, epoch_ms

UNKNOWN_USER = -1

# The option lists of Datagen's clickstream_schema.avro, so generated traffic looks the same.
DATAGEN_IPS = [
    f"{prefix}.{suffix}"
    for prefix in ("111", "222", "122", "233")
    for suffix in (
        "152.45.45",
        "203.236.146",
        "168.57.122",
        "249.79.93",
        "90.225.227",
        "173.165.103",
        "145.8.144",
        "245.174.248",
        "245.174.111",
    )
]
DATAGEN_REQUESTS = [
    "GET /index.html HTTP/1.1",
    "GET /site/user_status.html HTTP/1.1",
    "GET /site/login.html HTTP/1.1",
    "GET /images/track.png HTTP/1.1",
    "GET /images/logo-small.png HTTP/1.1",
]
DATAGEN_STATUSES = ["200", "302", "404", "405", "406", "407"]
DATAGEN_BYTES = ["278", "1289", "2048", "4096", "4006", "4196", "14096"]
DATAGEN_AGENTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/59.0.3071.115 Safari/537.36",
]
APACHE_TIME_FORMAT = "%d/%b/%Y:%H:%M:%S +0000"


class ClickstreamEvent(BaseModel):
    """One web server hit, as Datagen's clickstream quickstart produces it."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    ip: str = Field(min_length=1, max_length=64)
    userid: Annotated[int, NoBoolean("an integer from -1 (unknown user) to 2**63-1")] = Field(ge=-1, le=INT64_MAX)
    remote_user: str = Field(max_length=256)
    time: str = Field(max_length=64)
    time_ms: Annotated[int, NoBoolean("epoch milliseconds from 0 to 2**63-1")] = Field(
        alias="_time", ge=0, le=INT64_MAX
    )
    request: str = Field(min_length=1, max_length=8192)
    status: str = Field(pattern=r"^[1-5][0-9]{2}$")
    bytes: str = Field(pattern=r"^[0-9]{1,15}$")
    referrer: str = Field(max_length=8192)
    agent: str = Field(max_length=2048)


COLUMNS = (
    Column("ip", "string", nullable=False),
    Column("userid", "long", nullable=False),
    Column("user_known", "boolean", nullable=False),
    Column("remote_user", "string"),
    Column("request_method", "string"),
    Column("request_path", "string"),
    Column("http_version", "string"),
    Column("status", "long", nullable=False),
    Column("status_class", "string", nullable=False),
    Column("bytes", "long", nullable=False),
    Column("referrer", "string"),
    Column("agent", "string"),
    Column("is_bot", "boolean", nullable=False),
    Column("datagen_time", "string"),
    Column("username", "string"),
    Column("city", "string"),
    Column("level", "string"),
)


def transform(event: Row) -> Row:
    method, _, rest = event["request"].partition(" ")
    path, _, version = rest.rpartition(" ") if " " in rest else (rest, "", "")
    agent = event["agent"]
    status = event["status"]
    userid = event["userid"]
    remote_user = event["remote_user"]
    referrer = event["referrer"]
    return {
        "ip": event["ip"],
        "userid": userid,
        "user_known": userid != UNKNOWN_USER,
        "remote_user": None if remote_user == "-" else remote_user,
        "request_method": method or None,
        "request_path": path or None,
        "http_version": version or None,
        "status": int(status),
        "status_class": f"{status[0]}xx",
        "bytes": int(event["bytes"]),
        "referrer": None if referrer == "-" else referrer,
        "agent": agent,
        "is_bot": is_bot(agent),
        "datagen_time": event["time"],
        "username": None,  # filled from the user's profile by shared.state.enrich
        "city": None,
        "level": None,
    }


def is_bot(agent: str) -> bool:
    lowered = agent.lower()
    return "bot" in lowered or "crawler" in lowered or "spider" in lowered or "slurp" in lowered


def transform_columns(events: pa.Table) -> pa.Table:
    """:func:`transform` for a batch at once (Arrow compute); tests check it gives the same rows.

    Requests and agents repeat (a site has few pages and browsers), so their string rules run once per
    distinct value and are spread back by index.
    """
    request = _distinct(events["request"])
    method, path, version = _request_parts(request.dictionary)
    agent = _distinct(events["agent"])
    status, userid = events["status"], events["userid"]
    no_text = pa.nulls(len(events), pa.string())
    return pa.table(
        {
            "ip": events["ip"],
            "userid": userid,
            "user_known": pc.not_equal(userid, UNKNOWN_USER),
            "remote_user": _none_if(events["remote_user"], "-"),
            "request_method": method.take(request.indices),
            "request_path": path.take(request.indices),
            "http_version": version.take(request.indices),
            "status": pc.cast(status, pa.int64()),
            "status_class": pc.binary_join_element_wise(pc.utf8_slice_codeunits(status, 0, 1), "xx", ""),
            "bytes": pc.cast(events["bytes"], pa.int64()),
            "referrer": _none_if(events["referrer"], "-"),
            "agent": events["agent"],
            "is_bot": _bots(agent.dictionary).take(agent.indices),
            "datagen_time": events["time"],
            "username": no_text,
            "city": no_text,
            "level": no_text,
        }
    )


def _distinct(column: pa.ChunkedArray) -> pa.DictionaryArray:
    """``column`` as its distinct values (``dictionary``) and each row's index into them (``indices``)."""
    return pc.dictionary_encode(column.combine_chunks())


def _request_parts(requests: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Method, path and HTTP version of each request, as :func:`transform` splits them."""
    # A space appended to each request makes every split two parts: the method, and the rest plus that space.
    method_rest = pc.split_pattern(pc.binary_join_element_wise(requests, " ", ""), " ", max_splits=1)
    rest = pc.utf8_slice_codeunits(pc.list_element(method_rest, 1), 0, -1)
    has_version = pc.match_substring(rest, " ")  # else the rest is the path, as str.rpartition finds no space
    path_version = pc.split_pattern(pc.if_else(has_version, rest, " "), " ", max_splits=1, reverse=True)
    return (
        _none_if(pc.list_element(method_rest, 0), ""),
        _none_if(pc.if_else(has_version, pc.list_element(path_version, 0), rest), ""),
        _none_if(pc.list_element(path_version, 1), ""),
    )


def _bots(agents: pa.Array) -> pa.Array:
    """:func:`is_bot` of each agent."""
    if pc.all(pc.string_is_ascii(agents)).as_py() is not False:  # str.lower() and ASCII lowering agree
        return pc.match_substring_regex(pc.ascii_lower(agents), "bot|crawler|spider|slurp")
    return pa.array([is_bot(value) for value in agents.to_pylist()], pa.bool_())  # Unicode case mapping is Python's


def _none_if(values: Any, marker: str) -> Any:
    return pc.if_else(pc.equal(values, marker), pa.scalar(None, pa.string()), values)


def event_time_ms(event: Row) -> int:
    return int(event["time_ms"])


def entity_key(row: Row) -> str:
    """Known users by id; Datagen's anonymous ``-1`` users by IP address."""
    return str(row["userid"]) if row["user_known"] else f"ip:{row['ip']}"


def generate(fake: Faker, count: int, now: datetime) -> list[ClickstreamEvent]:
    """Datagen-like hits: an IP keeps its user id (Datagen's session-sibling hash), times are now."""
    stamp = now.strftime(APACHE_TIME_FORMAT)
    millis = epoch_ms(now) or 0
    events = []
    for _ in range(count):
        ip = fake.random_element(DATAGEN_IPS)
        events.append(
            ClickstreamEvent(
                ip=ip,
                userid=(sum(ip.encode()) % 42) - 1,
                remote_user="-",
                time=stamp,
                time_ms=millis,
                request=fake.random_element(DATAGEN_REQUESTS),
                status=fake.random_element(DATAGEN_STATUSES),
                bytes=fake.random_element(DATAGEN_BYTES),
                referrer="-",
                agent=fake.random_element(DATAGEN_AGENTS),
            )
        )
    return events


SOURCE = Source(
    name="clickstream",
    model=ClickstreamEvent,
    columns=COLUMNS,
    transform=transform,
    event_time_ms=event_time_ms,
    entity_key=entity_key,
    generate=generate,
    transform_columns=transform_columns,
)
