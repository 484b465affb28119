"""Stream definitions from tap-rest's config, checked once, before any request.

Every problem found in `streams` is reported together, each naming the stream and the key, so a
config is fixed in one round instead of one error per run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from dpone.taps.rest.auth import auth_problems
from dpone.taps.rest.pages import compile_jsonpath, is_plain_path
from dpone_protocol.config import load_json_file
from dpone_protocol.errors import ConfigError

_STREAM_KEYS: Final = frozenset(
    {
        "name",
        "path",
        "method",
        "body",
        "params",
        "headers",
        "records_path",
        "primary_keys",
        "replication_key",
        "replication_param",
        "is_sorted",
        "schema",
        "pagination",
        "parent",
        "parent_keys",
        "concurrency",
        "empty_on_status",
    }
)
# Answers that never mean "no records": the credentials, the rate limit, a server fault.
_NOT_EMPTY: Final = frozenset({401, 403, 407, 408, 429})
_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_HOST_RE = re.compile(r"^(https?://)?[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
# A path's {field}: a parent record field, `a.b` inside an object.
PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True, slots=True)
class Pagination:
    kind: str = "none"
    options: Mapping[str, Any] = field(default_factory=dict)
    stop_on_empty_page: bool = True

    def get(self, key: str) -> Any:
        return self.options[key]

    @property
    def page_size(self) -> int:
        """Records a full page holds, when the config says (0: unknown): a shorter page is the last."""
        if self.kind == "page":
            return int(self.options["page_size"])
        if self.kind == "offset":
            return int(self.options["limit"])
        return 0


@dataclass(frozen=True, slots=True)
class StreamSpec:
    name: str
    path: str
    method: str = "GET"
    body: Mapping[str, Any] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    records_path: str = "$"
    primary_keys: tuple[str, ...] = ()
    replication_key: str | None = None
    replication_param: str | None = None
    is_sorted: bool = False
    schema: Mapping[str, Any] | None = None  # None: inferred from a sample
    pagination: Pagination = field(default_factory=Pagination)
    parent: str | None = None
    # Child field -> parent record field, carried into every child record.
    parent_keys: Mapping[str, str] = field(default_factory=dict)
    concurrency: int = 1
    # 4xx answers that mean "no records here" (a child whose parent is gone, a page past the last).
    empty_on_status: frozenset[int] = frozenset()

    def path_fields(self) -> list[str]:
        """The parent record fields the path takes ({id} in /users/{id}/orders)."""
        return PLACEHOLDER_RE.findall(self.path)


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, text: str) -> None:
        self.items.append(f"{where}: {text}")


# A pagination kind's keys and their defaults (None: required), as each paginator declares them.
Kinds = Mapping[str, Mapping[str, Any]]


def _pagination(raw: Any, where: str, kinds: Kinds, problems: _Problems) -> Pagination:
    if raw is None:
        return Pagination()
    if not isinstance(raw, Mapping):
        problems.add(where, 'must be an object such as {"type": "page", "page_param": "page"}')
        return Pagination()
    kind = raw.get("type", "none")
    if kind not in kinds:
        problems.add(where, f"type must be one of {', '.join(kinds)}; got {kind!r}")
        return Pagination()
    defaults = kinds[kind]
    options: dict[str, Any] = {}
    for key, default in defaults.items():
        value = raw.get(key, default)
        if value is None:
            problems.add(where, f"{kind} pagination needs {key!r}")
        elif isinstance(default, int) and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            problems.add(where, f"{key} must be a whole number >= 0, got {value!r}")
        elif key == "limit" and value == 0:
            problems.add(where, "limit must be at least 1")
        options[key] = value
    unknown = sorted(set(raw) - set(defaults) - {"type", "stop_on_empty_page"})
    if unknown:
        problems.add(
            where,
            f"{kind} pagination has no {', '.join(map(repr, unknown))} (it takes: {', '.join(defaults) or 'nothing'})",
        )
    stop = raw.get("stop_on_empty_page", True)
    if not isinstance(stop, bool):
        problems.add(where, "stop_on_empty_page must be true or false")
        stop = True
    if kind == "page" and not stop and not options.get("page_size"):
        problems.add(where, "page pagination without a page_size ends only at an empty page: keep stop_on_empty_page")
    return Pagination(kind, options, stop)


def _str_map(raw: Any, where: str, problems: _Problems) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.add(where, "must be an object")
        return {}
    return dict(raw)


def _schema(raw: Any, where: str, problems: _Problems) -> Mapping[str, Any] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = load_json_file(Path(raw).expanduser(), "schema")
        except ConfigError as exc:
            problems.add(where, str(exc))
            return None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("properties"), Mapping):
        problems.add(where, 'must be a JSON schema object with "properties" (or a path to a file holding one)')
        return None
    kind = raw.get("type", "object")
    if kind != "object" and not (isinstance(kind, list) and "object" in kind):
        problems.add(where, f'describes a record, so its type is "object", not {kind!r}')
        return None
    return {**raw, "type": "object"}


def _stream(raw: Any, index: int, defaults: StreamSpec, kinds: Kinds, problems: _Problems) -> StreamSpec | None:
    if not isinstance(raw, Mapping):
        problems.add(f"streams[{index}]", "must be an object with at least name and path")
        return None
    name = raw.get("name")
    where = f"stream {name!r}" if isinstance(name, str) and name else f"streams[{index}]"
    if not isinstance(name, str) or not name:
        problems.add(where, "needs a name")
        return None
    path = raw.get("path")
    if not isinstance(path, str):
        problems.add(where, 'needs a path, e.g. "/users"')
        return None
    unknown = sorted(set(raw) - _STREAM_KEYS)
    if unknown:
        problems.add(
            where, f"unknown key(s) {', '.join(map(repr, unknown))} (a stream takes: {', '.join(sorted(_STREAM_KEYS))})"
        )
    method = str(raw.get("method", "GET")).upper()
    if method not in ("GET", "POST"):
        problems.add(where, f"method must be GET or POST, got {method!r}")
    body = raw.get("body")
    if body is not None and not isinstance(body, Mapping):
        problems.add(where, "body must be a JSON object")
        body = None
    keys = raw.get("primary_keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        problems.add(where, 'primary_keys must be a list of field names, e.g. ["id"]')
        keys = []
    rk = raw.get("replication_key")
    if rk is not None and not isinstance(rk, str):
        problems.add(where, "replication_key must be a field name")
        rk = None
    rparam = raw.get("replication_param")
    if rparam is not None and (not isinstance(rparam, str) or not rk):
        problems.add(
            where,
            "replication_param (the query parameter given the start value) needs a replication_key",
        )
        rparam = None
    is_sorted = raw.get("is_sorted", False)
    if not isinstance(is_sorted, bool):
        problems.add(where, "is_sorted must be true or false")
        is_sorted = False
    records_path = raw.get("records_path", "$")
    if not isinstance(records_path, str) or not records_path.startswith("$"):
        problems.add(where, f"records_path must be a JSONPath starting with $, e.g. $.data[*]; got {records_path!r}")
        records_path = "$"
    parent = raw.get("parent")
    if parent is not None and not isinstance(parent, str):
        problems.add(where, "parent must be the name of another stream")
        parent = None
    fields = PLACEHOLDER_RE.findall(path)
    for f in fields:
        if not _FIELD_RE.match(f):
            problems.add(where, f"path placeholder {{{f}}} must name a parent record field")
    if fields and not parent:
        problems.add(where, f"path {path!r} has placeholders but the stream has no parent to fill them")
    parent_keys = raw.get("parent_keys")
    if parent_keys is None:
        parent_keys = {f"parent_{f}": f for f in fields}
    elif not isinstance(parent_keys, Mapping) or not all(isinstance(v, str) for v in parent_keys.values()):
        problems.add(where, 'parent_keys must map child field names to parent fields, e.g. {"user_id": "id"}')
        parent_keys = {}
    elif not parent:
        problems.add(where, "parent_keys needs a parent")
    own = raw.get("concurrency", defaults.concurrency)
    if not isinstance(own, int) or isinstance(own, bool) or own < 1:
        problems.add(where, f"concurrency must be a whole number >= 1, got {own!r}")
        own = 1
    pagination = (
        _pagination(raw["pagination"], f"{where} pagination", kinds, problems)
        if "pagination" in raw
        else defaults.pagination
    )
    empty_on = raw.get("empty_on_status", [])
    if not isinstance(empty_on, list) or not all(
        isinstance(c, int) and 400 <= c < 500 and c not in _NOT_EMPTY for c in empty_on
    ):
        problems.add(
            where,
            "empty_on_status must list 4xx statuses that mean no records, e.g. [404]; "
            f"not {', '.join(map(str, sorted(_NOT_EMPTY)))} (credentials, rate limits), nor 5xx",
        )
        empty_on = []
    return StreamSpec(
        name=name,
        path=path,
        method=method,
        body=body,
        params=_str_map(raw.get("params"), f"{where} params", problems),
        headers={str(k): str(v) for k, v in _str_map(raw.get("headers"), f"{where} headers", problems).items()},
        records_path=records_path,
        primary_keys=tuple(keys),
        replication_key=rk,
        replication_param=rparam,
        is_sorted=is_sorted,
        schema=_schema(raw.get("schema"), f"{where} schema", problems),
        pagination=pagination,
        parent=parent,
        parent_keys=dict(parent_keys),
        concurrency=own,
        empty_on_status=frozenset(empty_on),
    )


def _streams(config: Mapping[str, Any], kinds: Kinds, problems: _Problems) -> list[StreamSpec]:
    raw_streams = config.get("streams")
    if not isinstance(raw_streams, list) or not raw_streams:
        problems.add("streams", 'must list at least one stream, e.g. [{"name": "users", "path": "/users"}]')
        return []
    concurrency = config.get("concurrency", 1)
    defaults = StreamSpec(
        "",
        "",
        pagination=_pagination(config.get("pagination"), "pagination", kinds, problems),
        concurrency=concurrency if isinstance(concurrency, int) and concurrency >= 1 else 1,
    )
    specs = [s for i, raw in enumerate(raw_streams) if (s := _stream(raw, i, defaults, kinds, problems))]
    names = [s.name for s in specs]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.add(f"stream {name!r}", "is defined more than once")
    by_name = {s.name: s for s in specs}
    for spec in specs:
        _check_fields(spec, problems)
        if spec.parent is None:
            continue
        if spec.parent not in by_name:
            problems.add(
                f"stream {spec.name!r}", f"parent {spec.parent!r} is not a stream (streams: {', '.join(names)})"
            )
            continue
        seen = {spec.name}
        up: StreamSpec | None = by_name[spec.parent]
        while up is not None:
            if up.name in seen:
                problems.add(f"stream {spec.name!r}", "its parents form a loop")
                break
            seen.add(up.name)
            up = by_name.get(up.parent) if up.parent else None
    return specs


def _check_fields(spec: StreamSpec, problems: _Problems) -> None:
    """The keys and the replication key are fields of a declared schema; the JSONPaths compile."""
    where = f"stream {spec.name!r}"
    if spec.schema is not None:
        fields = set(spec.schema["properties"]) | set(spec.parent_keys)
        for name in (*spec.primary_keys, spec.replication_key):
            if name and name not in fields:
                problems.add(where, f"{name!r} (a key or the replication_key) is not a property of its schema")
    paths = [("records_path", spec.records_path)] if not is_plain_path(spec.records_path) else []
    paths += [(f"pagination {k}", v) for k, v in spec.pagination.options.items() if k.endswith("_path") and v]
    for setting, path in paths:
        try:
            compile_jsonpath(path, setting)
        except ConfigError as exc:
            problems.add(where, str(exc).removeprefix("tap-rest: "))


# Settings that must be at least (or, with True, more than) a bound.
_RANGES: Final[dict[str, tuple[float, bool]]] = {
    "timeout": (0, True),
    "max_retries": (0, False),
    "backoff_seconds": (0, False),
    "backoff_max_seconds": (0, False),
    "max_retry_after_seconds": (0, False),
    "max_requests_per_second": (0, True),
    "schema_sample_pages": (1, False),
    "concurrency": (1, False),
}


def check_config(config: Mapping[str, Any], kinds: Kinds) -> list[StreamSpec]:
    """The config's stream definitions, once every setting is checked: a ConfigError lists every
    problem at once, before any request or output."""
    problems = _Problems()
    url = config.get("api_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        problems.add("api_url", f"must be an http:// or https:// URL, got {url!r}")
    for name, (bound, strict) in _RANGES.items():
        value = config.get(name)
        if value is not None and (value <= bound if strict else value < bound):
            problems.add(name, f"must be {'more than' if strict else 'at least'} {bound}, got {value!r}")
    for text in auth_problems(config):
        problems.add("auth", text)
    hosts = config.get("trusted_hosts") or []
    if not isinstance(hosts, list) or not all(isinstance(h, str) and _HOST_RE.match(h) for h in hosts):
        problems.add(
            "trusted_hosts",
            'must list host names: "files.example.com", "files.example.com:8443" or "https://files.example.com"',
        )
    specs = _streams(config, kinds, problems)
    if problems.items:
        raise ConfigError("tap-rest: " + "; ".join(problems.items))
    return specs
