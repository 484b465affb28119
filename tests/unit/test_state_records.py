"""Typed state records: each Singer bookmark shape parses to its record and back, unchanged."""

from __future__ import annotations

import dataclasses

import pytest

from state.records import (
    KafkaOffsets,
    LsnPosition,
    RawBookmark,
    StreamBookmark,
    XminPosition,
    describe_state,
    parse_bookmark,
    parse_state,
)

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
    (KafkaOffsets, {"topic": "orders", "partitions": {"0": 42, "1": 17}}),
    (KafkaOffsets, {"partitions": {}, "end_offsets": {"0": 50}}),
    (RawBookmark, {"partitions": [{"context": {"id": 1}, "replication_key_value": 5}]}),
    (RawBookmark, {"replication_key": None, "replication_key_value": 1}),
    (RawBookmark, {"xmin": True}),
    (RawBookmark, {"lsn": "not an lsn"}),
    (RawBookmark, {"cursor": "abc"}),
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
    assert bookmark.describe() == 'orders: updated_at > "2024-05-01"'


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
