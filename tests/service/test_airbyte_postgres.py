"""tap-postgres and target-postgres speak Airbyte against a real PostgreSQL server: spec, check
(redacted failures), discover with namespaces, read with ESTIMATE traces and state, write, and a
tap read | target write round trip; every message valid per the official models."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from dpone.taps.framework.tap_cli import run as run_tap
from dpone.taps.postgres.tap import PostgresTap
from dpone.targets.framework.target_cli import run as run_target
from dpone.targets.postgres.target import PostgresTarget
from tests.tools.airbyte_validate import assert_valid

pytestmark = pytest.mark.service
SECRET = "hunter2-very-secret"


@pytest.fixture
def db(postgres_server: Any) -> Iterator[dict[str, Any]]:
    name = f"airbyte_{uuid.uuid4().hex[:8]}"
    admin = postgres_server.config()
    with psycopg.connect(**_conninfo(admin), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    config = postgres_server.config(name)
    with psycopg.connect(**_conninfo(config), autocommit=True) as conn:
        conn.execute("CREATE TABLE public.orders (id int PRIMARY KEY, amount numeric(30,10), updated int)")
        conn.execute("INSERT INTO public.orders SELECT i, i * 1.5, i FROM generate_series(1, 20) i")
        conn.execute("UPDATE public.orders SET amount = 12345678901234567890.0123456789 WHERE id = 1")
        conn.execute("ANALYZE public.orders")
    yield config
    with psycopg.connect(**_conninfo(admin), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _conninfo(config: dict[str, Any]) -> dict[str, Any]:
    return {"host": config["host"], "port": config["port"], "user": config["user"], "dbname": config["database"]}


def write(tmp_path: Path, name: str, obj: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return str(path)


def tap(*argv: str) -> tuple[int, bytes, str]:
    out, err = io.BytesIO(), io.StringIO()
    rc = run_tap(PostgresTap, list(argv), stdout=out, stderr=err)
    assert_valid(out.getvalue())
    return rc, out.getvalue(), err.getvalue()


def parse(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in data.splitlines()]


def configured(tmp_path: Path, config: str, sync_mode: str, mode: str = "append_dedup") -> str:
    rc, out, _ = tap("discover", "--config", config)
    assert rc == 0
    (stream,) = [s for s in parse(out)[0]["catalog"]["streams"] if s["name"] == "orders"]
    item = {"stream": stream, "sync_mode": sync_mode, "destination_sync_mode": mode, "cursor_field": ["updated"]}
    obj = {"streams": [item]}
    assert_valid(orjson.dumps(obj), configured_catalog=True)
    return write(tmp_path, f"configured-{sync_mode}.json", obj)


def test_tap_spec_check_discover(tmp_path: Path, db: dict[str, Any]) -> None:
    rc, out, _ = tap("spec")
    spec = parse(out)[0]["spec"]["connectionSpecification"]
    assert spec["properties"]["password"]["airbyte_secret"] is True
    assert spec["properties"]["dsn"]["airbyte_secret"] is True
    config = write(tmp_path, "c.json", db)
    assert parse(tap("check", "--config", config)[1]) == [
        {"type": "CONNECTION_STATUS", "connectionStatus": {"status": "SUCCEEDED"}}
    ]
    bad = write(tmp_path, "bad.json", {**db, "database": SECRET, "password": SECRET})
    rc, out, err = tap("check", "--config", bad)
    (status,) = parse(out)
    assert rc == 0
    assert status["connectionStatus"]["status"] == "FAILED"
    assert "***" in status["connectionStatus"]["message"]
    assert SECRET not in out.decode() + err
    (stream,) = [s for s in parse(tap("discover", "--config", config)[1])[0]["catalog"]["streams"]]
    assert (stream["namespace"], stream["name"]) == ("public", "orders")
    assert stream["source_defined_primary_key"] == [["id"]]


def test_tap_discover_offers_incremental_with_a_cursor_the_user_picks(tmp_path: Path, db: dict[str, Any]) -> None:
    config = write(tmp_path, "c.json", db)
    (stream,) = [s for s in parse(tap("discover", "--config", config)[1])[0]["catalog"]["streams"]]
    assert stream["supported_sync_modes"] == ["full_refresh", "incremental"]
    # Any ordered column may be the cursor: the source defines none and suggests none.
    assert stream.get("source_defined_cursor", False) is False
    assert "default_cursor_field" not in stream


def test_tap_read_reports_no_estimate_for_a_table_never_analysed(tmp_path: Path, db: dict[str, Any]) -> None:
    with psycopg.connect(**_conninfo(db), autocommit=True) as conn:
        conn.execute("CREATE TABLE public.fresh (id int PRIMARY KEY)")
        conn.execute("INSERT INTO public.fresh SELECT generate_series(1, 30)")
    config = write(tmp_path, "c.json", db)
    rc, out, _ = tap("discover", "--config", config)
    streams = parse(out)[0]["catalog"]["streams"]
    items = [{"stream": s, "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"} for s in streams]
    catalog = write(tmp_path, "configured.json", {"streams": items})
    rc, out, _ = tap("read", "--config", config, "--catalog", catalog)
    assert rc == 0
    messages = parse(out)
    estimates = [m["trace"]["estimate"] for m in messages if m["type"] == "TRACE" and m["trace"]["type"] == "ESTIMATE"]
    # orders was analysed (20 rows); fresh never was: unknown, so no estimate rather than a false 0.
    assert estimates == [{"name": "orders", "namespace": "public", "type": "STREAM", "row_estimate": 20}]
    assert sum(1 for m in messages if m["type"] == "RECORD" and m["record"]["stream"] == "fresh") == 30


@pytest.mark.certifies("airbyte", connector="tap-postgres")
def test_tap_read_with_estimates_and_state(tmp_path: Path, db: dict[str, Any]) -> None:
    config = write(tmp_path, "c.json", db)
    catalog = configured(tmp_path, config, "incremental")
    rc, out, _ = tap("read", "--config", config, "--catalog", catalog)
    assert rc == 0
    messages = parse(out)
    estimates = [m["trace"]["estimate"] for m in messages if m["type"] == "TRACE" and m["trace"]["type"] == "ESTIMATE"]
    assert estimates == [{"name": "orders", "namespace": "public", "type": "STREAM", "row_estimate": 20}]
    records = [m["record"] for m in messages if m["type"] == "RECORD"]
    assert len(records) == 20
    assert {(r["namespace"], r["stream"]) for r in records} == {("public", "orders")}
    assert b"12345678901234567890.0123456789" in out  # numeric digits survive the translation
    states = [m["state"] for m in messages if m["type"] == "STATE"]
    last = states[-1]
    assert last["stream"]["stream_descriptor"] == {"name": "orders", "namespace": "public"}
    assert last["stream"]["stream_state"]["replication_key_value"] == 20
    state_file = write(tmp_path, "state.json", [last])
    rc, out, _ = tap("read", "--config", config, "--catalog", catalog, "--state", state_file)
    assert rc == 0
    assert [m["record"]["data"]["id"] for m in parse(out) if m["type"] == "RECORD"] == [20]


@pytest.mark.certifies("airbyte", connector="target-postgres")
def test_target_postgres_spec_check_and_round_trip(tmp_path: Path, db: dict[str, Any]) -> None:
    target_config = {**db, "default_target_schema": "loaded"}
    config = write(tmp_path, "t.json", target_config)
    out = io.BytesIO()
    assert run_target(PostgresTarget, ["spec"], stdout=out) == 0
    assert parse(out.getvalue())[0]["spec"]["supported_destination_sync_modes"] == [
        "append",
        "overwrite",
        "append_dedup",
    ]
    out = io.BytesIO()
    assert run_target(PostgresTarget, ["check", "--config", config], stdout=out) == 0
    assert parse(out.getvalue()) == [{"type": "CONNECTION_STATUS", "connectionStatus": {"status": "SUCCEEDED"}}]
    with psycopg.connect(**_conninfo(db)) as conn:  # the probe left no table behind
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'loaded'").fetchone() == (0,)
    bad = write(tmp_path, "bad.json", {**target_config, "port": 1, "password": SECRET})
    out, err = io.BytesIO(), io.StringIO()
    assert run_target(PostgresTarget, ["check", "--config", bad], stdout=out, stderr=err) == 0
    assert_valid(out.getvalue())
    assert parse(out.getvalue())[0]["connectionStatus"]["status"] == "FAILED"
    assert SECRET not in out.getvalue().decode() + err.getvalue()

    tap_config = write(tmp_path, "c.json", db)
    catalog = configured(tmp_path, tap_config, "full_refresh")
    _, airbyte_out, _ = tap("read", "--config", tap_config, "--catalog", catalog)
    out = io.BytesIO()
    rc = run_target(
        PostgresTarget, ["write", "--config", config, "--catalog", catalog], stdin=io.BytesIO(airbyte_out), stdout=out
    )
    assert rc == 0
    assert_valid(out.getvalue())
    echoed = [m["state"] for m in parse(out.getvalue()) if m["type"] == "STATE"]
    assert echoed and echoed[-1]["stream"]["stream_descriptor"] == {"name": "orders", "namespace": "public"}
    with psycopg.connect(**_conninfo(db)) as conn:
        assert conn.execute("SELECT count(*), sum(id) FROM loaded.public_orders").fetchone() == (20, 210)
        amount = conn.execute("SELECT amount FROM loaded.public_orders WHERE id = 1").fetchone()
    assert str(amount[0]).startswith("12345678901234567890.0123456789")
