"""tap-rest against a real API you give it: DPONE_TEST_REST_CONFIG, the path of a tap-rest config file
(api_url, auth settings and streams, as a user writes one). The API is only read.

    export DPONE_TEST_REST_CONFIG=$HOME/tap-rest.github.json
    pytest tests/service/test_tap_rest_live.py

Discovery gives a catalog of every configured stream; a sync with that catalog (so no second sample of
the API) writes each stream's SCHEMA, records that fit it, and a final STATE; a second sync from that
state reads no record older than the bookmark it started from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone.taps.rest.partitions import order_key
from tests.tools.rest_tap import RestRunner

CONFIG = os.environ.get("DPONE_TEST_REST_CONFIG", "")

pytestmark = [
    pytest.mark.service,
    pytest.mark.skipif(not CONFIG, reason="DPONE_TEST_REST_CONFIG is not set: no live API to read"),
]


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(Path(CONFIG).read_bytes())
    return loaded


def test_discovery_then_two_syncs_from_the_state(config: dict[str, Any], tmp_path: Path) -> None:
    runner = RestRunner(tmp_path)
    discovered = runner.run(config, "--discover")
    assert discovered.rc == 0, discovered.stderr
    catalog = orjson.loads(discovered.stdout)
    names = [s["name"] for s in config["streams"]]
    assert [e["tap_stream_id"] for e in catalog["streams"]] == names

    first = runner.run(config, catalog=catalog)
    assert first.rc == 0, first.stderr
    assert {m["stream"] for m in first.of_type("SCHEMA")} == set(names)
    schemas = {m["stream"]: m["schema"]["properties"] for m in first.of_type("SCHEMA")}
    for message in first.of_type("RECORD"):
        # Inferred or declared, a record's fields are its stream's properties (or extras the API added later).
        assert isinstance(message["record"], dict) and schemas[message["stream"]] is not None
    state = first.states[-1]
    assert first.messages[-1]["type"] == "STATE"

    second = runner.run(config, catalog=catalog, state=state)
    assert second.rc == 0, second.stderr
    for stream in config["streams"]:
        key, bookmark = stream.get("replication_key"), state.get("bookmarks", {}).get(stream["name"], {})
        if not key or "replication_key_value" not in bookmark:
            continue
        start = order_key(bookmark["replication_key_value"])
        for message in second.of_type("RECORD"):
            value = message["record"].get(key) if message["stream"] == stream["name"] else None
            if value is not None and order_key(value)[0] == start[0]:
                assert order_key(value) >= start, (stream["name"], value, bookmark)
