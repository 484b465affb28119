"""The REST API stand-in tap-rest's tests drive: every route, auth kind and fault, over real HTTP."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from tests.tools import ROOT
from tests.tools.rest_api import FakeApi, sample_rows


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with FakeApi() as fake:
        fake.put("items", sample_rows(25))
        yield fake


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def _ids(rows: list[dict[str, Any]]) -> list[Any]:
    return [row["id"] for row in rows]


# --- data, order and filters ----------------------------------------------------------------------


def test_plain_is_every_row_ordered_by_id_and_a_later_row_replaces_an_earlier(
    api: FakeApi, http: requests.Session
) -> None:
    api.clear()
    api.put("users", [{"id": 3, "name": "c"}, {"id": 1, "name": "a"}])
    api.put("users", [{"id": 2, "name": "b"}, {"id": 3, "name": "c2"}])
    answer = http.get(f"{api.url}/plain/users")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c2"}]
    assert http.get(f"{api.url}/plain/nothing").json() == []
    assert http.get(f"{api.url}/plain/items").json() == []  # clear() forgot them
    with pytest.raises(ValueError, match="no id"):
        api.put("users", [{"name": "x"}])


def test_sort_compares_date_times_as_instants_and_since_filters_by_field_or_its_at(
    api: FakeApi, http: requests.Session
) -> None:
    api.put(
        "events",
        [
            {"id": 1, "updated_at": "2024-01-01T03:00:00+02:00", "user_id": 7},  # 01:00Z
            {"id": 2, "updated_at": "2024-01-01T00:30:00Z", "user_id": 8},
            {"id": 3, "updated_at": "2024-01-01T02:00:00Z", "user_id": 7},
            {"id": 4, "user_id": 7},  # no updated_at: sorted last, never passes a since filter
        ],
    )
    assert _ids(http.get(f"{api.url}/plain/events", params={"sort": "updated_at"}).json()) == [2, 1, 3, 4]
    assert _ids(http.get(f"{api.url}/plain/events", params={"sort": "-updated_at"}).json()) == [3, 1, 2, 4]
    since = {"updated_since": "2024-01-01T02:00:00+01:00"}  # 01:00Z, and row 1 is exactly that
    assert _ids(http.get(f"{api.url}/plain/events", params=since).json()) == [1, 3]
    assert _ids(http.get(f"{api.url}/plain/events", params={"updated_at_since": "2024-01-01T01:30:00Z"}).json()) == [3]
    assert _ids(http.get(f"{api.url}/plain/events", params={"id_since": "3"}).json()) == [3, 4]
    assert _ids(http.get(f"{api.url}/plain/events", params={"user_id": "7", **since}).json()) == [1, 3]
    # Only the fields in `filterable` filter by equality; others are ignored like unknown parameters.
    assert _ids(http.get(f"{api.url}/plain/events", params={"name": "x"}).json()) == [1, 2, 3, 4]
    api.filterable.add("name")
    assert http.get(f"{api.url}/plain/events", params={"name": "x"}).json() == []


# --- pagination styles ----------------------------------------------------------------------------


def test_page(api: FakeApi, http: requests.Session) -> None:
    first = http.get(f"{api.url}/page/items").json()
    assert first["page"] == 1
    assert _ids(first["data"]) == list(range(1, 11))  # per_page 10 by default
    third = http.get(f"{api.url}/page/items", params={"page": 3, "per_page": 10}).json()
    assert third == {"data": sample_rows(25)[20:], "page": 3}
    assert http.get(f"{api.url}/page/items", params={"page": 4}).json() == {"data": [], "page": 4}
    bad = http.get(f"{api.url}/page/items", params={"page": "x"})
    assert bad.status_code == 400
    assert "page" in bad.json()["error"]
    assert http.get(f"{api.url}/page/items", params={"page": 0}).status_code == 400


def test_offset(api: FakeApi, http: requests.Session) -> None:
    answer = http.get(f"{api.url}/offset/items", params={"offset": 20, "limit": 10}).json()
    assert answer["total"] == 25
    assert _ids(answer["results"]) == [21, 22, 23, 24, 25]
    assert http.get(f"{api.url}/offset/items", params={"offset": 30}).json() == {"results": [], "total": 25}


def test_cursor_is_opaque_and_null_at_the_end(api: FakeApi, http: requests.Session) -> None:
    seen: list[Any] = []
    cursors: list[Any] = []
    params: dict[str, str | int] = {"limit": 10}
    while True:
        answer = http.get(f"{api.url}/cursor/items", params=params).json()
        seen += _ids(answer["items"])
        cursors.append(cursor := answer["meta"]["next_cursor"])
        if cursor is None:
            break
        params["cursor"] = cursor
    assert seen == list(range(1, 26))
    assert len(cursors) == 3
    assert all(isinstance(c, str) and not c.isdigit() for c in cursors[:2])
    assert cursors[2] is None
    assert http.get(f"{api.url}/cursor/items", params={"cursor": "nonsense!"}).status_code == 400


def test_link_header_has_prev_next_last_first_with_absolute_urls(api: FakeApi, http: requests.Session) -> None:
    first = http.get(f"{api.url}/link/items", params={"per_page": "10", "updated_since": "2024-01-01"})
    assert _ids(first.json()) == list(range(1, 11))
    assert "prev" not in first.links
    assert first.links["next"]["url"].startswith(f"{api.url}/link/items?")
    second = http.get(first.links["next"]["url"])
    assert second.headers["Link"].index('rel="prev"') < second.headers["Link"].index('rel="next"')
    assert _ids(second.json()) == list(range(11, 21))
    assert second.links["prev"]["url"] == first.links["first"]["url"]
    third = http.get(second.links["next"]["url"])
    assert _ids(third.json()) == [21, 22, 23, 24, 25]
    assert "next" not in third.links
    assert third.links["last"]["url"] == second.links["next"]["url"]
    assert api.requests[-1].query == {"updated_since": "2024-01-01", "page": "3", "per_page": "10"}


def test_next_url_is_relative_unless_asked_absolute(api: FakeApi, http: requests.Session) -> None:
    answer = http.get(f"{api.url}/next/items", params={"limit": 20}).json()
    assert _ids(answer["data"]) == list(range(1, 21))
    assert answer["next"] == "/next/items?limit=20&after=20"
    last = http.get(api.url + answer["next"]).json()
    assert _ids(last["data"]) == [21, 22, 23, 24, 25]
    assert last["next"] is None
    api.absolute_next = True
    assert http.get(f"{api.url}/next/items").json()["next"] == f"{api.url}/next/items?after=10&limit=10"
    # An id that is gone: the rows after it still come, in id order.
    assert _ids(http.get(f"{api.url}/next/items", params={"after": "22"}).json()["data"]) == [23, 24, 25]
    assert _ids(http.get(f"{api.url}/next/items", params={"after": "0"}).json()["data"])[:1] == [1]
    # In another order, `after` is the row after that one in that order.
    backwards = http.get(f"{api.url}/next/items", params={"sort": "-id", "limit": "5"}).json()
    assert backwards["next"] == f"{api.url}/next/items?sort=-id&limit=5&after=21"
    assert _ids(http.get(backwards["next"]).json()["data"]) == [20, 19, 18, 17, 16]


def test_child_routes_give_the_rows_of_one_parent_in_each_style(api: FakeApi, http: requests.Session) -> None:
    api.put("orders", [{"id": i, "parent_id": 1 + i % 2, "total": i} for i in range(1, 8)])
    assert _ids(http.get(f"{api.url}/plain/users/1/orders").json()) == [2, 4, 6]
    assert _ids(http.get(f"{api.url}/page/users/2/orders", params={"per_page": 2}).json()["data"]) == [1, 3]
    assert _ids(http.get(f"{api.url}/offset/users/2/orders", params={"offset": 2}).json()["results"]) == [5, 7]
    assert http.get(f"{api.url}/next/users/2/orders", params={"limit": 2}).json()["next"] == (
        "/next/users/2/orders?limit=2&after=3"
    )
    assert http.get(f"{api.url}/plain/users/9/orders").json() == []
    assert http.get(f"{api.url}/bogus/items").status_code == 404
    assert http.get(f"{api.url}/page/a/b").status_code == 404


def test_post_body_keys_work_as_query_parameters(api: FakeApi, http: requests.Session) -> None:
    api.put("people", [{"id": i, "user_id": i % 3} for i in range(1, 10)])
    answer = http.post(f"{api.url}/page/people", json={"user_id": 1, "page": 2, "per_page": 2})
    assert answer.json() == {"data": [{"id": 7, "user_id": 1}], "page": 2}
    assert api.requests[-1].method == "POST"
    assert http.post(f"{api.url}/page/people", data=b"{nope", headers={"Content-Type": "application/json"}).json() == {
        "error": "the body is not valid JSON"
    }


def test_prefix_and_max_page_size(http: requests.Session) -> None:
    with FakeApi(prefix="/v1") as api:
        api.put("items", sample_rows(5))
        api.max_page_size = 2
        assert http.get(f"{api.url}/page/items").status_code == 404
        page = http.get(f"{api.url}/v1/page/items", params={"per_page": 100}).json()
        assert _ids(page["data"]) == [1, 2]
        assert http.get(f"{api.url}/v1/next/items").json()["next"] == "/v1/next/items?after=2&limit=2"


# --- authentication -------------------------------------------------------------------------------


BEARER = {"Authorization": "Bearer t0k"}


@pytest.mark.parametrize(
    ("kind", "secrets", "good", "bad"),
    [
        ("bearer", {"token": "t0k"}, {"headers": BEARER}, {"headers": {"Authorization": "Bearer x"}}),
        ("basic", {"username": "u", "password": "p:w"}, {"auth": ("u", "p:w")}, {"auth": ("u", "p")}),
        ("api_key_header", {"name": "X-Key", "value": "k"}, {"headers": {"x-key": "k"}}, {"headers": {"X-Key": "0"}}),
        ("api_key_query", {"name": "key", "value": "k"}, {"params": {"key": "k"}}, {"params": {"key": "no"}}),
    ],
)
def test_static_credentials(
    api: FakeApi, http: requests.Session, kind: str, secrets: dict[str, str], good: dict[str, Any], bad: dict[str, Any]
) -> None:
    api.require(kind, **secrets)
    assert http.get(f"{api.url}/plain/items", **good).status_code == 200
    for attempt in (bad, {}):
        denied = http.get(f"{api.url}/plain/items", **attempt)
        assert denied.status_code == 401
        assert denied.json() == {"error": "unauthorized"}
        assert "WWW-Authenticate" in denied.headers
    api.require("none")
    assert http.get(f"{api.url}/plain/items").status_code == 200


def test_require_checks_its_arguments(api: FakeApi) -> None:
    with pytest.raises(ValueError, match="unknown auth kind"):
        api.require("digest")
    with pytest.raises(TypeError, match="needs"):
        api.require("bearer", value="x")
    with pytest.raises(ValueError, match="client_auth"):
        api.require("oauth2", client_id="a", client_secret="b", client_auth="jwt")


def _token(http: requests.Session, api: FakeApi, **form: str) -> requests.Response:
    return http.post(f"{api.url}/oauth/token", data=form)


def test_oauth2_client_credentials_in_the_body(api: FakeApi, http: requests.Session) -> None:
    api.require("oauth2", client_id="app", client_secret="s3", expires_in=600)
    assert http.get(f"{api.url}/plain/items").status_code == 401
    first = _token(http, api, grant_type="client_credentials", client_id="app", client_secret="s3", scope="read")
    assert first.status_code == 200
    assert first.headers["Cache-Control"] == "no-store"
    body = first.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 600)
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    assert http.get(f"{api.url}/plain/items", headers=bearer).status_code == 200
    second = _token(http, api, grant_type="client_credentials", client_id="app", client_secret="s3").json()
    assert second["access_token"] != body["access_token"]
    assert http.get(f"{api.url}/plain/items", headers=bearer).status_code == 200  # the old one still works
    api.revoke_tokens()
    revoked = http.get(f"{api.url}/plain/items", headers=bearer)
    assert (revoked.status_code, revoked.json()) == (401, {"error": "unauthorized"})
    wrong = _token(http, api, grant_type="client_credentials", client_id="app", client_secret="no")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    # credentials in a basic header are not accepted when the provider wants them in the body
    in_header = http.post(f"{api.url}/oauth/token", data={"grant_type": "client_credentials"}, auth=("app", "s3"))
    assert in_header.status_code == 401
    assert [call["grant_type"] for call in api.token_requests] == ["client_credentials"] * 4
    assert api.token_requests[0]["scope"] == "read"
    assert api.hits("/oauth/token") == 4


def test_oauth2_basic_client_auth_refresh_token_and_errors(api: FakeApi, http: requests.Session) -> None:
    api.require("oauth2", client_id="app", client_secret="s 3", refresh_token="r1", client_auth="basic")
    auth = ("app", "s 3")
    refresh = {"grant_type": "refresh_token", "refresh_token": "r1"}
    assert http.post(f"{api.url}/oauth/token", data=refresh, auth=auth).status_code == 200
    # RFC 6749 form-encodes the client secret before the base64; that is accepted too.
    encoded = base64.b64encode(b"app:s+3").decode()
    form = {"grant_type": "client_credentials"}
    assert http.post(f"{api.url}/oauth/token", data=form, headers={"Authorization": f"Basic {encoded}"}).ok
    errors = [
        http.post(f"{api.url}/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "r0"}, auth=auth),
        http.post(f"{api.url}/oauth/token", data={"grant_type": "password"}, auth=auth),
        http.post(f"{api.url}/oauth/token", data={"scope": "x"}, auth=auth),
        http.post(f"{api.url}/oauth/token", json={"grant_type": "client_credentials"}, auth=auth),
        http.post(f"{api.url}/oauth/token", data=form, auth=("app", "wrong")),
        http.get(f"{api.url}/oauth/token", auth=auth),
    ]
    assert [(e.status_code, e.json()["error"]) for e in errors] == [
        (400, "invalid_grant"),
        (400, "unsupported_grant_type"),
        (400, "invalid_request"),
        (400, "invalid_request"),
        (401, "invalid_client"),
        (405, "invalid_request"),
    ]
    assert [call.get("grant_type") for call in api.token_requests] == [
        "refresh_token",
        "client_credentials",
        "refresh_token",
        "password",
        None,
        "client_credentials",
    ]


def test_oauth2_tokens_expire(api: FakeApi, http: requests.Session) -> None:
    api.require("oauth2", client_id="a", client_secret="b", expires_in=0.2)
    token = _token(http, api, grant_type="client_credentials", client_id="a", client_secret="b").json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert http.get(f"{api.url}/plain/items", headers=bearer).status_code == 200
    time.sleep(0.25)
    assert http.get(f"{api.url}/plain/items", headers=bearer).status_code == 401


def test_the_token_route_exists_only_for_oauth2(api: FakeApi, http: requests.Session) -> None:
    assert http.post(f"{api.url}/oauth/token", data={"grant_type": "client_credentials"}).status_code == 404


# --- faults ---------------------------------------------------------------------------------------


def test_status_faults_with_retry_after_and_body_apply_in_order_then_stop(api: FakeApi, http: requests.Session) -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    api.fault("page=2", "status", status=429, retry_after=3)
    api.fault("page=2", "status", status=503, retry_after=when)
    api.fault("page=2", "status", times=2, status=400, body="bad " * 100)
    api.fault("/page/items", "status", status=500, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    answers = [http.get(f"{api.url}/page/items", params={"page": 2}) for _ in range(5)]
    assert [a.status_code for a in answers] == [429, 503, 400, 400, 500]
    assert answers[0].headers["Retry-After"] == "3"
    assert answers[0].json() == {"error": "Too Many Requests"}
    assert answers[1].headers["Retry-After"] == "Wed, 02 Jan 2030 03:04:05 GMT"
    assert answers[2].text == "bad " * 100
    assert answers[4].headers["Retry-After"] == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert http.get(f"{api.url}/page/items", params={"page": 2}).status_code == 200
    assert [r.fault for r in api.requests] == ["status"] * 5 + [None]
    assert [r.status for r in api.requests] == [429, 503, 400, 400, 500, 200]


def test_faults_match_the_decoded_query_too(api: FakeApi, http: requests.Session) -> None:
    api.fault("since=2024-01-01T00:00:00Z", "status", status=404)
    assert http.get(f"{api.url}/plain/items", params={"updated_since": "2024-01-01T00:00:00Z"}).status_code == 404
    assert api.hits("updated_since=2024-01-01T00:00") == 1


def test_drop_closes_without_an_answer(api: FakeApi, http: requests.Session) -> None:
    assert http.get(f"{api.url}/plain/items").ok  # a keep-alive connection first
    api.fault("items", "drop")
    with pytest.raises(requests.ConnectionError):
        http.get(f"{api.url}/plain/items")
    assert http.get(f"{api.url}/plain/items").ok
    assert [(r.fault, r.status) for r in api.requests] == [(None, 200), ("drop", 0), (None, 200)]


def test_cut_sends_the_headers_and_half_the_body_then_closes(api: FakeApi, http: requests.Session) -> None:
    api.fault("items", "cut")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        http.get(f"{api.url}/plain/items")
    assert api.requests[-1].status == 200
    whole = http.get(f"{api.url}/plain/items").content
    api.fault("items", "cut")
    host, port = api.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall(b"GET /plain/items HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while chunk := raw.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert f"Content-Length: {len(whole)}".encode() in head
    assert body == whole[: len(whole) // 2]


def test_slow_answers_late(api: FakeApi, http: requests.Session) -> None:
    api.fault("items", "slow", seconds=0.3)
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.get(f"{api.url}/plain/items", timeout=0.1)
    api.fault("items", "slow", seconds=0.1)
    started = time.monotonic()
    assert http.get(f"{api.url}/plain/items", timeout=2).ok
    assert time.monotonic() - started >= 0.1


def test_malformed_html_and_repeat(api: FakeApi, http: requests.Session) -> None:
    api.fault("items", "malformed")
    malformed = http.get(f"{api.url}/page/items", params={"page": 2})
    assert malformed.status_code == 200
    assert malformed.headers["Content-Type"] == "application/json"
    with pytest.raises(requests.exceptions.JSONDecodeError):
        malformed.json()
    assert malformed.text.startswith('{"data": [{"id": 11')
    api.fault("items", "malformed", body="{'single': quotes}")
    assert http.get(f"{api.url}/page/items").text == "{'single': quotes}"
    api.fault("items", "html")
    html = http.get(f"{api.url}/page/items")
    assert (html.status_code, html.headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert "<form" in html.text
    api.fault("items", "repeat", times=4)
    pages = [
        http.get(f"{api.url}/page/items", params={"page": 3}).json()["data"],
        http.get(f"{api.url}/offset/items", params={"offset": 10}).json()["results"],
        http.get(f"{api.url}/cursor/items", params={"cursor": "bzoxMA"}).json()["items"],
        http.get(f"{api.url}/next/items", params={"after": 10}).json()["data"],
    ]
    assert all(_ids(page) == list(range(1, 11)) for page in pages)


def test_fault_checks_its_arguments(api: FakeApi) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        api.fault("x", "explode")
    with pytest.raises(TypeError, match="takes"):
        api.fault("x", "slow", status=500)
    with pytest.raises(ValueError, match="times"):
        api.fault("x", "drop", times=0)


# --- introspection, connections, the process ------------------------------------------------------


def test_requests_are_recorded_with_headers_and_connection(api: FakeApi, http: requests.Session) -> None:
    started = time.monotonic()
    http.get(f"{api.url}/page/items", params={"page": 2}, headers={"X-Trace": "t1"})
    http.post(f"{api.url}/page/items", json={"page": 3})
    first, second = api.requests
    assert (first.method, first.path, first.query, first.status) == ("GET", "/page/items", {"page": "2"}, 200)
    assert first.headers["x-trace"] == "t1"
    assert first.target == "/page/items?page=2"
    assert started <= first.time <= second.time <= time.monotonic()
    assert second.body == b'{"page": 3}'
    assert first.connection == second.connection  # one keep-alive connection
    assert api.hits("/page/items") == 2
    assert api.hits("page=2") == 1
    api.clear_log()
    assert api.requests == []


def test_concurrent_clients_are_served(api: FakeApi) -> None:
    def fetch(page: int) -> list[Any]:
        return _ids(requests.get(f"{api.url}/page/items", params={"page": page, "per_page": 5}).json()["data"])

    with ThreadPoolExecutor(8) as pool:
        pages = list(pool.map(fetch, range(1, 9)))
    assert [row_id for page in pages for row_id in page] == list(range(1, 26))
    assert len({r.connection for r in api.requests}) == 8


def test_close_ends_keep_alive_connections(http: requests.Session) -> None:
    api = FakeApi().start()
    url = api.url
    assert http.get(f"{url}/plain/items").ok
    api.close()
    with pytest.raises(requests.ConnectionError):
        http.get(f"{url}/plain/items")


def test_runs_as_a_process_serving_generated_items(http: requests.Session) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.tools.rest_api", "--port", "0", "--rows", "30"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        rows = http.get(f"{url}/page/items", params={"per_page": 100}).json()["data"]
        assert rows == sample_rows(30)
        assert rows[0] == {"id": 1, "name": "item 1", "updated_at": "2024-01-01T00:01:00Z"}
    finally:
        process.terminate()
        process.wait(5)


def test_sample_rows_start_where_asked() -> None:
    start = datetime(2020, 5, 1, tzinfo=UTC)
    assert sample_rows(2, start=start)[1]["updated_at"] == (start + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
