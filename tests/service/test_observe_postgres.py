"""Lineage and metrics of a real tap-postgres into target-postgres run (the session's PostgreSQL
server): datasets named `postgres://host:port` and `database.schema.table` from the connectors'
addressing settings, the columns of the source table in the schema facets, and the password of
the configs nowhere in what is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.service.conftest import PostgresServer

pytestmark = pytest.mark.service

DPONE = str(Path(sys.executable).parent / "dpone")
SECRET = "Observe-PG-pw-4410"  # the session server trusts every login: a password it never checks


def test_a_postgres_run_is_named_by_its_tables(postgres_server: PostgresServer, tmp_path: Path) -> None:
    schema = f"obs_{uuid.uuid4().hex[:8]}"
    dsn = f"postgresql://{postgres_server.user}@{postgres_server.host}:{postgres_server.port}/postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")  # type: ignore[arg-type]
        conn.execute(
            f"CREATE TABLE {schema}.items (id integer PRIMARY KEY, name text NOT NULL, "  # type: ignore[arg-type]
            "price numeric(10,2), created timestamptz)"
        )
        conn.execute(f"INSERT INTO {schema}.items SELECT n, 'item ' || n, n * 1.5, now() FROM generate_series(1, 5) n")  # type: ignore[arg-type]
    connection = {**postgres_server.config("postgres"), "password": SECRET}
    password = [{"name": "password", "kind": "password"}]
    plugins = {
        "extractors": [
            {
                "name": "tap-postgres",
                "settings": password,
                "config": {**connection, "include": [f"{schema}.items"]},
                "select": [f"{schema}-items.*"],
            }
        ],
        "loaders": [
            {
                "name": "target-postgres",
                "settings": password,
                "config": {**connection, "default_target_schema": f"{schema}_copy"},
            }
        ],
    }
    (tmp_path / "meltano.yml").write_text(yaml.safe_dump({"version": 1, "plugins": plugins}))
    settings = {"env": "ci", "metrics": {"prometheus_textfile_dir": "metrics"}, "lineage": {"file": "lineage.jsonl"}}
    (tmp_path / "dpone.yml").write_text(yaml.safe_dump(settings))
    try:
        proc = subprocess.run(
            [DPONE, "run", "tap-postgres", "target-postgres", "--project", str(tmp_path), "--no-progress"],
            capture_output=True,
            text=True,
            env={**os.environ, "DPONE_LOG_LEVEL": "WARNING"},
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        start, end = [json.loads(line) for line in (tmp_path / "lineage.jsonl").read_text().splitlines()]
        assert (start["eventType"], end["eventType"]) == ("START", "COMPLETE")
        server = f"postgres://{postgres_server.host}:{postgres_server.port}"
        (read,) = end["inputs"]
        assert (read["namespace"], read["name"]) == (server, f"postgres.{schema}.items")
        assert read["inputFacets"]["inputStatistics"]["rowCount"] == 5
        columns = {f["name"]: f["type"] for f in read["facets"]["schema"]["fields"]}
        assert columns["id"] == "integer" and columns["name"] == "string"
        assert columns["created"] == "string(date-time)"
        (written,) = end["outputs"]
        assert (written["namespace"], written["name"]) == (server, f"postgres.{schema}_copy.{schema}_items")
        assert written["outputFacets"]["outputStatistics"]["rowCount"] == 5
        with psycopg.connect(dsn) as conn:
            count = conn.execute(f"SELECT count(*) FROM {schema}_copy.{schema}_items").fetchone()  # type: ignore[arg-type]
        assert count == (5,)  # the dataset named is the table the rows went into
        prom = (tmp_path / "metrics" / "dpone_tap-postgres-to-target-postgres.prom").read_text()
        rows = {
            s.labels["stream"]: s.value
            for family in text_string_to_metric_families(prom)
            for s in family.samples
            if s.name == "dpone_stream_rows_out"
        }
        assert rows == {f"{schema}-items": 5}
        for text in (prom, (tmp_path / "lineage.jsonl").read_text(), proc.stdout, proc.stderr):
            assert SECRET not in text
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")  # type: ignore[arg-type]
            conn.execute(f"DROP SCHEMA IF EXISTS {schema}_copy CASCADE")  # type: ignore[arg-type]
