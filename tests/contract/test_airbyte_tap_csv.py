"""tap-csv speaks the Airbyte source protocol: spec, check, discover, read (with every kind of
incoming state), errors as TRACE and FAILED statuses, all redacted and valid per the official models."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone.taps.csv.tap import CsvTap
from dpone.taps.framework.tap_cli import run as run_tap
from tests.tools.airbyte_validate import assert_valid

SECRET = "hunter2-very-secret"
EXIT_CONFIG = 78


def airbyte(tmp_path: Path, *argv: str) -> tuple[int, list[dict[str, Any]], str]:
    out, err = io.BytesIO(), io.StringIO()
    rc = run_tap(CsvTap, list(argv), stdout=out, stderr=err)
    assert_valid(out.getvalue())
    return rc, [orjson.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def write(tmp_path: Path, name: str, obj: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return str(path)


@pytest.fixture
def config(tmp_path: Path) -> str:
    (tmp_path / "orders.csv").write_text("id,name,updated\n1,a,2024-01-01\n2,b,2024-01-02\n3,c,2024-01-03\n")
    (tmp_path / "people.csv").write_text("pid,amount\n1,12345678901234567890.5\n")
    files = [
        {"entity": "orders", "path": str(tmp_path / "orders.csv"), "keys": ["id"], "replication_key": "updated"},
        {"entity": "people", "path": str(tmp_path / "people.csv"), "keys": ["pid"]},
    ]
    return write(tmp_path, "config.json", {"files": files, "api_token": SECRET})


def configured(tmp_path: Path, config: str, **choices: Any) -> str:
    rc, messages, _ = airbyte(tmp_path, "discover", "--config", config)
    assert rc == 0
    streams = [
        {"stream": s, "sync_mode": "incremental" if s["name"] == "orders" else "full_refresh", **choices}
        for s in messages[0]["catalog"]["streams"]
    ]
    catalog = {"streams": [{"destination_sync_mode": "append", **s} for s in streams]}
    assert_valid(orjson.dumps(catalog), configured_catalog=True)
    return write(tmp_path, "configured.json", catalog)


def test_spec(tmp_path: Path) -> None:
    rc, (message,), _ = airbyte(tmp_path, "spec")
    assert rc == 0
    spec = message["spec"]["connectionSpecification"]
    assert spec["required"] == ["files"]
    assert {"files", "base_path", "state_every_rows", "batch_config"} <= set(spec["properties"])


def test_check_succeeds_and_fails_redacted(tmp_path: Path, config: str) -> None:
    assert airbyte(tmp_path, "check", "--config", config)[1] == [
        {"type": "CONNECTION_STATUS", "connectionStatus": {"status": "SUCCEEDED"}}
    ]
    bad = write(tmp_path, "bad.json", {"files": [{"entity": "x", "path": f"/nowhere/{SECRET}/*.csv"}], "token": SECRET})
    rc, (message,), _ = airbyte(tmp_path, "check", "--config", bad)
    assert rc == 0
    status = message["connectionStatus"]
    assert status["status"] == "FAILED"
    assert "no file matches '/nowhere/***/*.csv'" in status["message"]
    assert SECRET not in json.dumps(message)
    missing = airbyte(tmp_path, "check", "--config", str(tmp_path / "missing.json"))[1][0]
    assert "config file not found" in missing["connectionStatus"]["message"]


def test_discover(tmp_path: Path, config: str) -> None:
    rc, (message,), _ = airbyte(tmp_path, "discover", "--config", config)
    assert rc == 0
    orders, people = message["catalog"]["streams"]
    assert orders["name"] == "orders"
    assert orders["supported_sync_modes"] == ["full_refresh", "incremental"]
    assert orders["default_cursor_field"] == ["updated"]
    assert people["source_defined_primary_key"] == [["pid"]]


@pytest.mark.certifies("airbyte", connector="tap-csv")
def test_read_records_state_logs_and_statuses(tmp_path: Path, config: str) -> None:
    rc, messages, stderr = airbyte(tmp_path, "read", "--config", config, "--catalog", configured(tmp_path, config))
    assert rc == 0
    records = [m["record"] for m in messages if m["type"] == "RECORD"]
    assert [(r["stream"], r["data"]) for r in records][:3] == [
        ("orders", {"id": 1, "name": "a", "updated": "2024-01-01"}),
        ("orders", {"id": 2, "name": "b", "updated": "2024-01-02"}),
        ("orders", {"id": 3, "name": "c", "updated": "2024-01-03"}),
    ]
    assert len(records) == 4
    states = [m["state"] for m in messages if m["type"] == "STATE"]
    assert states == [
        {
            "type": "STREAM",
            "stream": {
                "stream_descriptor": {"name": "orders"},
                "stream_state": {"replication_key": "updated", "replication_key_value": "2024-01-03"},
            },
            "sourceStats": {"recordCount": 3.0},
        },
        {
            "type": "STREAM",
            "stream": {"stream_descriptor": {"name": "people"}, "stream_state": {}},
            "sourceStats": {"recordCount": 1.0},
        },
    ]
    logs = [m["log"]["message"] for m in messages if m["type"] == "LOG"]
    assert "stream orders: 3 records" in logs
    assert "stream orders: 3 records" in stderr  # and still on stderr
    statuses = [
        (m["trace"]["stream_status"]["stream_descriptor"]["name"], m["trace"]["stream_status"]["status"])
        for m in messages
        if m["type"] == "TRACE"
    ]
    assert statuses == [("orders", "STARTED"), ("people", "STARTED"), ("orders", "COMPLETE"), ("people", "COMPLETE")]


@pytest.mark.parametrize(
    "state",
    [
        [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "orders"}, "stream_state": "BOOKMARK"}}],
        {
            "type": "GLOBAL",
            "global": {"stream_states": [{"stream_descriptor": {"name": "orders"}, "stream_state": "BOOKMARK"}]},
        },
        {"data": {"bookmarks": {"orders": "BOOKMARK"}}},
    ],
    ids=["per-stream", "global", "legacy"],
)
def test_read_resumes_from_state(tmp_path: Path, config: str, state: Any) -> None:
    bookmark = {"replication_key": "updated", "replication_key_value": "2024-01-02"}
    state_file = write(
        tmp_path, "state.json", json.loads(json.dumps(state).replace('"BOOKMARK"', json.dumps(bookmark)))
    )
    catalog = configured(tmp_path, config)
    rc, messages, _ = airbyte(tmp_path, "read", "--config", config, "--catalog", catalog, "--state", state_file)
    assert rc == 0
    orders = [
        m["record"]["data"]["id"] for m in messages if m["type"] == "RECORD" and m["record"]["stream"] == "orders"
    ]
    assert orders == [2, 3]  # the bookmark row again (>=), then newer ones


def test_read_error_is_a_redacted_config_trace(tmp_path: Path, config: str) -> None:
    catalog = write(tmp_path, "c.json", {"streams": [{"stream": {"name": SECRET}, "sync_mode": "full_refresh"}]})
    rc, messages, stderr = airbyte(tmp_path, "read", "--config", config, "--catalog", catalog)
    assert rc == EXIT_CONFIG
    (trace,) = [m["trace"] for m in messages if m["type"] == "TRACE"]
    assert trace["type"] == "ERROR"
    assert trace["error"]["failure_type"] == "config_error"
    assert "configured catalog names stream '***', which the source does not have" in trace["error"]["message"]
    assert SECRET not in json.dumps(messages) + stderr
    assert "config error" in stderr


def test_singer_flags_are_unchanged(tmp_path: Path, config: str) -> None:
    out = io.BytesIO()
    assert run_tap(CsvTap, ["--config", config], stdout=out) == 0
    assert orjson.loads(out.getvalue().splitlines()[0])["type"] == "SCHEMA"
