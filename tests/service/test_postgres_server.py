"""The PostgreSQL fixture gives a real, logical-replication-ready server."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.service


def test_server_answers_and_supports_logical_decoding(postgres_server):
    import psycopg

    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        assert conn.execute("SELECT current_setting('wal_level')").fetchone()[0] == "logical"
        conn.execute("CREATE TABLE IF NOT EXISTS t (id int primary key)")
        conn.execute("SELECT pg_create_logical_replication_slot('dpone_fixture_probe', 'test_decoding')")
        conn.execute("INSERT INTO t VALUES (1)")
        changes = conn.execute(
            "SELECT data FROM pg_logical_slot_get_changes('dpone_fixture_probe', NULL, NULL)"
        ).fetchall()
        conn.execute("SELECT pg_drop_replication_slot('dpone_fixture_probe')")
    assert any("INSERT" in row[0] for row in changes)
