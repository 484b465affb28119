"""The target benchmark's loads: its inputs, and each tool loading them into a fresh schema, checked.

Bench runs one tool at a time against the server (a CHECKPOINT first, the table's row count and
sums checked after, equal across tools) and returns its wall seconds and peak RSS.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.measure import run_measured
from bench.paths import BIN, WORK_DIR, shown, tail
from bench.pg_server import PgServer
from bench.records import SCHEMA_MESSAGE, STREAM, iter_records
from bench.ref_venvs import reference_login

DATABASE = "bench"
TABLE = STREAM  # every target names the table after the stream
PIPELINEWISE_VENV = WORK_DIR / "venv-pipelinewise"
MELTANOLABS_VENV = WORK_DIR / "venv-meltanolabs"
COLUMNS = list(SCHEMA_MESSAGE["schema"]["properties"])
CHECKSUM_SQL = (
    "SELECT count(*), sum(id), count(parent_id), round(sum(amount::numeric), 2), "
    "count(*) FILTER (WHERE active), sum(length(email)) FROM {table}"
)


@dataclass(frozen=True, slots=True)
class Measured:
    seconds: float
    rss_kb: int
    returncode: int


def measure(argv: Sequence[str], stdin: Any, stdout: Any, stderr: Any, env: dict[str, str] | None = None) -> Measured:
    """Run to completion; wall seconds and peak RSS (KiB): GNU time's (see run_measured), else wait4's."""
    done = run_measured(argv, stdin, stdout, stderr, env)
    rss_kb = done.max_rss_kb if done.rss_kb is None else done.rss_kb
    return Measured(done.seconds, rss_kb, done.returncode)


# -- inputs -------------------------------------------------------------------------------------------
def _csv_value(value: Any) -> Any:
    if value is None:
        return None  # csv writes an unquoted empty field: NULL for COPY's CSV format
    if value is True:
        return "t"
    if value is False:
        return "f"
    return value  # str(float) is the shortest repr, the digits orjson writes into the Singer file


def csv_file(rows: int, seed: int) -> Path:
    """The same records as CSV, columns in SCHEMA order, no header."""
    path = WORK_DIR / f"records-{rows}-seed{seed}.csv"
    if path.exists():
        print(f"reusing {shown(path)}")
        return path
    print(f"writing the same {rows:,} records as CSV into {shown(path)} ...", flush=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", newline="", encoding="utf-8", buffering=1 << 20) as out:
            writer = csv.writer(out, lineterminator="\n")
            for record in iter_records(rows, seed):
                writer.writerow([_csv_value(record[c]) for c in COLUMNS])
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


BATCH_FILE_ROWS = 200_000


def batch_input(rows: int, seed: int) -> Path:
    """The same records as SDK BATCH messages: gzip JSONL files of 200,000 rows, a STATE after each."""
    from dpone_protocol.batch_files import JsonlBatchWriter

    root = WORK_DIR / f"batch-{rows}-seed{seed}"
    singer = root / "messages.jsonl"
    if singer.exists():
        print(f"reusing {shown(singer)}")
        return singer
    print(f"writing the same {rows:,} records as BATCH files under {shown(root)} ...", flush=True)
    root.mkdir(parents=True, exist_ok=True)
    writer = JsonlBatchWriter(root, "part-", STREAM, max_rows=BATCH_FILE_ROWS)
    lines = [orjson.dumps(SCHEMA_MESSAGE)]

    def announce(upto: int) -> None:
        manifest = writer.close()
        batch = {"type": "BATCH", "stream": STREAM, "encoding": {"format": "jsonl", "compression": "gzip"}}
        lines.append(orjson.dumps({**batch, "manifest": manifest}))
        lines.append(orjson.dumps({"type": "STATE", "value": {"upto": upto}}))

    for n, record in enumerate(iter_records(rows, seed), start=1):
        writer.write(record)
        if writer.full():
            announce(n)
    if writer.rows:
        announce(rows)
    tmp = singer.with_name(f".{singer.name}.{os.getpid()}.tmp")
    tmp.write_bytes(b"\n".join(lines) + b"\n")
    tmp.replace(singer)
    return singer


def column_ddl() -> str:
    """The 10 columns with the PostgreSQL types our target gives them (from its own type map)."""
    from dpone.targets.postgres.type_map import pg_type
    from dpone_protocol.json_schema import stream_columns

    columns = stream_columns(SCHEMA_MESSAGE["schema"], STREAM)
    return ", ".join(f"{name} {pg_type(col)}" for name, col in columns.items())


_TIMING = re.compile(r"^Time: ([0-9.]+) ms", re.MULTILINE)


class Bench:
    def __init__(self, server: PgServer, rows: int, singer: Path, csv_path: Path | None) -> None:
        self.server = server
        self.rows = rows
        self.singer = singer
        self.csv_path = csv_path
        self.logs = WORK_DIR / "target-postgres-logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.expected: tuple[str, ...] | None = None

    def sql(self, statement: str) -> str:
        return self.server.psql(statement, DATABASE)

    def fresh_schema(self, schema: str) -> None:
        self.sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        self.sql("CHECKPOINT")

    def verify(self, tool: str, schema: str) -> None:
        """Same rows as every other tool's table; then drop it."""
        row = tuple(self.sql(CHECKSUM_SQL.format(table=f"{schema}.{TABLE}")).split("|"))
        if int(row[0]) != self.rows:
            raise SystemExit(f"error: {tool} left {row[0]} rows in {schema}.{TABLE}, expected {self.rows:,}")
        if self.expected is None:
            self.expected = row
        elif row != self.expected:
            raise SystemExit(f"error: {tool}'s table differs: {row} (count, sums) against {self.expected}")
        self.sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    def config_file(self, name: str, config: dict[str, Any]) -> Path:
        path = self.logs / f"{name}.json"
        path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
        return path

    def _psql_script(self, name: str, script: str) -> Measured:
        """Run a psql script; seconds = the sum of its \\timing lines."""
        path = self.logs / f"{name}.sql"
        path.write_text(script)
        out = self.logs / f"{name}.out"
        with out.open("wb") as fh:
            done = measure([*self.server.psql_command(DATABASE), "-f", str(path)], subprocess.DEVNULL, fh, fh)
        text = out.read_text()
        if done.returncode != 0:
            raise SystemExit(f"error: psql {name} failed ({done.returncode}):\n{text[-2000:]}")
        timings = [float(ms) for ms in _TIMING.findall(text)]
        return Measured(sum(timings) / 1000, done.rss_kb, 0)

    # -- the tools ---------------------------------------------------------------------------------
    def psql_copy(self, primary_key: bool) -> Measured:
        schema = "bench_psql_pk" if primary_key else "bench_psql"
        self.fresh_schema(schema)
        key = ", PRIMARY KEY (id)" if primary_key else ""
        self.sql(f"CREATE SCHEMA {schema}; CREATE TABLE {schema}.{TABLE} ({column_ddl()}{key})")
        script = (
            f"\\timing on\n\\copy {schema}.{TABLE} ({', '.join(COLUMNS)}) FROM '{self.csv_path}' WITH (FORMAT csv)\n"
        )
        result = self._psql_script(schema, script)
        self.verify(schema, schema)
        return result

    def psql_staged(self) -> Measured:
        schema = "bench_psql_staged"
        self.fresh_schema(schema)
        self.sql(f"CREATE SCHEMA {schema}; CREATE TABLE {schema}.{TABLE} ({column_ddl()}, PRIMARY KEY (id))")
        script = (
            "SET temp_buffers = '256MB';\n"
            f"CREATE TEMP TABLE stage ({column_ddl()});\n"
            "\\timing on\n"
            "BEGIN;\n"
            f"\\copy stage ({', '.join(COLUMNS)}) FROM '{self.csv_path}' WITH (FORMAT csv)\n"
            f"INSERT INTO {schema}.{TABLE} ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM stage;\n"
            "COMMIT;\n"
        )
        result = self._psql_script(schema, script)
        self.verify(schema, schema)
        return result

    def psql_merge(self) -> Measured:
        """The re-load's reference: the rows into a keyed table that holds them all already, by hand: \\copy
        into a TEMP table, then one MERGE, in one transaction. Only that is timed."""
        schema = "bench_psql_merge"
        self.fresh_schema(schema)
        self.sql(f"CREATE SCHEMA {schema}; CREATE TABLE {schema}.{TABLE} ({column_ddl()}, PRIMARY KEY (id))")
        columns = ", ".join(COLUMNS)
        self._psql_script(
            f"{schema}-preload", f"\\copy {schema}.{TABLE} ({columns}) FROM '{self.csv_path}' WITH (FORMAT csv)\n"
        )
        self.sql(f"VACUUM ANALYZE {schema}.{TABLE}")
        self.sql("CHECKPOINT")
        updates = ", ".join(f"{c} = s.{c}" for c in COLUMNS if c != "id")
        script = (
            "SET temp_buffers = '256MB';\n"
            f"CREATE TEMP TABLE stage ({column_ddl()});\n"
            "\\timing on\n"
            "BEGIN;\n"
            f"\\copy stage ({columns}) FROM '{self.csv_path}' WITH (FORMAT csv)\n"
            f"MERGE INTO {schema}.{TABLE} AS t USING stage AS s ON t.id = s.id "
            f"WHEN MATCHED THEN UPDATE SET {updates} "
            f"WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({', '.join('s.' + c for c in COLUMNS)});\n"
            "COMMIT;\n"
        )
        result = self._psql_script(schema, script)
        self.verify(schema, schema)
        return result

    def dpone_reload(self) -> Measured:
        """Our target loading the same records again into the table it loaded (upsert: every key matched)."""
        schema = "bench_dpone_reload"
        config = self.config_file("dpone-reload", {**self.server.config(DATABASE), "default_target_schema": schema})
        argv = [str(BIN / "target-postgres"), "--config", str(config)]
        self.fresh_schema(schema)
        self._singer_target("dpone-reload-first", argv, schema, keep=True)  # untimed: the first load
        self.sql(f"VACUUM ANALYZE {schema}.{TABLE}")
        self.sql("CHECKPOINT")
        return self._singer_target("dpone-reload", argv, schema, fresh=False)

    def _singer_target(
        self,
        name: str,
        argv: list[str],
        schema: str,
        env: dict[str, str] | None = None,
        source: Path | None = None,
        *,
        fresh: bool = True,
        keep: bool = False,
    ) -> Measured:
        if fresh:
            self.fresh_schema(schema)
        out, err = self.logs / f"{name}.stdout", self.logs / f"{name}.stderr"
        with (source or self.singer).open("rb") as src, out.open("wb") as fo, err.open("wb") as fe:
            done = measure(argv, src, fo, fe, env)
        if done.returncode != 0:
            raise SystemExit(f"error: {name} failed ({done.returncode}); stderr ends with:\n{tail(err)}")
        states = out.read_bytes().count(b"\n")
        if states == 0:
            raise SystemExit(f"error: {name} echoed no STATE")
        if not keep:
            self.verify(name, schema)
        return done

    def dpone(self) -> Measured:
        schema = "bench_dpone"
        config = self.config_file("dpone", {**self.server.config(DATABASE), "default_target_schema": schema})
        return self._singer_target("dpone", [str(BIN / "target-postgres"), "--config", str(config)], schema)

    def dpone_batch(self, source: Path) -> Measured:
        """Our target reading the same rows from BATCH files (jsonl.gz) instead of RECORD lines."""
        schema = "bench_dpone_batch"
        config = self.config_file("dpone-batch", {**self.server.config(DATABASE), "default_target_schema": schema})
        argv = [str(BIN / "target-postgres"), "--config", str(config)]
        return self._singer_target("dpone-batch", argv, schema, source=source)

    def pipelinewise(self) -> Measured:
        schema = "bench_pipelinewise"
        config = {
            **reference_login(self.server),
            "dbname": DATABASE,
            "default_target_schema": schema,
            "batch_size_rows": 100_000,
        }
        argv = [
            str(PIPELINEWISE_VENV / "bin" / "target-postgres"),
            "--config",
            str(self.config_file("pipelinewise", config)),
        ]
        return self._singer_target("pipelinewise", argv, schema)

    def meltanolabs(self, use_copy: bool) -> Measured:
        schema = "bench_meltanolabs"
        config: dict[str, Any] = {
            **reference_login(self.server),
            "database": DATABASE,
            "default_target_schema": schema,
        }
        if use_copy:
            config["use_copy"] = True
        exe = MELTANOLABS_VENV / "bin" / "target-postgres"
        argv = [str(exe), "--config", str(self.config_file("meltanolabs", config))]
        env = {**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"}
        return self._singer_target("meltanolabs", argv, schema, env)
