"""A test stand-in implementing only the subset of the Confluent Schema Registry API dpone calls; the
live tests use a real registry when DPONE_TEST_SCHEMA_REGISTRY_URL is set.

Real HTTP on 127.0.0.1 (a port of its own), in a daemon thread:

    POST /subjects/{s}/versions      register; the same schema again gives the same id; a new version
                                     must be BACKWARD compatible with the latest (409), valid Avro (422)
    GET  /schemas/ids/{id}           a schema by its id (404, error 40403)
    GET  /subjects/{s}/versions/latest   (404, error 40401)
    GET  /subjects
    GET  /config[/{s}]               the compatibility level: always the global one

The compatibility check is a simplification of Avro's: every field of the new record either is in
the old one with the same type or has a default. Optional basic auth answers 401 to a wrong login;
`fail_next(status)` makes the next request(s) answer that status.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import fastavro

_ROUTES = (
    ("POST", re.compile(r"/subjects/([^/]+)/versions"), "register"),
    ("GET", re.compile(r"/schemas/ids/(\d+)"), "by_id"),
    ("GET", re.compile(r"/subjects/([^/]+)/versions/latest"), "latest"),
    ("GET", re.compile(r"/subjects"), "subjects"),
    ("GET", re.compile(r"/config(?:/([^/]+))?"), "config"),
)


class FakeSchemaRegistry:
    def __init__(self, *, username: str | None = None, password: str | None = None) -> None:
        self.username = username
        self.password = password
        self.compatibility = "BACKWARD"
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for assertions
        self._texts: dict[int, str] = {}  # id -> schema text
        self._ids: dict[str, int] = {}  # canonical text -> id
        self._versions: dict[str, list[int]] = {}  # subject -> ids, oldest first
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the registry first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeSchemaRegistry:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                registry._handle(self, "GET")

            def do_POST(self) -> None:
                registry._handle(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval: close() waits one poll for the serving loop to notice.
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSchemaRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fail_next(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._failures.extend([status] * times)

    # --- request handling ---------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        path = urlsplit(request.path).path
        self.requests.append((method, path))
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            status, answer = failure, {"error_code": failure * 100 + 1, "message": "injected failure"}
        elif not self._authorized(request.headers.get("Authorization")):
            status, answer = 401, {"error_code": 401, "message": "Unauthorized"}
        else:
            status, answer = self._route(method, path, body)
        data = json.dumps(answer).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _authorized(self, header: str | None) -> bool:
        if self.username is None:
            return True
        expected = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
        return header == f"Basic {expected}"

    def _route(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        for verb, pattern, name in _ROUTES:
            match = pattern.fullmatch(path)
            if match and verb == method:
                args = [unquote(g) if g is not None else None for g in match.groups()]
                with self._lock:
                    result: tuple[int, Any] = getattr(self, f"_{name}")(*args, body=body)
                    return result
        return 404, {"error_code": 404, "message": "HTTP 404 Not Found"}

    def _register(self, subject: str, *, body: bytes) -> tuple[int, Any]:
        try:
            text = json.loads(body)["schema"]
            schema = json.loads(text)
            fastavro.parse_schema(schema)
        except Exception as exc:
            return 422, {"error_code": 42201, "message": f"Invalid schema: {type(exc).__name__}: {exc}"}
        canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"))
        versions = self._versions.setdefault(subject, [])
        known = self._ids.get(canonical)
        if known is not None and known in versions:
            return 200, {"id": known}
        if versions and self.compatibility != "NONE":
            problem = _backward_problem(json.loads(self._texts[versions[-1]]), schema)
            if problem:
                message = (
                    f'Schema being registered is incompatible with an earlier schema for subject "{subject}", '
                    f"details: [{problem}]"
                )
                return 409, {"error_code": 409, "message": message}
        schema_id = known if known is not None else len(self._texts) + 1
        self._ids[canonical] = schema_id
        self._texts[schema_id] = text
        versions.append(schema_id)
        return 200, {"id": schema_id}

    def _by_id(self, schema_id: str, *, body: bytes) -> tuple[int, Any]:
        text = self._texts.get(int(schema_id))
        if text is None:
            return 404, {"error_code": 40403, "message": f"Schema {schema_id} not found"}
        return 200, {"schema": text}

    def _latest(self, subject: str, *, body: bytes) -> tuple[int, Any]:
        versions = self._versions.get(subject)
        if not versions:
            return 404, {"error_code": 40401, "message": f"Subject '{subject}' not found."}
        schema_id = versions[-1]
        return 200, {"subject": subject, "version": len(versions), "id": schema_id, "schema": self._texts[schema_id]}

    def _subjects(self, *, body: bytes) -> tuple[int, Any]:
        return 200, sorted(self._versions)

    def _config(self, subject: str | None, *, body: bytes) -> tuple[int, Any]:
        return 200, {"compatibilityLevel": self.compatibility}


def _backward_problem(old: Any, new: Any) -> str | None:
    """Why a reader with `new` cannot read data written with `old`, under the simple rule; None if it can."""
    if not (isinstance(old, dict) and isinstance(new, dict) and new.get("type") == old.get("type") == "record"):
        return None if _same(old, new) else "the top-level type changed"
    before = {f["name"]: f["type"] for f in old.get("fields", [])}
    for field in new.get("fields", []):
        name = field["name"]
        if name in before:
            if not _same(before[name], field["type"]):
                return f"field {name!r} changed its type"
        elif "default" not in field:
            return f"field {name!r} is new and has no default"
    return None


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
