"""A database whose encoding is not UTF-8: dpone speaks UTF-8 to it, and the server converts.

The target's COPY rows are UTF-8 bytes straight from the input, and the tap frames the server's
JSON text as is: both ask for client_encoding UTF8, so a LATIN1 database stores and returns the
same characters, and a character LATIN1 has no room for is a clear data error, not mojibake.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import psycopg
import pytest

from dpone.taps.postgres.tap import PostgresTap
from dpone.targets.postgres.target import PostgresTarget
from tests.conftest import lines, record, schema, state

pytestmark = pytest.mark.service

PROPS = {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}, "doc": {"type": ["object", "null"]}}
LATIN1_TEXT = "café Müller ß naïve ¿ñ?"


@pytest.fixture
def latin1(postgres_server: Any) -> Iterator[dict[str, Any]]:
    name = f"latin1_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(
            f"CREATE DATABASE {name} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"  # type: ignore[arg-type]
        )
    try:
        yield postgres_server.config(name)
    finally:
        with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[arg-type]


def utf8_rows(config: dict[str, Any], sql: str) -> list[tuple[Any, ...]]:
    conninfo = {k: v for k, v in config.items() if k != "database"} | {"dbname": config["database"]}
    with psycopg.connect(**conninfo, client_encoding="UTF8") as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


@pytest.mark.parametrize("pure", [False, True], ids=["encoder", "pure-python"])
def test_target_stores_the_same_characters_in_a_latin1_database(
    run_target: Any, latin1: dict[str, Any], monkeypatch: pytest.MonkeyPatch, pure: bool
) -> None:
    if pure:
        monkeypatch.setenv("DPONE_PURE_PYTHON", "1")
    data = lines(
        schema("people", PROPS),
        record("people", {"id": 1, "name": LATIN1_TEXT, "doc": {"k": "é"}}),
        record("people", {"id": 2, "name": "plain"}),
        state({"n": 2}),
    )
    result = run_target(PostgresTarget, latin1, data)
    assert result.rc == 0, result.stderr
    assert result.states == [{"n": 2}]
    assert utf8_rows(latin1, "SELECT id, name, doc->>'k' FROM people ORDER BY id") == [
        (1, LATIN1_TEXT, "é"),
        (2, "plain", None),
    ]


def test_a_character_latin1_cannot_hold_is_a_data_error(run_target: Any, latin1: dict[str, Any]) -> None:
    data = lines(
        schema("people", PROPS),
        record("people", {"id": 1, "name": "ok"}),
        state({"n": 1}),
        record("people", {"id": 2, "name": "price in € 😀"}),
        state({"n": 2}),
    )
    result = run_target(PostgresTarget, latin1, data)
    assert result.rc == 65, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("target-postgres: data error: stream 'people': COPY into "), last
    assert "character with byte" in last
    assert 'has no equivalent in encoding "LATIN1"' in last
    assert {"n": 2} not in result.states


def test_tap_reads_a_latin1_database_as_utf8_json(run_tap: Any, run_target: Any, latin1: dict[str, Any]) -> None:
    data = lines(schema("people", PROPS), record("people", {"id": 1, "name": LATIN1_TEXT, "doc": {"k": "é"}}))
    assert run_target(PostgresTarget, latin1, data).rc == 0
    result = run_tap(PostgresTap, {**latin1, "include": ["public.people"]})
    assert result.rc == 0, result.stderr
    records = [m["record"] for m in result.messages if m["type"] == "RECORD"]
    assert [(r["id"], r["name"], r["doc"]) for r in records] == [(1, LATIN1_TEXT, {"k": "é"})]
    orjson.loads(result.stdout.splitlines()[-1])  # every line is valid UTF-8 JSON
