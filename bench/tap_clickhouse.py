"""tap-clickhouse benchmark: our tap against the raw query it is measured by, on the embedded engine.

    python bench/tap_clickhouse.py [--rows 1000000] [--repeat 3] [--wait-quiet SECONDS]

The engine is chdb (ClickHouse embedded through clickhouse-connect), so every tool is one process
that holds the engine and its rows: nothing else is timed. A data directory under
bench/.work/tap-clickhouse/ keeps the table `bench.bench_records` between runs; it is filled once, by
INSERT ... SELECT FROM numbers(), with the ten columns of bench/records.py (Int64 id as the sorting
key, Nullable String name and email, LowCardinality(Nullable(String)) country, Nullable Float64
score, Nullable Decimal(12,2) amount, Nullable Bool active, Nullable DateTime64(3, 'UTC')
updated_at, Nullable Date birth_date, Nullable Int64 parent_id), then OPTIMIZE ... FINAL.

The tools, each a fresh process writing to /dev/null:

- ``raw query (JSONEachRow)``, the reference: ``SELECT * FROM bench.bench_records FORMAT
  JSONEachRow`` through clickhouse-connect's raw_stream, read a megabyte at a time.
- ``raw query, our tap's SQL`` (diagnostic): the exact query our tap sends, read the same way:
  what the engine alone costs us.
- ``dpone tap-clickhouse RECORD``: FULL_TABLE with a catalog from its own --discover (untimed).

Every tool runs once untimed with its output checked (row count and sum of ids). Then the timed
runs, interleaved; wall seconds from process start to exit and peak RSS (GNU time), best of
--repeat. Before each timed run the script waits (--wait-quiet) for other processes to go quiet.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (python bench/tap_clickhouse.py): make the repo root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench import evidence
from bench.host import commit, load_average
from bench.measure import MB, Finished, run_measured, wait_for_quiet
from bench.paths import BIN, REPO, WORK_DIR, shown, tail
from bench.records import COUNTRIES, FIRST_NAMES, LAST_NAMES

GOAL_VS_RAW = 2.0  # the tap's wall time at most this multiple of the raw query's
DATA_ROOT = WORK_DIR / "tap-clickhouse"
TABLE = "bench.bench_records"
RAW = "raw query (JSONEachRow)"
OURS_QUERY = "raw query, our tap's SQL (TabSeparated)"
TAP = "dpone tap-clickhouse RECORD"


def _array(values: tuple[str, ...]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "\\'") + "'" for v in values) + "]"


# Same shapes as bench/records.py, from hashes of the id: the same table on every machine.
FILL_SQL = f"""
INSERT INTO {TABLE}
SELECT id, concat(f, ' ', l), concat(lower(f), '.', lower(l), toString(id), '@example.com'),
       {_array(COUNTRIES)}[1 + cityHash64(id, 1) % {len(COUNTRIES)}],
       (cityHash64(id, 2) % 2000000000) / 1000000 - 1000,
       toDecimal64(cityHash64(id, 3) % 10000000, 2) / 100,
       cityHash64(id, 4) % 10 < 7,
       toDateTime64('2024-01-01 00:00:00', 3, 'UTC') + toIntervalSecond(id * 7)
           + toIntervalMillisecond(cityHash64(id, 5) % 1000),
       toDate('1950-01-01') + toIntervalDay(cityHash64(id, 6) % 20000),
       if(cityHash64(id, 7) % 10 < 2, NULL, 1 + cityHash64(id, 8) % id)
FROM (SELECT number + 1 AS id,
             {_array(FIRST_NAMES)}[1 + cityHash64(number + 1) % {len(FIRST_NAMES)}] AS f,
             {_array(LAST_NAMES)}[1 + cityHash64(-(number + 1)) % {len(LAST_NAMES)}] AS l
      FROM numbers({{rows}}))
"""
CREATE_SQL = f"""
CREATE TABLE {TABLE} (
    id Int64, name Nullable(String), email Nullable(String), country LowCardinality(Nullable(String)),
    score Nullable(Float64), amount Nullable(Decimal(12, 2)), active Nullable(Bool),
    updated_at Nullable(DateTime64(3, 'UTC')), birth_date Nullable(Date), parent_id Nullable(Int64)
) ENGINE = MergeTree ORDER BY id
"""

# Child processes: each opens the engine itself (one process per data directory at a time).
_FILL = """
import sys, clickhouse_connect
c = clickhouse_connect.get_client(dsn=sys.argv[1])
for statement in sys.argv[2:]:
    c.command(statement)
print(c.command("SELECT version()"))
"""
_STREAM = """
import sys, clickhouse_connect
c = clickhouse_connect.get_client(dsn=sys.argv[1])
stream = c.raw_stream(sys.argv[2], fmt=sys.argv[3])
out = sys.stdout.buffer
while chunk := stream.read(1 << 20):
    out.write(chunk)
stream.close()
"""
_OUR_SQL = """
import sys
from dpone.taps.clickhouse.dialect import settings_for
from dpone.taps.clickhouse.tap import ClickHouseTap
tap = ClickHouseTap({"dsn": sys.argv[1], "database": "bench"})
stream = tap.discover_streams()[0]
keys = [stream.column(k) for k in stream.key_properties]
sql, _ = stream.select_sql(list(stream.schema["properties"]), keys, "", keys)
print(f"{sql} SETTINGS {settings_for(sql)}")
"""


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    argv: list[str]
    kind: str  # what it writes: "json" (one object a line), "tsv" (our rows and keys), "singer"


@dataclass(slots=True)
class Result:
    name: str
    runs: list[Finished] = field(default_factory=list)

    @property
    def best(self) -> Finished:
        return min(self.runs, key=lambda m: m.seconds)


def python_child(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def fill(rows: int) -> tuple[str, str]:
    """The engine's DSN with the table filled (once per row count), and the engine's version."""
    data = DATA_ROOT / f"chdb-{rows}"
    dsn = f"chdb://{data}"
    marker = data / "dpone-bench-filled"
    statements = ["SELECT 1"]
    if not marker.exists():
        print(f"filling {TABLE} with {rows:,} rows in {shown(data)} ...", flush=True)
        statements = [
            "CREATE DATABASE IF NOT EXISTS bench",
            f"DROP TABLE IF EXISTS {TABLE}",
            CREATE_SQL,
            FILL_SQL.format(rows=rows),
            f"OPTIMIZE TABLE {TABLE} FINAL",
        ]
    done = subprocess.run(python_child(_FILL, dsn, *statements), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"error: filling the table failed:\n{done.stderr[-3000:]}")
    marker.touch()
    return dsn, done.stdout.strip().splitlines()[-1]


def tap_command() -> list[str]:
    script = BIN / "tap-clickhouse"
    if script.exists():
        return [str(script)]
    return python_child("from dpone.taps.clickhouse.cli import main; main()")


def tools(dsn: str, logs: Path) -> list[Tool]:
    config = logs / "tap-clickhouse.json"
    config.write_bytes(orjson.dumps({"dsn": dsn, "database": "bench"}))
    discovered = subprocess.run(
        [*tap_command(), "--config", str(config), "--discover"], capture_output=True, check=True
    )
    catalog = orjson.loads(discovered.stdout)
    for entry in catalog["streams"]:
        root = next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == [])
        root.update(selected=True, **{"replication-method": "FULL_TABLE"})
    catalog_path = logs / "catalog.json"
    catalog_path.write_bytes(orjson.dumps(catalog))
    our_sql = subprocess.run(python_child(_OUR_SQL, dsn), capture_output=True, text=True, check=True, cwd=REPO)
    return [
        Tool(RAW, python_child(_STREAM, dsn, f"SELECT * FROM {TABLE}", "JSONEachRow"), "json"),
        Tool(OURS_QUERY, python_child(_STREAM, dsn, our_sql.stdout.strip(), "TabSeparated"), "tsv"),
        Tool(TAP, [*tap_command(), "--config", str(config), "--catalog", str(catalog_path)], "singer"),
    ]


def check(tool: Tool, logs: Path, rows: int) -> None:
    """Untimed: every row came, once (count and sum of ids)."""
    err = logs / f"{tool.kind}-check.stderr"
    count = total = 0
    with err.open("wb") as fe:
        proc = subprocess.Popen(tool.argv, stdout=subprocess.PIPE, stderr=fe, cwd=REPO)
        assert proc.stdout is not None
        for line in proc.stdout:
            if tool.kind == "json":
                count, total = count + 1, total + orjson.loads(line)["id"]
            elif tool.kind == "tsv":
                count, total = count + 1, total + orjson.loads(line.rsplit(b"\t", 1)[1])[0]
            elif line.startswith(b'{"type":"RECORD"'):
                count, total = count + 1, total + orjson.loads(line)["record"]["id"]
        code = proc.wait()
    if code != 0:
        raise SystemExit(f"error: {tool.name} failed ({code}):\n{tail(err)}")
    if (count, total) != (rows, rows * (rows + 1) // 2):
        raise SystemExit(f"error: {tool.name} wrote {count:,} rows (id sum {total}); expected {rows:,}")


def timed(tool: Tool, logs: Path) -> Finished:
    err = logs / f"{tool.kind}.stderr"
    with open(os.devnull, "wb") as out, err.open("wb") as fe:
        done = run_measured(tool.argv, subprocess.DEVNULL, out, fe)
    if done.returncode != 0:
        raise SystemExit(f"error: {tool.name} failed ({done.returncode}):\n{tail(err)}")
    return done


def machine_line(engine: str) -> str:
    from importlib.metadata import version

    return (
        f"Python {platform.python_version()}, clickhouse-connect {version('clickhouse-connect')}, "
        f"chdb {version('chdb')} (ClickHouse {engine}), {os.cpu_count()} CPUs, "
        f"{platform.system()} {platform.machine()}, dpone at {commit()}"
    )


def report(rows: int, repeat: int, results: dict[str, Result]) -> None:
    raw = results[RAW].best.seconds
    best = f"best of {repeat}" if repeat > 1 else "one run"
    print(f"\n{rows:,} rows, wall time ({best}):\n")
    print("| tool | seconds | rows/s | time vs raw query | CPU s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, result in results.items():
        m = result.best
        rss = f"{m.rss_kb / MB:.0f}" if m.rss_kb is not None else "?"
        print(f"| {name} | {m.seconds:.2f} | {rows / m.seconds:,.0f} | {m.seconds / raw:.2f}x | {m.cpu:.2f} | {rss} |")
    ratio = results[TAP].best.seconds / raw
    met = "MET" if ratio <= GOAL_VS_RAW else "NOT MET"
    print(f"\ngoal: tap-clickhouse RECORD <= {GOAL_VS_RAW:g}x the raw query's time: {ratio:.2f}x -> {met}")
    figures = {"rows": rows, "repeat": repeat, **{f"{name} s": result.best.seconds for name, result in results.items()}}
    evidence.record(
        "tap-clickhouse",
        "FULL_TABLE read against the raw query",
        {**figures, "time vs raw query": f"{ratio:.2f}x {met}"},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/tap_clickhouse.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the table (default 1000000)")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per tool; the best counts (default 1)")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=120,
        metavar="SECONDS",
        help="before each timed run, wait up to this long for other processes to go quiet (default 120)",
    )
    args = parser.parse_args(argv)
    if args.rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be >= 1")

    logs = DATA_ROOT / f"logs-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    logs.mkdir(parents=True, exist_ok=True)
    dsn, engine = fill(args.rows)
    print(f"{machine_line(engine)}, load {load_average()}")
    print(f"logs, config and catalog in {shown(logs)}")
    runs = tools(dsn, logs)
    print("checking every tool's output (untimed; also warms the caches) ...", flush=True)
    for tool in runs:
        start = time.perf_counter()
        check(tool, logs, args.rows)
        print(f"  {tool.name:<42} {args.rows:,} rows, ids add up ({time.perf_counter() - start:.1f}s)", flush=True)
    results = {tool.name: Result(tool.name) for tool in runs}
    for run in range(1, args.repeat + 1):  # interleaved: noise hits every tool alike
        for tool in runs:
            wait_for_quiet(args.wait_quiet)
            done = timed(tool, logs)
            results[tool.name].runs.append(done)
            rss = f"{done.rss_kb / MB:5.0f} MB" if done.rss_kb is not None else "?"
            print(
                f"  run {run}: {tool.name:<42} {done.seconds:6.2f}s  CPU {done.cpu:6.2f}s  peak RSS {rss}", flush=True
            )
    report(args.rows, args.repeat, results)
    print(f"load at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
