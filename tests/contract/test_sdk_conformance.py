"""Every singer-sdk target test stream, piped into target-jsonl and target-duckdb.

Valid inputs load; the invalid ones (record before schema, missing key property, invalid
schema) exit non-zero with a one-line error naming the problem.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import orjson
import pytest

from targets.duckdb.target import DuckDBTarget
from targets.jsonl.target import JsonlTarget

INVALID = {
    "record_before_schema": "RECORD received before any SCHEMA",
    "record_missing_key_property": "no value for key property 'id'",
    "invalid_schema": "SCHEMA has no 'properties'",
}
STREAM_FILES = sorted(
    p.stem
    for p in (Path(__import__("singer_sdk").__file__).parent / "testing" / "target_test_streams").glob("*.singer")
)

TARGETS = {
    "target-jsonl": (JsonlTarget, lambda tmp: {"destination_path": str(tmp / "out")}),
    "target-duckdb": (DuckDBTarget, lambda tmp: {"filepath": str(tmp / "db.duckdb")}),
}


def test_every_sdk_file_is_covered():
    assert len(STREAM_FILES) >= 20
    assert set(INVALID) <= set(STREAM_FILES)


@pytest.mark.parametrize("target_name", sorted(TARGETS))
@pytest.mark.parametrize("name", STREAM_FILES)
def test_sdk_stream(run_target, sdk_target_streams, tmp_path, target_name, name):
    cls, make_config = TARGETS[target_name]
    data = (sdk_target_streams / f"{name}.singer").read_bytes()
    result = run_target(cls, make_config(tmp_path), data)
    if name in INVALID:
        assert result.rc == 65, result.stderr
        assert INVALID[name] in result.stderr
        # Log lines may precede it; the error itself is the last line, and a single one.
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith(f"{target_name}: data error: line "), result.stderr
        assert result.stderr.count("error:") == 1
        return
    assert result.rc == 0, result.stderr
    expected_states = [orjson.loads(line)["value"] for line in data.splitlines() if b'"STATE"' in line]
    if expected_states:
        assert result.states[-1] == expected_states[-1]
    records = [orjson.loads(line) for line in data.splitlines() if b'"RECORD"' in line]
    if target_name == "target-duckdb":
        _check_duckdb(tmp_path / "db.duckdb", name, records)
    else:
        _check_jsonl(tmp_path / "out", records)


def _check_jsonl(out: Path, records: list[dict]) -> None:
    written: dict[str, list[dict]] = {}
    for path in out.glob("*.jsonl"):
        written[path.stem] = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    for stream in {r["stream"] for r in records}:
        assert written[stream] == [r["record"] for r in records if r["stream"] == stream]


def _check_duckdb(path: Path, name: str, records: list[dict]) -> None:
    if not records:
        return
    with duckdb.connect(str(path), read_only=True) as conn:
        if name == "duplicate_records":
            rows = conn.execute("SELECT id, metric FROM test_duplicate_records ORDER BY id").fetchall()
            assert rows == [(1, 100), (2, 20)]  # the last record per key wins
        elif name == "schema_updates":
            rows = conn.execute("SELECT id, a3, a6 FROM test_schema_updates ORDER BY id").fetchall()
            assert rows[0] == (1, None, None) and rows[-1] == (6, True, 341)
        elif name == "encoded_string_data":
            texts = {r[0] for r in conn.execute("SELECT info FROM test_strings").fetchall()}
            assert "简单的字串" in texts
        elif name == "special_chars_in_attributes":
            (row,) = conn.execute("SELECT _id, d FROM test_specialchars_in_attributes").fetchall()
            assert row[0] == "a2e98886" and orjson.loads(row[1])["agent:os:version"] == "10.13.1"
        else:
            streams = {r["stream"] for r in records}
            tables = {t[0] for t in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            assert len(tables) >= len(streams)


def test_upsert_after_initial_load(run_target, sdk_target_streams, tmp_path):
    config = {"filepath": str(tmp_path / "db.duckdb")}
    first = run_target(DuckDBTarget, config, (sdk_target_streams / "user_location_data.singer").read_bytes())
    assert first.rc == 0, first.stderr
    second = run_target(DuckDBTarget, config, (sdk_target_streams / "user_location_upsert_data.singer").read_bytes())
    assert second.rc == 0, second.stderr
    with duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM test_users ORDER BY id").fetchall()]
        assert len(ids) == len(set(ids))
        assert conn.execute("SELECT name FROM test_users WHERE id = 1").fetchone()[0] == "Johny"


@pytest.mark.parametrize("executable", ["target-jsonl", "target-duckdb"])
def test_installed_executables_reject_invalid_input(sdk_target_streams, tmp_path, executable):
    config = tmp_path / "config.json"
    config.write_text(
        orjson.dumps({"destination_path": str(tmp_path), "filepath": str(tmp_path / "x.duckdb")}).decode()
    )
    exe = Path(sys.executable).parent / executable
    proc = subprocess.run(
        [str(exe), "--config", str(config)],
        input=(sdk_target_streams / "record_before_schema.singer").read_bytes(),
        capture_output=True,
        check=False,
        env={**os.environ, "DPONE_LOG_LEVEL": "WARNING"},
    )
    assert proc.returncode == 65
    assert proc.stderr.decode().strip() == (
        f"{executable}: data error: line 1, stream 'test_record_before_schema': "
        "RECORD received before any SCHEMA for this stream"
    )
