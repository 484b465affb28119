"""Merging partial states, clearing one stream, and canonical bytes for comparison."""

from __future__ import annotations

import copy

import pytest

from dpone.state.merge import canonical, clear_stream, merge_state
from dpone_protocol.errors import DataError

OLD = {
    "bookmarks": {"a": {"xmin": 1}, "b": {"replication_key": "id", "replication_key_value": 5}},
    "currently_syncing": "b",
    "tap_version": "1",
}


def test_merge_into_nothing_is_the_new_state():
    new = {"bookmarks": {"a": {"xmin": 2}}}
    assert merge_state(None, new) == new
    assert merge_state({}, new) == new


def test_partial_state_keeps_streams_it_does_not_mention():
    new = {"bookmarks": {"b": {"replication_key": "id", "replication_key_value": 9}, "c": {"lsn": 7}}}
    merged = merge_state(OLD, new)
    assert merged["bookmarks"] == {
        "a": {"xmin": 1},
        "b": {"replication_key": "id", "replication_key_value": 9},
        "c": {"lsn": 7},
    }


def test_a_stream_bookmark_is_replaced_whole_not_merged_key_by_key():
    merged = merge_state({"bookmarks": {"a": {"lsn": 1, "xmin": 3}}}, {"bookmarks": {"a": {"lsn": 2}}})
    assert merged["bookmarks"]["a"] == {"lsn": 2}


def test_top_level_keys_from_new_win_and_old_ones_stay():
    merged = merge_state(OLD, {"currently_syncing": None, "bookmarks": {}})
    assert merged["currently_syncing"] is None
    assert merged["tap_version"] == "1"
    assert merged["bookmarks"] == OLD["bookmarks"]


def test_new_without_bookmarks_keeps_the_old_ones():
    assert merge_state(OLD, {"currently_syncing": "a"})["bookmarks"] == OLD["bookmarks"]


def test_merge_does_not_modify_its_inputs():
    old, new = copy.deepcopy(OLD), {"bookmarks": {"z": {"xmin": 1}}, "x": 1}
    merge_state(old, new)
    assert old == OLD
    assert new == {"bookmarks": {"z": {"xmin": 1}}, "x": 1}


def test_non_dict_bookmarks_in_new_win():
    assert merge_state(OLD, {"bookmarks": None})["bookmarks"] is None


def test_clear_stream_removes_its_bookmark_and_currently_syncing():
    cleared = clear_stream(OLD, "b")
    assert cleared["bookmarks"] == {"a": {"xmin": 1}}
    assert "currently_syncing" not in cleared
    assert cleared["tap_version"] == "1"
    assert OLD["bookmarks"]["b"]  # the input is untouched


def test_clear_stream_keeps_currently_syncing_of_another_stream():
    cleared = clear_stream(OLD, "a")
    assert cleared["currently_syncing"] == "b"
    assert set(cleared["bookmarks"]) == {"b"}


def test_clear_unknown_stream_or_state_without_bookmarks():
    assert clear_stream(OLD, "nope") == OLD
    assert clear_stream({}, "a") == {}


def test_canonical_ignores_key_order():
    assert canonical({"b": 1, "a": {"y": 2, "x": 1}}) == canonical({"a": {"x": 1, "y": 2}, "b": 1})
    assert canonical({"b": 1, "a": 2}) == b'{"a":2,"b":1}'
    assert canonical({"a": 1}) != canonical({"a": 2})


def test_canonical_rejects_values_that_are_not_json():
    with pytest.raises(DataError, match="not JSON"):
        canonical({"a": object()})
    with pytest.raises(DataError):
        canonical({1: "non-string key"})
