"""target-jsonl and target-duckdb speak the Airbyte destination protocol: spec, check, write with
each destination_sync_mode, STATE echoed only after commit, errors as TRACE, all valid and redacted;
and a tap-csv read | target-duckdb write round trip."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from dpone.targets.duckdb.target import DuckDBTarget
from dpone.targets.framework.target import Target
from dpone.targets.framework.target_cli import run as run_target
from dpone.targets.jsonl.target import JsonlTarget
from tests.tools.airbyte_validate import assert_valid

SECRET = "hunter2-very-secret"
BIN = Path(sys.executable).parent
PROPS = {"id": {"type": "integer"}, "name": {"type": ["null", "string"]}}


def write(tmp_path: Path, name: str, obj: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return str(path)


def catalog(tmp_path: Path, mode: str, *names: str, namespace: str | None = None) -> str:
    streams = []
    for name in names or ("orders",):
        stream: dict[str, Any] = {
            "name": name,
            "json_schema": {"type": "object", "properties": PROPS},
            "supported_sync_modes": ["full_refresh", "incremental"],
        }
        if namespace:
            stream["namespace"] = namespace
        streams.append(
            {"stream": stream, "sync_mode": "full_refresh", "destination_sync_mode": mode, "primary_key": [["id"]]}
        )
    obj = {"streams": streams}
    assert_valid(orjson.dumps(obj), configured_catalog=True)
    return write(tmp_path, f"catalog-{mode}.json", obj)


def rec(i: int, stream: str = "orders", **extra: Any) -> dict[str, Any]:
    data = {"id": i, "name": f"n{i}"}
    return {"type": "RECORD", "record": {"stream": stream, "data": data, "emitted_at": 1700000000000, **extra}}


def st(upto: int, stream: str = "orders") -> dict[str, Any]:
    descriptor = {"name": stream}
    return {
        "type": "STATE",
        "state": {"type": "STREAM", "stream": {"stream_descriptor": descriptor, "stream_state": {"upto": upto}}},
    }


def airbyte(cls: type[Target], argv: list[str], messages: list[Any] = ()) -> tuple[int, list[dict[str, Any]], str]:  # type: ignore[assignment]
    data = b"".join(m if isinstance(m, bytes) else orjson.dumps(m) + b"\n" for m in messages)
    out, err = io.BytesIO(), io.StringIO()
    rc = run_target(cls, argv, stdin=io.BytesIO(data), stdout=out, stderr=err)
    assert_valid(out.getvalue())
    return rc, [orjson.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def states(messages: list[dict[str, Any]]) -> list[Any]:
    return [m["state"]["stream"]["stream_state"]["upto"] for m in messages if m["type"] == "STATE"]


def rows(db: Path, table: str = "orders") -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db)) as conn:
        return conn.sql(f"SELECT id, name FROM {table} ORDER BY id").fetchall()


@pytest.mark.parametrize(
    ("cls", "modes"),
    [(JsonlTarget, ["append", "overwrite"]), (DuckDBTarget, ["append", "overwrite", "append_dedup"])],
)
def test_spec(cls: type[Target], modes: list[str]) -> None:
    rc, (message,), _ = airbyte(cls, ["spec"])
    assert rc == 0
    assert message["spec"]["supported_destination_sync_modes"] == modes
    assert "load_method" in message["spec"]["connectionSpecification"]["properties"]


def test_check_jsonl(tmp_path: Path) -> None:
    good = write(tmp_path, "good.json", {"destination_path": str(tmp_path / "out")})
    assert airbyte(JsonlTarget, ["check", "--config", good])[1][0]["connectionStatus"] == {"status": "SUCCEEDED"}
    assert list((tmp_path / "out").iterdir()) == []  # the probe file is gone
    (tmp_path / "file").write_text("")
    bad = write(tmp_path, "bad.json", {"destination_path": str(tmp_path / "file" / SECRET), "password": SECRET})
    rc, (message,), _ = airbyte(JsonlTarget, ["check", "--config", bad])
    assert rc == 0
    assert message["connectionStatus"]["status"] == "FAILED"
    assert "destination_path" in message["connectionStatus"]["message"]
    assert SECRET not in json.dumps(message)


def test_check_duckdb(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    good = write(tmp_path, "good.json", {"filepath": str(db)})
    assert airbyte(DuckDBTarget, ["check", "--config", good])[1][0]["connectionStatus"] == {"status": "SUCCEEDED"}
    with duckdb.connect(str(db)) as conn:
        assert conn.sql("SELECT table_name FROM information_schema.tables").fetchall() == []  # probe left nothing
    (tmp_path / SECRET).write_text("not a database")
    bad = write(tmp_path, "bad.json", {"filepath": str(tmp_path / SECRET), "token": SECRET})
    rc, (message,), _ = airbyte(DuckDBTarget, ["check", "--config", bad])
    assert rc == 0
    assert message["connectionStatus"]["status"] == "FAILED"
    assert SECRET not in json.dumps(message)


@pytest.mark.certifies("airbyte", connector="target-duckdb")
def test_duckdb_write_modes(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    config = write(tmp_path, "c.json", {"filepath": str(db)})
    first = [rec(1), rec(2), st(2), rec(2, data_ignored=True), rec(3), st(3)]
    rc, messages, _ = airbyte(
        DuckDBTarget, ["write", "--config", config, "--catalog", catalog(tmp_path, "append")], first
    )
    assert rc == 0
    assert states(messages) == [3]  # state 2 of the same stream was superseded before anything committed
    assert rows(db) == [(1, "n1"), (2, "n2"), (2, "n2"), (3, "n3")]
    dedup = catalog(tmp_path, "append_dedup")
    airbyte(DuckDBTarget, ["write", "--config", config, "--catalog", dedup], [rec(3), rec(4), st(4)])
    assert rows(db) == [(1, "n1"), (2, "n2"), (2, "n2"), (3, "n3"), (4, "n4")]
    overwrite = catalog(tmp_path, "overwrite", "orders", "empty")
    rc, messages, _ = airbyte(DuckDBTarget, ["write", "--config", config, "--catalog", overwrite], [rec(9), st(9)])
    assert states(messages) == [9]
    assert rows(db) == [(9, "n9")]
    assert rows(db, "empty") == []  # a configured stream with no records still gets its (empty) table


def test_namespaced_streams_load_like_singer_database_streams(tmp_path: Path) -> None:
    db = tmp_path / "n.duckdb"
    config = write(tmp_path, "c.json", {"filepath": str(db)})
    cat = catalog(tmp_path, "append", namespace="public")
    rc, _, _ = airbyte(DuckDBTarget, ["write", "--config", config, "--catalog", cat], [rec(1, namespace="public")])
    assert rc == 0
    assert rows(db, "public_orders") == [(1, "n1")]


@pytest.mark.certifies("airbyte", connector="target-jsonl")
def test_jsonl_write_and_unsupported_mode(tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = write(tmp_path, "c.json", {"destination_path": str(out)})
    rc, messages, _ = airbyte(
        JsonlTarget, ["write", "--config", config, "--catalog", catalog(tmp_path, "overwrite")], [rec(1), st(1)]
    )
    assert rc == 0
    assert states(messages) == [1]
    assert [json.loads(line)["id"] for line in (out / "orders.jsonl").read_text().splitlines()] == [1]
    rc, messages, _ = airbyte(
        JsonlTarget, ["write", "--config", config, "--catalog", catalog(tmp_path, "append_dedup")], [rec(1)]
    )
    assert rc == 78
    (trace,) = [m["trace"] for m in messages if m["type"] == "TRACE"]
    assert trace["error"]["failure_type"] == "config_error"
    assert "'append_dedup' is not supported (supported: append, overwrite)" in trace["error"]["message"]


def test_state_is_echoed_only_after_its_records_commit(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    config = write(tmp_path, "c.json", {"filepath": str(db), "batch_size_rows": 2, "password": SECRET})
    bad = {"type": "RECORD", "record": {"stream": "orders", "data": {"name": SECRET}, "emitted_at": 0}}
    messages_in = [rec(1), rec(2), st(2), rec(3), st(3), bad, rec(5), st(5)]
    rc, messages, stderr = airbyte(
        DuckDBTarget, ["write", "--config", config, "--catalog", catalog(tmp_path, "append")], messages_in
    )
    assert rc == 65
    assert states(messages) == [2]  # 3 covers row 3, which was never committed
    assert rows(db) == [(1, "n1"), (2, "n2")]
    (trace,) = [m["trace"] for m in messages if m["type"] == "TRACE"]
    assert trace["error"]["failure_type"] == "system_error"
    assert "line 6, stream 'orders': record has no value for key property 'id'" in trace["error"]["message"]
    assert SECRET not in json.dumps(messages) + stderr


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"{oops\n", "line 2: malformed JSON"),
        (orjson.dumps(rec(1, "nope")) + b"\n", "line 2: RECORD for stream 'nope'"),
    ],
)
def test_malformed_input_fails_with_the_line(tmp_path: Path, line: bytes, error: str) -> None:
    config = write(tmp_path, "c.json", {"filepath": str(tmp_path / "m.duckdb")})
    rc, messages, stderr = airbyte(
        DuckDBTarget, ["write", "--config", config, "--catalog", catalog(tmp_path, "append")], [st(0), line]
    )
    assert rc == 65
    assert error in stderr
    assert states(messages) == [0]


def test_tap_csv_read_into_target_duckdb_write(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text("id,name\n1,a\n2,b\n")
    tap_config = write(
        tmp_path, "tap.json", {"files": [{"entity": "orders", "path": str(tmp_path / "orders.csv"), "keys": ["id"]}]}
    )
    discovered = subprocess.run(
        [str(BIN / "tap-csv"), "discover", "--config", tap_config], capture_output=True, check=True
    )
    streams = orjson.loads(discovered.stdout)["catalog"]["streams"]
    configured = write(
        tmp_path,
        "configured.json",
        {
            "streams": [
                {"stream": s, "sync_mode": "full_refresh", "destination_sync_mode": "append_dedup"} for s in streams
            ]
        },
    )
    db = tmp_path / "rt.duckdb"
    target_config = write(tmp_path, "target.json", {"filepath": str(db)})
    tap = subprocess.Popen(
        [str(BIN / "tap-csv"), "read", "--config", tap_config, "--catalog", configured],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    target = subprocess.run(
        [str(BIN / "target-duckdb"), "write", "--config", target_config, "--catalog", configured],
        stdin=tap.stdout,
        capture_output=True,
        check=False,
    )
    assert tap.wait() == 0
    assert target.returncode == 0, target.stderr
    assert_valid(target.stdout)
    echoed = [m["state"] for m in map(orjson.loads, target.stdout.splitlines()) if m["type"] == "STATE"]
    assert [s["stream"]["stream_descriptor"] for s in echoed] == [{"name": "orders"}]
    with duckdb.connect(str(db)) as conn:
        assert conn.sql("SELECT id, name FROM orders ORDER BY id").fetchall() == [(1, "a"), (2, "b")]
