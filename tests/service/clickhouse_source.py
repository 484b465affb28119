"""A ClickHouse source for tap-clickhouse's tests: a database of its own per test, and the tap on it.

Without a server, the engine is chdb (ClickHouse embedded, through clickhouse-connect): one data
directory for the whole test process, because a process can hold only one chdb directory open and
a directory belongs to one process at a time. Every client is closed when its test ends (the
engine is released once none is left open), and `released()` closes the test's own client while a
tap runs as a process on the same directory. With DPONE_TEST_CLICKHOUSE_DSN set, the live tests use
the same helper against that server.

Import the fixture into a test module: `from tests.service.clickhouse_source import clickhouse_fixture`;
tests then take `clickhouse`.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import io
import itertools
import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import clickhouse_connect
import orjson
import pytest

from dpone.taps.clickhouse.tap import ClickHouseTap
from dpone.taps.framework.tap_cli import run as run_tap_cli
from tests.conftest import Run
from tests.tools.tap_output import Num, exact, ok, records  # noqa: F401 - the tests import them from here

EXIT_DATA = 65
EXIT_TRANSIENT = 75
EXIT_CONFIG = 78

_DATA_DIR: list[Path] = []


def data_dir() -> Path:
    """The process's one chdb data directory, removed when the process ends."""
    if not _DATA_DIR:
        path = Path(tempfile.mkdtemp(prefix="dpone-chdb-"))
        atexit.register(shutil.rmtree, path, True)
        _DATA_DIR.append(path)
    return _DATA_DIR[0]


def embedded_dsn() -> str:
    return f"chdb://{data_dir()}"


@pytest.fixture(name="clickhouse")
def clickhouse_fixture(tmp_path: Path) -> Iterator[Source]:
    """A database of its own in the embedded engine, dropped after the test."""
    source = Source({"dsn": embedded_dsn()}, tmp_path)
    try:
        yield source
    finally:
        source.close()


def error_line(run: Run, kind: str, rc: int) -> str:
    """The run failed with `rc`, and its last stderr line is the tap's one error line of this kind."""
    assert run.rc == rc, (run.rc, run.stderr)
    ours = [line for line in run.stderr.splitlines() if line.startswith("tap-clickhouse:")]
    assert len(ours) == 1, run.stderr
    assert run.stderr.strip().splitlines()[-1] == ours[0], run.stderr
    assert ours[0].startswith(f"tap-clickhouse: {kind} error: "), ours[0]
    return ours[0]


class Source:
    """A test's own database, a client on it, and tap-clickhouse run in-process against it."""

    def __init__(self, base_config: dict[str, Any], workdir: Path) -> None:
        self.base_config = base_config
        self.workdir = workdir
        self.database = f"t_{uuid.uuid4().hex[:12]}"
        self._files = itertools.count()
        self.client: Any = None
        self.open()
        self.sql(f"CREATE DATABASE {self.database}")

    # -- the test's own client
    def open(self) -> None:
        self.client = clickhouse_connect.get_client(**_client_options(self.base_config))

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """No client of this process on the engine meanwhile: a tap process may open its directory."""
        self.client.close()
        gc.collect()  # an in-process tap run's client goes with its last reference
        try:
            yield
        finally:
            self.open()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sql(f"DROP DATABASE IF EXISTS {self.database}")
        self.client.close()
        gc.collect()

    def sql(self, *statements: str) -> None:
        for statement in statements:
            self.client.command(statement)

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        return list(self.client.query(query).result_rows)

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.client.insert(table, [list(r) for r in rows], column_names=list(columns), database=self.database)

    # -- the tap
    def config(self, **extra: Any) -> dict[str, Any]:
        return {**self.base_config, "database": self.database, **extra}

    def stream(self, table: str) -> str:
        return f"{self.database}-{table}"

    def file(self, name: str, value: Any) -> str:
        path = self.workdir / f"{next(self._files):03d}-{name}.json"
        # Integers wider than 64 bits stay exact (orjson refuses them); a catalog's float bounds go as floats.
        path.write_text(json.dumps(value, default=lambda n: float(n.text)))
        return str(path)

    def run(self, *args: str, config: dict[str, Any] | None = None) -> Run:
        out, err = io.BytesIO(), io.StringIO()
        argv = ["--config", self.file("config", self.config() if config is None else config), *args]
        rc = run_tap_cli(ClickHouseTap, argv, stdout=out, stderr=err)
        data = out.getvalue()
        messages = [] if data.startswith(b"{\n") else [orjson.loads(line) for line in data.splitlines() if line]
        return Run(rc, data, err.getvalue(), messages)

    def discover(self, **config: Any) -> dict[str, Any]:
        run = ok(self.run("--discover", config=self.config(**config)))
        catalog: dict[str, Any] = exact(run.stdout)
        return catalog

    def entry(self, catalog: dict[str, Any], table: str) -> dict[str, Any]:
        found: dict[str, Any] = next(e for e in catalog["streams"] if e["tap_stream_id"] == self.stream(table))
        return found

    def catalog(
        self, table: str, method: str = "FULL_TABLE", key: str | None = None, catalog: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The discovered catalog with only `table` selected, read with `method`."""
        catalog = catalog or self.discover()
        for entry in catalog["streams"]:
            md = next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == [])
            md["selected"] = entry["tap_stream_id"] == self.stream(table)
            if md["selected"]:
                md["replication-method"] = method
                if key:
                    md["replication-key"] = key
        return catalog

    def sync(self, catalog: dict[str, Any] | None = None, state: Any = None, **config: Any) -> Run:
        args: list[str] = []
        if catalog is not None:
            args += ["--catalog", self.file("catalog", catalog)]
        if state is not None:
            args += ["--state", self.file("state", state)]
        return self.run(*args, config=self.config(**config))


def _client_options(config: dict[str, Any]) -> dict[str, Any]:
    dsn = str(config["dsn"])
    if dsn.startswith("chdb:"):
        return {"dsn": dsn}
    return {"dsn": dsn, "autogenerate_session_id": False}
