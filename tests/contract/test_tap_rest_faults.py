"""tap-rest against a misbehaving API (tests/tools/rest_api.py faults), over real HTTP, for each
pagination kind, sequential and with pages fetched at once.

- Faults that pass (429 with or without Retry-After, 5xx, a dropped connection, a cut body, a slow
  page) are retried and the run writes every record once, in order; the waits asked for are waited.
- Faults that last stop the run with the right exit code: 75 after max_retries (or at once for a
  Retry-After above max_retry_after_seconds), 78 at once for a 4xx, 65 for a page that is not JSON;
  the message names the status or the position, and the URL with its secrets masked.
- A failure mid-stream leaves the records before it written and, for a sorted incremental stream, a
  STATE that covers exactly them: resuming from it reads the rest, nothing lost, nothing twice but
  the tie at the bookmark.
- max_requests_per_second spaces the requests out.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import Run
from tests.tools.rest_api import FakeApi, RecordedRequest, sample_rows
from tests.tools.rest_tap import ROUTES, RestRunner, route_stream, slow_client

SCHEMA = {
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "updated_at": {"type": "string", "format": "date-time"},
    }
}
ROWS = 9  # five pages of two (the last one short) for every paginated kind
FAST: dict[str, Any] = {"timeout": 0.5, "backoff_seconds": 0.01, "backoff_max_seconds": 0.05}
SLOW_TIMEOUT = 0.3  # for the tests about slow pages: a page held SLOW_SECONDS times out
SLOW_SECONDS = 0.6
API_KEY = "fault-key-8c1d2e3f"


@dataclass(frozen=True)
class Variant:
    """A pagination kind, read sequentially or `concurrency` pages at once."""

    kind: str
    concurrency: int = 1

    @property
    def id(self) -> str:
        return self.kind if self.concurrency == 1 else f"{self.kind}-c{self.concurrency}"

    @property
    def pages(self) -> int:
        return 1 if self.kind == "none" else 5


VARIANTS = [Variant(k) for k in ROUTES] + [Variant("page", 3), Variant("offset", 3)]
PAGED = [v for v in VARIANTS if v.kind != "none"]
_collections = itertools.count(1)


# --- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api() -> Iterator[FakeApi]:
    with FakeApi() as fake:
        yield fake


@pytest.fixture
def fake(api: FakeApi) -> Iterator[FakeApi]:
    """The module's API, no credentials asked, an empty log. Each test reads a collection of its own
    and aims its faults at that collection's pages, so a fault left over never meets another test."""
    api.require("none")
    api.clear_log()
    yield api
    api.require("none")


@pytest.fixture
def tap(tmp_path: Path) -> Callable[..., Run]:
    """Runs tap-rest in-process with a config (and a state=): the exit code, stdout, stderr, messages."""
    return RestRunner(tmp_path).run


def collection(api: FakeApi, rows: int = ROWS) -> str:
    name = f"things{next(_collections)}"
    api.put(name, sample_rows(rows))
    return name


def config(api: FakeApi, name: str, variant: Variant, **extra: Any) -> dict[str, Any]:
    stream = route_stream(name, variant.kind, schema=SCHEMA, primary_keys=["id"], **extra.pop("stream", {}))
    return {"api_url": api.url, "streams": [stream], "concurrency": variant.concurrency, **FAST, **extra}


def sorted_incremental() -> dict[str, Any]:
    """A stream the API sorts by updated_at, which it filters on with updated_at_since."""
    return {"replication_key": "updated_at", "replication_param": "updated_at_since", "is_sorted": True}


def target(api: FakeApi, name: str, variant: Variant, page: int, key: str = "") -> str:
    """The request target (path and query as sent) of the stream's `page`-th page (from 1), page size 2;
    `key`: the query parameter an API key adds (`&api_key=...`), which a followed link carries."""
    route = ROUTES[variant.kind]["route"]
    path = f"/{route}/{name}"
    offset = 2 * (page - 1)
    if variant.kind == "none":
        return path
    if variant.kind == "page":
        return f"{path}?page={page}&per_page=2{key}"
    if variant.kind == "offset":
        return f"{path}?offset={offset}&limit=2{key}"
    if variant.kind == "link_header":
        return f"{path}?per_page=2{key}" + (f"&page={page}" if page > 1 else "")
    if variant.kind == "next_url":
        return f"{path}?limit=2{key}" + (f"&after={offset}" if page > 1 else "")
    assert not key, "not for cursors"
    # cursor: opaque, so asked of the API (and the asking forgotten)
    cursor: str = ""
    with requests.Session() as http:
        for _ in range(page - 1):
            cursor = http.get(f"{api.url}{path}", params={"limit": "2", "cursor": cursor}).json()["meta"]["next_cursor"]
    api.clear_log()
    return f"{path}?limit=2" + (f"&cursor={cursor}" if page > 1 else "")


def ids(run: Run) -> list[Any]:
    return [m["record"]["id"] for m in run.of_type("RECORD")]


def error_line(run: Run) -> str:
    lines = run.stderr.strip().splitlines()
    assert lines, "nothing on stderr"
    return lines[-1]


def asked(api: FakeApi, wanted: str) -> list[RecordedRequest]:
    return [r for r in api.requests if r.target == wanted]


def gaps(requests_: list[RecordedRequest]) -> list[float]:
    times = [r.time for r in requests_]
    return [b - a for a, b in itertools.pairwise(times)]


# --- the page targets the faults aim at -----------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
def test_the_page_targets_the_faults_aim_at_are_the_ones_sent(
    fake: FakeApi, tap: Callable[..., Run], variant: Variant
) -> None:
    name = collection(fake)
    expected = [target(fake, name, variant, n) for n in range(1, variant.pages + 1)]
    run = tap(config(fake, name, variant))
    assert run.rc == 0, run.stderr
    assert ids(run) == list(range(1, ROWS + 1))
    sent = [r.target for r in fake.requests]
    if variant.concurrency == 1:
        assert sent == expected
    else:  # the pages fetched ahead may pass the last one
        assert set(expected) <= set(sent)
        assert len(sent) == len(set(sent)) <= len(expected) + variant.concurrency - 1


# --- faults that pass ---------------------------------------------------------------------------------

# id -> (fault kind, options, times)
PASSING: dict[str, tuple[str, dict[str, Any], int]] = {
    "429-storm-retry-after-0": ("status", {"status": 429, "retry_after": 0}, 3),
    "429-no-retry-after": ("status", {"status": 429}, 2),
    "500": ("status", {"status": 500}, 2),
    "502": ("status", {"status": 502}, 1),
    "503": ("status", {"status": 503, "retry_after": 0}, 2),
    "408": ("status", {"status": 408}, 1),
    "drop": ("drop", {}, 2),
    "cut": ("cut", {}, 1),
}


class TestFaultsThatPass:
    @pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
    @pytest.mark.parametrize("fault", list(PASSING))
    def test_a_fault_then_success_writes_every_record_once(
        self, fake: FakeApi, tap: Callable[..., Run], fault: str, variant: Variant
    ) -> None:
        kind, options, times = PASSING[fault]
        name = collection(fake)
        faulted = target(fake, name, variant, min(3, variant.pages))
        fake.fault(faulted, kind, times=times, **options)
        run = tap(config(fake, name, variant))
        assert run.rc == 0, run.stderr
        assert ids(run) == list(range(1, ROWS + 1))
        answers = asked(fake, faulted)
        assert [r.fault for r in answers] == [kind] * times + [None]
        assert answers[-1].status == 200
        assert run.stderr.count("retry ") == times, run.stderr  # each retry said, with its URL
        assert f"{fake.url}{faulted}" in run.stderr
        assert run.of_type("STATE"), "a final STATE"

    @pytest.mark.parametrize("variant", [Variant("page"), Variant("page", 3), Variant("cursor")], ids=lambda v: v.id)
    def test_a_page_slower_than_the_timeout_is_asked_again(
        self, fake: FakeApi, tap: Callable[..., Run], variant: Variant
    ) -> None:
        name = collection(fake)
        faulted = target(fake, name, variant, 3)
        fake.fault(faulted, "slow", seconds=SLOW_SECONDS)
        run = tap(config(fake, name, variant, timeout=SLOW_TIMEOUT))
        assert run.rc == 0, run.stderr
        assert ids(run) == list(range(1, ROWS + 1))
        first, again = asked(fake, faulted)
        assert first.fault == "slow" and again.fault is None
        assert SLOW_TIMEOUT - 0.02 <= again.time - first.time < SLOW_SECONDS, "asked again at the timeout"
        assert "timeout" in run.stderr

    @pytest.mark.parametrize("variant", PAGED, ids=lambda v: v.id)
    def test_a_run_with_a_fault_on_every_page_writes_every_record_once(
        self, fake: FakeApi, tap: Callable[..., Run], variant: Variant
    ) -> None:
        name = collection(fake)
        faults = [
            ("status", {"status": 429, "retry_after": 0}),
            ("status", {"status": 500}),
            ("drop", {}),
            ("cut", {}),
            ("status", {"status": 503}),
        ]
        targets = [target(fake, name, variant, page) for page in range(1, 6)]
        for faulted, (kind, options) in zip(targets, faults, strict=True):
            fake.fault(faulted, kind, **options)
        run = tap(config(fake, name, variant, stream=sorted_incremental()))
        assert run.rc == 0, run.stderr
        assert ids(run) == list(range(1, ROWS + 1))
        assert len([r for r in fake.requests if r.fault]) == 5
        assert run.states[-1]["bookmarks"][name]["replication_key_value"] == sample_rows(ROWS)[-1]["updated_at"]


# --- waits: Retry-After and backoff -------------------------------------------------------------------


class TestWaits:
    def test_retry_after_in_seconds_is_waited(self, fake: FakeApi, tap: Callable[..., Run]) -> None:
        variant = Variant("page", 3)  # the other pages fetched at once go on meanwhile
        name = collection(fake)
        faulted = target(fake, name, variant, 2)
        fake.fault(faulted, "status", status=429, retry_after=1)
        run = tap(config(fake, name, variant))
        assert run.rc == 0, run.stderr
        assert ids(run) == list(range(1, ROWS + 1))
        (wait,) = gaps(asked(fake, faulted))
        assert 0.98 <= wait < 1.5, wait

    def test_retry_after_as_an_http_date_is_waited_until(self, fake: FakeApi, tap: Callable[..., Run]) -> None:
        variant = Variant("cursor")
        name = collection(fake)
        faulted = target(fake, name, variant, 2)
        # A whole second (HTTP dates have no fractions) at least 0.3 s away.
        until = datetime.fromtimestamp(math.ceil(time.time() + 0.3), UTC)
        fake.fault(faulted, "status", status=429, retry_after=until)
        wall_minus_monotonic = time.time() - time.monotonic()
        run = tap(config(fake, name, variant))
        assert run.rc == 0, run.stderr
        assert ids(run) == list(range(1, ROWS + 1))
        first, again = asked(fake, faulted)
        assert again.time + wall_minus_monotonic >= until.timestamp() - 0.03, "asked again before the date"
        assert again.time - first.time < 1.5

    def test_429_without_retry_after_backs_off_exponentially(self, fake: FakeApi, tap: Callable[..., Run]) -> None:
        variant = Variant("next_url")
        name = collection(fake)
        faulted = target(fake, name, variant, 2)
        fake.fault(faulted, "status", times=3, status=429)
        run = tap(config(fake, name, variant, backoff_seconds=0.05, backoff_max_seconds=5))
        assert run.rc == 0, run.stderr
        waits = gaps(asked(fake, faulted))
        assert len(waits) == 3
        # 0.05 s doubling each time, plus up to 0.05 s of jitter
        for wait, low in zip(waits, (0.05, 0.1, 0.2), strict=True):
            assert low - 0.005 <= wait < low + 0.05 + 0.1, waits

    def test_backoff_never_waits_longer_than_backoff_max_seconds(self, fake: FakeApi, tap: Callable[..., Run]) -> None:
        variant = Variant("offset")
        name = collection(fake)
        faulted = target(fake, name, variant, 2)
        fake.fault(faulted, "status", times=4, status=503)
        run = tap(config(fake, name, variant, backoff_seconds=0.04, backoff_max_seconds=0.06))
        assert run.rc == 0, run.stderr
        waits = gaps(asked(fake, faulted))
        assert len(waits) == 4 and max(waits) < 0.06 + 0.05, waits
        assert min(waits[2:]) >= 0.055, waits  # 0.16 and 0.32 capped to 0.06

    @pytest.mark.parametrize("status", [429, 503])
    @pytest.mark.parametrize("variant", [Variant("page"), Variant("link_header")], ids=lambda v: v.id)
    def test_a_retry_after_above_max_retry_after_seconds_stops_at_once(
        self, fake: FakeApi, tap: Callable[..., Run], variant: Variant, status: int
    ) -> None:
        name = collection(fake)
        faulted = target(fake, name, variant, 2)
        fake.fault(faulted, "status", status=status, retry_after=120)
        started = time.monotonic()
        run = tap(config(fake, name, variant, max_retry_after_seconds=10))
        assert time.monotonic() - started < 1
        assert run.rc == 75, run.stderr
        line = error_line(run)
        assert line.startswith("tap-rest: transient error: "), line
        assert str(status) in line and "120 s" in line and "max_retry_after_seconds" in line, line
        assert f"{fake.url}{faulted}" in line
        assert len(asked(fake, faulted)) == 1
        assert ids(run) == [1, 2]


# --- faults that last ---------------------------------------------------------------------------------


class TestFaultsThatLast:
    @pytest.mark.parametrize("status", [429, 500, 502, 503])
    @pytest.mark.parametrize("variant", [Variant("page"), Variant("page", 3), Variant("next_url")], ids=lambda v: v.id)
    def test_max_retries_exhausted_is_a_transient_error_with_the_status(
        self, fake: FakeApi, tap: Callable[..., Run], variant: Variant, status: int
    ) -> None:
        name = collection(fake)
        faulted = target(fake, name, variant, 3)
        fake.fault(faulted, "status", times=3, status=status)
        run = tap(config(fake, name, variant, max_retries=2))
        assert run.rc == 75, run.stderr
        line = error_line(run)
        assert line.startswith("tap-rest: transient error: GET "), line
        assert f"{fake.url}{faulted}" in line and f"answered {status}" in line and "3 attempts" in line, line
        assert len(asked(fake, faulted)) == 3
        assert ids(run) == [1, 2, 3, 4]

    @pytest.mark.parametrize(
        ("kind", "says"), [("drop", "connection"), ("cut", "connection"), ("slow", "timeout")], ids=str
    )
    def test_a_page_that_never_comes_whole_is_a_transient_error(
        self, fake: FakeApi, tap: Callable[..., Run], kind: str, says: str
    ) -> None:
        variant = Variant("page")
        name = collection(fake)
        faulted = target(fake, name, variant, 3)
        options = {"seconds": SLOW_SECONDS} if kind == "slow" else {}
        fake.fault(faulted, kind, times=2, **options)
        run = tap(config(fake, name, variant, max_retries=1, timeout=SLOW_TIMEOUT))
        assert run.rc == 75, run.stderr
        line = error_line(run)
        assert line.startswith("tap-rest: transient error: GET "), line
        assert f"{fake.url}{faulted}" in line and says in line and "2 attempts" in line, line
        assert len(asked(fake, faulted)) == 2
        assert ids(run) == [1, 2, 3, 4]

    @pytest.mark.parametrize("status", [400, 403, 404, 422])
    @pytest.mark.parametrize(
        "variant", [Variant("page"), Variant("link_header"), Variant("next_url")], ids=lambda v: v.id
    )
    def test_a_4xx_stops_at_once_with_status_masked_url_and_the_start_of_the_body(
        self, fake: FakeApi, tap: Callable[..., Run], variant: Variant, status: int
    ) -> None:
        name = collection(fake)
        fake.require("api_key_query", name="api_key", value=API_KEY)
        # The key travels in the query: a followed link carries it, so the target has it too.
        faulted = target(fake, name, variant, 3, key=f"&api_key={API_KEY}")
        body = "Problem: " + "z" * 5000
        fake.fault(faulted, "status", status=status, body=body)
        run = tap(
            config(fake, name, variant, auth_method="api_key", api_key_location="query", api_key_name="api_key")
            | {"api_key": API_KEY}
        )
        assert run.rc == 78, run.stderr
        line = error_line(run)
        assert line.startswith("tap-rest: config error: GET "), line
        assert f"answered {status}" in line and "Problem: zzz" in line, line
        assert 150 <= line.count("z") <= 200 + 5, "the body's first 200 characters"
        assert API_KEY not in run.stderr
        # The URL of page 3, its key masked (or left out).
        shown = line.removeprefix("tap-rest: config error: GET ").split(": answered")[0]
        assert shown.startswith(f"{fake.url}/{ROUTES[variant.kind]['route']}/{name}?"), line
        assert target(fake, name, variant, 3).split("?")[1].split("&")[-1] in shown.split("?")[1].split("&"), line
        assert "api_key=***" in shown or "api_key" not in shown, line
        assert len([r for r in fake.requests if r.status == status]) == 1, "no retry"
        assert ids(run) == [1, 2, 3, 4]


# --- what is not JSON ---------------------------------------------------------------------------------

BROKEN = '{"data": [{"id": 5, "name": "x"}, {"id": 6,]}'


def _position(text: str) -> str:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return f"line {exc.lineno} column {exc.colno}"
    raise AssertionError("valid JSON")


class TestNotJson:
    @pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
    def test_malformed_json_names_the_page_url_and_the_position(
        self, fake: FakeApi, tap: Callable[..., Run], variant: Variant
    ) -> None:
        name = collection(fake)
        faulted = target(fake, name, variant, min(3, variant.pages))
        body = BROKEN if ROUTES[variant.kind]["records_path"] == "$.data" else BROKEN.replace('{"data": ', "")[:-1]
        fake.fault(faulted, "malformed", body=body)
        run = tap(config(fake, name, variant))
        assert run.rc == 65, run.stderr
        line = error_line(run)
        assert line.startswith("tap-rest: data error: page "), line
        assert f"{fake.url}{faulted}" in line and _position(body) in line, line
        assert len(asked(fake, faulted)) == 1, "bad data is not retried"

    @pytest.mark.parametrize(
        ("kind", "options", "says"),
        [
            ("malformed", {}, "not valid JSON"),  # the first half of the page
            ("html", {}, "<!DOCTYPE html>"),
            ("malformed", {"body": ""}, "empty"),
            ("malformed", {"body": "   \r\n"}, "empty"),
            ("malformed", {"body": b'{"data": [{"id": 5, "name": "caf\xe9"}]}'}, "UTF-8"),
        ],
        ids=["half", "html-login-page", "empty", "blank", "latin-1"],
    )
    @pytest.mark.parametrize("variant", [Variant("page"), Variant("cursor"), Variant("none")], ids=lambda v: v.id)
    def test_a_page_that_is_not_json_is_a_data_error(
        self,
        fake: FakeApi,
        tap: Callable[..., Run],
        variant: Variant,
        kind: str,
        options: dict[str, Any],
        says: str,
    ) -> None:
        name = collection(fake)
        faulted = target(fake, name, variant, min(3, variant.pages))
        fake.fault(faulted, kind, **options)
        run = tap(config(fake, name, variant))
        assert run.rc == 65, run.stderr
        line = error_line(run)
        assert line.startswith("tap-rest: data error: page "), line
        assert f"{fake.url}{faulted}" in line and says in line, line
        assert len(asked(fake, faulted)) == 1


# --- a failure mid-stream: what was written, what the STATE says, the resume ------------------------

# id -> (fault kind, options, times (None: max_retries + 1), exit code, what the message says)
LASTING: dict[str, tuple[str, dict[str, Any], int | None, int, str]] = {
    "404": ("status", {"status": 404}, 1, 78, "answered 404"),
    "422": ("status", {"status": 422, "body": "bad filter"}, 1, 78, "bad filter"),
    "503": ("status", {"status": 503}, None, 75, "answered 503"),
    "429": ("status", {"status": 429, "retry_after": 0}, None, 75, "answered 429"),
    "drop": ("drop", {}, None, 75, "connection"),
    "cut": ("cut", {}, None, 75, "connection"),
    "malformed": ("malformed", {}, 1, 65, "not valid JSON"),
    "html": ("html", {}, 1, 65, "is HTML, not JSON"),
    "empty": ("malformed", {"body": ""}, 1, 65, "empty"),
    "latin-1": ("malformed", {"body": b'{"data": ["caf\xe9"]}'}, 1, 65, "UTF-8"),
}


def _fails_at_page_3_then_resumes(
    fake: FakeApi,
    tap: Callable[..., Run],
    variant: Variant,
    fault: tuple[str, dict[str, Any], int | None, int, str],
    max_retries: int = 2,
    **extra: Any,
) -> None:
    kind, options, times, rc, says = fault
    times = times or max_retries + 1
    rows = sample_rows(ROWS)
    name = collection(fake)
    faulted = target(fake, name, variant, 3)
    settings = config(fake, name, variant, max_retries=max_retries, stream=sorted_incremental(), **extra)
    fake.fault(faulted, kind, times=times, **options)

    first = tap(settings)
    assert first.rc == rc, first.stderr
    line = error_line(first)
    assert f"{fake.url}{faulted}" in line and says in line, line
    assert len(asked(fake, faulted)) == times
    assert ids(first) == [1, 2, 3, 4], "the records of pages 1 and 2, each once"
    bookmark = first.states[-1]["bookmarks"][name]
    assert bookmark["replication_key_value"] == rows[3]["updated_at"], "the STATE covers pages 1-2 exactly"
    messages = [m["type"] for m in first.messages]
    assert messages[-1] == "STATE" and messages.count("RECORD") == 4

    fake.clear_log()
    second = tap(settings, state=first.states[-1])
    assert second.rc == 0, second.stderr
    assert ids(second) == [4, 5, 6, 7, 8, 9], "the rest, and the tie at the bookmark again"
    assert {r.query.get("updated_at_since") for r in fake.requests} == {rows[3]["updated_at"]}
    assert second.states[-1]["bookmarks"][name]["replication_key_value"] == rows[-1]["updated_at"]


class TestFailureMidStream:
    @pytest.mark.parametrize("variant", PAGED, ids=lambda v: v.id)
    @pytest.mark.parametrize("fault", list(LASTING))
    def test_page_3_failing_for_good_leaves_pages_1_2_written_and_covered_by_the_state(
        self, fake: FakeApi, tap: Callable[..., Run], fault: str, variant: Variant
    ) -> None:
        _fails_at_page_3_then_resumes(fake, tap, variant, LASTING[fault])

    @pytest.mark.parametrize("variant", [Variant("page"), Variant("page", 3)], ids=lambda v: v.id)
    def test_page_3_always_slow_leaves_pages_1_2_written_and_covered_by_the_state(
        self, fake: FakeApi, tap: Callable[..., Run], variant: Variant
    ) -> None:
        fault = ("slow", {"seconds": SLOW_SECONDS}, None, 75, "timeout")
        _fails_at_page_3_then_resumes(fake, tap, variant, fault, max_retries=1, timeout=SLOW_TIMEOUT)


# --- request rate -------------------------------------------------------------------------------------


class TestRequestRate:
    def test_max_requests_per_second_spaces_the_requests(self, fake: FakeApi, tap: Callable[..., Run]) -> None:
        name = collection(fake, rows=19)  # ten pages of two
        run = tap(config(fake, name, Variant("page"), max_requests_per_second=20))
        assert run.rc == 0, run.stderr
        assert ids(run) == list(range(1, 20))
        sent = fake.requests
        assert len(sent) == 10
        assert 0.45 - 0.01 <= sent[-1].time - sent[0].time < 1.5
        assert min(gaps(sent)) >= 0.04, gaps(sent)

    def test_max_requests_per_second_holds_with_pages_fetched_at_once(
        self, fake: FakeApi, tap: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A client slow to build (a proxy lookup, say) makes the race of the first pages certain.
        slow_client(monkeypatch)
        self._rate_with_concurrency(fake, tap)

    def test_max_requests_per_second_holds_with_pages_fetched_at_once_after_a_first_stream(
        self, fake: FakeApi, tap: Callable[..., Run]
    ) -> None:
        """The same, once a first stream (one request) has built the client."""
        first = collection(fake, rows=1)
        name = collection(fake, rows=19)
        settings = config(fake, name, Variant("page", 3), max_requests_per_second=20)
        settings["streams"].insert(0, {"name": first, "path": f"/plain/{first}", "schema": SCHEMA, "concurrency": 1})
        run = tap(settings)
        assert run.rc == 0, run.stderr
        assert ids(run) == [1, *range(1, 20)]
        sent = sorted(fake.requests, key=lambda r: r.time)
        assert sent[0].target == f"/plain/{first}"
        assert 11 <= len(sent) <= 13  # and the pages fetched ahead past the last
        assert (len(sent) - 1) * 0.05 - 0.01 <= sent[-1].time - sent[0].time < 2
        assert min(gaps(sent)) >= 0.04, gaps(sent)

    @staticmethod
    def _rate_with_concurrency(fake: FakeApi, tap: Callable[..., Run]) -> None:
        name = collection(fake, rows=19)
        run = tap(config(fake, name, Variant("page", 3), max_requests_per_second=20))
        assert run.rc == 0, run.stderr
        assert ids(run) == list(range(1, 20))
        sent = sorted(fake.requests, key=lambda r: r.time)
        assert len(sent) >= 10
        assert (len(sent) - 1) * 0.05 - 0.01 <= sent[-1].time - sent[0].time < 2
        assert min(gaps(sent)) >= 0.04, gaps(sent)
