"""tap-rest runs the shared tap suite (tests/kit/tap_suite.py) on the fake REST API (tests/tools/rest_api.py),
one collection per stream, in two shapes a user meets:

- "declared_cursor": a declared schema, cursor pagination over an API sorted by `updated_at`
  (`is_sorted`, so STATE advances mid-stream) that filters by the bookmark itself
  (`replication_param: updated_since`);
- "inferred_page": no schema (discovery samples the pages), page-number pagination, no
  replication_param: the API sends every row and the tap drops those before the bookmark.

A REST API has no position to resume a FULL_TABLE read from (a page number shifts as rows are added,
a cursor expires): such a stream is read whole every time, so `resumes_full_table` stays False.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dpone.taps.rest.tap import RestTap
from tests.kit.kit import TapKit
from tests.kit.tap_suite import TapSuite
from tests.tools.rest_api import FakeApi

STREAMS = ("items", "others")
SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["null", "string"]},
        "updated_at": {"type": ["null", "string"], "format": "date-time"},
    },
}
# Two records a page: every scenario's rows span several pages.
SHAPES: dict[str, dict[str, Any]] = {
    "declared_cursor": {
        "path": "/cursor/{collection}",
        "records_path": "$.items[*]",
        "params": {"limit": 2, "sort": "updated_at"},
        "replication_param": "updated_since",
        "is_sorted": True,
        "schema": SCHEMA,
        "pagination": {"type": "cursor", "cursor_path": "$.meta.next_cursor", "cursor_param": "cursor"},
    },
    "inferred_page": {
        "path": "/page/{collection}",
        "records_path": "$.data[*]",
        "pagination": {"type": "page", "page_param": "page", "page_size_param": "per_page", "page_size": 2},
    },
}


@pytest.fixture(scope="module")
def api() -> Iterator[FakeApi]:
    with FakeApi(prefix="/v1") as fake:
        yield fake


def _stream(name: str, shape: dict[str, Any]) -> dict[str, Any]:
    stream = {k: v for k, v in shape.items() if k != "path"}
    return {
        "name": name,
        "path": shape["path"].format(collection=name),
        "primary_keys": ["id"],
        "replication_key": "updated_at",
        **stream,
    }


class TestTapRest(TapSuite):
    @pytest.fixture(params=sorted(SHAPES))
    def tap_kit(self, request: pytest.FixtureRequest, api: FakeApi, tmp_path: Path) -> TapKit:
        api.clear()
        api.clear_log()
        shape = SHAPES[request.param]
        return TapKit(
            tap=RestTap,
            config={
                "api_url": f"{api.url}/v1",
                "streams": [_stream(name, shape) for name in STREAMS],
                "timeout": 5,
                "max_retries": 0,
            },
            streams=STREAMS,
            put_rows=api.put,
            workdir=tmp_path,
        )
