"""A JSON REST API stand-in for tap-rest's tests: real HTTP/1.1 (keep-alive, Content-Length) on
127.0.0.1, a port of its own, served from daemon threads. Standard library only.

    /plain/<c>                       a JSON array of every row
    /page/<c>?page=N&per_page=K      {"data": [...], "page": N}; N from 1, K 10 by default
    /offset/<c>?offset=O&limit=L     {"results": [...], "total": T}
    /cursor/<c>?cursor=X&limit=L     {"items": [...], "meta": {"next_cursor": "<opaque>" | null}}
    /link/<c>?page=N&per_page=K      a JSON array; a `Link` header with prev, next, last and first
    /next/<c>?after=ID&limit=L       {"data": [...], "next": "/next/<c>?..." | null} (relative by default)
    /<style>/<parent>/<pid>/<c>      the rows of <c> whose parent_id is <pid>, paginated in that style
    POST /oauth/token                OAuth2 tokens (client_credentials, refresh_token), form-encoded

Rows come ordered by `id`, or by `sort=<field>` (`-<field>` descending; date-time strings compared as
instants). `<field>_since=V` keeps rows whose field (or `<field>_at`) is >= V; `<field>=V` keeps equal
rows for fields in `filterable`. A POST's JSON object body works as more query parameters. The
links (Link header, next URL) keep the request's other query parameters. Faults (`fault()`) and
credentials (`require()`) are set per test; `requests` records every request.

`python -m tests.tools.rest_api --port P --rows N` serves N generated "items" until it is killed.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import json
import re
import secrets
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

Row = dict[str, Any]

AUTH_SECRETS: dict[str, tuple[str, ...]] = {
    "bearer": ("token",),
    "basic": ("username", "password"),
    "api_key_header": ("name", "value"),
    "api_key_query": ("name", "value"),
    "oauth2": ("client_id", "client_secret"),
}
_OAUTH2_OPTIONS = ("refresh_token", "expires_in", "client_auth")
FAULT_OPTIONS: dict[str, frozenset[str]] = {
    "status": frozenset({"status", "retry_after", "body", "headers"}),
    "drop": frozenset(),
    "cut": frozenset(),
    "slow": frozenset({"seconds"}),
    "malformed": frozenset({"body"}),
    "html": frozenset(),
    "repeat": frozenset(),
}
_PAGE_PARAMS = ("page", "offset", "cursor", "after")  # what a "repeat" fault ignores
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}.*)?")
_LOGIN_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>\n"
    b'<form method="post" action="/login"><input name="user"><input name="password" type="password">'
    b"<button>Sign in</button></form>\n</body></html>\n"
)


@dataclass(slots=True)
class RecordedRequest:
    method: str
    path: str  # without the query string
    query: dict[str, str]  # the last value of each name
    headers: dict[str, str]  # lower-case names
    body: bytes
    time: float  # time.monotonic() on arrival
    target: str = ""  # the raw request target: path and query string as sent
    connection: int = 0  # which connection it came on, numbered from 1: keep-alive shows as one number
    status: int = 0  # the status answered; 0 when the connection was dropped without an answer
    fault: str | None = None  # the kind of fault injected into this request


@dataclass(slots=True)
class _Fault:
    path_contains: str
    kind: str
    remaining: int
    options: dict[str, Any]


@dataclass(slots=True)
class _Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, value: Any, headers: dict[str, str] | None = None) -> _Answer:
    return _Answer(status, json.dumps(value).encode(), {"Content-Type": "application/json", **(headers or {})})


class _BadRequest(Exception):
    pass


@dataclass(slots=True)
class _View:
    """One collection filtered and ordered, kept until the data changes."""

    rows: list[Row]
    positions: dict[str, int] | None = None  # str(id) -> index, built on first use

    def position(self, row_id: str) -> int | None:
        if self.positions is None:
            self.positions = {str(row.get("id")): i for i, row in enumerate(self.rows)}
        return self.positions.get(row_id)


@dataclass(slots=True)
class _Context:
    path: str  # the request's path, prefix included
    query: dict[str, str]  # the URL's own parameters, for the links
    base: str  # scheme and host, for absolute links


class FakeApi:
    def __init__(self, *, port: int = 0, prefix: str = "") -> None:
        self.port = port
        self.prefix = prefix.rstrip("/")  # every route lives under it, e.g. "/v1"
        self.filterable: set[str] = {"user_id", "parent_id"}
        self.absolute_next = False
        self.max_page_size: int | None = None  # larger page sizes asked for are cut to this, silently
        self._rows: dict[str, dict[Any, Row]] = {}
        self._views: dict[tuple[Any, ...], _View] = {}
        self._auth: tuple[str, dict[str, Any]] | None = None
        self._tokens: dict[str, float] = {}  # access token -> monotonic expiry
        self._token_requests: list[dict[str, str]] = []
        self._faults: list[_Fault] = []
        self._log: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._connection_count = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the API first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            number = 0

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in separate writes: without this, delayed ACKs cost 40 ms each.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with api._lock:
                    api._connections.add(self.connection)
                    api._connection_count += 1
                    self.number = api._connection_count

            def handle(self) -> None:
                with contextlib.suppress(OSError):  # a client gone (reset, timed out) or close()
                    super().handle()

            def finish(self) -> None:
                with contextlib.suppress(OSError):
                    super().finish()
                with api._lock:
                    api._connections.discard(self.connection)

            def do_GET(self) -> None:
                api._handle(self, "GET", self.number)

            def do_POST(self) -> None:
                api._handle(self, "POST", self.number)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        # A short poll interval: close() waits one poll for the serving loop to notice.
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def close(self) -> None:
        """Stop serving and end every open keep-alive connection."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FakeApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what a test sets -----------------------------------------------------------------------

    def put(self, collection: str, rows: list[Row]) -> None:
        """Add rows (copied); a row with the `id` of an earlier one replaces it."""
        with self._lock:
            table = self._rows.setdefault(collection, {})
            for row in rows:
                if "id" not in row:
                    raise ValueError(f"a row of {collection!r} has no id: {row!r}")
                table[_id_key(row["id"])] = dict(row)
            self._views.clear()

    def clear(self) -> None:
        """Forget every row of every collection."""
        with self._lock:
            self._rows.clear()
            self._views.clear()

    def require(self, kind: str, **secrets_: Any) -> None:
        """Ask for credentials on every data route from now on; kind "none" asks for none again."""
        if kind == "none":
            with self._lock:
                self._auth = None
            return
        if kind not in AUTH_SECRETS:
            raise ValueError(f"unknown auth kind {kind!r}; one of {sorted(AUTH_SECRETS)} or 'none'")
        allowed = AUTH_SECRETS[kind] + (_OAUTH2_OPTIONS if kind == "oauth2" else ())
        missing = [name for name in AUTH_SECRETS[kind] if name not in secrets_]
        unknown = sorted(set(secrets_) - set(allowed))
        if missing or unknown:
            raise TypeError(f"{kind} needs {list(AUTH_SECRETS[kind])}, may take {allowed}; got {sorted(secrets_)}")
        if kind == "oauth2":
            secrets_ = {"refresh_token": None, "expires_in": 3600, "client_auth": "body", **secrets_}
            if secrets_["client_auth"] not in ("body", "basic"):
                raise ValueError("client_auth is 'body' or 'basic'")
        with self._lock:
            self._auth = (kind, secrets_)
            self._tokens.clear()

    def revoke_tokens(self) -> None:
        """Every OAuth2 access token issued so far answers 401 from now on."""
        with self._lock:
            self._tokens.clear()

    def fault(self, path_contains: str, kind: str, times: int = 1, **options: Any) -> None:
        """The next `times` requests whose target (path and query, raw or decoded) contains
        `path_contains` misbehave; of several matching faults, the one added first applies."""
        if kind not in FAULT_OPTIONS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {sorted(FAULT_OPTIONS)}")
        unknown = sorted(set(options) - FAULT_OPTIONS[kind])
        if unknown:
            raise TypeError(f"fault {kind!r} takes {sorted(FAULT_OPTIONS[kind])}, not {unknown}")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults.append(_Fault(path_contains, kind, times, options))

    # --- what a test reads ----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, in order of arrival (failed and faulted ones too)."""
        with self._lock:
            return list(self._log)

    @property
    def token_requests(self) -> list[dict[str, str]]:
        """The form of every call to /oauth/token, e.g. [{"grant_type": "client_credentials", ...}]."""
        with self._lock:
            return [dict(form) for form in self._token_requests]

    def hits(self, path_contains: str) -> int:
        with self._lock:
            return sum(1 for r in self._log if _matches_target(path_contains, r.target))

    def clear_log(self) -> None:
        """Forget the recorded requests and token calls (not the rows, faults or credentials)."""
        with self._lock:
            self._log.clear()
            self._token_requests.clear()

    def reset(self) -> None:
        """As a fresh server: no rows, no credentials asked, no pending fault, an empty log, default options."""
        self.clear()
        self.require("none")
        self.clear_log()
        with self._lock:
            self._faults.clear()
        self.max_page_size = None
        self.absolute_next = False

    # --- request handling -----------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler, method: str, connection: int) -> None:
        split = urlsplit(request.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in request.headers.items()}
        record = RecordedRequest(method, split.path, query, headers, body, time.monotonic(), request.path, connection)
        with self._lock:
            self._log.append(record)
            fault = self._take_fault(request.path)
        kind = record.fault = fault.kind if fault else None
        if fault is not None and kind == "drop":
            request.close_connection = True
            return
        if fault is not None and kind == "slow":
            self._stopping.wait(float(fault.options.get("seconds", 1.0)))
        if fault is not None and kind == "status":
            answer = _fault_status(fault.options)
        elif kind == "html":
            answer = _Answer(200, _LOGIN_PAGE, {"Content-Type": "text/html; charset=utf-8"})
        else:
            try:
                with self._lock:
                    answer = self._answer(method, split.path, query, body, headers, repeat=kind == "repeat")
            except Exception as exc:  # a bug of this stand-in: say so rather than hang the client
                traceback.print_exc()
                answer = _json(500, {"error": f"fake api bug: {type(exc).__name__}: {exc}"})
        if fault is not None and kind == "malformed":
            broken = fault.options.get("body", answer.body[: max(1, len(answer.body) // 2)])
            answer = _Answer(200, broken.encode() if isinstance(broken, str) else broken)
            answer.headers["Content-Type"] = "application/json"
        record.status = answer.status
        try:
            request.send_response(answer.status)
            for name, value in answer.headers.items():
                request.send_header(name, value)
            request.send_header("Content-Length", str(len(answer.body)))
            request.end_headers()
            if kind == "cut":
                request.wfile.write(answer.body[: len(answer.body) // 2])
                request.close_connection = True
            else:
                request.wfile.write(answer.body)
        except OSError:  # the client went away (a timeout on a slow answer, say)
            request.close_connection = True

    def _take_fault(self, target: str) -> _Fault | None:
        for fault in self._faults:
            if _matches_target(fault.path_contains, target):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _answer(
        self, method: str, path: str, query: dict[str, str], body: bytes, headers: dict[str, str], *, repeat: bool
    ) -> _Answer:
        if self.prefix:
            if not path.startswith(self.prefix + "/"):
                return _json(404, {"error": "not found"})
            path = path[len(self.prefix) :]
        if path == "/oauth/token":
            return self._token(method, body, headers)
        denied = self._denied(headers, query)
        if denied is not None:
            return denied
        try:
            params = dict(query)
            if method == "POST" and body:
                params.update(_body_params(body))
            if repeat:
                for name in _PAGE_PARAMS:
                    params.pop(name, None)
            parts = path.strip("/").split("/")
            equal: list[tuple[str, str]] = []
            if len(parts) == 2:
                style, collection = parts
            elif len(parts) == 4:
                style, _parent, parent_id, collection = parts
                equal = [("parent_id", parent_id)]
            else:
                return _json(404, {"error": "not found"})
            paginate = _STYLES.get(style)
            if paginate is None:
                return _json(404, {"error": "not found"})
            view = self._view(collection, params, equal)
            base = f"http://{headers['host']}" if "host" in headers else self.url
            return paginate(self, view, params, _Context(self.prefix + path, dict(query), base))
        except _BadRequest as exc:
            return _json(400, {"error": str(exc)})

    def _view(self, collection: str, params: dict[str, str], equal: list[tuple[str, str]]) -> _View:
        since = sorted((name[: -len("_since")], value) for name, value in params.items() if name.endswith("_since"))
        equal = sorted(equal + [(name, value) for name, value in params.items() if name in self.filterable])
        order = params.get("sort") or "id"
        key = (collection, order, tuple(since), tuple(equal))
        view = self._views.get(key)
        if view is None:
            if len(self._views) >= 64:  # a bound for long runs that vary their filters
                self._views.clear()
            rows = [row for row in self._rows.get(collection, {}).values() if _keep(row, since, equal)]
            name = order.removeprefix("-")
            present = [row for row in rows if name in row]
            present.sort(key=lambda row: _order_key(row[name]), reverse=order.startswith("-"))
            view = self._views[key] = _View(present + [row for row in rows if name not in row])
        return view

    # --- authentication -------------------------------------------------------------------------

    def _denied(self, headers: dict[str, str], query: dict[str, str]) -> _Answer | None:
        if self._auth is None:
            return None
        kind, wanted = self._auth
        authorization = headers.get("authorization", "")
        if kind == "bearer":
            ok = _bearer(authorization) == wanted["token"]
        elif kind == "basic":
            ok = _basic(authorization) == (wanted["username"], wanted["password"])
        elif kind == "api_key_header":
            ok = headers.get(wanted["name"].lower()) == wanted["value"]
        elif kind == "api_key_query":
            ok = query.get(wanted["name"]) == wanted["value"]
        else:
            expiry = self._tokens.get(_bearer(authorization) or "")
            ok = expiry is not None and time.monotonic() < expiry
        if ok:
            return None
        challenge = 'Basic realm="fake-api"' if kind == "basic" else 'Bearer realm="fake-api"'
        return _json(401, {"error": "unauthorized"}, {"WWW-Authenticate": challenge})

    def _token(self, method: str, body: bytes, headers: dict[str, str]) -> _Answer:
        if self._auth is None or self._auth[0] != "oauth2":
            return _json(404, {"error": "not found"})
        if method != "POST":
            return _json(405, {"error": "invalid_request", "error_description": "POST only"}, {"Allow": "POST"})
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return _json(400, {"error": "invalid_request", "error_description": "a form-encoded body is expected"})
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        self._token_requests.append(form)
        wanted = self._auth[1]
        client = (wanted["client_id"], wanted["client_secret"])
        if wanted["client_auth"] == "basic":
            given = _basic(headers.get("authorization", ""))
            # RFC 6749 form-encodes both before the base64; many clients do not. Take either.
            ok = given is not None and client in (given, (unquote_plus(given[0]), unquote_plus(given[1])))
        else:
            ok = (form.get("client_id"), form.get("client_secret")) == client
        if not ok:
            error = {"error": "invalid_client", "error_description": "client authentication failed"}
            return _json(401, error, {"WWW-Authenticate": 'Basic realm="fake-api"'})
        grant = form.get("grant_type")
        if grant is None:
            return _json(400, {"error": "invalid_request", "error_description": "grant_type is missing"})
        if grant == "refresh_token":
            if wanted["refresh_token"] is None or form.get("refresh_token") != wanted["refresh_token"]:
                return _json(400, {"error": "invalid_grant", "error_description": "the refresh token is not valid"})
        elif grant != "client_credentials":
            return _json(400, {"error": "unsupported_grant_type"})
        token = secrets.token_urlsafe(24)
        self._tokens[token] = time.monotonic() + wanted["expires_in"]
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": wanted["expires_in"]}
        return _json(200, answer, {"Cache-Control": "no-store"})

    # --- pagination styles ----------------------------------------------------------------------

    def _size(self, params: dict[str, str], name: str) -> int:
        size = _int(params, name, 10, minimum=1)
        return size if self.max_page_size is None else min(size, self.max_page_size)

    def _plain(self, view: _View, params: dict[str, str], context: _Context) -> _Answer:
        return _json(200, view.rows)

    def _page(self, view: _View, params: dict[str, str], context: _Context) -> _Answer:
        page, size = _int(params, "page", 1, minimum=1), self._size(params, "per_page")
        return _json(200, {"data": view.rows[(page - 1) * size : page * size], "page": page})

    def _offset(self, view: _View, params: dict[str, str], context: _Context) -> _Answer:
        offset, limit = _int(params, "offset", 0, minimum=0), self._size(params, "limit")
        return _json(200, {"results": view.rows[offset : offset + limit], "total": len(view.rows)})

    def _cursor(self, view: _View, params: dict[str, str], context: _Context) -> _Answer:
        start, limit = _decode_cursor(params.get("cursor") or ""), self._size(params, "limit")
        end = start + limit
        following = _encode_cursor(end) if end < len(view.rows) else None
        return _json(200, {"items": view.rows[start:end], "meta": {"next_cursor": following}})

    def _link(self, view: _View, params: dict[str, str], context: _Context) -> _Answer:
        page, size = _int(params, "page", 1, minimum=1), self._size(params, "per_page")
        last = max(1, -(-len(view.rows) // size))

        def link(number: int, rel: str) -> str:
            query = urlencode({**context.query, "page": number, "per_page": size})
            return f'<{context.base}{context.path}?{query}>; rel="{rel}"'

        # prev first, so a reader that takes the first link it sees follows the wrong one
        links = [link(page - 1, "prev")] if page > 1 else []
        links += [link(page + 1, "next")] if page * size < len(view.rows) else []
        links += [link(last, "last"), link(1, "first")]
        return _json(200, view.rows[(page - 1) * size : page * size], {"Link": ", ".join(links)})

    def _next(self, view: _View, params: dict[str, str], context: _Context) -> _Answer:
        after, limit = params.get("after"), self._size(params, "limit")
        start = 0
        if after:
            position = view.position(after)
            if position is not None:
                start = position + 1
            elif (params.get("sort") or "id") == "id":  # a row gone since: the first one past its id
                bound = _order_key(_coerce(after, view.rows[0]["id"] if view.rows else 0))
                start = next((i for i, r in enumerate(view.rows) if _order_key(r["id"]) > bound), len(view.rows))
            else:
                raise _BadRequest(f"no row has the id given as after={after}")
        rows = view.rows[start : start + limit]
        following = None
        if start + limit < len(view.rows):
            query = urlencode({**context.query, "after": str(rows[-1]["id"]), "limit": limit})
            following = f"{context.base if self.absolute_next else ''}{context.path}?{query}"
        return _json(200, {"data": rows, "next": following})


_STYLES = {
    "plain": FakeApi._plain,
    "page": FakeApi._page,
    "offset": FakeApi._offset,
    "cursor": FakeApi._cursor,
    "link": FakeApi._link,
    "next": FakeApi._next,
}


# --- values and parameters ----------------------------------------------------------------------


def _id_key(value: Any) -> Any:
    return value if isinstance(value, (str, int)) else json.dumps(value, sort_keys=True)


def _order_key(value: Any) -> tuple[Any, ...]:
    """Sorts numbers as numbers, date-time strings as instants, then other strings, in that order."""
    if value is None:
        return (0,)
    if isinstance(value, (bool, int, float)):
        return (1, value)
    if isinstance(value, str):
        instant = _instant(value)
        return (2, instant) if instant is not None else (3, value)
    return (4, json.dumps(value, sort_keys=True))


def _instant(text: str) -> datetime | None:
    if not _DATE_TIME.fullmatch(text):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _coerce(text: str, like: Any) -> Any:
    """A parameter's text as the type of a row's value, where it reads as one."""
    if isinstance(like, (int, float)) and not isinstance(like, bool):
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
    if isinstance(like, bool):
        return text.lower() == "true"
    return text


def _keep(row: Row, since: list[tuple[str, str]], equal: list[tuple[str, str]]) -> bool:
    for name, bound in since:
        name = name if name in row else f"{name}_at"
        if name not in row or _order_key(row[name]) < _order_key(_coerce(bound, row[name])):
            return False
    return all(name in row and row[name] == _coerce(value, row[name]) for name, value in equal)


def _int(params: dict[str, str], name: str, default: int, *, minimum: int) -> int:
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise _BadRequest(f"{name} must be an integer, not {text!r}") from None
    if value < minimum:
        raise _BadRequest(f"{name} must be at least {minimum}")
    return value


def _body_params(body: bytes) -> dict[str, str]:
    try:
        value = json.loads(body)
    except ValueError:
        raise _BadRequest("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise _BadRequest("the body must be a JSON object")
    params = {}
    for name, item in value.items():
        if item is not None:
            params[name] = item if isinstance(item, str) else json.dumps(item)
    return params


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if text.startswith("o:"):
            return int(text[2:])
    except (ValueError, binascii.Error):
        pass
    raise _BadRequest(f"invalid cursor {cursor!r}")


def _bearer(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _basic(authorization: str) -> tuple[str, str] | None:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, colon, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (ValueError, binascii.Error):
        return None
    return (user, password) if colon else None


def _matches_target(needle: str, target: str) -> bool:
    return needle in target or needle in unquote_plus(target)


def _fault_status(options: dict[str, Any]) -> _Answer:
    status = int(options.get("status", 500))
    body = options.get("body", {"error": HTTPStatus(status).phrase})
    if isinstance(body, (str, bytes)):
        answer = _Answer(status, body.encode() if isinstance(body, str) else body)
        answer.headers["Content-Type"] = "text/plain; charset=utf-8"
    else:
        answer = _json(status, body)
    retry_after = options.get("retry_after")
    if isinstance(retry_after, datetime):
        answer.headers["Retry-After"] = format_datetime(retry_after.astimezone(UTC), usegmt=True)
    elif retry_after is not None:
        answer.headers["Retry-After"] = str(retry_after)
    answer.headers.update(options.get("headers", {}))
    return answer


def sample_rows(count: int, *, start: datetime = datetime(2024, 1, 1, tzinfo=UTC)) -> list[Row]:
    """`count` rows {"id", "name", "updated_at"}: ids from 1, a minute apart from `start`."""
    return [
        {"id": i, "name": f"item {i}", "updated_at": (start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")}
        for i in range(1, count + 1)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.tools.rest_api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rows", type=int, default=100, help='rows in the collection "items"')
    parser.add_argument("--prefix", default="", help='a path every route lives under, e.g. "/v1"')
    args = parser.parse_args(argv)
    api = FakeApi(port=args.port, prefix=args.prefix).start()
    api.put("items", sample_rows(args.rows))
    print(api.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        api.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
