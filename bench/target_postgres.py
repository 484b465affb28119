"""target-postgres benchmark: our target against psql's \\copy and two other Singer targets.

    python bench/target_postgres.py [--rows 1000000] [--repeat 1] [--skip-pipelinewise] [--skip-meltanolabs]
    python bench/target_postgres.py --rows-memory 10000000 [--memory-only]   # peak RSS on a piped 10M stream
    python bench/target_postgres.py --profile bench/.work/target-postgres.prof  # where our target's time goes

One throwaway PostgreSQL 15 server (bench/pg_server.py, stock settings: fsync on, default
shared_buffers, max_wal_size, ...) is started for the run. Every tool loads the same rows, the
stream of bench/records.py (SCHEMA, N RECORDs of 10 columns, a STATE every 10,000 records), into
a fresh table in its own schema of database ``bench``. One untimed \\copy first creates the WAL
segment files a fresh cluster lacks and puts the inputs in the page cache; a CHECKPOINT before
each load keeps one tool's dirty pages from being written during the next one's run. After each
load the table is checked (row count, sums over five columns, equal across tools) and dropped.

- ``psql \\copy``: the same records written once as CSV (cached under bench/.work/), loaded with
  ``\\copy ... FROM file WITH (FORMAT csv)`` into a plain table with the same 10 columns and
  types as our target creates, no key. Only the \\copy counts (psql's ``\\timing``). This is the
  reference the goals are stated against.
- ``psql \\copy, table with primary key``: the same, into a table with ``PRIMARY KEY (id)``.
- ``psql staged``: what our target asks of the server, in one batch and without metadata
  columns: ``\\copy`` into a TEMP table, then ``INSERT INTO <keyed table> SELECT`` from it, in
  one transaction (``\\timing`` of the \\copy, INSERT and COMMIT).
- ``dpone target-postgres``: the ``target-postgres`` console script of this venv, stdin = the
  Singer file, default settings (upsert on key ``id``, batches of 50,000 rows, metadata columns).
- ``pipelinewise-target-postgres``: in its own Python 3.9 venv under bench/.work/, its defaults
  (batches of 100,000 rows, upsert on the key; no metadata columns unless asked, so it writes 10
  columns where ours writes 15).
- ``meltanolabs-target-postgres``: in its own Python 3.11 venv under bench/.work/, its defaults
  (record validation on, INSERT rather than COPY, batches of 10,000, metadata columns, merge on
  the key).

Wall-clock seconds from process start to exit (best of --repeat); peak RSS is GNU time's ``%M``
for the tool's process: its largest resident set, or that of its largest child.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import os
import platform
import pstats
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script (python bench/target_postgres.py): make the repo root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench.pg_server import PgServer, throwaway_server
from bench.records import DEFAULT_SEED, SCHEMA_MESSAGE, STREAM, iter_records, write_stream

REPO = Path(__file__).resolve().parent.parent
WORK_DIR = Path(__file__).resolve().parent / ".work"
BIN = Path(sys.executable).parent
DATABASE = "bench"
TABLE = STREAM  # every target names the table after the stream
PYENV = Path.home() / ".pyenv" / "versions"
PIPELINEWISE_VENV = WORK_DIR / "venv-pipelinewise"
MELTANOLABS_VENV = WORK_DIR / "venv-meltanolabs"
TOOLS_VENV = WORK_DIR / "venv-tools"  # py-spy, for --profile
COLUMNS = list(SCHEMA_MESSAGE["schema"]["properties"])
CHECKSUM_SQL = (
    "SELECT count(*), sum(id), count(parent_id), round(sum(amount::numeric), 2), "
    "count(*) FILTER (WHERE active), sum(length(email)) FROM {table}"
)
MB = 1024  # RSS figures are in KiB

# Goals the target is held to (docs/performance.md).
GOAL_VS_PSQL = 2.0  # wall time at most this multiple of psql \copy's
GOAL_VS_PIPELINEWISE = 7.0  # at least this many times faster than pipelinewise-target-postgres
GOAL_RSS_MB = 150.0


@dataclass(slots=True)
class Result:
    tool: str
    runs: list[float] = field(default_factory=list)
    rss_kb: int = 0

    @property
    def seconds(self) -> float:
        return min(self.runs)


@dataclass(frozen=True, slots=True)
class Measured:
    seconds: float
    rss_kb: int
    returncode: int


# -- inputs -------------------------------------------------------------------------------------------
def _shown(path: Path) -> str:
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def singer_file(rows: int, seed: int) -> Path:
    """The Singer stream (same name as bench/codec.py's, so they share it)."""
    path = WORK_DIR / f"records-{rows}-seed{seed}.jsonl"
    if path.exists():
        print(f"reusing {_shown(path)}")
    else:
        print(f"generating {rows:,} records into {_shown(path)} ...", flush=True)
        write_stream(path, rows, seed)
    return path


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
        print(f"reusing {_shown(path)}")
        return path
    print(f"writing the same {rows:,} records as CSV into {_shown(path)} ...", flush=True)
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


def column_ddl() -> str:
    """The 10 columns with the PostgreSQL types our target gives them (from its own type map)."""
    from dpone_protocol.json_schema import stream_columns
    from targets.postgres.type_map import pg_type

    columns = stream_columns(SCHEMA_MESSAGE["schema"], STREAM)
    return ", ".join(f"{name} {pg_type(col)}" for name, col in columns.items())


# -- running things --------------------------------------------------------------------------------
GNU_TIME = Path("/usr/bin/time")


def measure(argv: Sequence[str], stdin: Any, stdout: Any, stderr: Any, env: dict[str, str] | None = None) -> Measured:
    """Run to completion; wall seconds and peak RSS (KiB).

    The RSS comes from GNU time (``-f %M``): wait4's ru_maxrss of a child started straight from this
    process would also count this (bigger) Python process, whose memory the child briefly shares
    between fork and exec.
    """
    rss_file = WORK_DIR / f".rss-{os.getpid()}"
    wrapped = [str(GNU_TIME), "-f", "%M", "-o", str(rss_file), *argv] if GNU_TIME.exists() else list(argv)
    start = time.perf_counter()
    proc = subprocess.Popen(wrapped, stdin=stdin, stdout=stdout, stderr=stderr, env=env, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    rss_kb = usage.ru_maxrss
    if GNU_TIME.exists():
        text = rss_file.read_text() if rss_file.exists() else ""
        rss_file.unlink(missing_ok=True)
        numbers = [line for line in text.splitlines() if line.strip().isdigit()]
        rss_kb = int(numbers[-1]) if numbers else 0
    return Measured(seconds, rss_kb, proc.returncode)


def _tail(path: Path, chars: int = 3000) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-chars:]


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

    def _config(self, name: str, config: dict[str, Any]) -> Path:
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

    def _singer_target(self, name: str, argv: list[str], schema: str, env: dict[str, str] | None = None) -> Measured:
        self.fresh_schema(schema)
        out, err = self.logs / f"{name}.stdout", self.logs / f"{name}.stderr"
        with self.singer.open("rb") as src, out.open("wb") as fo, err.open("wb") as fe:
            done = measure(argv, src, fo, fe, env)
        if done.returncode != 0:
            raise SystemExit(f"error: {name} failed ({done.returncode}); stderr ends with:\n{_tail(err)}")
        states = out.read_bytes().count(b"\n")
        if states == 0:
            raise SystemExit(f"error: {name} echoed no STATE")
        self.verify(name, schema)
        return done

    def dpone(self) -> Measured:
        schema = "bench_dpone"
        config = self._config("dpone", {**self.server.config(DATABASE), "default_target_schema": schema})
        return self._singer_target("dpone", [str(BIN / "target-postgres"), "--config", str(config)], schema)

    def pipelinewise(self) -> Measured:
        schema = "bench_pipelinewise"
        config = {
            "host": self.server.host,
            "port": self.server.port,
            "user": self.server.user,
            "password": "unused",  # required by its config check; the server trusts local connections
            "dbname": DATABASE,
            "default_target_schema": schema,
            "batch_size_rows": 100_000,
        }
        argv = [
            str(PIPELINEWISE_VENV / "bin" / "target-postgres"),
            "--config",
            str(self._config("pipelinewise", config)),
        ]
        return self._singer_target("pipelinewise", argv, schema)

    def meltanolabs(self, use_copy: bool) -> Measured:
        schema = "bench_meltanolabs"
        config: dict[str, Any] = {
            "host": self.server.host,
            "port": self.server.port,
            "user": self.server.user,
            "password": "unused",
            "database": DATABASE,
            "default_target_schema": schema,
        }
        if use_copy:
            config["use_copy"] = True
        exe = MELTANOLABS_VENV / "bin" / "target-postgres"
        argv = [str(exe), "--config", str(self._config("meltanolabs", config))]
        env = {**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"}
        return self._singer_target("meltanolabs", argv, schema, env)


# -- reference installs --------------------------------------------------------------------------------
def _pip_install(venv: Path, python: Path, package: str, executable: str = "target-postgres") -> str | None:
    """Create the venv and install the package if it is not there yet; None on success, else why not."""
    exe = venv / "bin" / executable
    if exe.exists():
        return None
    if not python.exists():
        return f"no interpreter at {python}"
    log = WORK_DIR / f"install-{venv.name}.log"
    print(f"installing {package} into {_shown(venv)} (log: {_shown(log)}) ...", flush=True)
    with log.open("w") as fh:
        for argv in (
            [str(python), "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--upgrade", "pip"],
            [str(venv / "bin" / "python"), "-m", "pip", "install", package],
        ):
            if subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                return f"`{' '.join(argv[-3:])}` failed; last lines of {log}:\n{_tail(log, 1500)}"
    return None if exe.exists() else f"{package} installed no {executable} executable"


def _old_python() -> Path:
    for version in ("3.9.18", "3.8.18"):
        candidate = PYENV / version / "bin" / "python"
        if candidate.exists():
            return candidate
    return PYENV / "3.9.18" / "bin" / "python"


def _version_of(venv: Path, dist: str) -> str:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "?"


# -- the comparison ----------------------------------------------------------------------------------
def compare(args: argparse.Namespace, server: PgServer) -> dict[str, Result]:
    singer = singer_file(args.rows, args.seed)
    csv_path = csv_file(args.rows, args.seed)
    bench = Bench(server, args.rows, singer, csv_path)

    tools: list[tuple[str, Callable[[], Measured]]] = [
        ("psql \\copy (plain table)", lambda: bench.psql_copy(primary_key=False)),
        ("psql \\copy (table with primary key)", lambda: bench.psql_copy(primary_key=True)),
        ("psql staged (\\copy to temp + INSERT, keyed table)", bench.psql_staged),
        ("dpone target-postgres", bench.dpone),
    ]
    skipped: list[str] = []
    if args.skip_pipelinewise:
        skipped.append("pipelinewise-target-postgres: skipped (--skip-pipelinewise)")
    else:
        why = _pip_install(PIPELINEWISE_VENV, _old_python(), "pipelinewise-target-postgres")
        if why:
            skipped.append(f"pipelinewise-target-postgres: not installable here: {why}")
        else:
            name = f"pipelinewise-target-postgres {_version_of(PIPELINEWISE_VENV, 'pipelinewise-target-postgres')}"
            tools.append((name, bench.pipelinewise))
    if args.skip_meltanolabs:
        skipped.append("meltanolabs-target-postgres: skipped (--skip-meltanolabs)")
    else:
        why = _pip_install(MELTANOLABS_VENV, Path(sys.executable), "meltanolabs-target-postgres")
        if why:
            skipped.append(f"meltanolabs-target-postgres: not installable here: {why}")
        else:
            name = f"meltanolabs-target-postgres {_version_of(MELTANOLABS_VENV, 'meltanolabs-target-postgres')}"
            if args.meltanolabs_copy:
                name += " (use_copy)"
            tools.append((name, lambda: bench.meltanolabs(args.meltanolabs_copy)))
    for line in skipped:
        print(line)

    # Untimed: creates the WAL segment files a fresh cluster lacks and puts both inputs in the page
    # cache, so the first tool timed does not pay for what later ones get for free.
    print("warm-up: one untimed psql \\copy, and reading the Singer file once ...", flush=True)
    bench.psql_copy(primary_key=False)
    with singer.open("rb") as fh:
        while fh.read(1 << 24):
            pass

    results = {name: Result(name) for name, _ in tools}
    for run in range(1, args.repeat + 1):  # interleaved: noise hits every tool alike
        for name, fn in tools:
            done = fn()
            result = results[name]
            result.runs.append(done.seconds)
            result.rss_kb = max(result.rss_kb, done.rss_kb)
            print(f"  run {run}: {name:<52} {done.seconds:8.2f}s  peak RSS {done.rss_kb / MB:6.0f} MB", flush=True)
    return results


def report(rows: int, repeat: int, results: dict[str, Result]) -> list[str]:
    """Print the table and the goal checks; return the goal lines."""
    names = list(results)
    psql = results[names[0]].seconds
    ours_name = next(n for n in names if n.startswith("dpone"))
    ours = results[ours_name]
    best = "best of " + str(repeat) if repeat > 1 else "one run"
    print(f"\n{rows:,} rows, wall time ({best}):\n")
    print("| tool | seconds | rows/s | peak RSS MB | time vs psql \\copy | dpone speed-up |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        r = results[name]
        speedup = "—" if name == ours_name else f"{r.seconds / ours.seconds:.2f}x"
        print(
            f"| {name} | {r.seconds:.2f} | {rows / r.seconds:,.0f} | {r.rss_kb / MB:.0f} | "
            f"{r.seconds / psql:.2f}x | {speedup} |"
        )
    goals: list[str] = []
    ratio = ours.seconds / psql
    goals.append(
        f"wall time <= {GOAL_VS_PSQL:g}x psql \\copy: {ratio:.2f}x -> {'MET' if ratio <= GOAL_VS_PSQL else 'NOT MET'}"
    )
    pw = next((n for n in names if n.startswith("pipelinewise")), None)
    if pw:
        times_faster = results[pw].seconds / ours.seconds
        verdict = "MET" if times_faster >= GOAL_VS_PIPELINEWISE else "NOT MET"
        goals.append(f">= {GOAL_VS_PIPELINEWISE:g}x faster than pipelinewise: {times_faster:.2f}x -> {verdict}")
    rss = ours.rss_kb / MB
    goals.append(
        f"peak RSS < {GOAL_RSS_MB:g} MB at {rows:,} rows: {rss:.0f} MB -> {'MET' if rss < GOAL_RSS_MB else 'NOT MET'}"
    )
    print()
    for line in goals:
        print("goal: " + line)
    return goals


# -- 10M rows through a pipe: memory only ----------------------------------------------------------------
def memory_run(rows: int, seed: int, server: PgServer) -> None:
    bench = Bench(server, rows, Path(os.devnull), None)
    schema = "bench_dpone_memory"
    bench.fresh_schema(schema)
    config = bench._config("dpone-memory", {**server.config(DATABASE), "default_target_schema": schema})
    err = bench.logs / "dpone-memory.stderr"
    print(f"\nmemory run: {rows:,} records generated on the fly, piped into target-postgres ...", flush=True)
    start = time.perf_counter()
    generator = subprocess.Popen(
        [sys.executable, "-m", "bench.records", "--rows", str(rows), "--seed", str(seed), "--out", "-"],
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    assert generator.stdout is not None
    with err.open("wb") as fe:
        done = measure(
            [str(BIN / "target-postgres"), "--config", str(config)], generator.stdout, subprocess.DEVNULL, fe
        )
    generator.stdout.close()
    generator.wait()
    seconds = time.perf_counter() - start
    if done.returncode != 0 or generator.returncode != 0:
        raise SystemExit(
            f"error: memory run failed (target {done.returncode}, generator {generator.returncode}):\n{_tail(err)}"
        )
    count = int(bench.sql(f"SELECT count(*) FROM {schema}.{TABLE}"))
    bench.sql(f"DROP SCHEMA {schema} CASCADE")
    if count != rows:
        raise SystemExit(f"error: memory run left {count:,} rows, expected {rows:,}")
    rss = done.rss_kb / MB
    verdict = "MET" if rss < GOAL_RSS_MB else "NOT MET"
    print(f"memory run: {count:,} rows loaded in {seconds:.0f}s (generator-bound; not a speed figure)")
    print(f"goal: peak RSS < {GOAL_RSS_MB:g} MB at {rows:,} rows: {rss:.0f} MB -> {verdict}")


# -- --profile: our target in-process under cProfile, and phase timers without it --------------------------
_PHASES = ("describe_table", "prepare_staging", "bulk_load", "finalize", "cleanup")


def _in_process(config: Path, singer: Path) -> None:
    from targets.framework.target_cli import run
    from targets.postgres.target import PostgresTarget

    code = run(PostgresTarget, ["--config", str(config), "--input", str(singer)], stdout=io.BytesIO())
    if code != 0:
        raise SystemExit(f"error: target-postgres exited {code}")


def _timed_phases(config: Path, singer: Path) -> tuple[float, dict[str, float]]:
    """One run in-process with a stopwatch around each loader step; no profiler overhead."""
    from targets.postgres.loader import PostgresLoader

    spent = dict.fromkeys(_PHASES, 0.0)
    originals = {name: getattr(PostgresLoader, name) for name in _PHASES}

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start

        return timed

    for name, fn in originals.items():
        setattr(PostgresLoader, name, wrap(name, fn))
    try:
        start = time.perf_counter()
        _in_process(config, singer)
        total = time.perf_counter() - start
    finally:
        for name, fn in originals.items():
            setattr(PostgresLoader, name, fn)
    return total, spent


# Where a py-spy sample is spent: the first category whose test matches its stack (outermost to leaf).
_SAMPLE_CATEGORIES: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("start-up: imports, connect, CREATE SCHEMA/TABLE", lambda s: "Target.run" not in s),
    ("server: finalize (key probe + INSERT or MERGE, commit)", lambda s: "PostgresLoader.finalize" in s),
    ("server: staging DDL (create/drop temp table)", lambda s: "prepare_staging" in s or "Loader.cleanup" in s),
    (
        "COPY: sending, waiting for the server",
        lambda s: "bulk_load" in s and any(k in s for k in ("Copy._put", "wait", "__exit__", "finish")),
    ),
    ("COPY: psycopg formatting rows (write_row, C)", lambda s: "bulk_load" in s and "write_row" in s),
    ("COPY: building row lists from dicts (loader)", lambda s: "bulk_load" in s),
    ("batch: dedupe last per key", lambda s: "_dedupe_last" in s),
    ("batch: stamping _sdc_batched_at", lambda s: "Sink.drain" in s and "write_batch" not in s),
    ("input: reading lines (MessageReader.frames)", lambda s: "frames" in s),
    ("input: orjson decode (decode_line)", lambda s: "decode_line" in s),
    ("input: message objects (from_dict)", lambda s: "from_dict" in s),
    ("input: Sink.add (key check, metadata, batch append)", lambda s: "Sink.add" in s),
    ("input: the loop itself (_handle, is_full, STATE)", lambda s: True),
)
SAMPLE_RATE = 250


def pyspy_breakdown(config: Path, singer: Path, py_spy: Path) -> None:
    """Our target as a subprocess under py-spy (sampling, so no per-call overhead), waits included."""
    raw = WORK_DIR / "target-postgres-pyspy.txt"
    env = {**os.environ, "DPONE_LOG_LEVEL": "WARNING"}
    argv = [str(py_spy), "record", "--idle", "-r", str(SAMPLE_RATE), "-f", "raw", "-o", str(raw), "--"]
    argv += [sys.executable, str(BIN / "target-postgres"), "--config", str(config)]
    with singer.open("rb") as src:
        done = measure(argv, src, subprocess.DEVNULL, subprocess.DEVNULL, env)
    if done.returncode != 0:
        raise SystemExit(f"error: py-spy run failed ({done.returncode})")
    counts = dict.fromkeys((name for name, _ in _SAMPLE_CATEGORIES), 0)
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        for name, test in _SAMPLE_CATEGORIES:
            if test(stack):
                counts[name] += int(n)
                break
    total = sum(counts.values())
    print(f"\npy-spy, {total:,} samples at {SAMPLE_RATE}/s ({total / SAMPLE_RATE:.1f}s, run took {done.seconds:.1f}s):")
    print("| where | seconds | share |")
    print("|---|---:|---:|")
    for name, samples in counts.items():
        print(f"| {name} | {samples / SAMPLE_RATE:.2f} | {samples / total:.0%} |")


def profile(args: argparse.Namespace, server: PgServer) -> None:
    singer = singer_file(args.rows, args.seed)
    bench = Bench(server, args.rows, singer, None)
    schema = "bench_dpone_profile"
    config = bench._config("dpone-profile", {**server.config(DATABASE), "default_target_schema": schema})
    os.environ.setdefault("DPONE_LOG_LEVEL", "WARNING")

    bench.fresh_schema(schema)
    total, spent = _timed_phases(config, singer)
    bench.verify("dpone (timed)", schema)
    rest = total - sum(spent.values())
    print(f"\nphases, {args.rows:,} rows in-process, no profiler: {total:.2f}s in all")
    print("| phase | seconds | share |")
    print("|---|---:|---:|")
    print(f"| read + decode + Sink.add + batching (outside the loader) | {rest:.2f} | {rest / total:.0%} |")
    for name in _PHASES:
        print(f"| loader.{name} | {spent[name]:.2f} | {spent[name] / total:.0%} |")

    why = _pip_install(TOOLS_VENV, Path(sys.executable), "py-spy", "py-spy")
    if why:
        print(f"py-spy breakdown skipped: {why}")
    else:
        bench.fresh_schema(schema)
        pyspy_breakdown(config, singer, TOOLS_VENV / "bin" / "py-spy")
        bench.verify("dpone (py-spy)", schema)

    bench.fresh_schema(schema)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(_in_process, config, singer)
    elapsed = time.perf_counter() - start
    bench.verify("dpone (profiled)", schema)
    profiler.dump_stats(args.profile)
    print(f"\nunder cProfile: {elapsed:.2f}s; stats in {args.profile}")
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(30)


def _commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown commit"


# -- main ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/target_postgres.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="RECORD messages in the input (default 1000000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool; the best counts (default 1)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--skip-pipelinewise", action="store_true", help="leave out pipelinewise-target-postgres")
    parser.add_argument("--skip-meltanolabs", action="store_true", help="leave out meltanolabs-target-postgres")
    parser.add_argument(
        "--meltanolabs-copy", action="store_true", help="run meltanolabs-target-postgres with use_copy: true"
    )
    parser.add_argument(
        "--rows-memory", type=int, default=0, help="also load this many rows piped from the generator; peak RSS only"
    )
    parser.add_argument("--memory-only", action="store_true", help="only the --rows-memory run")
    parser.add_argument("--profile", metavar="FILE", help="profile our target on --rows rows instead of comparing")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be >= 1")
    if args.memory_only and args.rows_memory < 1:
        parser.error("--memory-only needs --rows-memory N")

    WORK_DIR.mkdir(parents=True, exist_ok=True)
    import psycopg

    print(
        f"Python {platform.python_version()}, psycopg {psycopg.__version__} ({psycopg.pq.__impl__}), "
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, dpone at {_commit()}"
    )
    with throwaway_server() as server:
        version = server.psql("SHOW server_version")
        settings = server.psql(
            "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings "
            "WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', 'max_wal_size', 'wal_level', "
            "'full_page_writes', 'work_mem', 'maintenance_work_mem')"
        )
        print(f"PostgreSQL {version} on port {server.port} (defaults: {settings})")
        server.psql(f"CREATE DATABASE {DATABASE}")
        if args.profile:
            profile(args, server)
            return 0
        if not args.memory_only:
            report(args.rows, args.repeat, compare(args, server))
        if args.rows_memory:
            memory_run(args.rows_memory, args.seed, server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
