"""The state records SQL Server positions add to dpone.state.records: a CDC LSN as hex text (80 bits, too
wide for a JSON integer), a Change Tracking version and a rowversion; parsed, read by method, written back."""

from __future__ import annotations

from typing import Any

import pytest

from dpone.state.records import (
    CdcLsnPosition,
    ChangeVersionPosition,
    LsnPosition,
    RawBookmark,
    RowversionPosition,
    describe_state,
    parse_bookmark,
    read_position,
)
from dpone_protocol.errors import ConfigError

LSN = "0x0000002A000001F80003"


@pytest.mark.parametrize(
    ("kind", "wire"),
    [
        (CdcLsnPosition, {"cdc_lsn": LSN}),
        (CdcLsnPosition, {"cdc_lsn": "0xffffffffffffffffffff", "version": 1}),
        (ChangeVersionPosition, {"change_version": 1234}),
        (ChangeVersionPosition, {"change_version": 0, "note": "kept"}),
        (RowversionPosition, {"rowversion": 80012}),
        (RawBookmark, {"cdc_lsn": "0x2A"}),  # not 10 bytes
        (RawBookmark, {"cdc_lsn": 42}),
        (RawBookmark, {"change_version": "12"}),
        (RawBookmark, {"rowversion": True}),
    ],
)
def test_each_shape_parses_to_its_record_and_back_exactly(kind: type, wire: dict[str, Any]) -> None:
    bookmark = parse_bookmark("dbo-orders", wire)
    assert type(bookmark) is kind
    assert bookmark.to_dict() == wire
    assert "\n" not in bookmark.describe()


def test_an_lsn_is_80_bits_and_compares_as_an_integer() -> None:
    position = CdcLsnPosition("s", "0xFFFFFFFFFFFFFFFFFFFF")
    assert position.position == 2**80 - 1
    assert CdcLsnPosition("s", LSN).position < CdcLsnPosition("s", "0x0000002A000001F80004").position
    with pytest.raises(ValueError, match="no CDC LSN yet"):
        _ = CdcLsnPosition("s", None).position
    assert describe_state({"bookmarks": {"s": {"cdc_lsn": LSN}}}) == [f"s: SQL Server CDC from LSN {LSN}"]
    assert describe_state({"bookmarks": {"s": {"change_version": 7}, "t": {"rowversion": 9}}}) == [
        "s: SQL Server change tracking after version 7",
        "t: rows after rowversion 9",
    ]


def test_a_tap_reads_its_methods_record() -> None:
    assert read_position("s", {"cdc_lsn": LSN}, "LOG_BASED") == CdcLsnPosition("s", LSN, {})
    assert read_position("s", {}, "LOG_BASED") == LsnPosition("s", None, {})  # no position yet, PostgreSQL's or ours
    assert read_position("s", {"change_version": 3}, "CHANGE_TRACKING") == ChangeVersionPosition("s", 3, {})
    assert read_position("s", None, "CHANGE_TRACKING") == ChangeVersionPosition("s", None, {})
    assert read_position("s", {"rowversion": 5, "x": 1}, "ROWVERSION") == RowversionPosition("s", 5, {"x": 1})
    assert RowversionPosition("s", None).to_dict() == {}


@pytest.mark.parametrize(
    ("bookmark", "method", "wanted"),
    [
        ({"cdc_lsn": "0/16DB018"}, "LOG_BASED", "'cdc_lsn' must be a SQL Server LSN ('0x' and 20 hex digits)"),
        ({"change_version": "7"}, "CHANGE_TRACKING", "'change_version' must be an integer (a change tracking version)"),
        ({"rowversion": 1.5}, "ROWVERSION", "'rowversion' must be an integer (a rowversion as a bigint)"),
    ],
)
def test_a_malformed_position_is_a_config_error_naming_the_stream(
    bookmark: dict[str, Any], method: str, wanted: str
) -> None:
    with pytest.raises(ConfigError, match=r"stream 'dbo-orders': malformed bookmark") as raised:
        read_position("dbo-orders", bookmark, method)
    assert wanted in str(raised.value)
