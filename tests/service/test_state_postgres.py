"""The state store contract against a real PostgreSQL, each test in a schema of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from dpone.state.postgres_store import PostgresStore
from dpone.state.store import LockedError, LockInfo, open_store
from dpone_protocol.errors import EXIT_CODES, ErrorKind, TransientError, describe
from tests.unit.test_partition_manifest import ManifestBehaviour
from tests.unit.test_state_stores import Opener, StoreBehaviour

pytestmark = pytest.mark.service

UNREACHABLE = "postgresql://postgres:s3cretpw@127.0.0.1:1/postgres"


@pytest.fixture
def schema(postgres_server) -> Iterator[str]:
    name = f"dpone_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _tables_in(dsn: str, schema: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))
        return {r[0] for r in rows}


class TestPostgresStore(StoreBehaviour):
    @pytest.fixture
    def open_store_here(self, postgres_server, schema: str) -> Opener:
        return lambda: PostgresStore(postgres_server.dsn, schema=schema)

    def test_creates_its_tables_in_the_schema(self, store: PostgresStore, postgres_server, schema: str):
        assert _tables_in(postgres_server.dsn, schema) == {
            "dpone_state",
            "dpone_locks",
            "dpone_runs",
            "dpone_partitions",
        }

    def test_values_are_jsonb(self, store: PostgresStore, postgres_server, schema: str):
        store.put("p1", {"bookmarks": {"s": {"xmin": 3}}})
        with psycopg.connect(postgres_server.dsn) as conn:
            row = conn.execute(
                f"SELECT value -> 'bookmarks' -> 's' ->> 'xmin' FROM \"{schema}\".dpone_state"
            ).fetchone()
        assert row == ("3",)

    def test_reconnects_after_the_connection_drops(self, store: PostgresStore):
        store.put("p1", {"v": 1})
        assert store._conn is not None
        store._conn.close()
        assert store.get("p1").value == {"v": 1}

    def test_conflict_leaves_the_lock_of_the_holder(self, store: PostgresStore):
        holder = LockInfo("p1", "run-1", 1, "elsewhere.invalid", "2024-01-01T00:00:00.000+00:00")
        store.acquire_lock(holder)
        with pytest.raises(LockedError, match="run-1"):
            store.acquire_lock(LockInfo("p1", "run-2", 2, "elsewhere.invalid", "2024-01-01T00:00:01.000+00:00"))
        assert store.get_lock("p1") == holder


def test_schema_from_the_dsn_query(postgres_server, schema: str):
    store = open_store(f"{postgres_server.dsn}?schema={schema}&application_name=dpone-test")
    try:
        assert isinstance(store, PostgresStore)
        assert store.schema == schema
        store.put("p1", {"v": 1})
    finally:
        store.close()
    assert _tables_in(postgres_server.dsn, schema) == {"dpone_state", "dpone_locks", "dpone_runs", "dpone_partitions"}


def test_unreachable_server_is_transient_and_hides_the_password():
    with pytest.raises(TransientError) as caught:
        PostgresStore(UNREACHABLE)
    error = caught.value
    assert error.exit_code == EXIT_CODES[ErrorKind.TRANSIENT]
    for text in (str(error), repr(error), describe(error)):
        assert "s3cretpw" not in text
    assert "127.0.0.1" in str(error)
    assert "***" in str(error)
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_open_store_with_a_bad_password_dsn_hides_it():
    with pytest.raises(TransientError) as caught:
        open_store(UNREACHABLE + "?schema=x")
    assert "s3cretpw" not in str(caught.value)


class TestPostgresManifest(ManifestBehaviour):
    @pytest.fixture
    def open_store_here(self, postgres_server, schema: str) -> Opener:
        return lambda: PostgresStore(postgres_server.dsn, schema=schema)
