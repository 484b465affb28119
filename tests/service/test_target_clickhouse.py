"""target-clickhouse beyond the shared suite: every type exact, the values ClickHouse's own parser would
let through changed refused, ReplacingMergeTree upserts read with FINAL, the refresh by EXCHANGE, table
layouts, schema widening, deduplicated retries and connection errors. On the embedded engine."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dpone.targets.clickhouse.loader import ClickHouseLoader
from dpone.targets.clickhouse.target import ClickHouseTarget
from dpone.targets.framework.batching import BatchPolicy
from dpone.targets.framework.encoded_rows import ADDED, NOT_HANDLED, EncodedRows
from dpone.targets.framework.line_batch import LineBatch, LineRouter
from dpone.targets.framework.loader import StreamPlan
from dpone.targets.framework.target_cli import run as run_cli
from dpone_drivers.clickhouse import client_options, database_of
from dpone_protocol.json_schema import stream_columns
from dpone_protocol.settings import apply_settings
from tests.conftest import lines, record, schema, state
from tests.kit.kit import TargetKit
from tests.service.clickhouse_dest import ClickHouseDest

pytestmark = pytest.mark.service

TYPES = {
    "id": {"type": "integer"},
    "big": {"type": ["null", "integer"]},
    "dec": {"type": ["null", "string"], "format": "singer.decimal", "precision": 38, "scale": 10},
    "money": {"type": ["null", "number"], "multipleOf": 0.01, "maximum": 1e9},
    "f": {"type": ["null", "number"]},
    "f32": {"type": ["null", "number"], "format": "float"},
    "ok": {"type": ["null", "boolean"]},
    "s": {"type": ["null", "string"]},
    "ts": {"type": ["null", "string"], "format": "date-time"},
    "d": {"type": ["null", "string"], "format": "date"},
    "t": {"type": ["null", "string"], "format": "time"},
    "u": {"type": ["null", "string"], "format": "uuid"},
    "o": {"type": ["null", "object"]},
    "tags": {"type": ["null", "array"], "items": {"type": "string"}},
    "nums": {"type": ["null", "array"], "items": {"type": ["null", "integer"]}},
    "mixed": {"type": ["null", "array"]},
}
FULL_ROW = (
    b'{"type":"RECORD","stream":"types","record":{"id":1,"big":-9223372036854775808,'
    b'"dec":"1234567890123456789012345678.0123456789","money":999999999.99,"f":0.30000000000000004,'
    b'"f32":1.5,"ok":true,"s":"caf\\u00e9 \\"quoted\\" \\n tab\\t \xe2\x9c\x93",'
    b'"ts":"2024-02-29T23:59:59.123456+05:30",'
    b'"d":"0001-01-01","t":"23:59:59.5","u":"0b6c3b3e-8f4e-4c3a-9a55-7d2f7a3c1e10","o":{"a":[1,{"b":null}],"c":"x"},'
    b'"tags":["a","","b"],"nums":[1,null,3],"mixed":[1,"two",{"three":3}]}}\n'
)
NULL_ROW = b'{"type":"RECORD","stream":"types","record":{"id":2}}\n'


@pytest.fixture
def dest(tmp_path: Path) -> ClickHouseDest:
    return ClickHouseDest(tmp_path / "clickhouse")


@pytest.fixture
def kit(dest: ClickHouseDest, tmp_path: Path) -> TargetKit:
    return TargetKit(ClickHouseTarget, dest.config(), dest.rows, dest.tables, tmp_path)


def activate(stream: str, version: int) -> dict[str, Any]:
    return {"type": "ACTIVATE_VERSION", "stream": stream, "version": version}


def error(result: Any) -> str:
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.certifies("types", connector="target-clickhouse")
def test_every_type_lands_exactly(kit: TargetKit, dest: ClickHouseDest) -> None:
    result = kit.run(lines(schema("types", TYPES)) + FULL_ROW + NULL_ROW + lines(state({"n": 2})))
    assert result.rc == 0, result.stderr
    assert result.states == [{"n": 2}]
    rows = {r["id"]: r for r in dest.rows("types") or []}
    full, empty = rows[1], rows[2]
    assert full["big"] == -9223372036854775808
    assert full["dec"] == Decimal("1234567890123456789012345678.0123456789")
    assert full["money"] == Decimal("999999999.99")
    assert full["f"] == 0.30000000000000004 and full["f32"] == 1.5 and full["ok"] is True
    assert full["s"] == 'café "quoted" \n tab\t ✓'
    assert full["ts"].replace(tzinfo=dt.UTC) == dt.datetime(2024, 2, 29, 18, 29, 59, 123456, tzinfo=dt.UTC)
    assert full["d"] == dt.date(1, 1, 1) and full["t"] == "23:59:59.5"
    assert full["u"] == uuid.UUID("0b6c3b3e-8f4e-4c3a-9a55-7d2f7a3c1e10")
    assert full["o"] == '{"a":[1,{"b":null}],"c":"x"}'
    assert full["tags"] == ["a", "", "b"] and full["nums"] == [1, None, 3]
    assert full["mixed"] == '[1,"two",{"three":3}]'
    assert all(empty[k] is None for k in ("big", "dec", "money", "f", "ok", "s", "ts", "d", "u", "o"))
    assert empty["tags"] == [] and empty["nums"] == []  # ClickHouse has no Nullable(Array)
    declared = dict(dest.query("SELECT name, type FROM system.columns WHERE database = 'dw' AND table = 'types'"))
    assert declared["id"] == "Int64" and declared["dec"] == "Nullable(Decimal(38, 10))"
    assert declared["money"] == "Nullable(Decimal(12, 2))" and declared["f32"] == "Nullable(Float32)"
    assert declared["ts"] == "Nullable(DateTime64(6, 'UTC'))" and declared["d"] == "Nullable(Date32)"
    assert declared["tags"] == "Array(String)" and declared["nums"] == "Array(Nullable(Int64))"


def test_json_columns_and_low_cardinality(kit: TargetKit, dest: ClickHouseDest) -> None:
    props = {"id": {"type": "integer"}, "o": {"type": ["null", "object"]}, "c": {"type": ["null", "string"]}}
    data = lines(schema("j", props), record("j", {"id": 1, "o": {"k": [1, 2], "n": {"x": "y"}}, "c": "DE"}))
    layout = {"j": {"low_cardinality": ["c"], "partition_by": "id % 4", "ttl": "toDateTime(id) + INTERVAL 200 YEAR"}}
    assert kit.run(data, object_columns="json", tables=layout).rc == 0
    create = dest.query("SELECT create_table_query FROM system.tables WHERE database = 'dw' AND name = 'j'")[0][0]
    assert "`c` LowCardinality(Nullable(String))" in create and "`o` JSON" in create
    assert "PARTITION BY id % 4" in create and "TTL toDateTime(id) + toIntervalYear(200)" in create
    assert dest.query("SELECT o.n.x, c FROM dw.j") == [("y", "DE")]


@pytest.mark.parametrize(
    ("prop", "value", "says"),
    [
        ({"type": ["null", "integer"]}, b"9223372036854775808", "not an integer that fits Int64"),
        ({"type": ["null", "integer"]}, b"4.5", "not an integer"),
        ({"type": ["null", "number"], "multipleOf": 0.01, "maximum": 100}, b"1.239", "more digits than Decimal(5, 2)"),
        ({"type": ["null", "number"], "multipleOf": 0.01, "maximum": 100}, b"1000.5", "more digits than Decimal(5, 2)"),
        ({"type": ["null", "number"]}, b"12345678901234567890.5", "a Float64 would not give back"),
        ({"type": ["null", "number"]}, b"1e400", "a Float64 would not give back"),
        ({"type": ["null", "number"]}, b"-1e-400", "a Float64 would not give back"),
        ({"type": ["null", "number"], "format": "double"}, b"1e400", "not a number a Float64 holds"),
        ({"type": ["null", "string"], "format": "uuid"}, b'"nope"', "uuid"),
        ({"type": ["null", "string"], "format": "date"}, b'"2024-02-30"', "not a date"),
        ({"type": ["null", "boolean"]}, b'"yes"', "boolean"),
        ({"type": ["null", "string"], "format": "date-time"}, b'"noon"', "not an ISO 8601 date-time"),
        ({"type": ["null", "string"], "format": "date-time"}, b'"2025-01-01T12:61:00Z"', "not an ISO 8601 date-time"),
        ({"type": ["null", "string"], "format": "date-time"}, b'"2025-01-01T25:00:00Z"', "not an ISO 8601 date-time"),
        ({"type": ["null", "string"], "format": "date-time"}, b'"2025-01-01T12:00:00+25:00"', "not an ISO 8601"),
        ({"type": ["null", "string"], "format": "date-time"}, b'"01/02/2025 10:00"', "not an ISO 8601 date-time"),
        ({"type": ["null", "string"], "format": "date-time"}, b'"2023-02-29T00:00:00Z"', "not an ISO 8601 date-time"),
        ({"type": ["null", "string"], "format": "date-time"}, b'"2024-01-01T00:00:00.1234567Z"', "to the microsecond"),
        ({"type": ["null", "string"]}, b'"\xff\xfe"', "not UTF-8 text"),
    ],
)
def test_a_value_clickhouse_would_change_stops_its_batch(
    kit: TargetKit, dest: ClickHouseDest, prop: dict[str, Any], value: bytes, says: str
) -> None:
    head = lines(schema("v", {"id": {"type": "integer"}, "x": prop}), record("v", {"id": 1}), state({"n": 1}))
    bad = b'{"type":"RECORD","stream":"v","record":{"id":2,"x":' + value + b"}}\n"
    result = kit.run(head + bad + lines(state({"n": 2})), batch_size_rows=1)
    assert result.rc == 65, result.stderr
    line = error(result)
    assert line.startswith("target-clickhouse: data error: stream 'v', record 1 of the batch (id=2)"), line
    assert "column 'x'" in line and says in line, line
    assert result.states == [{"n": 1}]
    assert [r["id"] for r in dest.rows("v") or []] == [1]
    # Read from a file (as a process reads its stdin), in blocks: the record is named by its input line.
    kit.stdin_file = True
    result = kit.run(head + bad + lines(state({"n": 2})), batch_size_rows=1)
    assert error(result).startswith("target-clickhouse: data error: line 4, stream 'v' (id=2), column 'x'"), error(
        result
    )
    assert result.states == [{"n": 1}]


def test_an_integer_with_a_zero_fraction_is_an_integer(kit: TargetKit, dest: ClickHouseDest) -> None:
    data = lines(schema("i", {"id": {"type": "integer"}, "n": {"type": ["null", "integer"]}}))
    data += b'{"type":"RECORD","stream":"i","record":{"id":1,"n":3.0}}\n'
    data += b'{"type":"RECORD","stream":"i","record":{"id":2,"n":0.00}}\n'
    assert kit.run(data).rc == 0
    assert sorted((r["id"], r["n"]) for r in dest.rows("i") or []) == [(1, 3), (2, 0)]


def test_the_dsn_names_the_database_and_the_plan_shows_nullable_columns(tmp_path: Path) -> None:
    config = apply_settings(ClickHouseTarget.all_settings(), {"dsn": "clickhouse://u:p@h:8123/warehouse"}, "t")
    assert database_of(config) == "warehouse"
    dest = ClickHouseDest(tmp_path / "plan")
    message = schema("p", {"id": {"type": "integer"}, "z": {"type": "string"}})
    kit = TargetKit(ClickHouseTarget, dest.config(), dest.rows, dest.tables, tmp_path)
    argv = ["--config", str(kit._configs.write(kit.settings(), "t")), "--schema-plan", "--format", "json"]
    out = io.BytesIO()
    assert run_cli(ClickHouseTarget, argv, stdin=iter([lines(message)]), stdout=out, stderr=io.StringIO()) == 0
    assert b'"z": "Nullable(String)"' in out.getvalue()


def test_a_number_a_float_gives_back_is_taken_in_any_spelling(kit: TargetKit, dest: ClickHouseDest) -> None:
    values = [b"0.1", b"1e300", b"-2.5E-7", b"1.2345678901234567e+300", b"123456789012345.6", b"0.30000000000000004"]
    data = lines(schema("n", {"id": {"type": "integer"}, "x": {"type": ["null", "number"]}}))
    data += b"".join(
        b'{"type":"RECORD","stream":"n","record":{"id":%d,"x":%s}}\n' % (i, v) for i, v in enumerate(values)
    )
    result = kit.run(data)
    assert result.rc == 0, result.stderr
    got = [r["x"] for r in sorted(dest.rows("n") or [], key=lambda r: r["id"])]
    assert got == [float(v) for v in values]


@pytest.mark.parametrize(
    ("line", "says"),
    [
        # Two records on one line: ClickHouse's reader would take both, the second into the first's stream.
        (
            b'{"type":"RECORD","stream":"m","record":{"id":1}}{"type":"RECORD","stream":"other","record":{"id":2}}\n',
            "malformed JSON",
        ),
        (b'{"type":"RECORD","stream":"m","record":{"id":1,"s":"\\x41"}}\n', "a backslash escape JSON does not have"),
    ],
)
def test_a_malformed_record_line_stops_the_load(kit: TargetKit, dest: ClickHouseDest, line: bytes, says: str) -> None:
    props = {"id": {"type": "integer"}, "s": {"type": ["null", "string"]}}
    data = lines(schema("m", props), schema("other", props)) + line + lines(state({"n": 1}))
    for stdin_file in (False, True):
        kit.stdin_file = stdin_file
        result = kit.run(data)
        assert result.rc == 65, result.stderr
        assert says in error(result), error(result)
        assert result.states == []
        assert not dest.rows("m") and not dest.rows("other")


def test_a_required_property_missing_stops_with_its_name(kit: TargetKit) -> None:
    message = schema("r", {"id": {"type": "integer"}, "m": {"type": "integer"}}, keys=())
    message["schema"]["required"] = ["m"]
    result = kit.run(lines(message, record("r", {"id": 1})))
    assert result.rc == 65
    assert "column 'm': null (no value (null or missing) for a column that takes none)" in error(result)


def test_upsert_is_a_replacing_merge_tree_read_with_final(kit: TargetKit, dest: ClickHouseDest) -> None:
    props = {"id": {"type": "integer"}, "v": {"type": ["null", "string"]}}
    assert (
        kit.run(lines(schema("u", props), record("u", {"id": 1, "v": "a"}), record("u", {"id": 2, "v": "b"}))).rc == 0
    )
    second = lines(
        schema("u", props),
        record("u", {"id": 1, "v": "old"}),
        record("u", {"id": 1, "v": "new"}),
        record("u", {"id": 2, "v": "b", "_sdc_deleted_at": "2024-01-01T00:00:00Z"}),
    )
    assert kit.run(second, hard_delete=True).rc == 0
    assert "ReplacingMergeTree" in str(dest.engine("u"))
    assert [(r["id"], r["v"]) for r in dest.rows("u") or []] == [(1, "new")]
    every = dest.rows("u", final=False, internal=True) or []
    assert len(every) >= 2  # the old versions stay until a merge; FINAL hides them
    newest = max(every, key=lambda r: r["_dpone_version"])
    assert (newest["id"], newest["v"]) == (2, "b") and newest["_dpone_is_deleted"] == 1


def test_soft_deletes_keep_the_row_marked(kit: TargetKit, dest: ClickHouseDest) -> None:
    props = {"id": {"type": "integer"}}
    data = lines(schema("s", props), record("s", {"id": 1}), record("s", {"id": 1, "_sdc_deleted_at": "2024-01-01"}))
    assert kit.run(data).rc == 0
    (row,) = dest.rows("s") or []
    assert row["_sdc_deleted_at"] is not None


def test_overwrite_exchanges_tables(kit: TargetKit, dest: ClickHouseDest) -> None:
    props = {"id": {"type": "integer"}}
    assert kit.run(lines(schema("o", props), *[record("o", {"id": i}) for i in range(5)])).rc == 0
    refresh = lines(
        schema("o", props),
        record("o", {"id": 10}, version=7),
        {"type": "ACTIVATE_VERSION", "stream": "o", "version": 7},
    )
    assert kit.run(refresh, load_method="overwrite").rc == 0
    assert [r["id"] for r in dest.rows("o") or []] == [10]
    assert dest.tables() == {"o"}  # the old rows left with the shadow, which is dropped


def test_activate_version_deletes_older_rows(kit: TargetKit, dest: ClickHouseDest) -> None:
    props = {"id": {"type": "integer"}}
    first = lines(schema("a", props), record("a", {"id": 1}, version=1), record("a", {"id": 2}, version=1))
    assert kit.run(first, load_method="append-only").rc == 0
    second = lines(
        schema("a", props), record("a", {"id": 3}, version=2), {"type": "ACTIVATE_VERSION", "stream": "a", "version": 2}
    )
    assert kit.run(second, load_method="append-only", hard_delete=True).rc == 0
    assert [r["id"] for r in dest.rows("a") or []] == [3]


def test_existing_narrower_columns_are_widened(kit: TargetKit, dest: ClickHouseDest) -> None:
    assert kit.run(lines(schema("w", {"id": {"type": "integer"}}), record("w", {"id": 1}))).rc == 0
    with dest.client() as client:
        client.command("ALTER TABLE dw.w ADD COLUMN n Int32, ADD COLUMN m Decimal(6, 2), ADD COLUMN r Float32")
    props = {
        "id": {"type": "integer"},
        "n": {"type": "integer"},
        "m": {"type": "number", "multipleOf": 0.0001, "maximum": 1e10},
        "r": {"type": ["null", "number"], "format": "double"},
    }
    data = lines(schema("w", props), record("w", {"id": 2, "n": 2**40, "m": 123456789.1234, "r": 0.1}))
    result = kit.run(data)
    assert result.rc == 0, result.stderr
    declared = dict(dest.query("SELECT name, type FROM system.columns WHERE database = 'dw' AND table = 'w'"))
    # Not `required` in the stream: the widened columns take NULL too.
    assert declared["n"] == "Nullable(Int64)" and declared["m"] == "Nullable(Decimal(15, 4))"
    assert declared["r"] == "Nullable(Float64)"
    assert dest.query("SELECT n, m FROM dw.w FINAL WHERE id = 2") == [(2**40, Decimal("123456789.1234"))]


def test_a_retried_batch_is_not_inserted_twice(dest: ClickHouseDest) -> None:
    loader = ClickHouseLoader(dest.config(load_method="append-only"))
    try:
        columns = stream_columns({"properties": {"id": {"type": "integer"}}}, "r")
        plan = StreamPlan("r", "r", columns, [], "append-only", table_columns={"id": "Int64"})
        loader.run(loader._create(plan, "r", {"id": "Int64"}), "create")
        batch = LineBatch("r", BatchPolicy())
        batch.append(b'{"type":"RECORD","stream":"r","record":{"id":1}}\n')
        rows = EncodedRows(batch.take(), 1, False)
        for _ in range(2):  # the acknowledgement of the first was lost: the same batch again
            staging = loader.prepare_staging(plan)
            loader.bulk_load_encoded(plan, staging, rows)
            loader.finalize(plan, staging, "r", [])
            loader.cleanup(plan, staging)
        assert loader.run("SELECT count() FROM dw.r", "").fetchone() == (1,)
    finally:
        loader.close()


def test_the_router_leaves_a_record_without_its_key_to_the_decoder() -> None:
    router, batch = LineRouter(), LineBatch("s", BatchPolicy(), ("id",))
    router.register("s", batch)
    assert router.feed(b'{"type":"RECORD","stream":"s","record":{"id":1}}\n') == ADDED
    assert router.feed(b'{"type":"RECORD","stream":"s","record":{"name":"x"}}\n') == NOT_HANDLED
    assert router.feed(b'{"type":"RECORD","stream":"s","record":{"id":null}}\n') == NOT_HANDLED
    assert router.feed(b'{"type":"RECORD","stream":"other","record":{"id":1}}\n') == NOT_HANDLED
    assert batch.rows == 1


def test_connection_refused_is_transient_and_redacted(kit: TargetKit) -> None:
    data = lines(schema("c", {"id": {"type": "integer"}}), record("c", {"id": 1}))
    result = kit.run(data, dsn="clickhouse://default:s3cr3t-pw@127.0.0.1:1/dw", max_retries=0)
    assert result.rc == 75, result.stderr
    assert "s3cr3t-pw" not in result.stderr
    assert "connecting to ClickHouse" in result.stderr


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"tables": {"c": {"order": "id"}}}, "unknown keys ['order']"),
        ({"dsn": "clickhouse://127.0.0.1:notaport/db"}, "the port must be a number"),
        ({"dsn": "http://u:s3cr3t-pw@127.0.0.1:1/?password=other&database=x"}, "setting 'dsn'"),
        ({"staging_dir": "/nonexistent/dir"}, "is not a directory"),
    ],
)
def test_a_bad_setting_is_a_config_error(kit: TargetKit, settings: dict[str, Any], says: str) -> None:
    data = lines(schema("c", {"id": {"type": "integer"}}), record("c", {"id": 1}))
    result = kit.run(data, **settings)
    assert result.rc == 78, result.stderr
    assert says in error(result) and "s3cr3t-pw" not in result.stderr


def test_an_https_dsn_asks_for_tls() -> None:
    assert client_options({"dsn": "https://u:p@db.example:8123/raw"})["interface"] == "https"
    assert client_options({"dsn": "clickhouses://u:p@db.example/raw"})["interface"] == "https"
    assert client_options({"dsn": "http://u:p@db.example:8443/raw"})["interface"] == "http"
    assert "interface" not in client_options({"dsn": "clickhouse://u:p@db.example:8443/raw"})


def test_the_docs_settings_table_lists_every_setting() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "connectors" / "target-clickhouse.md").read_text()
    section = doc.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("`")[1] for line in section.splitlines() if line.startswith("| `")]
    settings = [s.name for s in ClickHouseTarget.all_settings()]
    assert [name for name in rows if name in settings] == settings


def test_a_record_in_another_layout_is_named_by_its_line(kit: TargetKit) -> None:
    """Lines the framework decodes (spaces, another key order) keep their input line too."""
    head = lines(schema("v", {"id": {"type": "integer"}, "n": {"type": ["null", "integer"]}}))
    spaced = b'{"type": "RECORD", "stream": "v", "record": {"id": 1, "n": 1}}\n'
    reordered = b'{"stream":"v","type":"RECORD","record":{"id":2,"n":9223372036854775808}}\n'
    for stdin_file in (False, True):
        kit.stdin_file = stdin_file
        result = kit.run(head + spaced + reordered)
        assert error(result).startswith("target-clickhouse: data error: line 3, stream 'v' (id=2), column 'n'"), error(
            result
        )


def test_a_refused_connection_whose_query_id_holds_403_is_still_transient() -> None:
    from dpone_drivers.clickhouse import classify
    from dpone_protocol.config import Redactor
    from dpone_protocol.errors import TransientError

    class OperationalError(Exception):
        pass

    refused = OperationalError("Max retries exceeded with url: /?query_id=af93b4f5-1e60-4033-b72e (Connection refused)")
    assert isinstance(classify(refused, Redactor(), "connecting"), TransientError)
