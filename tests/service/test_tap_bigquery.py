"""tap-bigquery on the BigQuery emulator: discovery types, every value exact on both read paths
(REST and the Storage Read API over the emulator's gRPC), query streams, INCREMENTAL resume at
microsecond bookmarks, the errors an operator meets, and the tap piped into target-jsonl.

BIGNUMERIC, INTERVAL, GEOGRAPHY and PRIMARY KEY constraints are not kept by the emulator: their
mapping is tested offline (tests/unit/test_tap_bigquery_types.py) and live (test_tap_bigquery_live.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dpone.taps.bigquery.tap import BigQueryTap
from tests.service.bigquery_source import (
    EXIT_CONFIG,
    Num,
    Source,
    bigquery_fixture,  # noqa: F401 - provides `bigquery`
    error_line,
    ok,
    records,
)

pytestmark = pytest.mark.service

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "connectors" / "tap-bigquery.md"
BIN = Path(sys.executable).parent


def _fields() -> list[Any]:
    from google.cloud.bigquery import SchemaField as F

    return [
        F("id", "INT64", mode="REQUIRED"),
        F("n", "NUMERIC"),
        F("f", "FLOAT64"),
        F("b", "BOOL"),
        F("s", "STRING"),
        F("d", "DATE"),
        F("t", "TIME"),
        F("dt", "DATETIME"),
        F("ts", "TIMESTAMP"),
        F("j", "JSON"),
        F("arr", "INT64", mode="REPEATED"),
        F(
            "st",
            "RECORD",
            fields=[F("a", "INT64"), F("b", "STRING"), F("c", "RECORD", mode="REPEATED", fields=[F("x", "NUMERIC")])],
        ),
    ]


ROWS = [
    {
        "id": 9223372036854775807,
        "n": "99999999999999999999999999999.999999999",
        "f": 1.5,
        "b": True,
        "s": 'héllo 🎉 "quoted" \\ \n line',
        "d": "0001-01-01",
        "t": "23:59:59.999999",
        "dt": "9999-12-31T23:59:59.999999",
        "ts": "2024-01-02T03:04:05.123456Z",
        "j": {"a": [1, "x", None], "b": {"c": True}},
        "arr": [1, -2, 3],
        "st": {"a": 1, "b": "ü", "c": [{"x": "1.5"}, {"x": "-0.000000001"}]},
    },
    {"id": -9223372036854775808, "f": "NaN", "d": "9999-12-31", "ts": "0001-01-01T00:00:00Z", "arr": []},
    {"id": 3, "f": "-Infinity", "n": "-0.000000001", "ts": "9999-12-31T23:59:59.999999Z", "dt": "0001-01-01T00:00:00"},
]


@pytest.fixture
def typed(bigquery: Source) -> Source:
    bigquery.create("typed", _fields())
    bigquery.load("typed", ROWS)
    return bigquery


# -- discovery -----------------------------------------------------------------------------------------


def test_discovery_maps_every_type(typed: Source) -> None:
    typed.create("other", _fields()[:1])
    catalog = typed.discover(tables=["typ*"])
    (entry,) = catalog["streams"]
    assert entry["tap_stream_id"] == typed.stream("typed")
    props = entry["schema"]["properties"]
    assert props["id"] == {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
    assert props["n"] == {"type": ["string", "null"], "format": "singer.decimal", "precision": 38, "scale": 9}
    assert props["f"] == {"type": ["number", "null"], "x-sql-datatype": "double precision"}
    assert props["b"] == {"type": ["boolean", "null"]}
    assert props["d"]["format"] == "date" and props["t"]["format"] == "time"
    assert props["dt"]["format"] == props["ts"]["format"] == "date-time"
    assert props["j"] == {"type": ["object", "array", "string", "number", "boolean", "null"]}
    assert props["arr"] == {"type": "array", "items": props["id"]}
    assert props["st"]["type"] == ["object", "null"]
    assert props["st"]["properties"]["c"]["items"]["properties"]["x"]["format"] == "singer.decimal"
    md = next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == [])
    assert md["table-name"] == "typed" and md["schema-name"] == typed.dataset and md["row-count"] == 3
    assert md["is-view"] is False
    assert md["valid-replication-keys"] == ["id", "n", "f", "s", "d", "dt", "ts"]
    assert entry["key_properties"] == []


# -- values --------------------------------------------------------------------------------------------

EXPECTED = [
    {
        "id": 9223372036854775807,
        "n": "99999999999999999999999999999.999999999",
        "f": Num("1.5"),
        "b": True,
        "s": 'héllo 🎉 "quoted" \\ \n line',
        "d": "0001-01-01",
        "t": "23:59:59.999999",
        "dt": "9999-12-31T23:59:59.999999",
        "ts": "2024-01-02T03:04:05.123456+00:00",
        "j": {"a": [1, "x", None], "b": {"c": True}},
        "arr": [1, -2, 3],
        "st": {"a": 1, "b": "ü", "c": [{"x": "1.500000000"}, {"x": "-0.000000001"}]},
    },
    {
        "id": -9223372036854775808,
        **dict.fromkeys(("n", "b", "s", "t", "dt", "j", "st")),
        "f": "NaN",
        "d": "9999-12-31",
        "ts": "0001-01-01T00:00:00+00:00",
        "arr": [],
    },
    {
        "id": 3,
        **dict.fromkeys(("b", "s", "d", "t", "j", "st")),
        "n": "-0.000000001",
        "f": "-Infinity",
        "dt": "0001-01-01T00:00:00",
        "ts": "9999-12-31T23:59:59.999999+00:00",
        "arr": [],
    },
]


def _normal(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # The emulator keeps NUMERIC at scale 9 (BigQuery drops the trailing zeros): compare the digits.
    def decimal(value: Any) -> Any:
        if isinstance(value, str) and re.fullmatch(r"-?\d+\.\d+", value):
            return value.rstrip("0").rstrip(".")
        if isinstance(value, dict):
            return {k: decimal(v) for k, v in value.items()}
        if isinstance(value, list):
            return [decimal(v) for v in value]
        return value

    return sorted((decimal(r) for r in rows), key=lambda r: r["id"])


@pytest.mark.parametrize("path", ["rest", "storage"])
@pytest.mark.certifies("types", connector="tap-bigquery")
def test_every_value_goes_out_exactly(typed: Source, path: str) -> None:
    extra: dict[str, Any] = {"use_storage_api": "never"}
    if path == "storage":
        extra = {"use_storage_api": "always", "storage_api_endpoint": typed.grpc_endpoint}
    run = ok(typed.sync(**extra))
    assert _normal(records(run, typed.stream("typed"))) == _normal(EXPECTED)
    if path == "storage":
        assert "through the Storage Read API" in run.stderr


def test_selected_columns_only_are_read(typed: Source) -> None:
    catalog = typed.catalog(typed.stream("typed"))
    entry = catalog["streams"][0]
    for m in entry["metadata"]:
        if m["breadcrumb"][:1] == ["properties"]:
            m["metadata"]["selected"] = m["breadcrumb"][1] in ("id", "ts")
    run = ok(typed.sync(catalog))
    assert sorted(r["id"] for r in records(run)) == [-9223372036854775808, 3, 9223372036854775807]
    assert {tuple(sorted(r)) for r in records(run)} == {("id", "ts")}


# -- query streams -------------------------------------------------------------------------------------


def test_a_query_stream_reads_its_query(typed: Source) -> None:
    query = f"SELECT id, n, ts FROM `{typed.dataset}.typed` WHERE id > 0"
    streams = [{"name": "big_ones", "query": query, "key_properties": ["id"], "replication_key": "ts"}]
    catalog = typed.discover(streams=streams)
    (entry,) = catalog["streams"]
    assert entry["tap_stream_id"] == "big_ones" and entry["key_properties"] == ["id"]
    assert list(entry["schema"]["properties"]) == ["id", "n", "ts"]
    md = next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == [])
    assert md["is-view"] is True and md["replication-key"] == "ts"
    run = ok(typed.sync(streams=streams))  # the catalog's default for a stream with a key: INCREMENTAL
    got = records(run)
    assert [r["id"] for r in got] == [9223372036854775807, 3]  # in replication-key order
    assert got[1]["ts"] == "9999-12-31T23:59:59.999999+00:00"
    assert run.states[-1]["bookmarks"]["big_ones"]["replication_key_value"] == "9999-12-31T23:59:59.999999+00:00"


# -- incremental ---------------------------------------------------------------------------------------


def test_incremental_resumes_at_microsecond_bookmarks_without_losing_ties(bigquery: Source) -> None:
    from google.cloud.bigquery import SchemaField as F

    bigquery.create("events", [F("id", "INT64"), F("at", "TIMESTAMP"), F("amount", "NUMERIC")])
    bigquery.load(
        "events",
        [
            {"id": 1, "at": "2025-03-01T10:00:00.000001Z", "amount": "1.1"},
            {"id": 2, "at": "2025-03-01T10:00:00.000002Z", "amount": "2.2"},
            {"id": 3, "at": "2025-03-01T10:00:00.000002Z", "amount": "3.3"},
        ],
    )
    stream = bigquery.stream("events")
    catalog = bigquery.catalog(stream, "INCREMENTAL", "at")
    first = ok(bigquery.sync(catalog))
    assert [r["id"] for r in records(first)] == [1, 2, 3]
    state = first.states[-1]
    assert state["bookmarks"][stream] == {
        "replication_key": "at",
        "replication_key_value": "2025-03-01T10:00:00.000002+00:00",
    }
    bigquery.load(
        "events",
        [
            {"id": 4, "at": "2025-03-01T10:00:00.000002Z"},  # a late tie at the bookmark
            {"id": 5, "at": "2025-03-01T10:00:00.000003Z"},
            {"id": 6, "at": "2025-03-01T10:00:00.000001Z"},  # backdated: before the bookmark
        ],
    )
    second = ok(bigquery.sync(catalog, state))
    # Ties at the bookmark come again (at least once), later rows once, nothing before it.
    assert sorted(r["id"] for r in records(second)) == [2, 3, 4, 5]
    assert second.states[-1]["bookmarks"][stream]["replication_key_value"] == "2025-03-01T10:00:00.000003+00:00"
    third = ok(bigquery.sync(catalog, second.states[-1]))
    assert [r["id"] for r in records(third)] == [5]


def test_incremental_by_a_numeric_key_and_start_date(bigquery: Source) -> None:
    from google.cloud.bigquery import SchemaField as F

    bigquery.create("ledger", [F("id", "INT64"), F("seq", "NUMERIC"), F("day", "DATE")])
    bigquery.load("ledger", [{"id": i, "seq": f"1{i}.00000000{i}", "day": f"2025-01-0{i}"} for i in range(1, 6)])
    stream = bigquery.stream("ledger")
    run = ok(
        bigquery.sync(
            bigquery.catalog(stream, "INCREMENTAL", "seq"),
            {"bookmarks": {stream: {"replication_key": "seq", "replication_key_value": "13.000000003"}}},
        )
    )
    assert [r["id"] for r in records(run)] == [3, 4, 5]
    run = ok(bigquery.sync(bigquery.catalog(stream, "INCREMENTAL", "day"), start_date="2025-01-04T00:00:00Z"))
    assert [r["id"] for r in records(run)] == [4, 5]
    assert run.states[-1]["bookmarks"][stream]["replication_key_value"] == "2025-01-05"


@pytest.mark.certifies("activate_version", connector="tap-bigquery")
def test_full_table_reads_are_table_versions(typed: Source) -> None:
    stream = typed.stream("typed")
    first = ok(typed.sync(typed.catalog(stream)))
    kinds = [m["type"] for m in first.messages]
    assert kinds[:2] == ["SCHEMA", "ACTIVATE_VERSION"] and kinds[-2:] == ["ACTIVATE_VERSION", "STATE"]
    version = first.states[-1]["bookmarks"][stream]["version"]
    assert {m["version"] for m in first.of_type("RECORD")} == {version}
    second = ok(typed.sync(typed.catalog(stream), first.states[-1]))
    kinds = [m["type"] for m in second.messages]
    assert kinds[1] == "RECORD"  # a known stream: the new version is activated after its rows only
    assert second.states[-1]["bookmarks"][stream]["version"] > version


# -- errors --------------------------------------------------------------------------------------------


def test_a_missing_table_is_a_config_error_naming_it(bigquery: Source) -> None:
    run = bigquery.run("--discover", config=bigquery.config(streams=[{"name": "x", "table": "nope"}]))
    line = error_line(run, "config", EXIT_CONFIG)
    assert f"{bigquery.dataset}.nope" in line


def test_a_missing_dataset_is_a_config_error(bigquery: Source) -> None:
    run = bigquery.run("--discover", config={**bigquery.config(), "dataset": "no_such_dataset"})
    assert "no_such_dataset" in error_line(run, "config", EXIT_CONFIG)


def test_a_bad_query_is_a_clear_config_error(bigquery: Source) -> None:
    run = bigquery.run("--discover", config=bigquery.config(streams=[{"name": "q", "query": "SELEC 1"}]))
    line = error_line(run, "config", EXIT_CONFIG)
    assert "stream 'q'" in line and "SELEC" in line and "invalidQuery" in line


def test_bad_stream_settings_are_config_errors(typed: Source) -> None:
    both = [{"name": "x", "table": "typed", "query": "SELECT 1"}]
    assert "exactly one of" in error_line(typed.run(config=typed.config(streams=both)), "config", EXIT_CONFIG)
    no_column = [{"name": "x", "table": "typed", "replication_key": "nope"}]
    assert "'nope' is not a column" in error_line(
        typed.run(config=typed.config(streams=no_column)), "config", EXIT_CONFIG
    )
    catalog = typed.catalog(typed.stream("typed"), "INCREMENTAL", "j")
    assert "replication key 'j'" in error_line(typed.sync(catalog), "config", EXIT_CONFIG)
    bad_state = {"bookmarks": {typed.stream("typed"): {"replication_key": "ts", "replication_key_value": "soon"}}}
    catalog = typed.catalog(typed.stream("typed"), "INCREMENTAL", "ts")
    assert "'soon' is not a TIMESTAMP" in error_line(typed.sync(catalog, bad_state), "config", EXIT_CONFIG)


def test_a_service_account_key_never_reaches_the_error_line(bigquery: Source) -> None:
    secret = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7secret"
    key = f"-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n"
    info = {
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "k1",
        "private_key": key,
        "client_email": "tap@p.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    run = bigquery.run("--discover", config=bigquery.config(credentials_json=json.dumps(info)))
    assert run.rc == EXIT_CONFIG, run.stderr
    assert secret not in run.stderr
    assert "credentials_json" in run.stderr


# -- as processes --------------------------------------------------------------------------------------


def test_the_tap_piped_into_target_jsonl_with_the_console_scripts(typed: Source, tmp_path: Path) -> None:
    tap_config = tmp_path / "bq.json"
    tap_config.write_text(json.dumps(typed.config(tables=["typed"])))
    target_config = tmp_path / "jsonl.json"
    target_config.write_text(json.dumps({"destination_path": str(tmp_path / "out")}))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = f"{BIN / 'tap-bigquery'} --config {tap_config} | {BIN / 'target-jsonl'} --config {target_config}"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    stream = typed.stream("typed")
    assert json.loads(done.stdout.splitlines()[-1])["bookmarks"][stream]["version"]
    lines = (tmp_path / "out" / f"{stream}.jsonl").read_text().splitlines()
    rows = [json.loads(line, parse_float=Num) for line in lines]
    assert _normal(rows) == _normal(EXPECTED)


def test_help_does_not_import_google_cloud() -> None:
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    proc = subprocess.run([str(BIN / "tap-bigquery"), "--help"], capture_output=True, text=True, env=env, check=True)
    assert "usage:" in proc.stdout
    assert not [line for line in proc.stderr.splitlines() if "google.cloud" in line or "pyarrow" in line]


# -- documentation -------------------------------------------------------------------------------------


def test_doc_settings_table_lists_every_setting() -> None:
    section = DOC.read_text().split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    table = re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.MULTILINE)
    names = [s.name for s in BigQueryTap.all_settings()]
    assert [n for n in table if n in names] == names, "docs/connectors/tap-bigquery.md settings table is out of date"
