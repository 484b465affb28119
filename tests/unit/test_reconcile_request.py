"""The reconcile request (dpone_protocol/reconcile.py): what a connector accepts, the ranges that cut
points make, and the text report's wording of ranges."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import pytest

from dpone_protocol.errors import ConfigError
from dpone_protocol.reconcile import intervals, json_value, parse_request, span_bounds
from dpone_runner.reconcile.render import key_range

BASE: dict[str, Any] = {"stream": "s", "keys": ["id"], "columns": [{"name": "id", "kind": "integer"}]}


class TestRequest:
    def test_a_full_request_parses(self) -> None:
        request = parse_request(
            {
                **BASE,
                "checksum": True,
                "bounds": [1, 5],
                "spans": [[1, None]],
                "ranges": 4,
                "soft_delete_column": "_sdc_deleted_at",
            }
        )
        assert request.bounds == [1, 5] and request.spans == [(1, None)] and request.ranges == 4
        assert [c.name for c in request.checksummed] == ["id"]

    def test_json_columns_are_never_checksummed(self) -> None:
        request = parse_request(
            {**BASE, "columns": [*BASE["columns"], {"name": "doc", "kind": "json"}], "checksum": True}
        )
        assert [c.name for c in request.checksummed] == ["id"]
        assert parse_request(BASE).checksummed == []  # no checksum asked

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"stream": ""}, "names no stream"),
            ({"keys": "id"}, "keys must be a list"),
            ({"columns": [{"name": "x", "kind": "float"}]}, "kind one of integer, number"),
            ({"ranges": 0}, "ranges must be a whole number from 1 to 1000"),
            ({"ranges": True}, "ranges must be a whole number"),
            ({"bounds": 5}, "bounds must be a list"),
            ({"spans": [[1]]}, "a span is [lo, hi]"),
            ({"fetch_keys": {"span": [1, 2]}}, "fetch_keys is {span: [lo, hi], limit: N}"),
            ({"delete": [1, 2]}, "delete is a list of key tuples"),
        ],
    )
    def test_a_bad_request_says_what_is_wrong(self, change: dict[str, Any], message: str) -> None:
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("{", r"\{")):
            parse_request({**BASE, **change})


class TestRanges:
    def test_cut_points_make_open_ended_ranges(self) -> None:
        assert intervals([]) == [(None, None)]
        assert intervals([10, 20]) == [(None, 10), (10, 20), (20, None)]

    def test_span_edges_and_cuts_in_order_a_shared_edge_once(self) -> None:
        spans = [(None, 10), (10, 20), (40, None)]
        assert span_bounds(spans, [[5], [], [50, 60]]) == [5, 10, 20, 40, 50, 60]

    def test_ranges_are_written_lo_inclusive_hi_exclusive(self) -> None:
        assert key_range(None, 5) == "(-inf, 5)"
        assert key_range("a", "b") == '["a", "b")'
        assert key_range(7, None) == "[7, +inf)"


class TestKeyValues:
    @pytest.mark.parametrize(
        ("value", "wire"),
        [
            (5, 5),
            ("x", "x"),
            (decimal.Decimal("1.50"), "1.50"),
            (1.5, 1.5),
            (float("inf"), "inf"),
            (dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC), "2024-01-02T03:04:05.000006+00:00"),
            (dt.date(2024, 1, 2), "2024-01-02"),
            (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
            (None, None),
        ],
    )
    def test_key_values_travel_as_json_both_databases_cast_back(self, value: Any, wire: Any) -> None:
        assert json_value(value) == wire
