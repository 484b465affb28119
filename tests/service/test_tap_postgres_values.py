"""Values that used to change on the way out of tap-postgres: a float's -0, multi-dimensional arrays,
and json/jsonb JSON null (which cannot be told from SQL NULL in a record: the loss is logged, counted).

Each is checked in the snapshot (RECORD and BATCH output), in LOG_BASED changes, and, where the value
survives, through target-postgres.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone.targets.postgres.target import PostgresTarget
from tests.service.test_tap_postgres import ok, q, records
from tests.service.test_tap_postgres_cdc import Cdc

pytestmark = pytest.mark.service
SOURCE = Cdc  # the `src` fixture (tests/service/conftest.py) makes one

DDL = (
    "CREATE TABLE v (id int PRIMARY KEY, r real, d double precision, ra real[], t text[], n numeric[], "
    "b bytea[], i int[], j jsonb, js json)"
)
ROWS = (
    "INSERT INTO v VALUES "
    "(1, '-0', '-0', '{{-0,1.5},{NaN,2}}', '{{a,b},{c,d}}', '{{1.10,2},{NULL,3}}', "
    """'{{"\\\\x00ff"},{NULL}}', '{{{1}},{{2}}}', 'null', 'null'), """
    "(2, 0, 1.5, '{0}', '{a,NULL}', '{}', '{}', '{1,2}', NULL, NULL), "
    """(3, NULL, NULL, NULL, '{{"x,y","{}"}}', NULL, NULL, NULL, '{"k": null}', '[null]')"""
)
EXPECTED: dict[int, dict[str, Any]] = {
    1: {
        "r": -0.0,
        "d": -0.0,
        "ra": [[-0.0, 1.5], ["NaN", 2.0]],
        "t": [["a", "b"], ["c", "d"]],
        "n": [["1.10", "2"], [None, "3"]],
        "b": [["AP8="], [None]],
        "i": [[[1]], [[2]]],
        "j": None,
        "js": None,
    },
    2: {"r": 0.0, "d": 1.5, "ra": [0.0], "t": ["a", None], "n": [], "b": [], "i": [1, 2], "j": None, "js": None},
    3: {"r": None, "d": None, "ra": None, "t": [["x,y", "{}"]], "n": None, "b": None, "i": None},
}


def check(rows: list[dict[str, Any]], raw: bytes) -> None:
    by_id = {r["id"]: r for r in rows}
    for key, expected in EXPECTED.items():
        for column, value in expected.items():
            assert by_id[key][column] == value, (key, column, by_id[key][column])
    assert by_id[3]["j"] == {"k": None} and by_id[3]["js"] == [None]
    # Negative zero stays a float on the wire (`-0` would be read as the integer 0).
    assert b'"r":-0.0,"d":-0.0' in raw and b"[[-0.0,1.5]" in raw
    for value in (by_id[1]["r"], by_id[1]["d"], by_id[1]["ra"][0][0]):
        assert str(value) == "-0.0"


def test_snapshot_values(src: Cdc) -> None:
    src.sql(DDL, ROWS)
    run = ok(src.sync(src.catalog("v")))
    check(records(run), run.stdout)
    assert f"stream {src.stream('v')}: 1 rows held JSON null in a json/jsonb column" in run.stderr
    schema = run.of_type("SCHEMA")[0]["schema"]["properties"]["t"]
    assert schema["items"]["anyOf"][0] == {"type": ["string", "null"]}
    assert schema["items"]["anyOf"][1]["type"] == "array"


def test_batch_range_reads_values(src: Cdc, tmp_path: Path) -> None:
    src.sql(DDL, ROWS)
    batch = {"encoding": {"format": "jsonl", "compression": "gzip"}, "storage": {"root": (tmp_path / "b").as_uri()}}
    run = ok(src.sync(src.catalog("v"), batch_config=batch, batch_read_connections=2))
    lines = b"".join(gzip.decompress(p.read_bytes()) for p in sorted((tmp_path / "b").rglob("*.jsonl.gz")))
    check([orjson.loads(line) for line in lines.splitlines()], lines)
    assert "1 rows held JSON null" in run.stderr


def test_change_values(src: Cdc) -> None:
    src.sql(DDL)
    catalog = src.log_catalog("v")
    first = ok(src.sync(catalog))
    src.spacer()
    src.sql(ROWS)
    second = ok(src.sync(catalog, first.states[-1]))
    check(records(second), second.stdout)
    assert "2 json/jsonb values were JSON null" in second.stderr


def test_round_trip_into_target_postgres_keeps_negative_zero_and_dimensions(src: Cdc, run_target: Any) -> None:
    src.sql(DDL, ROWS)
    tapped = ok(src.sync(src.catalog("v")))
    dest = f"{src.schema}_dest"
    config = {k: v for k, v in src.config().items() if k not in ("include", "replication_slot")}
    config = {**config, "default_target_schema": dest, "table_name_map": {src.stream("v"): "v"}}
    loaded = run_target(PostgresTarget, config, tapped.stdout)
    assert loaded.rc == 0, loaded.stderr
    differing = src.rows(
        f"SELECT s.id FROM v s JOIN {q(dest)}.v d USING (id) WHERE "
        "s.r::text IS DISTINCT FROM d.r::real::text OR s.d::text IS DISTINCT FROM d.d::text "
        "OR to_jsonb(s.t) IS DISTINCT FROM d.t OR to_jsonb(s.i) IS DISTINCT FROM d.i "
        "OR to_jsonb(s.n::text[]) IS DISTINCT FROM d.n"
    )
    assert differing == []
    assert src.rows(f"SELECT d::text, r::text FROM {q(dest)}.v WHERE id = 1") == [("-0", "-0")]
