"""docs/connectors/tap-rest.md does what it says.

- Its settings, stream-key and pagination tables list what the code accepts.
- The quick start's shell commands run as written, against the test API started as a process
  (`python -m tests.tools.rest_api`), and print what the page shows.
- The three worked examples run in-process from the page's own blocks (`<!-- file: NAME -->` is a
  file the commands use; `<!-- NAME -->` before a command block, `<!-- NAME output -->` before what
  it prints), with the test API's URL in place of https://api.example.com.
- Every message in the troubleshooting table is provoked for real and compared verbatim.
- The code examples import and run; the meltano.yml snippet is a valid tap-rest config.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from dpone.taps.framework.tap import Tap
from dpone.taps.framework.tap_cli import run as run_tap
from dpone.taps.rest.pagination import PAGINATORS
from dpone.taps.rest.spec import _STREAM_KEYS, check_config
from dpone.taps.rest.tap import RestTap
from dpone_protocol.config import expand_env
from dpone_protocol.settings import apply_settings
from tests.tools.rest_api import FakeApi, sample_rows

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "connectors" / "tap-rest.md"
HOST = "https://api.example.com"  # the examples' API, which the tests point at the test API
QUICK_URL = "http://127.0.0.1:8765"  # the quick start's test API
BIN = Path(sys.executable).parent  # tap-rest and target-jsonl, as installed next to this Python
_FENCED = re.compile(r"```[a-z]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
_LOG_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", re.MULTILINE)


# --- reading the page ---------------------------------------------------------------------------


@functools.cache
def page() -> str:
    return DOC.read_text()


def section(title: str) -> str:
    return page().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def marked(name: str) -> str:
    """The fenced block right after `<!-- name -->`."""
    marker = f"<!-- {name} -->\n"
    assert page().count(marker) == 1, f"the page should have {marker!r} once"
    match = _FENCED.match(page().split(marker, 1)[1])
    assert match is not None, f"no fenced block right after {marker!r}"
    return match.group(1)


def table_rows(text: str) -> list[list[str]]:
    """The cells of each row of the first table in `text`, its header left out."""
    rows = re.search(r"^\|.*\|\n\|[-| :]+\|\n((?:\|.*\|\n)*)", text, flags=re.MULTILINE)
    assert rows is not None, "no table"
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows.group(1).splitlines()]


def shown(text: str, url: str) -> str:
    """Output as the page shows it: the example host for the test API, `...` for time_extracted."""
    text = _LOG_TIME.sub("", text.replace(url, HOST))
    return re.sub(r'"time_extracted":"[^"]*"', '"time_extracted":"..."', text)


# --- running the page's commands ----------------------------------------------------------------


@dataclass
class Session:
    """Runs a command block of the page in `workdir`: `export` sets the environment, `tap-rest ...`
    runs in-process (`> FILE` writes its stdout there), any other line runs in bash."""

    workdir: Path
    url: str
    monkeypatch: pytest.MonkeyPatch
    stderr: list[str] = field(default_factory=list)

    def file(self, name: str) -> None:
        (self.workdir / name).write_text(marked(f"file: {name}").replace(HOST, self.url))

    def run(self, name: str) -> str:
        self.monkeypatch.chdir(self.workdir)
        printed: list[str] = []
        for line in marked(name).splitlines():
            words = shlex.split(line, comments=True)
            if not words:
                continue
            if words[0] == "export":
                variable, _, value = words[1].partition("=")
                self.monkeypatch.setenv(variable, value)
            elif words[0] == "tap-rest":
                into = None
                if ">" in words:
                    into = words[words.index(">") + 1]
                    words = words[: words.index(">")]
                out, err = io.BytesIO(), io.StringIO()
                rc = run_tap(RestTap, words[1:], stdout=out, stderr=err)
                assert rc == 0, err.getvalue()
                self.stderr += shown(err.getvalue(), self.url).splitlines()
                if into is None:
                    printed.append(out.getvalue().decode())
                else:
                    (self.workdir / into).write_bytes(out.getvalue())
            else:
                done = subprocess.run(["bash", "-e", "-c", line], cwd=self.workdir, capture_output=True, text=True)
                assert done.returncode == 0, f"{line}: {done.stderr}"
                printed.append(done.stdout)
        return shown("".join(printed), self.url)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with FakeApi() as server:
        yield server


@pytest.fixture
def session(api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Session:
    return Session(tmp_path, api.url, monkeypatch)


def get_json(url: str, headers: dict[str, str]) -> Any:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def tap_run(
    tap: type[Tap], config: dict[str, Any], workdir: Path, state: dict[str, Any] | None = None
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one in-process run."""
    (workdir / "config.json").write_text(json.dumps(config))
    argv = ["--config", str(workdir / "config.json")]
    if state is not None:
        (workdir / "state.json").write_text(json.dumps(state))
        argv += ["--state", str(workdir / "state.json")]
    out, err = io.BytesIO(), io.StringIO()
    rc = run_tap(tap, argv, stdout=out, stderr=err)
    return rc, out.getvalue().decode(), err.getvalue()


def records(stdout: str) -> list[dict[str, Any]]:
    return [m["record"] for m in map(json.loads, stdout.splitlines()) if m["type"] == "RECORD"]


# --- the tables ---------------------------------------------------------------------------------


def test_the_docs_settings_table_lists_every_setting() -> None:
    rows = re.findall(r"^\| `([a-z0-9_]+)` \|", section("Settings"), flags=re.MULTILINE)
    names = [s.name for s in RestTap.all_settings()]
    assert rows == names, "docs/connectors/tap-rest.md: the settings table is out of date"


def test_the_streams_table_lists_every_stream_key() -> None:
    keys = [row[0].strip("`") for row in table_rows(section("Streams"))]
    assert sorted(keys) == sorted(_STREAM_KEYS)


def test_the_pagination_table_lists_every_kind_with_its_keys() -> None:
    rows = table_rows(section("Pagination"))
    kinds = {row[0].strip("`"): re.findall(r"`(\w+)` \(", row[1]) for row in rows}
    assert kinds == {kind: list(cls.options) for kind, cls in PAGINATORS.items()}


# --- the quick start ----------------------------------------------------------------------------


@pytest.fixture
def quick_api() -> Iterator[str]:
    """The test API as the quick start starts it (on a free port instead of 8765)."""
    words = shlex.split(marked("quickstart: server"))
    assert words[:3] == ["python", "-m", "tests.tools.rest_api"]
    port = words.index("--port") + 1
    assert f"{QUICK_URL.rsplit(':', 1)[0]}:{words[port]}" == QUICK_URL
    words[port] = "0"
    process = subprocess.Popen([sys.executable, *words[1:]], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(10)


def test_the_quick_start_runs_as_written(quick_api: str, tmp_path: Path) -> None:
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DPONE_LOG_LEVEL": "WARNING"}
    for step in ("quickstart 1", "quickstart 2", "quickstart 3"):
        script = marked(step).replace(QUICK_URL, quick_api)
        done = subprocess.run(
            ["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"{step}: {done.stderr}"
        assert done.stdout.replace(quick_api, QUICK_URL) == marked(f"{step} output"), step


# --- the worked examples ------------------------------------------------------------------------

TICKETS = [
    {"id": 1, "subject": "Printer on fire", "status": "open", "updated_at": "2025-03-01T09:00:00Z"},
    {"id": 2, "subject": "VPN drops", "status": "open", "updated_at": "2025-03-01T10:30:00Z"},
    {"id": 3, "subject": "New laptop", "status": "closed", "updated_at": "2025-03-01T11:00:00Z"},
    {"id": 4, "subject": "Password reset", "status": "closed", "updated_at": "2025-03-01T12:15:00Z"},
    {"id": 5, "subject": "Monitor flickers", "status": "open", "updated_at": "2025-03-01T14:00:00Z"},
]
TICKET_CHANGES = [
    {"id": 2, "subject": "VPN drops", "status": "closed", "updated_at": "2025-03-02T08:00:00Z"},
    {"id": 6, "subject": "Badge not working", "status": "open", "updated_at": "2025-03-02T09:45:00Z"},
]


def test_example_1_a_cursor_api_read_incrementally(api: FakeApi, session: Session) -> None:
    api.put("tickets", TICKETS)
    api.require("bearer", token="tk_example_0123456789")  # what the page exports as TICKETS_API_TOKEN
    shown_answer = "GET /cursor/tickets?limit=2&sort=updated_at"
    answer = get_json(api.url + shown_answer.split()[1], {"Authorization": "Bearer tk_example_0123456789"})
    assert answer == json.loads(marked(f"answer: {shown_answer}"))

    session.file("tickets.json")
    assert session.run("tickets: run 1") == marked("tickets: run 1 output")
    api.put("tickets", TICKET_CHANGES)
    api.clear_log()
    assert session.run("tickets: run 2") == marked("tickets: run 2 output")
    assert api.requests[0].query["updated_since"] == "2025-03-01T14:00:00Z"


INVOICES = [
    {"id": "inv_001", "customer": "Ana", "amount_cents": 12050, "currency": "EUR", "issued_at": "2025-03-01"},
    {"id": "inv_002", "customer": "Ben", "amount_cents": 9999, "currency": "EUR", "issued_at": "2025-03-01"},
    {"id": "inv_003", "customer": "Ana", "amount_cents": 150000, "currency": "USD", "issued_at": "2025-03-02"},
]


def test_example_2_an_oauth2_api(api: FakeApi, session: Session) -> None:
    api.put("invoices", INVOICES)
    api.require("oauth2", client_id="dpone-etl", client_secret="cs_example_9876543210", expires_in=3600)
    session.file("invoices.json")
    assert session.run("invoices: run") == marked("invoices: run output")
    assert "\n".join(session.stderr) + "\n" == marked("invoices: run stderr")
    (token,) = [r for r in api.requests if r.path == "/oauth/token"]
    request = f"{token.method} {token.path}\nContent-Type: {token.headers['content-type']}\n\n{token.body.decode()}\n"
    assert request == marked("invoices: token request")
    assert api.requests[0].path == "/oauth/token"


USERS = [{"id": 1, "name": "Ana"}, {"id": 2, "name": "Ben"}]
ORDERS = [
    {"id": 101, "parent_id": 1, "total": 19.9, "updated_at": "2025-03-01T10:00:00Z"},
    {"id": 102, "parent_id": 1, "total": 5.0, "updated_at": "2025-03-02T10:00:00Z"},
    {"id": 201, "parent_id": 2, "total": 120.0, "updated_at": "2025-03-01T12:00:00Z"},
]
NEW_USERS = [{"id": 3, "name": "Chen"}]
NEW_ORDERS = [
    {"id": 202, "parent_id": 2, "total": 7.5, "updated_at": "2025-03-03T09:00:00Z"},
    {"id": 301, "parent_id": 3, "total": 42.0, "updated_at": "2025-03-03T08:00:00Z"},
]


def test_example_3_a_parent_child_api(api: FakeApi, session: Session) -> None:
    api.put("users", USERS)
    api.put("orders", ORDERS)
    session.file("shop.json")
    assert session.run("shop: run 1") == marked("shop: run 1 output")
    api.put("users", NEW_USERS)
    api.put("orders", NEW_ORDERS)
    api.clear_log()
    assert session.run("shop: run 2") == marked("shop: run 2 output")
    asked = [r.target for r in api.requests if r.path == "/page/users/1/orders"]
    assert asked[-1] == "/page/users/1/orders?updated_since=2025-03-02T10%3A00%3A00Z&page=1&per_page=100"


def test_values_come_out_as_the_api_sent_them(api: FakeApi, tmp_path: Path) -> None:
    body = marked("values: answer")
    api.fault("/x/payments", "status", times=10, status=200, body=body)
    stream = {"name": "payments", "path": "/x/payments", "records_path": "$.data[*]"}
    rc, out, err = tap_run(RestTap, {"api_url": api.url, "streams": [stream]}, tmp_path)
    assert rc == 0, err
    assert shown(out, api.url).splitlines()[1] + "\n" == marked("values: record")
    maps = {"payments": {"name": None}}
    rc, out, err = tap_run(RestTap, {"api_url": api.url, "streams": [stream], "stream_maps": maps}, tmp_path)
    assert rc == 0, err
    assert shown(out, api.url).splitlines()[1] + "\n" == marked("values: record re-encoded")


def test_an_oauth2_token_refused_once_is_renewed_as_the_page_says(api: FakeApi, tmp_path: Path) -> None:
    api.put("items", sample_rows(25))
    api.require("oauth2", client_id="etl", client_secret="s3cret-value")
    api.fault("page=2", "status", status=401, body={"error": "invalid_token"})
    config = {
        "api_url": api.url,
        "auth_method": "oauth2",
        "oauth2_token_url": api.url + "/oauth/token",
        "client_id": "etl",
        "client_secret": "s3cret-value",
        "streams": [ITEMS],
    }
    rc, out, err = tap_run(RestTap, config, tmp_path)
    assert rc == 0, err
    assert len(records(out)) == 25
    assert len(api.token_requests) == 2
    said = re.search(r"\(logged at INFO: `(.*?)`\)", " ".join(section("Authentication").split()))
    assert said is not None
    assert said.group(1) in err


def test_the_retry_warning_is_the_one_shown(api: FakeApi, tmp_path: Path) -> None:
    api.put("items", sample_rows(25))
    api.fault("page=2", "status", status=503)
    rc, _, err = tap_run(RestTap, {**base(api), "backoff_seconds": 0.01}, tmp_path)
    assert rc == 0, err
    (warning,) = [line for line in shown(err, api.url).splitlines() if line.startswith("WARNING")]
    delay = re.compile(r"in \d+\.\d s$")
    assert delay.sub("in N s", warning) + "\n" == delay.sub("in N s", marked("retry warning").strip()) + "\n"


# --- troubleshooting ----------------------------------------------------------------------------

ITEMS = {
    "name": "items",
    "path": "/page/items",
    "records_path": "$.data[*]",
    "pagination": {"type": "page", "page_size_param": "per_page", "page_size": 10},
}


def base(api: FakeApi, **streams: Any) -> dict[str, Any]:
    """A config over the 25 items, with backoff short enough for a test; `streams` replaces ITEMS'
    keys (a value None drops the key)."""
    stream = {k: v for k, v in {**ITEMS, **streams}.items() if v is not None}
    return {"api_url": api.url, "backoff_seconds": 0.001, "backoff_max_seconds": 0.001, "streams": [stream]}


def _cursor_cycle(api: FakeApi) -> dict[str, Any]:
    api.fault("/cursor/items", "status", status=200, body={"items": [{"id": 1}], "meta": {"next_cursor": "A"}})
    api.fault("cursor=A", "status", times=5, status=200, body={"items": [{"id": 2}], "meta": {"next_cursor": "A"}})
    cursor = {"type": "cursor", "cursor_path": "$.meta.next_cursor"}
    return base(api, path="/cursor/items", records_path="$.items[*]", pagination=cursor, schema={"properties": {}})


def _parent_without_field(api: FakeApi) -> dict[str, Any]:
    api.put("users", [{"id": 1, "account": {"id": 7}}, {"id": 2}])
    users = {"name": "users", "path": "/plain/users"}
    orders = {"name": "orders", "path": "/plain/users/{account.id}/orders", "parent": "users"}
    return {"api_url": api.url, "streams": [users, orders]}


def _child_state(api: FakeApi) -> tuple[dict[str, Any], dict[str, Any]]:
    api.put("users", [{"id": 1}])
    users = {"name": "users", "path": "/plain/users"}
    orders = {"name": "orders", "path": "/plain/users/{id}/orders", "parent": "users", "replication_key": "updated_at"}
    bookmark = {"partitions": {"1": "2025-03-01T00:00:00Z"}}
    return {"api_url": api.url, "streams": [users, orders]}, {"bookmarks": {"orders": bookmark}}


def _status(status: int, times: int = 1, where: str = "/page/items", **options: Any) -> Callable[[FakeApi], Any]:
    def provoke(api: FakeApi) -> dict[str, Any]:
        api.fault(where, "status", times=times, status=status, **options)
        return base(api)

    return provoke


def _fault(kind: str, times: int = 1, **options: Any) -> Callable[[FakeApi], Any]:
    def provoke(api: FakeApi) -> dict[str, Any]:
        api.fault("page=2", kind, times=times, **options)
        return base(api) | ({"timeout": 0.2} if kind == "slow" else {})

    return provoke


def _same_page(api: FakeApi) -> dict[str, Any]:
    api.fault("/page/items", "repeat", times=5)  # the API ignores ?page=
    return base(api)


def _bearer_refused(api: FakeApi) -> dict[str, Any]:
    api.require("bearer", token="the-right-token")
    return base(api) | {"auth_method": "bearer", "bearer_token": "an-expired-token"}


def _token_refused(api: FakeApi) -> dict[str, Any]:
    api.require("oauth2", client_id="etl", client_secret="the-right-secret")
    oauth2 = {"oauth2_token_url": api.url + "/oauth/token", "client_id": "etl", "client_secret": "a-wrong-secret"}
    return base(api) | {"auth_method": "oauth2", **oauth2}


def _refresh_token_rotated(api: FakeApi) -> dict[str, Any]:
    rotated = {"access_token": "at-0123456789", "expires_in": 3600, "refresh_token": "rt-new-0123456789"}
    api.fault("/oauth/token", "status", status=200, body=rotated)
    oauth2 = {"oauth2_token_url": api.url + "/oauth/token", "client_id": "etl", "refresh_token": "rt-old-0123456789"}
    return base(api) | {"auth_method": "oauth2", "oauth2_grant_type": "refresh_token", **oauth2}


def _another_kind(api: FakeApi) -> dict[str, Any]:
    api.put("items", [{"id": 26, "name": "item 26", "updated_at": 1740787200}])  # a number among date-times
    return base(api, replication_key="updated_at")


# Each provokes one row of the troubleshooting table: a config, or (config, state).
TROUBLES: dict[str, Callable[[FakeApi], Any]] = {
    "no streams": lambda api: {"api_url": api.url},
    "empty streams": lambda api: {"api_url": api.url, "streams": []},
    "api_url": lambda api: {**base(api), "api_url": "api.example.com/v1"},
    "stream problems": lambda api: {
        "api_url": api.url,
        "streams": [
            {"name": "items", "path": "/cursor/items", "records": "$.items", "pagination": {"type": "cursor"}},
            {"name": "orders", "path": "/users/{id}/orders"},
        ],
    },
    "pagination type": lambda api: base(api, pagination={"type": "pages"}),
    "replication_param": lambda api: base(api, replication_param="updated_since"),
    "auth needs": lambda api: base(api) | {"auth_method": "bearer"},
    "schema keys": lambda api: base(api, primary_keys=["item_id"], schema={"properties": {"id": {"type": "integer"}}}),
    "404": lambda api: base(api, path="/v2/items"),
    "401": _bearer_refused,
    "403": _status(403),
    "token refused": _token_refused,
    "refresh token rotated": _refresh_token_rotated,
    "400": lambda api: base(api, params={"per_page": "ten"}, pagination={"type": "page"}),
    "5xx": _status(503, times=6),
    "retry-after": _status(429, where="page=2", retry_after=3600),
    "timeout": _fault("slow", times=6, seconds=0.5),
    "dropped": _fault("drop", times=6),
    "malformed": _fault("malformed"),
    "html": _fault("html"),
    "empty": _status(200, where="page=2", body=""),
    "not utf-8": _status(200, where="page=2", body=b'{"data": [{"id": 11, "name": "caf\xe9"}]}'),
    "records_path": lambda api: base(api, records_path="$.data[*].name"),
    "parent field": _parent_without_field,
    "same page": _same_page,
    "same request": _cursor_cycle,
    "malformed state": _child_state,
    "lone surrogate": _status(200, where="page=2", body='{"data": [{"id": 11, "name": "\\ud83d"}]}'),
    "no records": lambda api: base(api, records_path="$.results[*]"),
    "nothing at records_path": lambda api: base(api, records_path="$.results[*]", schema={"properties": {}}),
    "another kind": _another_kind,
    "key not seen": lambda api: base(api, primary_keys=["item_id"]),
}


def provoked(name: str, tmp_path: Path) -> tuple[str, int]:
    """The message a trouble gives (the error, or the warning of a run that succeeds) and the exit code."""
    with FakeApi() as api:
        api.put("items", sample_rows(25))
        made = TROUBLES[name](api)
        config, state = made if isinstance(made, tuple) else (made, None)
        rc, _, err = tap_run(RestTap, config, tmp_path, state)
        lines = shown(err, api.url).splitlines()
    # A run that succeeds says it in its last warning (an inferred schema's comes after the page's).
    line = [line for line in lines if line.startswith("WARNING")][-1] if rc == 0 else lines[-1]
    # The test waits 0.2 s for an answer; a user who keeps the default timeout waits 60.
    return line.replace("within 0.2 s", "within 60 s"), rc


def test_every_troubleshooting_message_is_real(tmp_path: Path) -> None:
    table = {}
    for row in table_rows(section("Troubleshooting")):
        message = re.fullmatch(r"(`+) ?(.*?) ?\1", row[0])
        assert message is not None, row
        table[message.group(2)] = int(row[1])
    produced = dict(provoked(name, tmp_path) for name in TROUBLES)
    assert produced == table


# --- writing a tap in code ----------------------------------------------------------------------


def load_module(name: str, tmp_path: Path) -> ModuleType:
    """A code block of the page (`<!-- file: NAME.py -->`) imported as a module."""
    path = tmp_path / name
    path.write_text(marked(f"file: {name}"))
    spec = importlib.util.spec_from_file_location(f"docs_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tap_with_its_streams_in_code_runs(api: FakeApi, tmp_path: Path) -> None:
    tap: type[Tap] = load_module("tap_shop.py", tmp_path).TapShop
    api.put("products", [{"id": i, "name": f"product {i}"} for i in range(1, 251)])
    api.require("bearer", token="shop-token")
    rc, out, err = tap_run(tap, {"api_url": api.url, "bearer_token": "shop-token"}, tmp_path)
    assert rc == 0, err
    assert [r["id"] for r in records(out)] == list(range(1, 251))
    assert [r.query["offset"] for r in api.requests][-3:] == ["0", "100", "200"]


def test_the_custom_paginator_runs(api: FakeApi, tmp_path: Path) -> None:
    tap: type[Tap] = load_module("tap_events.py", tmp_path).TapEvents
    api.put("events", sample_rows(25))
    stream = {
        "name": "events",
        "path": "/next/events",
        "params": {"limit": 10},
        "records_path": "$.data[*]",
        "pagination": {"type": "after_id"},
    }
    rc, out, err = tap_run(tap, {"api_url": api.url, "streams": [stream]}, tmp_path)
    assert rc == 0, err
    assert [r["id"] for r in records(out)] == list(range(1, 26))
    assert [r.query.get("after") for r in api.requests][-4:] == [None, "10", "20", "25"]


# --- Meltano ------------------------------------------------------------------------------------


def test_the_meltano_snippet_is_a_valid_tap_rest_config(monkeypatch: pytest.MonkeyPatch) -> None:
    (plugin,) = yaml.safe_load(marked("meltano.yml"))["plugins"]["extractors"]
    declared = [p for p in yaml.safe_load((ROOT / "meltano.yml").read_text())["plugins"]["extractors"]]
    (ours,) = [p for p in declared if p["name"] == "tap-rest"]
    for key in ("name", "namespace", "executable", "pip_url", "capabilities"):
        assert plugin[key] == ours[key], key
    kinds = {s["name"]: s["kind"] for s in ours["settings"]}
    for setting in plugin["settings"]:
        assert kinds.get(setting["name"]) in (setting["kind"], "options"), setting
    monkeypatch.setenv("TICKETS_API_TOKEN", "tk_example_0123456789")
    config = apply_settings(RestTap.all_settings(), expand_env(plugin["config"]), "tap-rest")
    assert [s.name for s in RestTap(config).specs] == ["tickets"]
    (export,) = re.findall(r"`(export TAP_REST_STREAMS=[^`]*)`", section("Meltano"))
    streams = json.loads(shlex.split(export, comments=True)[1].partition("=")[2])
    kinds = {kind: cls.options for kind, cls in PAGINATORS.items()}
    assert [s.name for s in check_config({"api_url": HOST, "streams": streams}, kinds)] == ["tickets"]
