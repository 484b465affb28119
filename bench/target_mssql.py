"""target-mssql benchmark: the client-side cost of the bulk parameters, and rows/s against bcp with a server.

    python bench/target_mssql.py [--rows 1000000] [--repeat 3] [--skip-wire] [--wire-rows N[,N]] [--work-dir DIR]
    DPONE_TEST_MSSQL_DSN='SERVER=tcp:HOST,1433;UID=...;PWD=...;DATABASE=...;TrustServerCertificate=yes' \\
        python bench/target_mssql.py --rows 1000000 --repeat 3      # also rows/s on that server

The same N records of bench/records.py for every step, each target's defaults (upsert on ``id``,
5 metadata columns); CPU is user + system, best of --repeat interleaved rounds. In this process,
``time.process_time()`` around the work only: target-postgres's C COPY encoder (the reference:
router ``feed`` per line, ``take()`` per batch); target-mssql's decoding of an exact stream
(peek, ``EXACT_CODEC``, message, ``Sink.add``, batches as the target cuts them); its
``parameter_arrays()``; ``bcp.data_file()`` + UTF-16 (``bulk_method: bcp``). Then the whole
``target-mssql`` process against the TDS endpoint of tests/tools/tds_server.py (the real ODBC
Driver 18 logs in; the endpoint decodes in Python, in its own process, and sets the wall time):
its CPU, peak RSS, and the CPU it notes in ``parameter_arrays`` and ``insert_arrays`` (the driver).
With DPONE_TEST_MSSQL_DSN (SERVER=tcp:host,port; UID; PWD; DATABASE): wall time of target-mssql
(fast_executemany, bulk_method bcp) and of bcp/freebcp loading the same rows from one
character-format file into a table of the target's shape, each into a fresh schema.
docs/performance.md (target-mssql) says more.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script (python bench/target_mssql.py): make the repo root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench import evidence
from bench.host import load_average, machine_line
from bench.measure import MB, run_measured, wait_for_quiet
from bench.paths import WORK_DIR, shown, tail
from bench.records import DEFAULT_SEED, SCHEMA_MESSAGE, STREAM, write_stream
from dpone.targets.framework.batching import BatchPolicy
from dpone.targets.framework.encoded_rows import ADDED_FULL
from dpone.targets.framework.loader import StreamPlan, resolve_method, table_name
from dpone.targets.framework.loader_sink import LINE_KEY, _dedupe_last
from dpone.targets.framework.schema_evolution import Dialect, plan_schema
from dpone.targets.framework.sink import Sink
from dpone.targets.mssql import bcp
from dpone.targets.mssql.ddl import MssqlSql
from dpone.targets.mssql.loader import MssqlLoader
from dpone.targets.mssql.params import parameter_arrays
from dpone.targets.mssql.target import MssqlTarget
from dpone.targets.mssql.type_map import dialect
from dpone.targets.postgres import copy_rows
from dpone.targets.postgres.loader import PostgresLoader
from dpone.targets.postgres.target import PostgresTarget
from dpone.targets.postgres.type_map import dialect as postgres_dialect
from dpone_drivers.mssql import DRIVER_18, resolve_driver
from dpone_protocol.codec import EXACT_CODEC, Frame, decode_line
from dpone_protocol.config import Redactor
from dpone_protocol.messages import RecordMessage, SchemaMessage, from_dict
from dpone_protocol.settings import apply_settings

DSN_ENV = "DPONE_TEST_MSSQL_DSN"
SPENT_ENV = "DPONE_BENCH_SPENT"  # where the wire run's target process writes the CPU it noted
TARGET = [sys.executable, "-c", "from dpone.targets.mssql.cli import main; main()"]
MSSQL = apply_settings(MssqlTarget.settings, {}, "target-mssql")  # each target's defaults
POSTGRES = apply_settings(PostgresTarget.settings, {}, "target-postgres")
MILLION = 1_000_000


def singer_file(work: Path, rows: int, seed: int) -> Path:
    """The Singer stream, generated once (bench/runner_overhead.py's name: the benches share it)."""
    path = work / f"records-{rows}-seed{seed}.jsonl"
    if not path.exists():
        print(f"generating {rows:,} records into {shown(path)} ...", flush=True)
        write_stream(path, rows, seed)
    return path


class _Batches(Sink):
    """The framework's Sink as target-mssql's uses it (MssqlSink without its loader): each drained
    batch is kept, one record per key, as LoaderSink.write_batch hands it to the loader."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        schema = from_dict(SCHEMA_MESSAGE)
        assert isinstance(schema, SchemaMessage)
        super().__init__(config, schema, BatchPolicy.from_config(dict(config)))

    def add_record(
        self, record: dict[str, Any], version: int | None, time_extracted: str | None, size: int, line: int
    ) -> bool:
        record[LINE_KEY] = line  # MssqlSink.carry_lines
        return super().add_record(record, version, time_extracted, size, line)

    def write_batch(self, records: list[dict[str, Any]]) -> None:
        self.batches.append(_dedupe_last(records, self.key_properties))


def stream_plan(config: Mapping[str, Any], sink: Sink, destination: Dialect) -> StreamPlan:
    """The plan LoaderSink.on_schema makes for a table that does not exist yet."""
    keys = sink.key_properties
    plan = StreamPlan(STREAM, table_name(STREAM, None), sink.columns, keys, resolve_method(config, keys))
    plan.columns = plan_schema(STREAM, plan.table, sink.columns, keys, None, destination, plan.evolution).load_columns
    return plan


def mssql_loader(config: Mapping[str, Any]) -> MssqlLoader:
    """A loader without a connection: what bindings() and column_types() read is its type settings."""
    loader = object.__new__(MssqlLoader)
    loader.numbers = str(config["number_type"])
    loader.dialect = dialect(loader.numbers, str(config["timestamp_type"]))
    return loader


# -- in this process -------------------------------------------------------------------------------------
def copy_encoder(lines: list[bytes]) -> tuple[float, str]:
    """CPU seconds of target-postgres's COPY encoder over the lines, and what it made."""
    loader = object.__new__(PostgresLoader)  # no connection: the encoder only reads these settings
    loader.nul_policy = str(POSTGRES.get("nul_character_policy") or "strip")
    loader.dialect = postgres_dialect(str(POSTGRES.get("number_type") or "numeric"))
    plan = stream_plan(POSTGRES, _Batches(POSTGRES), loader.dialect)
    encoder: Any = loader.row_encoder(plan, BatchPolicy.from_config(POSTGRES), metadata=True)
    assert encoder is not None, copy_rows.missing_reason()
    router = copy_rows.make_router()
    router.register(STREAM, encoder)
    feed, take = router.feed, encoder.take
    batches = size = rows = 0
    gc.collect()
    start = time.process_time()
    for raw in lines:
        if feed(raw) == ADDED_FULL:  # every RECORD line is taken (checked below): none is decoded
            rows += encoder.rows
            size += len(take())
            batches += 1
    if encoder.rows:
        rows += encoder.rows
        size += len(take())
        batches += 1
    cpu = time.process_time() - start
    records = sum(1 for raw in lines if raw.startswith(b'{"type":"RECORD"'))
    assert rows == records, f"{records - rows} RECORD lines went to the decoded path, not measured here"
    return cpu, f"{batches} batches, {size / 2**20:,.0f} MiB of COPY text"


@dataclass
class Phases:
    decode: float = 0.0
    arrays: float = 0.0
    bcp_file: float = 0.0
    batches: list[int] = field(default_factory=list)
    bcp_bytes: int = 0


def mssql_parameters(lines: list[bytes], encoding: str = "utf-16-le", out: Any = None) -> Phases:
    """CPU seconds of target-mssql's decoding, parameter arrays and bcp files over the lines.
    `out`: a binary file that gets every batch's bcp file (untimed)."""
    sink = _Batches(MSSQL)
    loader = mssql_loader(MSSQL)
    columns = loader.bindings(stream_plan(MSSQL, sink, loader.dialect))
    done = Phases()

    def convert(start: float) -> float:
        """The drained batch to arrays and bcp text; returns when the next decoding starts."""
        records = sink.batches.pop()
        done.batches.append(len(records))
        t1 = time.process_time()
        arrays = parameter_arrays(records, columns)
        t2 = time.process_time()
        text = bcp.data_file(arrays.rows)
        assert text is not None, "the bench's values hold no bcp terminator"
        data = text.encode(encoding)
        t3 = time.process_time()
        done.decode += t1 - start
        done.arrays += t2 - t1
        done.bcp_file += t3 - t2
        done.bcp_bytes += len(data)
        if out is not None:
            out.write(data)
        return time.process_time() if out is not None else t3  # freeing the batch counts as decoding

    gc.collect()
    start = time.process_time()
    for line, raw in enumerate(lines, 1):  # Target._read_lines and Target._handle, for an exact stream
        stripped = raw.strip()
        kind, _ = Frame(line, stripped).peek()
        if kind != "RECORD":
            continue  # SCHEMA and STATE: not the records' cost
        message = from_dict(decode_line(stripped, line, EXACT_CODEC), line)
        assert isinstance(message, RecordMessage)
        if sink.add(message, len(stripped), line):
            sink.drain()
            start = convert(start)
    sink.drain()
    if sink.batches:
        convert(start)
    return done


# -- target-mssql against the TDS endpoint ---------------------------------------------------------------
def timed_target() -> None:
    """target-mssql's main, noting the CPU of parameter_arrays and insert_arrays (run by wire())."""
    from dpone.targets.mssql import loader
    from dpone.targets.mssql.cli import main

    spent = {"arrays": 0.0, "driver": 0.0, "rows": 0}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.process_time() - start
                if name == "driver":  # insert_arrays(self, plan, staging, names, arrays)
                    spent["rows"] += len(args[4].rows)

        return wrapper

    loader.parameter_arrays = timed("arrays", loader.parameter_arrays)  # type: ignore[attr-defined]
    loader.MssqlLoader.insert_arrays = timed("driver", loader.MssqlLoader.insert_arrays)  # type: ignore[method-assign]
    atexit.register(lambda: Path(os.environ[SPENT_ENV]).write_bytes(orjson.dumps(spent)))
    main()


@dataclass
class WireRun:
    rows: int
    seconds: float
    cpu: float
    rss_kb: int
    arrays: float
    driver: float


def wire(work: Path, singer: Path, rows: int) -> WireRun:
    from tests.tools.tds_server import ResultSet, Script, TdsServer

    described = [("name", "nvarchar"), ("type", "nvarchar"), ("max_length", "int")]
    described += [("precision", "int"), ("scale", "int"), ("is_nullable", "bit")]
    script = (  # the schema exists, no table does: the target creates it (tests/unit/mssql/...wire.py)
        Script()
        .on(re.compile(r"FROM sys\.schemas"), ResultSet([("one", "int")], [(1,)]))
        .on(re.compile(r"FROM sys\.columns"), ResultSet(described, []))
    )
    spent_file, out, err = (work / f"mssql-wire.{kind}" for kind in ("spent.json", "stdout", "stderr"))
    config = work / "mssql-wire.config.json"
    with TdsServer(responder=script, timeout=300) as server:
        settings = {"host": "127.0.0.1", "port": server.port, "user": "u", "password": "p", "database": "db"}
        config.write_bytes(orjson.dumps({**settings, "encrypt": "no"}))
        stop = threading.Event()

        def forget() -> None:  # the endpoint keeps every decoded row: drop them as they come
            while not stop.wait(2.0):
                server.clear()

        cleaner = threading.Thread(target=forget, daemon=True)
        cleaner.start()
        env = {**os.environ, SPENT_ENV: str(spent_file), "DPONE_LOG_LEVEL": "WARNING"}
        argv = [sys.executable, "-c", "from bench.target_mssql import timed_target; timed_target()", "--config"]
        with singer.open("rb") as fin, out.open("wb") as fout, err.open("wb") as ferr:
            done = run_measured([*argv, str(config)], fin, fout, ferr, env)
        stop.set()
        cleaner.join()
        errors = server.errors
    if done.returncode != 0 or errors:
        raise SystemExit(f"error: target-mssql on the TDS endpoint: exit {done.returncode}, {errors[:3]}\n{tail(err)}")
    spent = orjson.loads(spent_file.read_bytes())
    states = out.read_bytes().splitlines()
    last = orjson.loads(states[-1])["bookmarks"][STREAM]["replication_key_value"] if states else None
    if spent["rows"] != rows or last != rows:  # the last STATE is echoed once the last batch committed
        raise SystemExit(f"error: target-mssql sent {spent['rows']:,} rows, echoed state {last}; expected {rows:,}")
    return WireRun(rows, done.seconds, done.cpu, done.rss_kb or done.max_rss_kb, spent["arrays"], spent["driver"])


# -- with a server -----------------------------------------------------------------------------------------
def dsn_login(dsn: str) -> dict[str, Any]:
    """host, port, user, password, database of an ODBC connection string (bcp takes no connection string)."""
    pairs = re.findall(r"\s*([^=;]+?)\s*=\s*(\{(?:[^}]|\}\})*\}|[^;]*)", dsn)
    parts = {k.lower(): v[1:-1].replace("}}", "}") if v.startswith("{") else v.strip() for k, v in pairs}
    host, _, port = parts.get("server", "localhost").removeprefix("tcp:").partition(",")
    trust = parts.get("trustservercertificate", "").lower() in ("yes", "true")
    user, password, database = (parts.get(k, "") for k in ("uid", "pwd", "database"))
    login = {"host": host, "port": int(port or 1433), "user": user, "password": password, "database": database}
    return {**login, "encrypt": parts.get("encrypt", "yes").lower(), "trust_server_certificate": trust}


def server_runs(work: Path, singer: Path, lines: list[bytes], rows: int, repeat: int) -> None:
    dsn = os.environ.get(DSN_ENV, "")
    if not dsn:
        print(f"\nwith a server: skipped ({DSN_ENV} is not set; see the docstring to run it against SQL Server)")
        return
    from dpone_drivers.mssql import connection_string, pyodbc

    login = dsn_login(dsn)
    tool = bcp.BcpTool.find(login, Redactor())
    conn = pyodbc().connect(connection_string({"odbc_connection_string": dsn}, "dpone-bench"), autocommit=True)
    version = conn.execute("SELECT @@VERSION").fetchone()[0].splitlines()[0]
    data = work / f"mssql-bcp-{rows}.dat"
    print(f"\nwith a server: {version} at {login['host']},{login['port']}; {tool.path}; writing {shown(data)} ...")
    with data.open("wb") as out:  # the rows as bulk_method bcp writes them, all in one file
        mssql_parameters(lines, "utf-8" if tool.freetds else "utf-16-le", out)
    loader = mssql_loader(MSSQL)
    types = loader.column_types(stream_plan(MSSQL, _Batches(MSSQL), loader.dialect))
    tds_env = {**os.environ, **tool._freetds_env(str(work))} if tool.freetds else None  # freebcp's -S dpone

    def bcp_in(schema: str) -> tuple[list[str], dict[str, str] | None]:
        conn.execute(MssqlSql().create_table(f"[{schema}].[{STREAM}]", types, ["id"]))  # the target's shape
        return tool.command(f"{schema}.{STREAM}", str(data)), tds_env

    def target(settings: dict[str, Any]) -> Callable[[str], tuple[list[str], None]]:
        def argv(schema: str) -> tuple[list[str], None]:
            path = work / f"mssql-{schema}.json"
            path.write_bytes(orjson.dumps({**settings, "default_target_schema": schema}))
            return [*TARGET, "--config", str(path)], None

        return argv

    tools: dict[str, Callable[[str], tuple[list[str], dict[str, str] | None]]] = {
        f"{Path(tool.path).name} in (one file, -b 100000, TABLOCK)": bcp_in,
        "target-mssql, fast_executemany": target({"odbc_connection_string": dsn}),
        "target-mssql, bulk_method bcp": target({**login, "bulk_method": "bcp", "bcp_path": tool.path}),
    }
    best: dict[str, float] = {}
    log = work / "mssql-server.log"
    for run in range(1, repeat + 1):
        for name, make in tools.items():
            schema = f"dpone_bench_{secrets.token_hex(4)}"  # a fresh schema, and table, for each load
            conn.execute(f"CREATE SCHEMA [{schema}]")
            argv, env = make(schema)
            with singer.open("rb") as fin, log.open("wb") as flog:
                done = run_measured(argv, fin, flog, subprocess.STDOUT, env)
            count = conn.execute(f"SELECT count(*) FROM [{schema}].[{STREAM}]").fetchone()[0]
            tables = conn.execute("SELECT name FROM sys.tables WHERE schema_id = SCHEMA_ID(?)", schema).fetchall()
            for (table,) in tables:
                conn.execute(f"DROP TABLE [{schema}].[{table}]")
            conn.execute(f"DROP SCHEMA [{schema}]")
            if done.returncode != 0 or count != rows:
                raise SystemExit(f"error: {name}: exit {done.returncode}, {count:,} rows:\n{tail(log)}")
            best[name] = min(best.get(name, done.seconds), done.seconds)
            print(f"  run {run}: {name:<48} {done.seconds:8.2f}s", flush=True)
    reference = best[next(iter(tools))]
    print(f"\n{rows:,} rows into SQL Server, wall time from start to exit, best of {repeat}:\n")
    print("| tool | seconds | rows/s | time vs bcp |\n|---|---:|---:|---:|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.2f} | {rows / seconds:,.0f} | {seconds / reference:.2f}x |")


# -- main --------------------------------------------------------------------------------------------------
def report(rows: int, repeat: int, copy: float, made: str, phases: list[Phases], runs: list[WireRun]) -> None:
    decode, arrays = min(p.decode for p in phases), min(p.arrays for p in phases)
    batches = phases[0].batches
    print(f"\n{rows:,} records, CPU seconds (user+sys), best of {repeat}; per million = microseconds per record:\n")
    print("| step | CPU s | CPU s per million | vs COPY encoder |\n|---|---:|---:|---:|")

    def row(name: str, cpu: float, n: int = rows) -> None:
        print(f"| {name} | {cpu:.2f} | {cpu * MILLION / n:.2f} | {cpu * rows / n / copy:.2f}x |")

    row(f"target-postgres COPY encoder (the reference; {made})", copy)
    row(f"target-mssql decode (exact decoder, sink; {len(batches)} batches of up to {max(batches):,})", decode)
    row("target-mssql parameter_arrays()", arrays)
    row("target-mssql decode + parameter_arrays()", decode + arrays)
    size = phases[0].bcp_bytes / 2**20
    row(f"bulk_method bcp: bcp.data_file() + UTF-16 ({size:,.0f} MiB)", min(p.bcp_file for p in phases))
    sizes = sorted({w.rows for w in runs})
    best = {n: min((w for w in runs if w.rows == n), key=lambda w: w.cpu) for n in sizes}
    for n, w in best.items():
        label = f"TDS endpoint, {n:,} rows"
        row(f"{label}: the target-mssql process, all of it (peak RSS {w.rss_kb / MB:.0f} MB)", w.cpu, n)
        row(f"{label}: of which parameter_arrays()", w.arrays, n)
        row(f"{label}: of which insert_arrays(): pyodbc + msodbcsql18", w.driver, n)
        row(f"{label}: the rest: start, read, decode, framework", w.cpu - w.arrays - w.driver, n)
    if len(sizes) >= 2:
        low, high = best[sizes[0]], best[sizes[-1]]
        extra = high.rows - low.rows
        row(f"TDS endpoint, the {extra:,} rows between: the whole process", high.cpu - low.cpu, extra)
        row(f"TDS endpoint, the {extra:,} rows between: insert_arrays()", high.driver - low.driver, extra)
    if runs:
        walls = ", ".join(f"{w.rows:,} rows {w.seconds:.1f}s" for w in runs)
        print(f"\nwall time on the TDS endpoint (its Python decoding sets the pace, not the target): {walls}")
    cpu = {"COPY encoder CPU s": copy, "decode CPU s": decode, "parameter_arrays CPU s": arrays}
    evidence.record(
        "target-mssql",
        "client-side CPU against target-postgres's COPY encoder",
        {"rows": rows, "repeat": repeat, **cpu},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/target_mssql.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=MILLION, help="RECORD messages (default 1000000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every step; the best counts (default 3)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--skip-wire", action="store_true", help="leave out target-mssql on the TDS endpoint")
    parser.add_argument(
        "--wire-rows",
        help="rows of each TDS endpoint run, comma-separated (default --rows; the endpoint takes ~4,300 rows/s)",
    )
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR, help="inputs and logs (default bench/.work)")
    args = parser.parse_args(argv)
    wire_rows = [] if args.skip_wire else [int(n) for n in (args.wire_rows or str(args.rows)).split(",")]
    if args.rows < 1 or args.repeat < 1 or any(n < 1 for n in wire_rows):
        parser.error("--rows, --repeat and --wire-rows must be >= 1")
    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    WORK_DIR.mkdir(parents=True, exist_ok=True)  # run_measured keeps GNU time's output there

    import pyodbc

    print(machine_line())
    print(f"pyodbc {pyodbc.version}, {DRIVER_18}: {Path(resolve_driver(DRIVER_18)).name}")
    singer = singer_file(work, args.rows, args.seed)
    inputs = {n: singer_file(work, n, args.seed) for n in wire_rows}
    with singer.open("rb") as fh:
        lines = fh.readlines()
    wait_for_quiet(60)
    print(f"load average {load_average()}; {args.rows:,} records, {args.repeat} rounds ...", flush=True)
    copy: list[float] = []
    phases: list[Phases] = []
    runs: list[WireRun] = []
    made = ""
    for run in range(1, args.repeat + 1):  # interleaved: noise hits every step alike
        cpu, made = copy_encoder(lines)
        copy.append(cpu)
        p = mssql_parameters(lines)
        phases.append(p)
        print(
            f"  run {run}: COPY encoder {cpu:.2f}s | mssql decode {p.decode:.2f}s, arrays {p.arrays:.2f}s, "
            f"bcp file {p.bcp_file:.2f}s",
            flush=True,
        )
        for n in wire_rows:
            w = wire(work, inputs[n], n)
            runs.append(w)
            print(f"  run {run}: TDS endpoint, {n:,} rows: CPU {w.cpu:.2f}s, wall {w.seconds:.1f}s", flush=True)
    print(f"load average at the end {load_average()}")
    report(args.rows, args.repeat, min(copy), made, phases, runs)
    server_runs(work, singer, lines, args.rows, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
