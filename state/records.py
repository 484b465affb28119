"""Typed views of the bookmarks inside a Singer state value.

A state value looks like ``{"bookmarks": {stream: {...}}, "currently_syncing": ...}``. Each
stream's bookmark is parsed into the most specific record that fits, checked in this order:

* :class:`LsnPosition` - PostgreSQL log-based replication: ``{"lsn": 23965464, ...}``. The LSN
  is kept as sent, an integer or PostgreSQL's ``"0/16DB018"`` text form.
* :class:`XminPosition` - a PostgreSQL full-table copy that resumes after a transaction id:
  ``{"xmin": 1234, ...}``.
* :class:`CdcLsnPosition` - SQL Server CDC: ``{"cdc_lsn": "0x0000002A000001F80003"}``. An LSN is
  10 bytes (80 bits, more than a JSON integer carries safely), kept as SQL Server writes it with
  ``CONVERT(VARCHAR(22), lsn, 1)``: ``0x`` and 20 hex digits.
* :class:`ChangeVersionPosition` - SQL Server Change Tracking: ``{"change_version": 1234}``, the
  database's change-tracking version the stream has read up to.
* :class:`RowversionPosition` - SQL Server rows past a rowversion: ``{"rowversion": 80012}``, the
  column's value (as a bigint) of the last row read.
* :class:`KafkaOffsets` - a Kafka topic read up to fixed offsets:
  ``{"topic": "orders", "partitions": {"0": 42, "1": 17}}``. Keys are partition numbers as
  strings (JSON object keys), values the offset of the *next* message to read, which is Kafka's
  committed-offset convention; ``topic`` is optional. A list under ``partitions`` is the Singer
  SDK's per-context state, not Kafka, and stays a :class:`RawBookmark`.
* :class:`StreamBookmark` - incremental replication: ``{"replication_key": "updated_at",
  "replication_key_value": "2024-01-01T00:00:00Z"}``.
* :class:`TablePosition` - a full-table read: ``{"version": 1714500000, "last_pk": [41]}``; the
  table version, and the key of the last row sent while a read is in progress.
* :class:`RawBookmark` - anything else, untouched.

Keys a record does not model (``version``, ``last_replication_method``, ...) are kept in
``extra`` so that ``to_dict()`` gives back exactly the dict that was parsed.

That guess is for showing a state. A tap knows which replication method a stream uses and
reads its bookmark with :func:`read_position`: the method's record, its fields checked (a
malformed one is a ConfigError naming the stream), None for a field not recorded yet. It writes
the next bookmark as that record's ``to_dict()``, so the JSON keeps the shape other Singer taps
and Meltano read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from dpone_protocol.errors import ConfigError

_LSN_TEXT_RE = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")
_CDC_LSN_RE = re.compile(r"^0x[0-9A-Fa-f]{20}$")
_DESCRIBE_WIDTH = 100


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _compact(value: Any) -> str:
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= _DESCRIBE_WIDTH else text[: _DESCRIBE_WIDTH - 3] + "..."


def _without(data: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in keys}


@dataclass(frozen=True, slots=True)
class StreamBookmark:
    stream: str
    replication_key: str | None
    replication_key_value: Any
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        wire: dict[str, Any] = {}
        if self.replication_key is not None:
            wire["replication_key"] = self.replication_key
        wire["replication_key_value"] = self.replication_key_value
        return {**wire, **self.extra}

    def describe(self) -> str:
        key = self.replication_key or "replication key"
        return f"{self.stream}: {key} >= {_compact(self.replication_key_value)}"


@dataclass(frozen=True, slots=True)
class XminPosition:
    stream: str
    xmin: int | None  # None: no transaction recorded yet
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {**({} if self.xmin is None else {"xmin": self.xmin}), **self.extra}

    def describe(self) -> str:
        return f"{self.stream}: full-table copy resumes after xmin {self.xmin}"


@dataclass(frozen=True, slots=True)
class LsnPosition:
    stream: str
    lsn: int | str | None  # as sent: an integer, or PostgreSQL's "XXXXXXXX/XXXXXXXX" text; None: not yet
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def position(self) -> int:
        """The LSN as a 64-bit integer, whichever form was sent."""
        if self.lsn is None:
            raise ValueError(f"stream {self.stream!r} has no LSN yet")
        if isinstance(self.lsn, int):
            return self.lsn
        match = _LSN_TEXT_RE.match(self.lsn)
        if match is None:
            raise ValueError(f"not a PostgreSQL LSN: {self.lsn!r}")
        return (int(match.group(1), 16) << 32) | int(match.group(2), 16)

    @property
    def text(self) -> str:
        """The LSN in PostgreSQL's own notation, as pg_current_wal_lsn() prints it."""
        position = self.position
        return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"

    def to_dict(self) -> dict[str, Any]:
        return {**({} if self.lsn is None else {"lsn": self.lsn}), **self.extra}

    def describe(self) -> str:
        # An xmin next to the LSN means the initial copy of a log-based stream is still running.
        xmin = self.extra.get("xmin")
        copying = f" (initial copy resumes after xmin {xmin})" if _is_int(xmin) else ""
        return f"{self.stream}: log-based from LSN {self.text}{copying}"


@dataclass(frozen=True, slots=True)
class TablePosition:
    """A full-table read: its table version, and while it is in progress the key of the last row sent."""

    stream: str
    version: int | None  # milliseconds since the epoch; None before the first read
    last_pk: list[Any] | None = None  # the primary key values of the last row sent; None: not in progress
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        wire: dict[str, Any] = {} if self.version is None else {"version": self.version}
        if self.last_pk is not None:
            wire["last_pk"] = list(self.last_pk)
        return {**wire, **self.extra}

    def describe(self) -> str:
        if self.last_pk is not None:
            return f"{self.stream}: full table version {self.version}, resumes after key {_compact(self.last_pk)}"
        return f"{self.stream}: full table version {self.version}, complete"


@dataclass(frozen=True, slots=True)
class CdcLsnPosition:
    """SQL Server CDC: the LSN (commit position) up to which changes were read."""

    stream: str
    lsn: str | None  # "0x" + 20 hex digits, as CONVERT(VARCHAR(22), lsn, 1) writes it; None: not yet
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def position(self) -> int:
        """The LSN as an 80-bit integer, for comparing positions."""
        if self.lsn is None:
            raise ValueError(f"stream {self.stream!r} has no CDC LSN yet")
        if not _is_cdc_lsn(self.lsn):
            raise ValueError(f"not a SQL Server LSN: {self.lsn!r}")
        return int(self.lsn[2:], 16)

    def to_dict(self) -> dict[str, Any]:
        return {**({} if self.lsn is None else {"cdc_lsn": self.lsn}), **self.extra}

    def describe(self) -> str:
        return f"{self.stream}: SQL Server CDC from LSN {self.lsn}"


@dataclass(frozen=True, slots=True)
class ChangeVersionPosition:
    """SQL Server Change Tracking: the change-tracking version up to which changes were read."""

    stream: str
    version: int | None  # None: not recorded yet
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {**({} if self.version is None else {"change_version": self.version}), **self.extra}

    def describe(self) -> str:
        return f"{self.stream}: SQL Server change tracking after version {self.version}"


@dataclass(frozen=True, slots=True)
class RowversionPosition:
    """SQL Server rows past a rowversion: the last value read (the column as a bigint)."""

    stream: str
    rowversion: int | None  # None: not recorded yet
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {**({} if self.rowversion is None else {"rowversion": self.rowversion}), **self.extra}

    def describe(self) -> str:
        return f"{self.stream}: rows after rowversion {self.rowversion}"


# tap-kafka's position: offsets per partition, fixed at start and read up to (read_kafka_offsets).
@dataclass(frozen=True, slots=True)
class KafkaOffsets:
    stream: str
    partitions: Mapping[str, int]  # partition number (as a string) -> next offset to read
    topic: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def offsets(self) -> dict[int, int]:
        return {int(p): o for p, o in self.partitions.items()}

    def to_dict(self) -> dict[str, Any]:
        wire: dict[str, Any] = {} if self.topic is None else {"topic": self.topic}
        wire["partitions"] = dict(self.partitions)
        return {**wire, **self.extra}

    def describe(self) -> str:
        offsets = self.offsets()
        shown = ", ".join(f"{p}:{offsets[p]}" for p in sorted(offsets)) or "none"
        topic = f" topic {self.topic}" if self.topic else ""
        count = len(offsets)
        return f"{self.stream}: Kafka{topic} next offsets {shown} ({count} partition{'s' * (count != 1)})"


@dataclass(frozen=True, slots=True)
class RawBookmark:
    stream: str
    value: Any

    def to_dict(self) -> Any:
        """The bookmark as it was; usually a dict, but taps are free to store anything."""
        return self.value

    def describe(self) -> str:
        return f"{self.stream}: {_compact(self.value)}"


Bookmark = (
    StreamBookmark
    | XminPosition
    | LsnPosition
    | TablePosition
    | KafkaOffsets
    | CdcLsnPosition
    | ChangeVersionPosition
    | RowversionPosition
    | RawBookmark
)


def _is_lsn(value: Any) -> bool:
    return (_is_int(value) and value >= 0) or (isinstance(value, str) and _LSN_TEXT_RE.match(value) is not None)


def _is_cdc_lsn(value: Any) -> bool:
    return isinstance(value, str) and _CDC_LSN_RE.match(value) is not None


def _is_kafka_partitions(value: Any) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(p, str) and p.isdigit() and _is_int(o) and o >= 0 for p, o in value.items()
    )


def parse_bookmark(stream: str, bookmark: Any) -> Bookmark:
    """The most specific record for one stream's bookmark (see the module docstring).

    `bookmark` is a dict in every tap we know, but a value of any other type becomes a
    RawBookmark rather than an error, so `dpone state get` can always show a state.
    """
    if not isinstance(bookmark, Mapping):
        return RawBookmark(stream, bookmark)
    if _is_lsn(bookmark.get("lsn")):
        return LsnPosition(stream, bookmark["lsn"], _without(bookmark, "lsn"))
    if _is_int(bookmark.get("xmin")):
        return XminPosition(stream, bookmark["xmin"], _without(bookmark, "xmin"))
    if _is_cdc_lsn(bookmark.get("cdc_lsn")):
        return CdcLsnPosition(stream, bookmark["cdc_lsn"], _without(bookmark, "cdc_lsn"))
    if _is_int(bookmark.get("change_version")):
        return ChangeVersionPosition(stream, bookmark["change_version"], _without(bookmark, "change_version"))
    if _is_int(bookmark.get("rowversion")):
        return RowversionPosition(stream, bookmark["rowversion"], _without(bookmark, "rowversion"))
    topic = bookmark.get("topic")
    if _is_kafka_partitions(bookmark.get("partitions")) and (topic is None or isinstance(topic, str)):
        extra = _without(bookmark, "partitions", "topic")
        return KafkaOffsets(stream, dict(bookmark["partitions"]), topic, extra)
    # An explicit null replication_key would not survive to_dict(), so it stays raw.
    key_ok = "replication_key" not in bookmark or isinstance(bookmark["replication_key"], str)
    if "replication_key_value" in bookmark and key_ok:
        extra = _without(bookmark, "replication_key", "replication_key_value")
        value = bookmark["replication_key_value"]
        return StreamBookmark(stream, bookmark.get("replication_key"), value, extra)
    last_pk = bookmark.get("last_pk", [])
    if _is_int(bookmark.get("version")) and isinstance(last_pk, list):
        pk = bookmark.get("last_pk")
        return TablePosition(stream, bookmark["version"], pk, _without(bookmark, "version", "last_pk"))
    return RawBookmark(stream, dict(bookmark))


def bookmarks_of(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The per-stream bookmarks of a state value ({} when it has none, or they are not an object)."""
    bookmarks = (value or {}).get("bookmarks")
    return bookmarks if isinstance(bookmarks, Mapping) else {}


def _checked(stream: str, bookmark: Mapping[str, Any], key: str, fits: Any, wanted: str) -> Any:
    value = bookmark.get(key)
    if value is not None and not fits(value):
        raise ConfigError(
            f"stream {stream!r}: malformed bookmark in the state: {key!r} must be {wanted}, got {_compact(value)}; "
            f"fix it, or clear the stream's bookmark to start over (dpone state clear PIPELINE --stream {stream})"
        )
    return value


def read_position(stream: str, bookmark: Any, method: str) -> Bookmark:
    """A tap's view of one stream's committed bookmark: the record of its replication method.

    Fields not recorded yet are None; every other key is kept in `extra`, so a tap that writes
    the record back changes only what it modeled.
    """
    if bookmark is None:
        bookmark = {}
    if not isinstance(bookmark, Mapping):
        raise ConfigError(
            f"stream {stream!r}: malformed bookmark in the state: expected an object, got {_compact(bookmark)}"
        )
    if method == "FULL_TABLE":
        version = _checked(stream, bookmark, "version", _is_int, "an integer (a table version)")
        last_pk = _checked(stream, bookmark, "last_pk", lambda v: isinstance(v, list), "a list of key values")
        return TablePosition(stream, version, last_pk, _without(bookmark, "version", "last_pk"))
    if method == "INCREMENTAL":
        key = _checked(stream, bookmark, "replication_key", lambda v: isinstance(v, str), "a column name")
        extra = _without(bookmark, "replication_key", "replication_key_value")
        return StreamBookmark(stream, key, bookmark.get("replication_key_value"), extra)
    if method == "XMIN":
        xmin = _checked(stream, bookmark, "xmin", _is_int, "an integer (a transaction id)")
        return XminPosition(stream, xmin, _without(bookmark, "xmin"))
    if method == "LOG_BASED" and "cdc_lsn" in bookmark:
        # SQL Server's log-based streams (CDC) keep their LSN under a key of its own.
        cdc = _checked(stream, bookmark, "cdc_lsn", _is_cdc_lsn, "a SQL Server LSN ('0x' and 20 hex digits)")
        return CdcLsnPosition(stream, cdc, _without(bookmark, "cdc_lsn"))
    if method == "LOG_BASED":
        lsn = _checked(stream, bookmark, "lsn", _is_lsn, "an LSN (an integer, or text like '0/16DB018')")
        return LsnPosition(stream, lsn, _without(bookmark, "lsn"))
    if method == "CHANGE_TRACKING":
        version = _checked(stream, bookmark, "change_version", _is_int, "an integer (a change tracking version)")
        return ChangeVersionPosition(stream, version, _without(bookmark, "change_version"))
    if method == "ROWVERSION":
        rowversion = _checked(stream, bookmark, "rowversion", _is_int, "an integer (a rowversion as a bigint)")
        return RowversionPosition(stream, rowversion, _without(bookmark, "rowversion"))
    return RawBookmark(stream, dict(bookmark))


def read_kafka_offsets(stream: str, bookmark: Any) -> KafkaOffsets:
    """tap-kafka's view of a stream's committed bookmark, whatever replication method the catalog
    names (a Kafka stream has one way to read): empty offsets when there is none yet."""
    if bookmark is None:
        bookmark = {}
    if not isinstance(bookmark, Mapping):
        raise ConfigError(
            f"stream {stream!r}: malformed bookmark in the state: expected an object, got {_compact(bookmark)}"
        )
    partitions = _checked(
        stream, bookmark, "partitions", _is_kafka_partitions, "an object of partition numbers to next offsets"
    )
    topic = _checked(stream, bookmark, "topic", lambda v: isinstance(v, str), "a topic name")
    return KafkaOffsets(stream, dict(partitions or {}), topic, _without(bookmark, "partitions", "topic"))


def parse_state(value: Mapping[str, Any] | None) -> list[Bookmark]:
    """Every stream's bookmark in a state value, sorted by stream name."""
    bookmarks = bookmarks_of(value)
    return [parse_bookmark(stream, bookmarks[stream]) for stream in sorted(bookmarks)]


def describe_state(value: Mapping[str, Any] | None) -> list[str]:
    """One line per stream, then what the tap was syncing when it stopped, if anything."""
    lines = [bookmark.describe() for bookmark in parse_state(value)]
    syncing = (value or {}).get("currently_syncing")
    if syncing:
        lines.append(f"currently syncing: {syncing}")
    return lines
