"""A throwaway real PostgreSQL server for the service tests, started once per session.

initdb and pg_ctl refuse to run as root, so as root they run as the `postgres` user via
runuser; the data and socket directories live in a temp dir owned by that user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.service.destinations import dest  # noqa: F401 - the fixture of every database target
from tests.tools.kafka_mock import MockKafka


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    bin_dir: Path

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/postgres"

    def config(self, database: str = "postgres") -> dict[str, object]:
        return {"host": self.host, "port": self.port, "user": self.user, "password": "", "database": database}


def _bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    found = shutil.which("initdb")
    if found:
        candidates.insert(0, found)
    if not candidates:
        pytest.fail("PostgreSQL server binaries not found: run scripts/install-system-deps.sh (make test does)")
    return Path(candidates[0]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="dpone-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    port = _free_port()
    subprocess.run(
        _as_postgres(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ]
        ),
        check=True,
        capture_output=True,
    )
    options = (
        f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={sock} "
        "-c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10 -c fsync=off "
        "-c full_page_writes=off"
    )
    subprocess.run(
        _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]),
        check=True,
        capture_output=True,
    )
    try:
        yield PostgresServer("127.0.0.1", port, "postgres", bin_dir)
    finally:
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


# -- a database of the session server per test module, and a schema of it per test (tap tests) ------


@pytest.fixture(scope="module")
def server(postgres_server: PostgresServer) -> Any:
    from tests.service.test_tap_postgres import Server

    return Server(postgres_server.host, postgres_server.port, postgres_server.user)


@pytest.fixture(scope="module")
def database(server: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    from tests.service.test_tap_postgres import drop_database, make_database

    name = make_database(server, request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_"))
    try:
        yield name
    finally:
        drop_database(server, name)


@pytest.fixture
def src(server: Any, database: str, run_tap: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A schema of its own in the module's database, and the tap pointed at it: a Source, or the
    module's `SOURCE` class (the CDC modules use one with a replication slot of its own)."""
    from tests.service.test_tap_postgres import Source

    kind = getattr(request.module, "SOURCE", Source)
    source = kind(server.dsn(database), server.config(database), run_tap, tmp_path)
    try:
        yield source
    finally:
        source.close()


@pytest.fixture(params=[False, True], ids=["encoder", "decoded"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The two ways target-postgres takes rows: the C encoder, or the decoded path."""
    from dpone.targets.postgres import copy_rows

    if request.param:
        monkeypatch.setenv(copy_rows.PURE_PYTHON_ENV, "1")
    else:
        monkeypatch.delenv(copy_rows.PURE_PYTHON_ENV, raising=False)
    assert copy_rows.available() is not request.param
    return "decoded" if request.param else "encoder"


@pytest.fixture
def pg(postgres_server: PostgresServer) -> Iterator[Any]:
    """A schema of its own on the session server for one target-postgres test, and a connection to it."""
    from tests.service.test_target_postgres import Pg

    helper = Pg(postgres_server.dsn, postgres_server.config(), f"tp_{uuid.uuid4().hex[:12]}")
    try:
        yield helper
    finally:
        helper.drop()


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[MockKafka]:
    """A Kafka-protocol broker on loopback for the session (librdkafka's mock cluster, tests/tools/kafka_mock.py).

    Tests share it: each names its topics with its own prefix (`kafka_prefix`)."""
    cluster = MockKafka.start()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def kafka_prefix() -> str:
    """A topic prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}_"


@pytest.fixture
def kafka_own_cluster() -> Iterator[MockKafka]:
    """A mock Kafka cluster of the test's own: for faults that act on the whole cluster (a broker down or
    slow, errors pushed for every produce request), which must not reach other tests' topics."""
    cluster = MockKafka.start()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def lab(kafka_cluster: MockKafka, kafka_prefix: str, tmp_path: Path) -> Iterator[Any]:
    """tap-kafka's test bench (tests/service/kafka_source.py) on the session's cluster."""
    from tests.service.kafka_source import KafkaLab

    lab = KafkaLab(kafka_cluster, kafka_prefix, tmp_path)
    try:
        yield lab
    finally:
        lab.close()
