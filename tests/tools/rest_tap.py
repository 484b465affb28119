"""tap-rest run in-process against tests/tools/rest_api.py's FakeApi, the way its tests share it: the
pagination kinds as the fake serves them, and a runner that writes each run's files as a user would."""

from __future__ import annotations

import io
import itertools
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone.taps.framework.tap import Tap
from dpone.taps.framework.tap_cli import run as run_tap_cli
from dpone.taps.rest.client import HttpClient
from dpone.taps.rest.tap import RestTap
from tests.conftest import Run

# A local server answers at once: anything slow is a bug worth seeing quickly.
FAST_FAILURE: dict[str, Any] = {"timeout": 0.5, "max_retries": 1, "backoff_seconds": 0.01, "backoff_max_seconds": 0.05}

# Each pagination kind as the fake serves it: the stream settings that read a collection, two records a page.
ROUTES: dict[str, dict[str, Any]] = {
    "none": {"route": "plain", "records_path": "$", "pagination": {"type": "none"}},
    "page": {
        "route": "page",
        "records_path": "$.data",
        "pagination": {"type": "page", "page_size_param": "per_page", "page_size": 2},
    },
    "offset": {"route": "offset", "records_path": "$.results", "pagination": {"type": "offset", "limit": 2}},
    "cursor": {
        "route": "cursor",
        "records_path": "$.items",
        "params": {"limit": 2},
        "pagination": {"type": "cursor", "cursor_path": "$.meta.next_cursor"},
    },
    "link_header": {
        "route": "link",
        "records_path": "$",
        "params": {"per_page": 2},
        "pagination": {"type": "link_header"},
    },
    "next_url": {
        "route": "next",
        "records_path": "$.data",
        "params": {"limit": 2},
        "pagination": {"type": "next_url", "next_url_path": "$.next"},
    },
}


def route_stream(collection: str, kind: str = "page", size: int = 2, **extra: Any) -> dict[str, Any]:
    """A stream named after the collection, read with the pagination `kind` (ROUTES), `size` records a
    page; `extra` over it."""
    style = ROUTES[kind]
    sized = {k: size if k in ("page_size", "limit") else v for k, v in style["pagination"].items()}
    return {
        "name": collection,
        "path": f"/{style['route']}/{collection}",
        "records_path": style["records_path"],
        "params": {k: size for k in style.get("params", {})},
        "pagination": sized,
        **extra,
    }


def slow_client(monkeypatch: pytest.MonkeyPatch, seconds: float = 0.05) -> None:
    """Building the HTTP client takes `seconds` (say, a proxy lookup): pages fetched at once then race
    for it every time instead of now and then."""
    original = HttpClient.__init__

    def slow_init(self: HttpClient, config: Mapping[str, Any]) -> None:
        time.sleep(seconds)
        original(self, config)

    monkeypatch.setattr(HttpClient, "__init__", slow_init)


def messages_of(stdout: bytes, exact: bool = False) -> list[dict[str, Any]]:
    """The messages a run wrote (none for --discover's indented catalog); `exact` keeps every number
    as written (Decimal, integers of any width), which orjson would round."""
    if stdout.startswith(b"{\n"):
        return []
    lines = [line for line in stdout.splitlines() if line.startswith(b"{")]
    if exact:
        return [json.loads(line, parse_float=Decimal) for line in lines]
    return [orjson.loads(line) for line in lines]


@dataclass
class RestRunner:
    """Runs the tap in-process; each run's config, state and catalog go to files in `workdir`."""

    workdir: Path
    tap: type[Tap] = RestTap
    exact: bool = False
    counter: Iterator[int] = field(default_factory=itertools.count)

    def file(self, what: str, value: Any) -> str:
        path = self.workdir / f"{what}-{next(self.counter)}.json"
        path.write_bytes(orjson.dumps(value))
        return str(path)

    def run(self, config: dict[str, Any], *args: str, state: Any = None, catalog: Any = None) -> Run:
        argv = ["--config", self.file("config", config), *args]
        if state is not None:
            argv += ["--state", self.file("state", state)]
        if catalog is not None:
            argv += ["--catalog", self.file("catalog", catalog)]
        out, err = io.BytesIO(), io.StringIO()
        rc = run_tap_cli(self.tap, argv, stdout=out, stderr=err)
        return Run(rc, out.getvalue(), err.getvalue(), messages_of(out.getvalue(), self.exact))
