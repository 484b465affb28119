"""tap-rest's pages: every pagination kind, records_path form and page layout, values kept exactly, and the
loop guard, against real HTTP on 127.0.0.1.

The fake API (tests/tools/rest_api.py) serves the paginated collections; bodies it has no shape for
(nested records, filters, pretty-printed pages, exact numbers, links that point back) come from
`Canned`, a second small server answering each request target with the body a test set for it.
RECORD lines are decoded here with `json.loads(parse_float=Decimal)`: orjson (the kits' decoder) turns
integers wider than 64 bits into floats, which would hide a rounding.
"""

from __future__ import annotations

import contextlib
import decimal
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from dpone_protocol.batch_files import uri_to_path
from tests.conftest import Run
from tests.kit.tap_suite import select
from tests.tools.rest_api import FakeApi, sample_rows
from tests.tools.rest_tap import RestRunner

EXIT_OK, EXIT_DATA, EXIT_CONFIG = 0, 65, 78
ROW_SCHEMA = {
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["null", "string"]},
        "updated_at": {"type": ["null", "string"], "format": "date-time"},
    }
}
ID_SCHEMA = {"properties": {"id": {"type": "integer"}}}


# --- the second server ----------------------------------------------------------------------------


RouteKey = tuple[str, tuple[tuple[str, str], ...]]


def _route_key(target: str) -> RouteKey:
    parts = urlsplit(target)
    return parts.path, tuple(sorted(parse_qsl(parts.query, keep_blank_values=True)))


class Canned:
    """Answers each request target (its path, and its query in any parameter order) with the body set
    for it by `serve`, else 404. HTTP/1.1 keep-alive; `targets` lists every request's target."""

    def __init__(self) -> None:
        self.routes: dict[RouteKey, tuple[int, dict[str, str], bytes]] = {}
        self.targets: list[str] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def serve(self, target: str, body: Any, *, headers: dict[str, str] | None = None, status: int = 200) -> None:
        """`body`: bytes or str as they are, anything else as JSON."""
        raw = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else json.dumps(body).encode()
        with self.lock:
            self.routes[_route_key(target)] = (status, {"Content-Type": "application/json", **(headers or {})}, raw)

    def reset(self) -> None:
        with self.lock:
            self.routes.clear()
            self.targets.clear()

    def answer(self, target: str) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.targets.append(target)
            return self.routes.get(_route_key(target), (404, {}, b'{"error": "not found"}'))

    def start(self) -> Canned:
        canned = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:
                status, headers, body = canned.answer(self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


# --- fixtures and running the tap -----------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_api() -> Iterator[FakeApi]:
    with FakeApi(prefix="/v1") as fake:
        yield fake


@pytest.fixture
def api(shared_api: FakeApi) -> FakeApi:
    shared_api.clear()
    shared_api.clear_log()
    shared_api.absolute_next = False
    return shared_api


@pytest.fixture
def faulty_api() -> Iterator[FakeApi]:
    """An API of its own for a test that sets faults: none can be left over for the next test."""
    with FakeApi(prefix="/v1") as fake:
        yield fake


@pytest.fixture(scope="module")
def shared_canned() -> Iterator[Canned]:
    canned = Canned().start()
    yield canned
    canned.close()


@pytest.fixture
def canned(shared_canned: Canned) -> Canned:
    shared_canned.reset()
    return shared_canned


def exact_messages(stdout: bytes) -> list[dict[str, Any]]:
    """Every stdout line as one message, numbers exact; a line that is not one JSON object fails the test."""
    assert stdout.endswith(b"\n"), stdout[-200:]
    messages = []
    for line in stdout[:-1].split(b"\n"):
        message = json.loads(line, parse_float=Decimal)
        assert isinstance(message, dict) and "type" in message, line[:200]
        messages.append(message)
    return messages


def sync(tmp_path: Path, config: dict[str, Any], catalog: dict[str, Any] | None = None) -> Run:
    run = RestRunner(tmp_path, exact=True).run(config, catalog=catalog)
    # Stricter than the runner's reading: every line is one message (a pretty-printed page's record too).
    return Run(run.rc, run.stdout, run.stderr, exact_messages(run.stdout) if run.stdout else [])


def discover(tmp_path: Path, config: dict[str, Any]) -> dict[str, Any]:
    run = RestRunner(tmp_path).run(config, "--discover")
    assert run.rc == 0, run.stderr
    catalog: dict[str, Any] = json.loads(run.stdout)
    return catalog


def stream(name: str, path: str, **options: Any) -> dict[str, Any]:
    """A stream with a declared schema (`id`): a run without a catalog then reads the API once, with no sample."""
    return {"name": name, "path": path, "schema": ID_SCHEMA, **options}


def settings(base: str, *streams: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"api_url": f"{base}/v1", "streams": list(streams), "timeout": 5, "max_retries": 0, **extra}


def records(run: Run) -> list[dict[str, Any]]:
    return [m["record"] for m in run.of_type("RECORD")]


def ids(run: Run) -> list[Any]:
    return [r["id"] for r in records(run)]


def error_line(run: Run) -> str:
    lines = run.stderr.strip().splitlines()
    return lines[-1] if lines else ""


def ok(run: Run) -> Run:
    assert run.rc == EXIT_OK, run.stderr
    assert run.messages[-1]["type"] == "STATE"
    return run


# --- every pagination kind ------------------------------------------------------------------------

SIZE = 4  # records a page holds
# An empty API, one short page, one full page, full pages only, and a short last page.
ROW_COUNTS = (0, 3, 4, 8, 10)


def _pages_to_short(n: int) -> int:
    """Requests until a page shorter than SIZE (or empty) ends the walk."""
    return n // SIZE + 1


def _pages_to_empty(n: int) -> int:
    """Requests until an empty page ends the walk."""
    return -(-n // SIZE) + 1


def _pages_linked(n: int) -> int:
    """Requests when the last page says there is no next one."""
    return max(1, -(-n // SIZE))


# name: (path, records_path, pagination, params, requests for n rows, the parameter that numbers the pages)
KINDS: dict[str, tuple[str, str, dict[str, Any], dict[str, Any], Callable[[int], int], str | None]] = {
    "none": ("/plain/items", "$", {"type": "none"}, {}, lambda n: 1, None),
    "page": (
        "/page/items",
        "$.data[*]",
        {"type": "page", "page_param": "page", "page_size_param": "per_page", "page_size": SIZE},
        {},
        _pages_to_short,
        "page",
    ),
    "page_unsized": ("/page/items", "$.data[*]", {"type": "page"}, {"per_page": SIZE}, _pages_to_empty, "page"),
    "offset": (
        "/offset/items",
        "$.results[*]",
        {"type": "offset", "offset_param": "offset", "limit_param": "limit", "limit": SIZE},
        {},
        _pages_to_short,
        "offset",
    ),
    "cursor": (
        "/cursor/items",
        "$.items[*]",
        {"type": "cursor", "cursor_path": "$.meta.next_cursor", "cursor_param": "cursor"},
        {"limit": SIZE},
        _pages_linked,
        None,
    ),
    "link_header": ("/link/items", "$[*]", {"type": "link_header"}, {"per_page": SIZE}, _pages_linked, None),
    "next_url_relative": (
        "/next/items",
        "$.data[*]",
        {"type": "next_url", "next_url_path": "$.next"},
        {"limit": SIZE},
        _pages_linked,
        None,
    ),
    "next_url_absolute": (
        "/next/items",
        "$.data[*]",
        {"type": "next_url", "next_url_path": "$.next"},
        {"limit": SIZE},
        _pages_linked,
        None,
    ),
}


def kind_stream(kind: str, **extra: Any) -> dict[str, Any]:
    path, records_path, pagination, params, _, _ = KINDS[kind]
    stream = {"name": "items", "path": path, "records_path": records_path, "pagination": pagination}
    return {**stream, "params": params, "primary_keys": ["id"], "schema": ROW_SCHEMA, **extra}


class TestEveryPaginationKind:
    @pytest.mark.parametrize("n", ROW_COUNTS)
    @pytest.mark.parametrize("concurrency", [1, 3], ids=["sequential", "concurrency3"])
    @pytest.mark.parametrize("kind", sorted(KINDS))
    @pytest.mark.parametrize("written", ["as_sent", "as_values"])
    def test_every_record_once_in_order_and_no_page_twice(
        self, api: FakeApi, tmp_path: Path, kind: str, concurrency: int, n: int, written: str
    ) -> None:
        api.put("items", sample_rows(n))
        api.absolute_next = kind == "next_url_absolute"
        config = settings(api.url, kind_stream(kind), concurrency=concurrency)
        # As values: a catalog without `name` makes the tap project decoded records.
        catalog = select(discover(tmp_path, config), "items", deselect=("name",)) if written == "as_values" else None
        run = ok(sync(tmp_path, config, catalog))

        assert ids(run) == list(range(1, n + 1))  # the API's order, each once
        assert len(run.of_type("RECORD")) == n
        if written == "as_values":
            assert all("name" not in r for r in records(run))
        else:
            assert [r["name"] for r in records(run)] == [f"item {i}" for i in range(1, n + 1)]
        seen = api.requests
        targets = [r.target for r in seen]
        assert len(set(targets)) == len(targets), targets  # no page fetched twice
        assert all(r.status == 200 for r in seen), [(r.target, r.status) for r in seen]
        needed, numbered_by = KINDS[kind][4](n), KINDS[kind][5]
        if concurrency == 1 or numbered_by is None:  # only page and offset fetch ahead
            assert len(seen) == needed, targets
        else:
            # Pages already asked for when the last one arrives are fetched, never more than that.
            assert needed <= len(seen) <= needed + concurrency - 1, targets
            numbers = sorted(int(r.query[numbered_by]) for r in seen)
            step = SIZE if numbered_by == "offset" else 1
            first = 0 if numbered_by == "offset" else 1
            assert numbers == [first + step * i for i in range(len(seen))], targets
        if kind == "next_url_absolute":
            assert all(r.path == "/v1/next/items" for r in seen)

    @pytest.mark.parametrize("kind", ["page", "offset"])
    def test_pages_fetched_at_once_come_out_in_page_order(self, faulty_api: FakeApi, tmp_path: Path, kind: str) -> None:
        faulty_api.put("items", sample_rows(17))
        # The first page answers last of the three in flight.
        first = "?page=1&" if kind == "page" else "?offset=0&"
        faulty_api.fault(first, "slow", seconds=0.3)
        run = ok(sync(tmp_path, settings(faulty_api.url, kind_stream(kind), concurrency=3)))
        assert ids(run) == list(range(1, 18))
        seen = faulty_api.requests
        slow = next(r for r in seen if first in r.target)
        # The next two pages were asked for while the first was still on its way.
        assert len([r for r in seen if r is not slow and r.time < slow.time + 0.25]) >= 2

    def test_pages_past_the_end_do_not_hold_up_the_stream(self, faulty_api: FakeApi, tmp_path: Path) -> None:
        faulty_api.put("items", sample_rows(SIZE * 2 + 1))  # page 3 is short: the last
        for page in (4, 5):  # fetched ahead, then not needed: the API is rate limiting by then
            faulty_api.fault(f"?page={page}&", "status", times=10, status=429, retry_after=1)
        started = time.monotonic()
        run = ok(sync(tmp_path, settings(faulty_api.url, kind_stream("page"), concurrency=3, max_retries=1)))
        assert ids(run) == list(range(1, SIZE * 2 + 2))
        assert time.monotonic() - started < 0.6  # not a second of Retry-After for a page nobody reads

    def test_concurrency_on_a_stream_overrides_the_top_level_one(self, api: FakeApi, tmp_path: Path) -> None:
        api.put("items", sample_rows(SIZE * 5))
        run = ok(sync(tmp_path, settings(api.url, kind_stream("page", concurrency=1), concurrency=3)))
        assert ids(run) == list(range(1, SIZE * 5 + 1))
        assert len(api.requests) == _pages_to_short(SIZE * 5)  # none fetched ahead

    @pytest.mark.parametrize(
        ("api_path", "stream_path"), [("/v1", "/list/items"), ("/v1/", "list/items"), ("/v1/", "/list/items")]
    )
    @pytest.mark.parametrize("kind", ["next_url", "link_header"])
    def test_relative_links_resolve_against_the_page_that_names_them(
        self, canned: Canned, tmp_path: Path, kind: str, api_path: str, stream_path: str
    ) -> None:
        """Links relative to the page (`items?page=2`, `?page=3`, `../list/items?page=4`), to the host
        (`/v1/...`) and absolute: under an api_url with a path, each resolves as a browser would."""
        absolute = f"{canned.url}/v1/list/items?page=6"
        links = ["items?page=2", "?page=3", "../list/items?page=4", "/v1/list/items?page=5", absolute, None]
        targets = ["/v1/list/items", *[f"/v1/list/items?page={i}" for i in range(2, 7)]]
        for i, (target, link) in enumerate(zip(targets, links, strict=True), start=1):
            rows = [{"id": i}]
            if kind == "next_url":
                canned.serve(target, {"data": rows, "next": link})
            else:
                canned.serve(target, rows, headers={"Link": f'<{link}>; rel="next"'} if link else {})
        pagination = {"type": "next_url", "next_url_path": "$.next"} if kind == "next_url" else {"type": kind}
        records_path = "$.data[*]" if kind == "next_url" else "$"
        config = settings(canned.url, stream("items", stream_path, records_path=records_path, pagination=pagination))
        config["api_url"] = canned.url + api_path
        run = ok(sync(tmp_path, config))
        assert ids(run) == [1, 2, 3, 4, 5, 6]
        assert canned.targets == targets


# --- records_path forms ---------------------------------------------------------------------------

Doc = Callable[[list[dict[str, Any]]], Any]
DECOY = {"id": -1, "active": False, "note": 'a ] } " [ { decoy'}


def _interleaved(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for row in rows for item in (DECOY, row)]


# records_path -> the page document holding `rows` where that path finds them (and only them)
RECORDS_PATHS: dict[str, Doc] = {
    "$": lambda rows: rows,
    "$[*]": lambda rows: rows,
    "$.data": lambda rows: {"meta": {"data": ["decoy"], "note": "data ] }"}, "data": rows, "after": [DECOY]},
    "$.data[*]": lambda rows: {"data": rows, "page": {"data": [DECOY]}},
    "$.data.*": lambda rows: {"data": rows},
    "$['data'][*]": lambda rows: {"count": len(rows), "data": rows},
    '$["data"][*]': lambda rows: {"data": rows},
    "$.result.items[*]": lambda rows: {"items": [DECOY], "result": {"total": 99, "items": rows}},
    "$['the result'].items[*]": lambda rows: {"the result": {"items": rows}},
    # Beyond plain steps: the JSONPath library.
    "$.data[?@.active == true]": lambda rows: {"data": _interleaved(rows)},
    "$..items[*]": lambda rows: {"meta": {"count": len(rows)}, "result": {"page": {"items": rows}}},
    "$.data[1:]": lambda rows: {"data": [DECOY, *rows]},
}


def _rows(first: int, count: int) -> list[dict[str, Any]]:
    return [{"id": i, "active": True, "name": f"r{i}"} for i in range(first, first + count)]


class TestRecordsPath:
    @pytest.mark.parametrize("records_path", list(RECORDS_PATHS))
    @pytest.mark.parametrize("walk", ["one_page", "pages", "pages_concurrency3"])
    @pytest.mark.parametrize("written", ["as_sent", "as_values"])
    def test_each_form_finds_the_records_and_only_them(
        self, canned: Canned, tmp_path: Path, records_path: str, walk: str, written: str
    ) -> None:
        document = RECORDS_PATHS[records_path]
        if walk == "one_page":
            canned.serve("/v1/things", document(_rows(1, 3)))
            pagination: dict[str, Any] = {"type": "none"}
            expected, requests = [1, 2, 3], 1
        else:  # 3 + 3 + 1 records: the short page is the last
            for page, (first, count) in enumerate([(1, 3), (4, 3), (7, 1)], start=1):
                canned.serve(f"/v1/things?page={page}&per_page=3", document(_rows(first, count)))
            pagination = {"type": "page", "page_size_param": "per_page", "page_size": 3}
            expected, requests = list(range(1, 8)), 3
        schema = {"properties": {"id": {"type": "integer"}, "active": {"type": "boolean"}, "name": {}}}
        stream = {"name": "things", "path": "/things", "records_path": records_path, "pagination": pagination}
        config = settings(canned.url, {**stream, "schema": schema}, concurrency=3 if walk.endswith("3") else 1)
        catalog = select(discover(tmp_path, config), "things", deselect=("name",)) if written == "as_values" else None
        run = ok(sync(tmp_path, config, catalog))
        assert ids(run) == expected
        want = [{"id": i, "active": True} if catalog else {"id": i, "active": True, "name": f"r{i}"} for i in expected]
        assert records(run) == want
        if walk == "pages_concurrency3":
            assert len(set(canned.targets)) == len(canned.targets)  # none twice
            assert requests <= len(canned.targets) <= requests + 2  # and at most two past the last
        else:
            assert len(canned.targets) == requests

    @pytest.mark.parametrize(
        ("records_path", "document"),
        [("$", {"id": 1, "name": "one"}), ("$.data", {"data": {"id": 1, "name": "one"}})],
        ids=["root_object", "data_object"],
    )
    @pytest.mark.parametrize("layout", ["compact", "indent2_crlf"])
    def test_a_match_that_is_an_object_is_one_record(
        self, canned: Canned, tmp_path: Path, records_path: str, document: Any, layout: str
    ) -> None:
        canned.serve("/v1/one", encode(document, **LAYOUTS[layout]))
        run = ok(sync(tmp_path, settings(canned.url, stream("one", "/one", records_path=records_path))))
        assert records(run) == [{"id": 1, "name": "one"}]
        assert run.stdout.count(b"\n") == len(run.messages)  # one line, pretty-printed or not

    @pytest.mark.parametrize("records_path", ["$.data.*", "$.data[*]", "$.data[?@.id]"])
    @pytest.mark.parametrize("members", [2, 0])
    def test_an_object_of_records_keyed_by_id_gives_each_member(
        self, canned: Canned, tmp_path: Path, records_path: str, members: int
    ) -> None:
        """JSONPath's `*` on an object selects its member values: an API keying records by id."""
        keyed = {f"k{i}": {"id": i} for i in range(1, members + 1)}
        canned.serve("/v1/keyed", {"data": keyed})
        run = ok(sync(tmp_path, settings(canned.url, stream("keyed", "/keyed", records_path=records_path))))
        assert records(run) == list(keyed.values())

    @pytest.mark.parametrize(
        "document",
        [{"data": None}, {"other": [{"id": 1}]}, {"data": []}, [], {}],
        ids=["null", "absent", "empty", "[]", "{}"],
    )
    @pytest.mark.parametrize("records_path", ["$.data[*]", "$.data", "$.data[?@.id > 0]"])
    def test_no_match_is_no_records(self, canned: Canned, tmp_path: Path, records_path: str, document: Any) -> None:
        canned.serve("/v1/none", document)
        run = ok(sync(tmp_path, settings(canned.url, stream("n", "/none", records_path=records_path))))
        assert records(run) == []


# --- values exactly as the API sent them -----------------------------------------------------------

D = Decimal
VALUES: list[dict[str, Any]] = [
    {
        "id": 1,
        "decimal": D("0.1000000000000000055511151231257827"),
        "wide": 2**70 + 1,
        "negative_wide": -(2**80) - 7,
        "u64_max": 2**64 - 1,
        "drop": "x",
    },
    {
        "id": 2,
        "text": 'café 😀 "quoted" back\\slash \u2028 line \u2029 para \n new \r\n crlf \t tab / </script> \x00 \x1f',
        "escaped_looking": '\\u2028 \\n \\"',
        "empty": "",
        "drop": 1,
    },
    {
        "id": 3,
        "exponent": D("1.5E-10"),
        "big_exponent": D("6.02E+23"),
        "negative_zero": D("-0.0"),
        "trailing_zeros": D("1.10"),
        "nested": {"list": [D("2.50"), 2**65, None, True, False, "x", []], "object": {}, "deep": {"a": {"b": [1]}}},
        "null": None,
        "drop": None,
    },
]
VALUE_SCHEMA: dict[str, Any] = {"properties": {name: {} for row in VALUES for name in row}}


def encode(value: Any, *, indent: int | None = None, newline: str = "\n", ascii_only: bool = True) -> str:
    """JSON text of `value` with every number exact (a Decimal as its own text), optionally pretty-printed."""

    def text(item: Any, level: int) -> str:
        if isinstance(item, Decimal):
            return str(item)
        if not isinstance(item, (dict, list)):
            return json.dumps(item, ensure_ascii=ascii_only)
        opening, closing = ("{", "}") if isinstance(item, dict) else ("[", "]")
        if not item:
            return opening + closing
        if isinstance(item, dict):
            parts = [f"{text(k, level)}: {text(v, level + 1)}" for k, v in item.items()]
        else:
            parts = [text(v, level + 1) for v in item]
        if indent is None:
            return opening + ", ".join(parts) + closing
        inner, outer = newline + " " * indent * (level + 1), newline + " " * indent * level
        return opening + inner + ("," + inner).join(parts) + outer + closing

    return text(value, 0)


_CONTEXT = decimal.Context(prec=2000)


def canonical(value: Any) -> Any:
    """A value to compare exactly: numbers by value (1.10 is 1.1, -0.0 keeps its sign, int 2 is 2.0),
    never rounded; object keys in their order."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, Decimal)):
        return ("number", str(_CONTEXT.normalize(Decimal(value))))
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return [(k, canonical(v)) for k, v in value.items()]
    raise AssertionError(f"a float came through: {value!r}")


LAYOUTS: dict[str, dict[str, Any]] = {
    "compact": {},
    "unicode": {"ascii_only": False},
    "indent2": {"indent": 2},
    "indent2_crlf": {"indent": 2, "newline": "\r\n", "ascii_only": False},
    "tabs_cr": {"indent": 1, "newline": "\r"},
}
WRITTEN = ("as_sent", "as_values", "batch_files")


def batch_records(run: Run) -> list[dict[str, Any]]:
    out = []
    for message in run.of_type("BATCH"):
        assert message["encoding"] == {"format": "jsonl", "compression": "none"}
        for uri in message["manifest"]:
            # Lines end at "\n" only: str.splitlines() would also cut at a U+2028 inside a value.
            lines = uri_to_path(uri).read_bytes().split(b"\n")
            assert lines[-1] == b""
            out += [json.loads(line, parse_float=Decimal) for line in lines[:-1]]
    return out


def read_values(
    canned: Canned, tmp_path: Path, body: str, written: str, records_path: str = "$.data[*]", schema: Any = None
) -> tuple[Run, list[dict[str, Any]]]:
    """A one-page stream whose page is `body`, written as sent, as values (`drop` deselected) or in
    BATCH files; the run and the records it gave."""
    canned.serve("/v1/values", body.encode())
    stream = {"name": "values", "path": "/values", "records_path": records_path, "schema": schema or VALUE_SCHEMA}
    extra: dict[str, Any] = {}
    if written == "batch_files":
        storage = {"root": (tmp_path / "batches").as_uri()}
        extra["batch_config"] = {"encoding": {"format": "jsonl", "compression": "none"}, "storage": storage}
    config = settings(canned.url, stream, **extra)
    catalog = select(discover(tmp_path, config), "values", deselect=("drop",)) if written == "as_values" else None
    run = sync(tmp_path, config, catalog)
    return run, batch_records(run) if written == "batch_files" else records(run)


def _expected(written: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "drop"} for row in rows] if written == "as_values" else rows


def _written_params() -> list[Any]:
    return list(WRITTEN)


class TestValuesExactly:
    @pytest.mark.parametrize("layout", list(LAYOUTS))
    @pytest.mark.parametrize("records_path", ["$.data[*]", "$.data[?@.id > 0]"], ids=["plain_path", "library_path"])
    @pytest.mark.parametrize("written", _written_params())
    def test_each_record_decodes_to_the_apis_value(
        self, canned: Canned, tmp_path: Path, layout: str, records_path: str, written: str
    ) -> None:
        body = encode({"data": VALUES, "next": None}, **LAYOUTS[layout])
        assert canonical(json.loads(body, parse_float=Decimal)["data"]) == canonical(VALUES)  # the test's own encoder
        run, got = read_values(canned, tmp_path, body, written, records_path)
        assert run.rc == EXIT_OK, run.stderr
        assert canonical(got) == canonical(_expected(written, VALUES))
        # One message a line (exact_messages read every line as one): a line break inside a value stays escaped.
        assert run.stdout.count(b"\n") == len(run.messages)
        if written == "as_sent" and layout in ("compact", "unicode") and records_path == "$.data[*]":
            # Written as the API sent it: each record's own text, not encoded again.
            for row, line in zip(VALUES, [ln for ln in run.stdout.split(b"\n") if b'"RECORD"' in ln], strict=True):
                assert encode(row, **LAYOUTS[layout]).encode() in line

    @pytest.mark.parametrize("written", _written_params())
    @pytest.mark.parametrize("number", ["1e400", "-1E+400", "1e-400", "123456789012345678901234567890.000000000001"])
    def test_a_number_a_double_cannot_hold_is_kept(
        self, canned: Canned, tmp_path: Path, number: str, written: str
    ) -> None:
        body = f'[{{"id": 1, "n": {number}, "drop": 0}}]'
        schema = {"properties": {"id": {"type": "integer"}, "n": {"type": "number"}, "drop": {}}}
        run, got = read_values(canned, tmp_path, body, written, "$", schema)
        assert run.rc == EXIT_OK, run.stderr
        assert canonical(got) == canonical(_expected(written, [{"id": 1, "n": D(number), "drop": 0}]))

    @pytest.mark.parametrize(
        "integer",
        [
            999_999_999_999_999_999,
            -99_999_999_999_999_999,
            # 19 characters and more are read as a Decimal (codec.exact_int), though within 64 bits
            -999_999_999_999_999_999,
            1_234_567_890_123_456_789,  # a snowflake id
            2**63 - 1,
        ],
        ids=["18_digits", "minus_17_digits", "minus_18_digits", "snowflake_19_digits", "int64_max"],
    )
    @pytest.mark.parametrize("layout", ["compact", "indent2_crlf"])
    @pytest.mark.certifies("batch", connector="tap-rest")
    def test_batch_files_hold_strings_and_integers_exactly(
        self, canned: Canned, tmp_path: Path, layout: str, integer: int
    ) -> None:
        rows = [{**VALUES[1], "integer": integer}]
        body = encode({"data": rows}, **LAYOUTS[layout])
        run, got = read_values(canned, tmp_path, body, "batch_files", schema={"properties": {k: {} for k in rows[0]}})
        assert run.rc == EXIT_OK, run.stderr
        assert canonical(got) == canonical(rows)
        assert run.of_type("RECORD") == []

    @pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
    @pytest.mark.parametrize("written", WRITTEN)
    @pytest.mark.parametrize("records_path", ["$.data[*]", "$.data[?@.id > 0]"], ids=["plain_path", "library_path"])
    def test_nan_and_infinity_are_not_json(
        self, canned: Canned, tmp_path: Path, constant: str, written: str, records_path: str
    ) -> None:
        body = f'{{"data": [{{"id": 1, "n": {constant}, "drop": 0}}]}}'
        run, got = read_values(canned, tmp_path, body, written, records_path)
        assert run.rc == EXIT_DATA, run.stderr
        assert got == []
        line = error_line(run)
        assert line.startswith("tap-rest: data error: page ") and f"{canned.url}/v1/values" in line, line
        assert constant.lstrip("-") in line

    @pytest.mark.parametrize("written", ["as_sent", "as_values"])
    def test_a_lone_surrogate_is_a_data_error_naming_the_page(
        self, canned: Canned, tmp_path: Path, written: str
    ) -> None:
        body = '{"data": [{"id": 1, "text": "half an emoji: \\ud83d", "drop": 0}]}'
        run, _ = read_values(canned, tmp_path, body, written)
        assert run.rc == EXIT_DATA, run.stderr
        assert f"page {canned.url}/v1/values" in error_line(run), error_line(run)


# --- the loop guard -------------------------------------------------------------------------------


def _stopped_by_the_guard(run: Run, stream: str, url_part: str) -> str:
    assert run.rc == EXIT_CONFIG, run.stderr
    line = error_line(run)
    assert line.startswith("tap-rest: config error: ") and f"stream {stream!r}" in line and url_part in line, line
    return line


class TestLoopGuard:
    @pytest.mark.parametrize("written", ["as_sent", "as_values"])
    def test_a_cursor_that_never_changes(self, canned: Canned, tmp_path: Path, written: str) -> None:
        canned.serve("/v1/loop", {"items": [{"id": 1}], "next": "AAA"})
        canned.serve("/v1/loop?cursor=AAA", {"items": [{"id": 2}], "next": "AAA"})
        stream = {
            "name": "loop",
            "path": "/loop",
            "records_path": "$.items[*]",
            "pagination": {"type": "cursor", "cursor_path": "$.next"},
            "schema": {"properties": {"id": {"type": "integer"}, "x": {}}},
        }
        config = settings(canned.url, stream)
        catalog = select(discover(tmp_path, config), "loop", deselect=("x",)) if written == "as_values" else None
        run = sync(tmp_path, config, catalog)
        line = _stopped_by_the_guard(run, "loop", f"{canned.url}/v1/loop?cursor=AAA")
        assert "second time" in line
        assert ids(run) == [1, 2]  # the records before it, once
        assert canned.targets == ["/v1/loop", "/v1/loop?cursor=AAA"]
        assert run.messages[-1]["type"] == "STATE"

    @pytest.mark.parametrize(
        "link",
        ["/v1/self", "self", "", "?", "{url}/v1/self"],
        ids=["root_relative", "relative", "empty", "query", "absolute"],
    )
    def test_a_next_url_naming_its_own_page(self, canned: Canned, tmp_path: Path, link: str) -> None:
        canned.serve("/v1/self", {"data": [{"id": 1}, {"id": 2}], "next": link.format(url=canned.url)})
        pagination = {"type": "next_url", "next_url_path": "$.next"}
        run = sync(
            tmp_path, settings(canned.url, stream("me", "/self", records_path="$.data[*]", pagination=pagination))
        )
        if link == "":  # an empty link is no link: the last page
            assert ok(run) and ids(run) == [1, 2]
            return
        _stopped_by_the_guard(run, "me", f"{canned.url}/v1/self")
        assert ids(run) == [1, 2]
        assert canned.targets == ["/v1/self"]

    def test_next_urls_in_a_ring(self, canned: Canned, tmp_path: Path) -> None:
        canned.serve("/v1/a", {"data": [{"id": 1}], "next": "/v1/b"})
        canned.serve("/v1/b", {"data": [{"id": 2}], "next": "/v1/a"})
        pagination = {"type": "next_url", "next_url_path": "$.next"}
        run = sync(
            tmp_path, settings(canned.url, stream("ring", "/a", records_path="$.data[*]", pagination=pagination))
        )
        _stopped_by_the_guard(run, "ring", f"{canned.url}/v1/a")
        assert ids(run) == [1, 2]
        assert canned.targets == ["/v1/a", "/v1/b"]

    def test_a_loop_within_the_schema_sample_stops_discovery(self, canned: Canned, tmp_path: Path) -> None:
        canned.serve("/v1/self", {"data": [{"id": 1}], "next": "/v1/self"})
        pagination = {"type": "next_url", "next_url_path": "$.next"}
        config = settings(
            canned.url, {"name": "me", "path": "/self", "records_path": "$.data[*]", "pagination": pagination}
        )
        run = sync(tmp_path, config)  # no schema and no catalog: discovery samples the pages first
        _stopped_by_the_guard(run, "me", f"{canned.url}/v1/self")
        assert run.messages == []

    def test_a_link_header_naming_its_own_page(self, canned: Canned, tmp_path: Path) -> None:
        canned.serve("/v1/self", [{"id": 1}], headers={"Link": f'<{canned.url}/v1/self>; rel="next"'})
        run = sync(tmp_path, settings(canned.url, stream("me", "/self", pagination={"type": "link_header"})))
        _stopped_by_the_guard(run, "me", f"{canned.url}/v1/self")
        assert ids(run) == [1]

    def test_records_that_come_back_in_a_cycle(self, canned: Canned, tmp_path: Path) -> None:
        # New cursors, records A, B, A, B...: not the same page twice in a row, the same pages all the same.
        for n in range(6):
            target = "/v1/cyc" if n == 0 else f"/v1/cyc?cursor=c{n}"
            canned.serve(target, {"items": [{"id": 1 + n % 2}], "next": f"c{n + 1}"})
        pagination = {"type": "cursor", "cursor_path": "$.next"}
        run = sync(tmp_path, settings(canned.url, stream("cyc", "/cyc", records_path="$.items", pagination=pagination)))
        line = _stopped_by_the_guard(run, "cyc", f"{canned.url}/v1/cyc?cursor=c2")
        assert f"the same records as {canned.url}/v1/cyc;" in line
        assert ids(run) == [1, 2]

    def test_a_relative_next_url_follows_the_page_it_came_from_after_a_redirect(
        self, canned: Canned, tmp_path: Path
    ) -> None:
        canned.serve("/v1/moved", "", status=302, headers={"Location": f"{canned.url}/v2/list"})
        canned.serve("/v2/list", {"data": [{"id": 1}], "next": "list?after=1"})
        canned.serve("/v2/list?after=1", {"data": [{"id": 2}], "next": None})
        pagination = {"type": "next_url", "next_url_path": "$.next"}
        run = sync(tmp_path, settings(canned.url, stream("m", "/moved", records_path="$.data", pagination=pagination)))
        assert run.rc == 0, run.stderr
        assert ids(run) == [1, 2]

    def test_a_new_cursor_on_every_page_of_the_same_records(self, canned: Canned, tmp_path: Path) -> None:
        # An API that ignores a wrong cursor_param but hands out a fresh cursor each time: the requests
        # all differ, the records do not.
        canned.serve("/v1/rot", {"items": [{"id": 1}, {"id": 2}], "next": "c1"})
        for n in range(1, 5):
            canned.serve(f"/v1/rot?wrong=c{n}", {"items": [{"id": 1}, {"id": 2}], "next": f"c{n + 1}"})
        pagination = {"type": "cursor", "cursor_path": "$.next", "cursor_param": "wrong"}
        run = sync(tmp_path, settings(canned.url, stream("rot", "/rot", records_path="$.items", pagination=pagination)))
        line = _stopped_by_the_guard(run, "rot", f"{canned.url}/v1/rot?wrong=c1")
        assert "the same records" in line
        assert ids(run) == [1, 2]

    @pytest.mark.parametrize("concurrency", [1, 3], ids=["sequential", "concurrency3"])
    @pytest.mark.parametrize("kind", ["page", "page_unsized", "offset", "cursor", "link_header", "next_url_relative"])
    def test_an_api_that_ignores_the_page_parameter(
        self, faulty_api: FakeApi, tmp_path: Path, kind: str, concurrency: int
    ) -> None:
        """Every request answers the first page (fault "repeat"): the second answer is the first again."""
        faulty_api.put("items", sample_rows(SIZE * 3))
        faulty_api.fault("/items", "repeat", times=1000)
        run = sync(tmp_path, settings(faulty_api.url, kind_stream(kind), concurrency=concurrency))
        line = _stopped_by_the_guard(run, "items", "/v1/")
        assert "the same records" in line
        assert ids(run) == list(range(1, SIZE + 1))  # the first page, once
        seen = faulty_api.requests
        assert len({r.target for r in seen}) == len(seen)
        numbered = kind in ("page", "page_unsized", "offset")
        assert (2 <= len(seen) <= 1 + concurrency) if numbered else len(seen) == 2, [r.target for r in seen]


# --- records that are not objects -----------------------------------------------------------------


JSON_NAMES = {
    "str": "a string",
    "int": "a number",
    "Decimal": "a number",
    "null": "null",
    "list": "an array",
    "bool": "a boolean",
}


class TestNotRecords:
    def test_an_error_object_where_the_list_was_is_no_record(self, canned: Canned, tmp_path: Path) -> None:
        canned.serve("/v1/shape?page=1", {"data": [{"id": 1}, {"id": 2}]})
        canned.serve("/v1/shape?page=2", {"data": {"error": "temporarily unavailable", "code": 17}})
        pagination = {"type": "page", "page_size": 2}
        shaped = stream("shape", "/shape", records_path="$.data", primary_keys=["id"], pagination=pagination)
        run = sync(tmp_path, settings(canned.url, shaped))
        assert run.rc == 65, run.stderr
        assert "page=2: a record has no id (the stream's primary_keys)" in error_line(run)
        assert ids(run) == [1, 2]

    @pytest.mark.parametrize(
        ("records_path", "wrap", "bad", "kind"),
        [
            ("$", lambda items: items, ["a", "b"], "str"),
            ("$[*]", lambda items: items, [{"id": 3}, 2], "int"),
            ("$.data[*]", lambda items: {"data": items}, [{"id": 3}, None], "null"),
            ("$.data[*]", lambda items: {"data": items}, [[{"id": 3}]], "list"),
            ("$.data", lambda items: {"data": items}, "text", "str"),
            ("$.data", lambda items: {"data": items}, [True], "bool"),
            ("$..records[*]", lambda items: {"x": {"records": items}}, ["a"], "str"),
            ("$.data[1:]", lambda items: {"data": [{"id": 0}, *items]}, [{"id": 3}, 4.5], "Decimal"),
        ],
        ids=["strings", "int", "null", "nested_list", "string_match", "bool", "library_descent", "library_slice"],
    )
    @pytest.mark.parametrize("written", ["as_sent", "as_values"])
    def test_a_page_of_non_objects_is_a_data_error_naming_it(
        self, canned: Canned, tmp_path: Path, records_path: str, wrap: Doc, bad: Any, kind: str, written: str
    ) -> None:
        # The first page is fine and full; the second is not.
        canned.serve("/v1/odd?page=1&per_page=2", wrap([{"id": 101}, {"id": 102}]))
        canned.serve("/v1/odd?page=2&per_page=2", wrap(bad))
        pagination = {"type": "page", "page_size_param": "per_page", "page_size": 2}
        schema = {"properties": {"id": {"type": "integer"}, "x": {}}}
        stream = {"name": "odd", "path": "/odd", "records_path": records_path, "pagination": pagination}
        config = settings(canned.url, {**stream, "schema": schema})
        catalog = select(discover(tmp_path, config), "odd", deselect=("x",)) if written == "as_values" else None
        run = sync(tmp_path, config, catalog)
        assert run.rc == EXIT_DATA, run.stderr
        line = error_line(run)
        assert line.startswith("tap-rest: data error: page ") and "/v1/odd?page=2" in line, line
        # The kind found, by its JSON name.
        assert f"records_path found {JSON_NAMES[kind]} where a record" in line, line
        assert ids(run) == [101, 102]  # the first page's, once
        assert len(canned.targets) == 2


# --- stop_on_empty_page ---------------------------------------------------------------------------


class TestEmptyPageMidway:
    @pytest.mark.parametrize("stop", [None, True, False], ids=["default", "stop", "go_on"])
    @pytest.mark.parametrize("kind", ["cursor", "next_url"])
    def test_an_empty_page_with_a_next_one(self, canned: Canned, tmp_path: Path, kind: str, stop: bool | None) -> None:
        if kind == "cursor":
            canned.serve("/v1/gaps", {"items": [{"id": 1}, {"id": 2}], "next": "c1"})
            canned.serve("/v1/gaps?cursor=c1", {"items": [], "next": "c2"})
            canned.serve("/v1/gaps?cursor=c2", {"items": [], "next": "c3"})
            canned.serve("/v1/gaps?cursor=c3", {"items": [{"id": 3}], "next": None})
            pagination: dict[str, Any] = {"type": "cursor", "cursor_path": "$.next"}
        else:
            canned.serve("/v1/gaps", {"items": [{"id": 1}, {"id": 2}], "next": "/v1/gaps?after=2"})
            canned.serve("/v1/gaps?after=2", {"items": [], "next": "/v1/gaps?after=2&skip=1"})
            canned.serve("/v1/gaps?after=2&skip=1", {"items": [], "next": "/v1/gaps?after=3"})
            canned.serve("/v1/gaps?after=3", {"items": [{"id": 3}], "next": ""})
            pagination = {"type": "next_url", "next_url_path": "$.next"}
        if stop is not None:
            pagination["stop_on_empty_page"] = stop
        run = ok(
            sync(
                tmp_path,
                settings(canned.url, stream("gaps", "/gaps", records_path="$.items[*]", pagination=pagination)),
            )
        )
        if stop is False:
            assert ids(run) == [1, 2, 3] and len(canned.targets) == 4
        else:  # the first empty page ends the stream
            assert ids(run) == [1, 2] and len(canned.targets) == 2

    def test_page_numbers_that_never_stop_are_refused(self, faulty_api: FakeApi, tmp_path: Path) -> None:
        faulty_api.put("items", sample_rows(3))
        # A brake for this test: the 40th page answers 400 (a config error) if the tap gets that far.
        faulty_api.fault("page=40", "status", status=400, body={"error": "enough"})
        pagination = {"type": "page", "stop_on_empty_page": False}
        run = sync(tmp_path, settings(faulty_api.url, kind_stream("page_unsized", pagination=pagination)))
        assert run.rc == EXIT_CONFIG
        assert "stop_on_empty_page" in error_line(run), error_line(run)
        assert faulty_api.requests == []  # refused with the config, before any request
