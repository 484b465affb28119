"""A BigQuery source for tap-bigquery's tests: a dataset of its own, tables in it, and the tap on it.

On the session's emulator (`bigquery_emulator`, tests/tools/bigquery_emulator.py) unless
DPONE_TEST_BIGQUERY_PROJECT points the live tests at BigQuery. Tables are created through the API
with a schema (the emulator's DDL turns JSON into STRING and BIGNUMERIC into NUMERIC) and filled
with uncompressed NDJSON load jobs (`load_table_from_json` and typed `insert_rows` fail on the
emulator). Import the fixture: `from tests.service.bigquery_source import bigquery_fixture`.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone.taps.bigquery.tap import BigQueryTap
from dpone.taps.framework.tap_cli import run as run_tap_cli
from tests.conftest import Run
from tests.tools.tap_output import Num, exact, ok, records  # noqa: F401 - the tests import them from here

EXIT_CONFIG = 78


@pytest.fixture(name="bigquery")
def bigquery_fixture(bigquery_emulator: Any, tmp_path: Path) -> Iterator[Source]:
    """A dataset of its own on the emulator, dropped after the test."""
    source = Source(bigquery_emulator.client(), bigquery_emulator.target_config, tmp_path)
    source.grpc_endpoint = bigquery_emulator.grpc_endpoint
    try:
        yield source
    finally:
        source.close()


class Source:
    """A test's own dataset, a client on it, and tap-bigquery run in-process against it."""

    def __init__(self, client: Any, config_for: Any, workdir: Path) -> None:
        self.client = client
        self.config_for = config_for
        self.workdir = workdir
        self.dataset = f"t_{uuid.uuid4().hex[:12]}"
        self.grpc_endpoint = ""
        self._files = itertools.count()
        self.client.create_dataset(self.dataset)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.delete_dataset(self.dataset, delete_contents=True, not_found_ok=True)

    # -- the source
    def table_id(self, table: str) -> str:
        return f"{self.client.project}.{self.dataset}.{table}"

    def create(self, table: str, fields: Sequence[Any]) -> None:
        from google.cloud import bigquery

        self.client.create_table(bigquery.Table(self.table_id(table), schema=list(fields)), retry=None, timeout=30)

    def load(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        """Rows appended with an NDJSON load job (values in BigQuery's JSON forms)."""
        from google.cloud import bigquery

        data = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
        config = bigquery.LoadJobConfig(source_format="NEWLINE_DELIMITED_JSON")
        self.client.load_table_from_file(io.BytesIO(data), self.table_id(table), job_config=config).result()

    def query(self, sql: str) -> list[dict[str, Any]]:
        return [dict(row) for row in self.client.query(sql).result()]

    # -- the tap
    def config(self, **extra: Any) -> dict[str, Any]:
        config: dict[str, Any] = self.config_for(self.dataset, **extra)
        return config

    def stream(self, table: str) -> str:
        return f"{self.dataset}-{table}"

    def file(self, name: str, value: Any) -> str:
        path = self.workdir / f"{next(self._files):03d}-{name}.json"
        path.write_text(json.dumps(value, default=lambda n: n.text))
        return str(path)

    def run(self, *args: str, config: dict[str, Any] | None = None) -> Run:
        out, err = io.BytesIO(), io.StringIO()
        argv = ["--config", self.file("config", self.config() if config is None else config), *args]
        rc = run_tap_cli(BigQueryTap, argv, stdout=out, stderr=err)
        data = out.getvalue()
        messages = [] if data.startswith(b"{\n") else [orjson.loads(line) for line in data.splitlines() if line]
        return Run(rc, data, err.getvalue(), messages)

    def discover(self, **config: Any) -> dict[str, Any]:
        run = ok(self.run("--discover", config=self.config(**config)))
        catalog: dict[str, Any] = exact(run.stdout)
        return catalog

    def catalog(
        self, stream: str, method: str = "FULL_TABLE", key: str | None = None, catalog: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The discovered catalog with only `stream` selected, read with `method`."""
        catalog = catalog or self.discover()
        for entry in catalog["streams"]:
            md = next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == [])
            md["selected"] = entry["tap_stream_id"] == stream
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


def error_line(run: Run, kind: str, rc: int) -> str:
    """The run failed with `rc`, and its last stderr line is the tap's one error line of this kind."""
    assert run.rc == rc, (run.rc, run.stderr)
    ours = [line for line in run.stderr.splitlines() if line.startswith("tap-bigquery:")]
    assert len(ours) == 1, run.stderr
    assert run.stderr.strip().splitlines()[-1] == ours[0], run.stderr
    assert ours[0].startswith(f"tap-bigquery: {kind} error: "), ours[0]
    return ours[0]
