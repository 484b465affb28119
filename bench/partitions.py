"""Partitioned loads benchmark: one table PG -> PG as one `dpone run`, and as key ranges on 1 and 2 workers.

    python bench/partitions.py [--rows 5000000] [--ranges 8] [--repeat 1]
    python bench/partitions.py --rows 200000      # a quick check of the script

One throwaway PostgreSQL 15 server (bench/pg_server.py, stock settings) holds both ends: the source,
the tap benchmark's table ``public.bench_records`` in database ``bench`` (bench/tap_postgres_table.py:
ten columns, bigint primary key, filled server-side, then VACUUM (FREEZE, ANALYZE) and CHECKPOINT;
filling it also makes the WAL segment files a fresh cluster lacks), and, per load, a fresh
destination schema in the same database. Each load has a project of its own under
bench/.work/partitions/ (meltano.yml and dpone.yml; this venv's tap-postgres, FULL_TABLE, and
target-postgres with its defaults: upsert on id, metadata columns; the SQLite state store, or with
--state-backend postgresql the PostgreSQL store in database ``dpone_state`` of the same server), so
no state, plan or table carries over from one load to the next.

Timed, interleaved in each round of --repeat so that noise hits them alike, a CHECKPOINT before each:

- ``dpone run``: the ordinary single-process full load, the reference.
- ``1 worker``: ``dpone partitions plan PIPELINE --stream S --by id --ranges K`` (timed on its own),
  then one ``dpone partitions run``.
- ``2 workers``: the same plan, then two ``dpone partitions run`` started together; the run ends
  when both have.

After each load the destination table is checked against the source (row count, sum(id),
sum(amount), count(parent_id)) and, for the partitioned ones, the plan must say every range loaded
and the bookmark step done; then the destination schema is dropped. The best round counts (least
plan + run time).

Per-range overhead: a copy of the table's first --overhead-rows rows (default 10,000, ANALYZEd)
planned and loaded by one worker as 1 range and as --overhead-ranges ranges (default 50):
(run time with many - run time with one) / (many - 1) is what one more range costs: its claim,
starting the tap (twice: discovery, then the read) and the target, the range's own transaction
and commit, the manifest update.

Columns: wall seconds; rows/s over plan + run; "client CPU", user + system of the dpone processes
and every tap and target they ran (wait4); "server CPU", every process of the PostgreSQL server
(backends, WAL writer, checkpointer, autovacuum, and the PostgreSQL state store's work when it is
used; /proc before and after); "WAL MB", the WAL the server wrote meanwhile (pg_current_wal_lsn);
"table MB" and "index MB", the destination's size after the load (ranges loaded side by side
insert into the middle of the key's index); "other CPU", what the rest of the machine used
meanwhile (/proc/stat), the noise. Before each timed load the script waits (--wait-quiet, up to
600 s) for other processes to use under 0.2 CPUs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script (python bench/partitions.py): make the repo root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import yaml

from bench import evidence
from bench.host import load_average, machine_line, server_line
from bench.measure import machine_busy, wait_for_quiet
from bench.paths import BIN, WORK_DIR, shown, tail
from bench.pg_server import PgServer, throwaway_server
from bench.tap_postgres_table import CREATE_SQL, DATABASE, FILL_SQL, SCHEMA, TABLE

ROOT = WORK_DIR / "partitions"
SMALL = "bench_small"
STATE_DATABASE = "dpone_state"
DPONE = str(BIN / "dpone")
CHECK_SQL = "SELECT count(*), sum(id), sum(amount), count(parent_id) FROM {table}"
REFERENCE = "dpone run (one process)"
MIB = 2**20
_SETTINGS = ("shared_buffers", "max_wal_size", "synchronous_commit", "fsync", "wal_level", "autovacuum")


@dataclass(frozen=True, slots=True)
class Step:
    """One timed command, or several started together."""

    seconds: float
    client_cpu: float
    server_cpu: float
    wal_bytes: int
    other_cpu: float


@dataclass(frozen=True, slots=True)
class Load:
    """One load of a table: its plan (None for `dpone run`) and its run."""

    plan: Step | None
    run: Step
    sizes: tuple[int, int]  # bytes of the destination table and of its indexes
    workers: dict[str, int] = field(default_factory=dict)  # ranges loaded by each worker

    @property
    def seconds(self) -> float:
        return self.run.seconds + (self.plan.seconds if self.plan else 0.0)

    def total(self, name: str) -> float:
        return float(sum(getattr(step, name) for step in (self.plan, self.run) if step is not None))


@dataclass(frozen=True, slots=True)
class Project:
    root: Path
    pipeline: str
    table: str  # the source table
    dest: str  # the destination schema

    @property
    def stream(self) -> str:
        return f"{SCHEMA}-{self.table}"


def server_cpu(server: PgServer) -> float:
    """CPU seconds of the whole server so far: the postmaster, its live children and those it reaped."""
    tick = os.sysconf("SC_CLK_TCK")
    postmaster = (server.data_dir / "postmaster.pid").read_text().split("\n", 1)[0].strip()
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        # fields[0] is stat(5)'s field 3 (state): ppid is field 4, utime..cstime fields 14 to 17.
        if entry.name == postmaster:
            total += sum(int(v) for v in fields[11:15])
        elif fields[1] == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / tick


class Lab:
    """The server, the source tables and the projects of one benchmark run."""

    def __init__(self, server: PgServer, args: argparse.Namespace) -> None:
        self.server = server
        self.args = args
        self.expected: dict[str, str] = {}
        self.state_uri: str | None = None
        if args.state_backend == "postgresql":
            server.psql(f"CREATE DATABASE {STATE_DATABASE}")
            self.state_uri = server.dsn(STATE_DATABASE)

    def sql(self, statement: str) -> str:
        return self.server.psql(statement, DATABASE)

    # -- the source ------------------------------------------------------------------------------
    def fill(self) -> None:
        self.server.psql(f"CREATE DATABASE {DATABASE}")
        start = time.perf_counter()
        self.sql(CREATE_SQL)
        self.sql(FILL_SQL.format(rows=self.args.rows))
        small = min(self.args.overhead_rows, self.args.rows)
        self.sql(
            f"CREATE TABLE {SCHEMA}.{SMALL} (LIKE {SCHEMA}.{TABLE} INCLUDING ALL); "
            f"INSERT INTO {SCHEMA}.{SMALL} SELECT * FROM {SCHEMA}.{TABLE} WHERE id <= {small}"
        )
        for table in (TABLE, SMALL):
            self.sql(f"VACUUM (FREEZE, ANALYZE) {SCHEMA}.{table}")
            self.expected[table] = self.sql(CHECK_SQL.format(table=f"{SCHEMA}.{table}"))
        self.sql("CHECKPOINT")
        size = self.sql(f"SELECT pg_size_pretty(pg_total_relation_size('{SCHEMA}.{TABLE}'))")
        print(
            f"filled {SCHEMA}.{TABLE}: {self.args.rows:,} rows, {size} with its index, and {SCHEMA}.{SMALL}: "
            f"{small:,} rows, in {time.perf_counter() - start:.1f}s",
            flush=True,
        )

    # -- projects --------------------------------------------------------------------------------
    def project(self, label: str, table: str) -> Project:
        """A fresh project directory whose pipeline `label` loads `table` into schema `dst_<label>`."""
        root = ROOT / label
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        project = Project(root, label, table, f"dst_{label}")
        login = self.server.config(DATABASE)
        extractor = {
            "name": "tap-postgres",
            "executable": str(BIN / "tap-postgres"),
            "config": {**login, "include": [f"{SCHEMA}.{table}"]},
            "metadata": {project.stream: {"replication-method": "FULL_TABLE"}},
        }
        loader = {
            "name": "target-postgres",
            "executable": str(BIN / "target-postgres"),
            "config": {**login, "default_target_schema": project.dest},
        }
        meltano = {"version": 1, "plugins": {"extractors": [extractor], "loaders": [loader]}}
        (root / "meltano.yml").write_text(yaml.safe_dump(meltano, sort_keys=False))
        state = self.state_uri or f"sqlite:///{root / '.dpone' / 'state.db'}"
        pipelines = {"pipelines": {label: {"tap": "tap-postgres", "targets": ["target-postgres"]}}}
        (root / "dpone.yml").write_text(yaml.safe_dump({"state_backend": state, **pipelines}, sort_keys=False))
        return project

    # -- running ---------------------------------------------------------------------------------
    def timed(self, project: Project, name: str, commands: list[list[str]]) -> Step:
        """Run the dpone commands side by side until all have ended; each must exit 0."""
        wal_before = self.sql("SELECT pg_current_wal_lsn()")
        server_before = server_cpu(self.server)
        busy_before = machine_busy()
        start = time.perf_counter()
        procs = []
        for n, argv in enumerate(commands):
            log = project.root / f"{name}-{n}.log"
            with log.open("wb") as out:
                procs.append((subprocess.Popen([DPONE, *argv], cwd=project.root, stdout=out, stderr=out), log))
        cpu = 0.0
        failed = []
        for proc, log in procs:
            _, status, usage = os.wait4(proc.pid, 0)  # with the taps and targets it waited for
            proc.returncode = os.waitstatus_to_exitcode(status)
            cpu += usage.ru_utime + usage.ru_stime
            if proc.returncode != 0:
                failed.append(f"{shown(log)} (exit {proc.returncode}):\n{tail(log)}")
        seconds = time.perf_counter() - start
        time.sleep(0.3)  # let the postmaster reap the backends of the connections just closed
        busy = machine_busy() - busy_before
        server = server_cpu(self.server) - server_before
        wal = int(float(self.sql(f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{wal_before}')")))
        if failed:
            raise SystemExit(f"error: {project.pipeline} {name} failed: " + "\n".join(failed))
        return Step(seconds, cpu, server, wal, max(0.0, busy - cpu - server))

    def reference(self, label: str) -> Load:
        project = self.project(label, TABLE)
        self.before_load()
        run = self.timed(project, "run", [["run", project.pipeline, "--no-progress"]])
        return Load(None, run, self.check(project))

    def partitioned(self, label: str, table: str, ranges: int, workers: int) -> Load:
        project = self.project(label, table)
        self.before_load()
        plan_argv = ["partitions", "plan", project.pipeline, "--stream", project.stream, "--by", "id"]
        plan = self.timed(project, "plan", [[*plan_argv, "--ranges", str(ranges)]])
        run_argv = ["partitions", "run", project.pipeline, "--stream", project.stream, "--no-progress"]
        run = self.timed(project, "run", [[*run_argv, "--worker", f"w{n + 1}"] for n in range(workers)])
        status = self.status(project)
        planned = len(status["ranges"])
        if planned != ranges:
            raise SystemExit(f"error: {label}: {ranges} ranges asked, {planned} planned")
        if not status["complete"] or not status["finalized_at"]:
            raise SystemExit(f"error: {label}: the plan is not complete after the run: {status['counts']}")
        return Load(plan, run, self.check(project), dict(Counter(str(r["worker"]) for r in status["ranges"])))

    def before_load(self) -> None:
        wait_for_quiet(self.args.wait_quiet)
        self.sql("CHECKPOINT")  # the load before's dirty pages are not written during this one

    def status(self, project: Project) -> dict[str, Any]:
        argv = [DPONE, "partitions", "status", project.pipeline, "--stream", project.stream, "--format", "json"]
        done = subprocess.run(argv, cwd=project.root, capture_output=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"error: partitions status failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
        return dict(orjson.loads(done.stdout)[0])

    def check(self, project: Project) -> tuple[int, int]:
        """The destination holds the source's rows (count and sums): its table's and indexes' bytes,
        then it is dropped."""
        names = self.sql(
            "SELECT string_agg(table_name, ',') FROM information_schema.tables "
            f"WHERE table_schema = '{project.dest}' AND table_name NOT LIKE '\\_dpone%'"
        ).split(",")
        if len(names) != 1:
            raise SystemExit(f"error: {project.pipeline}: expected one table in {project.dest}, found {names}")
        table = f'{project.dest}."{names[0]}"'
        got = self.sql(CHECK_SQL.format(table=table))
        heap, indexes = self.sql(f"SELECT pg_table_size('{table}'), pg_indexes_size('{table}')").split("|")
        self.sql(f"DROP SCHEMA {project.dest} CASCADE")
        want = self.expected[project.table]
        if got != want:
            raise SystemExit(
                f"error: {project.pipeline}: the destination has {got}, the source {want} "
                "(count | sum(id) | sum(amount) | count(parent_id))"
            )
        return int(heap), int(indexes)


# -- the measurements ----------------------------------------------------------------------------------
def describe(load: Load) -> str:
    plan = f"plan {load.plan.seconds:6.2f}s  " if load.plan else " " * 14
    shares = ", ".join(f"{w}: {k}" for w, k in sorted(load.workers.items()))
    return (
        f"{plan}run {load.run.seconds:7.2f}s  client CPU {load.total('client_cpu'):6.2f}s  "
        f"server CPU {load.total('server_cpu'):6.2f}s  WAL {load.total('wal_bytes') / MIB:6.0f} MB  "
        f"table {load.sizes[0] / MIB:5.0f} MB  index {load.sizes[1] / MIB:4.0f} MB  "
        f"other CPU {load.total('other_cpu'):5.2f}s{'  ranges by worker: ' + shares if shares else ''}"
    )


def compare(lab: Lab, args: argparse.Namespace) -> tuple[dict[str, list[Load]], dict[int, list[Load]]]:
    """Every load once a round, the rounds one after the other: noise hits every variant alike."""
    variants = {REFERENCE: 0, "1 worker": 1, "2 workers": 2}  # name: workers (0: `dpone run`)
    loads: dict[str, list[Load]] = {name: [] for name in variants}
    overhead: dict[int, list[Load]] = {1: [], args.overhead_ranges: []}  # ranges of the small table
    for n in range(1, args.repeat + 1):
        for name, workers in variants.items():
            if workers:
                load = lab.partitioned(f"w{workers}_{n}", TABLE, args.ranges, workers)
            else:
                load = lab.reference(f"ref_{n}")
            loads[name].append(load)
            print(f"  round {n}: {name:<24} {describe(load)}", flush=True)
        for ranges, runs in overhead.items():
            load = lab.partitioned(f"small{ranges}_{n}", SMALL, ranges, 1)
            runs.append(load)
            print(f"  round {n}: {SMALL}, {ranges:>4} ranges  {describe(load)}", flush=True)
    return loads, overhead


def best(runs: list[Load]) -> Load:
    return min(runs, key=lambda load: load.seconds)


def plan_of(load: Load) -> Step:
    assert load.plan is not None
    return load.plan


def report_loads(args: argparse.Namespace, loads: dict[str, list[Load]]) -> dict[str, Any]:
    rows = args.rows
    reference = best(loads[REFERENCE])
    print(
        f"\n{rows:,} rows; partitioned loads: {args.ranges} ranges, the {args.state_backend} state store "
        f"({rounds(args)}):\n"
    )
    print(
        "| load | plan s | run s | plan + run s | rows/s | time vs dpone run | client CPU s | server CPU s "
        "| WAL MB | table MB | index MB | other CPU s | ranges by worker |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    figures: dict[str, Any] = {}
    for name, runs in loads.items():
        load = best(runs)
        plan = f"{load.plan.seconds:.2f}" if load.plan else "—"
        shares = ", ".join(f"{w}: {k}" for w, k in sorted(load.workers.items())) or "—"
        cpu = f"{load.total('client_cpu'):.2f} | {load.total('server_cpu'):.2f}"
        print(
            f"| {name} | {plan} | {load.run.seconds:.2f} | {load.seconds:.2f} | {rows / load.seconds:,.0f} "
            f"| {load.seconds / reference.seconds:.2f}x | {cpu} | {load.total('wal_bytes') / MIB:.0f} "
            f"| {load.sizes[0] / MIB:.0f} | {load.sizes[1] / MIB:.0f} | {load.total('other_cpu'):.2f} | {shares} |"
        )
        figures[f"{name}: plan s"] = load.plan.seconds if load.plan else None
        figures[f"{name}: run s"] = load.run.seconds
        figures[f"{name}: rows/s"] = round(rows / load.seconds)
        figures[f"{name}: client CPU s"] = load.total("client_cpu")
        figures[f"{name}: server CPU s"] = load.total("server_cpu")
        figures[f"{name}: WAL MB"] = load.total("wal_bytes") / MIB
        figures[f"{name}: index MB"] = load.sizes[1] / MIB
    return figures


def report_overhead(args: argparse.Namespace, overhead: dict[int, list[Load]], big_plan: Step) -> dict[str, Any]:
    many = args.overhead_ranges
    one, lots = best(overhead[1]), best(overhead[many])
    per_range = {
        name: (getattr(lots.run, name) - getattr(one.run, name)) / (many - 1) * 1000
        for name in ("seconds", "client_cpu", "server_cpu")
    }
    small = min(args.overhead_rows, args.rows)
    print(f"\nPer-range overhead: {small:,} rows of {SCHEMA}.{SMALL}, one worker ({rounds(args)}):\n")
    print("| ranges | plan ms | run ms | run client CPU ms | run server CPU ms |")
    print("|---:|---:|---:|---:|---:|")
    for ranges, load in ((1, one), (many, lots)):
        print(
            f"| {ranges} | {plan_of(load).seconds * 1000:.0f} | {load.run.seconds * 1000:.0f} "
            f"| {load.run.client_cpu * 1000:.0f} | {load.run.server_cpu * 1000:.0f} |"
        )
    print(
        f"\nper range: {per_range['seconds']:.0f} ms of wall time, {per_range['client_cpu']:.0f} ms of client CPU, "
        f"{per_range['server_cpu']:.0f} ms of server CPU ((run of {many} ranges - run of 1) / {many - 1})"
    )
    print(
        f"plan: {plan_of(one).seconds * 1000:.0f} ms for 1 range, {plan_of(lots).seconds * 1000:.0f} ms for {many} "
        f"of {small:,} rows; {big_plan.seconds * 1000:.0f} ms for {args.ranges} of {args.rows:,} rows"
    )
    return {
        "overhead rows": small,
        "overhead ranges": many,
        "overhead: plan ms, 1 range": plan_of(one).seconds * 1000,
        f"overhead: plan ms, {many} ranges": plan_of(lots).seconds * 1000,
        f"plan ms, {args.ranges} ranges of {args.rows} rows": big_plan.seconds * 1000,
        "overhead: run ms, 1 range": one.run.seconds * 1000,
        f"overhead: run ms, {many} ranges": lots.run.seconds * 1000,
        "overhead: ms per range": per_range["seconds"],
        "overhead: client CPU ms per range": per_range["client_cpu"],
        "overhead: server CPU ms per range": per_range["server_cpu"],
    }


def rounds(args: argparse.Namespace) -> str:
    return f"best of {args.repeat}" if args.repeat > 1 else "one round"


def report(args: argparse.Namespace, loads: dict[str, list[Load]], overhead: dict[int, list[Load]]) -> None:
    figures: dict[str, Any] = {
        "rows": args.rows,
        "ranges": args.ranges,
        "repeat": args.repeat,
        "state store": args.state_backend,
    }
    figures.update(report_loads(args, loads))
    figures.update(report_overhead(args, overhead, plan_of(best(loads["1 worker"]))))
    evidence.record("target-postgres", "PG to PG: dpone run against key ranges on 1 and 2 workers", figures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/partitions.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows in the source table (default 5000000)")
    parser.add_argument("--ranges", type=int, default=8, help="ranges of the partitioned loads (default 8)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of every load; the best counts (default 1)")
    parser.add_argument(
        "--overhead-rows", type=int, default=10_000, help="rows of the small table for the per-range overhead"
    )
    parser.add_argument(
        "--overhead-ranges", type=int, default=50, help="ranges the small table is also loaded as (default 50)"
    )
    parser.add_argument(
        "--state-backend",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the state store holding the plans: SQLite in each project (default), or PostgreSQL on the server",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=600,
        metavar="SECONDS",
        help="before each timed load, wait up to this long for other processes to go quiet (default 600)",
    )
    args = parser.parse_args(argv)
    if min(args.rows, args.ranges, args.repeat, args.overhead_rows) < 1 or args.overhead_ranges < 2:
        parser.error("--rows, --ranges, --repeat and --overhead-rows must be >= 1, --overhead-ranges >= 2")
    if args.overhead_ranges > min(args.overhead_rows, args.rows):
        parser.error("--overhead-ranges must not exceed the small table's rows")

    ROOT.mkdir(parents=True, exist_ok=True)
    print(f"{machine_line()}, load {load_average()}")
    with throwaway_server() as server:
        print(server_line(server, _SETTINGS))
        print(f"projects and logs in {shown(ROOT)}", flush=True)
        lab = Lab(server, args)
        lab.fill()
        report(args, *compare(lab, args))
    print(f"load at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
