"""tap-rest's streams against a real HTTP server (tests/tools/rest_api.py): incremental reads and the
STATE they promise, parent/child streams and their per-partition bookmarks, inferred and declared
schemas, and a shell-style pipe into target-jsonl.

Pagination, auth and faults have files of their own; here each pagination kind appears only where
a stream feature could depend on it (the replication parameter must ride along on every page).
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import Run
from tests.kit.kit import process_command, process_env
from tests.tools.rest_api import FakeApi, RecordedRequest, sample_rows
from tests.tools.rest_tap import FAST_FAILURE as FAST
from tests.tools.rest_tap import ROUTES, RestRunner, route_stream

Row = dict[str, Any]
Stream = dict[str, Any]


@pytest.fixture(scope="module")
def api() -> Iterator[FakeApi]:
    with FakeApi() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh_api(api: FakeApi) -> None:
    api.reset()


@dataclass
class Tap(RestRunner):
    """tap-rest in-process, each run's config, state and catalog written to files as a user would."""

    api: FakeApi | None = None

    def config(self, streams: list[Stream], **settings: Any) -> dict[str, Any]:
        assert self.api is not None
        return {"api_url": self.api.url, **FAST, "streams": streams, **settings}

    def run(  # type: ignore[override]  # streams and settings, not a whole config
        self,
        streams: list[Stream],
        *args: str,
        state: Any = None,
        catalog: Any = None,
        **settings: Any,
    ) -> Run:
        return super().run(self.config(streams, **settings), *args, state=state, catalog=catalog)

    def sync(self, streams: list[Stream], **kwargs: Any) -> Run:
        result = self.run(streams, **kwargs)
        assert result.rc == 0, result.stderr
        return result

    def discover(self, streams: list[Stream], **settings: Any) -> dict[str, Any]:
        result = self.run(streams, "--discover", **settings)
        assert result.rc == 0, result.stderr
        catalog: dict[str, Any] = orjson.loads(result.stdout)
        return catalog


@pytest.fixture
def tap(api: FakeApi, tmp_path: Path) -> Tap:
    return Tap(tmp_path, api=api)


def records(result: Run, stream: str) -> list[Row]:
    return [m["record"] for m in result.messages if m["type"] == "RECORD" and m["stream"] == stream]


def ids(result: Run, stream: str) -> list[Any]:
    return [r["id"] for r in records(result, stream)]


def final_state(result: Run) -> dict[str, Any]:
    state = result.states[-1]
    assert result.messages[-1]["type"] == "STATE", "the run must end with a STATE"
    return state


def bookmark(result: Run, stream: str) -> Any:
    return final_state(result)["bookmarks"][stream]


def schema_of(result: Run, stream: str) -> dict[str, Any]:
    (message,) = [m for m in result.messages if m["type"] == "SCHEMA" and m["stream"] == stream]
    schema: dict[str, Any] = message["schema"]
    return schema


def data_requests(api: FakeApi, path: str) -> list[RecordedRequest]:
    return [r for r in api.requests if r.path == path]


def rk_state(stream: str, value: Any, key: str = "updated_at") -> dict[str, Any]:
    return {"bookmarks": {stream: {"replication_key": key, "replication_key_value": value}}}


def at(minute: int) -> str:
    """sample_rows' updated_at of row `minute`."""
    return f"2024-01-01T00:{minute:02d}:00Z"


def catalog_selecting(catalog: dict[str, Any], wanted: set[str], drop: Mapping[str, str] | None = None) -> Any:
    """The discovered catalog with only `wanted` streams selected, and `drop` (stream -> property) deselected."""
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] in wanted
            elif drop and drop.get(entry["tap_stream_id"]) == item["breadcrumb"][-1]:
                item["metadata"]["selected"] = False
    return catalog


# Each pagination kind over the same rows, 3 a page (the `params` ask the API for that size).
PAGINATIONS: dict[str, Stream] = {
    kind: {k: v for k, v in route_stream("items", kind, size=3).items() if k != "name"} for kind in ROUTES
}


ITEM_SCHEMA = {
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["null", "string"]},
        "updated_at": {"type": ["null", "string"], "format": "date-time"},
    }
}


def items(kind: str = "page", **extra: Any) -> Stream:
    """sample_rows as the stream "items"; its schema declared, so every request is the read's."""
    return {"name": "items", "primary_keys": ["id"], "schema": ITEM_SCHEMA, **PAGINATIONS[kind], **extra}


# --- incremental -----------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 3])
@pytest.mark.parametrize("kind", list(PAGINATIONS))
class TestReplicationParam:
    """The API filters: every page's request carries the start value (start_date, then the bookmark)."""

    def test_start_date_then_the_bookmark_go_out_on_every_page(
        self, tap: Tap, api: FakeApi, kind: str, concurrency: int
    ) -> None:
        api.put("items", sample_rows(10))
        stream = items(kind, replication_key="updated_at", replication_param="updated_since")
        first = tap.sync([stream], start_date=at(4), concurrency=concurrency)
        assert ids(first, "items") == list(range(4, 11))
        sent = [r.query.get("updated_since") for r in api.requests]
        assert len(sent) >= (1 if kind == "none" else 3) and set(sent) == {at(4)}, sent
        assert bookmark(first, "items") == {"replication_key": "updated_at", "replication_key_value": at(10)}

        api.put("items", sample_rows(12)[10:])
        api.clear_log()
        second = tap.sync([stream], state=final_state(first), start_date=at(4), concurrency=concurrency)
        assert {r.query.get("updated_since") for r in api.requests} == {at(10)}
        assert ids(second, "items") == [10, 11, 12]  # the row at the bookmark comes again: >=, not >
        assert bookmark(second, "items")["replication_key_value"] == at(12)

    def test_without_start_date_or_bookmark_the_parameter_is_left_out(
        self, tap: Tap, api: FakeApi, kind: str, concurrency: int
    ) -> None:
        api.put("items", sample_rows(7))
        stream = items(kind, replication_key="updated_at", replication_param="updated_since")
        result = tap.sync([stream], concurrency=concurrency)
        assert ids(result, "items") == list(range(1, 8))
        assert all("updated_since" not in r.query for r in api.requests)
        assert bookmark(result, "items")["replication_key_value"] == at(7)


class TestTapSideFilter:
    """Without replication_param the API sends everything: the tap drops what is older than the start."""

    @pytest.mark.parametrize("kind", ["none", "page", "cursor"])
    def test_older_records_are_dropped_and_ties_at_the_bookmark_come_again(
        self, tap: Tap, api: FakeApi, kind: str
    ) -> None:
        api.put("items", sample_rows(10))
        stream = items(kind, replication_key="updated_at")
        result = tap.sync([stream], state=rk_state("items", at(6)))
        assert ids(result, "items") == [6, 7, 8, 9, 10]
        assert bookmark(result, "items")["replication_key_value"] == at(10)
        assert all(set(r.query) <= {"page", "per_page", "cursor", "limit"} for r in api.requests)

    def test_start_date_bounds_a_first_run(self, tap: Tap, api: FakeApi) -> None:
        api.put("items", sample_rows(10))
        result = tap.sync([items("none", replication_key="updated_at")], start_date="2024-01-01T00:08:00+00:00")
        assert ids(result, "items") == [8, 9, 10]

    def test_a_record_without_the_replication_key_is_kept(self, tap: Tap, api: FakeApi) -> None:
        api.put("items", [*sample_rows(3), {"id": 4, "name": "no date"}])
        result = tap.sync([items("none", replication_key="updated_at")], state=rk_state("items", at(3)))
        assert ids(result, "items") == [3, 4]
        assert bookmark(result, "items")["replication_key_value"] == at(3)


# Replication-key values whose text order is not their order: only comparing them as what they are works.
KEY_FORMS: dict[str, tuple[str, list[Row], Any, list[int], Any]] = {
    # (key, rows, committed value, ids sent on the next run, its final bookmark)
    "iso_z": (
        "updated_at",
        [
            {"id": 1, "updated_at": "2024-01-01T08:59:59Z"},
            {"id": 2, "updated_at": "2024-01-01T09:00:00Z"},
            {"id": 3, "updated_at": "2024-01-01T09:00:00.5Z"},
            {"id": 4, "updated_at": "2024-12-31T23:59:59Z"},
            {"id": 5, "updated_at": "2024-02-01T00:00:00Z"},
        ],
        "2024-01-01T09:00:00Z",
        [2, 3, 4, 5],
        "2024-12-31T23:59:59Z",
    ),
    "offsets": (
        "updated_at",
        [
            {"id": 1, "updated_at": "2024-01-01T10:30:00+02:00"},  # 08:30Z: older, though its text is greater
            {"id": 2, "updated_at": "2024-01-01T08:30:00-02:00"},  # 10:30Z: the newest, though its text is least
            {"id": 3, "updated_at": "2024-01-01T11:00:00+02:00"},  # 09:00Z: the bookmark itself
            {"id": 4, "updated_at": "2024-01-01T09:45:00Z"},
        ],
        "2024-01-01T11:00:00+02:00",  # 09:00Z; the + must survive the query string
        [2, 3, 4],
        "2024-01-01T08:30:00-02:00",
    ),
    "integers": (
        "seq",
        [{"id": 1, "seq": 1}, {"id": 2, "seq": 9}, {"id": 3, "seq": 10}, {"id": 4, "seq": 100}, {"id": 5, "seq": 8}],
        9,
        [2, 3, 4],
        100,
    ),
}


@pytest.mark.parametrize("param", [False, True], ids=["tap_filters", "api_filters"])
@pytest.mark.parametrize("form", list(KEY_FORMS))
class TestReplicationKeyForms:
    def test_values_compare_as_instants_or_numbers_not_as_text(
        self, tap: Tap, api: FakeApi, form: str, param: bool
    ) -> None:
        key, rows, committed, expected, newest = KEY_FORMS[form]
        api.put("events", rows)
        declared = {"properties": {"id": {"type": "integer"}, key: {}}}
        stream: Stream = {"name": "events", "path": "/plain/events", "replication_key": key, "schema": declared}
        if param:
            stream["replication_param"] = f"{key}_since"
        result = tap.sync([stream], state=rk_state("events", committed, key))
        assert ids(result, "events") == expected
        assert bookmark(result, "events") == {"replication_key": key, "replication_key_value": newest}
        if param:
            (request,) = api.requests
            assert request.query[f"{key}_since"] == str(committed)

    def test_a_first_run_reads_everything_and_bookmarks_the_newest(
        self, tap: Tap, api: FakeApi, form: str, param: bool
    ) -> None:
        key, rows, _, _, newest = KEY_FORMS[form]
        api.put("events", rows)
        stream: Stream = {"name": "events", "path": "/plain/events", "replication_key": key, "is_sorted": param}
        if param:  # sorted by the API, as is_sorted promises
            stream["params"] = {"sort": key}
        result = tap.sync([stream])
        assert sorted(ids(result, "events")) == sorted(r["id"] for r in rows)
        assert bookmark(result, "events")["replication_key_value"] == newest


def test_start_date_does_not_bound_an_integer_replication_key(tap: Tap, api: FakeApi) -> None:
    api.put("events", KEY_FORMS["integers"][1])
    stream: Stream = {"name": "events", "path": "/plain/events", "replication_key": "seq"}
    result = tap.sync([stream], start_date="2024-01-01T00:00:00Z")
    assert ids(result, "events") == [1, 2, 3, 4, 5]
    assert bookmark(result, "events")["replication_key_value"] == 100


@pytest.mark.parametrize("concurrency", [1, 3])
def test_is_sorted_on_an_api_that_does_not_sort_stops_and_takes_back_its_promise(
    tap: Tap, api: FakeApi, concurrency: int
) -> None:
    # Newest first: the first STATE would promise the newest value while older ones are still to come.
    api.put("items", sample_rows(12))
    stream = items(is_sorted=True, replication_key="updated_at", params={"sort": "-updated_at"})
    committed = {
        "bookmarks": {"items": {"replication_key": "updated_at", "replication_key_value": "2024-01-01T00:00:00Z"}}
    }
    result = tap.run([stream], state=committed, state_every_rows=2, concurrency=concurrency)
    assert result.rc == 65, result.stderr
    assert "is_sorted is set, but updated_at goes down on page" in result.stderr
    # Whatever the run promised on the way, its last word is where it started: nothing is skipped next time.
    assert result.states[-1] == committed


def test_one_value_that_is_not_a_date_time_does_not_poison_the_bookmark(tap: Tap, api: FakeApi) -> None:
    api.put("events", [{"id": 1, "updated_at": at(1)}, {"id": 2, "updated_at": ""}, {"id": 3, "updated_at": at(3)}])
    stream: Stream = {"name": "events", "path": "/plain/events", "replication_key": "updated_at"}
    first = tap.sync([stream])
    assert ids(first, "events") == [1, 2, 3]
    api.put("events", [{"id": 4, "updated_at": at(4)}])
    second = tap.sync([stream], state=final_state(first))
    assert 4 in ids(second, "events")
    assert bookmark(second, "events")["replication_key_value"] == at(4)


@pytest.mark.parametrize("output", ["as_sent", "projected"])
class TestStateCadence:
    """Sorted: a STATE every state_every_rows holds the newest value sent. Unsorted: the start value
    until the end, since an older record may still come."""

    EVERY = 3

    def _run(self, tap: Tap, api: FakeApi, output: str, is_sorted: bool, params: Mapping[str, str]) -> Run:
        api.put("items", sample_rows(20))
        stream = items("page", replication_key="updated_at", is_sorted=is_sorted, params=dict(params))
        stream["pagination"] = {**stream["pagination"], "page_size": 4}
        settings: dict[str, Any] = {"state_every_rows": self.EVERY, "start_date": at(2)}
        catalog = None
        if output == "projected":  # a deselected property: records go through the per-record path
            catalog = catalog_selecting(tap.discover([stream], **settings), {"items"}, {"items": "name"})
        result = tap.sync([stream], catalog=catalog, **settings)
        if output == "projected":
            assert all("name" not in r for r in records(result, "items"))
        return result

    def test_sorted_stream_checkpoints_the_newest_value_sent(self, tap: Tap, api: FakeApi, output: str) -> None:
        result = self._run(tap, api, output, True, {})
        assert ids(result, "items") == list(range(2, 21))
        sent: list[str] = []
        mid = []
        for message in result.messages:
            if message["type"] == "RECORD":
                sent.append(message["record"]["updated_at"])
            elif message["type"] == "STATE":
                value = message["value"]["bookmarks"]["items"]["replication_key_value"]
                assert value == max(sent), "a STATE must promise exactly the records sent before it"
                mid.append(len(sent))
        assert len(mid) >= 19 // (2 * self.EVERY), mid
        gaps = [b - a for a, b in itertools.pairwise([0, *mid])]
        assert max(gaps) < 2 * self.EVERY, f"records between STATEs: {gaps}"

    def test_unsorted_stream_moves_its_bookmark_only_at_the_end(self, tap: Tap, api: FakeApi, output: str) -> None:
        result = self._run(tap, api, output, False, {"sort": "-id"})  # newest first
        assert ids(result, "items") == list(range(20, 1, -1))
        values = [s["bookmarks"]["items"]["replication_key_value"] for s in result.states]
        assert len(values) >= 3
        assert values[:-1] == [at(2)] * (len(values) - 1)
        assert values[-1] == at(20)


@pytest.mark.parametrize("concurrency", [1, 3])
@pytest.mark.parametrize("param", [False, True], ids=["tap_filters", "api_filters"])
def test_resume_from_a_mid_stream_state_of_a_sorted_stream_loses_no_record(
    tap: Tap, api: FakeApi, param: bool, concurrency: int
) -> None:
    rows = sample_rows(14)
    api.put("resumed", rows)
    stream: Stream = {
        "name": "resumed",
        "path": "/page/resumed",
        "records_path": "$.data",
        "schema": ITEM_SCHEMA,
        "replication_key": "updated_at",
        "is_sorted": True,
        "params": {"per_page": 3},
        "pagination": {"type": "page"},
    }
    if param:
        stream["replication_param"] = "updated_since"
    api.fault("/page/resumed?per_page=3&page=4", "status", status=400)
    broken = tap.run([stream], state_every_rows=2, concurrency=concurrency)
    assert broken.rc == 78, broken.stderr
    sent_before = ids(broken, "resumed")
    assert sent_before == list(range(1, 10))
    last = broken.states[-1]
    assert last["bookmarks"]["resumed"]["replication_key_value"] == at(9), "the STATE before the error covers page 3"

    resumed = tap.sync([stream], state=last, state_every_rows=2, concurrency=concurrency)
    assert ids(resumed, "resumed") == list(range(9, 15))  # from the bookmark on, the tie again
    assert set(sent_before) | set(ids(resumed, "resumed")) == {r["id"] for r in rows}


# --- parent and child streams ------------------------------------------------------------------------

USERS = [{"id": 1, "code": "u-1", "name": "ann"}, {"id": 2, "code": "u-2", "name": "bob"}, {"id": 3, "code": "u-3"}]


def orders_of(users: list[Row], per_user: int = 2, key: str = "id") -> list[Row]:
    rows = []
    for number, user in enumerate(users):
        for k in range(per_user):
            oid = 100 * (number + 1) + k
            rows.append({"id": oid, "parent_id": user[key], "total": oid * 1.5, "updated_at": at(10 * number + k)})
    return rows


def users_stream(**extra: Any) -> Stream:
    return {"name": "users", "path": "/plain/users", "primary_keys": ["id"], **extra}


def orders_stream(**extra: Any) -> Stream:
    return {"name": "orders", "path": "/plain/users/{id}/orders", "parent": "users", "primary_keys": ["id"], **extra}


class TestChildStreams:
    def test_default_parent_keys_carry_each_path_field_first(self, tap: Tap, api: FakeApi) -> None:
        api.put("users", USERS)
        api.put("orders", orders_of(USERS, key="code"))
        # {code} in the path: parent_code is carried (the API's own rows say parent_id).
        result = tap.sync([users_stream(), orders_stream(path="/plain/users/{code}/orders")])
        got = records(result, "orders")
        assert [(r["parent_code"], r["id"]) for r in got] == [
            ("u-1", 100),
            ("u-1", 101),
            ("u-2", 200),
            ("u-2", 201),
            ("u-3", 300),
            ("u-3", 301),
        ]
        assert all(next(iter(r)) == "parent_code" for r in got), "carried fields come first"
        properties = schema_of(result, "orders")["properties"]
        assert next(iter(properties)) == "parent_code"
        assert properties["parent_code"] == schema_of(result, "users")["properties"]["code"]
        assert [r.path for r in api.requests if "/orders" in r.path] == [
            f"/plain/users/u-{i}/orders" for i in (1, 2, 3)
        ] * 2  # discovery's sample, then the read

    @pytest.mark.parametrize("output", ["as_sent", "projected"])
    def test_explicit_parent_keys_are_carried_and_typed_like_the_parent_field(
        self, tap: Tap, api: FakeApi, output: str
    ) -> None:
        api.put("users", USERS)
        api.put("orders", orders_of(USERS))
        declared = {"properties": {"id": {"type": "integer", "minimum": 1}, "code": {"type": "string"}}}
        streams = [users_stream(schema=declared), orders_stream(parent_keys={"user_id": "id", "user_code": "code"})]
        catalog = None
        if output == "projected":  # a deselected property: records go through the per-record path
            catalog = catalog_selecting(tap.discover(streams), {"users", "orders"}, {"orders": "total"})
        result = tap.sync(streams, catalog=catalog)
        got = records(result, "orders")
        assert [list(r)[:2] for r in got] == [["user_id", "user_code"]] * 6
        assert [(r["user_id"], r["user_code"], r["id"]) for r in got][:3] == [
            (1, "u-1", 100),
            (1, "u-1", 101),
            (2, "u-2", 200),
        ]
        assert ("total" in got[0]) == (output == "as_sent")
        properties = schema_of(result, "orders")["properties"]
        assert list(properties)[:2] == ["user_id", "user_code"]
        assert properties["user_id"] == {"type": "integer", "minimum": 1}
        assert properties["user_code"] == {"type": "string"}
        own = ["id", "parent_id", "total", "updated_at"]
        assert list(properties)[2:] == [p for p in own if p != "total" or output == "as_sent"]

    def test_a_child_record_keeps_its_own_value_of_a_carried_field(self, tap: Tap, api: FakeApi) -> None:
        api.put("users", USERS)
        api.put("orders", [{**o, "name": f"order {o['id']}"} for o in orders_of(USERS)])
        result = tap.sync([users_stream(), orders_stream(parent_keys={"parent_id": "id", "name": "name"})])
        got = records(result, "orders")
        assert {r["name"] for r in got} == {f"order {o['id']}" for o in orders_of(USERS)}
        assert all(r["parent_id"] == r["id"] // 100 for r in got)
        properties = schema_of(result, "orders")["properties"]
        assert properties["name"] == {"type": ["null", "string"]}

    def test_a_grandchild_reads_per_child_record_and_carries_keys_down(self, tap: Tap, api: FakeApi) -> None:
        api.put("users", USERS[:2])
        api.put("orders", orders_of(USERS[:2]))
        api.put(
            "lines", [{"id": oid * 10 + n, "parent_id": oid, "qty": n} for oid in (100, 101, 200, 201) for n in (1, 2)]
        )
        lines = {
            "name": "lines",
            "path": "/plain/orders/{id}/lines",
            "parent": "orders",
            "parent_keys": {"user_id": "user_id", "order_id": "id"},
        }
        # The grandchild first: streams are built parents first whatever the config's order.
        result = tap.sync([lines, users_stream(), orders_stream(parent_keys={"user_id": "id"})])
        got = records(result, "lines")
        assert [(r["user_id"], r["order_id"], r["id"]) for r in got] == [
            (1, 100, 1001),
            (1, 100, 1002),
            (1, 101, 1011),
            (1, 101, 1012),
            (2, 200, 2001),
            (2, 200, 2002),
            (2, 201, 2011),
            (2, 201, 2012),
        ]
        assert all(list(r)[:2] == ["user_id", "order_id"] for r in got)
        properties = schema_of(result, "lines")["properties"]
        assert list(properties)[:2] == ["user_id", "order_id"]
        assert properties["user_id"] == properties["order_id"] == {"type": ["null", "integer"]}
        assert [m["stream"] for m in result.messages if m["type"] == "SCHEMA"] == ["lines", "users", "orders"]

    def test_a_child_selected_without_its_parent_still_reads(self, tap: Tap, api: FakeApi) -> None:
        api.put("users", USERS)
        api.put("orders", orders_of(USERS))
        streams = [users_stream(), orders_stream(parent_keys={"user_id": "id"})]
        catalog = catalog_selecting(tap.discover(streams), {"orders"})
        parent_meta = next(e for e in catalog["streams"] if e["tap_stream_id"] == "orders")["metadata"][0]
        assert parent_meta["metadata"]["parent-tap-stream-id"] == "users"
        result = tap.sync(streams, catalog=catalog)
        assert {m["stream"] for m in result.messages if m["type"] != "STATE"} == {"orders"}
        assert [(r["user_id"], r["id"]) for r in records(result, "orders")] == [
            (1, 100),
            (1, 101),
            (2, 200),
            (2, 201),
            (3, 300),
            (3, 301),
        ]

    def test_a_parent_record_without_the_path_field_is_a_data_error(self, tap: Tap, api: FakeApi) -> None:
        api.put("users", [USERS[0], {"id": 2, "name": "no code"}])
        api.put("orders", orders_of(USERS[:1], key="code"))
        declared = {"properties": {"id": {"type": "integer"}}}
        result = tap.run([users_stream(), orders_stream(path="/plain/users/{code}/orders", schema=declared)])
        assert result.rc == 65, result.stderr
        error = result.stderr.strip().splitlines()[-1]
        assert error.startswith("tap-rest: data error:")
        assert "code" in error and "'orders'" in error and "no code" in error, error

    def test_a_parent_path_field_inside_an_object(self, tap: Tap, api: FakeApi) -> None:
        api.put("users", [{"id": 1, "owner": {"ref": 7}}, {"id": 2, "owner": {"ref": 8}}])
        api.put("orders", [{"id": 70, "parent_id": 7}, {"id": 80, "parent_id": 8}])
        result = tap.sync([users_stream(), orders_stream(path="/plain/users/{owner.ref}/orders")])
        assert [(r["parent_owner.ref"], r["id"]) for r in records(result, "orders")] == [(7, 70), (8, 80)]

    def test_a_carried_field_from_inside_an_object_is_typed_like_it(self, tap: Tap, api: FakeApi) -> None:
        api.put("users", [{"id": 1, "owner": {"ref": 7}}, {"id": 2, "owner": {"ref": 8}}])
        api.put("orders", [{"id": 70, "parent_id": 7}, {"id": 80, "parent_id": 8}])
        result = tap.sync([users_stream(), orders_stream(path="/plain/users/{owner.ref}/orders")])
        owner = schema_of(result, "users")["properties"]["owner"]
        assert schema_of(result, "orders")["properties"]["parent_owner.ref"] == owner["properties"]["ref"]

    def test_a_path_value_is_quoted_and_a_repeated_one_is_read_once(self, tap: Tap, api: FakeApi) -> None:
        api.put("users", [{"id": 1, "code": "a/b c"}, {"id": 2, "code": "a/b c"}, {"id": 3, "code": "x?y#z"}])
        result = tap.sync([users_stream(), orders_stream(path="/plain/users/{code}/orders")])
        assert [r.target for r in api.requests if "orders" in r.target][-2:] == [
            "/plain/users/a%2Fb%20c/orders",
            "/plain/users/x%3Fy%23z/orders",
        ]
        assert records(result, "orders") == []

    @pytest.mark.parametrize("concurrency", [1, 3])
    def test_paged_children_with_pages_fetched_ahead_keep_their_order(
        self, tap: Tap, api: FakeApi, concurrency: int
    ) -> None:
        users = [{"id": i} for i in range(1, 6)]
        api.put("users", users)
        api.put("orders", [{"id": 100 * u + k, "parent_id": u} for u in range(1, 6) for k in range(u)])  # 1..5 each
        paged = {"type": "page", "page_size_param": "per_page", "page_size": 2}
        streams = [
            users_stream(path="/page/users", records_path="$.data", pagination=paged),
            orders_stream(path="/page/users/{id}/orders", records_path="$.data", pagination=paged),
        ]
        catalog = tap.discover(streams)
        api.clear_log()
        result = tap.sync(streams, catalog=catalog, concurrency=concurrency)
        assert ids(result, "users") == [1, 2, 3, 4, 5]
        assert ids(result, "orders") == [100 * u + k for u in range(1, 6) for k in range(u)]
        for user in range(1, 6):
            pages = [int(r.query["page"]) for r in data_requests(api, f"/page/users/{user}/orders")]
            needed = user // 2 + 1  # the last page is the short (or empty) one
            assert sorted(pages)[:needed] == list(range(1, needed + 1)), (user, pages)
            assert len(set(pages)) == len(pages), f"a page asked for twice: {pages}"
            assert len(pages) <= needed + concurrency - 1, "fetched ahead past the end by more than it must"


ORDER_SCHEMA = {
    "properties": {"id": {"type": "integer"}, "total": {"type": "number"}, "updated_at": {"type": "string"}}
}


class TestChildBookmarks:
    # The child's schema declared: every child request is the read's.
    STREAMS: tuple[Stream, ...] = (
        users_stream(),
        orders_stream(replication_key="updated_at", replication_param="updated_since", schema=ORDER_SCHEMA),
    )

    def test_one_partition_per_parent_record_each_resuming_from_its_own_value(self, tap: Tap, api: FakeApi) -> None:
        api.put("users", USERS)
        api.put("orders", orders_of(USERS))
        first = tap.sync(list(self.STREAMS), start_date=at(0))
        assert bookmark(first, "orders") == {
            "partitions": [
                {"context": {"parent_id": 1}, "replication_key": "updated_at", "replication_key_value": at(1)},
                {"context": {"parent_id": 2}, "replication_key": "updated_at", "replication_key_value": at(11)},
                {"context": {"parent_id": 3}, "replication_key": "updated_at", "replication_key_value": at(21)},
            ]
        }
        assert {r.query.get("updated_since") for r in data_requests(api, "/plain/users/2/orders")} == {at(0)}

        api.put("users", [{"id": 4}])
        api.put(
            "orders",
            [{"id": 401, "parent_id": 4, "updated_at": at(40)}, {"id": 102, "parent_id": 1, "updated_at": at(5)}],
        )
        api.clear_log()
        second = tap.sync(list(self.STREAMS), state=final_state(first), start_date=at(0))
        sent = {r.path: r.query.get("updated_since") for r in api.requests if r.path.endswith("/orders")}
        assert sent == {
            "/plain/users/1/orders": at(1),
            "/plain/users/2/orders": at(11),
            "/plain/users/3/orders": at(21),
            "/plain/users/4/orders": at(0),  # a new parent starts from start_date
        }
        assert ids(second, "orders") == [101, 102, 201, 301, 401]  # each partition's tie comes again
        values = {
            e["context"]["parent_id"]: e["replication_key_value"] for e in bookmark(second, "orders")["partitions"]
        }
        assert values == {1: at(5), 2: at(11), 3: at(21), 4: at(40)}

    def test_a_partition_whose_parent_is_gone_keeps_its_bookmark(self, tap: Tap, api: FakeApi) -> None:
        api.put("users", USERS)
        api.put("orders", orders_of(USERS))
        first = tap.sync(list(self.STREAMS))
        api.clear()
        api.clear_log()
        api.put("users", USERS[:2])
        api.put("orders", orders_of(USERS[:2]))
        second = tap.sync(list(self.STREAMS), state=final_state(first))
        assert data_requests(api, "/plain/users/3/orders") == []
        partitions = bookmark(second, "orders")["partitions"]
        assert {"context": {"parent_id": 3}, "replication_key": "updated_at", "replication_key_value": at(21)} in (
            partitions
        )
        assert len(partitions) == 3

    @pytest.mark.parametrize("is_sorted", [False, True])
    def test_a_mid_stream_state_promises_only_what_each_partition_has_sent(
        self, tap: Tap, api: FakeApi, is_sorted: bool
    ) -> None:
        api.put("users", USERS)
        api.put("orders", orders_of(USERS, per_user=4))
        streams = [self.STREAMS[0], {**self.STREAMS[1], "is_sorted": is_sorted}]
        result = tap.sync(streams, state_every_rows=2)
        sent: dict[int, list[str]] = {}
        checked = 0
        for message in result.messages:
            if message["type"] == "RECORD" and message["stream"] == "orders":
                sent.setdefault(message["record"]["parent_id"], []).append(message["record"]["updated_at"])
            elif message["type"] == "STATE" and "orders" in message["value"].get("bookmarks", {}):
                orders = message["value"]["bookmarks"]["orders"]
                assert set(orders) == {"partitions"}
                for entry in orders["partitions"]:
                    assert set(entry) == {"context", "replication_key", "replication_key_value"}
                    assert entry["replication_key_value"] <= max(sent[entry["context"]["parent_id"]])
                checked += 1
        assert checked >= 5
        final = {
            e["context"]["parent_id"]: e["replication_key_value"] for e in bookmark(result, "orders")["partitions"]
        }
        assert final == {parent: max(values) for parent, values in sent.items()}

    @pytest.mark.parametrize("is_sorted", [False, True])
    def test_a_failure_inside_a_partition_resumes_without_losing_a_record(
        self, tap: Tap, api: FakeApi, is_sorted: bool
    ) -> None:
        users = [{"id": i} for i in (1, 2, 3)]
        api.put("users", users)
        api.put("orders", orders_of(users, per_user=5))
        child = orders_stream(
            path="/page/users/{id}/orders",
            records_path="$.data",
            schema=ORDER_SCHEMA,
            replication_key="updated_at",
            is_sorted=is_sorted,
            params={"per_page": 2},
            pagination={"type": "page"},
        )
        api.fault("/page/users/2/orders?per_page=2&page=2", "status", status=400)
        broken = tap.run([users_stream(), child], state_every_rows=1, start_date=at(0))
        assert broken.rc == 78, broken.stderr
        before = ids(broken, "orders")
        assert before == [100, 101, 102, 103, 104, 200, 201]
        last = broken.states[-1]["bookmarks"]["orders"]["partitions"]
        values = {e["context"]["parent_id"]: e["replication_key_value"] for e in last}
        # Partition 1 is done; partition 2 may promise what it sent only when the API sorts.
        assert values == {1: at(4), 2: at(11) if is_sorted else at(0)}

        resumed = tap.sync([users_stream(), child], state=broken.states[-1], start_date=at(0))
        again = ids(resumed, "orders")
        assert again == [104, *([201] if is_sorted else [200, 201]), 202, 203, 204, 300, 301, 302, 303, 304]
        assert set(before) | set(again) == {o["id"] for o in orders_of(users, per_user=5)}

    @pytest.mark.parametrize(
        "partitions",
        [
            "parent 1",
            {"0": "2024-01-01"},
            [1, 2],
            [{"context": 5, "replication_key_value": at(1)}],
            [{"replication_key_value": at(1)}],
        ],
        ids=["text", "object", "numbers", "context_not_object", "no_context"],
    )
    def test_a_malformed_partitions_bookmark_is_a_config_error(self, tap: Tap, api: FakeApi, partitions: Any) -> None:
        api.put("users", USERS)
        api.put("orders", orders_of(USERS))
        state = {"bookmarks": {"orders": {"replication_key": "updated_at", "partitions": partitions}}}
        result = tap.run(list(self.STREAMS), state=state)
        assert result.rc == 78, result.stderr
        error = result.stderr.strip().splitlines()[-1]
        assert error.startswith("tap-rest: config error:") and "'orders'" in error and "partitions" in error, error
        assert not records(result, "orders")


# --- schema --------------------------------------------------------------------------------------------

SAMPLED: list[Row] = [
    {"id": 1, "amount": 5, "created": "2024-01-01T00:00:00Z", "meta": {"tag": "a", "n": 1}},
    {"id": 2, "amount": 6, "created": "2024-01-02T10:00:00+02:00", "meta": {"tag": "b", "n": 2}},
    {"id": 3, "amount": 2.5, "created": "2024-01-03 08:00", "meta": {"tag": "c", "n": 2.5}},
    {"id": 4, "created": "2024-01-04T00:00:00Z", "note": None},  # no amount, no meta
    {"id": 5, "late": True},  # on page 3: past the sample
]
SAMPLED_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": ["null", "integer"]},
        "amount": {"type": ["null", "number"]},
        "created": {"type": ["null", "string"], "format": "date-time"},
        "meta": {
            "type": ["null", "object"],
            "properties": {"tag": {"type": ["null", "string"]}, "n": {"type": ["null", "number"]}},
        },
        "note": {},
    },
}


def sampled_stream(**extra: Any) -> Stream:
    return {
        "name": "things",
        "path": "/page/things",
        "records_path": "$.data",
        "primary_keys": ["id"],
        "pagination": {"type": "page", "page_size_param": "per_page", "page_size": 2},
        **extra,
    }


class TestSchema:
    def test_fields_past_the_sample_grow_an_inferred_schema_before_their_records(self, tap: Tap, api: FakeApi) -> None:
        late = [{"id": i, "name": f"n{i}"} for i in (1, 2)] + [{"id": 3, "name": "n3", "color": "red", "size": 1.5}]
        api.put("things", late)
        result = tap.sync([sampled_stream()], schema_sample_pages=1)
        kinds = [(m["type"], m.get("record", {}).get("id")) for m in result.messages if m["type"] != "STATE"]
        assert kinds == [("SCHEMA", None), ("RECORD", 1), ("RECORD", 2), ("SCHEMA", None), ("RECORD", 3)]
        first, grown = (m["schema"]["properties"] for m in result.of_type("SCHEMA"))
        assert list(grown) == [*first, "color", "size"]
        assert grown["color"] == {"type": ["null", "string"]} and grown["size"] == {"type": ["null", "number"]}
        assert "color, size appeared on page" in result.stderr

    @pytest.mark.parametrize("source", ["catalog", "declared", "projected"])
    def test_a_chosen_schema_does_not_grow_and_the_log_names_what_is_left_out(
        self, tap: Tap, api: FakeApi, source: str
    ) -> None:
        api.put("things", [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c", "color": "red"}])
        declared = {"properties": {"id": {"type": "integer"}, "name": {"type": ["null", "string"]}}}
        stream = sampled_stream(schema=declared) if source == "declared" else sampled_stream()
        catalog = tap.discover([stream], schema_sample_pages=1)
        if source == "projected":  # a column deselected: records go out as values, not as the API's text
            for entry in catalog["streams"][0]["metadata"]:
                if entry["breadcrumb"] == ["properties", "name"]:
                    entry["metadata"]["selected"] = False
        result = tap.sync([stream], catalog=catalog if source != "declared" else None, schema_sample_pages=1)
        assert result.rc == 0, result.stderr
        assert len(result.of_type("SCHEMA")) == 1
        said = f"stream things: color on page {api.url}/page/things?page=2&per_page=2 is not in the"
        assert said in result.stderr, result.stderr

    def test_inferred_from_the_sample_pages_only(self, tap: Tap, api: FakeApi) -> None:
        api.put("things", SAMPLED)
        catalog = tap.discover([sampled_stream()], schema_sample_pages=2)
        (entry,) = catalog["streams"]
        assert entry["schema"] == SAMPLED_SCHEMA
        assert [r.query["page"] for r in api.requests] == ["1", "2"]

    def test_the_default_sample_reaches_past_two_pages(self, tap: Tap, api: FakeApi) -> None:
        api.put("things", SAMPLED)
        (entry,) = tap.discover([sampled_stream()])["streams"]
        assert entry["schema"]["properties"]["late"] == {"type": ["null", "boolean"]}

    def test_discovery_is_the_same_on_every_run(self, tap: Tap, api: FakeApi) -> None:
        api.put("things", SAMPLED)
        api.put("users", USERS)
        api.put("orders", orders_of(USERS))
        streams = [sampled_stream(), users_stream(), orders_stream(replication_key="updated_at")]
        runs = [tap.run(streams, "--discover").stdout for _ in range(2)]
        assert runs[0] == runs[1]
        assert runs[0].startswith(b"{\n")

    def test_a_discovered_catalog_is_read_back_without_sampling_again(self, tap: Tap, api: FakeApi) -> None:
        api.put("things", SAMPLED)
        catalog = tap.discover([sampled_stream()], schema_sample_pages=2)
        api.clear_log()
        result = tap.sync([sampled_stream()], catalog=catalog, schema_sample_pages=2)
        assert [r.query["page"] for r in api.requests] == ["1", "2", "3"]  # the read, once
        assert schema_of(result, "things") == SAMPLED_SCHEMA
        assert ids(result, "things") == [1, 2, 3, 4, 5]

    def test_children_read_back_from_a_catalog_are_not_sampled_again(self, tap: Tap, api: FakeApi) -> None:
        api.put("users", USERS)
        api.put("orders", orders_of(USERS))
        streams = [users_stream(), orders_stream(parent_keys={"user_id": "id"})]
        catalog = tap.discover(streams)
        api.clear_log()
        tap.sync(streams, catalog=catalog)
        # users read for itself and once more for the orders' partitions; each partition read once.
        assert [r.path for r in api.requests] == ["/plain/users", "/plain/users"] + [
            f"/plain/users/{i}/orders" for i in (1, 2, 3)
        ]

    @pytest.mark.parametrize("how", ["object", "file"])
    def test_a_declared_schema_is_sent_as_declared_and_nothing_is_sampled(
        self, tap: Tap, api: FakeApi, tmp_path: Path, how: str
    ) -> None:
        api.put("things", SAMPLED)
        declared = {
            "properties": {
                "id": {"type": "integer"},
                "amount": {"type": ["null", "number"], "multipleOf": 0.01},
                "late": {"type": ["null", "boolean"]},
            },
            "required": ["id"],
        }
        if how == "file":
            path = tmp_path / "things.schema.json"
            path.write_bytes(orjson.dumps(declared))
            stream = sampled_stream(schema=str(path))
        else:
            stream = sampled_stream(schema=declared)
        (entry,) = tap.discover([stream])["streams"]
        assert entry["schema"] == {"type": "object", **declared}
        assert api.requests == []
        result = tap.sync([stream])
        assert schema_of(result, "things") == {"type": "object", **declared}
        assert [r.query["page"] for r in api.requests] == ["1", "2", "3"]
        assert records(result, "things")[2] == SAMPLED[2]  # records are sent whole, whatever the schema says

    def test_an_empty_api_discovers_a_stream_without_properties_and_says_so(self, tap: Tap, api: FakeApi) -> None:
        result = tap.run([sampled_stream()], "--discover")
        assert result.rc == 0, result.stderr
        (entry,) = orjson.loads(result.stdout)["streams"]
        assert entry["tap_stream_id"] == "things"
        assert entry["schema"] == {"type": "object", "properties": {}}
        assert "WARNING" in result.stderr and "things" in result.stderr and "schema" in result.stderr
        synced = tap.sync([sampled_stream()])
        assert schema_of(synced, "things")["properties"] == {}
        assert records(synced, "things") == []


# --- through a target, as two processes ------------------------------------------------------------------


def test_tap_rest_piped_into_target_jsonl(tap: Tap, api: FakeApi, tmp_path: Path) -> None:
    rows = sample_rows(250)
    api.put("items", rows)
    api.put("users", USERS)
    api.put("orders", orders_of(USERS))
    streams = [
        items("page", replication_key="updated_at", replication_param="updated_since", is_sorted=True),
        users_stream(),
        orders_stream(parent_keys={"user_id": "id"}),
    ]
    streams[0]["pagination"] = {**streams[0]["pagination"], "page_size": 50}
    tap_config = tap.file("tap", tap.config(streams, state_every_rows=60, concurrency=3))
    out_dir = tmp_path / "out"
    target_config = tap.file("target", {"destination_path": str(out_dir)})
    env = process_env()
    source = subprocess.Popen(
        [*process_command("dpone.taps.rest.cli"), "--config", tap_config],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert source.stdout is not None
    sink = subprocess.Popen(
        [*process_command("dpone.targets.jsonl.cli"), "--config", target_config],
        stdin=source.stdout,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    source.stdout.close()  # the target holds the only read end: the tap sees a broken pipe if it dies
    sink_out, sink_err = sink.communicate(timeout=60)
    source_err = source.stderr.read() if source.stderr else b""
    assert source.wait(timeout=60) == 0, source_err.decode()
    assert sink.returncode == 0, sink_err.decode()

    def read(name: str) -> list[Row]:
        return [orjson.loads(line) for line in (out_dir / f"{name}.jsonl").read_bytes().splitlines()]

    assert read("items") == rows
    assert read("users") == USERS
    assert [(o["user_id"], o["id"]) for o in read("orders")] == [(o["parent_id"], o["id"]) for o in orders_of(USERS)]
    echoed = [orjson.loads(line) for line in sink_out.splitlines()]
    assert echoed, "the target echoes the STATE it committed"
    # The tap's last STATE, as the target committed it: the newest item; users and orders read whole.
    newest = {"replication_key": "updated_at", "replication_key_value": rows[-1]["updated_at"]}
    assert echoed[-1] == {"bookmarks": {"items": newest, "users": {}, "orders": {}}}


class TestEmptyOnStatus:
    def test_a_child_whose_parent_is_gone_is_skipped(self, tap: Tap, api: FakeApi) -> None:
        api.put("users", USERS)
        api.put("orders", orders_of(USERS))
        gone = USERS[1]["id"]
        api.fault(f"/users/{gone}/orders", "status", status=404, body={"error": "user deleted"})
        orders = orders_stream(schema={"properties": {"id": {"type": "integer"}}}, empty_on_status=[404])
        result = tap.sync([users_stream(), orders])
        expected = [o["id"] for o in orders_of(USERS) if o["parent_id"] != gone]
        assert sorted(ids(result, "orders")) == sorted(expected)
        assert "answered 404: no records there (empty_on_status)" in result.stderr

    def test_a_404_past_the_last_page_ends_the_stream(self, tap: Tap, api: FakeApi) -> None:
        api.put("items", sample_rows(4))
        api.fault("/page/items?per_page=2&page=3", "status", times=2, status=404, body={"detail": "Invalid page."})
        stream = items(pagination={"type": "page", "page_size_param": "per_page"}, params={"per_page": 2})
        result = tap.run([stream])
        assert result.rc == 78, "without empty_on_status a 404 is a config error"
        result = tap.sync([{**stream, "empty_on_status": [404]}])
        assert ids(result, "items") == [1, 2, 3, 4]

    def test_a_top_level_stream_whose_first_page_is_missing_is_still_a_wrong_path(self, tap: Tap, api: FakeApi) -> None:
        result = tap.run([items(path="/nowhere/items", empty_on_status=[404])])
        assert result.rc == 78
        assert "answered 404 for the stream's first page: no such endpoint" in result.stderr

    @pytest.mark.parametrize("status", [401, 403, 429, 500, 200])
    def test_statuses_that_never_mean_no_records_are_refused(self, tap: Tap, status: int) -> None:
        result = tap.run([items(empty_on_status=[status])])
        assert result.rc == 78
        assert "empty_on_status must list 4xx statuses that mean no records" in result.stderr


def test_an_inferred_integer_that_brings_a_fraction_becomes_a_number(tap: Tap, api: FakeApi) -> None:
    rows = [{"id": 1, "qty": 1}, {"id": 2, "qty": 2}, {"id": 3, "qty": 7.25}, {"id": 4, "qty": 4}]
    api.put("things", rows)
    result = tap.sync([sampled_stream()], schema_sample_pages=1)
    first, widened = (m["schema"]["properties"]["qty"] for m in result.of_type("SCHEMA"))
    assert first == {"type": ["null", "integer"]} and widened == {"type": ["null", "number"]}
    kinds = [m["type"] for m in result.messages if m["type"] != "STATE"]
    assert kinds == ["SCHEMA", "RECORD", "RECORD", "SCHEMA", "RECORD", "RECORD"]
    assert "qty became numbers on page" in result.stderr
