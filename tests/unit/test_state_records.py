"""Typed state records: each Singer bookmark shape parses to its record and back, unchanged."""

from __future__ import annotations

import dataclasses

import pytest

from dpone.state.records import (
    KafkaOffsets,
    LsnPosition,
    RawBookmark,
    StreamBookmark,
    TablePosition,
    XminPosition,
    bookmarks_of,
    describe_state,
    parse_bookmark,
    parse_state,
    read_position,
)
from dpone_protocol.errors import ConfigError

WIRE_BOOKMARKS = [
    (StreamBookmark, {"replication_key": "updated_at", "replication_key_value": "2024-05-01T00:00:00Z"}),
    (
        StreamBookmark,
        {
            "replication_key": "id",
            "replication_key_value": 991,
            "replication_key_signpost": 1000,
            "starting_replication_value": 10,
        },
    ),
    (StreamBookmark, {"replication_key_value": "2024-01-01", "version": 3}),
    (XminPosition, {"xmin": 7351, "version": 1714500000, "last_replication_method": "FULL_TABLE"}),
    (LsnPosition, {"lsn": 23965464, "version": 1714500000, "last_replication_method": "LOG_BASED"}),
    (LsnPosition, {"lsn": "0/16DB018"}),
    (LsnPosition, {"lsn": 23965464, "xmin": 12, "version": 1}),
    (TablePosition, {"version": 1714500000, "last_pk": [41, "a"]}),
    (TablePosition, {"version": 1714500000, "last_replication_method": "FULL_TABLE"}),
    (KafkaOffsets, {"topic": "orders", "partitions": {"0": 42, "1": 17}}),
    (KafkaOffsets, {"partitions": {}, "end_offsets": {"0": 50}}),
    (RawBookmark, {"partitions": [{"context": {"id": 1}, "replication_key_value": 5}]}),
    (RawBookmark, {"replication_key": None, "replication_key_value": 1}),
    (RawBookmark, {"xmin": True}),
    (RawBookmark, {"lsn": "not an lsn"}),
    (RawBookmark, {"cursor": "abc"}),
    (RawBookmark, {"version": 1, "last_pk": "41"}),
    (RawBookmark, {}),
]


@pytest.mark.parametrize(("kind", "wire"), WIRE_BOOKMARKS)
def test_each_shape_parses_to_its_record_and_back_exactly(kind, wire):
    bookmark = parse_bookmark("orders", wire)
    assert type(bookmark) is kind
    assert bookmark.stream == "orders"
    assert bookmark.to_dict() == wire
    assert "\n" not in bookmark.describe()
    assert bookmark.describe().startswith("orders: ")


def test_replication_key_bookmark():
    bookmark = parse_bookmark("orders", {"replication_key": "updated_at", "replication_key_value": "2024-05-01"})
    assert isinstance(bookmark, StreamBookmark)
    assert bookmark.replication_key == "updated_at"
    assert bookmark.replication_key_value == "2024-05-01"
    assert bookmark.describe() == 'orders: updated_at >= "2024-05-01"'


def test_xmin_bookmark():
    bookmark = parse_bookmark("orders", {"xmin": 7351, "version": 1})
    assert bookmark == XminPosition("orders", 7351, {"version": 1})
    assert "xmin 7351" in bookmark.describe()


def test_lsn_both_notations_mean_the_same_position():
    as_int = parse_bookmark("orders", {"lsn": 23965976})
    as_text = parse_bookmark("orders", {"lsn": "0/16DB118"})
    assert isinstance(as_int, LsnPosition)
    assert isinstance(as_text, LsnPosition)
    assert as_int.position == as_text.position == 0x16DB118
    assert as_int.text == as_text.text == "0/16DB118"
    assert LsnPosition("s", "1A/0").position == 0x1A << 32
    assert "LSN 0/16DB118" in as_int.describe()


def test_lsn_with_xmin_says_the_initial_copy_is_running():
    bookmark = parse_bookmark("orders", {"lsn": 100, "xmin": 12})
    assert isinstance(bookmark, LsnPosition)
    assert "initial copy resumes after xmin 12" in bookmark.describe()


def test_kafka_offsets():
    bookmark = parse_bookmark("events", {"topic": "events", "partitions": {"1": 17, "0": 42}})
    assert isinstance(bookmark, KafkaOffsets)
    assert bookmark.topic == "events"
    assert bookmark.offsets() == {0: 42, 1: 17}
    assert bookmark.describe() == "events: Kafka topic events next offsets 0:42, 1:17 (2 partitions)"


def test_a_non_dict_bookmark_is_kept_raw():
    bookmark = parse_bookmark("odd", [1, 2])
    assert bookmark == RawBookmark("odd", [1, 2])
    assert bookmark.to_dict() == [1, 2]
    assert bookmark.describe() == "odd: [1,2]"


def test_raw_describe_is_one_bounded_line():
    bookmark = parse_bookmark("big", {"cursor": "x" * 500})
    assert len(bookmark.describe()) <= len("big: ") + 100


def test_records_are_frozen_and_slotted():
    bookmark = XminPosition("orders", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        bookmark.xmin = 2  # type: ignore[misc]
    assert not hasattr(bookmark, "__dict__")


def test_to_dict_does_not_share_the_kafka_partitions():
    wire = {"partitions": {"0": 1}}
    bookmark = parse_bookmark("t", wire)
    bookmark.to_dict()["partitions"]["0"] = 99
    assert wire == {"partitions": {"0": 1}}


def test_parse_state_sorts_streams_and_tolerates_missing_bookmarks():
    value = {"bookmarks": {"b": {"xmin": 1}, "a": {"lsn": 5}}, "currently_syncing": "b"}
    assert [type(b) for b in parse_state(value)] == [LsnPosition, XminPosition]
    assert [b.stream for b in parse_state(value)] == ["a", "b"]
    assert parse_state(None) == []
    assert parse_state({}) == []
    assert parse_state({"bookmarks": "junk"}) == []


def test_describe_state_lines():
    value = {"bookmarks": {"a": {"xmin": 1}}, "currently_syncing": "a"}
    assert describe_state(value) == ["a: full-table copy resumes after xmin 1", "currently syncing: a"]
    assert describe_state({"bookmarks": {}}) == []


# Bookmarks as tap-postgres, tap-csv and the Singer SDK write them: each method's record reads and
# writes them back unchanged, so existing state stays readable.
TAP_BOOKMARKS = [
    ("FULL_TABLE", {"version": 1764070000000, "last_pk": [41000]}, TablePosition),
    ("FULL_TABLE", {"version": 1764070000000}, TablePosition),
    ("FULL_TABLE", {}, TablePosition),
    ("INCREMENTAL", {"replication_key": "updated_at", "replication_key_value": "2025-01-02T09:00:00+00:00"}, None),
    ("INCREMENTAL", {"replication_key": "id", "replication_key_value": 5, "version": 3}, None),
    ("XMIN", {"xmin": 7741}, XminPosition),
    ("XMIN", {"xmin": 7741, "version": 1}, XminPosition),
    ("LOG_BASED", {"lsn": 26412696}, LsnPosition),
    ("LOG_BASED", {"lsn": "0/16DB018", "version": 1}, LsnPosition),
    ("LOG_BASED", {}, LsnPosition),
    ("SOMETHING_ELSE", {"cursor": "abc"}, RawBookmark),
]


@pytest.mark.parametrize(("method", "wire", "kind"), TAP_BOOKMARKS)
def test_a_taps_read_gives_the_methods_record_and_writes_it_back_exactly(method, wire, kind):
    bookmark = read_position("orders", wire, method)
    assert type(bookmark) is (kind or StreamBookmark)
    if kind is not None:
        assert bookmark.to_dict() == wire


def test_a_taps_read_leaves_fields_not_recorded_yet_as_none():
    assert read_position("t", None, "FULL_TABLE") == TablePosition("t", None, None)
    assert read_position("t", {"version": 3}, "FULL_TABLE") == TablePosition("t", 3, None)
    assert read_position("t", {}, "XMIN") == XminPosition("t", None)
    assert read_position("t", {"xmin": 5}, "LOG_BASED") == LsnPosition("t", None, {"xmin": 5})
    incremental = read_position("t", {"replication_key": "k"}, "INCREMENTAL")
    assert incremental == StreamBookmark("t", "k", None)
    assert LsnPosition("t", 16).position == 16


@pytest.mark.parametrize(
    ("method", "wire", "says"),
    [
        ("FULL_TABLE", {"version": "1", "last_pk": [1]}, "'version' must be an integer"),
        ("FULL_TABLE", {"version": 1, "last_pk": 41}, "'last_pk' must be a list"),
        ("INCREMENTAL", {"replication_key": 3, "replication_key_value": 1}, "'replication_key' must be a column name"),
        ("XMIN", {"xmin": "7741"}, "'xmin' must be an integer"),
        ("XMIN", {"xmin": True}, "'xmin' must be an integer"),
        ("LOG_BASED", {"lsn": "yesterday"}, "'lsn' must be an LSN"),
        ("LOG_BASED", [1, 2], "expected an object"),
    ],
)
def test_a_malformed_bookmark_is_a_config_error_naming_the_stream(method, wire, says):
    with pytest.raises(ConfigError) as caught:
        read_position("public-orders", wire, method)
    assert str(caught.value).startswith("stream 'public-orders': malformed bookmark in the state: ")
    assert says in str(caught.value)


def test_table_position_describes_whether_a_read_is_in_progress():
    assert "resumes after key [41]" in TablePosition("t", 1, [41]).describe()
    assert TablePosition("t", 1).describe() == "t: full table version 1, complete"


def test_bookmarks_of_a_state_value():
    assert bookmarks_of({"bookmarks": {"a": {"xmin": 1}}}) == {"a": {"xmin": 1}}
    assert bookmarks_of(None) == {} == bookmarks_of({"bookmarks": "junk"})
