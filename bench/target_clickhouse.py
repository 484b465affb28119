"""target-clickhouse benchmark: our target against the limit (raw_insert of JSONEachRow) and a plain script.

    python bench/target_clickhouse.py [--rows 1000000] [--repeat 1] [--skip-script] [--wait-quiet 120]
    python bench/target_clickhouse.py --dsn clickhouse://user:password@host:8123 [...]   # a server, over HTTP

Every tool loads the same rows, the stream of bench/records.py (SCHEMA, N RECORDs of 10 columns, a
STATE every 10,000 records), as a fresh process of its own into a fresh place: by default the
embedded engine (chdb) in a new data directory bench/.work/clickhouse/<tool>-<run>/ (one process
per directory at a time), deleted once checked. After each load a separate short process reads
the table (FINAL for an upsert table): its 10 columns must have the types our target gives them,
and its row count and sums over every column must be those of the records; a tool that loaded
anything else stops the benchmark.

- ``floor``: a process that opens the engine, creates a small MergeTree table and inserts 2 rows
  (an INSERT ... VALUES: clickhouse-connect's insert() would import pandas too). Its peak RSS is
  what the embedded engine costs any process that uses it (about 340 MB here).
- ``limit``: the same records rendered once (untimed) as JSONEachRow into
  bench/.work/records-<N>-seed<seed>.ch.jsonl, sent as they are with clickhouse-connect's
  ``raw_insert(fmt='JSONEachRow')`` in chunks of 100,000 lines (our batch size) into a MergeTree
  table with the 10 columns and types our target makes, ORDER BY id. ClickHouse's own parser is
  all the work: nothing that reads Singer can be faster.
- ``script``: bench/clickhouse_insert_script.py, what other targets do at best: orjson.loads per
  line, a tuple per record (Decimal, datetime, date where insert() wants them), ``client.insert()``
  every 100,000 rows, STATE echoed; same table as the limit.
- ``dpone target-clickhouse``: the console script of this venv, stdin = the Singer file, default
  settings (upsert on key ``id``: a ReplacingMergeTree; batches of 100,000 rows, two load
  connections; metadata columns, so 15 columns and the 2 of the ReplacingMergeTree where the limit
  writes 10).
- ``dpone target-clickhouse, append-only``: the same with ``load_method: append-only`` (a MergeTree).

Every row is timed from process start to exit (wall seconds, best of --repeat; CPU of that run;
peak RSS is GNU time's ``%M``, the largest over the runs). Goals: ours at most 1.5x the limit's
time, at least 2x faster than the script, peak RSS at most 150 MB above the floor's.

--dsn runs the same against a ClickHouse server over HTTP instead (clickhouse://, http:// or
https://; a DSN without a database path, or with one that exists). Each tool then loads into a
database of its own on that server, ``bench_<tool>``, dropped before and after; the floor is left
out (the engine is not in our process) and the memory goal is a peak RSS under 150 MB in all.
Times then include the network and the server's load, so run it next to the server.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any

if __package__ in (None, ""):
    # Run as a script (python bench/target_clickhouse.py): make the repo root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench import evidence
from bench.host import machine_line
from bench.measure import MB, machine_busy, run_measured, wait_for_quiet
from bench.paths import BIN, REPO, WORK_DIR, shown, tail
from bench.records import DEFAULT_SEED, SCHEMA_MESSAGE, STREAM, iter_records
from bench.runner_overhead import input_file

# Goals the target is held to (the issue that asked for this benchmark).
GOAL_VS_LIMIT = 1.5  # wall time at most this multiple of the limit's
GOAL_VS_SCRIPT = 2.0  # at least this many times faster than the script
GOAL_RSS_MB = 150.0  # above the floor on the embedded engine; in all over HTTP

TABLE = STREAM  # our target names the table after the stream
CHILD = REPO / "bench" / "target_clickhouse_bench.py"
SCRIPT = REPO / "bench" / "clickhouse_insert_script.py"
DATA_ROOT = WORK_DIR / "clickhouse"
LOGS = WORK_DIR / "target-clickhouse-logs"
FLOOR, LIMIT, SCRIPT_ROW = "floor", "limit", "script"
OURS, OURS_APPEND = "dpone target-clickhouse", "dpone target-clickhouse, append-only"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICRO = dt.timedelta(microseconds=1)


# -- inputs -------------------------------------------------------------------------------------------
def column_types() -> dict[str, str]:
    """The 10 columns with the ClickHouse types our target gives them (its own type map and nullability)."""
    from dpone.targets.clickhouse.target import ClickHouseSink
    from dpone.targets.clickhouse.type_map import clickhouse_type
    from dpone_protocol.json_schema import stream_columns

    schema = SCHEMA_MESSAGE["schema"]
    required, keys = set(schema.get("required") or ()), set(SCHEMA_MESSAGE["key_properties"])
    columns = stream_columns(schema, STREAM)
    return {
        name: clickhouse_type(ClickHouseSink._nullability(name, col, required, keys)) for name, col in columns.items()
    }


def create_table(database: str) -> str:
    columns = ", ".join(f"`{name}` {type_}" for name, type_ in column_types().items())
    return f"CREATE TABLE {database}.{TABLE} ({columns}) ENGINE = MergeTree ORDER BY id"


class Sums:
    """What bench/target_clickhouse_bench.py's CHECK_SQL gives for a table holding exactly the records added."""

    def __init__(self) -> None:
        self.sums: dict[str, int] = dict.fromkeys(
            ("rows", "sum_id", "amount_cents", "parents", "sum_parent_id", "active", "name_bytes", "email_bytes",
             "country_bytes", "updated_at_us", "birth_days"),
            0,
        )  # fmt: skip
        self.scores: list[float] = []

    def add(self, r: dict[str, Any]) -> None:
        s = self.sums
        s["rows"] += 1
        s["sum_id"] += r["id"]
        s["amount_cents"] += int(Decimal(repr(r["amount"])) * 100)
        if r["parent_id"] is not None:
            s["parents"] += 1
            s["sum_parent_id"] += r["parent_id"]
        s["active"] += r["active"] is True
        s["name_bytes"] += len(r["name"].encode())
        s["email_bytes"] += len(r["email"].encode())
        s["country_bytes"] += len(r["country"].encode())
        s["updated_at_us"] += (dt.datetime.fromisoformat(r["updated_at"]) - _EPOCH) // _MICRO
        s["birth_days"] += (dt.date.fromisoformat(r["birth_date"]) - _EPOCH.date()).days
        self.scores.append(r["score"])

    def result(self) -> dict[str, int | float]:
        # fsum: exact; the engine adds in another order, so verify() compares this one with a tolerance.
        return {**self.sums, "sum_score": math.fsum(self.scores)}


def each_row_file(rows: int, seed: int) -> tuple[Path, dict[str, int | float]]:
    """The bare records as JSONEachRow (the limit's input), and the sums a correct load gives."""
    path = WORK_DIR / f"records-{rows}-seed{seed}.ch.jsonl"
    sums_path = WORK_DIR / f"records-{rows}-seed{seed}.ch.sums.json"
    if path.exists() and sums_path.exists():
        print(f"reusing {shown(path)}")
        return path, json.loads(sums_path.read_text())
    print(f"writing the same {rows:,} records as JSONEachRow into {shown(path)} ...", flush=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    sums = Sums()
    try:
        with tmp.open("wb", buffering=1 << 20) as out:
            for record in iter_records(rows, seed):
                sums.add(record)
                out.write(orjson.dumps(record) + b"\n")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    found = sums.result()
    sums_path.write_text(json.dumps(found))
    return path, found


# -- one tool, one run --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    cpu: float
    rss_kb: int
    other_cpus: float  # what the rest of the machine used meanwhile, in CPUs: the noise


@dataclass(slots=True)
class Result:
    tool: str
    runs: list[Run] = field(default_factory=list)

    @property
    def best(self) -> Run:
        return min(self.runs, key=lambda r: r.seconds)

    @property
    def rss_mb(self) -> float:
        return max(r.rss_kb for r in self.runs) / MB


@dataclass(frozen=True, slots=True)
class Place:
    """Where one run loads: a fresh data directory of the embedded engine, or a database on a server."""

    dsn: str
    database: str
    directory: Path | None


class Bench:
    def __init__(self, rows: int, singer: Path, each_row: Path, sums: dict[str, Any], server_dsn: str | None) -> None:
        self.rows = rows
        self.singer = singer
        self.each_row = each_row
        self.sums = sums
        self.server_dsn = server_dsn
        self.types = column_types()
        LOGS.mkdir(parents=True, exist_ok=True)

    def child(self, *args: str) -> str:
        """A short untimed process of bench/target_clickhouse_bench.py; its stdout."""
        done = subprocess.run(
            [sys.executable, str(CHILD), *args], capture_output=True, text=True, cwd=REPO, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"error: {CHILD.name} {args[0]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done.stdout.strip()

    def fresh(self, slug: str, run: int) -> Place:
        if self.server_dsn:
            database = "bench_" + slug.replace("-", "_")
            self.child("drop", self.server_dsn, database)
            return Place(self.server_dsn, database, None)
        directory = DATA_ROOT / f"{slug}-{run}"
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        return Place(f"chdb://{directory}", "bench", directory)

    def remove(self, place: Place) -> None:
        if place.directory is None:
            self.child("drop", place.dsn, place.database)
        else:
            shutil.rmtree(place.directory)

    def measure(self, slug: str, argv: list[str], stdin: IO[bytes] | int) -> Run:
        out, err = LOGS / f"{slug}.stdout", LOGS / f"{slug}.stderr"
        with out.open("wb") as fo, err.open("wb") as fe:
            before = machine_busy()
            done = run_measured(argv, stdin, fo, fe)
            busy = machine_busy() - before
        if done.returncode != 0:
            raise SystemExit(f"error: {slug} failed ({done.returncode}); stderr ends with:\n{tail(err)}")
        rss_kb = done.max_rss_kb if done.rss_kb is None else done.rss_kb
        return Run(done.seconds, done.cpu, rss_kb, max(busy - done.cpu, 0.0) / done.seconds)

    def verify(self, tool: str, place: Place, engine: str) -> None:
        """The table holds exactly the records, in columns of our target's types; then it goes."""
        found = json.loads(self.child("check", place.dsn, place.database, TABLE))
        self.remove(place)
        if found["engine"] is None:
            raise SystemExit(f"error: {tool} left no table {place.database}.{TABLE}")
        if found["engine"] != engine:
            raise SystemExit(f"error: {tool} made a {found['engine']} table, expected {engine}")
        types = {name: found["columns"].get(name) for name in self.types}
        if types != self.types:
            raise SystemExit(f"error: {tool}'s columns have types {types}, expected {self.types}")
        got, want = found["sums"], self.sums
        wrong = [
            f"{key}={got[key]} (expected {want[key]})"
            for key in want
            if not (math.isclose(got[key], want[key], rel_tol=1e-12) if key == "sum_score" else got[key] == want[key])
        ]
        if wrong:
            raise SystemExit(f"error: {tool} loaded the wrong rows: {', '.join(wrong)}")

    def echoed_states(self, tool: str, slug: str) -> None:
        if not (LOGS / f"{slug}.stdout").read_bytes().count(b"\n"):
            raise SystemExit(f"error: {tool} echoed no STATE")

    # -- the tools ---------------------------------------------------------------------------------
    def floor(self, run: int) -> Run:
        place = self.fresh("floor", run)
        done = self.measure(
            "floor", [sys.executable, str(CHILD), "floor", place.dsn, place.database], subprocess.DEVNULL
        )
        self.remove(place)
        return done

    def limit(self, run: int) -> Run:
        place = self.fresh("limit", run)
        argv = [sys.executable, str(CHILD), "limit", place.dsn, place.database, TABLE]
        done = self.measure("limit", [*argv, create_table(place.database), str(self.each_row)], subprocess.DEVNULL)
        self.verify(LIMIT, place, "MergeTree")
        return done

    def script(self, run: int) -> Run:
        place = self.fresh("script", run)
        argv = [sys.executable, str(SCRIPT), place.dsn, place.database, TABLE, create_table(place.database)]
        with self.singer.open("rb") as src:
            done = self.measure("script", argv, src)
        self.echoed_states(SCRIPT_ROW, "script")
        self.verify(SCRIPT_ROW, place, "MergeTree")
        return done

    def dpone(self, run: int, append_only: bool) -> Run:
        slug = "dpone-append" if append_only else "dpone"
        place = self.fresh(slug, run)
        config: dict[str, Any] = {"dsn": place.dsn, "database": place.database}
        if append_only:
            config["load_method"] = "append-only"
        config_path = LOGS / f"{slug}.json"
        config_path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
        with self.singer.open("rb") as src:
            done = self.measure(slug, [str(BIN / "target-clickhouse"), "--config", str(config_path)], src)
        tool = OURS_APPEND if append_only else OURS
        self.echoed_states(tool, slug)
        self.verify(tool, place, "MergeTree" if append_only else "ReplacingMergeTree")
        return done

    def warm_up(self) -> str:
        """Untimed: both inputs into the page cache, and (embedded) the engine's library too; its version."""
        for path in (self.singer, self.each_row):
            with path.open("rb") as fh:
                while fh.read(1 << 24):
                    pass
        if self.server_dsn:
            return self.child("drop", self.server_dsn, "bench_warm_up")
        place = self.fresh("warm-up", 0)
        found = self.child("floor", place.dsn, place.database)
        self.remove(place)
        return found


# -- the comparison -----------------------------------------------------------------------------------
def compare(args: argparse.Namespace) -> dict[str, Result]:
    singer = input_file(args.rows, args.seed, say_reused=True)
    each_row, sums = each_row_file(args.rows, args.seed)
    bench = Bench(args.rows, singer, each_row, sums, args.dsn)
    tools: list[tuple[str, Callable[[int], Run]]] = []
    if not args.dsn:
        tools.append((FLOOR, bench.floor))
    tools.append((LIMIT, bench.limit))
    if args.skip_script:
        print("script: skipped (--skip-script)")
    else:
        tools.append((SCRIPT_ROW, bench.script))
    tools += [(OURS, lambda run: bench.dpone(run, False)), (OURS_APPEND, lambda run: bench.dpone(run, True))]

    print("warm-up: reading both inputs once, one untimed floor run ...", flush=True)
    engine = bench.warm_up()
    where = args.dsn.split("@")[-1] if args.dsn else f"embedded (chdb {version('chdb')}), under {shown(DATA_ROOT)}/"
    print(f"ClickHouse {engine}: {where}; clickhouse-connect {version('clickhouse-connect')}")

    results = {name: Result(name) for name, _ in tools}
    for run in range(1, args.repeat + 1):  # interleaved: noise hits every tool alike
        for name, fn in tools:
            wait_for_quiet(args.wait_quiet)
            done = fn(run)
            results[name].runs.append(done)
            print(
                f"  run {run}: {name:<38} {done.seconds:7.2f}s  CPU {done.cpu:6.2f}s  peak RSS "
                f"{done.rss_kb / MB:5.0f} MB  (other processes: {done.other_cpus:.2f} CPUs)",
                flush=True,
            )
    return results


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(rows: int, repeat: int, results: dict[str, Result]) -> list[str]:
    """Print the table and the goal lines; return the goal lines."""
    limit = results[LIMIT].best.seconds
    script = results.get(SCRIPT_ROW)
    floor = results.get(FLOOR)
    best = f"best of {repeat}" if repeat > 1 else "one run"
    print(f"\n{rows:,} rows, wall time ({best}; CPU of that run; peak RSS the largest of the runs):\n")
    print("| tool | seconds | rows/s | CPU s | peak RSS MB | RSS above floor MB | time vs limit | speed-up vs script |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, result in results.items():
        run = result.best
        if name == FLOOR:
            print(f"| {name} | {run.seconds:.2f} | — | {run.cpu:.2f} | {result.rss_mb:.0f} | 0 | — | — |")
            continue
        above = f"{result.rss_mb - floor.rss_mb:.0f}" if floor else "—"
        faster = f"{script.best.seconds / run.seconds:.2f}x" if script else "—"
        print(
            f"| {name} | {run.seconds:.2f} | {rows / run.seconds:,.0f} | {run.cpu:.2f} | {result.rss_mb:.0f} | "
            f"{above} | {run.seconds / limit:.2f}x | {faster} |"
        )
    goals: list[str] = []
    for name in (OURS, OURS_APPEND):
        ours = results[name]
        label = "ours" if name == OURS else "ours (append-only)"
        ratio = ours.best.seconds / limit
        goals.append(
            f"{label}: wall time <= {GOAL_VS_LIMIT:g}x the limit's: {ratio:.2f}x -> {verdict(ratio <= GOAL_VS_LIMIT)}"
        )
        if script:
            times = script.best.seconds / ours.best.seconds
            goals.append(
                f"{label}: >= {GOAL_VS_SCRIPT:g}x faster than the script: {times:.2f}x -> "
                f"{verdict(times >= GOAL_VS_SCRIPT)}"
            )
        if floor:
            extra = ours.rss_mb - floor.rss_mb
            goals.append(
                f"{label}: peak RSS <= floor + {GOAL_RSS_MB:g} MB: {ours.rss_mb:.0f} MB, floor {floor.rss_mb:.0f} MB, "
                f"+{extra:.0f} MB -> {verdict(extra <= GOAL_RSS_MB)}"
            )
        else:
            goals.append(
                f"{label}: peak RSS < {GOAL_RSS_MB:g} MB: {ours.rss_mb:.0f} MB -> {verdict(ours.rss_mb < GOAL_RSS_MB)}"
            )
    print()
    for line in goals:
        print("goal: " + line)
    figures = {"rows": rows, "repeat": repeat, **{f"{name} s": result.best.seconds for name, result in results.items()}}
    evidence.record("target-clickhouse", "load against raw_insert", {**figures, "goals": "; ".join(goals)})
    return goals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/target_clickhouse.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="RECORD messages in the input (default 1000000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool; the best counts (default 1)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--skip-script", action="store_true", help="leave out the orjson + insert() script")
    parser.add_argument(
        "--dsn", help="a ClickHouse server (clickhouse://user:password@host:8123) instead of the embedded engine"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=120,
        metavar="SECONDS",
        help="before each run, wait up to this long for other processes to use under 0.2 CPUs (default 120)",
    )
    args = parser.parse_args(argv)
    if args.rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be >= 1")
    if args.dsn and args.dsn.startswith("chdb:"):
        parser.error("--dsn is for a server; the embedded engine is the default")

    WORK_DIR.mkdir(parents=True, exist_ok=True)
    print(machine_line())
    report(args.rows, args.repeat, compare(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
