"""target-postgres under faults, run as the installed executable on 200k rows.

The server side kills the loading session in the middle of a COPY (pg_terminate_backend):
without retries the run fails and the table and state are as before the batch; with retries
the target reconnects and loads the batch again, every row exactly once. A target SIGKILLed
mid-run leaves only whole committed batches, and its last echoed state is covered by them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from dpone.targets.postgres.target import PostgresTarget
from tests.conftest import lines, record, schema

pytestmark = pytest.mark.service

EXE = Path(sys.executable).parent / "target-postgres"
APPLICATION_NAME = "dpone-target-postgres"  # what the target tells the server it is
ROWS = 200_000
STATE_EVERY = 1_000
PROPS = {
    "id": {"type": "integer"},
    "name": {"type": "string"},
    "amount": {"type": "number"},
    "note": {"type": ["string", "null"]},
}
FINAL_STATE = {"upto": ROWS}


@pytest.fixture(scope="module")
def big_input(tmp_path_factory) -> Path:
    """SCHEMA, 200k RECORDs with a STATE every 1000, like a tap would write them."""
    path = tmp_path_factory.mktemp("faults") / "events.singer"
    head = orjson.dumps(schema("events", PROPS, keys=())) + b"\n"
    with path.open("wb") as fh:
        fh.write(head)
        for i in range(1, ROWS + 1):
            rec = {"id": i, "name": f"event number {i}", "amount": i * 1.25, "note": "x" * (i % 40) or None}
            fh.write(b'{"type":"RECORD","stream":"events","record":' + orjson.dumps(rec) + b"}\n")
            if i % STATE_EVERY == 0:
                fh.write(b'{"type":"STATE","value":{"upto":%d}}\n' % i)
    return path


@pytest.fixture(scope="module")
def keyed_input(big_input: Path) -> Path:
    """The same stream with `id` as its key: loaded as upserts, whose batches go ahead by disjoint keys."""
    path = big_input.with_name("keyed.singer")
    with big_input.open("rb") as src, path.open("wb") as out:
        src.readline()
        out.write(orjson.dumps(schema("events", PROPS, keys=["id"])) + b"\n")
        shutil.copyfileobj(src, out)
    return path


@dataclass
class Place:
    """A schema and a table of this test's own, in a database of the shared server."""

    server: Any
    database: str
    schema: str
    table: str

    @property
    def dsn(self) -> str:
        return self.server.dsn.rsplit("/", 1)[0] + f"/{self.database}"

    def config(self, **extra: Any) -> dict[str, Any]:
        return {
            **self.server.config(self.database),
            "default_target_schema": self.schema,
            "table_name_map": {"events": self.table},
            "load_method": "append-only",  # no key: a row loaded twice would show
            "batch_size_bytes": 1 << 30,
            **extra,
        }

    def scalar(self, sql: str, params: Any = None) -> Any:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{self.schema}"')
            row = conn.execute(sql, params).fetchone()
            assert row is not None
            return row[0]

    def copy_query(self) -> str:
        # Into staging, or straight into a table this run created.
        return f'COPY %{self.table}" (%'


@pytest.fixture
def place(postgres_server) -> Iterator[Place]:
    tag = uuid.uuid4().hex[:10]
    here = Place(postgres_server, "postgres", f"tpf_{tag}", f"events_{tag}")
    yield here
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{here.schema}" CASCADE')


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    out: Path
    err: Path

    def wait(self, timeout: float = 60) -> int:
        return self.popen.wait(timeout=timeout)

    @property
    def states(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.out.read_bytes().splitlines() if line.strip()]

    @property
    def stderr(self) -> str:
        return self.err.read_text()


def start(tmp_path: Path, config: dict[str, Any], data: Path) -> Proc:
    cfg = tmp_path / f"config-{uuid.uuid4().hex[:6]}.json"
    cfg.write_bytes(orjson.dumps(config))
    out, err = tmp_path / f"{cfg.stem}.out", tmp_path / f"{cfg.stem}.err"
    with data.open("rb") as stdin, out.open("wb") as stdout, err.open("wb") as stderr:
        popen = subprocess.Popen(
            [str(EXE), "--config", str(cfg)],
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, "DPONE_LOG_LEVEL": "WARNING"},
        )
    return Proc(popen, out, err)


def terminate_during_copy(place: Place, proc: Proc, *, before: tuple[str, ...] = (), timeout: float = 30) -> int:
    """Wait for this test's COPY to be running, then run `before` and kill its session, at once."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(place.server.dsn, autocommit=True) as conn:
        while time.monotonic() < deadline and proc.popen.poll() is None:
            pids = [
                r[0]
                for r in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND state = 'active' "
                    "AND query LIKE %s",
                    (APPLICATION_NAME, place.copy_query()),
                ).fetchall()
            ]
            if pids:
                for sql in before:
                    conn.execute(sql)
                killed = conn.execute(
                    "SELECT count(*) FROM unnest(%s::int[]) AS p WHERE pg_terminate_backend(p)", (pids,)
                )
                row = killed.fetchone()
                assert row is not None
                return int(row[0])
            time.sleep(0.005)
    pytest.fail(f"no COPY seen (target exited with {proc.popen.poll()}): {proc.stderr}")


def preload(run_target, place: Place) -> None:
    """A few rows committed before the faulty run: they must survive it, once."""
    data = lines(schema("events", PROPS, keys=()), *(record("events", {"id": -i, "name": "old"}) for i in range(1, 6)))
    result = run_target(PostgresTarget, place.config(), data)
    assert result.rc == 0, result.stderr


def test_connection_killed_mid_copy_without_retries_fails_and_changes_nothing(run_target, tmp_path, place, big_input):
    preload(run_target, place)
    proc = start(tmp_path, place.config(batch_size_rows=ROWS * 2, max_retries=0), big_input)
    assert terminate_during_copy(place, proc) == 1
    rc = proc.wait()
    assert rc == 75, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("target-postgres: transient error: stream 'events': COPY into staging"), proc.stderr
    assert proc.states == []
    assert place.scalar(f'SELECT count(*) FROM "{place.table}"') == 5
    assert place.scalar(f'SELECT count(*) FROM "{place.table}" WHERE id > 0') == 0


@pytest.mark.parametrize("batch_rows", [ROWS * 2, ROWS // 10], ids=["one-batch", "two-lanes-busy"])
def test_connection_killed_mid_copy_is_retried_and_every_row_lands_once(
    run_target, tmp_path, place, big_input, batch_rows
):
    # With small batches the other lane is copying or merging its own batch while this one retries.
    preload(run_target, place)
    proc = start(tmp_path, place.config(batch_size_rows=batch_rows, max_retries=2), big_input)
    assert terminate_during_copy(place, proc) == 1
    rc = proc.wait()
    assert rc == 0, proc.stderr
    assert "retry 1/2" in proc.stderr
    assert proc.states[-1] == FINAL_STATE
    assert [s["upto"] for s in proc.states] == sorted({s["upto"] for s in proc.states})
    table = f'"{place.table}"'
    assert place.scalar(f"SELECT count(*) FROM {table}") == ROWS + 5
    assert place.scalar(f"SELECT count(DISTINCT id) FROM {table}") == ROWS + 5
    assert (
        place.scalar(f"SELECT min(id) + max(id) + sum(id) FROM {table} WHERE id > 0")
        == 1 + ROWS + ROWS * (ROWS + 1) // 2
    )


@pytest.mark.parametrize(
    ("lanes", "after_states", "keyed"), [(1, 3, False), (2, 3, False), (2, 9, False), (2, 3, True), (2, 9, True)]
)
def test_sigkilled_target_leaves_whole_batches_and_its_last_state_covered(
    tmp_path, place, big_input, keyed_input, lanes, after_states, keyed
):
    # With two lanes a batch COPYs ahead while the one before commits (keyed: its keys are new): the
    # kill finds one waiting for its turn, and the table still holds the first batches only, in order.
    batch = 10_000
    config = place.config(batch_size_rows=batch, load_connections=lanes)
    if keyed:
        config["load_method"] = "upsert"
    proc = start(tmp_path, config, keyed_input if keyed else big_input)
    deadline = time.monotonic() + 30
    with psycopg.connect(place.server.dsn, autocommit=True) as conn:
        while True:
            assert time.monotonic() < deadline and proc.popen.poll() is None, proc.stderr
            copying = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND state = 'active' AND query LIKE %s",
                (APPLICATION_NAME, place.copy_query()),
            ).fetchall()
            if copying and len(proc.states) >= after_states:
                proc.popen.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        assert proc.wait() == -signal.SIGKILL
        # The server notices the dead client and rolls its transaction back: wait for that.
        while conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", ([r[0] for r in copying],)
        ).fetchone()[0]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    count = place.scalar(f'SELECT count(*) FROM "{place.table}"')
    last = proc.states[-1]["upto"]
    assert 0 < count < ROWS
    assert count % batch == 0, f"{count} rows is not whole batches of {batch}"
    assert place.scalar(f'SELECT count(*) FROM "{place.table}" WHERE id <= %s', (last,)) == last
    assert place.scalar(f'SELECT count(DISTINCT id) FROM "{place.table}"') == count
    assert place.scalar(f'SELECT max(id) FROM "{place.table}"') == count  # no batch committed out of turn


@pytest.fixture
def own_database(postgres_server) -> Iterator[Place]:
    tag = uuid.uuid4().hex[:10]
    here = Place(postgres_server, f"tpf_db_{tag}", "loads", f"events_{tag}")
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{here.database}"')
    yield here
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{here.database}" WITH (FORCE)')


def test_retries_outlast_a_server_that_refuses_connections_for_a_moment(tmp_path, own_database, big_input):
    place = own_database
    proc = start(tmp_path, place.config(batch_size_rows=ROWS * 2, max_retries=2), big_input)
    # Retry 1 reconnects ~1 s after the kill, retry 2 ~2 s after that: refuse connections for 1.5 s.
    closed = f'ALTER DATABASE "{place.database}" ALLOW_CONNECTIONS false'
    reopen = threading.Timer(1.5, _sql, (place, f'ALTER DATABASE "{place.database}" ALLOW_CONNECTIONS true'))
    try:
        assert terminate_during_copy(place, proc, before=(closed,)) == 1
    finally:
        reopen.start()  # whatever happened, the database takes connections again
    rc = proc.wait()
    reopen.join()
    assert rc == 0, proc.stderr
    assert proc.states == [FINAL_STATE]
    assert place.scalar(f'SELECT count(DISTINCT id) FROM "{place.table}"') == ROWS


def _sql(place: Place, sql: str) -> None:
    with psycopg.connect(place.server.dsn, autocommit=True) as conn:
        conn.execute(sql)
