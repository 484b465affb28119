"""tap-csv through its CLI: type inference, about, full and incremental syncs, BATCH, errors.

Discovery, selection, bookmarks and state cadence are the shared suite's (tests/kit/tap_suite.py,
run by test_tap_csv_suite.py)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pytest

from dpone.taps.csv.tap import CsvTap


@pytest.fixture
def csv_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    (d / "people-1.csv").write_text(
        "id,name,score,active,born,updated_at\n"
        "1,Ann,1.5,true,2001-02-03,2024-01-01T00:00:00+00:00\n"
        "2,Bob,,false,2002-03-04,2024-01-02T00:00:00+00:00\n"
    )
    (d / "people-2.csv").write_text(
        "id,name,score,active,born,updated_at\n"
        "3,Cy,3,true,,2024-01-03T00:00:00+00:00\n"
        "4,Di,4.25,false,2004-05-06,2024-01-03T00:00:00+00:00\n"
    )
    return d


def people_config(csv_dir: Path, **extra: object) -> dict[str, object]:
    spec = {"entity": "people", "path": "people-*.csv", "keys": ["id"], **extra}
    return {"base_path": str(csv_dir), "files": [spec]}


def test_discover_infers_types_and_marks_keys(run_tap, csv_dir):
    result = run_tap(CsvTap, people_config(csv_dir, replication_key="updated_at"), "--discover")
    assert result.rc == 0, result.stderr
    (stream,) = json.loads(result.stdout)["streams"]
    props = stream["schema"]["properties"]
    assert props["id"]["type"] == ["integer", "null"]
    assert props["score"]["type"] == ["number", "null"]
    assert props["active"]["type"] == ["boolean", "null"]
    assert props["born"] == {"type": ["string", "null"], "format": "date"}
    assert props["updated_at"]["format"] == "date-time"
    assert stream["key_properties"] == ["id"]
    root = next(m["metadata"] for m in stream["metadata"] if m["breadcrumb"] == [])
    assert root["replication-key"] == "updated_at"
    assert root["valid-replication-keys"] == ["updated_at"]


def test_full_table_sync_reads_every_file_with_typed_values(run_tap, csv_dir):
    result = run_tap(CsvTap, people_config(csv_dir))
    assert result.rc == 0, result.stderr
    records = [m["record"] for m in result.of_type("RECORD")]
    assert [r["id"] for r in records] == [1, 2, 3, 4]
    assert records[0] == {
        "id": 1,
        "name": "Ann",
        "score": 1.5,
        "active": True,
        "born": "2001-02-03",
        "updated_at": "2024-01-01T00:00:00+00:00",
    }
    assert records[1]["score"] is None  # empty field -> null
    assert records[2]["score"] == 3 and isinstance(records[2]["score"], int)
    assert result.messages[0]["type"] == "SCHEMA"
    assert result.messages[-1]["type"] == "STATE"


def test_start_date_bounds_a_first_incremental_run(run_tap, csv_dir):
    config = {**people_config(csv_dir, replication_key="updated_at"), "start_date": "2024-01-02T00:00:00+00:00"}
    result = run_tap(CsvTap, config)
    assert [m["record"]["id"] for m in result.of_type("RECORD")] == [2, 3, 4]


def test_declared_schema_overrides_inference(run_tap, csv_dir):
    declared = {"id": {"type": "string"}, "score": {"type": ["string", "null"], "format": "singer.decimal"}}
    result = run_tap(CsvTap, people_config(csv_dir, schema=declared))
    first = result.of_type("RECORD")[0]["record"]
    assert first["id"] == "1" and first["score"] == "1.5"


@pytest.mark.certifies("batch", connector="tap-csv")
def test_batch_output_writes_gzip_jsonl_and_manifest(run_tap, csv_dir, tmp_path):
    config = {
        **people_config(csv_dir),
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": (tmp_path / "batches").as_uri()},
        },
    }
    result = run_tap(CsvTap, config)
    assert result.rc == 0, result.stderr
    assert not result.of_type("RECORD")
    (batch,) = result.of_type("BATCH")
    assert batch["encoding"] == {"format": "jsonl", "compression": "gzip"}
    rows = []
    for uri in batch["manifest"]:
        with gzip.open(Path(uri.removeprefix("file://")), "rb") as fh:
            rows += [orjson.loads(line) for line in fh]
    assert [r["id"] for r in rows] == [1, 2, 3, 4]
    # STATE comes after the BATCH that carries its records.
    kinds = [m["type"] for m in result.messages]
    assert kinds.index("BATCH") < len(kinds) - 1 - kinds[::-1].index("STATE")


def test_batch_files_hold_batch_size_rows_whatever_the_state_cadence(run_tap, csv_dir, tmp_path):
    config = {
        **people_config(csv_dir),
        "state_every_rows": 1,  # applies to RECORD output; in BATCH mode the files set the cadence
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": "none"},
            "storage": {"root": str(tmp_path / "batches")},
            "batch_size": 3,
        },
    }
    result = run_tap(CsvTap, config)
    assert result.rc == 0, result.stderr
    batches = result.of_type("BATCH")
    assert [b["encoding"] for b in batches] == [{"format": "jsonl", "compression": "none"}] * 2
    files = [Path(uri.removeprefix("file://")) for b in batches for uri in b["manifest"]]
    assert [f.suffix for f in files] == [".jsonl", ".jsonl"]
    assert [len(f.read_bytes().splitlines()) for f in files] == [3, 1]
    # Each BATCH is followed by the STATE that covers it.
    kinds = [m["type"] for m in result.messages if m["type"] in ("BATCH", "STATE")]
    assert kinds == ["BATCH", "STATE", "BATCH", "STATE"]


def test_about_json_and_markdown(run_tap):
    result = run_tap(CsvTap, None, "--about", "--format", "json")
    about = json.loads(result.stdout)
    assert about["name"] == "tap-csv"
    assert "files" in about["settings"]["properties"]
    assert "discover" in about["capabilities"]
    markdown = run_tap(CsvTap, None, "--about", "--format", "markdown").stdout.decode()
    assert markdown.startswith("# `tap-csv`") and "| files |" in markdown


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, "missing required setting 'files'"),
        ({"files": [{"entity": "x", "path": "/nonexistent/*.csv"}]}, "no file matches"),
        ({"files": [{"path": "a.csv"}]}, "entity"),
        ({"files": "people.csv"}, "setting 'files' must be array"),
    ],
)
def test_config_errors_are_one_line_and_exit_78(run_tap, config, expected):
    result = run_tap(CsvTap, config)
    assert result.rc == 78
    assert expected in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_bad_value_in_typed_column_names_file_line_and_column(run_tap, csv_dir):
    (csv_dir / "people-3.csv").write_text("id,name,score,active,born,updated_at\nx,E,1,true,,\n")
    declared = {"id": {"type": "integer"}}
    result = run_tap(CsvTap, people_config(csv_dir, schema=declared))
    assert result.rc == 65
    assert "people-3.csv line 2" in result.stderr and "'id'" in result.stderr


def test_missing_config_flag(run_tap):
    result = run_tap(CsvTap, None)
    assert result.rc == 78 and "--config" in result.stderr


def test_datetime_bookmarks_compare_as_instants(run_tap, tmp_path):
    d = tmp_path / "tz"
    d.mkdir()
    (d / "e.csv").write_text(
        "id,at\n1,2024-01-01T10:00:00+05:00\n2,2024-01-01T09:00:00+00:00\n3,2024-01-01T04:00:00Z\n"
    )
    config = {"base_path": str(d), "files": [{"entity": "e", "path": "e.csv", "keys": ["id"], "replication_key": "at"}]}
    first = run_tap(CsvTap, config)
    # 09:00Z is the latest instant although '2024-01-01T10:00:00+05:00' sorts last as text.
    assert first.states[-1]["bookmarks"]["e"]["replication_key_value"] == "2024-01-01T09:00:00+00:00"
    state = tmp_path / "s.json"
    state.write_text(json.dumps(first.states[-1]))
    second = run_tap(CsvTap, config, "--state", str(state))
    assert [m["record"]["id"] for m in second.of_type("RECORD")] == [2]


def test_leading_zeros_and_partial_declared_schema(run_tap, tmp_path):
    d = tmp_path / "z"
    d.mkdir()
    (d / "z.csv").write_text("zip,n,label\n02134,1_000,7\n10001,5,8\n")
    config = {"base_path": str(d), "files": [{"entity": "z", "path": "z.csv", "schema": {"label": {"type": "string"}}}]}
    result = run_tap(CsvTap, config)
    props = result.of_type("SCHEMA")[0]["schema"]["properties"]
    assert props["zip"]["type"] == ["string", "null"] and props["n"]["type"] == ["string", "null"]
    assert props["label"] == {"type": "string"}
    assert result.of_type("RECORD")[0]["record"] == {"zip": "02134", "n": "1_000", "label": "7"}
